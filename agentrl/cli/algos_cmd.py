"""``agentrl algos list`` and ``agentrl algos show NAME``: the registered algorithms, the one
``train`` uses by default marked, and one algorithm's options with their defaults (what
``--set algo_args.KEY=VALUE`` takes). ``--algo package.module:Class`` trains an algorithm that
is not registered (its run folder is named with ``_`` for the ``:``)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    algos = commands.add_parser("algos", help="list the training algorithms and their options", description=__doc__)
    sub = algos.add_subparsers(dest="algos_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="name and one-line description of every algorithm").set_defaults(run=_list)
    show = sub.add_parser("show", help="one algorithm's description and options, with their defaults")
    show.add_argument("name", help="algorithm name (agentrl algos list) or package.module:Class")
    show.set_defaults(run=_show)


def _default_algo() -> str:
    from agentrl.trainer.config import TrainConfig

    return str(TrainConfig.__dataclass_fields__["algo"].default)


def _list(args: argparse.Namespace) -> int:
    from agentrl.algos import describe_all

    rows, default = describe_all(), _default_algo()
    width = max(len(name) for name, _ in rows) + len(" *")
    for name, description in rows:
        print(f"{name + (' *' if name == default else ''):<{width}}  {description}")
    print("\n* the default (agentrl train --algo NAME picks another; agentrl algos show NAME lists its options)")
    return 0


def _show(args: argparse.Namespace) -> int:
    from agentrl.algos.registry import get
    from agentrl.cli.listing import print_options

    cls = get(args.name)
    print(f"{cls.name}{' (the default)' if cls.name == _default_algo() else ''}: {cls.description}")
    print_options(cls.config_cls, "--set algo_args.KEY=VALUE, or algo_args: {KEY: VALUE} in a config")
    return 0
