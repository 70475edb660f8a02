"""``check_env``: run any environment through the contract of ``agentrl.envs.base``.

Owns the conformance checks, nothing else. It drives an environment with generic probe
actions (empty text, prose, a broken tool call) plus the environment's own
``check_actions`` and fails with an ``EnvCheckError`` naming the broken rule. Every action
played must lie in the environment's ``action_space`` and every observation in its
``observation_space``. Gymnasium's own checker (``gymnasium.utils.env_checker.check_env``)
is complementary: it checks seeding and data reuse, this one the text contract.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

from gymnasium.spaces import Space

from agentrl.envs.base import INFO_KEYS, PARSE_ERROR_KINDS, Env, EnvSpec, EpisodeOverError
from agentrl.errors import AgentRLError, count

PROBES = ("", "I am not sure.", "<tool_call>{not json</tool_call>", "<nosuchtool>1</nosuchtool>")


class EnvCheckError(AgentRLError):
    """An environment broke its contract."""


def check_env(factory: Callable[[], Env], *, seed: int = 0) -> list[str]:
    """Check the environment built by ``factory``; return a log of what was checked.

    ``factory`` builds a fresh instance each call (an ``Env`` subclass with no required
    arguments works). Raises ``EnvCheckError`` at the first violation.
    """
    log: list[str] = []
    env = factory()
    _expect(isinstance(env, Env), f"{env!r} is not an agentrl.envs.Env")
    _expect(isinstance(env.rollout_spec, EnvSpec), "env.rollout_spec must be an EnvSpec")
    _expect(env.rollout_spec.max_turns >= 1, "rollout_spec.max_turns must be >= 1")
    _expect(env.rollout_spec.observation_format in ("chat", "inline"), "bad rollout_spec.observation_format")
    for kind in ("action_space", "observation_space"):
        _expect(isinstance(getattr(env, kind), Space), f"env.{kind} must be a gymnasium Space")
    messages, info = env.reset(seed=seed)
    _check_messages(env, messages, "reset")
    _expect(isinstance(info, dict) and info.get("turn") == 0, "reset info must have turn == 0")
    again, _ = factory().reset(seed=seed)
    _expect(again == messages, "reset with the same seed must give the same messages")
    log.append(f"reset: {count(len(messages), 'message')}, deterministic for seed {seed}")

    actions = list(env.check_actions) + list(PROBES)
    outside = [a for a in actions if a not in env.action_space]
    _expect(not outside, f"actions {outside!r} are not in the action_space")
    for start in range(len(actions)):
        played = _play(env, seed, [*actions[start:], *actions[:start]])
        log.append(f"episode {start}: {played}")
    _check_async(factory, seed, actions)
    log.append("async twins agree with sync")
    env.close()
    env.close()
    return log


def _play(env: Env, seed: int, actions: list[str]) -> str:
    env.reset(seed=seed)
    limit = env.rollout_spec.max_turns
    for turn in range(1, limit + 1):
        new, reward, terminated, truncated, info = env.step(actions[(turn - 1) % len(actions)])
        _check_messages(env, new, "step", allow_empty=True)
        _check_step(reward, terminated, truncated, info, turn)
        if terminated or truncated:
            _check_over(env)
            shown = f"{float(reward) + 0.0:g}"  # + 0.0: a penalty of -0.0 reads 0
            return f"{'terminated' if terminated else 'truncated'} after {count(turn, 'turn')}, reward {shown}"
    raise EnvCheckError(f"episode did not end within the turn budget of {limit} turns")


def _check_step(reward: Any, terminated: Any, truncated: Any, info: Any, turn: int) -> None:
    _expect(isinstance(reward, int | float) and math.isfinite(reward), f"reward {reward!r} not finite")
    _expect(type(terminated) is bool and type(truncated) is bool, "terminated/truncated must be bool")
    _expect(not (terminated and truncated), "terminated and truncated are exclusive")
    _expect(isinstance(info, dict), "info must be a dict")
    missing = [k for k in INFO_KEYS if k not in info]
    _expect(not missing, f"info lacks keys {missing}")
    _expect(info["turn"] == turn, f"info['turn'] is {info['turn']}, expected {turn}")
    _expect(
        info["parse_error"] in (None, *PARSE_ERROR_KINDS),
        f"bad parse_error {info['parse_error']!r}",
    )
    _expect(info["tool_status"] in (None, "ok", "error", "timeout", "unavailable"), "bad tool_status")
    failures = info.get("service_failures", [])
    _expect(
        isinstance(failures, list)
        and all(isinstance(f, dict) and {"tool", "service", "kind"} <= f.keys() for f in failures),
        "service_failures must be a list of {tool, service, kind}",
    )
    components = info["reward_components"]
    _expect(isinstance(components, dict), "reward_components must be a dict")
    try:
        json.dumps(info)
    except (TypeError, ValueError) as exc:
        raise EnvCheckError(f"info must be JSON-serialisable: {exc}") from None


def _check_over(env: Env) -> None:
    try:
        env.step("after the end")
    except EpisodeOverError:
        return
    raise EnvCheckError("step() after the episode ended must raise EpisodeOverError")


def _check_messages(env: Env, messages: Any, where: str, allow_empty: bool = False) -> None:
    _expect(isinstance(messages, list), f"{where} must return a list of messages")
    _expect(allow_empty or len(messages) > 0, f"{where} returned no messages")
    for m in messages:
        _expect(isinstance(m, dict), f"{where}: message {m!r} is not a dict")
        _expect(isinstance(m.get("role"), str), f"{where}: message without a role")
        _expect(isinstance(m.get("content"), str), f"{where}: message content must be text")
    _expect(messages in env.observation_space, f"{where}: {str(messages)[:200]} is not in {env.observation_space}")


def _check_async(factory: Callable[[], Env], seed: int, actions: list[str]) -> None:
    sync_env, async_env = factory(), factory()

    async def run() -> list[Any]:
        out: list[Any] = [await async_env.areset(seed=seed)]
        for action in actions[: async_env.rollout_spec.max_turns]:
            result = await async_env.astep(action)
            out.append(result[:4])
            if result[2] or result[3]:
                break
        return out

    got = asyncio.run(run())
    want: list[Any] = [sync_env.reset(seed=seed)]
    for action in actions[: sync_env.rollout_spec.max_turns]:
        result = sync_env.step(action)
        want.append(result[:4])
        if result[2] or result[3]:
            break
    _expect(_strip_latency(got) == _strip_latency(want), "async twins disagree with sync methods")


def _strip_latency(items: list[Any]) -> str:
    return json.dumps(items, sort_keys=True, default=str)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise EnvCheckError(message)
