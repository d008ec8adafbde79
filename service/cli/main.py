"""Entry point of the ``usm`` console script. Each feature registers its own sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from service import __version__
from service.cli import serve, sources, tables, worker
from service.errors import UsmError
from service.logs import FORMATS, setup
from service.security import cli as keys

__all__ = ["build_parser", "main"]

COMMAND_MODULES = [serve, tables, keys, worker, sources]
"""Modules with ``register(subparsers)``; each sets ``func`` on its parsers."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="usm", description="usm-dispatch: unified prioritization and dispatch."
    )
    parser.add_argument("--version", action="version", version=f"usm-dispatch {__version__}")
    parser.add_argument(
        "--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (USM_LOG_LEVEL, INFO)"
    )
    parser.add_argument(
        "--log-format",
        default=None,
        choices=FORMATS,
        help="text for people, json lines for log shippers (USM_LOG_FORMAT, text)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        setup(args.log_level, args.log_format)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        result: int = args.func(args)
    except UsmError as exc:  # a refusal with a clear message: no traceback
        sys.stderr.write(f"usm {args.command}: {exc}\n")
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
