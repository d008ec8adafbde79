"""Redis key names used by governance; built here and nowhere else."""

from __future__ import annotations

__all__ = ["DECISION_LOG", "activation_key"]

PREFIX = "usm"

DECISION_LOG = f"{PREFIX}:decisions"
"""Stream of recent decisions (bounded with ``XADD MAXLEN ~``), for replay and audit."""


def activation_key(version: str, table_hash: str) -> str:
    """Marker that the activation of ``version``/``table_hash`` was handled (one per fleet)."""
    return f"{PREFIX}:tables:activation:{version}:{table_hash}"
