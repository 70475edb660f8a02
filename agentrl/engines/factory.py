"""Building the engine a run samples with, from its ``engine`` config section.

Owns the choice between backends; ``agentrl.engines.vllm`` is imported only when the vLLM
backend is asked for, so vllm stays an optional dependency.
"""

from __future__ import annotations

from typing import Any

from agentrl.engines.base import Engine
from agentrl.engines.config import EngineConfig
from agentrl.engines.hf import TransformersEngine
from agentrl.engines.loading import load_model


def make_engine(config: EngineConfig, path: str, tokenizer: Any, *, device: str = "auto", seed: int = 0) -> Engine:
    """An engine holding the weights in the model directory ``path``, with its own copy of them."""
    if config.backend == "vllm":
        from agentrl.engines.vllm import VLLMEngine

        return VLLMEngine(path, config, device=device, seed=seed)
    model = load_model(path, device, config.dtype)
    return TransformersEngine(model, tokenizer, max_batch_size=config.max_batch_size, seed=seed)


def release(engine: Engine) -> None:
    """Let an engine free its accelerator memory while the learner trains (engines that can)."""
    sleep = getattr(engine, "sleep", None)
    if sleep is not None:
        sleep()
