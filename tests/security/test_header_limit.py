"""Request heads are bounded on both servers: 431 past ``USM_MAX_HEADER_BYTES``, and the server
stays responsive meanwhile.

Real ``usm api`` processes (uvicorn with httptools, and granian) and raw sockets: the bound lives
in the HTTP protocol, below the app. The big head is never finished: a server without a bound
would wait for the rest, so an answer at all proves the refusal came from the bound, without a
timing assertion. (Before the bound, a 50 MB header held uvicorn's event loop for 7 s.)
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.security.process import ApiProcess

LIMIT = 64 * 1024
CALL = {"type": "incident", "impact": "user", "urgency": "low"}


@pytest.fixture(scope="module", params=["uvicorn", "granian"])
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    server = ApiProcess(
        tmp_path_factory.mktemp(request.param) / "api.log", {"USM_SERVER": request.param}
    )
    server.start()
    yield server
    server.stop()


def raw(api: ApiProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=30)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """Everything until the server closes (or 30 s pass: then the test fails on the content)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_an_unfinished_one_megabyte_header_gets_431_and_healthz_still_answers(
    api: ApiProcess,
) -> None:
    sock = raw(api)
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        sent = 0
        with pytest.raises(OSError):  # the server closes before the megabyte is through
            while sent < 1024 * 1024:
                sock.sendall(b"a" * 16384)
                sent += 16384
                # /healthz answers while the big head arrives on the other connection
                assert httpx.get(f"{api.url}/healthz", timeout=10).status_code == 200
            sock.sendall(b"a")  # the unbounded server is still reading: fail below
            raise AssertionError("a whole megabyte of header was accepted")
        answer = read_answer(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert sent <= 4 * LIMIT
    assert httpx.get(f"{api.url}/healthz", timeout=10).status_code == 200


def test_one_byte_over_the_limit_is_431_and_uvicorn_names_the_limit(api: ApiProcess) -> None:
    sock = raw(api)
    try:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
            + b"a" * (LIMIT + 1)
            + b"\r\n\r\n"
        )
        answer = read_answer(sock)
    finally:
        sock.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    if api.env["USM_SERVER"] == "granian":
        return  # granian (hyper) writes its own 431, without a body
    assert json.loads(body) == {
        "status": 431,
        "title": "Request Header Fields Too Large",
        "detail": f"request headers are too large; allowed: at most {LIMIT} bytes",
    }


def test_heads_under_the_limit_and_big_bodies_pass(api: ApiProcess) -> None:
    big_header = {"x-ticket-context": "a" * (LIMIT // 2)}
    assert httpx.get(f"{api.url}/healthz", headers=big_header, timeout=10).status_code == 200
    batch = {"calls": [CALL] * 5000}  # ~300 KB: bodies are not heads
    answer = httpx.post(f"{api.url}/v1/priority/batch", json=batch, timeout=60)
    assert answer.status_code == 200, answer.text[:300]
    assert len(answer.json()["decisions"]) == 5000


def test_keep_alive_requests_each_get_their_own_allowance(api: ApiProcess) -> None:
    header = {"x-ticket-context": "a" * (LIMIT // 2)}
    with httpx.Client(base_url=api.url, timeout=10) as client:
        for _ in range(5):  # one connection: 5 x 32 KiB of heads in all, each under the limit
            assert client.get("/healthz", headers=header).status_code == 200
