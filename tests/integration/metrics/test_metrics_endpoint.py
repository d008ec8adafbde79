"""``GET /metrics`` on the real app: decisions, scoring time, tables, HTTP by route, queues."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from service.api.app import create_app
from service.files.loader import LoadedSet
from service.files.store import TableStore
from service.metrics.tables import ReloadResult, record_reload
from service.settings import Settings
from tests.fixtures.api import LOOPBACK
from tests.integration.metrics.conftest import Samples, labels, parse
from tests.support.redis_server import free_port

OPENMETRICS = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.fixture
def client(redis_url: str, default_set: LoadedSet) -> Iterator[TestClient[object]]:
    app = create_app(Settings(redis_url=redis_url), store=TableStore([default_set]))
    with TestClient(app, base_url=LOOPBACK) as c:
        yield c


def scrape(client: TestClient[object]) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


def test_decisions_are_counted_by_call_type_priority_and_table_version(
    client: TestClient[object], default_set: LoadedSet
) -> None:
    before = scrape(client)
    calls = [{"type": "incident", "impact": "organisation", "urgency": "immediate"}] * 3 + [
        {"type": "change", "impact": "user", "urgency": "low"}
    ]
    assert client.post("/v1/priority/batch", json={"calls": calls}).status_code == 200
    assert client.post("/v1/priority", json=calls[-1]).status_code == 200
    after = scrape(client)

    def delta(call_type: str, priority: str) -> float:
        key = (
            "usm_decisions_total",
            labels(call_type=call_type, priority=priority, table_version=default_set.version),
        )
        return after.get(key, 0) - before.get(key, 0)

    assert delta("incident", "P1") == 3
    assert delta("change", "P5") == 2
    scored = ("usm_scoring_seconds_count", ())
    assert after[scored] - before.get(scored, 0) == 2


def test_refused_calls_are_not_counted_as_decisions(client: TestClient[object]) -> None:
    before = scrape(client)
    bad = {"type": "incident", "impact": "user", "urgency": "hgih"}
    assert client.post("/v1/priority", json=bad).status_code == 422
    after = scrape(client)
    counted = {k: v for k, v in after.items() if k[0] == "usm_decisions_total"}
    assert counted == {k: v for k, v in before.items() if k[0] == "usm_decisions_total"}


def test_http_requests_are_labelled_by_route_template_and_status(
    client: TestClient[object],
) -> None:
    client.post("/v1/priority", json={"type": "incident", "impact": "user", "urgency": "hgih"})
    samples = scrape(client)
    key = labels(app_name="usm", method="POST", path="/v1/priority", status_code="422")
    assert samples[("usm_http_requests_total", key)] >= 1
    assert samples[("usm_http_request_duration_seconds_count", key)] >= 1
    # Scrapes are not traffic.
    assert not [k for k in samples if k[0] == "usm_http_requests_total" and "/metrics" in str(k)]


def test_the_table_set_in_force_and_its_targets_are_reported(
    client: TestClient[object], default_set: LoadedSet
) -> None:
    samples = scrape(client)
    info = labels(version=default_set.version, hash=default_set.hash)
    assert samples[("usm_table_info", info)] == 1
    for level in default_set.tables.levels.priority:
        key = ("usm_priority_response_target_seconds", labels(priority=level.name))
        assert samples[key] == level.response.total_seconds()
    pull = [t.name for t in default_set.tables.teams.team if t.mode == "pull"]
    for team in pull:
        key = ("usm_team_info", labels(team=team, mode="pull", handler="log"))
        assert samples[key] == 1


def test_reload_results_are_counted_and_every_result_starts_at_zero(
    client: TestClient[object],
) -> None:
    before = scrape(client)
    for result in ReloadResult:
        assert ("usm_table_reloads_total", labels(result=result.value)) in before
    record_reload(ReloadResult.REJECTED)
    record_reload("success", at=1_800_000_000.0)
    after = scrape(client)
    rejected = ("usm_table_reloads_total", labels(result="rejected"))
    assert after[rejected] - before[rejected] == 1
    assert after[("usm_table_last_load_timestamp_seconds", ())] == 1_800_000_000.0


def test_a_typo_in_a_reload_result_is_refused() -> None:
    with pytest.raises(ValueError, match="'sucess' is not a valid ReloadResult"):
        record_reload("sucess")


def test_queue_state_is_read_from_redis_at_scrape_time(client: TestClient[object]) -> None:
    samples = scrape(client)
    assert samples[("usm_redis_up", ())] == 1
    assert samples[("usm_queue_depth", labels(team="service_desk", priority="P1"))] == 0


def test_metrics_answer_with_redis_down_and_say_so(default_set: LoadedSet) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with TestClient(create_app(settings, store=TableStore([default_set])), base_url=LOOPBACK) as c:
        samples = scrape(c)
    assert samples[("usm_redis_up", ())] == 0
    assert not [k for k in samples if k[0] == "usm_queue_depth"]
    assert samples[("usm_table_info", labels(version=default_set.version, hash=default_set.hash))]


def test_openmetrics_is_served_when_prometheus_asks_for_it(client: TestClient[object]) -> None:
    response = client.get("/metrics", headers={"accept": OPENMETRICS})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE usm_table info" in response.text


def test_a_refusal_raised_before_the_handler_is_counted_with_its_own_status(
    redis_url: str, default_set: LoadedSet
) -> None:
    from service.security.keys import hash_key, new_key

    settings = Settings(redis_url=redis_url, api_keys=f"scorer:score:{hash_key(new_key())}")
    with TestClient(create_app(settings, store=TableStore([default_set]))) as c:
        call = {"type": "incident", "impact": "user", "urgency": "low"}
        before = scrape(c)
        assert c.post("/v1/priority", json=call).status_code == 401  # no key
        after = scrape(c)
    route = {"app_name": "usm", "method": "POST", "path": "/v1/priority"}
    refused = ("usm_http_requests_total", labels(**route, status_code="401"))
    answered = ("usm_http_requests_total", labels(**route, status_code="200"))
    assert after[refused] - before.get(refused, 0) == 1
    assert after.get(answered, 0) == before.get(answered, 0)
