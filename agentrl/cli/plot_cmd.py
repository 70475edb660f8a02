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
from pathlib import Path
from typing import Any

from agentrl.curves import COUNTS, UNITS, panels, read_metrics
from agentrl.errors import AgentRLError


def register(commands: Any) -> None:
    p = commands.add_parser("plot", help="PNG curves of a run's metrics", description=__doc__)
    p.add_argument("run_dir", help="a run directory (runs/<name>)")
    p.set_defaults(run=run)


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
    for name, series in panels(rows).items():
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
