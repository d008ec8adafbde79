"""``usm serve`` supervises and cleans up: crashes, a dead Redis, a hang-up, a busy port.

Every test runs the real command: its embedded redis-server, its worker processes and its API.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.conftest import ServeFactory
from tests.support.processes import ServeProcess, gone, wait_for
from tests.support.redis_server import find_redis_server, free_port, without_preload

INCIDENT = {"type": "incident", "impact": "user", "urgency": "low", "source": "e2e"}
PUSH_TEAMS = 4
"""Push-mode teams in the 2026.1 tables: one worker each."""

pytestmark = pytest.mark.timeout(180)


def _children(serve: ServeProcess) -> list[int]:
    return wait_for(
        "Redis and a worker per push team",
        lambda: (pids := serve.children()) and len(pids) == 1 + PUSH_TEAMS and pids,
    )


def test_a_killed_usm_serve_takes_its_redis_and_workers_with_it(
    serve_factory: ServeFactory,
) -> None:
    serve = serve_factory()
    serve.start()
    serve.wait_ready()
    children = _children(serve)
    serve.running.kill()
    serve.running.wait()
    wait_for("Redis and every worker to exit", lambda: all(gone(p) for p in children), 60)


def test_a_start_after_a_crash_ignores_a_stale_pid_file(
    tmp_path: Path, serve_factory: ServeFactory
) -> None:
    # A pid file naming a live process that is not our Redis (here: this test) is stale.
    pidfile = tmp_path / "var" / "redis" / "redis.pid"
    pidfile.parent.mkdir(parents=True)
    pidfile.write_text(f"{os.getpid()}\n")
    serve = serve_factory()
    serve.start()
    serve.wait_ready()
    assert "stale Redis pid file" in serve.log()
    assert serve.stop() == 0


def test_a_redis_left_running_on_the_data_dir_by_a_crash_is_taken_over(
    tmp_path: Path, serve_factory: ServeFactory
) -> None:
    # What a crash leaves where the kernel does not stop children with their parent: a Redis on
    # our data dir, its pid file, and no owner. Its data must survive the take-over.
    data = tmp_path / "var" / "redis"
    data.mkdir(parents=True)
    port = free_port()
    orphan = subprocess.Popen(
        [
            find_redis_server(),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(data)),
            *("--appendonly", "yes", "--save", "", "--pidfile", str(data / "redis.pid")),
        ],
        env=without_preload(),
        stdout=subprocess.DEVNULL,
    )
    try:
        conn = redis.Redis(port=port)
        wait_for("the orphan Redis", lambda: _ping(conn))
        conn.set("kept", "yes")
        conn.close()
        wait_for("its pid file", (data / "redis.pid").exists)
        serve = serve_factory(USM_REDIS_PORT=str(port))
        serve.start()
        serve.wait_ready()
        assert orphan.wait(30) == 0  # stopped with SIGTERM: it flushed its AOF
        assert f"an embedded Redis (pid {orphan.pid}) from an earlier usm serve" in serve.log()
        assert redis.Redis(port=port).get("kept") == b"yes"
        assert serve.stop() == 0
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def _ping(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.ConnectionError:
        return False


def test_a_killed_embedded_redis_is_restarted_and_readyz_says_not_ready_meanwhile(
    tmp_path: Path, serve_factory: ServeFactory
) -> None:
    # A 3 s first back-off keeps the not-ready window wide enough to see on a loaded machine.
    serve = serve_factory(USM_REDIS_RESTART_SECONDS="3")
    serve.start()
    serve.wait_ready()
    pid = int((tmp_path / "var" / "redis" / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for("/readyz to say not ready", lambda: serve.status("/readyz") == 503)
    wait_for(
        "the death logged",
        lambda: f"embedded Redis (pid {pid}) stopped: killed by SIGKILL" in serve.log(),
    )
    wait_for("/readyz ready again", lambda: serve.status("/readyz") == 200, 60)
    # Redis answers (readyz 200) a moment before the keeper logs that it is back.
    wait_for("the restart logged", lambda: "embedded Redis restarted" in serve.log())
    assert pid not in serve.children()  # reaped: no <defunct> zombie left under usm serve
    item = wait_for(
        "dispatch to accept items again",
        lambda: (
            httpx.post(
                f"{serve.url}/v1/items", json={**INCIDENT, "external_id": "R"}, timeout=5
            ).status_code
            in (200, 201)
        ),
    )
    assert item
    assert serve.stop() == 0


def test_sighup_stops_usm_serve_and_its_children(serve_factory: ServeFactory) -> None:
    serve = serve_factory()
    serve.start()
    serve.wait_ready()
    children = _children(serve)
    serve.running.send_signal(signal.SIGHUP)
    try:
        assert serve.running.wait(60) == 0
    except subprocess.TimeoutExpired:
        serve.running.kill()
        tail = serve.log()[-2000:]
        raise AssertionError(f"usm serve kept running after SIGHUP: {tail}") from None
    wait_for("Redis and every worker to exit", lambda: all(gone(p) for p in children), 60)


def test_a_busy_port_is_refused_before_redis_or_workers_start(
    tmp_path: Path, serve_factory: ServeFactory
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        serve = serve_factory(port)
        code = serve.start().wait(60)
    log = serve.log()
    assert code != 0
    assert (
        f"usm serve: port {port} on 127.0.0.1 is already in use (another usm serve?); "
        "choose another with --port or USM_PORT"
    ) in log
    assert not (tmp_path / "var" / "redis").exists(), "an embedded Redis was started"
    assert "worker for team" not in log
    assert "Errno 98" not in log


def _on_a_small_disk(data: Path, size: str = "2m") -> list[str]:
    """A command prefix running ``usm serve`` with ``data`` on a tmpfs of ``size`` of its own.

    A private mount namespace: the tmpfs exists for that process tree only and goes with it.
    Without root, a user namespace (``-r``) grants the mount.
    """
    mount = f'mount -t tmpfs -o size={size} tmpfs "{data}" && exec "$0" "$@"'
    return ["unshare", "-m" if os.geteuid() == 0 else "-rm", "sh", "-c", mount]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().partition("=")[::2] for e in raw if e)


def test_a_full_data_disk_kills_nothing_and_scoring_keeps_answering(
    tmp_path: Path, serve_factory: ServeFactory
) -> None:
    data = tmp_path / "var"
    data.mkdir()
    serve = serve_factory(prefix=_on_a_small_disk(data))
    serve.start()
    serve.wait_ready()
    children = _children(serve)
    workers = [p for p in children if "--team" in Path(f"/proc/{p}/cmdline").read_text()]
    metrics = {_environ(p)["PROMETHEUS_MULTIPROC_DIR"] for p in workers}
    assert len(metrics) == 1 and not metrics.pop().startswith(str(data))
    # Items with a large payload until Redis can no longer write its append-only file.
    payload = {"notes": "x" * 40_000}
    answers: list[int] = []
    for n in range(200):
        body = {**INCIDENT, "type": "change", "external_id": f"F{n}", "payload": payload}
        answers.append(httpx.post(f"{serve.url}/v1/items", json=body, timeout=10).status_code)
        if answers[-1] not in (200, 201):
            break
    assert answers[-1] not in (200, 201), "the 2 MB data disk never filled up"
    # Every worker meets the refusal, and waits instead of dying.
    wait_for(
        "every worker to wait on the full disk",
        lambda: serve.log().count("redis unavailable (MISCONF") >= PUSH_TEAMS,
        60,
    )
    assert serve.running.poll() is None
    assert all(not gone(p) for p in children), serve.log()[-3000:]
    assert sorted(serve.children()) == sorted(children)  # none replaced: none died
    scored = httpx.post(
        f"{serve.url}/v1/priority", json={"type": "incident", "impact": "user", "urgency": "low"}
    )
    assert scored.status_code == 200
    assert httpx.get(f"{serve.url}/metrics").status_code == 200
    assert serve.stop() == 0
    wait_for("Redis and every worker to exit", lambda: all(gone(p) for p in children), 60)
