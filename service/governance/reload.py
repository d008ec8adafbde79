"""Hot reload: read ``tables/`` again, refuse an invalid set, swap a valid one atomically.

Three triggers share one :class:`TableReloader`: the file watch (a poll of every file's size and
mtime each second, cheap next to the scoring it protects), SIGUSR1, and
``POST /v1/admin/tables/reload``. Reloads are serialised by a lock; readers never wait on it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread

from service.core.base import Base
from service.errors import InvalidTables
from service.files.handlers import PythonHandlers
from service.files.loader import load_all
from service.files.store import TableStore, Versions
from service.metrics.tables import ReloadResult, record_reload
from service.threads import run_to_end

__all__ = ["ReloadReport", "TableReloader", "fingerprint"]

log = logging.getLogger("usm.governance.reload")

Fingerprint = tuple[tuple[str, int, int], ...]


class ReloadReport(Base):
    """What one reload did."""

    result: ReloadResult
    """``success``: new sets swapped in; ``unchanged``: nothing to do; ``rejected``: invalid
    files; ``error``: the files could not be read. The running sets stay unless ``success``."""
    trigger: str
    """What asked for it: ``watch``, ``sigusr1``, ``admin`` or ``api``."""
    active: str
    """Version in force after the reload."""
    hash: str
    versions: list[str]
    """Every loaded version, oldest effective date first."""
    problems: list[str] = []
    """Why the files were refused (``file: key: reason``); empty unless refused."""


def fingerprint(root: Path) -> Fingerprint:
    """Path, size and mtime of every file under ``root``: changes whenever an edit lands."""
    out: list[tuple[str, int, int]] = []
    for path in sorted(root.rglob("*")):
        try:
            st = path.stat()
        except FileNotFoundError:  # removed while we looked; the next poll sees the result
            continue
        if path.is_file():
            out.append((str(path.relative_to(root)), st.st_size, st.st_mtime_ns))
    return tuple(out)


class TableReloader:
    """Loads ``root`` into ``store`` on demand; the running sets stay when the files are bad."""

    def __init__(
        self,
        store: TableStore,
        root: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        python_handlers: PythonHandlers | None = None,
        announce: bool = True,
    ) -> None:
        """
        Args:
            store: Where the loaded sets go.
            root: The table directory.
            clock: Now, for the set in force.
            python_handlers: The deployment's allow-list of python handlers.
            announce: Log reloads and refusals at INFO/ERROR; off (DEBUG) in ``usm serve``'s
                workers, whose API process already says it once for all of them.
        """
        self.store = store
        self._ok_level = logging.INFO if announce else logging.DEBUG
        self._refused_level = logging.ERROR if announce else logging.DEBUG
        self.root = root
        self.clock = clock
        self.python_handlers = python_handlers
        """The deployment's allow-list; tables naming other python handlers are refused."""
        self._lock = threading.Lock()
        self._seen: Fingerprint = fingerprint(root) if root.is_dir() else ()
        self._settling: Fingerprint | None = None

    def reload(self, trigger: str) -> ReloadReport:
        """Load every set now; swap them in if valid and different. Blocking: run in a thread."""
        with self._lock:
            self._seen = fingerprint(self.root) if self.root.is_dir() else ()
            current = self.store.versions
            try:
                new = Versions.of(load_all(self.root, self.python_handlers), current)
                # Tables with no set in force yet (the one in force moved away, only a future
                # one left) are refused: the future set must not come into force early.
                new.active(self.clock())
            except (InvalidTables, OSError) as exc:
                if isinstance(exc, InvalidTables):
                    problems = [str(p) for p in exc.problems]
                    result = ReloadResult.REJECTED
                else:
                    problems = [f"{self.root}: {exc}"]
                    result = ReloadResult.ERROR
                record_reload(result)
                # Error, not warning: what runs now differs from the files on disk.
                log.log(
                    self._refused_level,
                    "tables refused (%s): %d problem(s); %s stays in force: %s",
                    trigger,
                    len(problems),
                    current.active(self.clock()).version,
                    " | ".join(problems),  # one line: see service.logs
                )
                return self._report(result, trigger, current, problems)
            if new.identity() == current.identity():
                record_reload(ReloadResult.UNCHANGED)
                return self._report(ReloadResult.UNCHANGED, trigger, current)
            self.store.replace(new)
            record_reload(ReloadResult.SUCCESS)
            log.log(
                self._ok_level,
                "tables reloaded (%s): %s",
                trigger,
                ", ".join(f"{v} {h}" for v, h in new.identity()),
            )
            return self._report(ReloadResult.SUCCESS, trigger, new)

    def changed(self) -> bool:
        """True when a file under ``root`` was added, removed or edited since the last load."""
        now = fingerprint(self.root) if self.root.is_dir() else ()
        return now != self._seen

    def poll(self) -> ReloadReport | None:
        """Reload once the files changed and then held still for one poll.

        Waiting for two equal looks keeps a checkout or copy that is still writing files from
        being loaded half-way, which could otherwise pass validation and come into force for a
        moment. Refused files are not retried until they are edited again.
        """
        now = fingerprint(self.root) if self.root.is_dir() else ()
        if now == self._seen:
            self._settling = None
            return None
        if now != self._settling:
            self._settling = now
            return None
        self._settling = None
        return self.reload("watch")

    async def areload(self, trigger: str) -> ReloadReport:
        """:meth:`reload` off the event loop: parsing and validating must not stall requests."""
        return await anyio.to_thread.run_sync(self.reload, trigger)

    async def watch(self, interval: float) -> None:
        """Poll forever (until cancelled); an unexpected error is logged, never fatal."""
        while True:
            await asyncio.sleep(interval)
            try:
                await run_to_end(self.poll)
            except Exception:
                log.exception("table watch failed; retrying in %.1f s", interval)

    def _report(
        self,
        result: ReloadResult,
        trigger: str,
        versions: Versions,
        problems: list[str] | None = None,
    ) -> ReloadReport:
        active = versions.active(self.clock())
        return ReloadReport(
            result=result,
            trigger=trigger,
            active=active.version,
            hash=active.hash,
            versions=versions.names(),
            problems=problems or [],
        )
