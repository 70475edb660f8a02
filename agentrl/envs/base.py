"""The environment contract: text in, text out.

Owns ``Env``, ``EnvSpec``, the keys every step's ``info`` carries and the parse-error kinds.
An environment knows nothing of tokens, engines or learners: it receives the assistant's
text and answers with new chat messages. A tool failure, timeout or malformed call becomes
an observation plus ``info`` fields; ``step`` never raises because of model output.

The contract mirrors Gymnasium's:

- ``reset(*, seed=None, options=None) -> (messages, info)``: the opening conversation.
  ``options={"task": Task}`` resets to that task (the rollout does this so that every
  member of a group sees the same task); otherwise the seed picks one.
- ``step(text) -> (new_messages, reward, terminated, truncated, info)``: ``terminated`` when
  the episode reached a natural end (an answer), ``truncated`` when a budget cut it short
  (the turn budget ``spec.max_turns``); never both.
- ``areset`` / ``astep``: async twins. The defaults run the sync methods (``astep`` in a
  worker thread); environments that wait on I/O override them and keep the sync methods as
  ``asyncio.run`` wrappers.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from agentrl.types import Message, Task

StepResult = tuple[list[Message], float, bool, bool, dict[str, Any]]

INFO_KEYS = (
    "turn",  # number of assistant turns taken so far (0 after reset)
    "tool_calls",  # the calls parsed from this turn: [{"name": ..., "arguments": {...}}]
    "parse_error",  # None or one of PARSE_ERROR_KINDS
    "tool_status",  # None (no call), or "ok" / "error" / "timeout" (the worst of the calls)
    "tool_latency_s",  # seconds spent in tools this turn
    "answer",  # the extracted final answer, or None
    "reward_components",  # the parts of the reward, {name: float}
)

PARSE_ERROR_KINDS = (
    "no_action",  # neither a tool call nor an answer
    "empty_output",  # the turn was empty or whitespace
    "malformed_call",  # an unclosed or structurally broken call
    "invalid_json",  # a JSON call that does not parse
    "unknown_tool",  # a call to a tool the environment does not have
    "bad_args",  # arguments that do not fit the tool's schema
    "too_many_calls",  # more calls in one turn than the environment allows
)


@dataclass(frozen=True)
class EnvSpec:
    """What the rollout needs to know to drive an environment.

    ``stop_strings`` end a generation early (e.g. after a closing tool tag); ``tools`` are
    OpenAI-style function specs handed to the chat template; ``observation_format`` is
    ``"chat"`` (observations are chat messages rendered by the template) or ``"inline"``
    (observation text is appended to the assistant's own turn, which then continues);
    ``max_turns`` is the turn budget.
    """

    max_turns: int = 1
    stop_strings: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    observation_format: Literal["chat", "inline"] = "chat"


def new_info(turn: int, **overrides: Any) -> dict[str, Any]:
    """A step ``info`` with every key of ``INFO_KEYS`` at its neutral value."""
    info: dict[str, Any] = {
        "turn": turn,
        "tool_calls": [],
        "parse_error": None,
        "tool_status": None,
        "tool_latency_s": 0.0,
        "answer": None,
        "reward_components": {},
    }
    info.update(overrides)
    return info


class EpisodeOverError(RuntimeError):
    """``step`` was called after the episode ended (a caller bug, not model output)."""


class Env(ABC):
    """Base class of an agentrl environment; one instance runs one episode at a time."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    spec: EnvSpec = EnvSpec()
    check_actions: ClassVar[tuple[str, ...]] = ()
    """Actions ``check_env`` plays (cycled) in addition to its generic probes."""

    @abstractmethod
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[list[Message], dict[str, Any]]: ...

    @abstractmethod
    def step(self, action: str) -> StepResult: ...

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[list[Message], dict[str, Any]]:
        return self.reset(seed=seed, options=options)

    async def astep(self, action: str) -> StepResult:
        return await asyncio.to_thread(self.step, action)

    def tasks(self, split: str = "test") -> Sequence[Task]:
        """The tasks of ``split`` that rollouts and ``agentrl eval`` iterate over."""
        raise NotImplementedError(f"environment {self.name or type(self).__name__} has no task list")

    def close(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Release resources (processes, connections). Safe to call twice."""


@dataclass
class TurnCounter:
    """Turn bookkeeping shared by turn-based environments: the budget and the end state."""

    max_turns: int
    turn: int = 0
    done: bool = False
    history: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.turn, self.done, self.history = 0, False, []

    def advance(self, action: str) -> int:
        if self.done:
            raise EpisodeOverError("step() called after the episode ended; call reset() first")
        self.turn += 1
        self.history.append(action)
        return self.turn

    @property
    def exhausted(self) -> bool:
        return self.turn >= self.max_turns
