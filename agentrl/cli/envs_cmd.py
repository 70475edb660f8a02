"""``agentrl envs list`` and ``agentrl envs check NAME``."""

from __future__ import annotations

import argparse
import functools
from typing import Any

from agentrl.cli.listing import print_registry
from agentrl.envs import check_env, describe, entries, load, make
from agentrl.errors import AgentRLError


def register(commands: Any) -> None:
    envs = commands.add_parser("envs", help="list and check installed environments")
    sub = envs.add_subparsers(dest="envs_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="name, description and providing package of every environment")
    listing.set_defaults(run=_list)
    check = sub.add_parser("check", help="run an environment through check_env")
    check.add_argument("name", help="registered name or module:Class")
    check.add_argument(
        "--env-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment option (repeatable)",
    )
    check.set_defaults(run=_check)


def _list(args: argparse.Namespace) -> int:
    return print_registry(entries(), lambda name: describe(load(name)))


def _check(args: argparse.Namespace) -> int:
    kwargs = parse_env_args(args.env_arg)
    make(args.name, **kwargs).close()  # a rejected option is one line before the checker runs
    for line in check_env(functools.partial(load(args.name), **kwargs)):
        print(f"  ok  {line}")
    print(f"{args.name}: passed check_env")
    return 0


def parse_env_args(pairs: list[str], flag: str = "--env-arg") -> dict[str, str]:
    """``["k=v", ...]`` (from ``--env-arg``, or ``flag``) as a dict; values stay strings."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise AgentRLError(f"{flag} expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out
