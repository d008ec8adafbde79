"""Secrets of the sources: inbound signing keys and write-back API tokens. Never in tables.

Looked up per source name, first in the environment, then in a TOML file:

- ``USM_SOURCE_<NAME>_SECRET``: what the tool signs (or authenticates) its events with;
- ``USM_SOURCE_<NAME>_TOKEN``: the credential write-back uses on the tool's API;
- ``USM_SOURCES_SECRETS_FILE``: a TOML file of ``[<name>]`` tables with ``secret`` and ``token``
  (mode 0600, like the API keys file), re-read when it changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec

__all__ = ["SourceSecrets", "secrets_for"]

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
