"""API keys with scopes, per-key rate limits and the loopback rule, wired by :func:`build_security`.

``create_app`` calls :func:`build_security` once and passes what it returns to litestar; nothing
else in the service knows about keys.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar
from litestar.stores.base import Store

from service.errors import UsmError
from service.security.hostile import HOSTILE_HANDLERS
from service.security.intake import Intake
from service.security.keys import KeyConfigError, KeyRing, Principal, hash_key, new_key
from service.security.middleware import ApiKeyCheck
from service.security.openapi import document_security
from service.security.ratelimit import (
    KeyRateLimiter,
    RateLimitStore,
    parse_rate,
    rate_limit_config,
)
from service.security.scopes import Scope, required_scope
from service.settings import Settings

__all__ = [
    "ApiKeyCheck",
    "InsecureBind",
    "Intake",
    "KeyConfigError",
    "KeyRateLimiter",
    "KeyRing",
    "Principal",
    "Scope",
    "Security",
    "build_security",
    "check_bind",
    "hash_key",
    "is_loopback",
    "new_key",
    "preflight",
    "required_scope",
]

log = logging.getLogger("usm.security")


class InsecureBind(UsmError):
    """No API key is configured, yet the service was asked to listen beyond loopback."""

    status_code = 500


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, ring: KeyRing, announce: bool = True) -> None:
    """Refuse a non-loopback ``host`` while no key is configured; say which mode is in force.

    Args:
        host: The address the API will bind.
        ring: The configured keys.
        announce: Log the mode (keys required, or open on loopback); off for the pre-check, so
            the app built afterwards says it once.

    Raises:
        InsecureBind: ``host`` is reachable from other machines and every endpoint would be open.
    """
    if not ring.empty:
        if not announce:
            return
        names = ", ".join(ring.names)
        log.info("API keys required: %d key(s) configured: %s", len(ring.names), names)
        return
    if not is_loopback(host):
        raise InsecureBind(
            f"refusing to listen on {host}: no API keys are configured, so every endpoint would be "
            "open to the network. Configure keys (USM_API_KEYS_FILE or USM_API_KEYS; create one "
            "with `usm keys new --name NAME --scope score`) or bind to 127.0.0.1 (USM_HOST)."
        )
    if not announce:
        return
    log.warning(
        "no API keys configured: every endpoint is open, so the API listens on loopback only (%s)",
        host,
    )


def preflight(settings: Settings) -> KeyRing:
    """Load the keys and apply the loopback rule before a command starts any process.

    ``create_app`` checks the same again; calling this first makes ``usm api``/``usm serve``
    stop with one clear line instead of a server worker's traceback.

    Raises:
        KeyConfigError: the key file or ``USM_API_KEYS`` is unusable.
        InsecureBind: see :func:`check_bind`.
    """
    ring = KeyRing.configured(settings.api_keys_file, settings.api_keys)
    check_bind(settings.host, ring, announce=False)
    return ring


@dataclass
class Security:
    """What the API runs per request (in this order: intake, key check, rate limit), and what
    litestar needs: stores and lifecycle hooks. ``service.api.guard`` runs the three checks in
    one ASGI layer, together with the HTTP metrics."""

    ring: KeyRing
    """The configured keys (empty: open, loopback-only mode)."""
    intake: Intake
    """JSON bodies; loopback Host/Origin without keys."""
    auth: ApiKeyCheck
    """The key and the route's scope."""
    limiter: KeyRateLimiter | None = None
    """The per-key rate limit, when on (it needs to know the key's name)."""
    stores: dict[str, Store] = field(default_factory=dict)
    """``rate_limit``: the Redis-backed counter store, when limits are on."""
    on_startup: list[Callable[[Litestar], Any]] = field(default_factory=list)
    """Adds the key schemes and refusals to the OpenAPI document."""
    on_shutdown: list[Callable[[], Any]] = field(default_factory=list)
    """Closes the rate limiter's Redis connections."""
    exception_handlers: dict[type[Exception], Any] = field(
        default_factory=lambda: dict(HOSTILE_HANDLERS)
    )
    """Turn hostile bodies that slip past the decoders into 4xx (see ``hostile.py``)."""


def build_security(settings: Settings, ring: KeyRing | None = None) -> Security:
    """Keys, loopback rule, authentication middleware, rate limits and OpenAPI notes.

    Args:
        settings: where the keys are (``api_keys_file``, ``api_keys``), the bind address, the
            rate limit and the Redis that shares the rate-limit counters between replicas.
        ring: keys to use instead of the configured ones (tests).

    Raises:
        KeyConfigError: the key file or ``USM_API_KEYS`` is unusable.
        InsecureBind: see :func:`check_bind`.
    """
    if ring is None:
        ring = KeyRing.configured(settings.api_keys_file, settings.api_keys)
    check_bind(settings.host, ring)
    security = Security(
        ring=ring,
        intake=Intake(keyless=ring.empty),
        auth=ApiKeyCheck(ring),
        on_startup=[document_security],
    )
    rate = parse_rate(settings.rate_limit)
    if rate is not None and not ring.empty:
        store = RateLimitStore.for_url(settings.redis_url)
        security.stores["rate_limit"] = store
        security.limiter = KeyRateLimiter(rate_limit_config(rate), store)
        security.on_shutdown.append(store.close)
    return security
