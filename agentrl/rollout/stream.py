"""A continuous stream of episodes, the producer side of asynchronous training.

Owns scheduling across rollout batches: episodes run without pause against one engine, the
groups of feed batch ``s`` (``feed(s)`` gives its tasks) are admitted as slots free up, and
each group is handed over (``take``) the moment its last episode ends, so a slow episode
holds back only its own group. Runs on its own thread with its own event loop; knows nothing
of learners: weights arrive through a mailbox (``agentrl.engines.mailbox``).

Bounded staleness: a group of batch ``s`` starts only once the engine holds weights of version
``>= s - max_staleness``, so the stream runs at most ``max_staleness`` batches ahead of the
learner (whose update ``u`` publishes version ``u + 1``). New weights are loaded between two
generation rounds, as ``in_flight`` says:

- ``continue``: load at once; episodes in flight sample their remaining turns with the new
  weights, and each turn's tokens record the version that sampled them;
- ``drain``: admit nothing new, let the episodes in flight finish on the old weights, then load
  (every trajectory has one version; the engine idles through the drain's tail);
- ``abort``: load at once and restart every episode in flight from its reset (counted).

Failures: an exception on the stream's thread (the engine, an environment's reset) stops the
stream; ``take`` then raises ``StreamError`` naming it. ``stats`` counts time spent
generating, loading weights and idle, for the trainer's metrics.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agentrl.engines.base import Engine, SamplingParams
from agentrl.engines.mailbox import Mailbox
from agentrl.envs.base import Env
from agentrl.errors import AgentRLError
from agentrl.rollout.chat import ChatRenderer
from agentrl.rollout.episode import Episode, EpisodeIds
from agentrl.rollout.runner import RolloutConfig, with_env_stops
from agentrl.types import Task, Trajectory

IN_FLIGHT = ("continue", "drain", "abort")


class StreamError(AgentRLError):
    """The rollout stream stopped: its engine or an environment failed, or a sync hung."""


@dataclass
class Group:
    """One finished group: ``group_size`` episodes of one task from feed batch ``batch``."""

    batch: int
    trajectories: list[Trajectory]


@dataclass
class StreamStats:
    """Cumulative counters, read by the trainer as differences between steps."""

    generate_s: float = 0.0
    sync_s: float = 0.0
    idle_s: float = 0.0
    syncs: int = 0
    aborted_episodes: int = 0
    episodes: int = 0


@dataclass
class _Slot:
    """One episode's place: group member ``member`` of task ``task_pos`` in feed batch ``batch``."""

    batch: int
    task_pos: int
    member: int
    task: Task


@dataclass
class _Live:
    slot: _Slot
    episode: Episode


@dataclass
class _Pending:
    """A group's finished episodes so far, by member."""

    trajectories: dict[int, list[Trajectory]] = field(default_factory=dict)


