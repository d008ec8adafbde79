"""Redis keys of the write-back outbox, built on the service's one key prefix.

Layout (``<ref>`` is ``<source>:<ticket id>``)::

    usm:wb:<ref>     hash   the ticket's latest decision to write back and its delivery state
    usm:wb:due       zset   <ref> -> when to (re)try, ms; a claimed entry sits at its lease end
    usm:wb:dead      zset   <ref> -> when it was dead-lettered, ms
    usm:wb:targets   zset   <ref> -> when its item's next target falls due, ms (the watch)
    usm:src:ended:<ref>  str  the tool resolved or closed the ticket (its state); gone when it
                              is re-opened, expires with the ended item
"""

from __future__ import annotations

from service.dispatch.keys import PREFIX

__all__ = [
    "DEAD",
    "DUE",
    "ENDED_PREFIX",
    "ENTRY_PREFIX",
    "TARGETS",
    "ended_key",
    "entry_key",
    "ref",
    "split_ref",
]

ENTRY_PREFIX = f"{PREFIX}:wb:"
DUE = f"{PREFIX}:wb:due"
DEAD = f"{PREFIX}:wb:dead"
TARGETS = f"{PREFIX}:wb:targets"
ENDED_PREFIX = f"{PREFIX}:src:ended:"


def ref(source: str, ticket_id: str) -> str:
    """The outbox member naming one ticket of one source (source names hold no ``:``)."""
    return f"{source}:{ticket_id}"


def split_ref(member: str) -> tuple[str, str]:
    """``(source, ticket id)`` of an outbox member."""
    source, _, ticket = member.partition(":")
    return source, ticket


def entry_key(member: str) -> str:
    return ENTRY_PREFIX + member


def ended_key(member: str) -> str:
    return ENDED_PREFIX + member
