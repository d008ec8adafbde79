"""Timings and limits of the dispatch layer."""

from __future__ import annotations

from dataclasses import dataclass, field

from service.files.handlers import PythonHandlers
from service.settings import Settings

__all__ = ["DispatchConfig"]


@dataclass(frozen=True)
class DispatchConfig:
    """How long leases last, how often abandoned items are looked for, and size limits.

    An item whose worker dies is handed out again within ``lease_seconds + reaper_seconds``
    (35 s by default): the worker's heartbeat extends the lease every third of it while alive.
    """

    lease_seconds: float = 30.0
    """A worker's lease on an item; its heartbeat renews it every third of this."""
    reaper_seconds: float = 5.0
    """How often workers and the API look for expired leases."""
    claim_lease_seconds: float = 900.0
    """Lease of an item claimed by a person (pull mode) before it goes back to the queue."""
    max_deliveries: int = 10
    """An item handed out this many times without finishing goes to the dead letters."""
    max_payload_bytes: int = 64 * 1024
    """Largest ``payload`` accepted with an item, as encoded JSON."""
    result_ttl: int = 7 * 86400
    """Seconds a completed or cancelled item stays readable (and its external id reserved)."""
    failure_ttl: int = 365 * 86400
    """Seconds a dead-lettered item stays in the dead-letter registry (RQ's default)."""

    python_handlers: PythonHandlers = field(default_factory=PythonHandlers)
    """The ``python`` handlers workers may import and run (``USM_PYTHON_HANDLERS``); none by
    default, whatever the tables say."""

    heartbeat: float | None = None
    """Seconds between worker heartbeats (presence and lease renewal); a third of the lease
    when None."""

    @property
    def heartbeat_seconds(self) -> float:
        return self.heartbeat if self.heartbeat is not None else self.lease_seconds / 3

    @classmethod
    def from_settings(cls, settings: Settings) -> DispatchConfig:
        return cls(
            lease_seconds=settings.lease_seconds,
            reaper_seconds=settings.reaper_seconds,
            claim_lease_seconds=settings.claim_lease_seconds,
            max_deliveries=settings.max_deliveries,
            max_payload_bytes=settings.max_payload_bytes,
            result_ttl=settings.result_ttl_seconds,
            python_handlers=PythonHandlers.parse(settings.python_handlers),
        )
