"""``agentrl plot RUN_DIR``: PNG curves of a run's metrics.

Writes ``RUN_DIR/plots/<metric>.png`` for the reward, held-out accuracy, entropy, KL, clip
fractions, throughput, off-policy ESS, where the time goes, and (asynchronous runs) the
staleness histogram found in ``metrics.jsonl``; a metric the run did not log is skipped. Each
panel's y axis says its unit, steps are whole numbers, no axis uses offset notation, and a
series that never changes is named flat in the legend. A key
ending in ``/*`` stands for every logged key under that prefix. A line that cannot be read (the
last one of a run killed mid-write) is skipped with a warning. Needs matplotlib
(``pip install 'agentrl[plot]'``).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from agentrl.errors import AgentRLError, AgentRLWarning
from agentrl.trainer import history

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


def register(commands: Any) -> None:
    p = commands.add_parser("plot", help="PNG curves of a run's metrics", description=__doc__)
    p.add_argument("run_dir", help="a run directory (runs/<name>)")
    p.set_defaults(run=run)


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    """Every readable row of ``metrics.jsonl``: a JSON object with a numeric ``step``, its numeric
    values kept. A line that is not (the last one, cut short when a run is killed mid-write) is
    skipped, and how many were is said on stderr."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise AgentRLError(f"{run_dir} has no metrics.jsonl; is it a run directory?")
    rows, skipped = history.read(path)
    rows = [{k: v for k, v in row.items() if history.is_number(v)} for row in rows]
    if skipped:
        warnings.warn(f"skipped {skipped} unreadable line(s) of {path}", AgentRLWarning, stacklevel=2)
    if not rows:
        raise AgentRLError(f"{path} has no readable rows yet; nothing to plot")
    return rows


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise AgentRLError("agentrl plot needs matplotlib: pip install 'agentrl[plot]'") from None
    run_dir = Path(args.run_dir)
    rows = read_metrics(run_dir)
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written = []
    for name, keys in CURVES.items():
        series = {k: [(r["step"], r[k]) for r in rows if k in r] for k in expand(keys, rows)}
        series = {k: v for k, v in series.items() if v}
        if not series:
            continue
        fig = figure(plt, f"{run_dir.name}: {name}", series, UNITS[name], name in COUNTS)
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)
        written.append(out / f"{name}.png")
    for path in written:
        print(path)
    return 0


def figure(plt: Any, title: str, series: dict[str, list[tuple[float, float]]], unit: str, counts: bool) -> Any:
    """One panel: a line per key, read at a glance: the y axis labelled with its unit and
    without offset notation (1.0 +- 1e-7 reads as 1.0, not "1e-7 + 1"), integer steps on the x
    axis (and integer values for counts), and a series that never changes drawn thin and named
    flat in the legend."""
    from matplotlib.ticker import MaxNLocator, ScalarFormatter

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, points in series.items():
        steps, values = [p[0] for p in points], [p[1] for p in points]
        flat = max(values) - min(values) <= 1e-9 * max(1.0, abs(max(values)))
        label = f"{key} (flat at {values[0]:.4g})" if flat else key
        marker = "o" if len(points) < 30 else None
        ax.plot(steps, values, label=label, marker=marker, linewidth=0.8 if flat else 1.5, alpha=0.6 if flat else 1.0)
    formatter = ScalarFormatter(useOffset=False)
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if counts:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
