"""Python handlers that worker processes in the dispatch tests import (``kind = "python"``)."""

from __future__ import annotations

import os
import time

from worker.handlers import Delivery

__all__ = ["explode", "record"]


def record(delivery: Delivery) -> None:
    """Append ``<id> <priority> <pid>`` to ``$USM_TEST_RECORD`` after ``$USM_TEST_DELAY`` s.

    One ``write`` on an ``O_APPEND`` file: lines from several processes never interleave.
    """
    delay = float(os.environ.get("USM_TEST_DELAY", "0"))
    if delay:
        time.sleep(delay)
    fd = os.open(os.environ["USM_TEST_RECORD"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{delivery.id} {delivery.priority} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def explode(delivery: Delivery) -> None:
    raise RuntimeError(f"cannot handle {delivery.external_id}")
