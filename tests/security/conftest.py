"""Keys for the security tests: one per scope and one with all, made the way operators make them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from service.api.app import create_app
from service.security.keys import hash_key, new_key
from service.settings import Settings


@dataclass(frozen=True)
class Keys:
    score: str
    dispatch: str
    admin: str
    everything: str

    def env(self) -> str:
        """``USM_API_KEYS`` holding the hashes of all four keys."""
        return ";".join(
            [
                f"scorer:score:{hash_key(self.score)}",
                f"dispatcher:dispatch:{hash_key(self.dispatch)}",
                f"operator:admin:{hash_key(self.admin)}",
                f"root:score,dispatch,admin:{hash_key(self.everything)}",
            ]
        )


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(new_key(), new_key(), new_key(), new_key())


def keyed_app(keys: Keys, **settings: object) -> Litestar:
    return create_app(Settings.from_env({}, api_keys=keys.env(), **settings))


@pytest.fixture
def client(keys: Keys) -> Iterator[TestClient[Litestar]]:
    """The API with the four keys configured, rate limits off, no Redis."""
    with TestClient(keyed_app(keys, rate_limit="off")) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
