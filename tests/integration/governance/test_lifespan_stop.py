"""The app's shutdown ends even when a background task drops a cancel.

Regression: under load a test client's (or ``usm serve``'s) shutdown hung for good with the event
loop idle: the decision log's loop was "cancelling" yet kept flushing, because Python 3.11's
``asyncio.wait_for`` inside redis-py's command drops a cancel that lands as the command
completes (see ``service/tasks.py``), and the lifespan cancelled once and then waited forever.
The stubborn task here drops its first cancel the same way, deterministically.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from litestar.testing import TestClient

from service.api.app import create_app
from service.api.governance import GovernancePlugin
from service.settings import Settings
from tests.fixtures.api import LOOPBACK


async def _drops_its_first_cancel(dropped: list[bool]) -> None:
    while True:
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            if dropped:
                raise
            dropped.append(True)  # as a command answered at the moment of the cancel


def test_shutdown_ends_though_a_background_task_drops_a_cancel(single_set_tables: Path) -> None:
    app = create_app(Settings(tables=str(single_set_tables)))
    plugin = app.plugins.get(GovernancePlugin)
    dropped: list[bool] = []
    client = TestClient(app, base_url=LOOPBACK)
    client.__enter__()
    portal = client.blocking_portal

    async def start() -> asyncio.Task[None]:
        plugin._start(_drops_its_first_cancel(dropped), "stubborn")
        return plugin._tasks[-1]

    task = portal.call(start)
    stopper = threading.Thread(target=client.__exit__, args=(None, None, None), daemon=True)
    stopper.start()
    stopper.join(60)
    hung = stopper.is_alive()
    if hung:  # let the stuck shutdown go before failing, so nothing is left running
        portal.call(task.cancel)
        stopper.join(60)
    assert dropped == [True], "the task never saw a cancel"
    assert not hung, "the shutdown hung on a task that dropped its first cancel"
