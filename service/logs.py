"""One log for every process: the same line from the API, the workers and the servers.

``usm`` sets logging up once per process with :func:`setup`: one handler on the root logger, to
stderr, and the servers' own loggers (uvicorn, granian, litestar) pass their records to it
instead of printing in their own formats. The choice travels to child processes through the
environment (``USM_LOG_FORMAT``, ``USM_LOG_LEVEL``), so ``usm serve``'s workers log alike.

- ``text`` (default), for a person: ``2026-11-30 11:01:18.543 INFO usm.serve: message``.
- ``json``, for a log shipper: one object per line with ``time``, ``level``, ``logger``,
  ``message``, ``exc`` (a traceback) and, on access lines, the request's fields.

Values from requests end up in messages (ids, paths), so nothing in a message may start a line
of its own: control characters are escaped (``\\n`` is written as the two characters ``\\n``).
An ``external_id`` holding ``"\\n2026-… CRITICAL …"`` thus stays inside its own line. Tracebacks
keep their lines but are indented, so none of them can pass for a record either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from typing import Any, Literal

import msgspec

__all__ = [
    "FORMATS",
    "AccessEntry",
    "JsonFormatter",
    "TextFormatter",
    "escape",
    "setup",
    "write_access",
]

FORMATS = ("text", "json")
"""What ``USM_LOG_FORMAT`` / ``--log-format`` accept."""

LogFormat = Literal["text", "json"]

_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access")
"""Loggers the servers configure with handlers of their own; ours replace them."""

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_ESCAPES.update({0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"})
_TABLE = str.maketrans(_ESCAPES)


def escape(text: str) -> str:
    """``text`` with every control character (and Unicode line separator) written out."""
    if text.isascii() and text.isprintable():
        # Nothing to write out (U+0020-U+007E only), checked in C: translate's per-character
        # table look-up cost 0.35 us for a short path, twice per access line.
        return text
    return text.translate(_TABLE)


class TextFormatter(logging.Formatter):
    """``2026-11-30 11:01:18.543 INFO usm.serve: message``; a traceback follows, indented."""

    def __init__(self) -> None:
        super().__init__(fmt="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s")
        self.datefmt = "%Y-%m-%d %H:%M:%S"

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        text = super().formatException(ei)
        return "\n".join(f"    {escape(line)}" for line in text.splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(f"    {escape(line)}" for line in stack_info.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per line; JSON's own escaping keeps every record on its line."""

    def __init__(self) -> None:
        super().__init__()
        self._encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return self._encode(out).decode()


AccessEntry = tuple[float, str, str, int, float, str]
"""``(time.time(), method, path, status, duration ms, key name)`` of one request."""


class StderrHandler(logging.StreamHandler[Any]):
    """A stream handler on ``sys.stderr`` as it is at each record, not as it was at setup.

    Whoever swaps ``sys.stderr`` (pytest's capture, an embedding host) and closes the old one
    would otherwise leave every later record, from any thread, failing on a closed file.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


_handler: logging.StreamHandler[Any] | None = None
"""The handler :func:`setup` installed; access lines go straight to its stream."""
_access = logging.getLogger("usm.access")
_second = (0, "")


def _stamp(created: float) -> str:
    """``2026-11-30 11:01:18.543`` as :class:`TextFormatter` writes it, one strftime a second."""
    global _second
    whole = int(created)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(whole)))
    return f"{_second[1]}.{int((created - whole) * 1000):03d}"


def write_access(entries: list[AccessEntry]) -> None:
    """Write access lines, each exactly as a record of ``usm.access`` would read.

    The per-request path of the API: a record through :mod:`logging` costs 10-40 us (a
    ``LogRecord`` of some twenty attributes, a lock, a ``strftime``, a flush), as much as the
    bare request itself (bench/access_log.py). Here a batch costs one lock, one write and one
    flush, and a line a few microseconds. Without :func:`setup`'s handler (an app in a test
    client) the lines go through :mod:`logging` as usual.
    """
    handler = _handler
    if handler is None or handler not in logging.getLogger().handlers:
        for created, method, path, status, ms, key in entries:
            record = _access.makeRecord(
                _access.name, logging.INFO, "", 0, "%s %s %d %.1fms key=%s",
                (method, path, status, ms, key), None,
            )  # fmt: skip
            record.created = created
            record.fields = {"method": method, "path": path, "status": status,
                             "duration_ms": round(ms, 3), "key": key}  # fmt: skip
            _access.handle(record)
        return
    if isinstance(handler.formatter, JsonFormatter):
        encode = handler.formatter._encode
        lines = [
            encode(
                {
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
                    + f".{int((created % 1) * 1000):03d}Z",
                    "level": "INFO",
                    "logger": "usm.access",
                    "message": f"{method} {path} {status} {ms:.1f}ms key={key}",
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(ms, 3),
                    "key": key,
                }
            ).decode()
            for created, method, path, status, ms, key in entries
        ]
    else:
        lines = [
            f"{_stamp(created)} INFO usm.access: {method} {escape(path)} {status} {ms:.1f}ms "
            f"key={escape(key)}"
            for created, method, path, status, ms, key in entries
        ]
    with handler.lock or contextlib.nullcontext():
        handler.stream.write("\n".join(lines) + "\n")
        handler.flush()


def setup(level: str | None = None, fmt: str | None = None) -> None:
    """Log in one format from here on, in this process and the ones it starts.

    Args:
        level: ``DEBUG``, ``INFO``, ``WARNING`` or ``ERROR``; default ``USM_LOG_LEVEL``, else INFO.
        fmt: ``text`` or ``json``; default ``USM_LOG_FORMAT``, else text.

    Raises:
        ValueError: An unknown format or level; the message lists the allowed ones.
    """
    level = (level or os.environ.get("USM_LOG_LEVEL") or "INFO").upper()
    fmt = (fmt or os.environ.get("USM_LOG_FORMAT") or "text").lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format '{fmt}'; allowed: {', '.join(FORMATS)}")
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError(f"unknown log level '{level}'; allowed: DEBUG, INFO, WARNING, ERROR")
    os.environ["USM_LOG_LEVEL"], os.environ["USM_LOG_FORMAT"] = level, fmt
    global _handler
    handler = _handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    adopt_server_loggers()


def adopt_server_loggers() -> None:
    """Send the servers' records to the root handler (they install their own when they start)."""
    for name in _SERVER_LOGGERS:
        logger = logging.getLogger(name)
        for old in logger.handlers[:]:
            logger.removeHandler(old)
        logger.propagate = True
