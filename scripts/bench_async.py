"""Asynchronous against synchronous training: wall time to a fixed held-out accuracy.

Trains the default model on ``math_tool`` in these variants, each over ``--seeds``:
synchronous ``grpo`` and ``vcpo``; asynchronous ``vcpo`` at each ``--staleness`` K; and
asynchronous ``grpo`` with token-level truncated IS against the sampler (``mismatch=token``,
the baseline VCPO is compared with) at the same K. Every run uses its algorithm's recipe in
``configs/`` and the same steps, so final accuracies compare too.

Asynchrony pays where rollouts wait on tools, so each calculator turn waits ``--tool-delay``
seconds (``math_tool``'s ``tool_delay_s``, 1 s by default, the order of a remote search or
sandbox call); ``--tool-delay 0`` measures the instant calculator.

Reports per run the wall time at which held-out accuracy first reached ``--target``
(evaluations included), the final accuracy, and what asynchrony did: mean staleness, rows
dropped as too stale, the mean ESS fraction of ``pi_old / mu``, and the idle time of the
learner and of the rollout side. Per variant: the mean time to target, its speed-up over
synchronous ``grpo``, and the mean final accuracy. Writes ``OUT/results.md``,
``OUT/results.json`` and ``OUT/curves.png``.

    python scripts/bench_async.py                                   # 8 variants x 3 seeds
    python scripts/bench_async.py --staleness 1 --seeds 0 --max-steps 20 --tool-delay 0
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench_algos import first_reaching, plot, run_one, without_rows


def variants(staleness: list[int]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {"sync-grpo": {"algo": "grpo"}, "sync-vcpo": {"algo": "vcpo"}}
    for k in staleness:
        on = {"asynchronous.enabled": True, "asynchronous.max_staleness": k}
        out[f"async-vcpo-K{k}"] = {"algo": "vcpo", **on}
        out[f"async-grpo-tis-K{k}"] = {"algo": "grpo", "algo_args.mismatch": "token", **on}
    return out


def summarize_run(result: dict[str, Any], target: float) -> dict[str, Any]:
    steps = [r for r in result["rows"] if r["step"] > 0]

    def mean(key: str) -> float:
        values = [r[key] for r in steps if key in r]
        return statistics.mean(values) if values else float("nan")

    return {
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
    chosen = variants([int(k) for k in args.staleness.split(",")])
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
    (args.out / "results.md").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps([without_rows(r) for r in results], indent=2) + "\n")
    plot(results, args.out / "curves.png")
    print(text)
    print(f"wrote {args.out}/results.md, results.json, curves.png")


if __name__ == "__main__":
    main()
