"""``agentrl configs list`` and ``agentrl configs show NAME``: the recipes that ship with
agentrl (``agentrl train --config NAME``), and one recipe's options."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: Any) -> None:
    configs = commands.add_parser("configs", help="list the shipped training recipes", description=__doc__)
    sub = configs.add_subparsers(dest="configs_command", required=True, metavar="ACTION")
    sub.add_parser("list", help="name and description of every recipe").set_defaults(run=_list)
    show = sub.add_parser("show", help="a recipe's file: its options and comments")
    show.add_argument("name", help="recipe name (agentrl configs list)")
    show.set_defaults(run=_show)


def _list(args: argparse.Namespace) -> int:
    from agentrl import recipes

    rows = recipes.described()
    width = max(len(name) for name, _ in rows)
    for name, about in rows:
        print(f"{name:<{width}}  {about}")
    print("\nagentrl train --config NAME trains with one; agentrl configs show NAME prints it")
    return 0


def _show(args: argparse.Namespace) -> int:
    from agentrl import recipes

    path = recipes.path(args.name)
    print(f"# {path}")
    print(path.read_text(encoding="utf-8"), end="")
    return 0
