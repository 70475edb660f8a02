"""agentrl against TRL's GRPOTrainer on the same work, alternating sides on one machine.

The peer side is ``trl_math.py`` (``../shared/peer/``, or ``--peer``): TRL's ``GRPOTrainer``
training agentrl's default model on agentrl's own ``math`` / ``math_tool`` tasks, prompts,
chat template, reward, calculator and held-out evaluation. It runs in its own venv
(``--trl-python``; set-up in ``../shared/peer/README.md``) with agentrl installed there from a
wheel built from this tree (``--install`` builds and installs it). agentrl's side is
``agentrl train`` with the same GRPO settings. Rounds alternate the sides, one process at a
time, so machine noise hits both alike.

Printed per side: seconds per training step (rollout to updated weights, evaluation
excluded), samples/s, rollout and learner seconds per step, held-out accuracy before and
after; then the ratio of samples/s and what is equal and what is not between the sides.

    python scripts/bench_vs_trl.py --trl-python ../.venv-trl/bin/python --install
    python scripts/bench_vs_trl.py --env math --rounds 3 --steps 30
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS_PER_STEP, GROUP_SIZE = 16, 8  # trl_math.py's (and configs/math_tool_grpo.yaml's) batch

EQUAL = [
    "model: agentrl's default model, float32, CPU, the same torch threads",
    "tasks: the environment's train split, prompts from its reset, its chat template",
    "reward: the environment's step (answer extraction + math-verify); math_tool: agentrl's calculator",
    f"batch: {TASKS_PER_STEP} prompts x {GROUP_SIZE} samples, temperature 1, top-p 1, top-k off, 48 new tokens",
    "objective: GRPO, (R - mean) / std per group, clip 0.2 both sides, no KL, no entropy bonus, token-mean",
    "optimizer: AdamW lr 2e-4 constant, betas (0.9, 0.999), eps 1e-8, no weight decay, grad-norm clip 1",
    "one optimizer step per rollout batch; gradient checkpointing off on both sides",
    "held-out evaluation: agentrl's rollout on the first 200 test tasks, one episode each, seed = run seed",
]
UNEQUAL = [
    "token budget: TRL's 48 tokens cover a whole episode (all turns), agentrl's 48 are per turn "
    "(512 per episode): agentrl samples more tokens per step in math_tool",
    "a turn without an action: agentrl answers with a nudge and the episode goes on; TRL ends it",
    "micro-batches: TRL one forward over the 128 rows padded to the longest; agentrl rows sorted by "
    "length and packed in micro-batches of at most 32 rows / 16,384 tokens, each cut to its longest row",
    "pi_old: neither side runs a separate forward on this exactly on-policy step (agentrl takes it from "
    "the loss's forward, TRL uses the detached logprobs)",
    "sampling: agentrl's transformers engine (batched KV-cache decode, finished rows leave the batch, a "
    "prompt shared by a group prefilled once); TRL's transformers generate()",
]


def agentrl_side(env: str, steps: int, seed: int, eval_tasks: int, out: Path) -> dict:
    """``agentrl train`` with trl_math.py's settings; the summary from its metrics.jsonl."""
    run = f"agentrl-{env}-s{seed}"
    cmd = [sys.executable, "-m", "agentrl.cli.main", "train", "--env", env, "--algo", "grpo"]
    cmd += ["--steps", str(steps), "--seed", str(seed), "--runs-dir", str(out), "--name", run, "--overwrite"]
    cmd += ["--no-progress"]
    for option in (
        f"tasks_per_step={TASKS_PER_STEP}",
        f"group_size={GROUP_SIZE}",
        f"eval_tasks={eval_tasks}",
        "eval_every=0",
        f"checkpoint_every={steps + 1}",
        "episodes_every=0",
        "sampling.temperature=1.0",
        "sampling.max_new_tokens=48",
        "learner.lr=2e-4",
        "learner.max_grad_norm=1.0",
        "learner.epochs=1",
        "learner.minibatches=1",
        "algo_args.clip_low=0.2",
        "algo_args.clip_high=0.2",
    ):
        cmd += ["--set", option]
    run_checked(cmd)
    lines = [json.loads(x) for x in (out / run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    steps_ = [x for x in lines if "time/step_s" in x]
    evals = [x["eval/accuracy"] for x in lines if "eval/accuracy" in x]
    step_s = statistics.fmean(x["time/step_s"] for x in steps_)
    return {
        "s_per_step": step_s,
        "samples_per_s": TASKS_PER_STEP * GROUP_SIZE / step_s,
        "rollout_s": statistics.fmean(x["time/rollout_s"] for x in steps_),
        "learner_s": statistics.fmean(x["time/learner_s"] for x in steps_),
        "sampled_tokens_per_step": statistics.fmean(x["rollout/sampled_tokens"] for x in steps_),
        "accuracy_before": evals[0],
        "accuracy_after": evals[-1],
    }


def trl_side(python: str, peer: Path, env: str, steps: int, seed: int, eval_tasks: int, out: Path) -> dict:
    """trl_math.py's summary; its learner time is its step time less its rollout time."""
    where = out / f"trl-{env}-s{seed}"
    cmd = [python, str(peer), "--env", env, "--steps", str(steps), "--seed", str(seed)]
    cmd += ["--eval-tasks", str(eval_tasks), "--out", str(where)]
    run_checked(cmd)
    s = json.loads((where / "summary.json").read_text())
    return {
        "s_per_step": s["s_per_step"],
        "samples_per_s": s["samples_per_s"],
        "rollout_s": s["rollout_s"],
        "learner_s": s["s_per_step"] - s["rollout_s"],
        "sampled_tokens_per_step": s["sampled_tokens_per_step"],
        "accuracy_before": s["accuracy_before"],
        "accuracy_after": s["accuracy_after"],
    }


def run_checked(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench_vs_trl: {' '.join(cmd)} failed:\n{done.stderr[-3000:]}")


def install_into(python: str) -> None:
    """Build this tree's wheel and install it into the peer's venv, keeping the versions of
    what is there (TRL's pins) and adding what agentrl needs and the venv lacks."""
    with tempfile.TemporaryDirectory() as dist:
        subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", dist, str(ROOT)], check=True,
                       capture_output=True)  # fmt: skip
        (wheel,) = Path(dist).glob("*.whl")
        pip = [python, "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "--no-deps", "--force-reinstall", str(wheel)], check=True)
        subprocess.run([*pip, str(wheel)], check=True)  # what it needs and the venv lacks; its pins stay


def report(env: str, steps: int, runs: dict[str, list[dict]]) -> None:
    print(f"\n{env}: {steps} steps, {TASKS_PER_STEP * GROUP_SIZE} samples per step, {len(runs['agentrl'])} rounds")
    keys = ["s_per_step", "samples_per_s", "rollout_s", "learner_s", "sampled_tokens_per_step"]
    print(f"{'side':>8} | " + " | ".join(f"{k:>23}" for k in keys) + " | accuracy before -> after")
    median = {}
    for side, results in runs.items():
        median[side] = {k: statistics.median(r[k] for r in results) for k in keys}
        cells = " | ".join(f"{median[side][k]:>23.2f}" for k in keys)
        accuracy = ", ".join(f"{r['accuracy_before']:.3f} -> {r['accuracy_after']:.3f}" for r in results)
        print(f"{side:>8} | {cells} | {accuracy}")
        print(f"{'':>8}   rounds, s/step: " + ", ".join(f"{r['s_per_step']:.2f}" for r in results))
    ratio = median["agentrl"]["samples_per_s"] / median["trl"]["samples_per_s"]
    after = {side: statistics.median(r["accuracy_after"] for r in rs) for side, rs in runs.items()}
    print(f"agentrl / TRL samples/s: {ratio:.2f}x (target >= 1.5x on math_tool, > 1x on math)")
    print(f"held-out accuracy after {steps} steps, median: agentrl {after['agentrl']:.3f}, TRL {after['trl']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", default=["math_tool", "math"], choices=["math_tool", "math"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per environment")
    parser.add_argument("--seed", type=int, default=0, help="round r runs seed + r on both sides")
    parser.add_argument("--eval-tasks", type=int, default=200)
    parser.add_argument("--trl-python", default=str(ROOT.parent / ".venv-trl" / "bin" / "python"))
    parser.add_argument("--peer", default=str(ROOT.parent / "shared" / "peer" / "trl_math.py"))
    parser.add_argument("--install", action="store_true", help="build this tree's wheel into the peer's venv first")
    parser.add_argument("--out", default=None, help="where both sides' runs go (default: a temporary directory)")
    args = parser.parse_args()
    for path, what in ((args.trl_python, "--trl-python"), (args.peer, "--peer")):
        if not Path(path).exists():
            sys.exit(f"bench_vs_trl: {what} {path} does not exist (set-up: ../shared/peer/README.md)")
    if args.install:
        install_into(args.trl_python)
    out = Path(args.out or tempfile.mkdtemp(prefix="bench_vs_trl-"))
    print("equal on both sides:\n" + "\n".join(f"  = {x}" for x in EQUAL))
    print("not equal:\n" + "\n".join(f"  ! {x}" for x in UNEQUAL))
    for env in args.env:
        runs: dict[str, list[dict]] = {"agentrl": [], "trl": []}
        for r in range(args.rounds):
            for side in ("agentrl", "trl") if r % 2 == 0 else ("trl", "agentrl"):
                seed = args.seed + r
                if side == "agentrl":
                    result = agentrl_side(env, args.steps, seed, args.eval_tasks, out)
                else:
                    result = trl_side(args.trl_python, Path(args.peer), env, args.steps, seed, args.eval_tasks, out)
                runs[side].append(result)
                print(f"{env} round {r + 1} {side}: {json.dumps(result)}", flush=True)
        report(env, args.steps, runs)


if __name__ == "__main__":
    main()
