"""A second stop signal interrupts the item in hand, wherever in the handler it lands.

Real signals (``signal.raise_signal``: the worker's own handler runs before the call returns) to
an in-process worker against a real Redis; the same in worker processes is in
tests/e2e/dispatch/test_worker_processes.py, where a CI run found this: the second SIGTERM
landed while the first one's log line was being flushed, and logging's ``except Exception``
swallowed the interruption, so the handler ran on for its full 30 s.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from service.core.calls import Call
from service.dispatch.config import DispatchConfig
from service.dispatch.items import ItemState
from service.dispatch.store import ItemStore
from service.files.loader import LoadedSet
from tests.integration.dispatch.conftest import Enqueue
from worker.handlers import Delivery
from worker.runner import Worker

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@pytest.fixture(autouse=True)
def _signal_handlers_restored() -> Iterator[None]:
    """``Worker.run`` installs its handlers in the main thread; the test process keeps its own."""
    saved = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


class _SecondSignalOnFlush(logging.StreamHandler):  # type: ignore[type-arg]
    """Sends the second SIGTERM while the first one's log line is being flushed."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def flush(self) -> None:
        super().flush()
        if self.armed:
            self.armed = False
            signal.raise_signal(signal.SIGTERM)


def _run(
    redis_client: redis.Redis, base_set: LoadedSet, config: DispatchConfig, handler: Any
) -> None:
    Worker(
        redis_client, base_set.tables, ["service_desk"], config, handlers={"service_desk": handler}
    ).run(burst=True)


def _released(store: ItemStore, item_id: str) -> None:
    item = store.get(item_id)
    assert item.state is ItemState.QUEUED
    assert [h.event for h in item.history] == ["enqueued", "started", "released"]
    assert item.history[-1].detail.startswith("worker stopping: signal 15 while handling")


def test_a_second_sigterm_during_the_first_ones_log_line_interrupts_the_handler(
    redis_client: redis.Redis,
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
) -> None:
    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    finished: list[str] = []
    second = _SecondSignalOnFlush()
    worker_log = logging.getLogger("usm.worker")
    level = worker_log.level
    worker_log.setLevel(logging.INFO)
    worker_log.addHandler(second)

    def handler(delivery: Delivery) -> None:
        second.armed = True
        signal.raise_signal(signal.SIGTERM)  # logs "stopping after the current item"
        finished.append(delivery.id)

    try:
        _run(redis_client, base_set, config, handler)
    finally:
        worker_log.removeHandler(second)
        worker_log.setLevel(level)
    assert not second.armed, "the first signal logged nothing"
    assert finished == [], "the handler ran on after the second signal"
    _released(store, item.id)


def test_a_second_sigterm_interrupts_a_handler_that_catches_every_exception(
    redis_client: redis.Redis,
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
) -> None:
    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    finished: list[str] = []

    def handler(delivery: Delivery) -> None:
        signal.raise_signal(signal.SIGTERM)  # finish this item, then stop
        try:
            signal.raise_signal(signal.SIGTERM)  # stop now
        except Exception:  # a handler that logs whatever went wrong and carries on
            logging.getLogger("tests.handler").exception("ignored")
        finished.append(delivery.id)

    _run(redis_client, base_set, config, handler)
    assert finished == [], "the handler's own `except Exception` swallowed the second signal"
    _released(store, item.id)


class _SignalledBeforeHandling(Worker):
    """Both stop signals land after the hand-out, before the item is in hand."""

    def _handle(self, leased: Any) -> Any:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        return super()._handle(leased)


class _SignalledWhileCounting(Worker):
    """Both stop signals land while the handling's metrics are looked up."""

    def _instruments(self, team: str, priority: str) -> Any:
        if not self._signals:
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGTERM)
        return super()._instruments(team, priority)


@pytest.mark.parametrize("worker_class", [_SignalledBeforeHandling, _SignalledWhileCounting])
def test_two_signals_before_the_handler_starts_release_the_item_unrun(
    worker_class: type[Worker],
    redis_client: redis.Redis,
    base_set: LoadedSet,
    store: ItemStore,
    enqueue: Enqueue,
    config: DispatchConfig,
) -> None:
    # Before: the first case ran the handler (nothing was in hand when the signals came), the
    # second let Interrupted escape the worker's loop with the item still leased.
    item = enqueue(Call(type="incident", impact="user", urgency="low"))
    ran: list[str] = []
    worker_class(
        redis_client,
        base_set.tables,
        ["service_desk"],
        config,
        handlers={"service_desk": lambda delivery: ran.append(delivery.id)},
    ).run(burst=True)
    assert ran == [], "the handler ran after two stop signals"
    _released(store, item.id)
