"""Checks that an inbound source request comes from the tool, the way that tool signs it.

Each source names one :class:`Scheme`; its secret comes from the environment or a secrets file,
never from the tables. Schemes and where each tool documents them:

- ``hmac-sha256``: ``X-Hub-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw body. Jira Cloud
  admin webhooks registered with a secret send this (WebSub "authenticated content
  distribution"; developer.atlassian.com/cloud/jira/platform/webhooks, "Secure admin webhooks").
- ``hmac-sha1``: ``X-Hub-Signature: sha1=<hex>``, the HMAC-SHA1 of the raw body. Zammad webhooks
  with an "HMAC SHA1 Signature Token" send this (admin docs "Adding webhooks";
  zammad ``lib/user_agent.rb`` ``set_signature``).
- ``glpi``: ``X-GLPI-signature: <hex>``, the HMAC-SHA256 of the raw body followed by the decimal
  ``X-GLPI-timestamp``. GLPI 10.0+/11 webhooks send this (glpi ``src/Webhook.php``, ``raise``).
- ``bearer``: ``Authorization: Bearer <token>``, for tools that cannot sign but can set a header
  (Jira Automation "Send web request", a ServiceNow REST message).
- ``basic``: ``Authorization: Basic <base64 user:password>`` with the secret written
  ``user:password`` (a ServiceNow REST message's basic auth profile, Zammad's webhook basic auth).

Every comparison runs in constant time (:func:`hmac.compare_digest`) and over equal-length
values: tokens and passwords are hashed first so that not even the secret's length leaks. A
signature whose algorithm prefix does not match the scheme (``sha1=`` where ``sha256=`` is due) is
refused, so a sender cannot pick a weaker algorithm. GLPI's timestamp is signed but not checked for
age: GLPI queues webhooks and its cron may deliver (or retry) them much later; replays are harmless
because inbound events are idempotent on the tool's ticket id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from functools import lru_cache

from service.errors import SignatureRefused

__all__ = [
    "HEADERS",
    "SCHEMES",
    "Scheme",
    "SignatureRefused",
    "accepts_as_signed",
    "read_headers",
    "sign",
    "verify",
]


class Scheme(StrEnum):
    """How a source proves a request comes from it."""

    HMAC_SHA256 = "hmac-sha256"
    HMAC_SHA1 = "hmac-sha1"
    GLPI = "glpi"
    BEARER = "bearer"
    BASIC = "basic"


SCHEMES: dict[str, Scheme] = {scheme.value: scheme for scheme in Scheme}
"""A scheme by the name a source gives (a dict look-up; ``Scheme(name)`` costs several calls)."""

HEADERS: dict[Scheme, str] = {
    Scheme.HMAC_SHA256: "X-Hub-Signature",
    Scheme.HMAC_SHA1: "X-Hub-Signature",
    Scheme.GLPI: "X-GLPI-signature",
    Scheme.BEARER: "Authorization",
    Scheme.BASIC: "Authorization",
}
"""The header each scheme reads; named in every refusal so the tool's admin knows what to set."""

GLPI_TIMESTAMP = "X-GLPI-timestamp"
"""GLPI's second header: the Unix time appended to the body before signing."""

_READS: dict[Scheme, frozenset[bytes]] = {
    scheme: frozenset(
        (
            name.lower().encode(),
            *((GLPI_TIMESTAMP.lower().encode(),) if scheme == "glpi" else ()),
        )
    )
    for scheme, name in HEADERS.items()
}
"""The headers each scheme reads, as ASGI spells names (lower case)."""

