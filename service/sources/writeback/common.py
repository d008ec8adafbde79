"""What the tools' write-backs share: one JSON request carrying the decision in named fields.

Every adapter but GLPI's sends one request (``PUT``/``PATCH`` of the ticket) whose JSON body is
the decision in the tool's field names, with JSON headers and the source's credential; GLPI wraps
the same body in a session. :class:`ToolAdapter` holds that once; a tool's module says only what
differs: the path, the method, the date forms, the field defaults and how its values look.

Fields (``[source.writeback.fields]``): each key names the tool field that receives one value;
an adapter's :attr:`~ToolAdapter.defaults` fill in a key the source leaves out, and ``""``
switches a field off.

- ``priority``: the tool's own priority from ``[source.writeback.priority]``;
- ``usm_priority``: our priority name (``P2``);
- ``due``: the resolve-by target in the tool's due-date form;
- ``resolve_by`` / ``response_by``: the targets as date-times;
- ``missed``: the targets missed so far (``response, resolve``; cleared when none).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import quote

import msgspec

from service.core.decision import Decision
from service.core.sources import WriteBackSettings
from service.core.targets import Target
from service.sources.writeback.auth import basic, is_basic
from service.sources.writeback.base import HttpRequest, missed_field, tool_priority

__all__ = ["JSON_HEADERS", "ToolAdapter", "number", "segment"]

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

_INTEGER = re.compile(r"^-?[0-9]+$")

PLAIN_MOMENT = "%Y-%m-%d %H:%M:%S"
"""The date-time form most tools' APIs read (RT's REST2 reads no other on PUT)."""

VALUES = ("usm_priority", "due", "resolve_by", "response_by")
"""The settings that name a field for a value of the decision itself (not the priority map)."""


@lru_cache(maxsize=256)
def number(value: str) -> int | str:
    """A tool value written as a JSON number when it is one (``"90"`` -> ``90``)."""
    return int(value) if _INTEGER.match(value) else value


def segment(text: str) -> str:
    """``text`` as one URL path segment: a ticket id never reaches another path or a query."""
    return quote(text, safe="")


_NAMED: dict[tuple[int, int], tuple[WriteBackSettings, str, tuple[tuple[str, str], ...]]] = {}
"""(adapter, settings) -> what :meth:`ToolAdapter._named` found; the entry keeps the settings,
so their id is not reused while it lives."""


class ToolAdapter:
    """One JSON request with the decision in the tool's fields; override what differs."""

    method: ClassVar[str] = "PUT"
    moment: ClassVar[str] = PLAIN_MOMENT
    """``strftime`` form of the tool's date-times, written in UTC."""
    api_token: ClassVar[str] = "Bearer {}"
    """``Authorization`` of an API token; a ``user:password`` token is always basic auth."""
    defaults: ClassVar[Mapping[str, str]] = {}
    """The tool field of each setting the source leaves out; absent: not written."""
    cleared: ClassVar[str | None] = ""
    """What the missed-targets field is set to when none is missed (``None``: JSON null)."""
    carries_missed: ClassVar[bool] = True
    to_the_second: ClassVar[bool] = True
    """Whether :meth:`answer` reads the decision's targets only as instants to the whole second
    (:attr:`moment` and :meth:`due` write no fraction, in UTC): then two decisions of one scoring
    input whose targets fall in the same seconds get the same answer, and the event route reuses
    it (:mod:`service.sources.answers`). An adapter that reads more must set it False."""

    def path(self, ticket_id: str, settings: WriteBackSettings) -> str:
        """The ticket's API path below the base URL, starting with ``/``."""
        raise NotImplementedError

    def when(self, moment: datetime) -> str:
        """A date-time as the tool reads it."""
        utc = moment.astimezone(UTC)
        if self.moment == PLAIN_MOMENT and utc.year >= 1000:
            # strftime's result by %-formatting, at a quarter of its cost: every event's answer
            # carries a date (strftime writes years below 1000 unpadded, so those take it).
            return "%04d-%02d-%02d %02d:%02d:%02d" % (  # noqa: UP031
                utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second,
            )  # fmt: skip
        return utc.strftime(self.moment)

    def due(self, moment: datetime) -> Any:
        """The resolve-by target in the tool's due-date field."""
        return self.when(moment)

    def priority(self, value: str, field: str) -> Any:
        """The tool's priority value as its API takes it in ``field``."""
        return value

    def field(self, settings: WriteBackSettings, key: str) -> str:
        """The tool field setting ``key`` names (``""``: none)."""
        return settings.fields.get(key, self.defaults.get(key, ""))

    def fields(
        self, decision: Decision, settings: WriteBackSettings, missed: tuple[Target, ...] | None
    ) -> dict[str, Any]:
        """The decision in the tool's fields, each one only where a setting names it."""
        out: dict[str, Any] = {}
        to, named = self._named(settings)
        priority = tool_priority(decision, settings)
        if to and priority is not None:
            out[to] = self.priority(priority, to)
        for key, to in named:  # formatted only when named: an event's answer is on the request path
            out[to] = self._value(key, decision)
        flag = missed_field(settings, missed) if self.carries_missed else None
        if flag is not None:
            out[flag[0]] = flag[1] or self.cleared
        return out

    def _named(self, settings: WriteBackSettings) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The priority's tool field and the named (value setting, tool field) pairs, looked up
        once per source's settings: an event's answer asks on every event."""
        hit = _NAMED.get((id(self), id(settings)))
        if hit is None or hit[0] is not settings:
            named = tuple((key, to) for key in VALUES if (to := self.field(settings, key)))
            if len(_NAMED) >= 256:
                _NAMED.clear()
            hit = _NAMED[(id(self), id(settings))] = (
                settings,
                self.field(settings, "priority"),
                named,
            )
        return hit[1], hit[2]

    def _value(self, key: str, decision: Decision) -> Any:
        """The decision's value for setting ``key`` (one of :data:`VALUES`)."""
        if key == "usm_priority":
            return decision.priority.name
        if key == "due":
            return self.due(decision.resolve_by)
        return self.when(decision.resolve_by if key == "resolve_by" else decision.response_by)

    def answer(
        self,
        decision: Decision,
        settings: WriteBackSettings,
        missed: tuple[Target, ...] | None = None,
    ) -> dict[str, Any]:
        """The body of the tool's update (and of the event's answer)."""
        return self.fields(decision, settings, missed)

    def authorization(self, token: str) -> str:
        return basic(token) if is_basic(token) else self.api_token.format(token)

    def headers(self, token: str | None) -> dict[str, str]:
        headers = dict(JSON_HEADERS)
        if token:
            headers["Authorization"] = self.authorization(token)
        return headers

    def requests(
        self,
        ticket_id: str,
        decision: Decision,
        settings: WriteBackSettings,
        token: str | None,
        missed: tuple[Target, ...] | None = None,
    ) -> list[HttpRequest]:
        """The one update request: absolute values, so the sender may repeat it."""
        url = settings.base_url.rstrip("/") + self.path(ticket_id, settings)
        body = msgspec.json.encode(self.answer(decision, settings, missed))
        return [HttpRequest(method=self.method, url=url, headers=self.headers(token), body=body)]
