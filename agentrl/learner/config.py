"""``LearnerConfig``: the optimizer and batching settings of a learner backend; ``LoraConfig``:
the LoRA adapters it may train instead of every weight (``agentrl.learner.lora``).

Owns only settings that are the learner's own (optimizer, micro-batching, precision). An
objective's settings live in its own config (``agentrl.algos``), never here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agentrl.config import check_choice, check_range, option
from agentrl.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "fp64")
ALL_LINEAR = "all-linear"  # LoRA on every linear layer but the output projection


@dataclass
class LearnerConfig:
    lr: float = option(1e-5, "AdamW learning rate (an algorithm's lr_scale multiplies it per step)")
    weight_decay: float = option(0.0, "AdamW weight decay")
    betas: tuple[float, float] = option((0.9, 0.999), "AdamW betas")
    eps: float = option(1e-8, "AdamW epsilon")
    warmup_steps: int = option(0, "rollout batches over which lr rises linearly from lr/warmup_steps to lr")
    max_grad_norm: float | None = option(1.0, "clip the global gradient norm to this; None = no clipping")
    micro_batch_size: int = option(8, "at most this many rows per forward/backward pass (gradient accumulation)")
    micro_batch_tokens: int | None = option(
        16384,
        "padded tokens (rows x longest row) per forward/backward pass: rows are sorted by length and "
        "packed under this budget and micro_batch_size; None = rows only",
    )
    minibatches: int = option(1, "optimizer steps per epoch over the rollout batch")
    epochs: int = option(1, "passes over the rollout batch")
    recompute_old_logprobs: bool = option(True, "recompute pi_old with the learner; False uses the sampler's logprobs")
    precision: str = option(
        "auto",
        "the forward and backward's arithmetic: auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 (autocast), fp16 "
        "(autocast with dynamic loss scaling) or fp64 (the weights and their optimizer state: learner.weights_dtype)",
    )
    weights_dtype: str = option(
        "float32",
        "the trained weights and their AdamW state: float32 (master weights, what mixed precision keeps) or "
        "bfloat16 (half their memory, but an update below bfloat16's resolution, about 0.4% of a weight, is lost)",
    )
    gradient_checkpointing: bool = option(
        False, "recompute each layer's activations in the backward pass instead of keeping them (less memory)"
    )
    value_lr: float | None = option(None, "learning rate of the value head (ppo); None = lr")
    logits_chunk: int | None = option(
        None,
        "positions per lm_head chunk (logits memory O(chunk x V), not O(T x V)); None = a chunk's logits "
        "as many as the pass's hidden states (within 2^23..2^25); 0 = full logits",
    )

    backend: str = option(
        "torch",
        "torch (one process) or deepspeed (ZeRO data parallelism over torch.distributed ranks, "
        "launched by torchrun; agentrl.learner.deepspeed_learner)",
    )
    zero_stage: int = option(2, "deepspeed: ZeRO stage 2 (optimizer state and gradients sharded) or 3 (and parameters)")
    offload_optimizer: bool = option(False, "deepspeed: keep the optimizer state in CPU memory")
    offload_params: bool = option(False, "deepspeed: keep the parameters in CPU memory (ZeRO-3 only)")
    gather_bucket_mb: float = option(
        256.0, "deepspeed ZeRO-3: parameters gathered at a time (their full sizes, MiB) to hand the weights out"
    )
    dist_timeout_min: float = option(
        60.0,
        "ranks of a launched run (--nproc): a rank that waits longer than this for another (rank 0's "
        "rollouts and evaluation included) stops the run",
    )

    def __post_init__(self) -> None:
        check_choice("learner", "backend", self.backend, ("torch", "deepspeed"))
        check_choice("learner", "zero_stage", self.zero_stage, (2, 3))
        check_range("learner", "gather_bucket_mb", self.gather_bucket_mb, 0)
        check_range("learner", "dist_timeout_min", self.dist_timeout_min, 0.01)
        if self.backend == "deepspeed" and (self.weights_dtype != "float32" or self.precision in ("bf16", "fp16")):
            # ZeRO's step checks the gradient norm for inf / NaN in float32; that check is what
            # discards a non-finite step (deepspeed_learner), and bf16 weights would skip it
            raise ConfigError(
                "learner.backend=deepspeed trains float32 weights in float32 for now: set "
                "learner.weights_dtype=float32 and learner.precision to auto or fp32"
            )
        if self.offload_params and self.zero_stage != 3:
            raise ConfigError(
                "learner: offload_params=true needs zero_stage=3 (ZeRO-2 keeps whole parameters on each rank)"
            )
        check_range("learner", "lr", self.lr, 0)
        check_range("learner", "warmup_steps", self.warmup_steps, 0)
        check_range("learner", "micro_batch_size", self.micro_batch_size, 1)
        if self.micro_batch_tokens is not None:
            check_range("learner", "micro_batch_tokens", self.micro_batch_tokens, 1)
        check_range("learner", "minibatches", self.minibatches, 1)
        check_range("learner", "epochs", self.epochs, 1)
        if self.logits_chunk is not None:
            check_range("learner", "logits_chunk", self.logits_chunk, 0)
        check_choice("learner", "precision", self.precision, PRECISIONS)
        check_choice("learner", "weights_dtype", self.weights_dtype, ("float32", "bfloat16"))
        if self.max_grad_norm is not None:
            check_range("learner", "max_grad_norm", self.max_grad_norm, 0)


@dataclass
class LoraConfig:
    rank: int = option(0, "LoRA rank r; 0 = no LoRA (every weight trains)")
    alpha: float = option(32.0, "LoRA alpha: an adapter's update is scaled by alpha / rank")
    dropout: float = option(
        0.0, "dropout on the adapters' input; above 0 the learner's pi_old and loss passes see different masks"
    )
    target_modules: list[str] = field(
        default_factory=lambda: [ALL_LINEAR],
        metadata={
            "help": "the layers given adapters: all-linear (every linear layer but the output projection) "
            "or module names, e.g. [q_proj, v_proj]"
        },
    )

    def __post_init__(self) -> None:
        check_range("lora", "rank", self.rank, 0)
        if not self.alpha > 0:  # alpha = 0 scales every update to nothing: a run that trains nothing
            raise ConfigError(f"lora: alpha={self.alpha} must be above 0 (the update is scaled by alpha / rank)")
        check_range("lora", "dropout", self.dropout, 0.0, 0.99)
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        if not self.target_modules:
            raise ConfigError("lora: target_modules is empty; use [all-linear] or name the layers")

    @property
    def enabled(self) -> bool:
        return self.rank > 0

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank
