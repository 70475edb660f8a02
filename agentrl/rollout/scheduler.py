"""The episode scheduler every rollout runs on: admit -> start -> generate -> apply -> collect.

Owns the mechanics of running many episodes at once against one engine, and the one rule
that names and seeds them. A synchronous rollout (``agentrl.rollout.runner``) is one batch
added and drained; the asynchronous stream (``agentrl.rollout.stream``) adds batches as its
staleness bound allows and loads weights between rounds. Neither runs episodes itself, so a
fix to how episodes run is made once and both sample alike. Knows nothing of weights,
threads or learners.

Batches are numbered (a training step ``s`` rolls out batch ``s``). Member ``g`` of the group
of the task at position ``p`` of batch ``s`` is named and seeded from ``(seed, s, p, g)``
alone, never from timing or from what else is in flight:

- ``group_id`` ``"<task.id>@<s>.<p>"``: a task drawn twice in one batch is two groups;
- ``episode_id`` ``"<group_id>/<g>"``;
- the environment's reset seed ``seed + (s * 1_000_003 + p) * group_size + g``;
- the engine's sampling generator is seeded with ``seed + s * 1_000_003`` at the first
  generation round that holds an episode of batch ``s``.

So a synchronous step ``s`` and the stream's batch ``s`` at ``max_staleness = 0`` (which
then runs batch ``s`` alone, on the same weights) sample the same tasks with the same seeds,
ids and tokens.

Each round, every live episode's prompt goes to the engine in one ``generate`` call (the
engine batches them), then every environment steps concurrently (``astep``); finished
episodes leave and waiting ones take their places, up to ``max_concurrent``. One episode's
failure (an environment that raises) ends that episode with ``error`` set; the rest go on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agentrl.config import check_range, option
from agentrl.engines.base import Engine, SamplingParams
from agentrl.envs.base import Env
from agentrl.rollout.chat import ChatRenderer
from agentrl.rollout.episode import Episode, EpisodeIds
from agentrl.types import Task, Trajectory

BATCH_STRIDE = 1_000_003
"""Seeds of batch ``s`` start ``s * BATCH_STRIDE`` after the run's seed (a prime, so that no
two ``(batch, position)`` pairs of a realistic run share a seed)."""


@dataclass
class RolloutConfig:
    group_size: int = option(1, "episodes per task (a group)")
    max_concurrent: int = option(64, "episodes in flight at once")
    max_total_tokens: int = option(1024, "token budget of one episode: prompt, turns and observations")
    seed: int = option(0, "seeds environment resets and the engine's sampling")

    def __post_init__(self) -> None:
        check_range("rollout", "group_size", self.group_size, 1)
        check_range("rollout", "max_concurrent", self.max_concurrent, 1)
        check_range("rollout", "max_total_tokens", self.max_total_tokens, 2)


@dataclass(frozen=True)
class Slot:
    """One episode's place: member ``member`` of the group of task ``task`` at position
    ``position`` of batch ``batch``."""

    batch: int
    position: int
    member: int
    task: Task

    def ids(self, config: RolloutConfig, env_id: str) -> EpisodeIds:
        """The episode's names and reset seed: the scheduler's one seeding rule."""
        group_id = f"{self.task.id}@{self.batch}.{self.position}"
        seed = config.seed + (self.batch * BATCH_STRIDE + self.position) * config.group_size + self.member
        return EpisodeIds(episode_id=f"{group_id}/{self.member}", group_id=group_id, env_id=env_id, seed=seed)


def sampling_seed(seed: int, batch: int) -> int:
    """The seed the engine's generator takes at the first round of batch ``batch``."""
    return seed + batch * BATCH_STRIDE


@dataclass
class Group:
    """One finished group: ``group_size`` episodes of the task at ``position`` of ``batch``,
    its trajectories in member order."""

    batch: int
    position: int
    trajectories: list[Trajectory]


@dataclass
class _Live:
    slot: Slot
    episode: Episode


def with_env_stops(params: SamplingParams, env: Env) -> SamplingParams:
    """``params`` with the environment's stop strings added after its own, each once."""
    return dataclasses.replace(params, stop=tuple(dict.fromkeys((*params.stop, *env.rollout_spec.stop_strings))))


