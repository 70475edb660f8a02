"""Reward that rises on a CPU: each algorithm, several seeds, a table and a PNG.

For every ``--algos`` x ``--seeds``, trains the default model on ``--env`` (``math_tool``) with
the recipe in ``configs/<env>_<algo>.yaml`` (when it exists, plus ``--set`` overrides) for its
steps or ``--max-steps``, stopping early if ``--minutes`` of wall time would be overrun. Reports
the held-out accuracy before and after, the wall time at which held-out accuracy first reached
the initial accuracy + ``--target-gain`` (evaluations included), the steps taken, the total wall
time, the final entropy and the KL of the final policy to the initial one (estimated on the final
policy's own samples of held-out tasks: the mean over sampled tokens of
``log pi_final - log pi_initial``). Writes ``OUT/results.md``, ``OUT/results.json`` and
``OUT/curves.png`` (held-out accuracy against wall time, one line per run).

    python scripts/bench_algos.py                                  # 5 algorithms x 3 seeds, <= 10 minutes each
    python scripts/bench_algos.py --algos grpo --seeds 0 --minutes 3
    python scripts/bench_algos.py --env search_qa --algos grpo,vcpo  # the retriever in this process
    python scripts/bench_algos.py --env search_qa --algos grpo --set env_args.retriever=http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import torch

from agentrl.cli.envs_cmd import parse_env_args
from agentrl.engines.base import SamplingParams
from agentrl.engines.loading import load_model
from agentrl.engines.logprobs import teacher_forced_logprobs
from agentrl.envs import make
from agentrl.rollout import RolloutConfig, rollout
from agentrl.trainer import config as train_config
from agentrl.trainer import make_trainer
from agentrl.trainer.setup import resolve_model
from agentrl.trainer.sync import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def kl_to_initial(trainer: Trainer, initial: torch.nn.Module, tasks: int = 64) -> float:
    factory = functools.partial(make, trainer.config.env, **trainer.config.env_args)
    test = [trainer.test_tasks[i] for i in range(min(tasks, len(trainer.test_tasks)))]
    params = SamplingParams(temperature=1.0, max_new_tokens=trainer.config.sampling.max_new_tokens, seed=123)
    engine, tokenizer = trainer.eval_engine()  # holds the learner's final weights
    config = RolloutConfig(max_total_tokens=trainer.config.max_total_tokens, seed=123)
    trajectories = rollout(factory, test, engine, tokenizer, params, config)
    forced = teacher_forced_logprobs(initial, [t.token_ids for t in trajectories])
    diffs = [
        t.behavior_logprobs[i] - f[i]
        for t, f in zip(trajectories, forced, strict=True)
        for i, k in enumerate(t.loss_mask)
        if k
    ]
    return sum(diffs) / max(len(diffs), 1)


def run_one(label: str, overrides: dict[str, Any], seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Train one recipe (``configs/<env>_<algo>.yaml`` plus ``overrides`` plus ``--set``) and
    measure it. ``args`` brings ``env``, ``minutes``, ``max_steps``, ``eval_every`` and ``set``.

    The result is kept in ``OUT/<label>-seed<seed>/result.json``; a run whose result is there
    is read back instead of trained again (so an interrupted benchmark, or several launched
    side by side on disjoint runs, resumes and then tabulates everything), and a run folder
    without one (a run that was interrupted) is trained afresh. A kept result of other settings
    is an error, not a silent reuse."""
    path = CONFIGS / f"{args.env}_{overrides['algo']}.yaml"
    merged: dict[str, Any] = {"seed": seed, "time_limit_min": args.minutes, "eval_every": args.eval_every}
    merged["env"] = args.env
    merged |= overrides
    if args.max_steps is not None:
        merged["steps"] = args.max_steps
    merged |= parse_env_args(args.set)
    run_dir = out / f"{label}-seed{seed}"
    saved = run_dir / "result.json"
    if saved.is_file():
        kept = dict(json.loads(saved.read_text()))
        if kept.get("settings") != json.loads(json.dumps(merged)):
            raise SystemExit(f"{run_dir} holds a run of other settings than these; pass another --out or remove it")
        return kept
    if run_dir.exists():
        shutil.rmtree(run_dir)
    config = train_config.load(path if path.is_file() else None, merged)
    run_dir.mkdir(parents=True)
    trainer = make_trainer(config, run_dir)
    summary = trainer.run(progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    entropy = [r["policy/entropy"] for r in rows if "policy/entropy" in r]
    curve = [(r.get("time/elapsed_s", 0.0), r["eval/accuracy"]) for r in rows if "eval/accuracy" in r]
    initial = load_model(resolve_model(config.model))
    result = {
        "label": label,
        "settings": merged,
        "algo": config.algo,
        "seed": seed,
        "initial": summary["accuracy_before"],
        "final": summary["accuracy_after"],
        "steps": summary["steps"],
        "wall_min": curve[-1][0] / 60,
        "entropy": entropy[-1] if entropy else float("nan"),
        "kl_to_initial": kl_to_initial(trainer, initial),
        "curve": curve,
        "rows": rows,
    }
    saved.write_text(json.dumps(result) + "\n")
    return result


def first_reaching(curve: list[tuple[float, float]], accuracy: float) -> float | None:
    """Minutes of wall time at which held-out accuracy first reached ``accuracy``, or None."""
    return next((t / 60 for t, acc in curve if acc >= accuracy - 1e-9), None)


def table(results: list[dict[str, Any]], target_gain: float) -> str:
    lines = [
        f"| algo | seed | initial acc | final acc | gain | min to +{target_gain:.2f} | steps | wall (min) "
        "| final entropy | KL to initial |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        reached = f"{r['target_min']:.1f}" if r["target_min"] is not None else "not reached"
        lines.append(
            f"| {r['algo']} | {r['seed']} | {r['initial']:.3f} | {r['final']:.3f} | {r['final'] - r['initial']:+.3f} "
            f"| {reached} | {r['steps']} | {r['wall_min']:.1f} | {r['entropy']:.3f} | {r['kl_to_initial']:.4f} |"
        )
    for algo in dict.fromkeys(r["algo"] for r in results):
        runs = [r for r in results if r["algo"] == algo]
        gain = statistics.mean(r["final"] - r["initial"] for r in runs)
        times = [r["target_min"] for r in runs if r["target_min"] is not None]
        worst = f"worst {max(times):.1f}, {len(times)}/{len(runs)} reached" if times else f"0/{len(runs)} reached"
        lines.append(f"| **{algo}** | mean of {len(runs)} | | | **{gain:+.3f}** | {worst} | | | | |")
    return "\n".join(lines)


def without_rows(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "rows"}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    colors = {a: f"C{i}" for i, a in enumerate(dict.fromkeys(r["label"] for r in results))}
    for r in results:
        xs, ys = zip(*r["curve"], strict=True) if r["curve"] else ((), ())
        ax.plot([x / 60 for x in xs], ys, color=colors[r["label"]], alpha=0.8, label=f"{r['label']} s{r['seed']}")
    ax.set_xlabel("wall time (min, evaluations included)")
    ax.set_ylabel("held-out accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="math_tool")
    parser.add_argument("--algos", default="grpo,opo,vcpo,st_ppo,spear")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-time cap of each run")
    parser.add_argument("--max-steps", type=int, default=None, help="steps of each run (default: the recipe's)")
    parser.add_argument("--target-gain", type=float, default=0.25, help="held-out accuracy gain to time")
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any train option")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_algos"))
    args = parser.parse_args()
    results = []
    for algo in args.algos.split(","):
        for seed in map(int, args.seeds.split(",")):
            result = run_one(algo, {"algo": algo}, seed, args, args.out)
            result["target_min"] = first_reaching(result["curve"], result["initial"] + args.target_gain)
            results.append(result)
            print(table(results[-1:], args.target_gain).splitlines()[2], flush=True)
    text = table(results, args.target_gain)
    (args.out / "results.md").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps([without_rows(r) for r in results], indent=2) + "\n")
    plot(results, args.out / "curves.png")
    print(text)
    print(f"wrote {args.out}/results.md, results.json, curves.png")


if __name__ == "__main__":
    main()
