"""A continuous stream of episodes, the producer side of asynchronous training.

Owns what is continuous about it: admitting feed batches (``feed(s)`` gives the tasks of
batch ``s``) under the staleness bound, loading new weights between rounds, and handing each
group over (``take``) the moment its last episode ends, so a slow episode holds back only its
own group. The episodes themselves run on the same ``EpisodeScheduler`` as a synchronous
rollout (``agentrl.rollout.scheduler``), under the same naming and seeding rule. Runs on its
own thread with its own event loop; knows nothing of learners: weights arrive through a
mailbox (``agentrl.engines.mailbox``).

One of N streams (``batch_stride`` N, ``first_batch`` its index) runs every N-th batch.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentrl.engines.base import Engine, SamplingParams
from agentrl.engines.mailbox import Mailbox
from agentrl.envs.base import Env
from agentrl.errors import AgentRLError
from agentrl.rollout.scheduler import EpisodeScheduler, Group, RolloutConfig
from agentrl.types import Task

IN_FLIGHT = ("continue", "drain", "abort")


class StreamError(AgentRLError):
    """The rollout stream stopped: its engine or an environment failed, or a sync hung."""


@dataclass
class StreamStats:
    """Cumulative counters, read by the trainer as differences between steps."""

    generate_s: float = 0.0
    sync_s: float = 0.0
    idle_s: float = 0.0
    syncs: int = 0
    aborted_episodes: int = 0
    episodes: int = 0


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
        batch_stride: int = 1,
        env_id: str = "",
    ):
        if in_flight not in IN_FLIGHT:
            raise ValueError(f"in_flight={in_flight!r}; allowed: {', '.join(IN_FLIGHT)}")
        self.env_factory, self.feed, self.engine, self.tokenizer = env_factory, feed, engine, tokenizer
        self.params, self.config, self.mailbox = params, config, mailbox
        self.max_staleness, self.in_flight, self.env_id = max_staleness, in_flight, env_id
        self.next_batch, self.batch_stride = first_batch, batch_stride
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
        scheduler = EpisodeScheduler(
            self.env_factory, self.engine, self.tokenizer, self.params, self.config, env_id=self.env_id
        )
        draining = False
        while not self._stop.is_set():
            newer = self.mailbox.take_newer(self.engine.policy_version)
            if newer is not None:
                draining = self.in_flight == "drain" and scheduler.live > 0
                if not draining:
                    self._load(*newer)
                    if self.in_flight == "abort":
                        self.stats.aborted_episodes += scheduler.restart_live()
            if not draining:
                self._admit(scheduler)
            if scheduler.live == 0 and scheduler.waiting == 0:
                self._idle()
                continue
            for group in await scheduler.round(admit=not draining):
                self._out.put(group)
            self.stats.generate_s, self.stats.episodes = scheduler.generate_s, scheduler.episodes

    def _admit(self, scheduler: EpisodeScheduler) -> None:
        """Queue the groups of the next feed batches the staleness bound allows."""
        while (
            self.next_batch - self.engine.policy_version <= self.max_staleness
            and scheduler.waiting < self.config.max_concurrent
        ):
            scheduler.add(self.next_batch, self.feed(self.next_batch))
            self.next_batch += self.batch_stride

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
