"""``POST /v1/sources/{source}/events``: a ticketing tool's own payload in, the decision out.

Authentication is the source's own scheme (:mod:`service.sources.signatures`: a signature over the
raw body, or a bearer token / basic auth), not an API key: the tool holds no usm key, and the
signature needs the body exactly as sent, so the route takes litestar's raw ``body`` and decodes it
itself.
Order of refusals: unknown source 404, bad signature 401, malformed JSON 400, unmapped field or
value 422 (the tool's field path), Redis down 503; nothing is written before all checks pass.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from time import perf_counter
from typing import Any, NamedTuple

import anyio.to_thread
import msgspec
import redis
from litestar import Controller, Litestar, Request, post
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.exceptions import ClientException
from litestar.params import FromPath
from litestar.plugins import InitPluginProtocol

from service.api.queues import problems, table_store
from service.connection import connect
from service.core.calls import Call
from service.core.decision import Decision
from service.core.mapping import SourceEvent, map_event, reported_time
from service.core.scoring import Scorer
from service.core.sources import Source
from service.core.tables import TableSet
from service.dispatch.store import ItemStore
from service.errors import NotFound, QueueUnavailable, SignatureRefused
from service.files.loader import LoadedSet
from service.files.store import TableStore
from service.governance.decision_log import DecisionLog
from service.governance.event_log import EventLog
from service.metrics.decisions import record_decision
from service.metrics.sources import record_event
from service.settings import Settings
from service.sources.answers import EventPrototype, times_of
from service.sources.inbound import Action, SourceAnswer, handle_event
from service.sources.outbox import Outbox, Revision, Sender
from service.sources.reading import reader
from service.sources.secrets import SecretCache
from service.sources.signatures import HEADERS, SCHEMES, accepts_as_signed, read_headers, verify
from service.sources.triggers import write_back
from service.sources.watch import TargetWatch

__all__ = [
    "SourceEventRoute",
    "SourcesController",
    "SourcesPlugin",
    "find_source",
    "source_routes",
]

log = logging.getLogger("usm.sources")


def find_source(sources: list[Source], name: str) -> Source:
    """The source called ``name``; 404 naming the configured ones."""
    found = _by_name(sources).get(name)
    if found is not None:
        return found
    known = ", ".join(s.name for s in sources) or "none configured"
    raise NotFound(f"unknown source '{name}'; configured: {known}")


_NAMES: dict[int, tuple[list[Source], dict[str, Source]]] = {}


def _by_name(sources: list[Source]) -> dict[str, Source]:
    """A set's sources by name, built once per set (the entry keeps the list, so its id is not
    reused while cached; a few sets per process, cleared when many reloads made more)."""
    hit = _NAMES.get(id(sources))
    if hit is None or hit[0] is not sources:
        if len(_NAMES) >= 64:
            _NAMES.clear()
        hit = _NAMES[id(sources)] = (sources, {s.name: s for s in reversed(sources)})
    return hit[1]


def _authenticate(
    source: Source, request: Request[Any, Any, Any], body: bytes, secrets: SecretCache
) -> None:
    scheme = SCHEMES[source.signature]
    secret = secrets.get(source.name).secret
    if not secret:
        log.warning(
            "source %s has no secret: set USM_SOURCE_%s_SECRET; refusing its events",
            source.name,
            source.name.upper(),
        )
        raise SignatureRefused(
            f"source '{source.name}' has no secret configured on the usm side", HEADERS[scheme]
        )
    verify(scheme, secret, read_headers(scheme, request.scope["headers"]), body)


class SourcesController(Controller):
    path = "/v1/sources"
    tags = ["sources"]

    @post(
        "/{source:str}/events",
        status_code=200,
        summary="A ticketing tool's event, in the tool's own JSON",
        responses=problems(400, 404, 422, 503),
    )
    async def event(self, source: FromPath[str], request: Request[Any, Any, Any]) -> SourceAnswer:
        """Score the ticket, queue or move or end its item, and answer with the decision.

        The answer's ``fields`` hold the decision in the tool's own field names, for the tool
        to apply in the same request (an RT scrip, a Jira automation's web response).
        """
        # The body and state from the request itself: each further handler parameter costs
        # litestar's kwargs model and signature model a step per request.
        body = await request.body()
        state = request.app.state
        now = datetime.now(UTC)
        tables = table_store(state)
        active = tables.active(now).tables
        known = source in _by_name(active.sources.source)
        try:
            found = find_source(active.sources.source, source)
            _authenticate(found, request, body, state.source_secrets)
            try:
                payload = msgspec.json.decode(body)
            except msgspec.DecodeError as exc:
                raise ClientException(
                    f"JSON is malformed: {exc} - at `$`; allowed: the tool's JSON object"
                ) from None
            recorder = state.get("event_log")
            if recorder is not None:  # as sent, for replaying a changed mapping (422s too)
                recorder.append(found.name, body, now)
            event = map_event(found, payload)
            started = perf_counter()
            store = state.get("items") if found.queue else None
            if store is None:
                # Scoring only (no Redis): answered on the loop, like POST /v1/priority.
                answer, scored, revision = handle_event(found, event, tables.scorer(now), None, now)
            else:
                answer, scored, revision = await anyio.to_thread.run_sync(
                    handle_event, found, event, tables.scorer(now), store, now
                )
        except Exception as exc:
            record_event(source, _reason(exc), known)
            raise
        handled = (answer, scored, revision)
        _accepted(state, found, active, event, handled, started, state.get("decision_log"))
        return answer


def _accepted(
    state: State,
    source: Source,
    tables: TableSet,
    event: SourceEvent,
    handled: tuple[SourceAnswer, Call | None, int | None],
    started: float,
    decision_log: DecisionLog | None,
) -> None:
    """What follows an accepted event, on either path: counts, the decision log, write-back."""
    answer, scored, revision = handled
    record_event(source.name, answer.action.value)
    if scored is not None and answer.decision is not None:
        record_decision(answer.decision, perf_counter() - started)
        if decision_log is not None:
            decision_log.append(scored, answer.decision)
        stored = (
            Revision(answer.item_id, revision)
            if answer.item_id is not None and revision is not None
            else None
        )
        _write_back_event(state, source, event.ticket_id, answer.decision, tables, stored)


_encode_answer = msgspec.json.Encoder().encode


class _Ready(NamedTuple):
    """An event the fast route checked, mapped and scored; nothing recorded yet."""

    source: Source
    tables: TableSet
    event: SourceEvent
    handled: tuple[SourceAnswer, Call | None, int | None]
    body: bytes
    now: datetime
    started: float


class _Remembered(NamedTuple):
    """An event whose mapped input has a prototype: the answer is joined from its bytes."""

    source: Source
    tables: TableSet
    prototype: EventPrototype
    ticket_id: str
    reported: datetime | None
    times: bytes
    """The decision's timestamps, encoded (:func:`times_of`)."""
    body: bytes
    now: datetime
    started: float


class _Context:
    """What the fast route keeps per loaded table set: the source (None: not configured there),
    its reader and the prototypes of its mapped inputs (:mod:`service.sources.answers`)."""

    __slots__ = ("loaded", "prototypes", "read", "scheme", "source")

    def __init__(self, loaded: LoadedSet, name: str) -> None:
        self.loaded = loaded
        """Kept, so that its id is not reused while this lives."""
        self.source = _by_name(loaded.tables.sources.source).get(name)
        self.scheme = SCHEMES[self.source.signature] if self.source is not None else None
        self.read = reader(self.source)[0] if self.source is not None else None
        self.prototypes: dict[tuple[Any, ...], EventPrototype] = {}
        """By the mapped values (:data:`~service.sources.reading.Read`); emptied when full."""


_PROTOTYPES_KEPT = 4096
"""Distinct mapped inputs remembered per source and table set (as the mapper's own memo)."""


class SourceEventRoute:
    """``POST /v1/sources/<name>/events`` of one source for :mod:`service.api.fast`.

    Serves only events it is sure of, and records nothing before all checks passed: a
    configured source that only scores (``queue = false``, or no Redis: item writes stay with
    the route above, in a worker thread), a valid signature, a JSON body, a mapping that reads
    it and a call that scores. Every refusal (404, 401, 400, 422) and every other event is the
    route above's, which counts it and keeps its body in the event log; what this serves gets
    the same records (event log, event and decision counts, decision log, write-back) and the
    same answer, byte for byte.

    The first event of each distinct mapped input (per table set) takes the route above's steps
    (map, score, answer) and leaves an :class:`EventPrototype`; the next ones are answered from
    it: read (:func:`~service.sources.reading.reader`), look up, join.
    """

    method = "POST"
    template = "/v1/sources/{source}/events"

    def __init__(self, state: State, name: str) -> None:
        self.state = state
        self.name = name
        self.paths: tuple[str, ...] = (f"/v1/sources/{name}/events",)
        self.secrets: SecretCache = state.source_secrets
        # Objects that live as long as the app (a reload changes the store's sets, not the
        # store), read once: each look-up in litestar's State is a few calls.
        self.tables: TableStore = state.tables
        self.event_log: EventLog | None = state.get("event_log")
        self.decision_log: DecisionLog | None = state.get("decision_log")
        self._contexts: dict[int, _Context] = {}

    def _context(self, loaded: LoadedSet) -> _Context:
        found = self._contexts.get(id(loaded))
        if found is None or found.loaded is not loaded:
            if len(self._contexts) >= 16:  # a few sets per process; reloads make new ones
                self._contexts.clear()
            found = self._contexts[id(loaded)] = _Context(loaded, self.name)
        return found

    def parse(
        self, body: bytes, query: bytes, headers: Iterable[tuple[bytes, bytes]]
    ) -> _Ready | _Remembered | None:
        """The checked, mapped and scored event, or None (the route above answers). The query
        string is not read, as above. Raises only what the fast path passes on as well."""
        return self.parse_at(body, headers, datetime.now(UTC))

    def parse_at(
        self, body: bytes, headers: Iterable[tuple[bytes, bytes]], now: datetime
    ) -> _Ready | _Remembered | None:
        """:meth:`parse` of an event received at ``now`` (UTC)."""
        loaded = self.tables.active(now)
        context = self._context(loaded)
        found = context.source
        if found is None or (found.queue and self.state.get("items") is not None):
            return None
        secret = self.secrets.get(found.name).secret
        if not secret:
            return None
        scheme = context.scheme
        assert scheme is not None and context.read is not None
        if not accepts_as_signed(scheme, secret, headers):
            verify(scheme, secret, read_headers(scheme, headers), body)
        payload = msgspec.json.decode(body)
        ticket_id, _, values, raw_reported = context.read(payload)
        prototype = context.prototypes.get(values) if values is not None else None
        if prototype is not None:
            reported = reported_time(found.reported_at, raw_reported) if found.reported_at else None
            if reported is None or reported.tzinfo is not None:  # naive: the mapper refuses it
                started = perf_counter()
                at = now if reported is None else reported
                times = times_of(prototype, at)  # OverflowError near year 9999: the route above
                return _Remembered(
                    found, loaded.tables, prototype, ticket_id, reported, times, body, now, started
                )
        event = map_event(found, payload)
        started = perf_counter()
        scorer = self.tables.scorer(now)
        handled = handle_event(found, event, scorer, None, now)
        same = scorer.version == loaded.version and scorer.table_hash == loaded.hash
        if values is not None and event.call is not None and same:  # the set the answer is of
            self._remember(context, values, event.call, scorer)
        return _Ready(found, loaded.tables, event, handled, body, now, started)

    def _remember(
        self, context: _Context, values: tuple[Any, ...], call: Call, scorer: Scorer
    ) -> None:
        """A prototype for the mapped input ``values``, whose event just scored as ``call``."""
        assert context.source is not None
        call = msgspec.structs.replace(call, reported_at=None)
        prototype = EventPrototype(
            context.source, call, scorer.resolved(call), scorer.version, scorer.table_hash
        )
        if len(context.prototypes) >= _PROTOTYPES_KEPT:
            context.prototypes.clear()
        context.prototypes[values] = prototype

    def answer(self, parsed: _Ready | _Remembered, scope: Any = None) -> tuple[bytes, bytes]:
        """Record the event as the route above does, and the answer's JSON."""
        if isinstance(parsed, _Remembered):
            return b"application/json", self._answer_remembered(parsed)
        encoded = _encode_answer(parsed.handled[0])  # first: nothing may fail once recorded
        if self.event_log is not None:
            self.event_log.append(parsed.source.name, parsed.body, parsed.now)
        ready = parsed
        _accepted(
            self.state,
            ready.source,
            ready.tables,
            ready.event,
            ready.handled,
            ready.started,
            self.decision_log,
        )
        return b"application/json", encoded

    def _answer_remembered(self, parsed: _Remembered) -> bytes:
        """:meth:`answer` joined from the prototype: the same bytes and records as the steps
        of :class:`_Ready` give (``handle_event``'s answer, ``_accepted``'s records)."""
        p, times, reported = parsed.prototype, parsed.times, parsed.reported
        at = parsed.now if reported is None else reported
        # First what may fail (nothing may once recorded): the answer's bytes.
        fields = p.fields_json(times, reported, at)
        body = b"".join(
            (
                p.head,
                _encode_answer(parsed.ticket_id),
                p.opening,
                times[1:-1],
                p.closing,
                fields,
                b"}",
            )
        )
        # The reported time as msgspec wrote it; isoformat writes UTC as +00:00, not Z.
        stop = times.index(b'"', _TIME_TEXT)
        if at.tzinfo is UTC:
            iso = times[_TIME_TEXT : stop - 1] + b"+00:00"
        else:
            iso = at.isoformat().encode()
        source = parsed.source
        if self.event_log is not None:  # the time received: now, whatever the tool reported
            received = iso.decode() if reported is None else parsed.now.isoformat()
            self.event_log.append_at(source.name, parsed.body, received)
        record_event(source.name, Action.SCORED.value)
        record_decision(p.decision, perf_counter() - parsed.started)
        if self.decision_log is not None:  # the call's JSON and its row, as _encoded writes
            own = (
                p.call_now
                if reported is None
                else p.call_head + times[_TIME_TEXT - 1 : stop + 1] + b"}"
            )
            self.decision_log.append_encoded(own, p.log + b'"' + iso + b'"]')
        writeback = source.writeback
        if writeback is not None and writeback.events:
            decision = p.decision_at(at)
            _write_back_event(self.state, source, parsed.ticket_id, decision, parsed.tables, None)
        return body


_TIME_TEXT = len(b'{"reported_at":"')
"""Where the reported time's text starts in an encoded :class:`~service.core.encoded.Times`."""


def source_routes(state: State) -> list[SourceEventRoute]:
    """A fast route per source of the loaded table sets (a source a later reload adds is
    served by the route above)."""
    tables = table_store(state)
    names = {s.name for loaded in tables.versions.sets for s in loaded.tables.sources.source}
    return [SourceEventRoute(state, name) for name in sorted(names)]


def _write_back_event(
    state: State,
    source: Source,
    ticket_id: str,
    decision: Decision,
    tables: TableSet,
    revision: Revision | None,
) -> None:
    """With ``events = true``, the event's new decision goes to the outbox as well.

    The item is already stored, so a Redis error here is logged, not answered: refusing now would
    make the tool resend an event that then changes nothing and writes nothing.
    """
    if source.writeback is None or not source.writeback.events:
        return
    outbox: Outbox | None = state.get("outbox")
    if outbox is None:
        return
    try:
        write_back(outbox, tables, source.name, ticket_id, decision, revision)
    except redis.RedisError as exc:
        log.warning("write-back of %s:%s not queued: %s", source.name, ticket_id, exc)


def _reason(exc: Exception) -> str:
    """A short, bounded label for a refusal (metrics labels must not grow without bound)."""
    status = getattr(exc, "status_code", 500)
    return {
        400: "malformed",
        401: "signature",
        404: "unknown_source",
        422: "unmapped",
        503: "unavailable",
    }.get(status, "error")


class SourcesPlugin(InitPluginProtocol):
    """The source event route and, while the app runs, the write-back sender and the target
    watch."""

    def __init__(self, settings: Settings, store: TableStore) -> None:
        self.settings = settings
        self.store = store
        self.outbox: Outbox | None = None

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        app_config.route_handlers.append(SourcesController)
        app_config.state["source_secrets"] = SecretCache()
        app_config.lifespan.append(self.lifespan)
        return app_config

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Litestar) -> AsyncIterator[None]:
        """Run the target watch and the sender every ``USM_WRITEBACK_SECONDS`` while the app
        serves (needs Redis). The watch runs first, so a write-back it queues goes in the same
        tick.

        A plain thread, not a task: delivery is blocking I/O (Redis, the tools' APIs), and a
        thread stops at its next tick without any cancellation reaching into a request.
        """
        if not self.settings.redis_url:
            yield
            return
        conn = connect(self.settings.redis_url, timeout=5.0, connect_timeout=1.0)
        self.outbox = Outbox(conn, done_ttl=self.settings.result_ttl_seconds)
        app.state["outbox"] = self.outbox
        items = ItemStore(conn)

        def tables() -> TableSet:
            return self.store.active(datetime.now(UTC)).tables

        sender = Sender(self.outbox, tables, items=items)
        watch = TargetWatch(conn, items, tables)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._send_until,
            args=(watch, sender, stop),
            name="write-back sender",
            daemon=True,
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            await anyio.to_thread.run_sync(thread.join, 30.0)
            app.state["outbox"] = None
            conn.close()

    def _send_until(self, watch: TargetWatch, sender: Sender, stop: threading.Event) -> None:
        failing = False
        while not stop.is_set():
            busy = 0
            try:
                watch.run_once()
                busy = sender.run_once()
                failing = False
            except (redis.RedisError, QueueUnavailable) as exc:
                if not failing:  # once per outage, not once per tick
                    log.warning("write-back sender cannot reach Redis: %s", exc)
                failing = True
            except Exception:
                log.exception("write-back sender failed; retrying")
            if not busy:
                stop.wait(self.settings.writeback_seconds)
