"""Source secrets: the environment wins over the file; the route's cache reads the environment
once and follows a rotated secrets file with the next event."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.sources.secrets import FILE_ENV, SecretCache, SourceSecrets, secrets_for


def _write(path: Path, text: str, mtime: int) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))  # a distinct modification time, as a rewrite later gives


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"USM_SOURCE_RT_SECRET": "from-env"},
        {"USM_SOURCE_RT_SECRET": "", "USM_SOURCE_RT_TOKEN": "tok"},
        {"USM_SOURCE_RT_SECRET": "e", "USM_SOURCE_RT_TOKEN": "t", "USM_SOURCE_JIRA_SECRET": "j"},
    ],
)
@pytest.mark.parametrize("with_file", [False, True])
def test_the_cache_answers_as_secrets_for(
    tmp_path: Path, env: dict[str, str], with_file: bool
) -> None:
    if with_file:
        path = tmp_path / "secrets.toml"
        _write(path, '[rt]\nsecret = "file-secret"\ntoken = "file-token"\n', 1_700_000_000)
        env = {**env, FILE_ENV: str(path)}
    cache = SecretCache(env)
    for name in ("rt", "jira", "glpi"):
        assert cache.get(name) == secrets_for(name, env)


def test_the_environment_is_read_once() -> None:
    env = {"USM_SOURCE_RT_SECRET": "first"}
    cache = SecretCache(env)
    assert cache.get("rt").secret == "first"
    env["USM_SOURCE_RT_SECRET"] = "second"  # a running process's environment does not change
    assert cache.get("rt").secret == "first"
    assert SecretCache(env).get("rt").secret == "second"  # a new app (a restart) reads it


def test_a_rotated_secrets_file_counts_from_the_next_call(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    _write(path, '[rt]\nsecret = "old"\n', 1_700_000_000)
    cache = SecretCache({FILE_ENV: str(path)})
    assert cache.get("rt") == SourceSecrets(secret="old")
    _write(path, '[rt]\nsecret = "new"\ntoken = "tok"\n', 1_700_000_060)
    assert cache.get("rt") == SourceSecrets(secret="new", token="tok")


def test_the_environment_wins_over_a_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.toml"
    _write(path, '[rt]\nsecret = "file"\ntoken = "file-token"\n', 1_700_000_000)
    cache = SecretCache({FILE_ENV: str(path), "USM_SOURCE_RT_SECRET": "env"})
    _write(path, '[rt]\nsecret = "file2"\ntoken = "file-token2"\n', 1_700_000_060)
    assert cache.get("rt") == SourceSecrets(secret="env", token="file-token2")


def test_an_unreadable_file_is_still_an_error(tmp_path: Path) -> None:
    cache = SecretCache({FILE_ENV: str(tmp_path / "missing.toml"), "USM_SOURCE_RT_SECRET": "e"})
    with pytest.raises(OSError):
        cache.get("rt")


def test_secrets_never_show_in_a_repr() -> None:
    assert "s3cret" not in repr(SecretCache({"USM_SOURCE_RT_SECRET": "s3cret"}).get("rt"))
