"""The search protocol, the page guard, and the one HTTP ``fetch`` the searches share.

:class:`ToolSearch` is the frame of every search: it builds the :class:`Query` a search's pages
are asked with (the source's credential sent as its write-back adapter sends it); the tool's
module only knows its URLs, parameters and answers.

Paging must end and must not skip: each module orders its search by a key the ticket never
changes (its id or creation) so a ticket updated while the sync pages can only appear twice
(harmless: applying a ticket is idempotent), never push another one off a page. A search
that does not end within :data:`MAX_PAGES` pages, or whose tool hands back the same page
token twice, fails: the sync then keeps its last mark, so the next run starts from the same
place and nothing is skipped.
"""

from __future__ import annotations

import importlib
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from service.core.decision import Decision
from service.core.sources import ADAPTERS, WriteBackSettings
from service.errors import NotFound
from service.sources.writeback.base import HttpRequest, adapter

__all__ = [
    "MAX_PAGES",
    "PAGE_SIZE",
    "Fetch",
    "Query",
    "SearchFailed",
    "ToolSearch",
    "api_headers",
    "fetch",
    "finder",
]

PAGE_SIZE = 100
"""Tickets asked for per page (every tool here allows at least 100)."""

MAX_PAGES = 10_000
"""Pages one sync reads at most (a million tickets at 100 a page): a tool whose paging never
ends is an error, never an endless loop."""

MAX_ANSWER = 64 << 20
"""Bytes of one search answer read at most."""

Fetch = Callable[[HttpRequest], bytes]
"""Sends one request and returns the answer's body; raises :class:`SearchFailed` (or
``OSError``) for anything but a 2xx answer."""


class SearchFailed(OSError):
    """The tool refused a search request or answered something that is not a page."""

    def __init__(self, message: str, status: int | None = None, answer: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        """The HTTP status of a refusal."""
        self.answer = answer
        """The start of the refusal's body (tools name the error there)."""


def finder(adapter: str) -> ToolSearch:
    """The search for the write-back ``adapter``: ``service.sources.search.<adapter>.SEARCH``.

    Raises:
        NotFound: no search for that adapter.
    """
    if adapter not in ADAPTERS:
        raise NotFound(f"unknown write-back adapter '{adapter}'; allowed: {', '.join(ADAPTERS)}")
    module = importlib.import_module(f"service.sources.search.{adapter}")
    found: ToolSearch = module.SEARCH
    return found


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a login page redirect is a refusal, never a page of tickets


_OPENER = urllib.request.build_opener(_NoRedirect())


def fetch(timeout: float) -> Fetch:
    """A :data:`Fetch` over the network (stdlib, no redirects) with ``timeout`` seconds."""

    def send(request: HttpRequest) -> bytes:
        req = urllib.request.Request(
            request.url,
            data=request.body or None,
            headers=request.headers,
            method=request.method,
        )
        try:
            with _OPENER.open(req, timeout=timeout) as resp:
                return bytes(resp.read(MAX_ANSWER))
        except urllib.error.HTTPError as exc:
            answer = exc.read(2000) if exc.fp is not None else b""
            raise SearchFailed(
                f"{request.method} {request.url} answered {exc.code}", exc.code, answer
            ) from None

    return send


def get_json(fetch: Fetch, request: HttpRequest) -> Any:
    """The request's answer, decoded; :class:`SearchFailed` when it is not JSON."""
    body = fetch(request)
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise SearchFailed(f"{request.method} {request.url} answered no JSON") from None


def page_guard() -> Iterator[int]:
    """Page numbers 0, 1, ... up to :data:`MAX_PAGES`; raises :class:`SearchFailed` beyond."""
    yield from range(MAX_PAGES)
    raise SearchFailed(f"the search did not end after {MAX_PAGES} pages")


def api_headers(settings: WriteBackSettings, token: str | None) -> dict[str, str]:
    """``Accept: application/json`` and the source's credential, sent the way its write-back
    adapter sends it."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = adapter(settings.adapter).authorization(token)
    return headers


@dataclass(frozen=True, slots=True)
class Query:
    """One search: what each of its page requests needs."""

    fetch: Fetch
    settings: WriteBackSettings
    token: str | None
    """The source's API credential (``USM_SOURCE_<NAME>_TOKEN``)."""
    headers: dict[str, str]
    """What every request carries: ``Accept`` and the credential (:func:`api_headers`)."""
    since: datetime
    """Tickets updated at or after this moment."""
    page_size: int

    def get(self, url: str, params: Mapping[str, str | int] | None = None) -> Any:
        """``GET url?params`` with :attr:`headers`, its JSON answer decoded."""
        full = f"{url}?{urllib.parse.urlencode(params)}" if params else url
        return get_json(self.fetch, HttpRequest(method="GET", url=full, headers=self.headers))


class ToolSearch(ABC):
    """One tool's search for tickets updated since a moment.

    A module names its URLs, parameters and answers in :meth:`found`; :meth:`tickets` hands
    it the :class:`Query` its requests are sent with.
    """

    def tickets(
        self,
        fetch: Fetch,
        settings: WriteBackSettings,
        token: str | None,
        since: datetime,
        now: datetime,
        page_size: int = PAGE_SIZE,
    ) -> Iterator[Any]:
        """Every ticket updated at or after ``since``, each in the tool's webhook payload form."""
        headers = self.headers(settings, token)
        return self.found(Query(fetch, settings, token, headers, since, page_size))

    def headers(self, settings: WriteBackSettings, token: str | None) -> dict[str, str]:
        """What every request carries; the credential sent the way the write-back sends it."""
        return api_headers(settings, token)

    @abstractmethod
    def found(self, query: Query) -> Iterator[Any]:
        """The tickets ``query`` finds, page by page, as the tool's webhook sends them."""

    @abstractmethod
    def shows(self, payload: Any, decision: Decision, settings: WriteBackSettings) -> bool:
        """Whether the ticket in ``payload`` already shows ``decision`` (no write-back needed)."""
