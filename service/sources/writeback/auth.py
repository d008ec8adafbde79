"""Credentials for the tools' APIs, as ``Authorization`` header values.

A write-back token (``USM_SOURCE_<NAME>_TOKEN``) written ``user:password`` is always HTTP basic
auth: no tool's API token contains a colon, so the form says which one is meant.
"""

from __future__ import annotations

import base64

__all__ = ["basic", "is_basic"]


def is_basic(token: str) -> bool:
    """Whether ``token`` is a ``user:password`` pair rather than an API token."""
    return ":" in token


def basic(user_password: str) -> str:
    """``Basic <base64(user:password)>`` (RFC 7617, UTF-8)."""
    return "Basic " + base64.b64encode(user_password.encode()).decode()
