"""Redis key names used by governance, built on the service's one key prefix.

Layout::

    usm:decisions                              stream  recent decisions (XADD MAXLEN ~ N)
    usm:sources:events                         stream  recent inbound tool payloads (MAXLEN ~ N)
    usm:tables:activation:<version>:<hash>     str     JSON Activation: running, done, skipped
"""

from __future__ import annotations

from service.dispatch.keys import PREFIX

__all__ = ["DECISION_LOG", "SOURCE_EVENTS", "activation_key"]

DECISION_LOG = f"{PREFIX}:decisions"
"""Stream of recent decisions (bounded with ``XADD MAXLEN ~``), for replay and audit."""

SOURCE_EVENTS = f"{PREFIX}:sources:events"
"""Stream of recent inbound source events as the tools sent them, for replaying mappings."""


def activation_key(version: str, table_hash: str) -> str:
    """Marker that the activation of ``version``/``table_hash`` was handled (one per fleet)."""
    return f"{PREFIX}:tables:activation:{version}:{table_hash}"
