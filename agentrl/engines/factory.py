"""Building the engine a run samples with, from its ``engine`` config section.

Owns nothing of the choice between backends: ``make_engine`` builds through the backend
registry (``agentrl.engines.registry``), whose entries import their engine modules only when
one is made, so vllm stays an optional dependency.
"""

from __future__ import annotations

from typing import Any

from agentrl.engines.base import Engine, Sleeper
from agentrl.engines.config import EngineConfig


def make_engine(config: EngineConfig, path: str, tokenizer: Any, *, device: str = "auto", seed: int = 0) -> Engine:
    """An engine holding the weights in the model directory ``path``, with its own copy of them."""
    return config.backend_info.build(config, path, tokenizer, device=device, seed=seed)


def release(engine: Engine) -> None:
    """Let an engine free its accelerator memory while the learner trains (engines that can
    sleep; they wake on their next call)."""
    if isinstance(engine, Sleeper):
        engine.sleep()
