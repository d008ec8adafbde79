"""Redis keys of the write-back outbox, built on the service's one key prefix.

Layout (``<ref>`` is ``<source>:<ticket id>``)::

    usm:wb:<ref>     hash   the ticket's latest decision to write back and its delivery state
    usm:wb:due       zset   <ref> -> when to (re)try, ms; a claimed entry sits at its lease end
    usm:wb:dead      zset   <ref> -> when it was dead-lettered, ms
    usm:wb:targets   zset   <ref> -> when its item's next target falls due, ms (the watch)
"""

from __future__ import annotations

from service.dispatch.keys import PREFIX

__all__ = ["DEAD", "DUE", "ENTRY_PREFIX", "TARGETS", "entry_key", "ref", "split_ref"]

ENTRY_PREFIX = f"{PREFIX}:wb:"
DUE = f"{PREFIX}:wb:due"
DEAD = f"{PREFIX}:wb:dead"
TARGETS = f"{PREFIX}:wb:targets"


def ref(source: str, ticket_id: str) -> str:
    """The outbox member naming one ticket of one source (source names hold no ``:``)."""
    return f"{source}:{ticket_id}"


def split_ref(member: str) -> tuple[str, str]:
    """``(source, ticket id)`` of an outbox member."""
    source, _, ticket = member.partition(":")
    return source, ticket


def entry_key(member: str) -> str:
    return ENTRY_PREFIX + member
