"""``REDIS_URL`` through Sentinel: what the URL says, and its mistakes named with the format."""

from __future__ import annotations

import pytest

from service.connection import SentinelTarget, is_sentinel, parse_sentinel_url, redacted

FORMAT = "redis+sentinel://[:password@]host:port[,host:port...]/service_name[?db=N]"


def test_a_sentinel_url_names_every_sentinel_the_service_and_the_database() -> None:
    url = "redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-b:26380/usm/2?sentinel_password=x"
    assert is_sentinel(url)
    assert parse_sentinel_url(url) == SentinelTarget(
        sentinels=(("10.0.0.1", 26379), ("sentinel-b", 26380)),
        service="usm",
        db=2,
        password="s@cret",
        sentinel_password="x",
    )


def test_the_database_may_come_as_a_query_parameter_and_defaults_to_0() -> None:
    assert parse_sentinel_url("redis+sentinel://h:1/usm?db=3").db == 3
    assert parse_sentinel_url("redis+sentinel://h:1/usm").db == 0


def test_a_plain_url_is_not_a_sentinel_url() -> None:
    assert not is_sentinel("redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://h:1", f"the Sentinel URL names no service; expected {FORMAT}"),
        ("redis+sentinel://h/usm", f"sentinel address 'h' needs host:port; expected {FORMAT}"),
        ("redis+sentinel://h:1/usm/x", f"database 'x' is not a number; expected {FORMAT}"),
        ("redis://h:1/0", f"not a Sentinel URL: expected {FORMAT}"),
    ],
)
def test_a_malformed_sentinel_url_is_refused_with_the_expected_form(url: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_sentinel_url(url)
    assert str(err.value) == message


def test_logged_urls_lose_their_password() -> None:
    assert redacted("redis+sentinel://:pw@h:1,g:2/usm") == "redis+sentinel://***@h:1,g:2/usm"
    assert redacted("redis://h:1/0") == "redis://h:1/0"
