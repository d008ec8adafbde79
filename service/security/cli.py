"""``usm keys new``: make an API key, print it once with the line that configures it."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from service.security.keys import KEY_NAME, hash_key, new_key
from service.security.scopes import Scope

__all__ = ["register"]


def register(sub: Any) -> None:
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser(
        "new", help="create a key; prints it once and the entry for the key file"
    )
    new.add_argument("--name", required=True, help="who holds the key, e.g. servicenow")
    new.add_argument(
        "--scope",
        action="append",
        required=True,
        choices=[s.value for s in Scope],
        help="a scope to grant; repeat for several",
    )
    new.set_defaults(func=_new)


def _new(args: argparse.Namespace) -> int:
    scopes = sorted(set(args.scope), key=[s.value for s in Scope].index)
    if not KEY_NAME.match(args.name):
        sys.stderr.write(
            f"usm keys new: invalid --name {args.name!r}: use 1-64 letters, digits, '.', '_' or '-'"
            ", starting with a letter or digit\n"
        )
        return 2
    key = new_key()
    digest = hash_key(key)
    quoted = ", ".join(f'"{s}"' for s in scopes)
    out = sys.stdout
    out.write(f"API key for '{args.name}' (shown once; store it in the caller's secret store):\n")
    out.write(f"\n  {key}\n\n")
    out.write("Add to the key file (USM_API_KEYS_FILE):\n\n")
    out.write(f'[[keys]]\nname = "{args.name}"\nhash = "{digest}"\nscopes = [{quoted}]\n\n')
    out.write("or to USM_API_KEYS (entries separated by ';'):\n\n")
    out.write(f"  {args.name}:{','.join(scopes)}:{digest}\n")
    return 0
