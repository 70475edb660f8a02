"""Learner throughput: an agentrl optimizer step against a bare forward + backward + AdamW
loop over the same tokens, and the peak memory of each.

Each side runs in its own process (so peak memory is its own): ``--rows`` sequences of
``--length`` tokens, the last ``--response`` of each sampled, micro-batches of ``--micro``
rows, gradient clipping and AdamW on both. agentrl's side is ``TorchLearner.train_step``
with ``grpo`` (advantages, masks, clipped surrogate, metrics); pi_old is taken from the
batch (``recompute_old_logprobs=False``), as the bare loop does not recompute it either; the
figure with recomputation (one more forward pass) is printed too. Each process reports the
median of ``--steps`` steps after one warm-up; the sides alternate over ``--rounds`` rounds
and the medians over rounds are compared (this 2-core machine's noise is about +-8%).

    python scripts/bench_learner.py                 # random Qwen2, hidden 256, 4 layers
    python scripts/bench_learner.py --model DIR
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch


def synthetic_batch(model, rows: int, length: int, response: int, seed: int = 0):
    from agentrl.batch import TokenBatch
    from agentrl.learner.forward import forward_tokens

    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (rows, length), generator=g)
    mask = torch.zeros(rows, length)
    mask[:, length - response :] = 1
    with torch.no_grad():
        behavior = forward_tokens(model, ids, torch.ones_like(ids), 1.0)[0] * mask
    return TokenBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        loss_mask=mask,
        behavior_logprobs=behavior,
        turn_index=torch.where(mask > 0, 0, -1),
        policy_version=torch.where(mask > 0, 0, -1),
        rewards=torch.rand(rows, generator=g),
        group_index=torch.arange(rows) // 8,
        truncated=torch.zeros(rows, dtype=torch.bool),
        num_tool_calls=torch.zeros(rows),
    )


def run_side(args: argparse.Namespace) -> dict[str, float]:
    from agentrl.algos import make
    from agentrl.engines.loading import load_model
    from agentrl.learner import LearnerConfig, TorchLearner

    torch.manual_seed(0)
    model = load_model(args.model, device=args.device).train()
    batch = synthetic_batch(model, args.rows, args.length, args.response)
    config = LearnerConfig(
        lr=1e-5, micro_batch_size=args.micro, recompute_old_logprobs=args.side == "learner_recompute"
    )
    if args.side.startswith("learner"):
        learner = TorchLearner(model, make("grpo"), config)

        def step() -> None:
            learner.train_step(batch)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        device = next(model.parameters()).device
        b = batch.to(device)
        advantages = (b.rewards - b.rewards.mean())[:, None] * b.loss_mask
        tokens = float(b.loss_mask.sum())

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            for rows in b.row_slices(-(-b.size // args.micro)):
                logits = model(input_ids=b.input_ids[rows], attention_mask=b.attention_mask[rows]).logits
                logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, b.input_ids[rows, 1:, None]).squeeze(-1)
                (-(advantages[rows, 1:] * logp).sum() / tokens).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()

    step()  # warm-up
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if torch.cuda.is_available()
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"tokens_per_s": args.rows * args.length / statistics.median(times), "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model directory (default: a random Qwen2 with hidden 256, 4 layers)")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--response", type=int, default=192)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of processes; medians reported")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--side", choices=["learner", "learner_recompute", "bare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args)))
        return
    if args.model is None:
        from agentrl.models.tiny import make_tiny_model

        args.model = str(make_tiny_model(tempfile.mkdtemp(), hidden=256, layers=4))
    runs: dict[str, list[dict[str, float]]] = {"learner": [], "bare": [], "learner_recompute": []}
    for _ in range(args.rounds):  # alternate the sides so machine noise hits both alike
        for side, results in runs.items():
            cmd = [sys.executable, __file__, "--side", side]
            cmd += [f"--{k}={v}" for k, v in vars(args).items() if k not in ("side", "rounds")]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results.append(json.loads(out))
    print(
        f"{args.rows} rows x {args.length} tokens ({args.response} sampled), micro-batch {args.micro}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}"
    )
    median = {side: statistics.median(r["tokens_per_s"] for r in rs) for side, rs in runs.items()}
    for side, rs in runs.items():
        rounds = ", ".join(f"{r['tokens_per_s']:.0f}" for r in rs)
        peak = max(r["peak_mib"] for r in rs)
        print(f"{side:>18}: {median[side]:9.1f} tokens/s (rounds: {rounds})   peak memory {peak:8.1f} MiB")
    ratio = median["learner"] / median["bare"]
    print(f"{'ratio':>18}: {ratio:.3f}  (agentrl learner / bare loop; target >= 0.95)")


if __name__ == "__main__":
    main()
