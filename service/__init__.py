"""usm-dispatch: one impact/urgency/priority table set for every call and risk, and a
strict-priority dispatch queue per team."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
