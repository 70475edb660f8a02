"""Asynchronous against synchronous training: wall time to a fixed held-out accuracy.

Trains the default model on ``math_tool`` in these variants, each over ``--seeds``:
synchronous ``grpo`` and ``vcpo``; asynchronous ``vcpo`` at each ``--staleness`` K; and
asynchronous ``grpo`` with token-level truncated IS against the sampler (``mismatch=token``,
the baseline VCPO is compared with) at the same K. Every run uses its algorithm's recipe in
``configs/`` and the same steps, so final accuracies compare too.

Asynchrony pays where rollouts wait on tools, so each calculator turn waits ``--tool-delay``
seconds (``math_tool``'s ``tool_delay_s``, 1 s by default, the order of a remote search or
sandbox call); ``--tool-delay 0`` measures the instant calculator.

``--diagnose`` adds what tells VCPO's behaviour at each K apart: ``vcpo`` with one setting
changed (``DIAGNOSIS``: a lower learning rate, the linear ESS rule, twice the batch, a lower
weight cap, weight decay, the authors' OPOB weighting) and ``grpo`` with sequence-level
truncated IS at VCPO's cap (``mismatch=sequence``, cap 8), at the recipe's lr and at the lower
one, token-level truncated IS at the lower lr too, and a second table of what each run
logged per step: the pre-clip gradient norm (mean and max), VCPO's learning-rate factor, the
share of rows (VCPO) or loss tokens (GRPO) whose weight ``pi_old / mu`` passed the cap, and the
ESS fraction; with the accuracy drop from a run's best evaluation to its last.

Reports per run the wall time at which held-out accuracy first reached ``--target``
(evaluations included), the final accuracy, and what asynchrony did: mean staleness, rows
dropped as too stale, the mean ESS fraction of ``pi_old / mu``, and the idle time of the
learner and of the rollout side. Per variant: the mean time to target, its speed-up over
synchronous ``grpo``, and the mean final accuracy. Writes ``OUT/results.md``,
``OUT/results.json`` and ``OUT/curves.png``.

    python scripts/bench_async.py                                   # 8 variants x 3 seeds
    python scripts/bench_async.py --staleness 1 --seeds 0 --max-steps 20 --tool-delay 0
    python scripts/bench_async.py --staleness 16 --diagnose --max-steps 60 --tool-delay 0
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench_algos import first_reaching, plot, run_one, without_rows

# One VCPO setting changed at a time, each a candidate cause of instability under staleness.
DIAGNOSIS: dict[str, dict[str, Any]] = {
    "lr5e-5": {"learner.lr": 5e-5},  # the recipe's lr is 2e-4
    "linear": {"algo_args.lr_rule": "linear"},  # lr x rho instead of x sqrt(rho)
    "batch32": {"tasks_per_step": 32},  # 256 rows a step instead of 128
    "cap2": {"algo_args.is_cap": 2.0},  # C = 2 instead of 8
    "wd0.1": {"learner.weight_decay": 0.1},  # the authors' weight decay
    "authors": {"algo_args.opob_weight": "authors"},  # min(w, C)^2 w^2 n_i
}


def variants(staleness: list[int], diagnose: bool = False) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"sync-grpo": {"algo": "grpo"}, "sync-vcpo": {"algo": "vcpo"}}
    for k in staleness:
        on = {"asynchronous.enabled": True, "asynchronous.max_staleness": k}
        out[f"async-vcpo-K{k}"] = {"algo": "vcpo", **on}
        out[f"async-grpo-tis-K{k}"] = {"algo": "grpo", "algo_args.mismatch": "token", **on}
        if diagnose:
            seq = {"algo_args.mismatch": "sequence", "algo_args.mismatch_cap": 8.0}
            out[f"async-grpo-seqtis-K{k}"] = {"algo": "grpo", **seq, **on}
            out[f"async-grpo-seqtis-K{k}-lr5e-5"] = {"algo": "grpo", **seq, **on, **DIAGNOSIS["lr5e-5"]}
            out[f"async-grpo-tis-K{k}-lr5e-5"] = out[f"async-grpo-tis-K{k}"] | DIAGNOSIS["lr5e-5"]
            for name, change in DIAGNOSIS.items():
                out[f"async-vcpo-K{k}-{name}"] = {"algo": "vcpo", **on, **change}
    return out


def step_values(result: dict[str, Any], key: str) -> list[float]:
    """``key`` as each training step of a run logged it (the step-0 evaluation row left out)."""
    return [r[key] for r in result["rows"] if r.get("step", 0) > 0 and key in r]


def summarize_run(result: dict[str, Any], target: float) -> dict[str, Any]:
    steps = [r for r in result["rows"] if r["step"] > 0]

    def mean(key: str) -> float:
        values = step_values(result, key)
        return statistics.mean(values) if values else float("nan")

    def peak(key: str) -> float:
        values = step_values(result, key)
        return max(values) if values else float("nan")

    capped = "is/clipped_frac" if any("is/clipped_frac" in r for r in steps) else "mismatch/capped_frac"
    accuracies = [acc for _, acc in result["curve"]]
    return {
        "grad_norm_mean": mean("grad/norm"),
        "grad_norm_max": peak("grad/norm"),
        "lr_factor": mean("vcpo/lr_factor"),
        "capped_frac": mean(capped),
        "staleness_max": peak("async/staleness_max") if "async/staleness_max" in steps[0] else 0.0,
        "drop_from_best": max(accuracies) - accuracies[-1],
        "late": statistics.mean(accuracies[-3:]),  # the last three evaluations: less noisy than the last one
        "target_min": first_reaching(result["curve"], target),
        "staleness": mean("async/staleness_mean") if "async/staleness_mean" in steps[0] else 0.0,
        "dropped": sum(r.get("async/dropped_stale", 0.0) for r in steps),
        "ess_frac": mean("offpolicy/ess_frac"),
        "learner_idle_min": sum(r.get("time/learner_idle_s", 0.0) for r in steps) / 60,
        "rollout_idle_min": sum(r.get("time/rollout_idle_s", 0.0) for r in steps) / 60,
    }


def table(results: list[dict[str, Any]], target: float) -> str:
    lines = [
        f"| variant | seed | initial | final | min to {target:.2f} | steps | wall (min) | staleness | dropped "
        "| ESS frac | learner idle (min) | rollout idle (min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        reached = f"{r['target_min']:.2f}" if r["target_min"] is not None else "not reached"
        lines.append(
            f"| {r['label']} | {r['seed']} | {r['initial']:.3f} | {r['final']:.3f} | {reached} | {r['steps']} "
            f"| {r['wall_min']:.1f} | {r['staleness']:.2f} | {r['dropped']:.0f} | {r['ess_frac']:.3f} "
            f"| {r['learner_idle_min']:.2f} | {r['rollout_idle_min']:.2f} |"
        )
    return "\n".join(lines)


def diagnosis_table(results: list[dict[str, Any]]) -> str:
    """Per variant, the mean over its seeds of what each run logged per step."""
    lines = [
        "| variant | seeds | final acc (min-max) | last 3 evals | drop from best | mean / max staleness "
        "| grad norm mean | grad norm max | lr factor | share w > C | ESS frac |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label in dict.fromkeys(r["label"] for r in results):
        runs = [r for r in results if r["label"] == label]

        def avg(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.mean(r[key] for r in runs)

        finals = [r["final"] for r in runs]
        staleness_max = max(r["staleness_max"] for r in runs)
        lines.append(
            f"| {label} | {len(runs)} | {avg('final'):.3f} ({min(finals):.3f}-{max(finals):.3f}) "
            f"| {avg('late'):.3f} | {avg('drop_from_best'):.3f} | {avg('staleness'):.1f} / {staleness_max:.0f} "
            f"| {avg('grad_norm_mean'):.3f} | {max(r['grad_norm_max'] for r in runs):.2f} | {avg('lr_factor'):.2f} "
            f"| {avg('capped_frac'):.3f} | {avg('ess_frac'):.3f} |"
        )
    return "\n".join(lines).replace("| nan |", "| n/a |")


def summary_table(results: list[dict[str, Any]], target: float) -> str:
    def mean_time(label: str) -> float | None:
        times = [r["target_min"] for r in results if r["label"] == label]
        return statistics.mean(times) if times and all(t is not None for t in times) else None

    base = mean_time("sync-grpo")
    lines = [
        f"| variant | runs reaching {target:.2f} | mean min to {target:.2f} | x sync grpo time | mean final |",
        "|---|---|---|---|---|",
    ]
    for label in dict.fromkeys(r["label"] for r in results):
        runs = [r for r in results if r["label"] == label]
        reached = sum(r["target_min"] is not None for r in runs)
        t = mean_time(label)
        ratio = f"{t / base:.2f}" if t is not None and base else "n/a"
        final = statistics.mean(r["final"] for r in runs)
        lines.append(
            f"| {label} | {reached}/{len(runs)} | {t:.2f} | {ratio} | {final:.3f} |"
            if t is not None
            else f"| {label} | {reached}/{len(runs)} | n/a | n/a | {final:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--staleness", default="1,4,16", help="the K of the asynchronous variants")
    parser.add_argument("--variants", default=None, help="comma-separated subset of the variant names")
    parser.add_argument("--diagnose", action="store_true", help="add the VCPO diagnosis variants at each K")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--target", type=float, default=0.8, help="held-out accuracy to time")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-time cap of each run")
    parser.add_argument("--max-steps", type=int, default=None, help="steps of each run (default: the recipe's)")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--tool-delay", type=float, default=1.0, help="seconds each calculator turn waits")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any train option")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_async"))
    parser.set_defaults(env="math_tool")  # the environment whose calculator --tool-delay slows (run_one reads it)
    args = parser.parse_args()
    args.set = [f"env_args.tool_delay_s={args.tool_delay}", *args.set]
    chosen = variants([int(k) for k in args.staleness.split(",")], args.diagnose)
    if args.variants:
        chosen = {name: chosen[name] for name in args.variants.split(",")}
    results = []
    for label, overrides in chosen.items():
        for seed in map(int, args.seeds.split(",")):
            result = run_one(label, overrides, seed, args, args.out)
            result |= summarize_run(result, args.target)
            results.append(result)
            print(table(results[-1:], args.target).splitlines()[2], flush=True)
    setting = f"math_tool, tool delay {args.tool_delay:g} s per calculator turn, seeds {args.seeds}"
    text = setting + "\n\n" + table(results, args.target) + "\n\n" + summary_table(results, args.target)
    if args.diagnose:
        text += "\n\n" + diagnosis_table(results)
    (args.out / "results.md").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps([without_rows(r) for r in results], indent=2) + "\n")
    plot(results, args.out / "curves.png")
    print(text)
    print(f"wrote {args.out}/results.md, results.json, curves.png")


if __name__ == "__main__":
    main()
