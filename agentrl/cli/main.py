"""``agentrl``: the entry point. Parses the subcommand and turns user errors into one line.

Owns argument parsing and the error policy: an ``AgentRLError`` (bad value, unknown name,
missing model) prints ``agentrl: error: <message>`` and exits 2, with no traceback.
Subcommands live in their own modules and register here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agentrl import __version__
from agentrl.cli import algos_cmd, envs_cmd, eval_cmd, plot_cmd, train_cmd
from agentrl.errors import AgentRLError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentrl",
        description="Reinforcement learning for LLM agents in multi-turn text environments.",
    )
    parser.add_argument("--version", action="version", version=f"agentrl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    envs_cmd.register(commands)
    algos_cmd.register(commands)
    eval_cmd.register(commands)
    train_cmd.register(commands)
    plot_cmd.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except AgentRLError as exc:
        print(f"agentrl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("agentrl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
