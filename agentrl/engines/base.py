"""The engine contract: token ids in; token ids, logprobs and a finish reason out.

Owns ``SamplingParams``, ``Completion`` and the ``Engine`` protocol. An engine knows
nothing of environments, chat templates or trajectories; the rollout does the bookkeeping.
Backends: ``agentrl.engines.hf`` (transformers, CPU and CUDA) and ``agentrl.engines.vllm``
(the only module that may import vllm), registered by name in ``agentrl.engines.registry``
with what they can do; ``agentrl.engines.factory`` builds the one a run asks for. An engine
that can free its accelerator memory between rollouts is also a ``Sleeper``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from agentrl.config import check_range, option
from agentrl.errors import ConfigError

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``temperature = 0`` is greedy decoding."""

    temperature: float = option(1.0, "sampling temperature; 0 = greedy")
    top_p: float = option(1.0, "nucleus sampling: keep the smallest set of tokens with this much probability")
    top_k: int = option(0, "keep only the k most likely tokens; 0 = off")
    max_new_tokens: int = option(256, "most tokens sampled in one turn")
    stop: tuple[str, ...] = option((), "strings that end a turn (kept in the output)")
    seed: int | None = option(None, "seed for this call; None continues the engine's own generator")
    ignore_eos: bool = option(False, "keep sampling past end-of-sequence tokens (benchmarks)")

    def __post_init__(self) -> None:
        check_range("sampling", "temperature", self.temperature, 0.0, 100.0)
        check_range("sampling", "top_p", self.top_p, 0.0, 1.0)
        if self.top_p == 0.0:
            raise ConfigError("sampling: top_p must be > 0")
        check_range("sampling", "top_k", self.top_k, 0)
        check_range("sampling", "max_new_tokens", self.max_new_tokens, 1)


@dataclass
class Completion:
    """One sampled continuation. ``logprobs[i]`` is the logprob of ``token_ids[i]`` under the
    distribution it was sampled from (see ``agentrl.engines.logprobs``); ``finish_reason`` is
    ``"stop"`` (an end-of-sequence token or a stop string, named in ``stop_reason``) or
    ``"length"`` (the token limit)."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    stop_reason: str | None = None
    policy_version: int = 0


def token_limits(params: SamplingParams, max_new_tokens: Sequence[int] | None, n: int) -> list[int]:
    """Each of ``n`` prompts' token limit: its ``max_new_tokens`` entry, never above
    ``params.max_new_tokens`` (which applies alone when there are no entries)."""
    return [min(params.max_new_tokens, m) for m in (max_new_tokens or [params.max_new_tokens] * n)]


@runtime_checkable
class Engine(Protocol):
    """What the rollout needs from an inference engine."""

    policy_version: int
    eos_token_ids: frozenset[int]

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        max_new_tokens: Sequence[int] | None = None,
    ) -> list[Completion]:
        """Sample one completion per prompt. ``max_new_tokens`` optionally lowers the limit
        per prompt (token budgets); it never raises it above ``params.max_new_tokens``."""
        ...

    def update_weights(self, state: Mapping[str, Any], version: int) -> None:
        """Load new weights (a state dict) and record their version."""
        ...


@runtime_checkable
class Sleeper(Protocol):
    """An engine that can free its accelerator memory while the learner trains."""

    def sleep(self) -> None:
        """Free accelerator memory (or do nothing where there is none to free)."""
        ...

    def wake(self) -> None:
        """Restore what ``sleep`` freed; engines call it themselves before their next use."""
        ...
