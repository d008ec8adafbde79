"""Redis key names used by governance, built on the service's one key prefix.

Layout::

    usm:decisions                              stream  recent decisions, a flush's worth an entry
    usm:decisions:index                        zset    its entries by running decision count
    usm:sources:events                         stream  recent inbound tool payloads (MAXLEN ~ N)
    usm:tables:activation:<version>:<hash>     str     JSON Activation: running, done, skipped
"""

from __future__ import annotations

from service.dispatch.keys import PREFIX

__all__ = ["DECISION_LOG", "SOURCE_EVENTS", "activation_key", "stream_index"]

DECISION_LOG = f"{PREFIX}:decisions"
"""Stream of recent decisions (up to 1,000 an entry, bounded in decisions), for replay and audit."""

SOURCE_EVENTS = f"{PREFIX}:sources:events"
"""Stream of recent inbound source events as the tools sent them, for replaying mappings."""


def activation_key(version: str, table_hash: str) -> str:
    """Marker that the activation of ``version``/``table_hash`` was handled (one per fleet)."""
    return f"{PREFIX}:tables:activation:{version}:{table_hash}"


def stream_index(stream: str) -> str:
    """Sorted set of ``stream``'s entry ids scored by the running count of what they hold."""
    return f"{stream}:index"
