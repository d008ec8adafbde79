"""The webhook verification snippet in docs/security.md accepts what workers sign, and only that."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from worker.handlers import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def _verify() -> Any:
    text = DOC.read_text()
    block = re.search(r"```python\n(.*?def verify_usm_webhook.*?)```", text, re.S)
    assert block, "docs/security.md lost its verification snippet"
    namespace: dict[str, Any] = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    return namespace["verify_usm_webhook"]


def test_the_documented_headers_are_the_ones_workers_send() -> None:
    text = DOC.read_text()
    assert f"`{SIGNATURE_HEADER}`" in text
    assert f"`{TIMESTAMP_HEADER}`" in text


def test_the_snippet_accepts_a_worker_signature_and_refuses_tampering_and_replay() -> None:
    verify = _verify()
    secret, body = b"s3cret", b'{"id":"abc","team":"service_desk"}'
    ts = str(int(time.time()))
    headers = {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}
    assert verify(secret, headers, body) is True
    assert verify(b"other", headers, body) is False
    assert verify(secret, headers, body + b" ") is False
    old = str(int(time.time()) - 3600)
    assert (
        verify(secret, {TIMESTAMP_HEADER: old, SIGNATURE_HEADER: sign(secret, old, body)}, body)
        is False
    )
    assert verify(secret, {TIMESTAMP_HEADER: ts}, body) is False
