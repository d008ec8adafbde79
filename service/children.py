"""Child processes that die with their parent, and telling whose process a pid is.

``usm serve`` starts Redis and workers. When it is killed outright (SIGKILL, the OOM killer) no
``finally`` runs, so the children must learn of it from the kernel: Linux sends a child a chosen
signal when the *thread* that started it ends (``PR_SET_PDEATHSIG``). A thread that starts
children therefore lives as long as they do.

A pid in a pid file proves nothing after a crash: the process may be gone, a zombie, or the pid
reused by something else. :func:`proc_info` reads ``/proc`` so callers check what it really is.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcInfo", "die_with_parent", "port_in_use", "proc_info"]

_PR_SET_PDEATHSIG = 1
"""``prctl`` option from ``<linux/prctl.h>``."""


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets ``sig`` when we die.

    SIGTERM lets Redis flush its append-only file and a worker finish the item in hand. The
    check after ``prctl`` closes the gap where the parent dies between ``fork`` and ``prctl``.
    Returns None off Linux, where there is no such call (the workers' parent watch remains).
    """
    if not sys.platform.startswith("linux"):
        return None
    # Loaded here, before fork: the child only calls an already resolved function.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


@dataclass(frozen=True)
class ProcInfo:
    """What ``/proc/<pid>`` says about a process."""

    pid: int
    ppid: int
    state: str
    """``R``, ``S``, ``D``…; ``Z`` is a zombie (dead, not yet reaped), ``X`` dead."""
    comm: str
    """Executable name (first 15 bytes), e.g. ``redis-server``."""
    cwd: Path | None
    """Working directory (Redis changes into its ``--dir``); None when unreadable."""

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def proc_info(pid: int) -> ProcInfo | None:
    """The process ``pid`` as ``/proc`` shows it; None when it does not exist (or no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
    head, _, rest = stat.rpartition(")")
    comm = head.partition("(")[2]
    fields = rest.split()
    cwd = None
    with contextlib.suppress(OSError):
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    return ProcInfo(pid=pid, ppid=int(fields[1]), state=fields[0], comm=comm, cwd=cwd)


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (bound as uvicorn binds it).

    ``SO_REUSEADDR`` as servers set it: a port in TIME_WAIT after a restart is free, a
    listening one is not.
    """
    if port == 0:
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host.strip("[]"), port))
        except OSError as exc:
            # Anything else (no such address, a privileged port) the server reports itself.
            return exc.errno == errno.EADDRINUSE
    return False
