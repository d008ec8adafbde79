"""Governance settings, read from ``USM_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

import msgspec

__all__ = ["GovernanceConfig"]

Seconds = Annotated[float, msgspec.Meta(ge=0, le=3600)]


class GovernanceConfig(msgspec.Struct, kw_only=True, frozen=True):
    """How often the service looks for new tables and flushes its decision log."""

    watch_interval: Seconds = 1.0
    """``USM_TABLES_WATCH_INTERVAL``: seconds between looks at ``tables/`` for changed files;
    0 turns the file watch off (SIGUSR1 and the admin endpoint still reload)."""
    activation_interval: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 1.0
    """``USM_TABLES_ACTIVATION_INTERVAL``: seconds between checks for a newly active set."""
    rescore_lock_seconds: Annotated[int, msgspec.Meta(ge=1)] = 600
    """``USM_TABLES_RESCORE_LOCK_SECONDS``: how long one replica may hold the re-score of an
    activation before another may take it over (it crashed)."""
    decision_log_maxlen: Annotated[int, msgspec.Meta(ge=0)] = 100_000
    """``USM_DECISION_LOG_MAXLEN``: decisions the Redis stream keeps (at least; older ones go a
    flush at a time); 0 turns the decision log off."""
    decision_log_flush: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.2
    """``USM_DECISION_LOG_FLUSH``: seconds between background flushes of buffered decisions."""
    decision_log_buffer: Annotated[int, msgspec.Meta(ge=1)] = 50_000
    """``USM_DECISION_LOG_BUFFER``: decisions held in memory between flushes; beyond that the
    oldest are dropped and counted."""

    source_event_log_maxlen: Annotated[int, msgspec.Meta(ge=0)] = 10_000
    """``USM_SOURCE_EVENT_LOG_MAXLEN``: inbound tool payloads the Redis stream keeps, for
    ``usm tables replay --from-events`` (approximately); 0 turns the record off."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GovernanceConfig:
        """Config from ``env`` (default ``os.environ``); unknown or empty variables are ignored."""
        env = os.environ if env is None else env
        names = {
            "watch_interval": "USM_TABLES_WATCH_INTERVAL",
            "activation_interval": "USM_TABLES_ACTIVATION_INTERVAL",
            "rescore_lock_seconds": "USM_TABLES_RESCORE_LOCK_SECONDS",
        }
        raw: dict[str, object] = {}
        for field in cls.__struct_fields__:
            key = names.get(field, f"USM_{field.upper()}")
            if env.get(key, "") != "":
                raw[field] = env[key]
        return msgspec.convert(raw, cls, strict=False)