_HUB = {Scheme.HMAC_SHA256: ("sha256", hashlib.sha256), Scheme.HMAC_SHA1: ("sha1", hashlib.sha1)}
_HEX = {"sha256": re.compile(r"^[0-9a-fA-F]{64}$"), "sha1": re.compile(r"^[0-9a-fA-F]{40}$")}
_TIMESTAMP = re.compile(r"^[0-9]{1,20}$")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name in any case (litestar's headers ignore case already; dicts do not)."""
    value = headers.get(name)
    if value is None:
        lower = name.lower()
        value = headers.get(lower)  # ASGI's own names are lower case
        if value is None:
            value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value.strip() if value is not None else None


def read_headers(scheme: Scheme, raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers ``scheme`` reads, from an ASGI scope's raw ``headers``; the first of a
    repeated name counts (as in litestar's header map). Only those few are decoded: building
    a map of every header cost more than checking a bearer token."""
    wanted = _READS[scheme]
    found: dict[str, str] = {}
    for name, value in raw:
        lower = name.lower()
        if lower in wanted:
            key = lower.decode("latin-1")
            if key not in found:
                found[key] = value.decode("latin-1")
    return found


def _same(given: bytes, expected: bytes) -> bool:
    """Constant-time equality that also hides the expected value's length: digests of equal
    length compared. BLAKE2s (a cryptographic hash, Python's own C code) costs about half of
    OpenSSL's SHA-256 for a token this short, on every event."""
    return hmac.compare_digest(hashlib.blake2s(given).digest(), _digest(expected))


@lru_cache(maxsize=64)
def _digest(secret: bytes) -> bytes:
    """A secret's digest, computed once: secrets are few and checked on every event."""
    return hashlib.blake2s(secret).digest()


def _hub(scheme: Scheme, secret: str, headers: Mapping[str, str], body: bytes) -> None:
    name = HEADERS[scheme]
    algorithm, digest = _HUB[scheme]
    value = _header(headers, name)
    if not value:
        raise SignatureRefused("missing signature", name)
    prefix, sep, hexdigest = value.partition("=")
    if not sep or prefix.lower() != algorithm or not _HEX[algorithm].match(hexdigest):
        raise SignatureRefused(f"malformed signature: expected `{algorithm}=<hex digest>`", name)
    expected = hmac.new(secret.encode(), body, digest).hexdigest()
    if not hmac.compare_digest(hexdigest.lower(), expected):
        raise SignatureRefused("signature does not match the body", name)


def _glpi(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    name = HEADERS[Scheme.GLPI]
    value = _header(headers, name)
    timestamp = _header(headers, GLPI_TIMESTAMP)
    if not value:
        raise SignatureRefused("missing signature", name)
    if not timestamp:
        raise SignatureRefused("missing signature timestamp", GLPI_TIMESTAMP)
    if not _TIMESTAMP.match(timestamp):
        raise SignatureRefused("malformed timestamp: expected Unix seconds", GLPI_TIMESTAMP)
    if not _HEX["sha256"].match(value):
        raise SignatureRefused("malformed signature: expected a hex HMAC-SHA256", name)
    expected = hmac.new(secret.encode(), body + timestamp.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(value.lower(), expected):
        raise SignatureRefused("signature does not match the body and timestamp", name)


def _authorization(scheme: Scheme, secret: str, headers: Mapping[str, str]) -> None:
    name = HEADERS[scheme]
    value = _header(headers, name)
    if not value:
        raise SignatureRefused("missing credentials", name)
    word, _, credentials = value.partition(" ")
    credentials = credentials.strip()
    if scheme is Scheme.BEARER:
        if word.lower() != "bearer" or not credentials:
            raise SignatureRefused("malformed credentials: expected `Bearer <token>`", name)
        given = credentials.encode()
    else:
        if word.lower() != "basic" or not credentials:
            raise SignatureRefused("malformed credentials: expected `Basic <base64>`", name)
        try:
            given = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureRefused("malformed credentials: not base64", name) from None
        if b":" not in given:
            raise SignatureRefused("malformed credentials: expected `user:password`", name)
    if not _same(given, secret.encode()):
        raise SignatureRefused("wrong credentials", name)


def verify(scheme: Scheme, secret: str, headers: Mapping[str, str], body: bytes) -> None:
    """Accept the request or refuse it with the reason and the header at fault.

    Args:
        scheme: the source's scheme.
        secret: the shared secret (``user:password`` for ``basic``); must not be empty.
        headers: the request's headers (any case).
        body: the raw request body, exactly as received: a re-encoded JSON would not match.

    Raises:
        SignatureRefused: missing, malformed or wrong signature or credentials (HTTP 401).
        ValueError: an empty secret, which would make every signature computable.
    """
    if not secret:
        raise ValueError(f"the {scheme.value} secret is empty")
    if scheme in _HUB:
        _hub(scheme, secret, headers, body)
    elif scheme is Scheme.GLPI:
        _glpi(secret, headers, body)
    else:
        _authorization(scheme, secret, headers)


def accepts_as_signed(scheme: Scheme, secret: str, raw: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when the request's credentials header is, byte for byte, the one :func:`sign` writes
    for ``secret`` (``Bearer <token>``, ``Basic <base64>``): then :func:`verify` accepts it too.

    False means nothing but "not that header": call :func:`verify`, which accepts the other
    spellings it takes and refuses with the reason. The header is the first of its name, as
    :func:`read_headers` picks it; the comparison is :func:`_same`'s (digests of equal length, in
    constant time). About a third of ``read_headers`` and ``verify``'s cost for a bearer token,
    on every event; signature schemes (HMAC over the body) always take :func:`verify`.
    """
    expected = _signed_digest(scheme, secret)
    if expected is None:
        return False
    for name, value in raw:
        if name.lower() == b"authorization":
            return hmac.compare_digest(hashlib.blake2s(value).digest(), expected)
    return False


@lru_cache(maxsize=64)
def _signed_digest(scheme: Scheme, secret: str) -> bytes | None:
    """The digest of the credentials header :func:`sign` writes for ``secret``, when
    :func:`verify` accepts that header as written (it reads the header as Latin-1 and strips
    it: a secret that does not survive that is checked by :func:`verify` alone); None for the
    signature schemes."""
    if scheme not in (Scheme.BEARER, Scheme.BASIC) or not secret:
        return None
    value = sign(scheme, secret, b"")[HEADERS[scheme]]
    try:
        sent = value.encode("latin-1")
        verify(scheme, secret, {HEADERS[scheme]: sent.decode("latin-1")}, b"")
    except (SignatureRefused, UnicodeEncodeError):
        return None
    return hashlib.blake2s(sent).digest()


def sign(scheme: Scheme, secret: str, body: bytes, *, timestamp: int = 0) -> dict[str, str]:
    """The headers the tool would send with ``body``: for tests, docs and ``curl`` examples.

    ``timestamp`` is GLPI's ``X-GLPI-timestamp`` (Unix seconds); other schemes ignore it.
    """
    if scheme in _HUB:
        algorithm, digest = _HUB[scheme]
        mac = hmac.new(secret.encode(), body, digest).hexdigest()
        return {HEADERS[scheme]: f"{algorithm}={mac}"}
    if scheme is Scheme.GLPI:
        stamp = str(timestamp)
        mac = hmac.new(secret.encode(), body + stamp.encode(), hashlib.sha256).hexdigest()
        return {HEADERS[scheme]: mac, GLPI_TIMESTAMP: stamp}
    if scheme is Scheme.BEARER:
        return {HEADERS[scheme]: f"Bearer {secret}"}
    return {HEADERS[scheme]: f"Basic {base64.b64encode(secret.encode()).decode()}"}
