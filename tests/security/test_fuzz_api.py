"""schemathesis against the running service's own OpenAPI document: never a 5xx, no undocumented
status. A real uvicorn process serves it with a real Redis, keys on, the way production runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import status_code_conformance

from service.security.keys import hash_key, new_key
from tests.security.process import ApiProcess

KEY = new_key()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_server: object) -> Iterator[ApiProcess]:
    url = redis_server.url  # type: ignore[attr-defined]
    env = {"REDIS_URL": url, "USM_API_KEYS": f"fuzzer:score,dispatch,admin:{hash_key(KEY)}"}
    server = ApiProcess(tmp_path_factory.mktemp("api") / "api.log", env)
    server.start()
    yield server
    server.stop()
    assert KEY not in server.log(), "the API key reached the server's log"


FUZZED = ("/v1/priority", "/v1/tables", "/v1/items", "/v1/teams", "/v1/dead-letters")
"""Path prefixes fuzzed. Admin reload is left out: reloading in a loop is tests/reliability's."""
EXAMPLES = 40
"""Per operation; the whole run stays well under two minutes on the 2-core box."""


def _fuzz(operation: APIOperation, failures: list[str]) -> None:
    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(
            headers={"Authorization": f"Bearer {KEY}"},
            checks=[not_a_server_error, status_code_conformance],
            timeout=10,
        )

    try:
        run()
    except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup, shrunk
        found = [str(e).strip() for e in getattr(exc, "exceptions", [exc])]
        failures.append(f"{operation.label}: {' | '.join(found)[:600]}")


def test_no_request_gets_a_server_error_or_an_undocumented_status(api: ApiProcess) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/schema/openapi.json")
    failures: list[str] = []
    fuzzed = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operation.path.startswith(FUZZED):
            continue
        fuzzed.append(operation.label)
        _fuzz(operation, failures)
    assert "POST /v1/priority" in fuzzed
    assert failures == [], "\n".join(f.replace("\n", " ") for f in failures)


def test_the_server_log_never_holds_the_key(api: ApiProcess, tmp_path: Path) -> None:
    import httpx

    httpx.post(f"{api.url}/v1/priority", json={"type": "x"}, headers={"X-API-Key": KEY})
    httpx.post(f"{api.url}/v1/priority", json={}, headers={"X-API-Key": KEY + "0"})
    assert "fuzzer" in api.log() or "API keys required" in api.log()
    assert KEY not in api.log()
