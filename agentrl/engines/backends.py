"""The built-in engine backends, transformers and vLLM: their options and their registry entries.

Owns each built-in backend's ``engine.<name>`` section (a typed dataclass) and what it tells
the trainer (``agentrl.engines.registry.EngineBackend``). Imports neither engine: a backend's
``build`` imports its engine module when an engine is made, so vllm is imported only by a run
that samples with it. A new backend is a module with its engine, its options and one
``register`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentrl.config import check_range, option
from agentrl.engines.registry import EngineBackend, register

if TYPE_CHECKING:
    from agentrl.engines.base import Engine
    from agentrl.engines.config import EngineConfig


@dataclass
class TransformersOptions:
    """``engine.transformers``: the transformers engine (``agentrl.engines.hf``)."""

    max_batch_size: int = option(256, "rows per forward pass")

    def __post_init__(self) -> None:
        check_range("engine.transformers", "max_batch_size", self.max_batch_size, 1)


@dataclass
class VLLMOptions:
    """``engine.vllm``: the vLLM engine (``agentrl.engines.vllm``)."""

    max_model_len: int = option(2048, "longest prompt plus completion, in tokens")
    max_num_seqs: int = option(256, "sequences decoded together")
    kv_cache_gib: int = option(1, "on CPU: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE, where unset)")
    gpu_memory_utilization: float = option(0.5, "on GPU: share of GPU memory the engine may take")
    enforce_eager: bool = option(True, "no CUDA graphs / compilation (faster start, slower decode)")
    colocate: bool = option(
        False, "on GPU: put the engine to sleep (GPU memory freed) while the learner trains on the same GPU"
    )

    def __post_init__(self) -> None:
        check_range("engine.vllm", "max_model_len", self.max_model_len, 16)
        check_range("engine.vllm", "max_num_seqs", self.max_num_seqs, 1)
        check_range("engine.vllm", "kv_cache_gib", self.kv_cache_gib, 1)
        check_range("engine.vllm", "gpu_memory_utilization", self.gpu_memory_utilization, 0.01, 1.0)


def build_transformers(config: EngineConfig, path: str, tokenizer: Any, *, device: str, seed: int) -> Engine:
    from agentrl.engines.hf import TransformersEngine
    from agentrl.engines.loading import load_model

    options: TransformersOptions = config.section("transformers")
    model = load_model(path, device, config.dtype)
    return TransformersEngine(model, tokenizer, max_batch_size=options.max_batch_size, seed=seed)


def build_vllm(config: EngineConfig, path: str, tokenizer: Any, *, device: str, seed: int) -> Engine:
    from agentrl.engines.vllm import VLLMEngine  # imports vllm itself only when the engine starts

    return VLLMEngine(path, config.section("vllm"), dtype=config.dtype, device=device, seed=seed)


register(
    EngineBackend(
        "transformers",
        "a batched decode loop with a KV cache, on CPU or CUDA (the fast one on CPU)",
        TransformersOptions,
        build_transformers,
        auto_fallback=True,
    )
)
register(
    EngineBackend(
        "vllm",
        "vLLM in the same process (GPUs; its CPU build runs the same code paths)",
        VLLMOptions,
        build_vllm,
        # vLLM in process cannot be driven from a second thread, and takes the first visible GPU
        thread_safe=False,
        wants_process=True,
        pins_device=True,
        auto_on_gpu_with="vllm",
    )
)
