"""A run's ``metrics.jsonl`` read back, and the panels of curves it makes.

Owns reading the metrics file tolerantly (a last line cut by a kill is skipped and counted) and
the panels ``agentrl plot`` draws as PNGs and ``agentrl view`` draws on its page: which metric
keys each panel shows, its unit, and the ``(step, value)`` series a run logged. Nothing here
draws, and nothing here imports the trainer (``agentrl.trainer.history`` reads through it).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from agentrl.errors import AgentRLError, AgentRLWarning

METRICS = "metrics.jsonl"


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse(line: str) -> dict[str, Any] | None:
    """One ``metrics.jsonl`` line as a dict with a numeric ``step``, or None if it is not one
    (the last line of a run killed mid-write is cut short)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) and is_number(row.get("step")) else None


def read(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The readable rows of the ``metrics.jsonl`` at ``path`` and how many lines were skipped."""
    rows, skipped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        row = parse(line)
        if row is None:
            skipped += 1
        else:
            rows.append(row)
    return rows, skipped


UNITS = {
    "reward": "mean reward per episode",
    "accuracy": "fraction correct",
    "entropy": "nats per sampled token",
    "kl": "nats per sampled token",
    "clip_fraction": "fraction of sampled tokens",
    "tokens_per_s": "sampled tokens per second",
    "offpolicy_ess": "ESS / batch size",
    "time": "seconds per step",
    "staleness": "samples (count)",
}
"""Each panel's y-axis label: the quantity's unit."""

COUNTS = {"staleness"}
"""Panels whose values are whole numbers: integer ticks on the y axis too."""

CURVES = {
    "reward": ["rollout/reward_mean"],
    "accuracy": ["eval/accuracy", "rollout/accuracy"],
    "entropy": ["policy/entropy"],
    "kl": ["loss/approx_kl", "loss/kl_ref"],
    "clip_fraction": ["loss/clipfrac_low", "loss/clipfrac_high"],
    "tokens_per_s": ["rollout/tokens_per_s"],
    "offpolicy_ess": ["offpolicy/ess_frac"],
    "time": ["time/rollout_s", "time/generate_s", "time/learner_s", "time/learner_idle_s", "time/rollout_idle_s"],
    "staleness": ["async/staleness/*"],
}


def expand(keys: list[str], rows: list[dict[str, float]]) -> list[str]:
    """``keys`` with each ``prefix/*`` replaced by the logged keys under ``prefix/``, in order seen."""
    logged = list(dict.fromkeys(k for r in rows for k in r))
    return [m for k in keys for m in ([x for x in logged if x.startswith(k[:-1])] if k.endswith("/*") else [k])]


def panels(rows: list[dict[str, float]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Each panel of ``CURVES`` the run logged: its keys' ``(step, value)`` points, a key the run
    never logged left out (``agentrl view`` draws the same panels)."""
    out = {}
    for name, keys in CURVES.items():
        series = {k: [(r["step"], r[k]) for r in rows if k in r] for k in expand(keys, rows)}
        series = {k: v for k, v in series.items() if v}
        if series:
            out[name] = series
    return out


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """Every readable row of ``metrics.jsonl``: a JSON object with a numeric ``step``, its numeric
    values kept. A line that is not (the last one, cut short when a run is killed mid-write) is
    skipped, and how many were is said on stderr."""
    path = run_dir / METRICS
    if not path.is_file():
        raise AgentRLError(f"{run_dir} has no metrics.jsonl; is it a run directory?")
    rows, skipped = read(path)
    rows = [{k: v for k, v in row.items() if is_number(v)} for row in rows]
    if skipped:
        warnings.warn(f"skipped {skipped} unreadable line(s) of {path}", AgentRLWarning, stacklevel=2)
    if not rows:
        raise AgentRLError(f"{path} has no readable rows yet; nothing to plot")
    return rows
