"""A stored episode as plain text for a terminal (``agentrl show``).

Owns the text: the one-line summary of an episode, its transcript (header, messages, each
assistant turn's numbers, tool status and time, the reward's components) and the per-token table.
Everything a model or an environment wrote is passed through ``safe``, so control characters
(a terminal escape a model sampled, a NUL) print as visible escapes, never reach the terminal raw.
"""

from __future__ import annotations

import statistics
from typing import Any

RULE = "-"
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)] if chr(c) not in "\n\t"}
_CONTROLS_INLINE = _CONTROLS | {ord("\n"): "\\n", ord("\t"): "\\t"}
VERDICT = {True: "correct", False: "wrong", None: "not graded"}
TOKEN_NOTE = (
    "ratio: to pi_old; weight: minus d loss / d logprob x the tokens in the loss (the advantage, times the "
    "objective's clip and importance weights); clipped: in the loss with a non-zero advantage and weight 0; "
    "filtered: out of the loss (the objective dropped its row)"
)


def safe(text: object, *, inline: bool = False) -> str:
    """``text`` with control characters as visible ``\\xNN`` escapes (newlines and tabs too, when
    ``inline``)."""
    return str(text).translate(_CONTROLS_INLINE if inline else _CONTROLS)


def count(n: int, thing: str) -> str:
    return f"{n} {thing}" + ("" if n == 1 else "s")


def one_line(i: int, r: dict[str, Any]) -> str:
    """An index row as one line of a step's listing."""
    verdict = {True: "correct", False: "wrong", None: "-"}[r.get("correct")]
    notes = [count(r["turns"], "turn")]
    notes += [count(r["tool_errors"], "tool error")] if r.get("tool_errors") else []
    notes += ["truncated"] if r.get("truncated") else []
    notes += [f"{r['staleness']} stale"] if r.get("staleness") else []
    notes += ["not trained on"] if r.get("split") == "train" and not r.get("has_learner") else []
    if r.get("num_samples", 1) > 1:
        notes.append(f"sample {r['sample_index'] + 1} of {r['num_samples']}")
    return f"  {i:4d}  reward {r['reward']:+.3f}  {verdict:7s}  {', '.join(notes)}  {safe(r['task_id'], inline=True)}"


def summary(rows: list[dict[str, Any]]) -> str:
    """The listing's last line: mean reward, accuracy, and what the update left out."""
    graded = [r["correct"] for r in rows if r.get("correct") is not None]
    parts = [f"mean reward {statistics.fmean(r['reward'] for r in rows):+.3f}"]
    if graded:
        parts.append(f"accuracy {sum(graded) / len(graded):.3f} of {len(graded)} graded")
    untrained = sum(r.get("split") == "train" and not r.get("has_learner") for r in rows)
    if untrained:
        parts.append(f"{untrained} not trained on (too stale, or not finite)")
    return "; ".join(parts)


