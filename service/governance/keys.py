"""Redis key names used by governance, built on the service's one key prefix.

Layout::

    usm:decisions                              stream  recent decisions (XADD MAXLEN ~ N)
    usm:tables:activation:<version>:<hash>     str     JSON Activation: running, done, skipped
"""

from __future__ import annotations

from service.dispatch.keys import PREFIX

__all__ = ["DECISION_LOG", "activation_key"]

DECISION_LOG = f"{PREFIX}:decisions"
"""Stream of recent decisions (bounded with ``XADD MAXLEN ~``), for replay and audit."""


def activation_key(version: str, table_hash: str) -> str:
    """Marker that the activation of ``version``/``table_hash`` was handled (one per fleet)."""
    return f"{PREFIX}:tables:activation:{version}:{table_hash}"
