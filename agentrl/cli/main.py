"""``agentrl``: the entry point. Parses the subcommand and turns user errors into one line.

Owns argument parsing and the error policy: an ``AgentRLError`` (bad value, unknown name,
missing model) or an argparse error (unknown flag, missing argument, bad choice) prints
``agentrl: error: <message>`` and exits 2, with no traceback and no usage block; a warning
of agentrl's own (an ``AgentRLWarning``) is one line too: ``agentrl: warning: <message>``.
Subcommands live in their own modules and register here.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from agentrl import __version__
from agentrl.cli import (
    algos_cmd,
    configs_cmd,
    envs_cmd,
    eval_cmd,
    export_cmd,
    plan_cmd,
    plot_cmd,
    serve_cmd,
    show_cmd,
    tools_cmd,
    train_cmd,
    view_cmd,
)
from agentrl.errors import AgentRLError, AgentRLWarning


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at ``--help``, and whose help is
    plain text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"agentrl: error: {message}; see `{self.prog} --help`\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:  # point at the subcommand's help, not the top level's
            prog = " ".join([self.prog, *([parsed.command] if getattr(parsed, "command", None) else [])])
            self.exit(2, f"agentrl: error: unrecognized arguments: {' '.join(extras)}; see `{prog} --help`\n")
        return parsed

    def format_help(self) -> str:
        """Help as plain text: descriptions are docstrings, whose ``literal`` markup is dropped."""
        return super().format_help().replace("``", "")


class _WithDefaults(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default, unless it says it already or has none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or "default" in text
            or default is None
            or default is False  # not `in (None, False)`: 0 == False, and a default of 0 is shown
            or default == argparse.SUPPRESS
            or default == []
            or action.nargs == 0
        ):
            return text
        return f"{text} (default: %(default)s)"


def _with_defaults(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = _WithDefaults
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _with_defaults(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="agentrl",
        description="Reinforcement learning for LLM agents in multi-turn text environments.",
    )
    parser.add_argument("--version", action="version", version=f"agentrl {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    envs_cmd.register(commands)
    algos_cmd.register(commands)
    eval_cmd.register(commands)
    train_cmd.register(commands)
    configs_cmd.register(commands)
    plot_cmd.register(commands)
    view_cmd.register(commands)
    show_cmd.register(commands)
    export_cmd.register(commands)
    plan_cmd.register(commands)
    serve_cmd.register(commands)
    tools_cmd.register(commands)
    _with_defaults(parser)
    return parser


_library_format = warnings.formatwarning


def _format_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    if issubclass(category, AgentRLWarning):
        return f"agentrl: warning: {message}\n"
    return _library_format(message, category, *args, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    # Installed before the parser is built: building it reads the environment registry, which
    # warns about a name claimed twice, and that warning must already be one line.
    previous, warnings.formatwarning = warnings.formatwarning, _format_warning
    try:
        args = build_parser().parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)  # as given, for a launcher that re-runs it
        return int(args.run(args) or 0)
    except AgentRLError as exc:
        print(f"agentrl: error: {exc}", file=sys.stderr)
        if "LOCAL_RANK" in os.environ:  # a launched rank: threads may still wait on peers that are gone,
            sys.stdout.flush()  # and tearing their process groups down at exit would abort; leave now
            sys.stderr.flush()
            os._exit(2)
        return 2
    except KeyboardInterrupt as exc:  # a training run stopped at a step's end says how to resume it
        # an abort can land inside an episode's task; asyncio's "exception never retrieved" report
        # of it at exit would bury the line below
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        print(f"agentrl: interrupted: {exc}" if str(exc) else "agentrl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``agentrl algos list | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 128 + signal.SIGPIPE
    finally:
        warnings.formatwarning = previous


if __name__ == "__main__":
    sys.exit(main())
