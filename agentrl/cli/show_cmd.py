"""``agentrl show RUN [--step N] [--episode K | --worst | --best]``: episodes as text, for a shell.

Reads a run's or an evaluation's episode store (``agentrl.episodes``). Without a choice of
episode it lists the step's episodes one line each; with one it prints the transcript
(``agentrl.episodes.transcript``): every message, each assistant turn with its tokens, mean
logprob and advantage and what the update did with it (tokens clipped or filtered), each tool
call's status and time, and the reward's components. ``--tokens`` adds a line per sampled token
with every quantity kept for it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agentrl.episodes import EpisodeStore
from agentrl.episodes.transcript import count, one_line, safe, summary, transcript
from agentrl.errors import AgentRLError


def register(commands: Any) -> None:
    p = commands.add_parser("show", help="print a run's episodes as readable transcripts", description=__doc__)
    p.add_argument("folder", metavar="RUN", help="a run folder (runs/NAME) or an eval folder")
    p.add_argument("--step", type=int, help="the step (default: the last one kept)")
    p.add_argument("--split", choices=("train", "eval"), help="train or held-out episodes (default: train if kept)")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--episode", type=int, metavar="K", help="the step's K-th episode (from 0)")
    pick.add_argument("--worst", action="store_true", help="the step's lowest-reward episode")
    pick.add_argument("--best", action="store_true", help="the step's highest-reward episode")
    p.add_argument("--tokens", action="store_true", help="also one line per sampled token with the learner's numbers")
    p.set_defaults(run=run)


def open_store(folder: str) -> EpisodeStore:
    """The episode store of a run or eval folder, or a one-line error."""
    path = Path(folder)
    if not path.exists():
        raise AgentRLError(f"{folder} does not exist (give a run folder such as runs/NAME, or an eval folder)")
    if not path.is_dir():
        raise AgentRLError(f"{folder} is a file, not a folder (give a run folder such as runs/NAME, or an eval folder)")
    store = EpisodeStore(path)
    if not store.exists:
        raise AgentRLError(
            f"{folder} holds no episode store (no step files in {store.folder}): runs written by agentrl train and "
            "folders written by agentrl eval have one (a run with episodes_every=0 keeps none)"
        )
    return store


def run(args: argparse.Namespace) -> int:
    if args.tokens and args.episode is None and not (args.worst or args.best):
        raise AgentRLError("--tokens prints one episode's tokens: add --episode K, --worst or --best")
    store = open_store(args.folder)
    rows = store.rows()
    split = args.split or ("train" if any(r["split"] == "train" for r in rows) else "eval")
    steps = store.steps(split)
    if not steps:
        kept = ", ".join(sorted({r["split"] for r in rows})) or "none"
        raise AgentRLError(f"{args.folder} keeps no {split} episodes (it keeps: {kept})")
    step = steps[-1] if args.step is None else args.step
    if step not in steps:
        other = "eval" if split == "train" else "train"
        hint = f" (--split {other} has step {step})" if step in store.steps(other) else ""
        raise AgentRLError(
            f"{args.folder} keeps no {split} episodes of step {step}; it keeps steps {_ranges(steps)}{hint}"
        )
    mine = [r for r in rows if r["split"] == split and r["step"] == step]
    chosen = _choose(args, mine)
    if chosen is None:
        text = "\n".join(
            [
                f"{safe(Path(args.folder).name, inline=True)}: step {step}, {split}, {count(len(mine), 'episode')}",
                *(one_line(i, r) for i, r in enumerate(mine)),
                summary(mine),
                "print one with --episode K, --worst or --best",
            ]
        )
    else:
        record = store.episode(chosen["id"])
        if record is None:
            raise AgentRLError(f"episode {chosen['id']} is in the index but not in {chosen['file']} (a damaged store)")
        text = transcript(record, position=mine.index(chosen), of=len(mine), tokens=args.tokens)
    _print(text)
    return 0


def _print(text: str) -> None:
    """``text`` to stdout whatever its encoding (a character it cannot show is escaped), and a
    stdout that cannot be written to (a full disk) one line of error."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise AgentRLError(f"cannot write the output ({exc.strerror or exc})") from None


def _choose(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if args.episode is not None:
        if not 0 <= args.episode < len(rows):
            raise AgentRLError(f"--episode {args.episode}: the step has episodes 0 to {len(rows) - 1}")
        return rows[args.episode]
    if args.worst or args.best:
        pick = min if args.worst else max
        return pick(rows, key=lambda r: r["reward"])  # the first of equals
    return None


def _ranges(steps: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7``."""
    spans: list[list[int]] = []
    for s in steps:
        if spans and s == spans[-1][1] + 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)
