"""Stopping background tasks so that a stop never hangs.

A single ``Task.cancel()`` is not enough to end a loop: Python 3.11's ``asyncio.wait_for`` drops a
cancel that arrives just as the awaited operation finishes (CPython gh-86296, fixed in 3.12), and
redis-py's asyncio client sends every command through it. The loop around such a call (the
decision log's flush) then carries on as if nothing happened, and a lifespan that awaits it waits
forever: a test client's shutdown, or ``usm serve``'s, hung with the loop idle. So a stop cancels
again until the task has ended, as anyio's cancel scopes do, and gives up loudly after a bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

RECANCEL_SECONDS = 0.2
"""How long a cancelled task may take to end before it is cancelled again."""


async def stop_all(tasks: Iterable[asyncio.Task[object]], within: float = 10.0) -> None:
    """Cancel ``tasks`` (again and again) until all have ended, for at most ``within`` seconds.

    Errors the tasks ended with are logged, not raised: a stop goes on to close what is left.
    A task still running after ``within`` is named in an error and left behind. The default
    10 s is far above a normal stop (milliseconds; a thread's Redis call is bounded by its
    timeout) and leaves most of a pod's 30 s grace period to the rest of the shutdown.
    """
    loop = asyncio.get_running_loop()
    tasks = list(tasks)
    deadline = loop.time() + within
    pending = {t for t in tasks if not t.done()}
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            names = ", ".join(sorted(t.get_name() for t in pending))
            log.error("background tasks did not stop within %.0f s: %s", within, names)
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_SECONDS, left))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())


async def finish(future: asyncio.Future[T]) -> T:
    """Await ``future`` to its end, however often the caller is cancelled meanwhile.

    For work that must not be abandoned halfway (a thread still using a Redis client, the last
    flush of a buffer): a cancel is held back until ``future`` is done, then raised.
    """
    cancelled = False
    while not future.done():
        try:
            await asyncio.wait([future])
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        with contextlib.suppress(BaseException):
            future.result()  # retrieved: its outcome does not matter to a cancelled caller
        raise asyncio.CancelledError
    return future.result()
