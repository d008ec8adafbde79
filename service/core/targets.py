"""Which targets of a decision were missed, and when the next one falls due. Pure, no I/O.

A decision sets two targets (``response_by``, ``resolve_by``). The response target is met when
the item is handed out (a worker starts it or a person claims it) by then; the resolve target
when the work ends by then. Once passed unmet, a target stays missed for that decision: a later
hand-out does not undo it. A new decision (a re-score) brings new targets and is judged afresh.
"""

from __future__ import annotations

import enum
from datetime import datetime

from service.core.decision import Decision

__all__ = ["Target", "missed_targets", "next_target", "parse_missed", "render_missed"]


class Target(enum.StrEnum):
    """A target of a decision; the values are what the tools show and Redis stores."""

    RESPONSE = "response"
    RESOLVE = "resolve"


def missed_targets(
    decision: Decision,
    handed_out: datetime | None,
    ended: datetime | None,
    now: datetime,
) -> tuple[Target, ...]:
    """The targets of ``decision`` missed by ``now``, in the order response, resolve.

    Args:
        handed_out: when the item was first handed out (started or claimed); None: not yet.
        ended: when the item ended (completed or cancelled); None: still open. An ended item
            is judged at its end: nothing is missed after the work is over.
    """
    at = min(now, ended) if ended is not None else now
    missed: list[Target] = []
    if handed_out is not None:
        late = handed_out > decision.response_by
    else:
        late = at >= decision.response_by
    if late:
        missed.append(Target.RESPONSE)
    if at >= decision.resolve_by:
        missed.append(Target.RESOLVE)
    return tuple(missed)


def next_target(decision: Decision, now: datetime) -> datetime | None:
    """The earliest target of ``decision`` still ahead of ``now``; None when both passed."""
    ahead = [t for t in (decision.response_by, decision.resolve_by) if t > now]
    return min(ahead) if ahead else None


def render_missed(missed: tuple[Target, ...]) -> str:
    """``response, resolve``: the flags as one text value (tools, Redis); ``""`` for none."""
    return ", ".join(t.value for t in missed)


def parse_missed(text: str) -> tuple[Target, ...]:
    """The inverse of :func:`render_missed`."""
    return tuple(Target(part) for part in text.split(", ") if part)
