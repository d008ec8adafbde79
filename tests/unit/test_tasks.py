"""A stop ends background tasks even when a cancel is dropped, and never waits without bound."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from service.tasks import finish, stop_all


async def _drops_cancels(times: list[int], seen: list[int]) -> None:
    """A loop whose first ``times[0]`` cancels are dropped, as a Redis command can drop one."""
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            seen.append(1)
            if len(seen) > times[0]:
                raise


def test_a_task_that_drops_its_first_cancels_is_cancelled_again_until_it_ends() -> None:
    seen: list[int] = []

    async def go() -> asyncio.Task[None]:
        task = asyncio.create_task(_drops_cancels([2], seen), name="stubborn")
        await asyncio.sleep(0.05)
        await asyncio.wait_for(stop_all([task], within=60), 60)
        return task

    task = asyncio.run(go())
    assert task.cancelled()
    assert len(seen) == 3


def test_a_task_that_will_not_end_is_named_and_left_after_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []
    times = [10**9]

    async def go() -> bool:
        task = asyncio.create_task(_drops_cancels(times, seen), name="deaf")
        await asyncio.sleep(0.05)
        with caplog.at_level(logging.ERROR, "service.tasks"):
            await asyncio.wait_for(stop_all([task], within=0.5), 60)
        still_running = not task.done()
        times[0] = 0  # now the next cancel ends it, so asyncio.run can finish
        task.cancel()
        return still_running

    assert asyncio.run(go())
    assert "background tasks did not stop within 0 s: deaf" in caplog.text


def test_a_task_that_failed_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        raise ValueError("boom")

    async def go() -> None:
        task = asyncio.create_task(fail(), name="failing")
        await asyncio.sleep(0)
        with caplog.at_level(logging.ERROR, "service.tasks"):
            await stop_all([task])

    asyncio.run(go())
    assert "background task failing failed" in caplog.text
    assert "ValueError: boom" in caplog.text


def test_finish_holds_every_cancel_until_the_work_is_done() -> None:
    release = threading.Event()

    async def go() -> None:
        work = asyncio.get_running_loop().run_in_executor(None, release.wait, 60)
        waiter = asyncio.create_task(finish(work))
        for _ in range(3):  # cancelled again and again, as stop_all does
            await asyncio.sleep(0.02)
            waiter.cancel()
        await asyncio.sleep(0.02)
        assert not waiter.done(), "the caller went on while the work still ran"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert work.done()

    asyncio.run(go())
