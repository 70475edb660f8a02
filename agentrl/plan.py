"""A memory plan: will a training run fit on its GPUs, from the model's config alone.

Owns ``memory_plan``: the bytes per GPU of the learner's parameters, gradients, optimizer state,
activations and the rest, and of the vLLM engine's share, for a model config (a local
``config.json``, a hub name whose ``config.json`` alone is fetched, or one of the shapes that ship
with agentrl). The model is built on the meta device: every parameter is counted, no weight is
read or allocated. docs/gpu.md#memory-plan gives the accounting and how it was checked.

The accounting, per GPU, P parameters, T of them trained (P, or LoRA's adapters), N GPUs:

- torch learner (one GPU): weights in ``weights_dtype`` (float32: 4P; bfloat16: 2P), gradients
  and AdamW's two moments in the same dtype (3 x that, for T), the 16-bit copies autocast keeps of
  the trained weights (2T) when they are float32 and precision is bf16 or fp16, and a frozen
  float32 copy of the model as the KL reference (4P) unless LoRA (the base with adapters off);
- DeepSpeed (float32 weights, the learner's one mode): ZeRO-2 keeps the weights whole (4P) and
  shards gradients and optimizer (12T / N); ZeRO-3 shards all of it ((4P + 12T) / N) plus the
  layer being gathered (4 x the largest module's parameters) (``zero_model_states``; at 16-bit
  weights it is DeepSpeed's own estimate);
- activations kept for the backward pass: per decoder layer ``n (10h + 4 kv + 4I)`` values for n
  tokens (micro-batch x sequence length), hidden size h, KV width kv and MLP width I (the
  norms', projections', rotary, attention and SwiGLU saved tensors), in the compute dtype; with
  gradient checkpointing one layer's worth plus each layer's input; plus the lm_head chunk's
  logits (agentrl's chunked loss: at most 2^25 values in float32);
- vLLM on the same GPUs takes ``gpu_memory_utilization`` of each (unless colocated: it sleeps
  while the learner trains) and must hold bf16 weights (2P, once per GPU) and the KV cache of one
  ``max_model_len`` sequence at least.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 2**30
SHAPES = Path(__file__).parent / "models" / "shapes"  # config.json of well-known models, by name
LOGITS_MAX = 2**25  # agentrl.learner.forward: values in one lm_head chunk at most


@dataclass(frozen=True)
class Setup:
    """What a run's memory depends on (the defaults are agentrl train's)."""

    gpus: int = 1
    backend: str = "torch"  # or deepspeed
    zero_stage: int = 2
    lora_rank: int = 0
    lora_targets: tuple[str, ...] = ("all-linear",)
    precision: str = "bf16"
    weights_dtype: str = "float32"
    gradient_checkpointing: bool = False
    micro_batch_size: int = 32
    micro_batch_tokens: int | None = 16384  # learner.micro_batch_tokens: padded tokens per pass at most
    seq_len: int = 512
    reference: bool = False  # the objective has a KL term (kl_coef > 0): a frozen reference model
    vllm: bool = True
    colocate: bool = False
    gpu_memory_utilization: float = 0.5
    max_model_len: int = 2048
    gpu_gib: float = 80.0

    @property
    def tokens(self) -> int:
        """Tokens in one forward / backward pass (rows x sequence length, within the token budget)."""
        rows = self.micro_batch_size * self.seq_len
        return min(rows, self.micro_batch_tokens) if self.micro_batch_tokens else rows


@dataclass
class Plan:
    params: int
    trained: int
    rows: dict[str, float] = field(default_factory=dict)  # bytes per GPU, learner
    vllm_share: float = 0.0  # bytes per GPU set aside for vLLM
    vllm_needs: float = 0.0  # bytes per GPU vLLM must hold (weights, one sequence's KV cache)
    gpu_bytes: float = 0.0

    @property
    def learner_total(self) -> float:
        return sum(self.rows.values())

    @property
    def learner_budget(self) -> float:
        return self.gpu_bytes - self.vllm_share

    @property
    def fits(self) -> bool:
        """The learner within what vLLM leaves it, and vLLM's weights and one sequence within its share
        (colocated: within the GPU, while the learner's memory is free)."""
        vllm_room = self.vllm_share if self.vllm_share else self.gpu_bytes
        return self.learner_total <= self.learner_budget and self.vllm_needs <= vllm_room


def load_config(name: str) -> Any:
    """The transformers config of ``name``: a model directory, a shape that ships with agentrl
    (``agentrl plan --list-shapes``), or a hub name (only its config.json is fetched)."""
    from transformers import AutoConfig

    from agentrl.errors import ModelLoadError, did_you_mean, first_line
    from agentrl.models.names import check_model_name

    shipped = SHAPES / f"{name.lower()}.json"
    path = Path(name).expanduser()
    source = str(path / "config.json") if (path / "config.json").is_file() else None
    if source is None and shipped.is_file():
        source = str(shipped)
    shapes = ", ".join(shape_names())
    if source is None and "/" not in name:  # not a directory, a shape or a hub name (org/model)
        raise ModelLoadError(
            f"--model {name}: not a model directory or a shipped shape{did_you_mean(name, shape_names())}; "
            f"shapes: {shapes}"
        )
    check_model_name(name)
    try:
        if source is not None:
            data = json.loads(Path(source).read_text())
            return AutoConfig.for_model(data.pop("model_type"), **data)
        return AutoConfig.from_pretrained(name)
    except Exception as exc:
        raise ModelLoadError(f"no model config for {name!r} ({first_line(exc)}); shapes that ship: {shapes}") from None


def shape_names() -> list[str]:
    return sorted(p.stem for p in SHAPES.glob("*.json"))


def counts(config: Any, setup: Setup) -> tuple[int, int, int]:
    """(parameters, trained parameters, the largest module's own parameters), on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    if not setup.lora_rank:
        return params, params, largest
    head = model.get_output_embeddings()
    everything = setup.lora_targets == ("all-linear",)
    trained = 0
    for name, module in model.named_modules():
        targeted = everything or name.rsplit(".", 1)[-1] in setup.lora_targets
        if isinstance(module, torch.nn.Linear) and module is not head and targeted:
            trained += setup.lora_rank * (module.in_features + module.out_features)
    return params, trained, largest


def memory_plan(config: Any, setup: Setup) -> Plan:
    params, trained, largest = counts(config, setup)
    n = setup.gpus
    plan = Plan(params, trained, gpu_bytes=setup.gpu_gib * GIB)
    half = setup.precision in ("bf16", "fp16")
    if setup.backend == "deepspeed":  # float32 weights: the DeepSpeed learner's one mode
        plan.rows |= zero_model_states(params, trained, largest, n, setup.zero_stage, 4)
    else:
        w = 2 if setup.weights_dtype == "bfloat16" else 4
        plan.rows["weights"] = w * params
        plan.rows["gradients"] = w * trained
        plan.rows["optimizer (AdamW)"] = 2 * w * trained
        if half and w == 4:  # autocast keeps its 16-bit copy of a weight that trains (a frozen one: per op)
            plan.rows["autocast copies"] = 2 * trained
    if setup.reference and not setup.lora_rank:
        plan.rows["KL reference"] = 4 * params / (n if setup.backend == "deepspeed" and setup.zero_stage == 3 else 1)
    plan.rows["activations"] = activations(config, setup)
    if setup.vllm:
        kv = _kv_width(config)
        plan.vllm_needs = 2 * params + 2 * 2 * config.num_hidden_layers * kv * setup.max_model_len
        plan.vllm_share = 0.0 if setup.colocate else setup.gpu_memory_utilization * plan.gpu_bytes
    return plan


def _kv_width(config: Any) -> int:
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return int(getattr(config, "num_key_value_heads", None) or heads) * head_dim


def layer_activations(config: Any, setup: Setup) -> float:
    """Bytes one decoder layer's forward keeps for the backward, per micro-batch: per token
    ``10h + 4 kv + 4I`` values (module docstring); under bf16 / fp16 autocast the norms' ``4h``
    stay float32 (transformers' RMSNorm upcasts) and the rest is 16-bit."""
    h, kv, inter = config.hidden_size, _kv_width(config), config.intermediate_size
    tokens = setup.tokens
    if setup.precision in ("bf16", "fp16"):
        return float(tokens * (4 * h * 4 + (6 * h + 4 * kv + 4 * inter) * 2))
    return float(tokens * (10 * h + 4 * kv + 4 * inter) * 4)


def activations(config: Any, setup: Setup) -> float:
    """Bytes of activations at the backward's peak for one micro-batch: every layer's (or, with
    gradient checkpointing, each layer's float32 input and one layer recomputed), the final
    hidden states and one lm_head chunk's float32 logits."""
    tokens = setup.tokens
    h, layers = config.hidden_size, config.num_hidden_layers
    layer = layer_activations(config, setup)
    kept = layer + tokens * h * 4 * layers if setup.gradient_checkpointing else layer * layers
    logits = min(tokens * config.vocab_size, max(LOGITS_MAX // 4, tokens * h)) * 4
    return float(kept + logits + tokens * h * 4)


def zero_model_states(params: int, trained: int, largest: int, gpus: int, stage: int, weight_bytes: int) -> dict:
    """ZeRO's model states per GPU, in bytes, by part: weights of ``weight_bytes`` (whole at stage
    2; sharded at 3, plus the largest module gathered), float32 gradients sharded (with 16-bit
    weights, stage 2 also keeps their 16-bit gradients' shard), AdamW's float32 moments sharded,
    and with 16-bit weights a sharded float32 master copy. At 16-bit weights this is DeepSpeed's
    own estimate (2P + 18P / N at stage 2, 4 x largest + 18P / N at stage 3; tests/test_plan.py
    holds it to DeepSpeed's functions)."""
    mixed = weight_bytes < 4
    half_grads = weight_bytes if mixed and stage == 2 else 0
    rows = {
        "weights": weight_bytes * params / (gpus if stage == 3 else 1),
        "gradients": (4 + half_grads) * trained / gpus,
        "optimizer (AdamW)": (8 + (4 if mixed else 0)) * trained / gpus,  # + the float32 master copy
    }
    if stage == 3:
        rows["gathered layer"] = 4 * largest
    return rows
