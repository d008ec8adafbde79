"""Every Redis key and RQ queue name the dispatch layer uses, built in this one module.

RQ's own keys (queues, jobs, registries, workers, the suspension flag) come from RQ's constants so
`rq info`, `rq suspend` and rq-dashboard see the same data. Our own keys sit under :data:`PREFIX`.

Layout (``<q>`` is an RQ queue name ``usm.<team>.<priority>``)::

    rq:queue:<q>           list   item ids waiting, head = next to hand out (RQ's queue)
    rq:queues              set    RQ's registry of queue keys (`rq info` reads it)
    rq:job:<id>            hash   the item: RQ job fields plus ``usm_*`` fields
    rq:failed:<q>          zset   dead letters (RQ's FailedJobRegistry)
    rq:finished:<q>        zset   completed items (RQ's FinishedJobRegistry)
    rq:suspended           str    set by `rq suspend`: workers hand out nothing
    usm:inflight           zset   item id -> lease deadline (ms), started or claimed items
    usm:started:<team>     zset   item id -> start time (ms), items a worker is handling
    usm:workers:<team>     zset   worker name -> presence deadline (ms)
    usm:wake:<team>        list   wake tokens: idle workers BLPOP here
    usm:due:<q>            zset   item id -> response target (epoch s), for the overdue count
    usm:history:<id>       list   events: state changes and decisions (deleted once folded)
    usm:idem:<digest>      str    (source, external id) -> item id
    usm:claim:<digest>     hash   a claim's Idempotency-Key -> item, holder, requester (lease TTL)
    usm:rebuild:pending    set    queues a mass re-score changed and whose order is not rebuilt yet
    usm:rebuild:in:<q>     set    items a mass re-score moved into <q>, to place by seniority
    usm:rebuild:lock:<q>   str    token of the rebuild of <q> under way (writers then log adds)
    usm:rebuild:log:<q>    list   ids added to <q> during its rebuild: ``F<id>`` front, ``B<id>``
    usm:rebuild:list:<q>:<token>  list  the rebuilt order of <q>, renamed onto it when complete
"""

from __future__ import annotations

import hashlib

from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.suspension import WORKERS_SUSPENDED
from rq.worker import Worker

__all__ = [
    "CLAIM_PREFIX",
    "DUE_PREFIX",
    "FAILED_PREFIX",
    "FINISHED_PREFIX",
    "HISTORY_PREFIX",
    "IDEM_PREFIX",
    "INFLIGHT",
    "JOB_PREFIX",
    "PREFIX",
    "QUEUES_SET",
    "QUEUE_PREFIX",
    "REBUILD_IN_PREFIX",
    "REBUILD_LOCK_PREFIX",
    "REBUILD_LOG_PREFIX",
    "REBUILD_PENDING",
    "STARTED_PREFIX",
    "SUSPENDED",
    "WAKE_PREFIX",
    "WORKERS_PREFIX",
    "claim_key",
    "due_key",
    "failed_key",
    "finished_key",
    "history_key",
    "idem_key",
    "job_key",
    "parse_queue_name",
    "queue_key",
    "queue_name",
    "rebuild_in_key",
    "rebuild_list_key",
    "rebuild_lock_key",
    "rebuild_log_key",
    "started_key",
    "wake_key",
    "worker_key",
    "workers_key",
]

PREFIX = "usm"
"""Prefix of every key this service owns (RQ's keys keep RQ's prefix)."""

JOB_PREFIX: str = Job.redis_job_namespace_prefix
QUEUE_PREFIX: str = Queue.redis_queue_namespace_prefix
QUEUES_SET: str = Queue.redis_queues_keys
FAILED_PREFIX: str = FailedJobRegistry.key_template.format("")
FINISHED_PREFIX: str = FinishedJobRegistry.key_template.format("")
SUSPENDED: str = WORKERS_SUSPENDED
INFLIGHT = f"{PREFIX}:inflight"
STARTED_PREFIX = f"{PREFIX}:started:"
WORKERS_PREFIX = f"{PREFIX}:workers:"
WAKE_PREFIX = f"{PREFIX}:wake:"
DUE_PREFIX = f"{PREFIX}:due:"
HISTORY_PREFIX = f"{PREFIX}:history:"
IDEM_PREFIX = f"{PREFIX}:idem:"
CLAIM_PREFIX = f"{PREFIX}:claim:"
REBUILD_PENDING = f"{PREFIX}:rebuild:pending"
REBUILD_IN_PREFIX = f"{PREFIX}:rebuild:in:"
REBUILD_LOCK_PREFIX = f"{PREFIX}:rebuild:lock:"
REBUILD_LOG_PREFIX = f"{PREFIX}:rebuild:log:"
_REBUILD_LIST_PREFIX = f"{PREFIX}:rebuild:list:"


def queue_name(team: str, priority: str) -> str:
    """RQ queue name of one team's priority level, e.g. ``usm.service_desk.P1``."""
    return f"{PREFIX}.{team}.{priority}"


def parse_queue_name(name: str) -> tuple[str, str] | None:
    """``(team, priority)`` of one of our queue names, None for other RQ queues."""
    head, _, rest = name.partition(".")
    team, _, priority = rest.rpartition(".")
    if head != PREFIX or not team or not priority:
        return None
    return team, priority


def queue_key(name: str) -> str:
    return QUEUE_PREFIX + name


def job_key(item_id: str) -> str:
    return JOB_PREFIX + item_id


def failed_key(name: str) -> str:
    return FAILED_PREFIX + name


def finished_key(name: str) -> str:
    return FINISHED_PREFIX + name


def due_key(name: str) -> str:
    return DUE_PREFIX + name


def started_key(team: str) -> str:
    return STARTED_PREFIX + team


def workers_key(team: str) -> str:
    return WORKERS_PREFIX + team


def wake_key(team: str) -> str:
    return WAKE_PREFIX + team


def history_key(item_id: str) -> str:
    return HISTORY_PREFIX + item_id


def rebuild_in_key(name: str) -> str:
    return REBUILD_IN_PREFIX + name


def rebuild_lock_key(name: str) -> str:
    return REBUILD_LOCK_PREFIX + name


def rebuild_log_key(name: str) -> str:
    return REBUILD_LOG_PREFIX + name


def rebuild_list_key(name: str, token: str) -> str:
    return f"{_REBUILD_LIST_PREFIX}{name}:{token}"


def worker_key(name: str) -> str:
    """RQ's worker hash, so `rq info` lists our workers."""
    return str(Worker.redis_worker_namespace_prefix) + name


def idem_key(source: str, external_id: str) -> str:
    """Key of the idempotency record; hashed so any external id gives a short, safe key."""
    digest = hashlib.sha256(f"{source}\n{external_id}".encode()).hexdigest()[:40]
    return IDEM_PREFIX + digest


def claim_key(caller: str, team: str, token: str) -> str:
    """Key of a claim's ``Idempotency-Key`` record, per caller (API key name) and team: two
    callers that happen to pick the same token never share a lease."""
    digest = hashlib.sha256(f"{caller}\n{team}\n{token}".encode()).hexdigest()[:40]
    return CLAIM_PREFIX + digest
