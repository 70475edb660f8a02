"""Data shared across boundaries: chat messages, tasks and trajectories.

Owns the trajectory record (DESIGN.md, "The data that flows") and its JSON form. Nothing
here knows about engines, models or environments' internals; it must stay importable
without torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

Message = dict[str, Any]
"""A chat message: ``{"role": ..., "content": ...}`` plus optional keys (``tool_calls``, ...)."""


@dataclass(frozen=True)
class Task:
    """One problem an environment can be reset to.

    ``prompt`` is the user-facing question, ``answer`` the gold answer as text (already
    reduced to its final form, e.g. ``"18"`` for a GSM8K row), ``meta`` anything else the
    environment wants to keep (source row number, difficulty, ...).
    """

    id: str
    prompt: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Trajectory:
    """One sample of an episode, stored token-exact.

    Per-token lists all have the length of ``token_ids``:

    - ``loss_mask``: 1 on tokens the policy sampled, 0 on prompt, observation and
      chat-template tokens.
    - ``behavior_logprobs``: the engine's logprob of each sampled token under the
      distribution it sampled from (see ``agentrl.engines.logprobs``); 0.0 where the mask is 0.
    - ``turn_index``: k on the tokens of the episode's k-th assistant turn (from 0), -1 elsewhere.
    - ``policy_version``: the weights version that sampled each token, -1 where the mask is 0.

    An episode is normally one trajectory. When a chat template is not prefix-preserving, the
    episode continues as a new sample (``sample_index`` 1, 2, ...) whose prompt is the
    conversation rendered afresh; every sample shares the episode's id, reward and outcome.
    """

    token_ids: list[int]
    loss_mask: list[int]
    behavior_logprobs: list[float]
    turn_index: list[int]
    policy_version: list[int]
    reward: float
    reward_components: dict[str, float]
    group_id: str
    task_id: str
    env_id: str
    episode_id: str
    terminated: bool
    truncated: bool
    num_turns: int
    messages: list[Message]
    temperature: float
    sample_index: int = 0
    num_samples: int = 1
    stop_reason: str = ""
    tool_calls: int = 0
    tool_turns: int = 0  # assistant turns that made at least one tool call
    tool_errors: int = 0
    tool_service_failures: int = 0  # calls that failed on their service's side (a retriever down or hung, a sandbox)
    parse_errors: int = 0
    answer: str | None = None
    correct: bool | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trajectory:
        if "tool_unavailable" in data:  # written before service failures were counted as one
            data = {k: v for k, v in data.items() if k != "tool_unavailable"}
            data.setdefault("tool_service_failures", 0)
        return cls(**data)

    @property
    def num_sampled_tokens(self) -> int:
        return sum(self.loss_mask)
