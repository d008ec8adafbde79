"""Service settings, read once from the environment (``USM_*`` and ``REDIS_URL``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Literal

import msgspec

__all__ = ["Settings"]

_ENTRY = r"[A-Za-z_][\w.]*(?::[A-Za-z_]\w*)?"
_HANDLERS = rf"^\s*(?:{_ENTRY}\s*(?:,\s*{_ENTRY}\s*)*)?$"
"""``USM_PYTHON_HANDLERS``: ``package.module`` or ``package.module:function`` entries."""


class Settings(msgspec.Struct, kw_only=True, frozen=True):
    """Everything configurable; each field maps to an environment variable."""

    tables: str = "tables"
    """``USM_TABLES``: directory holding the table set versions."""
    redis_url: str | None = None
    """``REDIS_URL``: Redis to use, ``redis://host:port/db`` or, through Sentinel,
    ``redis+sentinel://host:port,host:port/service_name``; when unset, ``usm serve`` starts its
    own."""
    redis_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    """``USM_REDIS_TIMEOUT_SECONDS``: longest one Redis command of a request may take; a frozen
    or partitioned Redis answers 503 after this, not after the OS' TCP timeouts."""
    redis_wait_replicas: Annotated[str, msgspec.Meta(pattern=r"^(auto|[0-9]{1,2})$")] = "auto"
    """``USM_REDIS_WAIT_REPLICAS``: replicas that must confirm an item write (Redis ``WAIT``)
    before the API answers; ``auto``: 1 through Sentinel or when the primary has replicas, else 0
    (no wait)."""
    redis_wait_timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=30)] = 1.0
    """``USM_REDIS_WAIT_TIMEOUT_SECONDS``: how long replicas have to confirm; then 503 (the write
    may have happened: clients retry, and item writes are idempotent)."""
    host: str = "127.0.0.1"
    """``USM_HOST``: address the API binds to."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    """``USM_PORT``: port the API binds to."""
    data_dir: str = "var"
    """``USM_DATA_DIR``: where the embedded Redis keeps its data."""
    redis_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    """``USM_REDIS_PORT``: port of the embedded Redis (``usm serve`` without REDIS_URL); 0 picks
    a free one."""
    redis_restart_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.5
    """``USM_REDIS_RESTART_SECONDS``: first wait before ``usm serve`` restarts its embedded Redis
    after it died; doubled for each quick failure, up to 30 s."""
    ready_needs_redis: bool = False
    """``USM_READY_NEEDS_REDIS``: ``/readyz`` answers 503 while Redis does not. Off for ``usm api``
    (replicas keep scoring while Redis is away), on for ``usm serve`` (its one Redis is part of
    the service)."""
    redis_appendfsync: Literal["everysec", "always"] = "everysec"
    """``USM_REDIS_APPENDFSYNC``: the embedded Redis' AOF fsync policy. ``everysec`` (Redis'
    advice) survives restarts and process crashes; ``always`` also a power loss, slower."""
    max_body_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 8 * 1024 * 1024
    """``USM_MAX_BODY_BYTES``: larger request bodies get 413."""
    max_header_bytes: Annotated[int, msgspec.Meta(ge=8192, le=1024 * 1024)] = 64 * 1024
    """``USM_MAX_HEADER_BYTES``: a request line plus headers larger than this gets 431, on
    uvicorn and on granian alike."""
    lease_seconds: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    """``USM_LEASE_SECONDS``: a worker's lease on an item; a dead worker's item returns after it."""
    reaper_seconds: Annotated[float, msgspec.Meta(gt=0, le=300)] = 5.0
    """``USM_REAPER_SECONDS``: how often expired leases are looked for."""
    claim_lease_seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)] = 900.0
    """``USM_CLAIM_LEASE_SECONDS``: lease of an item claimed over HTTP (pull-mode teams)."""
    result_ttl_seconds: Annotated[int, msgspec.Meta(ge=60, le=366 * 86400)] = 7 * 86400
    """``USM_RESULT_TTL_SECONDS``: how long a completed or cancelled item stays readable and its
    (source, external_id) reserved. Redis holds roughly 7-10 KiB per item for this long."""
    max_deliveries: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 10
    """``USM_MAX_DELIVERIES``: hand-outs without finishing before an item is dead-lettered."""
    max_payload_bytes: Annotated[int, msgspec.Meta(ge=256)] = 64 * 1024
    """``USM_MAX_PAYLOAD_BYTES``: largest item ``payload`` (encoded JSON)."""
    writeback_seconds: Annotated[float, msgspec.Meta(gt=0, le=60)] = 0.5
    """``USM_WRITEBACK_SECONDS``: how often the API looks for decisions to write back into
    ticketing tools (source write-back, docs/integrations/)."""
    api_keys_file: str | None = None
    """``USM_API_KEYS_FILE``: TOML file of ``[[keys]]`` (name, hash, scopes); see
    docs/security.md."""
    api_keys: str | None = None
    """``USM_API_KEYS``: keys as ``NAME:SCOPE[,SCOPE]:sha256:HEX`` entries separated by ``;``."""
    python_handlers: Annotated[str, msgspec.Meta(pattern=_HANDLERS)] = ""
    """``USM_PYTHON_HANDLERS``: the ``python`` handlers workers may run, separated by commas:
    modules of installed packages (``acme.usm``: every callable in it and its submodules) or
    exact ``module:function`` targets. Empty: none. The tables cannot widen this, so a pull
    request to ``tables/`` cannot make workers run its own code (see docs/dispatch.md)."""
    rate_limit: Annotated[
        str, msgspec.Meta(pattern=r"^(off|0|[1-9][0-9]*/(second|minute|hour|day))$")
    ] = "1000/second"
    """``USM_RATE_LIMIT``: requests per API key, e.g. ``600/minute``; ``off`` disables it."""

    def __post_init__(self) -> None:
        if self.redis_wait_timeout_seconds >= self.redis_timeout_seconds:
            raise ValueError(
                "USM_REDIS_WAIT_TIMEOUT_SECONDS must be below USM_REDIS_TIMEOUT_SECONDS "
                f"({self.redis_wait_timeout_seconds} >= {self.redis_timeout_seconds})"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from ``env`` (default ``os.environ``), then ``overrides`` that are not None."""
        env = os.environ if env is None else env
        raw: dict[str, object] = {}
        for name in cls.__struct_fields__:
            key = "REDIS_URL" if name == "redis_url" else f"USM_{name.upper()}"
            if key in env and env[key] != "":
                raw[name] = env[key]
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return msgspec.convert(raw, cls, strict=False)
