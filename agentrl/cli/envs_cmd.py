"""``agentrl envs list``, ``agentrl envs show NAME`` (an environment's options, with their defaults)
and ``agentrl envs check NAME``."""

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
    show = sub.add_parser("show", help="an environment's description and options (--env-arg), with their defaults")
    show.add_argument("name", help="registered name or module:Class")
    show.set_defaults(run=_show)
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


def _show(args: argparse.Namespace) -> int:
    from agentrl.cli.listing import print_options

    cls = load(args.name)
    print(f"{args.name}: {describe(cls)}")
    print_options(cls.options_cls, "--env-arg KEY=VALUE, or env_args: {KEY: VALUE} in a config")
    if cls.train_defaults:
        shown = ", ".join(f"{k}={v}" for k, v in cls.train_defaults.items())
        print(f"training defaults (agentrl train, under --config and the flags): {shown}")
    return 0


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
