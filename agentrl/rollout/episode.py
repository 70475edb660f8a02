"""One episode's state while it runs: the held tokens, the environment, the outcome.

Owns the per-token record (mask, behaviour logprobs, turn index, policy version) and the
rules that end an episode:

- the environment terminates or truncates it (its turn budget);
- a turn hits the per-turn token limit and the environment does not end it: truncated,
  ``stop_reason = "turn_length"``;
- the next turn would not fit in ``max_total_tokens``: truncated, ``"token_budget"``;
- the environment raises: the episode alone ends with ``error`` set, ``"env_error"``.

If the chat template is not prefix-preserving (``TemplateBreak``), the current sample is
closed and the episode continues as a new sample whose prompt is the conversation rendered
afresh; each sample is token-exact on its own.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from agentrl.engines.base import Completion
from agentrl.envs.base import Env
from agentrl.rollout.chat import ChatRenderer, TemplateBreak
from agentrl.types import Message, Task, Trajectory

CALL_ERRORS = frozenset({"malformed_call", "invalid_json", "unknown_tool", "bad_args", "too_many_calls"})


@dataclass
class _Sample:
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn_index: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)

    def extend(
        self,
        tokens: list[int],
        *,
        logprobs: list[float] | None = None,
        turn: int = -1,
        version: int = -1,
    ) -> None:
        sampled = logprobs is not None
        self.token_ids += tokens
        self.loss_mask += [int(sampled)] * len(tokens)
        self.logprobs += logprobs if logprobs is not None else [0.0] * len(tokens)
        self.turn_index += [turn if sampled else -1] * len(tokens)
        self.versions += [version if sampled else -1] * len(tokens)


@dataclass
class EpisodeIds:
    episode_id: str
    group_id: str
    env_id: str
    seed: int


class Episode:
    """Drives one environment instance through one task."""

    def __init__(
        self,
        env: Env,
        task: Task,
        ids: EpisodeIds,
        renderer: ChatRenderer,
        eos_token_ids: frozenset[int],
        max_total_tokens: int,
    ):
        self.env, self.task, self.ids, self.renderer = env, task, ids, renderer
        self.eos_token_ids, self.max_total_tokens = eos_token_ids, max_total_tokens
        self.samples: list[_Sample] = []
        self.messages: list[Message] = []
        self.held_text = ""
        self.turns = 0
        self.reward = 0.0
        self.components: dict[str, float] = {}
        self.stats = {
            "tool_calls": 0,
            "tool_turns": 0,
            "tool_errors": 0,
            "tool_service_failures": 0,
            "parse_errors": 0,
            "call_attempts": 0,
        }
        self.errors_by_kind: dict[str, int] = {}  # failed call attempts by parse error or tool status
        self.service_failures: dict[str, dict[str, int]] = {}  # {service: {kind: calls}}
        self.tool_seconds = 0.0
        self.tool_log: list[dict[str, Any]] = []  # per turn that tried a call: calls, status, seconds
        self.turns_cut = 0  # turns that hit their token limit (max_new_tokens or the episode's budget)
        self.done = False
        self.terminated = self.truncated = False
        self.stop_reason = ""
        self.answer: str | None = None
        self.error: str | None = None
        self.last_info: dict[str, Any] = {}

    async def start(self) -> None:
        try:
            self.messages, _ = await self.env.areset(seed=self.ids.seed, options={"task": self.task})
        except Exception as exc:
            return self._fail(exc)
        self._new_sample()

    @property
    def prompt_ids(self) -> list[int]:
        return self.samples[-1].token_ids

    @property
    def room(self) -> int:
        """Tokens the next turn may sample within the episode's token budget."""
        return self.max_total_tokens - len(self.prompt_ids)

    async def apply(self, completion: Completion, temperature_used: float) -> None:
        """Record a sampled turn, step the environment and append the observation."""
        sample, turn = self.samples[-1], self.turns
        sample.extend(
            completion.token_ids,
            logprobs=completion.logprobs,
            turn=turn,
            version=completion.policy_version,
        )
        self.turns += 1
        self.turns_cut += completion.finish_reason == "length"
        text = self.renderer.decode(completion.token_ids)
        content = self.renderer.content_of(completion.token_ids, self.eos_token_ids)
        self.messages.append({"role": "assistant", "content": content})
        try:
            observations, reward, terminated, truncated, info = await self.env.astep(content)
        except Exception as exc:
            return self._fail(exc)
        self._record_step(reward, info)
        if terminated or truncated:
            self.messages += observations
            return self._end(terminated=terminated, reason="terminated" if terminated else "env_truncated")
        if completion.finish_reason == "length":
            self.messages += observations
            return self._end(terminated=False, reason="token_budget" if self.room <= 0 else "turn_length")
        self._append_observations(text, observations)

    def _append_observations(self, sampled_text: str, observations: list[Message]) -> None:
        if self.env.rollout_spec.observation_format == "inline":
            glue = self.renderer.encode("".join(m["content"] for m in observations))
            full = None
        else:
            try:
                glue, full = self.renderer.glue(self.held_text, self.messages, sampled_text, observations)
            except TemplateBreak:
                glue, full = [], None
        self.messages += observations
        if full is None and self.env.rollout_spec.observation_format == "chat":
            self._new_sample()  # the template broke the prefix: continue as a fresh sample
        else:
            self.samples[-1].extend(glue)
            self.held_text = full or ""
        if self.room <= 0:
            self._end(terminated=False, reason="token_budget")

    def _new_sample(self) -> None:
        self.held_text = self.renderer.render(self.messages, generation_prompt=True)
        sample = _Sample()
        sample.extend(self.renderer.encode(self.held_text))
        self.samples.append(sample)
        if self.room <= 0:
            self._end(terminated=False, reason="token_budget")

    def _record_step(self, reward: float, info: dict[str, Any]) -> None:
        self.reward += float(reward)
        for key, value in (info.get("reward_components") or {}).items():
            self.components[key] = self.components.get(key, 0.0) + float(value)
        calls = len(info.get("tool_calls") or [])
        parse_error = info.get("parse_error")
        self.stats["tool_calls"] += calls
        self.stats["tool_turns"] += calls > 0
        self.stats["parse_errors"] += parse_error is not None
        attempted = calls > 0 or parse_error in CALL_ERRORS
        self.stats["call_attempts"] += attempted
        status = info.get("tool_status")
        failed_status = status if status in ("error", "timeout", "unavailable") else None
        kind = parse_error if parse_error in CALL_ERRORS else failed_status  # None: no failure
        self.stats["tool_errors"] += attempted and kind is not None
        for failure in info.get("service_failures") or ():
            self.stats["tool_service_failures"] += 1
            kinds = self.service_failures.setdefault(str(failure["service"]), {})
            kinds[str(failure["kind"])] = kinds.get(str(failure["kind"]), 0) + 1
        if attempted and kind is not None:
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        self.tool_seconds += float(info.get("tool_latency_s") or 0.0)
        if attempted:
            self.tool_log.append(
                {
                    "turn": self.turns - 1,
                    "calls": list(info.get("tool_calls") or []),
                    "status": kind or "ok",
                    "seconds": float(info.get("tool_latency_s") or 0.0),
                }
            )
        self.answer = info.get("answer", self.answer) or self.answer
        self.last_info = info

    def _end(self, *, terminated: bool, reason: str) -> None:
        self.done, self.terminated, self.truncated, self.stop_reason = (
            True,
            terminated,
            not terminated,
            reason,
        )

    def _fail(self, exc: Exception) -> None:
        self.error = "".join(traceback.format_exception_only(exc)).strip()
        if not self.samples:
            self.samples.append(_Sample())
        self._end(terminated=False, reason="env_error")

    def trajectories(self, temperature: float) -> list[Trajectory]:
        correct = self.components.get("correct")
        shared: dict[str, Any] = {
            "reward": self.reward,
            "reward_components": dict(self.components),
            "group_id": self.ids.group_id,
            "task_id": self.task.id,
            "env_id": self.ids.env_id,
            "episode_id": self.ids.episode_id,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "num_turns": self.turns,
            "messages": self.messages,
            "temperature": temperature,
            "num_samples": len(self.samples),
            "stop_reason": self.stop_reason,
            "tool_calls": self.stats["tool_calls"],
            "tool_turns": self.stats["tool_turns"],
            "tool_errors": self.stats["tool_errors"],
            "tool_service_failures": self.stats["tool_service_failures"],
            "parse_errors": self.stats["parse_errors"],
            "answer": self.answer,
            "correct": None if correct is None else correct > 0,
            "error": self.error,
            "info": {
                "call_attempts": self.stats["call_attempts"],
                "gold": self.task.answer,
                "tool_errors_by_kind": dict(self.errors_by_kind),
                "service_failures": {service: dict(kinds) for service, kinds in self.service_failures.items()},
                "tool_seconds": self.tool_seconds,
                "tool_log": self.tool_log,
                "turns_cut": self.turns_cut,
            },
        }
        return [
            Trajectory(
                token_ids=s.token_ids,
                loss_mask=s.loss_mask,
                behavior_logprobs=s.logprobs,
                turn_index=s.turn_index,
                policy_version=s.versions,
                sample_index=i,
                **shared,
            )
            for i, s in enumerate(self.samples)
        ]
