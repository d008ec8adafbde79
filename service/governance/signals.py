"""Signals under granian: SIGUSR1 reloads the tables in the workers, SIGHUP stops the server.

Granian's main process answers SIGHUP by starting new workers and stopping the old ones. Here
SIGHUP means a closed terminal, so it stops granian like SIGTERM. Reload is SIGUSR1, which granian
leaves alone: :func:`reload_on_sigusr1` makes the main process pass it on to its workers, where
:class:`GovernancePlugin` reloads the tables in place and keeps the running set when the new one
is refused (a respawned worker would load the tables at start-up and exit on invalid ones).
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

__all__ = ["reload_on_sigusr1"]

log = logging.getLogger("usm.governance.signals")


def reload_on_sigusr1(server: Any) -> None:
    """Before ``server.serve()``: SIGUSR1 reaches each worker, SIGHUP stops the server."""

    def forward(*_: object) -> None:
        for worker in list(getattr(server, "wrks", [])):
            pid = getattr(getattr(worker, "inner", None), "pid", None)
            if pid:
                try:
                    os.kill(pid, signal.SIGUSR1)
                except ProcessLookupError:  # a worker that just exited; granian respawns it
                    continue
        log.info("SIGUSR1 passed on to %d worker(s): tables reload in place", len(server.wrks))

    signal.signal(signal.SIGUSR1, forward)
    # granian installs ``self.signal_handler_reload`` for SIGHUP when serve() starts.
    server.signal_handler_reload = server.signal_handler_interrupt
