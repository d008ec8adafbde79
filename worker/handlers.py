"""A team's work handler: ``log`` (default), ``webhook`` (signed POST) or ``python`` (callable).

Every handler gets a :class:`Delivery`; its ``id`` is the idempotency key, since an item may be
delivered more than once (a worker killed mid-item hands it to the next one).

Webhook signature: ``X-USM-Signature: sha256=<hex>`` where ``<hex>`` is
HMAC-SHA256(secret, ``<X-USM-Timestamp>.<raw body>``); receivers recompute it over the exact
bytes received and refuse stale timestamps (replay protection).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import msgspec

from service.core.base import Base
from service.core.calls import Call
from service.core.decision import Decision
from service.core.tables import LogHandler, PythonHandler, Team, WebhookHandler
from service.files.handlers import PythonHandlers

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Delivery",
    "Handler",
    "HandlerError",
    "Interrupted",
    "build_handler",
    "sign",
]

log = logging.getLogger("usm.worker")

SIGNATURE_HEADER = "X-USM-Signature"
TIMESTAMP_HEADER = "X-USM-Timestamp"


class Delivery(Base):
    """What a handler receives: the item as it stands when handed out."""

    id: str
    """Item id; also the idempotency key (``Idempotency-Key`` header for webhooks)."""
    team: str
    priority: str
    source: str
    external_id: str
    call: Call
    decision: Decision
    payload: dict[str, Any] | None = None
    delivery: int = 1
    """1 on the first hand-out; more after a crash or release."""


class HandlerError(Exception):
    """The handler gave up on an item; the item goes to the dead letters with this message."""


class Interrupted(BaseException):
    """The worker is stopping before the handler finished; the item goes back to its queue.

    A BaseException, like KeyboardInterrupt: a second stop signal raises it wherever the handler
    is, and an ``except Exception`` there (a handler's own, or logging's while a line is flushed)
    must not swallow it and let the handler run on.
    """


Handler = Callable[[Delivery], None]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-USM-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _log_handler(delivery: Delivery) -> None:
    log.info(
        "item %s %s %s for %s: %s/%s (delivery %d)",
        delivery.id,
        delivery.decision.call_type,
        delivery.priority,
        delivery.team,
        delivery.source,
        delivery.external_id,
        delivery.delivery,
    )


_RETRYABLE = {408, 425, 429}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: the 3xx surfaces as an :class:`urllib.error.HTTPError`.

    urllib would follow 301/302/303 as a body-less GET carrying our signed headers to wherever
    ``Location`` points (say, a cloud metadata address), then report success: the payload was
    never delivered and the signature went elsewhere. Only a 2xx from the configured URL counts.
    """

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _webhook(spec: WebhookHandler, team: str, stop: threading.Event) -> Handler:
    secret: bytes | None = None
    if spec.secret_env:
        value = os.environ.get(spec.secret_env)
        if not value:
            raise HandlerError(
                f"team '{team}': webhook secret variable {spec.secret_env} is not set"
            )
        secret = value.encode()
    else:
        log.warning("team '%s': webhook %s is not signed (no secret_env)", team, spec.url)
    encoder = msgspec.json.Encoder()

    def post(delivery: Delivery) -> None:
        body = encoder.encode(delivery)
        attempts = spec.retries + 1
        last = ""
        for attempt in range(attempts):
            if attempt:
                delay = spec.backoff * 2 ** (attempt - 1)
                if stop.wait(delay):
                    raise Interrupted(f"stopping during back-off before attempt {attempt + 1}")
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "usm-dispatch-worker",
                "Idempotency-Key": delivery.id,
                TIMESTAMP_HEADER: ts,
                "X-USM-Delivery": f"{delivery.delivery}.{attempt + 1}",
            }
            if secret is not None:
                headers[SIGNATURE_HEADER] = sign(secret, ts, body)
            request = urllib.request.Request(spec.url, data=body, headers=headers, method="POST")
            try:
                with _OPENER.open(request, timeout=spec.timeout) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} from {spec.url}"
                if 300 <= exc.code < 400:
                    where = exc.headers.get("Location", "") if exc.headers else ""
                    last += f" (redirect to {where or '?'} not followed)"
                if 400 <= exc.code < 500 and exc.code not in _RETRYABLE:
                    raise HandlerError(f"{last}: not retried") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__} posting to {spec.url}: {exc}"
            log.warning(
                "item %s: webhook attempt %d/%d failed: %s",
                delivery.id,
                attempt + 1,
                attempts,
                last,
            )
        raise HandlerError(f"webhook failed after {attempts} attempts: {last}")

    return post


def _python(spec: PythonHandler, team: str, allowed: PythonHandlers) -> Handler:
    # Checked before the import: importing is what runs a module's code.
    if not allowed.allows(spec.target):
        raise HandlerError(f"team '{team}': {allowed.refusal(spec.target)}")
    module_name, _, attr = spec.target.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise HandlerError(f"team '{team}': cannot import handler {spec.target}: {exc}") from None
    if not callable(target):
        raise HandlerError(f"team '{team}': handler {spec.target} is not callable")
    handler: Handler = target
    return handler


def build_handler(team: Team, stop: threading.Event, python_handlers: PythonHandlers) -> Handler:
    """The callable that handles ``team``'s items; :class:`HandlerError` if misconfigured.

    A ``python`` handler runs only when ``python_handlers`` (the deployment's allow-list, never
    the tables) covers its target.
    """
    spec = team.handler
    if isinstance(spec, WebhookHandler):
        return _webhook(spec, team.name, stop)
    if isinstance(spec, PythonHandler):
        return _python(spec, team.name, python_handlers)
    assert isinstance(spec, LogHandler)
    return _log_handler
