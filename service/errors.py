"""Every error the service raises on purpose. HTTP-facing ones carry their status code.

This module imports nothing from a framework so the pure core can raise these too.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "InvalidCall",
    "InvalidEvent",
    "InvalidHeader",
    "InvalidTables",
    "ItemConflict",
    "NoTableInForce",
    "NotFound",
    "QueueUnavailable",
    "ReplicasUnconfirmed",
    "SignatureRefused",
    "UsmError",
]


class UsmError(Exception):
    """Root of the service's errors."""

    status_code: int = 500


class InvalidCall(UsmError):
    """A call names something the active table set does not know."""

    status_code = 422

    def __init__(self, field: str, reason: str, allowed: Sequence[str] = ()) -> None:
        self.field = field
        self.reason = reason
        self.allowed = list(allowed)
        text = f"{reason} - at `$.{field}`"
        if self.allowed:
            text += f"; allowed: {', '.join(self.allowed)}"
        super().__init__(text)

    def at(self, prefix: str) -> InvalidCall:
        """The same error located inside a larger document, e.g. ``calls[3]``."""
        return InvalidCall(f"{prefix}.{self.field}", self.reason, self.allowed)


class InvalidEvent(UsmError):
    """A ticketing tool's payload cannot be read by its source mapping.

    Names the tool's field path (not ours: the person fixing it works in the tool), the value
    found and the values the mapping knows.
    """

    status_code = 422

    def __init__(
        self,
        path: str,
        reason: str,
        value: object = None,
        mapped: Sequence[str] = (),
    ) -> None:
        self.path = path
        self.reason = reason
        self.value = value
        self.mapped = list(mapped)
        text = f"{reason} - at tool field `{path}`"
        if self.mapped:
            text += f"; mapped: {', '.join(self.mapped)}"
        super().__init__(text)


class InvalidTables(UsmError):
    """A table set was refused; ``problems`` lists every reason."""

    status_code = 422

    def __init__(self, problems: Sequence[object]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class NoTableInForce(InvalidTables):
    """No loaded table set has reached its ``effective_from``, so none may score yet.

    A set never comes into force before its date: tables without a set in force are refused at
    start-up and on reload (where the running sets stay), never stood in for by a future set.
    """

    status_code = 503


class ItemConflict(UsmError):
    """The item's state does not allow the action (e.g. re-queue an item that is not dead).

    ``field`` names the request field the conflict is about, when one is (e.g. ``holder``).
    """

    status_code = 409

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{message} - at `$.{field}`" if field else message)


class InvalidHeader(UsmError):
    """A request header holds a value the route cannot use; names the header and what it may be."""

    status_code = 422

    def __init__(self, header: str, reason: str, allowed: str) -> None:
        self.header = header
        self.allowed = allowed
        super().__init__(f"{reason} - in header `{header}`; allowed: {allowed}")


class NotFound(UsmError):
    """The named resource does not exist."""

    status_code = 404


class SignatureRefused(UsmError):
    """An inbound source request is not signed or authenticated the way its source requires.

    The message says what was wrong with the request (missing, malformed or not matching) and
    which header was expected, never anything derived from the secret.
    """

    status_code = 401

    def __init__(self, reason: str, header: str) -> None:
        self.reason = reason
        self.header = header
        super().__init__(f"{reason} - in header `{header}`")


class QueueUnavailable(UsmError):
    """Redis cannot be reached; the caller should retry later."""

    status_code = 503
    retry_after = 5


class ReplicasUnconfirmed(QueueUnavailable):
    """Fewer replicas than required confirmed a write in time: it may not survive a failover.

    The write may still have happened; the caller retries (item writes are idempotent).
    """

    retry_after = 1

    def __init__(self, required: int, confirmed: int, result: object = None) -> None:
        self.required = required
        self.confirmed = confirmed
        self.result = result
        """What the script answered on the primary (for a caller that must undo it)."""
        super().__init__(
            f"the write was confirmed by {confirmed} of the {required} replica(s) required in "
            "time, so it may not survive a failover; retry"
        )
