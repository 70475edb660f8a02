"""The environment contract: text in, text out, as a ``gymnasium.Env``.

Owns ``Env``, ``EnvSpec``, the text spaces, the keys every step's ``info`` carries and the
parse-error kinds. An environment knows nothing of tokens, engines or learners: it receives the
assistant's text and answers with new chat messages. A tool failure, timeout or malformed call
becomes an observation plus ``info`` fields; ``step`` never raises because of model output.

``Env`` subclasses ``gymnasium.Env`` and keeps its contract:

- ``reset(*, seed=None, options=None) -> (messages, info)``: the opening conversation.
  ``options={"task": Task}`` resets to that task (the rollout does this so that every
  member of a group sees the same task); otherwise the seed picks one.
- ``step(text) -> (new_messages, reward, terminated, truncated, info)``: ``terminated`` when
  the episode reached a natural end (an answer), ``truncated`` when a budget cut it short
  (the turn budget ``rollout_spec.max_turns``); never both.
- ``areset`` / ``astep``: async twins. The defaults run the sync methods (``astep`` in a
  worker thread); environments that wait on I/O override them and keep the sync methods as
  ``asyncio.run`` wrappers.
- ``action_space`` is ``UnicodeText`` (any reply text), ``observation_space`` is
  ``ChatMessages`` (a list of ``{"role", "content"}`` messages).

Seeding follows Gymnasium without asking subclasses to call ``super().reset``: ``Env`` wraps
every ``reset``/``areset`` a subclass defines so that a given seed reseeds ``self.np_random``
and a missing seed is drawn from it. A subclass's ``reset`` therefore always receives an int
seed, and ``reset()`` after ``reset(seed=s)`` is as reproducible as ``reset(seed=s)``.

``spec`` is Gymnasium's (the registration spec ``gymnasium.make`` sets, else ``None``); what
the rollout needs is ``rollout_spec``. Assigning an ``EnvSpec`` to ``spec`` (agentrl's name
before it subclassed ``gymnasium.Env``) still works, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec as RegistrationSpec
from gymnasium.spaces import Space, Text

from agentrl.types import Message, Task

StepResult = tuple[list[Message], float, bool, bool, dict[str, Any]]
ResetResult = tuple[list[Message], dict[str, Any]]

INFO_KEYS = (
    "turn",  # number of assistant turns taken so far (0 after reset)
    "tool_calls",  # the calls parsed from this turn: [{"name": ..., "arguments": {...}}]
    "parse_error",  # None or one of PARSE_ERROR_KINDS
    "tool_status",  # None (no call), or "ok" / "error" / "timeout" / "unavailable" (the worst of the calls)
    "tool_latency_s",  # seconds spent in tools this turn
    "answer",  # the extracted final answer, or None
    "reward_components",  # the parts of the reward, {name: float}
)

OPTIONAL_INFO_KEYS = (
    "service_failures",  # the calls whose service failed: [{"tool", "service", "kind": the status}]
)
"""Keys an environment may leave out (``new_info`` sets them): read with their neutral value."""

PARSE_ERROR_KINDS = (
    "no_action",  # neither a tool call nor an answer
    "empty_output",  # the turn was empty or whitespace
    "malformed_call",  # an unclosed or structurally broken call
    "invalid_json",  # a JSON call that does not parse
    "unknown_tool",  # a call to a tool the environment does not have
    "bad_args",  # arguments that do not fit the tool's schema
    "too_many_calls",  # more calls in one turn than the environment allows
)

MAX_TEXT_LENGTH = 1 << 20  # characters in one reply or one message: far above any generation budget
MAX_MESSAGES = 1024  # messages in one observation
ROLES = ("system", "user", "assistant", "tool")
SAMPLE_ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n\t.,;:!?'\"()[]{}<>/\\|+-*=_#@$%^&~`éßøπλ中文字🙂"
)
SAMPLE_LENGTH = 32  # sample() draws strings of at most this many characters beyond min_length


def _is_text(x: Any, min_length: int, max_length: int) -> bool:
    if not (isinstance(x, str) and min_length <= len(x) <= max_length):
        return False
    try:  # a lone surrogate is the one str no tokenizer decodes to: it has no UTF-8 encoding
        x.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class UnicodeText(Text):
    """A ``Text`` space holding any Unicode string of ``min_length``..``max_length`` characters.

    Why not ``Text(charset=...)`` with every code point: ``Text`` keeps a set, a list and an
    index of its charset, over a million entries for all of Unicode. Here ``contains`` admits
    any string with a UTF-8 encoding (whatever a tokenizer decodes to), while the charset Text
    keeps is ``SAMPLE_ALPHABET``, the characters ``sample`` draws from. ``sample`` draws short
    strings (up to ``SAMPLE_LENGTH`` characters) unless a length is given in ``mask``. Not
    flattenable: a character outside the sampling alphabet has no index.
    """

    def __init__(self, max_length: int = MAX_TEXT_LENGTH, *, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length, min_length=min_length, charset=SAMPLE_ALPHABET, seed=seed)

    def contains(self, x: Any) -> bool:
        return _is_text(x, self.min_length, self.max_length)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is None and probability is None:
            return _random_text(self.np_random, self.min_length, self.max_length)
        if probability is None:  # gymnasium 1.0's Text.sample takes no probability argument
            return super().sample(mask)
        return super().sample(mask, probability)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnicodeText) and (self.min_length, self.max_length) == (
            other.min_length,
            other.max_length,
        )


class ChatMessages(Space[list[Message]]):
    """Observations: a list of up to ``max_messages`` messages ``{"role": r, "content": text}``.

    ``r`` is one of ``roles``; ``text`` is any Unicode string of at most ``max_length``
    characters, possibly empty. The list may be empty (a final step answers with none).
    Why not ``Sequence(Dict(role=Text, content=Text))``: ``Sequence`` admits only tuples, while
    the contract's observations are lists (callers extend them), and ``Text`` cannot hold all of
    Unicode (see ``UnicodeText``). An environment sending other roles or keys declares its own.
    """

    def __init__(
        self,
        *,
        roles: Sequence[str] = ROLES,
        max_messages: int = MAX_MESSAGES,
        max_length: int = MAX_TEXT_LENGTH,
        seed: int | None = None,
    ):
        self.roles, self.max_messages, self.max_length = tuple(roles), max_messages, max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, list) and len(x) <= self.max_messages and all(self._is_message(m) for m in x)

    def _is_message(self, m: Any) -> bool:
        return (
            isinstance(m, dict)
            and m.keys() == {"role", "content"}
            and m["role"] in self.roles
            and _is_text(m["content"], 0, self.max_length)
        )

    def sample(self, mask: Any = None, probability: Any = None) -> list[Message]:
        if mask is not None or probability is not None:
            raise ValueError("ChatMessages.sample takes no mask or probability")
        rng = self.np_random
        count = int(rng.integers(0, min(self.max_messages, 4) + 1))
        return [
            {"role": self.roles[rng.integers(len(self.roles))], "content": _random_text(rng, 0, self.max_length)}
            for _ in range(count)
        ]

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"ChatMessages(roles={self.roles}, max_messages={self.max_messages}, max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ChatMessages) and (self.roles, self.max_messages, self.max_length) == (
            other.roles,
            other.max_messages,
            other.max_length,
        )


def _random_text(rng: np.random.Generator, min_length: int, max_length: int) -> str:
    """A string of ``min_length``..``min_length + SAMPLE_LENGTH`` (capped) characters of the alphabet."""
    length = int(rng.integers(min_length, min(max_length, min_length + SAMPLE_LENGTH) + 1))
    return "".join(SAMPLE_ALPHABET[i] for i in rng.integers(len(SAMPLE_ALPHABET), size=length))


@dataclass(frozen=True)
class EnvSpec:
    """What the rollout needs to know to drive an environment (``Env.rollout_spec``).

    ``stop_strings`` end a generation early (e.g. after a closing tool tag); ``tools`` are
    OpenAI-style function specs handed to the chat template; ``observation_format`` is
    ``"chat"`` (observations are chat messages rendered by the template) or ``"inline"``
    (observation text is appended to the assistant's own turn, which then continues);
    ``max_turns`` is the turn budget. Not Gymnasium's ``EnvSpec`` (``Env.spec``), which records
    how ``gymnasium.make`` built an environment.
    """

    max_turns: int = 1
    stop_strings: tuple[str, ...] = ()
    tools: tuple[dict[str, Any], ...] = ()
    observation_format: Literal["chat", "inline"] = "chat"


def new_info(turn: int, **overrides: Any) -> dict[str, Any]:
    """A step ``info`` with every key of ``INFO_KEYS`` and ``OPTIONAL_INFO_KEYS`` at its neutral value."""
    info: dict[str, Any] = {
        "turn": turn,
        "tool_calls": [],
        "parse_error": None,
        "tool_status": None,
        "tool_latency_s": 0.0,
        "service_failures": [],
        "answer": None,
        "reward_components": {},
    }
    info.update(overrides)
    return info


class EpisodeOverError(RuntimeError):
    """``step`` was called after the episode ended (a caller bug, not model output)."""


class Env(gymnasium.Env[list[Message], str], ABC):
    """Base class of an agentrl environment; one instance runs one episode at a time.

    The spaces are class attributes shared by the instances of a class; an environment whose
    observations use other roles or keys assigns its own ``observation_space``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    rollout_spec: EnvSpec = EnvSpec()
    check_actions: ClassVar[tuple[str, ...]] = ()
    """Actions ``check_env`` plays (cycled) in addition to its generic probes."""
    train_defaults: ClassVar[dict[str, Any]] = {}
    """Training options this environment needs to learn (dotted keys, as ``--set`` takes them:
    ``{"sampling.max_new_tokens": 128}`` for turns that hold a program). ``agentrl train`` puts
    them over its own defaults, under a ``--config`` file and the command line."""
    options_cls: ClassVar[type | None] = None
    """The dataclass of this environment's options (``--env-arg KEY=VALUE``), with each field's
    help in its metadata, for ``agentrl envs show``; None for an environment without one."""
    action_space: Space[str] = UnicodeText()
    observation_space: Space[list[Message]] = ChatMessages()
    _registration_spec: RegistrationSpec | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        old = cls.__dict__.get("spec")
        if isinstance(old, EnvSpec):
            _warn_spec(cls.__name__, stacklevel=3)
            cls.rollout_spec = old
            delattr(cls, "spec")
        # resolved through the MRO: a mixin's reset (not itself an Env) is wrapped in its first Env
        if cls.reset not in _SEEDED:
            setattr(cls, "reset", _seeded(cls.reset, _seeded_reset))  # noqa: B010 - mypy forbids assigning a method
        if cls.areset is not Env.areset and cls.areset not in _SEEDED:
            setattr(cls, "areset", _seeded(cls.areset, _seeded_areset))  # noqa: B010

    @property
    def spec(self) -> RegistrationSpec | None:
        """Gymnasium's registration spec, set by ``gymnasium.make``; ``None`` otherwise."""
        return self._registration_spec

    @spec.setter
    def spec(self, value: RegistrationSpec | EnvSpec | None) -> None:
        if isinstance(value, EnvSpec):
            _warn_spec(type(self).__name__, stacklevel=2)
            self.rollout_spec = value
        else:
            self._registration_spec = value

    @abstractmethod
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        """Start an episode; a subclass's ``seed`` is always an int (see the module docstring)."""

    @abstractmethod
    def step(self, action: str) -> StepResult: ...

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        return self.reset(seed=seed, options=options)

    async def astep(self, action: str) -> StepResult:
        return await asyncio.to_thread(self.step, action)

    def tasks(self, split: str = "test") -> Sequence[Task]:
        """The tasks of ``split`` that rollouts and ``agentrl eval`` iterate over."""
        raise NotImplementedError(f"environment {self.name or type(self).__name__} has no task list")

    def close(self) -> None:
        """Release resources (processes, connections). Safe to call twice."""


def _episode_seed(env: Env, seed: int | None) -> int:
    """Gymnasium's seeding rule: a given seed reseeds ``env.np_random``; a missing one is drawn from it."""
    if seed is not None:
        gymnasium.Env.reset(env, seed=seed)
        return seed
    return int(env.np_random.integers(2**31))


_SEEDED: set[Callable[..., Any]] = set()  # the reset/areset wrappers made by Env.__init_subclass__


def _seeded(method: Callable[..., Any], wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[..., Any]:
    wrapper = wrap(method)
    _SEEDED.add(wrapper)
    return wrapper


def _seeded_reset(reset: Callable[..., ResetResult]) -> Callable[..., ResetResult]:
    @functools.wraps(reset)
    def wrapper(self: Env, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        return reset(self, seed=_episode_seed(self, seed), options=options)

    return wrapper


def _seeded_areset(
    areset: Callable[..., Coroutine[Any, Any, ResetResult]],
) -> Callable[..., Coroutine[Any, Any, ResetResult]]:
    @functools.wraps(areset)
    async def wrapper(self: Env, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        return await areset(self, seed=_episode_seed(self, seed), options=options)

    return wrapper


def _warn_spec(owner: str, stacklevel: int) -> None:
    warnings.warn(
        f"{owner}: an agentrl EnvSpec belongs in `rollout_spec`, not `spec` (Gymnasium's registration spec)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


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

    def go_on(
        self,
        turn: int,
        messages: list[Message],
        *,
        truncated_reward: float = 0.0,
        truncated_components: dict[str, float] | None = None,
        **info: Any,
    ) -> StepResult:
        """A step that answers with ``messages`` and does not end the episode by itself: it is
        truncated when the turn budget is spent, with ``truncated_reward`` and
        ``truncated_components``; otherwise it goes on with reward 0."""
        truncated = self.done = self.exhausted
        reward = truncated_reward if truncated else 0.0
        components = (truncated_components or {}) if truncated else {}
        return messages, reward, False, truncated, new_info(turn, reward_components=components, **info)
