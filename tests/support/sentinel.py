"""A real Redis Sentinel deployment on loopback: a primary, a replica and three sentinels.

Free ports, data in a temp dir; the sentinels decide after ``down_after_ms`` (short, so a
failover takes seconds). Nodes can be SIGKILLed, SIGSTOPped and restarted on their port; the
sentinels turn a returning old primary into a replica.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.support.processes import wait_for
from tests.support.redis_server import RedisServer, free_port, without_preload

__all__ = ["SERVICE", "SentinelCluster"]

SERVICE = "usm"


def _sentinel_binary() -> str:
    found = shutil.which("redis-sentinel")
    if found is None:
        raise AssertionError("redis-sentinel not on PATH: `scripts/dev test` installs it")
    return found


class SentinelCluster:
    """Two data nodes (``nodes[0]`` starts as primary) and three sentinels watching them."""

    def __init__(
        self, root: Path, down_after_ms: int = 1000, node_options: list[str] | None = None
    ):
        self.root = root
        self.down_after_ms = down_after_ms
        self.nodes = [
            RedisServer(root / f"node{i}", appendonly=True, extra=list(node_options or []))
            for i in range(2)
        ]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def start(self) -> None:
        primary, replica = self.nodes
        primary.start()
        replica.extra += ["--replicaof", "127.0.0.1", str(primary.port)]
        replica.start()
        self.wait_replicated(primary)
        for n, port in enumerate(self.sentinel_ports):
            d = self.root / f"sentinel{n}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {d}\nlogfile {d / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 4000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            self.sentinels.append(
                subprocess.Popen(
                    [_sentinel_binary(), str(conf)],
                    env=without_preload(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        wait_for("the sentinels to find each other and the replica", self._sentinels_ready)

    def _ask(self, port: int, *command: str) -> object:
        conn = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return conn.execute_command(*command)  # type: ignore[no-untyped-call]
        except redis.RedisError:
            return None
        finally:
            conn.close()

    def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            info = self._ask(port, "SENTINEL", "MASTER", SERVICE)
            if not isinstance(info, dict):
                return False
            others, replicas = info.get(b"num-other-sentinels", 0), info.get(b"num-slaves", 0)
            if int(others) < 2 or int(replicas) < 1:
                return False
        return True

    def primary_port(self) -> int | None:
        """Where a majority of the sentinels say the primary is."""
        votes: dict[int, int] = {}
        for port in self.sentinel_ports:
            got = self._ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            if isinstance(got, list) and len(got) == 2:
                p = int(got[1])
                votes[p] = votes.get(p, 0) + 1
        best = max(votes.items(), key=lambda kv: kv[1], default=(None, 0))
        return best[0] if best[1] >= 2 else None

    def primary(self) -> RedisServer:
        port = self.primary_port()
        return next(n for n in self.nodes if n.port == port)

    def other(self, node: RedisServer) -> RedisServer:
        return next(n for n in self.nodes if n is not node)

    def wait_promoted(self, node: RedisServer, timeout: float = 90.0) -> float:
        """Wait until the sentinels name ``node`` primary and it says so; seconds waited."""
        t0 = time.monotonic()

        def promoted() -> bool:
            if self.primary_port() != node.port:
                return False
            role = self._ask(node.port, "ROLE")
            return isinstance(role, list) and role[0] == b"master"

        wait_for(f"node on {node.port} to be promoted", promoted, timeout=timeout)
        return time.monotonic() - t0

    def wait_replicated(self, primary: RedisServer, timeout: float = 90.0) -> None:
        """Wait until ``primary`` has an online replica."""
        conn = redis.Redis(port=primary.port, socket_timeout=2)

        def online() -> bool:
            try:
                info = conn.info("replication")
            except redis.RedisError:
                return False
            return info.get("role") == "master" and info.get("slave0", {}).get("state") == "online"

        try:
            wait_for(f"a replica of {primary.port} online", online, timeout=timeout)
        finally:
            conn.close()

    def wait_settled(self, timeout: float = 90.0) -> None:
        """Wait until whichever node the sentinels name primary has an online replica.

        Not a fixed node: on a loaded machine the sentinels may fail over once more right after
        a rejoin (a slow answer looks like a down primary), and the cluster is as healthy with
        the roles swapped back.
        """

        def settled() -> bool:
            port = self.primary_port()
            if port is None:
                return False
            info = self._ask(port, "INFO", "replication")
            if not isinstance(info, dict):
                return False
            replica = info.get("slave0")
            return (
                info.get("role") == "master"
                and isinstance(replica, dict)
                and replica.get("state") == "online"
            )

        wait_for("the sentinels' primary to have an online replica", settled, timeout=timeout)

    def rejoin(self, node: RedisServer, primary: RedisServer) -> None:
        """Restart a killed node as a replica of ``primary``, as an orchestrator restarting a
        pod with the sentinels' current answer would (left alone, the sentinels would convert
        it too, after their next INFO round of up to 10 s)."""
        if "--replicaof" in node.extra:
            i = node.extra.index("--replicaof")
            del node.extra[i : i + 3]
        node.extra += ["--replicaof", "127.0.0.1", str(primary.port)]
        node.start()

    def stop(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for node in self.nodes:
            if node.proc is not None:
                node.thaw()
            node.kill()
