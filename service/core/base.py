"""Shared msgspec base and constrained aliases used by every wire and table type."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["Base", "Name", "PositiveInt", "ShortText", "Text"]


class Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Root of all data types: unknown fields are errors, fields are named, values immutable."""


Name = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z][a-z0-9_]{0,62}$",
        description="Lower-case identifier: letters, digits, underscores; starts with a letter.",
        examples=["department"],
    ),
]
"""Identifier of a level, call type, team, service or workflow."""

PositiveInt = Annotated[int, msgspec.Meta(ge=1, le=1000)]
"""Rank of a level: 1 is the most severe."""

ShortText = Annotated[str, msgspec.Meta(max_length=200)]
"""A free label such as a category or a reference."""

Text = Annotated[str, msgspec.Meta(max_length=2000)]
"""A description meant for people."""
