"""Unit-layer fixtures: a scorer for the default table set."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.core.scoring import Scorer
from service.files.loader import LoadedSet

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
"""A fixed 'now' so every timestamp in a decision is predictable."""


@pytest.fixture
def scorer(default_set: LoadedSet) -> Scorer:
    """A fresh scorer (empty memo) for the default set."""
    return default_set.scorer()
