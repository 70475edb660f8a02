"""``agentrl show RUN [--step N] [--episode K | --worst | --best]``: episodes as text, for a shell.

Reads a run's or an evaluation's episode store (``agentrl.episodes``). Without a choice of
episode it lists the step's episodes one line each; with one it prints the transcript: every
message, each assistant turn with its tokens, mean logprob and advantage and what the update did
with it (tokens clipped or filtered), each tool call's status and time, and the reward's
components. ``--tokens`` adds a line per sampled token with every quantity the learner kept.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from agentrl.episodes import FOLDER, EpisodeStore
from agentrl.errors import AgentRLError

RULE = "-"


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
    if not path.is_dir():
        raise AgentRLError(f"{folder} is not a folder (give a run folder such as runs/NAME, or an eval folder)")
    store = EpisodeStore(path)
    if not store.exists:
        raise AgentRLError(
            f"{folder} holds no episode store ({path / FOLDER} is missing): runs written by agentrl train and "
            "folders written by agentrl eval have one (a run with episodes_every=0 keeps none)"
        )
    return store


def run(args: argparse.Namespace) -> int:
    store = open_store(args.folder)
    rows = store.rows()
    split = args.split or ("train" if any(r["split"] == "train" for r in rows) else "eval")
    steps = store.steps(split)
    if not steps:
        kept = ", ".join(sorted({r["split"] for r in rows})) or "none"
        raise AgentRLError(f"{args.folder} keeps no {split} episodes (it keeps: {kept})")
    step = steps[-1] if args.step is None else args.step
    if step not in steps:
        raise AgentRLError(f"{args.folder} keeps no {split} episodes of step {step}; it keeps steps {_ranges(steps)}")
    mine = [r for r in rows if r["split"] == split and r["step"] == step]
    chosen = _choose(args, mine)
    if chosen is None:
        print(f"{Path(args.folder).name}: step {step}, {split}, {len(mine)} episodes")
        for i, r in enumerate(mine):
            print(_one_line(i, r))
        print("print one with --episode K, --worst or --best")
        return 0
    record = store.episode(chosen["id"])
    if record is None:
        raise AgentRLError(f"episode {chosen['id']} is in the index but not in {chosen['file']} (a damaged store)")
    print(transcript(record, position=mine.index(chosen), of=len(mine), tokens=args.tokens))
    return 0


def _choose(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    if args.episode is not None:
        if not 0 <= args.episode < len(rows):
            raise AgentRLError(f"--episode {args.episode}: the step has episodes 0 to {len(rows) - 1}")
        return rows[args.episode]
    if args.worst or args.best:
        pick = min if args.worst else max
        return pick(rows, key=lambda r: r["reward"])  # the first of equals
    return None


def _one_line(i: int, r: dict[str, Any]) -> str:
    verdict = {True: "correct", False: "wrong", None: "-"}[r.get("correct")]
    errors = f", {r['tool_errors']} tool errors" if r.get("tool_errors") else ""
    cut = ", truncated" if r.get("truncated") else ""
    turns = _count(r["turns"], "turn")
    return f"  {i:4d}  reward {r['reward']:+.3f}  {verdict:7s}  {turns}{errors}{cut}  {r['task_id']}"


def transcript(record: dict[str, Any], *, position: int = 0, of: int = 1, tokens: bool = False) -> str:
    """One episode as text: header, messages with per-turn numbers, tool results, reward."""
    r = record
    verdict = {True: "correct", False: "wrong", None: "not graded"}[r.get("correct")]
    lines = [
        f"step {r['step']} · {r['split']} · episode {position} of {of} · {r['env']} task {r['task_id']}",
        f"reward {r['reward']:+.3f} ({verdict}) · {_count(r['turns'], 'turn')} · {_count(r['tool_calls'], 'tool call')}"
        + (f", {r['tool_errors']} failed" if r["tool_errors"] else "")
        + f" · ended: {r['stop_reason']}"
        + (f" · {r['staleness']} versions stale" if r.get("staleness") else ""),
    ]
    if r.get("error"):
        lines.append(f"environment error: {r['error']}")
    tool_log = {entry["turn"]: entry for entry in (r.get("info") or {}).get("tool_log", [])}
    turn = 0
    for message in r["messages"]:
        role = message.get("role", "?")
        if role == "assistant":
            lines.append(_rule(f"assistant, turn {turn}{_turn_numbers(r, turn)}"))
            lines.append(str(message.get("content", "")))
            if turn in tool_log:
                entry = tool_log[turn]
                lines.append(f"  [tool call: {entry['status']}, {entry['seconds']:.2f} s]")
            turn += 1
        else:
            lines.append(_rule(role))
            lines.append(str(message.get("content", "")))
    components = ", ".join(f"{k} {v:+.3f}" for k, v in (r.get("reward_components") or {}).items())
    lines.append(_rule("reward"))
    lines.append(f"{r['reward']:+.3f}" + (f" = {components}" if components else "") + f"; answer {r.get('answer')!r}")
    if tokens:
        lines += _token_lines(r)
    return "\n".join(lines)


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


def _rule(title: str) -> str:
    return f"{RULE * 3} {title} {RULE * max(3, 60 - len(title))}"


def _turn_numbers(r: dict[str, Any], turn: int) -> str:
    t, learner = r["tokens"], r.get("learner")
    at = [i for i, (k, m) in enumerate(zip(t["turn"], t["mask"], strict=True)) if k == turn and m]
    if not at:
        return ""
    parts = [f"{len(at)} tokens"]
    source = learner["logprob"] if learner else t["behavior_logprob"]
    parts.append(f"mean logprob {statistics.fmean(source[i] for i in at):.3f}")
    if learner:
        parts.append(f"advantage {statistics.fmean(learner['advantage'][i] for i in at):+.3f}")
        clipped = sum(learner["clipped"][i] > 0 for i in at)
        filtered = sum(learner["in_loss"][i] == 0 for i in at)
        parts += [f"{clipped} clipped"] if clipped else []
        parts += [f"{filtered} filtered out"] if filtered else []
    return ": " + ", ".join(parts)


def _token_lines(r: dict[str, Any]) -> list[str]:
    t, learner = r["tokens"], r.get("learner")
    names = ["logprob", "ratio", "advantage", "entropy", "weight"] if learner else ["behavior_logprob"]
    out = [_rule("sampled tokens"), "turn  version  token                " + "".join(f"{n:>12s}" for n in names)]
    for i, (piece, mask) in enumerate(zip(t["pieces"], t["mask"], strict=True)):
        if not mask:
            continue
        values = [learner[n][i] for n in names] if learner else [t["behavior_logprob"][i]]
        flags = ""
        if learner and learner["clipped"][i]:
            flags = "  clipped"
        elif learner and not learner["in_loss"][i]:
            flags = "  filtered"
        numbers = "".join(f"{v:12.4f}" for v in values)
        out.append(f"{t['turn'][i]:4d}  {t['version'][i]:7d}  {piece!r:20.20s} {numbers}{flags}")
    return out


def _ranges(steps: list[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7``."""
    spans: list[list[int]] = []
    for s in steps:
        if spans and s == spans[-1][1] + 1:
            spans[-1][1] = s
        else:
            spans.append([s, s])
    return ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans)
