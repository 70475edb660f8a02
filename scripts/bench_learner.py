"""Learner throughput: an agentrl optimizer step against a bare forward + backward + AdamW
loop doing the same useful work, and the peak memory of each.

Two kinds of batch (``--batch``): ``uniform``, ``--rows`` sequences of ``--length`` tokens with
the last ``--response`` sampled; and ``realistic``, multi-turn rows of varied length as agentic
rollouts give them (a prompt, one to four sampled turns with tool observations between them,
right-padded to the longest row, at most ``--length``). Throughput counts real tokens only.

Each side runs in its own process (so peak memory is its own), micro-batches of at most
``--micro`` rows, gradient clipping and AdamW on both:

- ``learner``: ``TorchLearner.train_step`` with ``grpo`` and its defaults (pi_old recomputed,
  taken from the loss's own forward on this exactly on-policy step; rows packed by length);
- ``learner_pi_old_pass``: the same with the separate pi_old forward the learner makes when
  the step is not exactly on-policy (what every step paid before);
- ``bare``: a hand-written loop over consecutive micro-batches, each cut to its longest row,
  full logits and a log-softmax, ``-A log pi`` over the batch's token count. It computes no
  pi_old at all, no metrics and no entropy.

Each process reports the median of ``--steps`` steps after one warm-up; the sides alternate
over ``--rounds`` rounds and the medians over rounds are compared (this 2-core machine's noise
is about +-8%).

    python scripts/bench_learner.py                 # random Qwen2, hidden 256, 4 layers
    python scripts/bench_learner.py --batch realistic --model DIR
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch

SIDES = ("learner", "learner_pi_old_pass", "bare")


def realistic_rows(rows: int, length: int, g: torch.Generator) -> list[list[tuple[int, bool, int]]]:
    """Per row, its segments ``(tokens, sampled, turn)``: a prompt, then 1-4 sampled turns with
    an observation after each but the last, cut at ``length``."""

    def draw(low: int, high: int) -> int:
        return int(torch.randint(max(low, 1), max(high, low + 1, 2), (1,), generator=g))

    out = []
    for _ in range(rows):
        segments = [(draw(length // 10, length // 5), False, -1)]
        turns = draw(1, 5)
        for turn in range(turns):
            segments.append((draw(8, length // 4), True, turn))
            if turn < turns - 1:
                segments.append((draw(6, length // 10), False, -1))
        kept, used = [], 0
        for size, sampled, turn in segments:
            size = min(size, length - used)
            if size > 0:
                kept.append((size, sampled, turn))
                used += size
        out.append(kept)
    return out


def synthetic_batch(model, rows: int, length: int, response: int, kind: str, seed: int = 0):
    from agentrl.batch import TokenBatch
    from agentrl.learner.forward import forward_tokens

    g = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    if kind == "uniform":
        layout = [[(length - response, False, -1), (response, True, 0)] for _ in range(rows)]
    else:
        layout = realistic_rows(rows, length, g)
    width = max(sum(size for size, _, _ in row) for row in layout)
    ids = torch.randint(0, vocab, (rows, width), generator=g)
    attention = torch.zeros(rows, width, dtype=torch.long)
    mask = torch.zeros(rows, width)
    turn = torch.full((rows, width), -1, dtype=torch.long)
    for i, row in enumerate(layout):
        at = 0
        for size, sampled, k in row:
            mask[i, at : at + size] = float(sampled)
            turn[i, at : at + size] = k if sampled else -1
            at += size
        attention[i, :at] = 1
    ids = ids * attention
    with torch.no_grad():
        behavior = forward_tokens(model, ids, attention, 1.0)[0] * mask
    return TokenBatch(
        input_ids=ids,
        attention_mask=attention,
        loss_mask=mask,
        behavior_logprobs=behavior,
        turn_index=turn,
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
    batch = synthetic_batch(model, args.rows, args.length, args.response, args.batch)
    real_tokens = float(batch.attention_mask.sum())
    known = {f.name for f in dataclasses.fields(LearnerConfig)}  # run against older trees too
    options = {"lr": 1e-5, "micro_batch_size": args.micro, "recompute_old_logprobs": True}
    config = LearnerConfig(**{k: v for k, v in options.items() if k in known})
    if args.side.startswith("learner"):
        algo = make("grpo")
        if args.side == "learner_pi_old_pass":
            algo.old_logprobs_in_loss_only = False
        learner = TorchLearner(model, algo, config)

        def step() -> None:
            learner.train_step(batch)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        device = next(model.parameters()).device
        b = batch.to(device)
        advantages = (b.rewards - b.rewards.mean())[:, None] * b.loss_mask
        tokens = float(b.loss_mask.sum())
        lengths = b.attention_mask.sum(-1)

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            for start in range(0, b.size, args.micro):
                rows = slice(start, start + args.micro)
                t = int(lengths[rows].max())
                ids = b.input_ids[rows, :t]
                logits = model(input_ids=ids, attention_mask=b.attention_mask[rows, :t]).logits
                logp = torch.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
                (-(advantages[rows, 1:t] * logp).sum() / tokens).backward()
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
    return {"tokens_per_s": real_tokens / statistics.median(times), "peak_mib": peak, "real_tokens": real_tokens}


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
    parser.add_argument("--batch", choices=["uniform", "realistic", "both"], default="both")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(run_side(args)))
        return
    if args.model is None:
        from agentrl.models.tiny import make_tiny_model

        args.model = str(make_tiny_model(tempfile.mkdtemp(), hidden=256, layers=4))
    for kind in ("uniform", "realistic") if args.batch == "both" else (args.batch,):
        compare(args, kind)


def compare(args: argparse.Namespace, kind: str) -> None:
    runs: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for _ in range(args.rounds):  # alternate the sides so machine noise hits both alike
        for side, results in runs.items():
            cmd = [sys.executable, __file__, "--side", side, "--batch", kind]
            cmd += [f"--{k}={v}" for k, v in vars(args).items() if k not in ("side", "rounds", "batch")]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results.append(json.loads(out))
    real = runs["bare"][0]["real_tokens"]
    print(
        f"{kind}: {args.rows} rows, at most {args.length} tokens ({real / args.rows:.0f} real per row on average), "
        f"micro-batch {args.micro} rows, device {args.device}, torch threads {torch.get_num_threads()}"
    )
    median = {side: statistics.median(r["tokens_per_s"] for r in rs) for side, rs in runs.items()}
    for side, rs in runs.items():
        rounds = ", ".join(f"{r['tokens_per_s']:.0f}" for r in rs)
        peak = max(r["peak_mib"] for r in rs)
        print(f"{side:>20}: {median[side]:9.1f} real tokens/s (rounds: {rounds})   peak memory {peak:8.1f} MiB")
    ratio = median["learner"] / median["bare"]
    print(f"{'ratio':>20}: {ratio:.3f}  (agentrl learner / bare loop; target >= 0.95)")


if __name__ == "__main__":
    main()
