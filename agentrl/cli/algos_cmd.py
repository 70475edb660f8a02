"""``agentrl algos list``: every registered algorithm with its one-line description."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    algos = commands.add_parser("algos", help="list the training algorithms")
    sub = algos.add_subparsers(dest="algos_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="name and one-line description of every algorithm").set_defaults(run=_list)


def _list(args: argparse.Namespace) -> int:
    from agentrl.algos import describe_all

    rows = describe_all()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")
    return 0
