"""Reconciliation searches: each tool's "tickets changed since" API, one module per adapter.

``usm sources sync <source>`` (:mod:`service.sources.sync`) asks the tool for every ticket
updated since the last sync and runs each through the source mapping like a live event. A module
here, named like the source's write-back adapter, knows the tool's search API: which requests to
send, how to page through the answers, and how to turn each found ticket into the payload the
tool's webhook (or scrip, or business rule) sends, so the same mapping reads both.
"""

from __future__ import annotations

from service.sources.search.base import Fetch, ToolSearch, finder

__all__ = ["Fetch", "ToolSearch", "finder"]
