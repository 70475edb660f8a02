"""Inference engines: token ids in; sampled token ids, their logprobs and a finish reason out.

Owns the engine contract (``agentrl.engines.base``), the backends (transformers in
``hf``, vLLM in ``vllm``), their registry and per-backend options, and weight loading
from the learner. Must not know environments, chat templates or trajectories.
Importing this package imports neither transformers nor vllm.
"""

from agentrl.engines.base import Completion, Engine, FinishReason, SamplingParams, Sleeper

__all__ = ["Completion", "Engine", "FinishReason", "SamplingParams", "Sleeper"]
