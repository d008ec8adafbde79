"""``usm api`` on either ASGI server stops cleanly on SIGTERM and SIGINT, exiting 0.

uvicorn raises the stop signal again after its graceful shutdown; with the default SIGTERM
handler that would kill the process before ``usm serve`` stops its workers and Redis. run_api
turns that into a normal return, as granian's stop already is.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.table_edits import copy_default

USM = Path(sys.executable).with_name("usm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_usm_api_answers_then_exits_zero_on_a_stop_signal(
    server: str, sig: signal.Signals, tmp_path: Path
) -> None:
    copy_default(tmp_path / "tables")
    port = _free_port()
    env = {**os.environ, "USM_TABLES": str(tmp_path / "tables"), "USM_HOST": "127.0.0.1"}
    env.pop("REDIS_URL", None)
    env.pop("USM_SERVER", None)
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(USM), "api", "--server", server, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # Generous: granian starts a worker process, and the machine may be loaded.
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"usm api --server {server} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        call = {"type": "incident", "impact": "user", "urgency": "high"}
        scored = httpx.post(f"http://127.0.0.1:{port}/v1/priority", json=call, timeout=30)
        assert scored.status_code == 200

        proc.send_signal(sig)

        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
