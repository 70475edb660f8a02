"""The papers' claims, reproduced at small scale: one table, one row per claim.

Each claim names its paper, says in one sentence what the paper claims, runs the small-scale
setup that tests it on the default model over ``--seeds``, and reports agentrl's number
against the baseline the paper compares with, and a verdict by the rule written beside the
claim (``verdict_*``): holds, holds in part, or does not hold at this scale. Writes
``OUT/claims.md`` (the table, then each claim's per-run details), ``OUT/claims.json`` and one
PNG of curves per claim (``OUT/<claim>.png``).

- ``vcpo``: VCPO at K = 16 against GRPO with sequence- and token-level truncated IS, and
  synchronous VCPO (the runs of ``scripts/bench_async.py --staleness 16 --diagnose
  --max-steps 60 --eval-every 10 --tool-delay 0 --out OUT/vcpo_k16``, which adds the diagnosis
  variants to the same folder);
- ``opo``: the policy gradient's relative variance of OPO, GRPO, the plain group-mean baseline
  and OPO's baseline with exact score norms, on the same batches (``scripts/grad_variance.py``);
- ``st_ppo``: ST-PPO against token-level PPO clipping (GRPO's surrogate, the same group
  advantages) with eight optimizer steps per rollout batch (four minibatches, two epochs), so
  seven of them are off-policy;
- ``st_ppo_critic``: the same with critics (ST-PPO's turn-level one against PPO's token-level
  one), at the recipes' lr and at a quarter of it;
- ``spear``: SPEAR against GRPO on ``tool_use`` (calls per episode, accuracy, entropy).

This file holds the claims' list, VCPO's and OPO's claims, the table and the CLI; the claims
that compare two objectives' training runs are in ``claims_training.py``, what all share in
``claims_common.py``.

Every training run is kept (``bench_algos.run_one``): an interrupted benchmark resumes, and
copies launched side by side with disjoint ``--claims`` or ``--seeds`` share one ``--out``;
the last to finish, or a rerun, tabulates everything.

    python scripts/bench_claims.py                        # every claim, seeds 0,1,2
    python scripts/bench_claims.py --claims opo,st_ppo --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bench_async
import claims_training as training
import grad_variance
from claims_common import Outcome, mean_sd, plot, runs


@dataclass
class Claim:
    paper: str
    claim: str
    setup: str
    measure: Callable[[argparse.Namespace], Outcome]
    verdict: Callable[..., str]  # the rule, in its docstring


# ---- VCPO ---------------------------------------------------------------------------------
K = 16
VCPO_STEPS, VCPO_EVAL_EVERY, VCPO_TOOL_DELAY = 60, 10, 0.0


ASYNC_RECIPE = "lr5e-5"  # the diagnosis variant configs/math_tool_vcpo_async.yaml adopts


def vcpo_runs(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    """The runs of ``bench_async.py --staleness 16 --diagnose`` (but synchronous GRPO): the claim's
    four variants and the diagnosis of VCPO under staleness, one setting changed at a time."""
    chosen = {k: v for k, v in bench_async.variants([K], diagnose=True).items() if k != "sync-grpo"}
    sets = [f"env_args.tool_delay_s={VCPO_TOOL_DELAY}"]
    out = runs(args, f"vcpo_k{K}", chosen, "math_tool", VCPO_STEPS, VCPO_EVAL_EVERY, sets)
    return {label: [r | bench_async.summarize_run(r, 0.8) for r in per_seed] for label, per_seed in out.items()}


def verdict_vcpo(late: dict[str, list[float]], norm_max: dict[str, float]) -> str:
    """Accuracy is the mean of a run's last three evaluations (steps 40, 50, 60), less noisy than
    the last alone, averaged over seeds. Holds when asynchronous VCPO (at the recipe's lr 2e-4, or
    at the asynchronous recipe's 5e-5) comes within 0.05 of synchronous VCPO, and sequence-level
    TIS is worse than VCPO at the same lr: 0.05 lower, or a gradient-norm peak three times VCPO's.
    Holds in part when only one of the two is true."""
    mean = {label: statistics.mean(values) for label, values in late.items()}
    base, recipe = f"async-vcpo-K{K}", f"async-vcpo-K{K}-{ASYNC_RECIPE}"
    matches = max(mean[base], mean[recipe]) >= mean["sync-vcpo"] - 0.05
    versus, seq_worse = [], False
    for vcpo, lr in ((base, ""), (recipe, f"-{ASYNC_RECIPE}")):
        seq = f"async-grpo-seqtis-K{K}{lr}"
        gap, peak = mean[vcpo] - mean[seq], norm_max[seq] / norm_max[vcpo]
        seq_worse = seq_worse or gap >= 0.05 or peak >= 3
        versus.append(f"{seq} ends {gap:.3f} below {vcpo}, gradient-norm peak {peak:.1f}x")
    if matches and seq_worse:
        return "holds"
    if matches:
        return f"holds in part: VCPO matches synchronous accuracy; {'; '.join(versus)}, short of 0.05 or 3x"
    if seq_worse:
        return f"holds in part: {'; '.join(versus)}, but VCPO ends more than 0.05 below synchronous accuracy"
    return f"does not hold at this scale: VCPO ends more than 0.05 below synchronous accuracy; {'; '.join(versus)}"


def measure_vcpo(args: argparse.Namespace) -> Outcome:
    results = vcpo_runs(args)
    finals = {label: [r["final"] for r in rs] for label, rs in results.items()}
    late = {label: [r["late"] for r in rs] for label, rs in results.items()}
    norm_max = {label: max(r["grad_norm_max"] for r in rs) for label, rs in results.items()}
    shown = ("sync-vcpo", f"async-vcpo-K{K}", f"async-vcpo-K{K}-{ASYNC_RECIPE}", f"async-grpo-seqtis-K{K}")
    seq_recipe = f"async-grpo-seqtis-K{K}-{ASYNC_RECIPE}"
    plot(
        args.out / "vcpo.png",
        {label: results[label] for label in (*shown, seq_recipe, f"async-grpo-tis-K{K}")},
        [
            ("eval/accuracy", "held-out accuracy"),
            ("grad/norm", "pre-clip gradient norm"),
            ("async/staleness_mean", "mean staleness"),
        ],
    )

    def line(label: str) -> str:
        drop = mean_sd([r["drop_from_best"] for r in results[label]])
        return (
            f"{label}: last 3 evals {mean_sd(late[label])}, final {mean_sd(finals[label])}, "
            f"drop from best {drop}, grad norm max {norm_max[label]:.2f}"
        )

    return Outcome(
        measured=f"{line(f'async-vcpo-K{K}')}; {line(f'async-vcpo-K{K}-{ASYNC_RECIPE}')}; {line('sync-vcpo')}",
        baseline="; ".join(
            line(label)
            for label in (
                f"async-grpo-seqtis-K{K}",
                seq_recipe,
                f"async-grpo-tis-K{K}",
                f"async-grpo-tis-K{K}-{ASYNC_RECIPE}",
            )
        ),
        verdict=verdict_vcpo(late, norm_max),
        details=bench_async.diagnosis_table([r for rs in results.values() for r in rs]),
    )


# ---- OPO ----------------------------------------------------------------------------------
def verdict_opo(relative: dict[str, list[float]]) -> str:
    """Holds when OPO's relative variance is below GRPO's for every seed; holds in part when only
    the optimal baseline with exact score norms (opo-exact) is."""

    def below(name: str) -> int:
        return sum(o < g for o, g in zip(relative[name], relative["grpo"], strict=True))

    seeds = len(relative["grpo"])
    if below("opo") == seeds:
        return "holds"
    if below("opo-exact") == seeds:
        return (
            "holds in part: the optimal baseline with exact score norms lowers the variance for every seed; "
            f"OPO's length proxy does so for {below('opo')} of {seeds}"
        )
    return f"does not hold at this scale: OPO's variance is lower for {below('opo')} of {seeds} seeds"


def measure_opo(args: argparse.Namespace) -> Outcome:
    seeds = [int(s) for s in args.seeds.split(",")]
    algos = ["opo", "grpo", "reinforce", "opo-exact"]
    results = grad_variance.run("math_tool", algos, seeds, args.batches, args.out / "grad_variance")
    relative = {a: [results[s][a]["relative_var"] for s in seeds] for a in algos}
    plot_bars(args.out / "opo.png", relative)
    return Outcome(
        measured=f"OPO relative variance {mean_sd(relative['opo'])}; with exact norms {mean_sd(relative['opo-exact'])}",
        baseline=f"GRPO {mean_sd(relative['grpo'])}; group-mean baseline {mean_sd(relative['reinforce'])}",
        verdict=verdict_opo(relative),
        details=grad_variance.table(results),
    )


def plot_bars(path: Path, relative: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for i, values in enumerate(relative.values()):
        ax.bar(i, statistics.mean(values), color=f"C{i}", alpha=0.6)
        ax.scatter([i] * len(values), values, color="k", s=12, zorder=3)
    ax.set_xticks(range(len(relative)), list(relative))
    ax.set_ylabel("trace Var(g) / |mean g|^2")
    ax.set_title("gradient variance at equal batch", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


STEPS = training.SPEAR_STEPS
CLAIMS: dict[str, Claim] = {
    "vcpo": Claim(
        "VCPO (Huang et al., 2026)",
        "Under high staleness VCPO trains stably where sequence-level truncated IS does not, and matches "
        "synchronous accuracy.",
        f"math_tool, asynchronous at K = {K} (tool delay 0, so rollouts run ahead of the learner), "
        f"{VCPO_STEPS} steps of 128 episodes, lr 2e-4 (and 5e-5, VCPO's asynchronous recipe); baselines "
        "GRPO with sequence TIS (cap 8) and token TIS (cap 2), each at both lrs",
        measure_vcpo,
        verdict_vcpo,
    ),
    "opo": Claim(
        "OPO (Hao et al., 2025)",
        "The length-weighted optimal baseline gives a lower-variance policy gradient than GRPO.",
        "math_tool, the default model untrained, the same rollout batches (16 tasks x 8) for every "
        "objective, 12 batches per seed; variance across batches relative to the mean gradient's squared "
        "norm; also the baseline with exact score norms (opo-exact) and the plain group mean (reinforce)",
        measure_opo,
        verdict_opo,
    ),
    "st_ppo": Claim(
        "ST-PPO (Li et al., 2025)",
        "Turn-level importance ratios with the clipping-bias correction keep off-policy multi-turn PPO "
        "stable where token-level clipping gives loss spikes.",
        "math_tool, 8 optimizer steps per rollout batch (4 minibatches x 2 epochs), 30 steps; baseline "
        "token-level PPO clipping with the same group advantages (grpo)",
        training.measure_st_ppo,
        training.verdict_st_ppo,
    ),
    "st_ppo_critic": Claim(
        "ST-PPO (Li et al., 2025), with critics",
        "As above, in the paper's own setting: both methods learn a value function.",
        "as st_ppo, but ST-PPO learns a turn-level value (the value at each turn's first token) with turn-level "
        "GAE (advantage=gae) and the baseline is PPO with a token-level value and GAE (ppo); gamma = lambda = 1; "
        "at the recipes' lr 2e-4 and at 5e-5",
        training.measure_st_ppo_critic,
        training.verdict_st_ppo_critic,
    ),
    "spear": Claim(
        "SPEAR (Qin et al., 2025)",
        "Self-imitation with the tool-call curriculum and entropy control beats GRPO on tool-use tasks, "
        "with more tool use early and entropy that does not collapse.",
        f"tool_use (code in a sandbox), {STEPS} steps of 64 episodes, SPEAR's bonus and replay schedules "
        f"compressed to the {STEPS} steps (bonus_T = replay_T = {STEPS}); calls and entropy as mean of "
        "the first -> last 5 steps per seed",
        training.measure_spear,
        training.verdict_spear,
    ),
}


HEADER = """# The papers' claims at small scale

Each headline objective's paper claims something about how it trains. This page puts each
claim to a test that fits a laptop: the default model (0.87M parameters), the environments
that ship with agentrl, 2 CPU cores, minutes per run. A verdict says what the measurement
shows at this scale, by the rule given under each claim: **holds**, **holds in part** or
**does not hold at this scale**. A claim that does not hold here may still hold for the
paper's models, tasks and batch sizes; the numbers say how far this scale is from it.

Made by `python scripts/bench_claims.py` (every run is kept under `runs/claims/`, so a rerun
only tabulates)."""


def render(rows: dict[str, tuple[Claim, Outcome]], seeds: str) -> str:
    lines = [
        HEADER,
        "",
        f"Seeds {seeds}; each number is the mean +- sd over them.",
        "",
        "| paper | claim | setup | agentrl | baseline | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for claim, outcome in rows.values():
        lines.append(
            f"| {claim.paper} | {claim.claim} | {claim.setup} | {outcome.measured} | {outcome.baseline} "
            f"| **{outcome.verdict}** |"
        )
    for name, (claim, outcome) in rows.items():
        rule = (claim.verdict.__doc__ or "").split("\n")
        lines += ["", f"## {name}", "", " ".join(s.strip() for s in rule), "", f"![{name}]({name}.png)", ""]
        lines.append(outcome.details)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--claims", default=",".join(CLAIMS), help="comma-separated subset of " + ", ".join(CLAIMS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-time cap of each math_tool run")
    parser.add_argument("--tool-minutes", type=float, default=40.0, help="wall-time cap of each tool_use run")
    parser.add_argument("--batches", type=int, default=12, help="rollout batches per seed for the variance")
    parser.add_argument("--out", type=Path, default=Path("runs/claims"))
    args = parser.parse_args()
    unknown = set(args.claims.split(",")) - set(CLAIMS)
    if unknown:
        parser.error(f"unknown claims {sorted(unknown)}; choose from {', '.join(CLAIMS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = {name: (CLAIMS[name], CLAIMS[name].measure(args)) for name in args.claims.split(",")}
    text = render(rows, args.seeds)
    (args.out / "claims.md").write_text(text)
    (args.out / "claims.json").write_text(json.dumps({n: vars(o) for n, (_, o) in rows.items()}, indent=2) + "\n")
    print(text)
    print(f"wrote {args.out}/claims.md, claims.json and a PNG per claim")


if __name__ == "__main__":
    main()