def transcript(record: dict[str, Any], *, position: int = 0, of: int = 1, tokens: bool = False) -> str:
    """One episode as text: header, messages with per-turn numbers, tool results, reward."""
    r = record
    lines = [
        f"step {r['step']} · {r['split']} · episode {position} of {of} · {safe(r['env'], inline=True)} "
        f"task {safe(r['task_id'], inline=True)}",
        f"reward {r['reward']:+.3f} ({VERDICT[r.get('correct')]}) · {count(r['turns'], 'turn')} · "
        f"{count(r['tool_calls'], 'tool call')}"
        + (f", {r['tool_errors']} failed" if r["tool_errors"] else "")
        + f" · ended: {safe(r['stop_reason'], inline=True)}"
        + (f" · {count(r['staleness'], 'version')} stale" if r.get("staleness") else ""),
    ]
    cut = (r.get("info") or {}).get("turns_cut", 0)
    if cut:
        lines.append(f"{count(cut, 'reply')} cut at the token limit (sampling.max_new_tokens or the episode's budget)")
    if r.get("num_samples", 1) > 1:
        lines.append(
            f"sample {r['sample_index'] + 1} of {r['num_samples']} of episode {safe(r['episode_id'], inline=True)}: "
            "the chat template did not keep the conversation's prefix, so the episode went on as a new sample; "
            "the turns of the other samples show without numbers"
        )
    if r.get("error"):
        lines.append(f"environment error: {safe(r['error'])}")
    tool_log = {entry["turn"]: entry for entry in (r.get("info") or {}).get("tool_log", [])}
    turn = 0
    for message in r["messages"]:
        role = safe(message.get("role", "?"), inline=True)
        if role == "assistant":
            lines.append(_rule(f"assistant, turn {turn}{_turn_numbers(r, turn)}"))
            lines.append(safe(message.get("content", "")))
            if turn in tool_log:
                entry = tool_log[turn]
                lines.append(f"  [tool call: {safe(entry['status'], inline=True)}, {entry['seconds']:.2f} s]")
            turn += 1
        else:
            lines.append(_rule(role))
            lines.append(safe(message.get("content", "")))
    components = ", ".join(f"{safe(k, inline=True)} {v:+.3f}" for k, v in (r.get("reward_components") or {}).items())
    lines.append(_rule("reward"))
    answer = safe(repr(r.get("answer")), inline=True)
    lines.append(f"{r['reward']:+.3f}" + (f" = {components}" if components else "") + f"; answer {answer}")
    if tokens:
        lines += token_lines(r)
    return "\n".join(lines)


def _rule(title: str) -> str:
    return f"{RULE * 3} {title} {RULE * max(3, 60 - len(title))}"


def _turn_numbers(r: dict[str, Any], turn: int) -> str:
    t, learner = r["tokens"], r.get("learner")
    at = [i for i, (k, m) in enumerate(zip(t["turn"], t["mask"], strict=True)) if k == turn and m]
    if not at:
        return ""
    parts = [count(len(at), "token")]
    source = learner["logprob"] if learner else t["behavior_logprob"]
    parts.append(f"mean logprob {statistics.fmean(source[i] for i in at):.3f}")
    if learner:
        parts.append(f"advantage {statistics.fmean(learner['advantage'][i] for i in at):+.3f}")
        clipped = sum(learner["clipped"][i] > 0 for i in at)
        filtered = sum(learner["in_loss"][i] == 0 for i in at)
        parts += [f"{clipped} clipped"] if clipped else []
        parts += [f"{filtered} filtered out"] if filtered else []
    return ": " + ", ".join(parts)


def token_lines(r: dict[str, Any]) -> list[str]:
    """One line per sampled token: its turn, version, text and every number kept for it."""
    t, learner = r["tokens"], r.get("learner")
    names = ["logprob", "ratio", "advantage", "entropy", "weight"] if learner else []
    header = "turn  version  token                  behaviour" + "".join(f"{n:>11s}" for n in names)
    out = [_rule("sampled tokens"), *([TOKEN_NOTE] if learner else []), header]
    for i, (piece, mask) in enumerate(zip(t["pieces"], t["mask"], strict=True)):
        if not mask:
            continue
        values = [t["behavior_logprob"][i], *(learner[n][i] for n in names)] if learner else [t["behavior_logprob"][i]]
        flags = ""
        if learner and learner["clipped"][i]:
            flags = "  clipped"
        elif learner and not learner["in_loss"][i]:
            flags = "  filtered"
        text = _cell(piece, 20)
        numbers = f"{values[0]:11.4f}" + "".join(f"{v:11.4f}" for v in values[1:])
        out.append(f"{t['turn'][i]:4d}  {t['version'][i]:7d}  {text} {numbers}{flags}")
    return out


def _cell(piece: str, width: int) -> str:
    """A token's text quoted in a fixed-width cell, cut between whole escapes, never inside one."""
    shown, used = "", 2
    for char in piece:
        part = safe(char, inline=True)
        if used + len(part) > width - 1:
            shown += "…"
            used += 1
            break
        shown, used = shown + part, used + len(part)
    return f"'{shown}'" + " " * max(0, width - used)
