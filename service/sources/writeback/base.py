"""The write-back adapter protocol: a decision in, the tool's HTTP requests out. No I/O.

An adapter lives in ``service/sources/writeback/<name>.py`` and exposes ``ADAPTER``; the module
name is the ``adapter`` a source names in ``sources.toml``, so adding a tool touches no registry.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import msgspec

from service.core.base import Base
from service.core.decision import Decision
from service.core.sources import ADAPTERS, WriteBackSettings
from service.core.targets import Target, render_missed
from service.errors import NotFound

__all__ = [
    "MISSED",
    "HttpRequest",
    "WriteBack",
    "adapter",
    "capture",
    "fill",
    "missed_field",
    "tool_priority",
]

MISSED = "missed"
"""The ``[source.writeback.fields]`` key naming the tool field that shows the missed targets."""


class HttpRequest(Base):
    """One request to the tool's API, exactly as it goes on the wire."""

    method: str
    url: str
    headers: dict[str, str] = {}
    body: bytes = b""
    capture: dict[str, str] = {}
    """Values this request's JSON answer hands to the next requests: variable -> top-level key.

    For tools whose API works in sessions (GLPI's ``initSession`` answers a ``session_token``):
    the builder stays pure, the sender runs :func:`capture` on the answer and :func:`fill` on
    each later request, whose header values name the variable as ``{variable}``."""
    closes: bool = False
    """Ends the session an earlier request opened (GLPI's ``killSession``): once a session is
    open it is sent even when the write-back stops early (superseded, or a request failed), so
    no session is left open on the tool's side."""


class WriteBack(Protocol):
    """Builds the requests that make the tool show ``decision`` on ticket ``ticket_id``."""

    carries_missed: bool
    """Whether the tool has a field for the missed targets (``fields.missed``)."""

    def requests(
        self,
        ticket_id: str,
        decision: Decision,
        settings: WriteBackSettings,
        token: str | None,
        missed: tuple[Target, ...] | None = None,
    ) -> list[HttpRequest]:
        """The requests, in order. ``token`` is the source's API credential (never in tables).

        ``missed``: the decision's targets missed so far (None: unknown, the field is left
        alone). Requests must be idempotent (PUT/PATCH of absolute values): the sender may
        repeat them.
        """
        ...

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """The decision as the tool's own fields, returned in the inbound event's answer so the
        tool (an RT scrip, a Jira automation) can apply it in the same request."""
        ...

    def authorization(self, token: str) -> str:
        """The ``Authorization`` header value for the source's API credential (also used by
        the reconciliation's searches: one place per tool says how its API takes a token)."""
        ...


def adapter(name: str) -> WriteBack:
    """The adapter called ``name``: ``service.sources.writeback.<name>.ADAPTER``.

    Raises:
        NotFound: ``name`` is not one of :data:`~service.core.sources.ADAPTERS` (or not built yet).
    """
    if name not in ADAPTERS:
        raise NotFound(f"unknown write-back adapter '{name}'; allowed: {', '.join(ADAPTERS)}")
    try:
        module = importlib.import_module(f"service.sources.writeback.{name}")
    except ModuleNotFoundError:
        raise NotFound(f"write-back adapter '{name}' is not available in this build") from None
    found: WriteBack = module.ADAPTER
    return found


def capture(request: HttpRequest, body: bytes) -> dict[str, str]:
    """The variables ``request.capture`` takes from its answer ``body`` (a JSON object).

    Raises:
        ValueError: the answer is not a JSON object or lacks a key, or the value is not a
            non-empty string or number: the attempt failed and is retried.
    """
    if not request.capture:
        return {}
    try:
        answer = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ValueError(f"{request.method} {request.url} answered no JSON") from None
    found: dict[str, str] = {}
    for variable, key in request.capture.items():
        value = answer.get(key) if isinstance(answer, dict) else None
        if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
            raise ValueError(f"{request.method} {request.url} answered no `{key}`")
        found[variable] = str(value)
    return found


def fill(request: HttpRequest, variables: dict[str, str]) -> HttpRequest:
    """``request`` with ``{variable}`` in its header values replaced by captured values.

    Only header values are filled (never the URL or body, where braces are data); a value naming
    a variable nothing captured is sent as it is and the tool refuses it.
    """
    if not variables:
        return request
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        filled = value
        for variable, captured in variables.items():
            filled = filled.replace("{" + variable + "}", captured)
        headers[name] = filled
    return msgspec.structs.replace(request, headers=headers)


def tool_priority(decision: Decision, settings: WriteBackSettings) -> str | None:
    """The tool's own priority value for the decision's priority, when the source maps them."""
    return settings.priority.get(decision.priority.name)


def missed_field(
    settings: WriteBackSettings, missed: tuple[Target, ...] | None
) -> tuple[str, str] | None:
    """``(tool field, text)`` for the missed targets, when the source names a field for them
    and they are known; the text is ``""`` when none is missed (a re-score can clear it)."""
    name = settings.fields.get(MISSED)
    if not name or missed is None:
        return None
    return name, render_missed(missed)
