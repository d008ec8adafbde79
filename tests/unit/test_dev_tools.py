"""scripts/dev installs system tools without side effects on the host.

Two mechanisms, each run here for real: ``scripts/no-service-starts`` (a policy-rc.d that forbids
service starts while apt installs, e.g. redis-server) and ``scripts/unpack-deb`` (a package's
files without its maintainer scripts, e.g. promtool and prometheus from Debian's prometheus,
whose postinst would enable and start a server on :9090).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_SERVICE_STARTS = ROOT / "scripts" / "no-service-starts"
UNPACK_DEB = ROOT / "scripts" / "unpack-deb"


def run(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_service_starts_are_forbidden_while_the_command_runs(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    # What invoke-rc.d does before starting a daemon: run policy-rc.d; 101 = action forbidden.
    result = run(
        NO_SERVICE_STARTS, "sh", "-c", '"$POLICY_RC_D" redis-server start; echo "answer $?"',
        env={"POLICY_RC_D": str(policy)},
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "answer 101\n"), result.stderr
    assert not policy.exists(), "the policy is removed afterwards"


def test_the_command_fails_as_it_would_and_the_policy_is_still_removed(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    result = run(NO_SERVICE_STARTS, "sh", "-c", "exit 3", env={"POLICY_RC_D": str(policy)})
    assert result.returncode == 3
    assert not policy.exists()


def test_an_existing_policy_is_left_as_it_is(tmp_path: Path) -> None:
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    policy.chmod(0o755)
    result = run(NO_SERVICE_STARTS, "true", env={"POLICY_RC_D": str(policy)})
    assert result.returncode == 0
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"


@pytest.fixture
def deb_with_postinst(tmp_path: Path) -> Path:
    """A tiny Debian package whose postinst would leave a marker file (as a daemon start would)."""
    if shutil.which("dpkg-deb") is None:
        pytest.fail("dpkg-deb missing: scripts/dev needs Debian's dpkg")
    tree = tmp_path / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "usr" / "bin").mkdir(parents=True)
    marker = tmp_path / "postinst-ran"
    (tree / "DEBIAN" / "control").write_text(
        "Package: usm-fake-tool\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: usm <usm@localhost>\nDescription: fake tool for a test\n"
    )
    postinst = tree / "DEBIAN" / "postinst"
    postinst.write_text(f"#!/bin/sh\ntouch {marker}\n")
    postinst.chmod(0o755)
    tool = tree / "usr" / "bin" / "faketool"
    tool.write_text("#!/bin/sh\necho fake tool 1.0\n")
    tool.chmod(0o755)
    built = run("dpkg-deb", "--root-owner-group", "--build", tree, tmp_path / "fake.deb")
    assert built.returncode == 0, built.stderr
    return tmp_path / "fake.deb"


def test_unpacking_a_package_gives_its_binary_and_runs_none_of_its_scripts(
    deb_with_postinst: Path, tmp_path: Path
) -> None:
    tools = tmp_path / "tools"
    result = run(UNPACK_DEB, deb_with_postinst, tools / "fake", tools / "bin", "faketool")
    assert result.returncode == 0, result.stderr
    assert run(tools / "bin" / "faketool").stdout == "fake tool 1.0\n"
    assert not (tmp_path / "postinst-ran").exists()


def test_a_binary_the_package_lacks_is_an_error(deb_with_postinst: Path, tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    result = run(UNPACK_DEB, deb_with_postinst, tools / "fake", tools / "bin", "promtool")
    assert result.returncode == 1
    assert "promtool not found" in result.stderr


def test_scripts_dev_usm_runs_the_environments_usm_from_any_directory(tmp_path: Path) -> None:
    # The README shows `scripts/dev usm keys new ...`: `usm` itself is not on PATH after
    # `scripts/dev serve`. USM_VENV: the environment running these tests.
    result = subprocess.run(
        [str(ROOT / "scripts" / "dev"), "usm", "tables", "validate", str(ROOT / "tables")],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={**os.environ, "USM_VENV": sys.prefix},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok 2026.1 ")


def test_scripts_dev_rq_runs_the_environments_rq_as_the_readme_shows(
    tmp_path: Path, redis_url: str
) -> None:
    # README: `scripts/dev rq info --url ...`; RQ's `rq` is in .venv only, like `usm`.
    result = subprocess.run(
        [str(ROOT / "scripts" / "dev"), "rq", "info", "--url", redis_url],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
        env={**os.environ, "USM_VENV": sys.prefix, "PATH": os.defpath},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 queues, 0 jobs total" in result.stdout, result.stdout
