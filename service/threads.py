"""Blocking work for background loops, run in a thread that a stop waits for.

``anyio.to_thread.run_sync`` leaves its thread running when the awaiting task is cancelled (a
native ``Task.cancel()``, as a lifespan's shutdown sends, passes through anyio's shields). The
loops that use it close their Redis clients right after the cancel, so the abandoned thread would
go on with a closed client, write into a closed log stream, and keep the process (or a test
client's lifespan) from ending cleanly.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

from service.tasks import finish

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


async def run_to_end(fn: Callable[[*Ts], T], *args: *Ts) -> T:
    """Run ``fn(*args)`` in a thread; when cancelled, wait for it to return before raising.

    The cancel still ends the task: the caller sees ``CancelledError`` once the thread is done,
    never while it runs, however often the cancel comes (see :mod:`service.tasks`).
    """
    future = asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))
    return await finish(future)
