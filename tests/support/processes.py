"""Real ``usm`` sub-command processes for the end-to-end and fault-injection tests.

One place for how the tests start ``usm api`` / ``usm worker`` (and other sub-commands) as
subprocesses on a free port, wait until they answer, and stop or kill whatever is left.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

__all__ = ["ROOT", "RUN_CLI", "ApiProcess", "ServeProcess", "UsmProcesses", "gone", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0
"""Longest wait for a process to answer: only a bound, met at once on an idle machine, but a
Python API process on a busy 2-core machine can take tens of seconds to import and bind."""
RUN_CLI = "import sys; from service.cli.main import main; sys.exit(main(sys.argv[1:]))"
"""``python -c`` program running the ``usm`` CLI of this checkout with the test's interpreter."""


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``.

    Args:
        what: Named in the failure message.
        check: Called every 50 ms.
        timeout: Seconds before the assertion fails.

    Returns:
        The first truthy value ``check`` returned.
    """
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


class UsmProcesses:
    """Starts ``usm`` sub-commands (cwd: the checkout, logs in ``workdir``), kills what is left."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log_paths: dict[int, Path] = {}
        """Log file of each started process, by pid."""

    def start(self, *args: str, log: str = "worker", **env: str) -> subprocess.Popen[bytes]:
        """Start ``usm *args`` with ``env`` on top of the shared one; output to ``log-N.log``."""
        path = self.workdir / f"{log}-{len(self.procs)}.log"
        out = open(path, "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_CLI, *args],
            cwd=ROOT,
            env={**self.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        self.procs.append(proc)
        self.log_paths[proc.pid] = path
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        """What ``proc`` wrote so far."""
        return self.log_paths[proc.pid].read_text(errors="replace")

    def worker(
        self, *extra: str, team: str = "service_desk", **env: str
    ) -> subprocess.Popen[bytes]:
        """``usm worker`` for ``team`` with a short lease and reaper, so kills show quickly."""
        return self.start(
            "worker", "--team", team, "--lease", "1.5", "--reaper", "0.3", *extra, **env
        )

    def logs(self) -> str:
        """Every log in ``workdir``, in name order."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.workdir.glob("*.log")))

    def stop_all(self) -> None:
        """SIGKILL every process still running."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


class ApiProcess:
    """A real ``usm api`` process on a free loopback port, where the wire and signals matter.

    ``command`` and ``env`` are complete (the callers in tests/security and
    tests/integration/governance differ in both); this class owns start, wait, signal and stop.
    """

    def __init__(
        self,
        command: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        port: int,
        *,
        ready: str = "/healthz",
        stop_timeout: float = 10.0,
        append: bool = True,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self.port = port
        self.ready = ready
        self.stop_timeout = stop_timeout
        self.append = append
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> subprocess.Popen[bytes]:
        """The started process (fails when it was not started or is stopped)."""
        assert self.proc is not None, "the API process is not started"
        return self.proc

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the process and wait until ``ready`` answers 200.

        Raises:
            RuntimeError: The process exited first (its log's tail is in the message).
            TimeoutError: It did not answer within ``timeout`` seconds.
        """
        with self.log_path.open("ab" if self.append else "wb") as out:
            self.proc = subprocess.Popen(
                self.command, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"API exited with {self.proc.returncode}: {self.log()[-2000:]}")
            try:
                if httpx.get(f"{self.url}{self.ready}", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"API did not answer within {timeout} s: {self.log()[-2000:]}")

    def reload_signal(self) -> None:
        """SIGUSR1: reload the tables."""
        self.running.send_signal(signal.SIGUSR1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout`` seconds."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(self.stop_timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None

    def log(self) -> str:
        """Everything the process wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ServeProcess:
    """A real ``usm serve`` (embedded Redis, workers, API) on free ports, in ``workdir``.

    Its output goes to ``workdir/<log>``; ``children()`` lists the processes it started.
    """

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str],
        port: int,
        *,
        log: str = "serve.log",
        prefix: Sequence[str] = (),
    ) -> None:
        self.workdir = workdir
        self.env = dict(env)
        self.port = port
        self.log_path = workdir / log
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> subprocess.Popen[bytes]:
        assert self.proc is not None, "usm serve is not started"
        return self.proc

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start ``usm serve *args`` without waiting (see :meth:`wait_ready`)."""
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.prefix, sys.executable, "-X", "faulthandler", "-c", RUN_CLI, "serve", *args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self.proc

    def status(self, path: str) -> int | None:
        """HTTP status of ``GET path``; None when nothing answers."""
        try:
            return httpx.get(f"{self.url}{path}", timeout=5.0).status_code
        except httpx.HTTPError:
            return None

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until ``/readyz`` answers 200; fails early with the log when the process exits."""

        def ready() -> bool:
            if self.running.poll() is not None:
                raise AssertionError(f"usm serve exited: {self.log()[-3000:]}")
            return self.status("/readyz") == 200

        wait_for("usm serve to be ready", ready, timeout)

    def children(self) -> list[int]:
        """Pids of the processes ``usm serve`` started (Redis, workers), from /proc."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.running.pid}/task").glob("*/children"):
            try:
                pids.extend(int(p) for p in task.read_text().split())
            except OSError:  # the thread ended while we looked
                continue
        return pids

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; SIGKILL if it hangs. Returns the exit status."""
        proc = self.running
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Hung: its threads' stacks go to its log (faulthandler) before it is killed.
                proc.send_signal(signal.SIGABRT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                raise AssertionError(
                    f"usm serve did not stop within {timeout:.0f}s of SIGTERM; its log, with "
                    f"every thread's stack at the end:\n{self.log()[-12000:]}"
                ) from None
        return proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts as gone: it runs nothing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")
