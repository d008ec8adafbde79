"""Settings come from the environment, typed and bounded."""

from __future__ import annotations

import msgspec
import pytest

from service.dispatch.config import DispatchConfig
from service.settings import Settings


def test_the_environment_sets_fields_and_overrides_win() -> None:
    env = {"USM_PORT": "9001", "REDIS_URL": "redis://h:1/0", "USM_TABLES": "/srv/tables"}
    settings = Settings.from_env(env, port=9002)
    assert (settings.port, settings.redis_url, settings.tables) == (
        9002,
        "redis://h:1/0",
        "/srv/tables",
    )


def test_an_empty_variable_counts_as_unset() -> None:
    assert Settings.from_env({"REDIS_URL": ""}).redis_url is None


def test_item_retention_reaches_the_dispatch_config() -> None:
    settings = Settings.from_env({"USM_RESULT_TTL_SECONDS": "3600", "USM_LEASE_SECONDS": "12"})
    config = DispatchConfig.from_settings(settings)
    assert (config.result_ttl, config.lease_seconds, config.heartbeat_seconds) == (3600, 12.0, 4.0)


def test_a_value_out_of_bounds_is_refused_naming_the_field() -> None:
    with pytest.raises(
        msgspec.ValidationError, match=r"Expected `int` >= 60 - at `\$.result_ttl_seconds`"
    ):
        Settings.from_env({"USM_RESULT_TTL_SECONDS": "1"})
