"""API keys: generated, stored only as hashes, checked in constant time.

Why a single SHA-256 and not scrypt/PBKDF2: slow hashes exist to stop offline guessing of
*low-entropy* secrets such as passwords. A key made here carries 256 random bits
(``secrets.token_urlsafe(32)``); no amount of hashing speed makes 2**256 guesses feasible, so a
slow hash would add nothing but milliseconds of CPU to every request (and a cheap way to load the
service with bogus keys). The hash file therefore leaks nothing usable if it is read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated

import msgspec

from service.errors import UsmError
from service.security.scopes import Scope

__all__ = [
    "HASH_PREFIX",
    "KEY_NAME",
    "KEY_PREFIX",
    "LOCAL",
    "ApiKey",
    "KeyConfigError",
    "KeyRing",
    "Principal",
    "hash_key",
    "new_key",
    "parse_env",
]

KEY_PREFIX = "usm_"
"""Every generated key starts with this, so secret scanners and people recognise one."""
HASH_PREFIX = "sha256:"
"""Names the hash algorithm inside a stored hash, leaving room for another one later."""

VERIFIED_KEYS = 1024
"""Keys a :class:`KeyRing` remembers as verified (far more than any deployment configures)."""

KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
"""What a key's name may look like: it shows up in logs, headers and Redis keys."""
KeyName = Annotated[str, msgspec.Meta(pattern=KEY_NAME.pattern)]
KeyHash = Annotated[str, msgspec.Meta(pattern=r"^sha256:[0-9a-f]{64}$")]


class KeyConfigError(UsmError):
    """The key file or ``USM_API_KEYS`` cannot be used; the message names where and why."""

    status_code = 500


class ApiKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One entry of the key file: who, the key's hash, and what it may do."""

    name: KeyName
    """Who holds the key (a ticketing tool, a team); appears in logs and rate-limit keys."""
    hash: KeyHash
    """``sha256:<hex>`` of the key; the key itself is never stored."""
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)]
    """Scopes granted: any of ``score``, ``dispatch``, ``admin``."""


class KeyFile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``USM_API_KEYS_FILE``: a TOML file of ``[[keys]]`` tables."""

    keys: list[ApiKey] = []


class Principal(msgspec.Struct, frozen=True):
    """Who made a request (the key's name, never the key) and the scopes it holds."""

    name: str
    scopes: frozenset[Scope]


LOCAL = Principal(name="local", scopes=frozenset(Scope))
"""The caller when no key is configured; the service then listens on loopback only."""


def new_key() -> str:
    """A fresh random key: ``usm_`` and 43 URL-safe characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of ``key``: ``sha256:<hex>``."""
    return HASH_PREFIX + hashlib.sha256(key.encode()).hexdigest()


def parse_env(value: str) -> list[ApiKey]:
    """Keys from ``USM_API_KEYS``: entries ``NAME:SCOPE[,SCOPE]:sha256:HEX`` split by ``;``.

    Raises:
        KeyConfigError: naming the entry (by position, never by content) and the reason.
    """
    keys: list[ApiKey] = []
    entries = [e.strip() for e in value.replace("\n", ";").split(";")]
    for i, entry in enumerate(e for e in entries if e):
        parts = entry.split(":", 2)
        if len(parts) != 3:
            raise KeyConfigError(
                f"USM_API_KEYS entry {i + 1}: expected NAME:SCOPES:sha256:HEX "
                "(run `usm keys new` to get one)"
            )
        name, scopes, digest = parts
        raw = {"name": name, "hash": digest, "scopes": [s.strip() for s in scopes.split(",")]}
        try:
            keys.append(msgspec.convert(raw, ApiKey))
        except msgspec.ValidationError as exc:
            raise KeyConfigError(f"USM_API_KEYS entry {i + 1}: {_where(exc)}") from None
    return keys


def _where(exc: msgspec.DecodeError) -> str:
    text = str(exc)
    if "scopes" in text:
        return f"{text}; allowed scopes: {', '.join(s.value for s in Scope)}"
    return text


def load_file(path: Path) -> list[ApiKey]:
    """Keys from a TOML key file.

    Raises:
        KeyConfigError: naming the file and the reason.
    """
    try:
        return msgspec.toml.decode(path.read_bytes(), type=KeyFile).keys
    except OSError as exc:
        raise KeyConfigError(f"{path}: cannot read API key file: {exc.strerror}") from None
    except msgspec.DecodeError as exc:
        raise KeyConfigError(f"{path}: {_where(exc)}") from None


class KeyRing:
    """The configured keys; answers "whose key is this?" without leaking timing or the key."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._entries: list[tuple[bytes, Principal]] = []
        names: set[str] = set()
        hashes: set[str] = set()
        for key in keys:
            if key.name in names:
                raise KeyConfigError(f"API key name '{key.name}' appears twice")
            if key.hash in hashes:
                raise KeyConfigError(f"API key '{key.name}' has the same hash as another key")
            names.add(key.name)
            hashes.add(key.hash)
            digest = bytes.fromhex(key.hash.removeprefix(HASH_PREFIX))
            self._entries.append((digest, Principal(key.name, frozenset(key.scopes))))
        self._verified: dict[str, Principal] = {}

    @classmethod
    def configured(cls, keys_file: str | None, keys_env: str | None) -> KeyRing:
        """Keys from the file (``USM_API_KEYS_FILE``) and the environment (``USM_API_KEYS``)."""
        keys: list[ApiKey] = []
        if keys_file:
            keys.extend(load_file(Path(keys_file)))
        if keys_env:
            keys.extend(parse_env(keys_env))
        return cls(keys)

    @property
    def empty(self) -> bool:
        """True when no key is configured (open, loopback-only mode)."""
        return not self._entries

    @property
    def names(self) -> Sequence[str]:
        return [p.name for _, p in self._entries]

    def verify(self, presented: str) -> Principal | None:
        """The holder of ``presented``, or None.

        Every entry is compared with :func:`hmac.compare_digest` and the loop never stops early,
        so the time taken does not tell how many keys exist before the matching one. A key found
        is remembered (up to :data:`VERIFIED_KEYS` of them), so its holder's next requests skip
        the hash: only a caller who already has a valid key can tell a remembered one by its
        speed, and unknown keys are never kept (sending many cannot fill memory).
        """
        known = self._verified.get(presented)
        if known is not None:
            return known
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: Principal | None = None
        for stored, principal in self._entries:
            if hmac.compare_digest(stored, digest):
                found = principal
        if found is not None:
            if len(self._verified) >= VERIFIED_KEYS:
                self._verified.clear()
            self._verified[presented] = found
        return found
