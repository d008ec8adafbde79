"""Multiprocess mode: ``usm serve`` runs the API and worker processes, one ``/metrics`` shows all.

prometheus-client picks how values are stored (in memory or in per-process mmap files under
``PROMETHEUS_MULTIPROC_DIR``) when it is first imported, and a metric created before that choice
keeps the wrong kind of value for good. So :func:`prepare` must run in the parent before anything
imports prometheus_client; child processes inherit the environment variable and write their own
files, which :func:`scrape_registry` merges at scrape time.

The files are memory-mapped: a write to a page the file system cannot back (a full disk) is a
SIGBUS that kills the process. So they never live on the data disk, but in a directory private to
one run on ``/dev/shm`` (memory, sized by us, not by Redis' data), see :func:`run_dir`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

__all__ = ["ENV", "child_exited", "enabled", "prepare", "run_dir"]

ENV = "PROMETHEUS_MULTIPROC_DIR"
"""The variable prometheus-client reads; set for this process and inherited by its children."""


def prepare(directory: str | Path) -> Path:
    """Switch this process and its future children to multiprocess metrics in ``directory``.

    Creates the directory and removes ``*.db`` files a previous run left behind (their counters
    belong to processes that no longer exist, and a restart is a counter reset Prometheus handles).

    Args:
        directory: Where every process writes its metric files; private to this service run.

    Returns:
        The directory, resolved.

    Raises:
        RuntimeError: prometheus_client was imported before in single-process mode; metrics
            created since would silently be missing from ``/metrics``.
    """
    path = Path(directory).resolve()
    values = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        raise RuntimeError(
            "service.metrics.multiprocess.prepare() must run before prometheus_client is "
            "imported (it was imported in single-process mode)"
        )
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[ENV] = str(path)
    return path


_PREFIX = "usm-metrics-"


def run_dir(base: Path | None = None) -> Path:
    """A directory for this run's metric files, off any data disk: ``/dev/shm/usm-metrics-U-PID``.

    ``/dev/shm`` (memory) when writable, else the temp dir. Directories left by earlier runs of
    this user whose process is gone (a crash skips the clean-up) are removed first.

    Args:
        base: Where to create it; default ``/dev/shm`` or the temp dir.
    """
    if base is None:
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    mine = f"{_PREFIX}{os.getuid()}-"
    for old in base.glob(f"{mine}*"):
        with contextlib.suppress(ValueError):
            if not _alive(int(old.name.removeprefix(mine))):
                shutil.rmtree(old, ignore_errors=True)
    path = base / f"{mine}{os.getpid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def enabled() -> bool:
    """Whether this process records metrics in multiprocess mode."""
    return bool(os.environ.get(ENV))


def child_exited(pid: int) -> None:
    """Tell prometheus-client a child is gone, so its live gauges stop counting.

    Counters and histograms of the dead process are kept (its work happened); only gauges in
    ``live*`` modes (e.g. HTTP requests in progress) are dropped. Call it from the parent when it
    reaps or restarts a child.
    """
    if not enabled():
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