class RolloutStream:
    def __init__(
        self,
        env_factory: Callable[[], Env],
        feed: Callable[[int], Sequence[Task]],
        engine: Engine,
        tokenizer: object,
        params: SamplingParams,
        config: RolloutConfig,
        mailbox: Mailbox,
        *,
        max_staleness: int,
        in_flight: str = "continue",
        first_batch: int = 0,
        env_id: str = "",
    ):
        if in_flight not in IN_FLIGHT:
            raise ValueError(f"in_flight={in_flight!r}; allowed: {', '.join(IN_FLIGHT)}")
        self.env_factory, self.feed, self.engine, self.tokenizer = env_factory, feed, engine, tokenizer
        self.params, self.config, self.mailbox = params, config, mailbox
        self.max_staleness, self.in_flight, self.env_id = max_staleness, in_flight, env_id
        self.next_batch = first_batch
        self.stats = StreamStats()
        self.error: BaseException | None = None
        self.error_text = ""
        self.syncing_since: float | None = None
        self._out: queue.Queue[Group | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the consumer's side ----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="agentrl-rollout", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self.mailbox.wake()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def engine_version(self) -> int:
        """The version of the weights the engine samples with now."""
        return self.engine.policy_version

    def take(self, n: int, *, sync_timeout_s: float, poll_s: float = 0.05) -> list[Group]:
        """The next ``n`` finished groups, in the order they finished. Raises ``StreamError``
        if the stream failed, or a weight sync has run longer than ``sync_timeout_s``."""
        groups: list[Group] = []
        while len(groups) < n:
            group = self.poll(sync_timeout_s=sync_timeout_s, timeout=poll_s)
            if group is not None:
                groups.append(group)
        return groups

    def poll(self, *, sync_timeout_s: float, timeout: float) -> Group | None:
        """The next finished group, or None if none finished within ``timeout`` seconds.
        Raises ``StreamError`` as ``take`` does."""
        try:
            item = self._out.get(timeout=timeout)
        except queue.Empty:
            self._check(sync_timeout_s)
            return None
        if item is None:
            self._check(sync_timeout_s)
            raise StreamError("the rollout stream stopped")
        return item

    def _check(self, sync_timeout_s: float) -> None:
        if self.error is not None:
            raise StreamError(f"the rollout worker failed: {self.error_text}")
        since = self.syncing_since
        if since is not None and time.perf_counter() - since > sync_timeout_s:
            raise StreamError(f"a weight sync to the engine took longer than sync_timeout_s={sync_timeout_s:g} s")
        if self._thread is not None and not self._thread.is_alive() and self._out.empty():
            raise StreamError("the rollout worker exited")

    # ---- the stream's own thread -------------------------------------------------------------
    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported to the consumer by take()
            self.error = exc
            self.error_text = "".join(traceback.format_exception_only(exc)).strip()
        finally:
            self._out.put(None)

    async def _run(self) -> None:
        probe = self.env_factory()
        renderer = ChatRenderer(self.tokenizer, probe.spec.tools)
        params = with_env_stops(self.params, probe)
        probe.close()
        waiting: deque[_Slot] = deque()
        live: list[_Live] = []
        groups: dict[tuple[int, int], _Pending] = {}
        first_call, draining = True, False
        while not self._stop.is_set():
            newer = self.mailbox.take_newer(self.engine.policy_version)
            if newer is not None:
                draining = self.in_flight == "drain" and bool(live)
                if not draining:
                    self._load(*newer)
                    if self.in_flight == "abort" and live:
                        self.stats.aborted_episodes += len(live)
                        for item in live:
                            item.episode.env.close()
                        waiting.extendleft(reversed([item.slot for item in live]))
                        live = []
            if not draining:
                self._admit(waiting, groups)
                started = self._start_slots(waiting, len(live), renderer)
                await asyncio.gather(*(item.episode.start() for item in started))
                live += started
            live = self._collect(live, groups, params.temperature)
            if not live:
                self._idle()
                continue
            call = replace(params, seed=self.config.seed) if first_call else params
            first_call = False
            episodes = [item.episode for item in live]
            begin = time.perf_counter()
            completions = self.engine.generate([e.prompt_ids for e in episodes], call, [e.room for e in episodes])
            self.stats.generate_s += time.perf_counter() - begin
            await asyncio.gather(*(e.apply(c, params.temperature) for e, c in zip(episodes, completions, strict=True)))
            live = self._collect(live, groups, params.temperature)

    def _admit(self, waiting: deque[_Slot], groups: dict[tuple[int, int], _Pending]) -> None:
        """Queue the groups of the next feed batches the staleness bound allows."""
        while self.next_batch - self.engine.policy_version <= self.max_staleness and len(waiting) < (
            self.config.max_concurrent
        ):
            s = self.next_batch
            for t, task in enumerate(self.feed(s)):
                groups[(s, t)] = _Pending()
                waiting.extend(_Slot(s, t, g, task) for g in range(self.config.group_size))
            self.next_batch += 1

    def _start_slots(self, waiting: deque[_Slot], running: int, renderer: ChatRenderer) -> list[_Live]:
        started: list[_Live] = []
        while waiting and running + len(started) < self.config.max_concurrent:
            slot = waiting.popleft()
            c = self.config
            ids = EpisodeIds(
                episode_id=f"{slot.task.id}/{slot.member}",
                group_id=f"{slot.task.id}@{slot.batch}.{slot.task_pos}",
                env_id=self.env_id,
                seed=c.seed + (slot.batch * 1_000_003 + slot.task_pos) * c.group_size + slot.member,
            )
            episode = Episode(
                self.env_factory(), slot.task, ids, renderer, self.engine.eos_token_ids, c.max_total_tokens
            )
            started.append(_Live(slot, episode))
        return started

    def _collect(self, live: list[_Live], groups: dict[tuple[int, int], _Pending], temperature: float) -> list[_Live]:
        """Move finished episodes into their groups; hand over groups that are complete."""
        still = []
        for item in live:
            slot, episode = item.slot, item.episode
            if not episode.done:
                still.append(item)
                continue
            episode.env.close()
            self.stats.episodes += 1
            pending = groups[(slot.batch, slot.task_pos)]
            pending.trajectories[slot.member] = episode.trajectories(temperature)
            if len(pending.trajectories) == self.config.group_size:
                del groups[(slot.batch, slot.task_pos)]
                trajectories = [t for g in sorted(pending.trajectories) for t in pending.trajectories[g]]
                self._out.put(Group(slot.batch, trajectories))
        return still

    def _load(self, state: dict[str, Any], version: int) -> None:
        self.syncing_since = begin = time.perf_counter()
        self.engine.update_weights(state, version)
        self.syncing_since = None
        self.stats.sync_s += time.perf_counter() - begin
        self.stats.syncs += 1

    def _idle(self) -> None:
        begin = time.perf_counter()
        self.mailbox.wait_newer(self.engine.policy_version, timeout=0.05)
        self.stats.idle_s += time.perf_counter() - begin
