"""Instructions per request of one endpoint, in-process, for callgrind: immune to a busy machine.

Builds the apps of ``bench.http_inprocess`` (the service as deployed and the bare app, same
settings), starts them, sends 10 warm-up requests to ``ENDPOINT`` and then ``N`` more, and waits
for the background flushes. Run it under callgrind with ``N`` and with 0; the difference of the
two totals over ``N`` is the instructions one request costs, background flushes included
(Redis's own work and the kernel's are not counted)::

    for n in 0 20; do valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$n \\
        .venv/bin/python -m bench.request_instructions batch $n; done

``ENDPOINT`` is a label of ``bench.http_inprocess.ENDPOINTS`` (``bare_batch``, ``batch``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from bench import http_inprocess

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("endpoint", choices=sorted(http_inprocess.ENDPOINTS))
    parser.add_argument("n", type=int, help="requests after the warm-up (run with 0 too)")
    args = parser.parse_args(argv)
    app_name, path, kind, cred = http_inprocess.ENDPOINTS[args.endpoint]

    async def run(
        _: argparse.Namespace,
        apps: dict[str, Any],
        bodies: dict[str, bytes],
        creds: dict[str | None, str | None],
    ) -> int:
        for app in apps.values():
            await http_inprocess._start(app)
        for _ in range(10):
            await http_inprocess._request(apps[app_name], path, bodies[kind], creds[cred])
        await asyncio.sleep(0.5)
        for _ in range(args.n):
            await http_inprocess._request(apps[app_name], path, bodies[kind], creds[cred])
        await asyncio.sleep(0.5)  # the background flushes of these requests
        return 0

    http_inprocess._run = run  # type: ignore[assignment]
    return http_inprocess.main(["--endpoints", args.endpoint])


if __name__ == "__main__":
    sys.exit(main())
