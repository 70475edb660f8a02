"""``agentrl plan --model NAME --gpus N``: will this training fit, per GPU, before any weight loads.

Prints the learner's memory per GPU (weights, gradients, optimizer state, autocast copies, a KL
reference, activations at the micro-batch and sequence length), the vLLM engine's share and what
it must hold, and whether it all fits (``agentrl.plan`` has the accounting). ``--model`` takes a
model directory, a hub name (only its config.json is fetched) or a shape that ships with agentrl
(qwen2.5-0.5b, qwen2.5-1.5b, qwen2.5-7b). More than one GPU means the DeepSpeed learner.
Exit status 0 when it fits, 1 when it does not (the table is printed either way), 2 on a mistake.
"""

from __future__ import annotations

import argparse
from typing import Any

from agentrl.errors import ConfigError

PRECISIONS = ("bf16", "fp16", "fp32")


def register(commands: Any) -> None:
    p = commands.add_parser(
        "plan", help="memory per GPU of a training run, from the model's config", description=__doc__
    )
    p.add_argument("--model", required=True, help="a model directory, hub name or shipped shape (e.g. qwen2.5-7b)")
    p.add_argument("--gpus", type=int, default=1, help="GPUs the learner trains on (more than 1: DeepSpeed)")
    p.add_argument("--gpu-memory", type=float, default=80.0, help="memory of one GPU, GiB")
    p.add_argument("--zero", type=int, choices=(2, 3), default=None, help="DeepSpeed ZeRO stage (default 2 on >1 GPU)")
    p.add_argument(
        "--lora", type=int, nargs="?", const=16, default=0, metavar="RANK", help="LoRA adapters of this rank"
    )
    p.add_argument("--precision", choices=PRECISIONS, default="bf16", help="the learner's compute precision")
    p.add_argument("--bf16-weights", action="store_true", help="learner.weights_dtype=bfloat16 (torch learner)")
    p.add_argument("--gradient-checkpointing", action="store_true", help="learner.gradient_checkpointing=true")
    p.add_argument("--micro-batch", type=int, default=32, help="learner.micro_batch_size")
    p.add_argument("--micro-batch-tokens", type=int, default=16384, help="learner.micro_batch_tokens (0: no cap)")
    p.add_argument("--seq-len", type=int, default=512, help="tokens of one episode (max_total_tokens)")
    p.add_argument("--kl", action="store_true", help="the objective has KL to a reference model (kl_coef > 0)")
    p.add_argument("--engine", choices=("vllm", "transformers"), default="vllm", help="the rollout engine on the GPUs")
    p.add_argument("--colocate", action="store_true", help="engine.vllm.colocate: vLLM sleeps while the learner trains")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="engine.vllm.gpu_memory_utilization")
    p.add_argument("--max-model-len", type=int, default=2048, help="engine.vllm.max_model_len")
    p.set_defaults(run=run)


def setup_of(args: argparse.Namespace) -> Any:
    from agentrl.plan import Setup

    if args.gpus < 1 or args.micro_batch < 1 or args.seq_len < 1 or args.gpu_memory <= 0:
        raise ConfigError("--gpus, --micro-batch and --seq-len are at least 1, --gpu-memory above 0")
    if args.zero is not None and args.gpus == 1 and args.bf16_weights:
        raise ConfigError("--bf16-weights is the torch learner's; DeepSpeed (--zero) trains float32 weights")
    deepspeed = args.gpus > 1 or args.zero is not None
    if deepspeed and (args.bf16_weights or args.precision != "fp32"):
        print("note: the DeepSpeed learner trains float32 weights in float32: planned so (--precision fp32)")
    return Setup(
        gpus=args.gpus,
        backend="deepspeed" if deepspeed else "torch",
        zero_stage=args.zero or 2,
        lora_rank=args.lora,
        precision="fp32" if deepspeed else args.precision,
        weights_dtype="bfloat16" if args.bf16_weights and not deepspeed else "float32",
        gradient_checkpointing=args.gradient_checkpointing,
        micro_batch_size=args.micro_batch,
        micro_batch_tokens=args.micro_batch_tokens or None,
        seq_len=args.seq_len,
        reference=args.kl,
        vllm=args.engine == "vllm",
        colocate=args.colocate,
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        gpu_gib=args.gpu_memory,
    )


def run(args: argparse.Namespace) -> int:
    from agentrl.plan import GIB, load_config, memory_plan

    setup = setup_of(args)
    plan = memory_plan(load_config(args.model), setup)
    learner = "torch" if setup.backend == "torch" else f"DeepSpeed ZeRO-{setup.zero_stage} over {setup.gpus} GPUs"
    trained = f"LoRA rank {setup.lora_rank}: {plan.trained:,} trained" if setup.lora_rank else "every weight trained"
    print(f"{args.model}: {plan.params:,} parameters ({trained}); learner: {learner}, {setup.precision}")
    print(f"per GPU ({setup.gpu_gib:g} GiB), micro-batch of {setup.tokens:,} tokens:")
    for name, value in plan.rows.items():
        print(f"  {name:<20} {value / GIB:8.2f} GiB")
    print(f"  {'learner total':<20} {plan.learner_total / GIB:8.2f} GiB of {plan.learner_budget / GIB:.2f} left to it")
    if setup.vllm:
        share = "none while the learner trains (colocated)" if setup.colocate else f"{plan.vllm_share / GIB:.2f} GiB"
        needs = f"{plan.vllm_needs / GIB:.2f} GiB"
        print(f"  {'vLLM share':<20} {share}; it holds bf16 weights and one sequence's KV cache: {needs}")
    verdict = "fits" if plan.fits else "does not fit"
    print(f"{verdict}: {plan.learner_total / GIB:.1f} GiB learner" + ("" if plan.fits else hints(setup)))
    return 0 if plan.fits else 1  # so that `agentrl plan ... && agentrl train ...` stops where it would not fit


def hints(setup: Any) -> str:
    """What would shrink a plan that does not fit, in the order a user would try them."""
    options = []
    if not setup.gradient_checkpointing:
        options.append("--gradient-checkpointing")
    if not setup.lora_rank:
        options.append("--lora")
    if setup.backend == "torch":
        options.append("--gpus N (ZeRO)")
    elif setup.zero_stage == 2:
        options.append("--zero 3")
    if setup.vllm and not setup.colocate:
        options.append("--colocate")
    return "; try " + ", ".join(options) if options else ""
