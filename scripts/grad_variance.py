"""How much an objective's policy gradient varies from batch to batch, at one policy.

Rolls out ``--batches`` independent rollout batches (``tasks_per_step`` tasks x ``group_size``
episodes, the recipe's) from the default model on ``--env`` without training, and computes on
each batch, for every objective in ``--algos``, the gradient the learner would step on (its
advantages, its loss, the same micro-batches; no clipping, no optimizer step). The objectives
see the same batches, so they are compared at equal batch. Per objective it reports:

- ``trace var``: the total variance ``sum_j Var(g_j)`` across batches (unbiased, over the
  ``--batches`` samples);
- ``|mean g|^2``: the squared norm of the mean gradient;
- ``relative var``: their ratio, which a rescaling of the loss (as GRPO's division by the group
  std does) leaves unchanged, so objectives of different scales compare.

Besides the registered objectives, ``--algos`` takes the estimators of ``VARIANTS``:
``opo-exact`` is OPO's baseline with each trajectory's exact squared score norm
``||grad sum_t log pi||^2`` in place of its length ``|y|`` (on an on-policy batch, ``vcpo``
with every weight 1, no std scaling, token-mean and no lr rule computes exactly that), which
tells whether OPO's length proxy or the baseline itself sets its variance.

    python scripts/grad_variance.py --algos grpo,opo,reinforce --seeds 0,1,2 --batches 12
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from agentrl.algos import make as make_algorithm
from agentrl.algos.base import Algorithm
from agentrl.batch import TokenBatch
from agentrl.learner import LearnerConfig, TorchLearner
from agentrl.trainer import config as train_config
from agentrl.trainer import make_trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "opo-exact": (
        "vcpo",
        {"grad_norm": "exact", "std_normalize": False, "aggregation": "token-mean", "lr_rule": "off"},
    ),
}


class Moments:
    """Running sums of a gradient vector and its squared norm (float64)."""

    def __init__(self) -> None:
        self.n, self.total, self.sq = 0, torch.zeros(0, dtype=torch.float64), 0.0

    def add(self, g: torch.Tensor) -> None:
        g = g.to(torch.float64)
        self.total = g.clone() if self.n == 0 else self.total + g
        self.sq += float(g.square().sum())
        self.n += 1

    def stats(self) -> dict[str, float]:
        signal = float((self.total / self.n).square().sum())  # |mean g|^2
        trace = (self.sq - self.n * signal) / (self.n - 1)
        return {"trace_var": trace, "mean_sq": signal, "relative_var": trace / signal}


def estimator(name: str) -> Algorithm:
    """A registered objective by name, or one of ``VARIANTS``."""
    algo, options = VARIANTS.get(name, (name, {}))
    return make_algorithm(algo, **options)


def flat_gradient(learner: TorchLearner, batch: TokenBatch) -> torch.Tensor:
    prepared = learner.prepare_batch(batch.to(learner.device, learner.dtype))
    learner.compute_gradients(prepared)
    params = learner.model.parameters()
    grads = [p.grad.flatten() if p.grad is not None else torch.zeros(p.numel(), device=p.device) for p in params]
    return torch.cat(grads).detach().cpu()


def measure(env: str, algos: list[str], seed: int, batches: int) -> dict[str, dict[str, float]]:
    """Per objective, the moments of its gradient over ``batches`` rollout batches of seed ``seed``."""
    path = CONFIGS / f"{env}_grpo.yaml"
    config = train_config.load(path if path.is_file() else None, {"env": env, "seed": seed})
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = make_trainer(config, Path(run_dir))
        model = trainer.models.learner.model
        micro = LearnerConfig(micro_batch_size=config.learner.micro_batch_size)
        learners = {name: TorchLearner(model, estimator(name), micro) for name in algos}
        moments = {name: Moments() for name in algos}
        for b in range(batches):
            trajectories, _ = trainer.source.collect(b)  # the policy never changes: no step is taken
            batch = TokenBatch.from_trajectories(trajectories, trainer.models.pad_token_id)
            for name, learner in learners.items():
                moments[name].add(flat_gradient(learner, batch))
        model.zero_grad(set_to_none=True)
    return {name: m.stats() for name, m in moments.items()}


def table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    lines = ["| objective | seed | trace var | mean g sq norm | relative var |", "|---|---|---|---|---|"]
    algos = list(next(iter(results.values())))
    for algo in algos:
        for seed, per_algo in results.items():
            s = per_algo[algo]
            lines.append(f"| {algo} | {seed} | {s['trace_var']:.4g} | {s['mean_sq']:.4g} | {s['relative_var']:.3f} |")
        rel = [per_algo[algo]["relative_var"] for per_algo in results.values()]
        spread = f" +- {statistics.stdev(rel):.3f}" if len(rel) > 1 else ""
        lines.append(f"| **{algo}** | mean | | | **{statistics.mean(rel):.3f}**{spread} |")
    return "\n".join(lines)


def run(env: str, algos: list[str], seeds: list[int], batches: int, out: Path) -> dict[int, dict[str, Any]]:
    """Measure every seed, keeping each seed's result in ``out`` (a kept seed is read back)."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        saved = out / f"{env}-seed{seed}-b{batches}.json"
        kept = json.loads(saved.read_text()) if saved.is_file() else {}
        if set(kept) >= set(algos):
            results[seed] = {a: kept[a] for a in algos}
            continue
        results[seed] = measure(env, algos, seed, batches)
        saved.write_text(json.dumps(results[seed], indent=2) + "\n")
        print(
            f"seed {seed}: " + ", ".join(f"{a} {v['relative_var']:.3f}" for a, v in results[seed].items()), flush=True
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="math_tool")
    parser.add_argument("--algos", default="grpo,opo,reinforce")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--batches", type=int, default=12, help="rollout batches per seed (at least 2)")
    parser.add_argument("--out", type=Path, default=Path("runs/grad_variance"))
    args = parser.parse_args()
    if args.batches < 2:
        parser.error("--batches must be at least 2 (a variance needs two samples)")
    results = run(args.env, args.algos.split(","), [int(s) for s in args.seeds.split(",")], args.batches, args.out)
    text = table(results)
    (args.out / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