@dataclass
class EpisodeScheduler:
    """Runs the episodes of the batches added to it; ``round`` advances every live one by a turn."""

    env_factory: Callable[[], Env]
    engine: Engine
    tokenizer: object
    params: SamplingParams
    config: RolloutConfig
    env_id: str = ""
    on_episode: Callable[[list[Trajectory]], None] | None = None
    generate_s: float = 0.0  # seconds spent in the engine's generate, summed
    episodes: int = 0  # episodes finished
    _waiting: deque[Slot] = field(default_factory=deque)
    _live: list[_Live] = field(default_factory=list)
    _pending: dict[tuple[int, int], dict[int, list[Trajectory]]] = field(default_factory=dict)
    _seeded: int = -1  # the newest batch the engine's generator was seeded for

    def __post_init__(self) -> None:
        probe = self.env_factory()
        self.renderer = ChatRenderer(self.tokenizer, probe.rollout_spec.tools)
        self.params = with_env_stops(self.params, probe)
        probe.close()

    # ---- what the driver sees -------------------------------------------------------------
    def add(self, batch: int, tasks: Sequence[Task]) -> None:
        """Queue ``group_size`` episodes for each task of batch ``batch``, in task order."""
        for p, task in enumerate(tasks):
            self._pending[(batch, p)] = {}
            self._waiting.extend(Slot(batch, p, g, task) for g in range(self.config.group_size))

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def live(self) -> int:
        return len(self._live)

    @property
    def drained(self) -> bool:
        """Nothing waiting and nothing in flight."""
        return not self._waiting and not self._live

    def restart_live(self) -> int:
        """Drop every episode in flight and queue it again from its reset, ahead of the rest;
        return how many. (Its slot keeps its seed, so it samples afresh under the same name.)"""
        restarted = [item.slot for item in self._live]
        for item in self._live:
            item.episode.env.close()
        self._waiting.extendleft(reversed(restarted))
        self._live = []
        return len(restarted)

    async def round(self, *, admit: bool = True) -> list[Group]:
        """Start waiting episodes (unless ``admit`` is False), run one generation round over
        every live episode and step their environments; return the groups that finished."""
        finished: list[Group] = []
        if admit:
            await self._start(finished)
        if not self._live:
            return finished
        episodes = [item.episode for item in self._live]
        begin = time.perf_counter()
        # Called on the loop's own thread: every live episode waits for this batch anyway, and
        # torch in a fresh worker thread pays for a new OpenMP thread team (measured ~10-25% slower).
        completions = self.engine.generate(
            [e.prompt_ids for e in episodes], self._call_params(), [e.room for e in episodes]
        )
        self.generate_s += time.perf_counter() - begin
        temperature = self.params.temperature
        await asyncio.gather(*(e.apply(c, temperature) for e, c in zip(episodes, completions, strict=True)))
        self._collect(finished)
        return finished

    async def drain(self) -> list[Group]:
        """Run rounds until nothing is left; the groups in the order they finished."""
        finished: list[Group] = []
        while not self.drained:
            finished += await self.round()
        return finished

    # ---- the mechanics -----------------------------------------------------------------------
    async def _start(self, finished: list[Group]) -> None:
        started: list[_Live] = []
        while self._waiting and len(self._live) + len(started) < self.config.max_concurrent:
            slot = self._waiting.popleft()
            episode = Episode(
                self.env_factory(),
                slot.task,
                slot.ids(self.config, self.env_id),
                self.renderer,
                self.engine.eos_token_ids,
                self.config.max_total_tokens,
            )
            started.append(_Live(slot, episode))
        await asyncio.gather(*(item.episode.start() for item in started))
        self._live += started
        self._collect(finished)  # an episode can end at its reset (an error, a prompt over budget)

    def _call_params(self) -> SamplingParams:
        newest = max(item.slot.batch for item in self._live)
        if newest <= self._seeded:
            return self.params
        self._seeded = newest
        return dataclasses.replace(self.params, seed=sampling_seed(self.config.seed, newest))

    def _collect(self, finished: list[Group]) -> None:
        """Move finished episodes into their groups; append the groups that are complete."""
        still = []
        for item in self._live:
            slot, episode = item.slot, item.episode
            if not episode.done:
                still.append(item)
                continue
            episode.env.close()
            self.episodes += 1
            trajectories = episode.trajectories(self.params.temperature)
            if self.on_episode is not None:
                self.on_episode(trajectories)
            members = self._pending[(slot.batch, slot.position)]
            members[slot.member] = trajectories
            if len(members) == self.config.group_size:
                del self._pending[(slot.batch, slot.position)]
                ordered = [t for g in sorted(members) for t in members[g]]
                finished.append(Group(slot.batch, slot.position, ordered))
        self._live = still
