"""Run many episodes at once against one engine and collect their trajectories.

Owns the synchronous entry points: ``rollout`` / ``arollout`` add one batch of tasks to an
``EpisodeScheduler`` (``agentrl.rollout.scheduler``, which owns how episodes run, are named
and are seeded) and drain it. ``group_size`` episodes run per task, sharing a ``group_id``.

The run is reproducible: every reset seed, every id and the engine's sampling seed follow
from ``(config.seed, batch)`` by the scheduler's rule, so a training step ``s`` that rolls out
``batch=s`` samples what the asynchronous stream samples for its batch ``s``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

from agentrl.engines.base import Engine, SamplingParams
from agentrl.envs.base import Env
from agentrl.rollout.scheduler import EpisodeScheduler, RolloutConfig
from agentrl.types import Task, Trajectory

__all__ = ["RolloutConfig", "arollout", "rollout"]

P = ParamSpec("P")
T = TypeVar("T")


async def arollout(
    env_factory: Callable[[], Env],
    tasks: Sequence[Task],
    engine: Engine,
    tokenizer: object,
    params: SamplingParams,
    config: RolloutConfig | None = None,
    *,
    batch: int = 0,
    env_id: str = "",
    on_episode: Callable[[list[Trajectory]], None] | None = None,
) -> list[Trajectory]:
    """Run ``group_size`` episodes for each task, as batch ``batch``; return their
    trajectories in task order, each group's in member order.

    ``on_episode`` is called with each finished episode's trajectories (progress bars,
    streaming to disk). ``rollout`` takes the same arguments and runs it to completion.
    """
    scheduler = EpisodeScheduler(
        env_factory, engine, tokenizer, params, config or RolloutConfig(), env_id=env_id, on_episode=on_episode
    )
    scheduler.add(batch, tasks)
    groups = await scheduler.drain()
    return [t for group in sorted(groups, key=lambda g: g.position) for t in group.trajectories]


def _to_completion(coroutine_fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    @functools.wraps(coroutine_fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return asyncio.run(coroutine_fn(*args, **kwargs))

    return run


rollout = _to_completion(arollout)
"""``arollout`` for a caller without an event loop: runs it to completion."""
