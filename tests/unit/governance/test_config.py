"""Governance settings come from ``USM_*`` variables; bad values are refused by name."""

from __future__ import annotations

import msgspec
import pytest

from service.governance.config import GovernanceConfig


def test_defaults_poll_every_second_and_keep_100k_decisions() -> None:
    cfg = GovernanceConfig.from_env({})
    assert (cfg.watch_interval, cfg.decision_log_maxlen, cfg.decision_log_flush) == (
        1.0,
        100_000,
        0.2,
    )


def test_variables_override_the_defaults() -> None:
    cfg = GovernanceConfig.from_env(
        {"USM_TABLES_WATCH_INTERVAL": "0", "USM_DECISION_LOG_MAXLEN": "500", "OTHER": "x"}
    )
    assert (cfg.watch_interval, cfg.decision_log_maxlen) == (0.0, 500)


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(msgspec.ValidationError) as exc:
        GovernanceConfig.from_env({"USM_DECISION_LOG_FLUSH": "0"})
    assert str(exc.value) == "Expected `float` > 0.0 - at `$.decision_log_flush`"
