"""Which ASGI server ``run_api`` uses: uvicorn unless told otherwise (docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from service.api.server import DEFAULT_SERVER, SERVERS, server_name


def test_the_default_server_is_the_one_the_benchmark_chose() -> None:
    assert server_name(None, env={}) == DEFAULT_SERVER == "uvicorn"


def test_usm_server_in_the_environment_picks_the_server() -> None:
    assert server_name(None, env={"USM_SERVER": "granian"}) == "granian"


def test_an_explicit_choice_wins_over_the_environment() -> None:
    assert server_name("uvicorn", env={"USM_SERVER": "granian"}) == "uvicorn"


def test_an_empty_usm_server_means_the_default() -> None:
    assert server_name(None, env={"USM_SERVER": ""}) == DEFAULT_SERVER


def test_an_unknown_server_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError) as exc:
        server_name(None, env={"USM_SERVER": "hypercorn"})

    assert str(exc.value) == "unknown server 'hypercorn'; allowed: uvicorn, granian"
    assert SERVERS == ("uvicorn", "granian")
