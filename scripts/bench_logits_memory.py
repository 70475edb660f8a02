"""Peak memory of one learner step on one micro-batch: full ``(T, V)`` logits against chunks.

Builds a Qwen2-shaped model with random weights and a real vocabulary (151,936, Qwen2.5's;
hidden ``--hidden``, ``--layers`` layers; nothing is downloaded) and, for a micro-batch of one
row of each ``--lengths`` T, measures in a fresh process per (path, T) how much the peak
resident memory (``ru_maxrss``) grows over a whole ``TorchLearner.train_step`` (``grpo``:
pi_old, the loss with the entropy as a metric, backward, AdamW), after a warm-up step that
allocates the gradients and the optimizer state: once with ``logits_chunk=0`` (the
full-logits path) and once in chunks (``--chunk`` positions; by default the learner's own
choice, ``chunk_positions``). A full-logits run whose
estimate (``--full-copies`` (T, V) float32 tensors alive at once) exceeds half the available
memory is skipped and its estimate printed instead.

    python scripts/bench_logits_memory.py
    python scripts/bench_logits_memory.py --lengths 512 2048 --chunk 256
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import torch

VOCAB = 151_936
MIB = 2**20


def build_model(hidden: int, layers: int) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16_384,
        tie_word_embeddings=True,
    )
    return Qwen2ForCausalLM(config).train()


def one_row(length: int):
    """A one-row batch of ``length`` tokens, the last 90% sampled (behaviour logprobs 0: the
    measured quantity is memory, not the update)."""
    from agentrl.batch import TokenBatch

    ids = torch.randint(0, VOCAB, (1, length), generator=torch.Generator().manual_seed(length))
    mask = torch.zeros(1, length)
    mask[:, length // 10 :] = 1
    return TokenBatch(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        loss_mask=mask,
        behavior_logprobs=torch.zeros(1, length),
        turn_index=torch.where(mask > 0, 0, -1),
        policy_version=torch.where(mask > 0, 0, -1),
        rewards=torch.ones(1),
        group_index=torch.zeros(1, dtype=torch.long),
        truncated=torch.zeros(1, dtype=torch.bool),
        num_tool_calls=torch.zeros(1),
    )


def measure(args: argparse.Namespace) -> float:
    """MiB the peak RSS grows by over one learner step (``TorchLearner.train_step`` with
    ``grpo``: pi_old, loss, entropy metric, backward, AdamW) on one row of ``args.length``."""
    from agentrl.algos import make
    from agentrl.learner import LearnerConfig, TorchLearner

    learner = TorchLearner(
        build_model(args.hidden, args.layers), make("grpo"), LearnerConfig(micro_batch_size=1, logits_chunk=args.chunk)
    )
    learner.train_step(one_row(16))  # warm-up: allocator, kernels, gradient buffers, AdamW state
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    learner.train_step(one_row(args.length))
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # KiB on Linux


def available_mib() -> float:
    with open("/proc/meminfo") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["MemAvailable"].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--chunk", type=int, default=None, help="positions per lm_head chunk (default: the learner's)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--full-copies", type=int, default=4, help="(T, V) tensors the full path holds at its peak")
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.length is not None:
        print(json.dumps(measure(args)))
        return

    def run(length: int, chunk: int | None) -> float:
        cmd = [sys.executable, __file__, f"--length={length}"] + ([f"--chunk={chunk}"] if chunk is not None else [])
        cmd += [f"--hidden={args.hidden}", f"--layers={args.layers}"]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])

    from agentrl.learner.forward import chunk_positions

    print(f"a micro-batch of one row, V = {VOCAB:,}, hidden {args.hidden}, {args.layers} layers, float32")
    print(f"{'T':>6} | {'full logits (MiB)':>24} | {'chunked (MiB)':>13} | {'chunk':>5} | {'(T, V) fp32 (MiB)':>17}")
    notes = []
    for length in args.lengths:
        one = length * VOCAB * 4 / MIB
        if args.full_copies * one > available_mib() / 2:
            full = f"skipped (~{args.full_copies * one:,.0f} est.)"
            notes.append(
                f"T = {length}: {args.full_copies} x {length} x {VOCAB:,} x 4 B = {args.full_copies * one:,.0f} MiB, "
                f"over half of the {available_mib():,.0f} MiB available; not run"
            )
        else:
            full = f"{run(length, 0):,.0f}"
        chunk = args.chunk or chunk_positions(length - 1, args.hidden, VOCAB)
        print(f"{length:>6} | {full:>24} | {run(length, args.chunk):>13,.0f} | {chunk:>5} | {one:>17,.0f}")
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
