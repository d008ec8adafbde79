"""Importing the CLI imports no metrics library: ``usm serve`` chooses the mode first.

prometheus_client picks single- or multi-process mode when it is first imported. ``usm serve``
(API and workers sharing one ``/metrics``) switches to multiprocess mode before that, so every
``usm`` sub-command module must leave the import of anything that reaches prometheus_client
(the API, dispatch, metrics, sources) to the moment it runs.
"""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_importing_every_cli_command_imports_no_prometheus_client() -> None:
    program = (
        "import sys, service.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prometheus_client'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert result.stdout.strip() == "[]"
