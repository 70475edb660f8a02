"""What every claim of ``bench_claims.py`` shares: its ``Outcome``, the runs behind it (kept
through ``bench_algos.run_one``), mean +- sd, gradient-norm spikes and curve plots. Reads runs;
knows no claim."""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_algos import run_one
from bench_async import step_values


@dataclass
class Outcome:
    measured: str  # agentrl's number
    baseline: str  # the baseline's number
    verdict: str
    details: str  # markdown: the runs behind the numbers


def mean_sd(values: list[float], digits: int = 3) -> str:
    sd = f" +- {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{digits}f}{sd}"


def spikes(result: dict[str, Any], factor: float = 3.0, window: int = 5) -> int:
    """Steps whose pre-clip gradient norm jumps past ``factor`` times both the median of the
    ``window`` steps before it and the run's median. The local median keeps a critic's large early
    norms (the value head fitting, decaying over the first steps) from counting; the run's median
    keeps jitter among small norms from counting."""
    norms = step_values(result, "grad/norm")
    run_median = statistics.median(norms)
    return sum(
        n > factor * max(run_median, statistics.median(norms[max(0, i - window) : i]))
        for i, n in enumerate(norms)
        if i > 0
    )


def runs(
    args: argparse.Namespace,
    folder: str,
    chosen: dict[str, dict[str, Any]],
    env: str,
    steps: int,
    eval_every: int,
    sets: list[str],
    minutes: float | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Each of ``chosen``'s variants over ``--seeds``, kept in ``OUT/<folder>``."""
    ns = argparse.Namespace(env=env, minutes=minutes or args.minutes, max_steps=steps, eval_every=eval_every, set=sets)
    seeds = [int(s) for s in args.seeds.split(",")]
    return {label: [run_one(label, o, s, ns, args.out / folder) for s in seeds] for label, o in chosen.items()}


def plot(path: Path, results: dict[str, list[dict[str, Any]]], panels: list[tuple[str, str]]) -> None:
    """One panel per ``(metric, title)`` against the step; ``eval/accuracy`` reads the evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for i, (label, per_seed) in enumerate(results.items()):
            for j, result in enumerate(per_seed):
                points = [(r["step"], r[key]) for r in result["rows"] if key in r]
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, color=f"C{i}", alpha=0.7, lw=1.2, label=label if j == 0 else None)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
