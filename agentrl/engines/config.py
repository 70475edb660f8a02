"""``EngineConfig``: which inference engine a run samples with, and its settings.

Owns the ``engine`` section of a run config (``--engine``, ``--set engine.key=value``) and its
checks. Knows nothing of how an engine is built (``agentrl.engines.factory``) or run.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentrl.config import check_choice, check_range, option

BACKENDS = ("transformers", "vllm")


@dataclass
class EngineConfig:
    backend: str = option("transformers", "transformers (everywhere; the fast one on CPU) or vllm (GPUs; CPU build)")
    max_batch_size: int = option(256, "transformers: rows per forward pass")
    dtype: str = option("auto", "weights dtype: auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16 or float16")
    max_model_len: int = option(2048, "vllm: longest prompt plus completion, in tokens")
    max_num_seqs: int = option(256, "vllm: sequences decoded together")
    kv_cache_gib: int = option(1, "vllm on CPU: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE, where unset)")
    gpu_memory_utilization: float = option(0.5, "vllm on GPU: share of GPU memory the engine may take")
    enforce_eager: bool = option(True, "vllm: no CUDA graphs / compilation (faster start, slower decode)")
    colocate: bool = option(
        False, "vllm on GPU: put the engine to sleep (GPU memory freed) while the learner trains on the same GPU"
    )

    def __post_init__(self) -> None:
        check_choice("engine", "backend", self.backend, BACKENDS)
        check_range("engine", "max_batch_size", self.max_batch_size, 1)
        check_choice("engine", "dtype", self.dtype, ("auto", "float32", "bfloat16", "float16"))
        check_range("engine", "max_model_len", self.max_model_len, 16)
        check_range("engine", "max_num_seqs", self.max_num_seqs, 1)
        check_range("engine", "kv_cache_gib", self.kv_cache_gib, 1)
        check_range("engine", "gpu_memory_utilization", self.gpu_memory_utilization, 0.01, 1.0)
