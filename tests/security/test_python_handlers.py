"""A pull request to ``tables/`` cannot make workers run its own code.

The attack from the chaos run: put ``notes.py`` beside the tables and point a team's ``python``
handler at it. Python handlers run only when the deployment's allow-list
(``USM_PYTHON_HANDLERS``) covers them; validation, the API, the worker and its handler building
all refuse anything else, and nothing is ever imported from the tables' side.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import msgspec
import pytest
import redis

from service.core.tables import PythonHandler, TableSet
from service.dispatch.config import DispatchConfig
from service.files.handlers import PythonHandlers
from service.files.loader import load_set
from service.settings import Settings
from tests.support.processes import ROOT
from tests.support.tables import single_set_tables
from worker.handlers import HandlerError
from worker.runner import Worker

USM = Path(sys.executable).with_name("usm")
NOT_ALLOWED = (
    "2026.1/teams.toml: team[0].handler.target: python handler '{target}' is not allowed by "
    "this deployment; {allowed} (USM_PYTHON_HANDLERS lists the modules of installed packages "
    "workers may run)"
)


def _planted(tmp_path: Path) -> tuple[Path, str, Path]:
    """Tables whose first team (service_desk) runs ``notes:run`` from a module beside them.

    Returns the tables directory, the handler target and the file the module writes when it is
    imported, which must never exist.
    """
    root = single_set_tables(tmp_path)
    ran = tmp_path / "notes-ran"
    module = f"notes_{uuid.uuid4().hex[:8]}"  # never imported by an earlier test
    (root / f"{module}.py").write_text(
        f"open({str(ran)!r}, 'w').write('imported')\ndef run(delivery):\n    pass\n"
    )
    teams = root / "2026.1" / "teams.toml"
    line = 'name = "service_desk"\n'
    target = f"{module}:run"
    text = teams.read_text()
    assert text.index(line) < text.index("name = ", text.index(line) + len(line))
    handler = f'handler = {{ kind = "python", target = "{target}" }}\n'
    teams.write_text(text.replace(line, line + handler))
    return root, target, ran


def _usm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(USM), *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USM_")}
    return {**env, **extra}


def test_validate_refuses_a_python_handler_the_deployment_does_not_allow(tmp_path: Path) -> None:
    root, target, ran = _planted(tmp_path)
    result = _usm("tables", "validate", str(root), env=_env(PYTHONPATH=str(root)))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        NOT_ALLOWED.format(target=target, allowed="no python handler is allowed"),
        "1 problem(s); the table sets were refused",
    ]
    allow = "acme.usm, acme.other:handle"
    result = _usm(
        "tables", "validate", str(root), env=_env(PYTHONPATH=str(root), USM_PYTHON_HANDLERS=allow)
    )
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == NOT_ALLOWED.format(
        target=target, allowed="allowed: acme.usm, acme.other:handle"
    )
    assert not ran.exists()


def test_validate_accepts_a_handler_the_deployment_lists_without_importing_it(
    tmp_path: Path,
) -> None:
    root, target, ran = _planted(tmp_path)
    module = target.partition(":")[0]
    for allow in (target, module):
        env = _env(PYTHONPATH=str(root), USM_PYTHON_HANDLERS=allow)
        result = _usm("tables", "validate", str(root), env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("ok 2026.1 sha256:")
    assert not ran.exists()


def test_a_worker_refuses_tables_naming_a_module_beside_them_and_never_imports_it(
    tmp_path: Path, redis_url: str
) -> None:
    root, target, ran = _planted(tmp_path)
    env = _env(PYTHONPATH=f"{root}{os.pathsep}{ROOT}", REDIS_URL=redis_url, USM_TABLES=str(root))
    result = _usm("worker", "--team", "service_desk", "--burst", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines()[-1] == "usm worker: " + NOT_ALLOWED.format(
        target=target, allowed="no python handler is allowed"
    )
    assert not ran.exists()


def test_the_api_refuses_to_start_on_such_tables(tmp_path: Path) -> None:
    from service.api.app import create_app
    from service.errors import InvalidTables

    root, target, _ = _planted(tmp_path)
    with pytest.raises(InvalidTables) as exc:
        create_app(Settings.from_env({}, tables=str(root)))
    assert [str(p) for p in exc.value.problems] == [
        NOT_ALLOWED.format(target=target, allowed="no python handler is allowed")
    ]


def _with_handler(tables: TableSet, target: str) -> TableSet:
    teams = [
        msgspec.structs.replace(t, handler=PythonHandler(target=target))
        if t.name == "service_desk"
        else t
        for t in tables.teams.team
    ]
    return msgspec.structs.replace(tables, teams=msgspec.structs.replace(tables.teams, team=teams))


def test_the_worker_builds_no_handler_off_the_allow_list_and_imports_nothing(
    tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, target, ran = _planted(tmp_path)
    monkeypatch.syspath_prepend(str(root))  # importable, as it was in the chaos run
    tables = _with_handler(load_set(ROOT / "tables" / "2026.1").tables, target)
    allowed = DispatchConfig(python_handlers=PythonHandlers(("acme.usm",)))
    with pytest.raises(HandlerError) as exc:
        Worker(redis_client, tables, ["service_desk"], allowed)
    assert str(exc.value) == (
        f"team 'service_desk': python handler '{target}' is not allowed by this deployment; "
        "allowed: acme.usm (USM_PYTHON_HANDLERS lists the modules of installed packages "
        "workers may run)"
    )
    assert not ran.exists()
    assert target.partition(":")[0] not in sys.modules
    # The same handler, allowed by the deployment, is imported and built.
    listed = DispatchConfig(python_handlers=PythonHandlers((target,)))
    Worker(redis_client, tables, ["service_desk"], listed)
    assert ran.read_text() == "imported"


@pytest.mark.parametrize(
    ("entries", "target", "allowed"),
    [
        ((), "acme.usm:handle", False),
        (("acme.usm",), "acme.usm:handle", True),
        (("acme.usm",), "acme.usm.tickets:handle", True),
        (("acme.usm",), "acme.usmx:handle", False),
        (("acme.usm",), "acme:handle", False),
        (("acme.usm:handle",), "acme.usm:handle", True),
        (("acme.usm:handle",), "acme.usm:other", False),
    ],
)
def test_an_entry_allows_its_module_its_submodules_or_exactly_one_target(
    entries: tuple[str, ...], target: str, allowed: bool
) -> None:
    assert PythonHandlers(entries).allows(target) is allowed


def test_the_allow_list_is_read_from_the_setting_and_malformed_entries_are_refused() -> None:
    settings = Settings.from_env({"USM_PYTHON_HANDLERS": " acme.usm , acme.x:run "})
    assert PythonHandlers.parse(settings.python_handlers).entries == ("acme.usm", "acme.x:run")
    assert PythonHandlers.parse(Settings.from_env({}).python_handlers).entries == ()
    with pytest.raises(msgspec.ValidationError, match=r"- at `\$.python_handlers`$"):
        Settings.from_env({"USM_PYTHON_HANDLERS": "acme.usm; rm -rf /"})
