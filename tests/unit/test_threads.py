"""A background loop's thread ends before its task does, even when the task is cancelled.

Regression: the activation check ran in ``anyio.to_thread.run_sync``; a lifespan's cancel ended
the task at once while the check went on in its thread, with a Redis client the lifespan then
closed, writing into a log stream already closed ("Logging error ... I/O operation on closed
file" after a test client's shutdown).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.threads import run_to_end


def test_a_cancelled_task_ends_only_after_its_thread() -> None:
    entered, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def work() -> int:
        entered.set()
        release.wait(60)
        finished.append(True)
        return 1

    async def go() -> None:
        task = asyncio.create_task(run_to_end(work))
        assert await asyncio.to_thread(entered.wait, 60)
        task.cancel()
        # Let the loop run the cancel through: an abandoning runner is done by now.
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done(), "the task ended while its thread was still running"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished == [True]

    asyncio.run(go())


def test_the_answer_and_the_error_come_through() -> None:
    def fail() -> None:
        raise ValueError("boom")

    async def go() -> int:
        with pytest.raises(ValueError, match="boom"):
            await run_to_end(fail)
        return await run_to_end(lambda a, b: a + b, 2, 3)

    assert asyncio.run(go()) == 5
