"""Secrets of the sources: inbound signing keys and write-back API tokens. Never in tables.

Looked up per source name, first in the environment, then in a TOML file:

- ``USM_SOURCE_<NAME>_SECRET``: what the tool signs (or authenticates) its events with;
- ``USM_SOURCE_<NAME>_TOKEN``: the credential write-back uses on the tool's API;
- ``USM_SOURCES_SECRETS_FILE``: a TOML file of ``[<name>]`` tables with ``secret`` and ``token``
  (mode 0600, like the API keys file), re-read when it changes.

Rotation: the API's event route reads through a :class:`SecretCache`, which reads the environment
once (a process's environment does not change under it: rotating a variable means restarting or
rolling the API processes, as for API keys) and looks at the file's modification time on every
event, so a rotated file takes effect with the next event, without a restart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

__all__ = ["SecretCache", "SourceSecrets", "secrets_for"]

FILE_ENV = "USM_SOURCES_SECRETS_FILE"


class SourceSecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One source's secrets; either may be absent."""

    secret: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # secrets never end up in logs or tracebacks
        return (
            f"SourceSecrets(secret={'***' if self.secret else None}, "
            f"token={'***' if self.token else None})"
        )


_cache: dict[str, tuple[float, dict[str, SourceSecrets]]] = {}


def _file(path: str) -> dict[str, SourceSecrets]:
    mtime = Path(path).stat().st_mtime
    hit = _cache.get(path)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    parsed = msgspec.toml.decode(Path(path).read_bytes(), type=dict[str, SourceSecrets])
    _cache[path] = (mtime, parsed)
    return parsed


def secrets_for(name: str, env: Mapping[str, str] | None = None) -> SourceSecrets:
    """The secrets of source ``name``; the environment wins over the file.

    Raises:
        OSError, msgspec.DecodeError: the secrets file is named but unreadable or malformed.
    """
    env = os.environ if env is None else env
    stem = f"USM_SOURCE_{name.upper()}_"
    from_file = SourceSecrets()
    path = env.get(FILE_ENV)
    if path:
        from_file = _file(path).get(name, SourceSecrets())
    return SourceSecrets(
        secret=env.get(stem + "SECRET") or from_file.secret,
        token=env.get(stem + "TOKEN") or from_file.token,
    )


class SecretCache:
    """The secrets of each source for the inbound route: the environment read once per source,
    the file (when one is named) still checked on every call.

    ``secrets_for`` reads three environment variables per call, a noticeable part of an event's
    cost (bench/http.py, the source row); one cache per app, so a test that sets other values
    and builds a new app sees them.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self._env = os.environ if env is None else env
        self._path: str | None = None
        self._read: dict[str, SourceSecrets] = {}
        """Per source: what the environment alone gives (the file fills the gaps per call)."""
        self._started = False

    def get(self, name: str) -> SourceSecrets:
        """Like :func:`secrets_for`, with the environment as it was at the first call.

        Raises:
            OSError, msgspec.DecodeError: the secrets file is named but unreadable or malformed.
        """
        if not self._started:
            self._path = self._env.get(FILE_ENV) or None
            self._started = True
        found = self._read.get(name)
        if found is None:
            stem = f"USM_SOURCE_{name.upper()}_"
            found = SourceSecrets(
                secret=self._env.get(stem + "SECRET") or None,
                token=self._env.get(stem + "TOKEN") or None,
            )
            self._read[name] = found
        if self._path is None:
            return found
        from_file = _file(self._path).get(name, SourceSecrets())
        return SourceSecrets(
            secret=found.secret or from_file.secret, token=found.token or from_file.token
        )
