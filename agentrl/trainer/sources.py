"""The two parts a training loop is composed from: a batch source and a weight sink.

Owns the two protocols and the synchronous loop's parts. ``Trainer`` (``agentrl.trainer.sync``)
runs one loop, top to bottom, for both kinds of run: the source gives a step's trajectories and
bounds the batch built from them, the learner trains, the sink takes the new weights. What
differs between ``agentrl train`` and ``agentrl train --async`` is only which parts it holds:

- synchronous: ``Rollouts`` rolls out batch ``s`` on the run's engine when step ``s`` asks,
  and ``EngineSink`` loads the learner's weights into that engine;
- asynchronous: ``StreamSource`` takes finished groups from a rollout stream and bounds their
  staleness, and ``MailboxSink`` publishes the weights to the stream's mailbox
  (``agentrl.trainer.async_loop``).

Must not touch the learner, checkpoints or the run directory: those are the loop's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agentrl.batch import TokenBatch
from agentrl.engines.base import Engine
from agentrl.engines.factory import release
from agentrl.types import Trajectory


class BatchSource(Protocol):
    """Where a step's trajectories come from."""

    def start(self, step: int) -> None:
        """Called once before the loop's first step (``step``: the first step to run)."""

    def stop(self) -> None:
        """Called once when the loop ends, however it ends."""

    def collect(self, step: int) -> tuple[list[Trajectory], dict[str, float]]:
        """The trajectories step ``step`` (0-based) trains on, and metrics of getting them."""
        ...

    def bound(
        self, trajectories: list[Trajectory], batch: TokenBatch, step: int
    ) -> tuple[list[Trajectory], TokenBatch, dict[str, float]]:
        """The batch the learner trains on, from the one built of ``collect``'s trajectories,
        and the trajectories its rows' ``source_row`` point into (more, when it took others)."""
        ...

    def learner_starts(self) -> None:
        """Called just before the learner's update (an engine may free memory meanwhile)."""


class WeightSink(Protocol):
    """Where the learner's weights go after each update, and where evaluations run."""

    def publish(self, state: Mapping[str, Any], version: int) -> dict[str, float]:
        """Take the weights ``state`` as policy version ``version``; timing metrics."""
        ...

    def eval_engine(self, state: Mapping[str, Any], version: int) -> tuple[Engine, Any]:
        """An engine holding ``state`` (version ``version``) to evaluate on, and its tokenizer."""
        ...


@dataclass
class Rollouts:
    """The synchronous source: step ``s`` rolls out batch ``s`` on ``engine`` when it asks."""

    roll: Callable[[int], list[Trajectory]]  # rollout batch s on the engine's current weights
    engine: Engine

    def start(self, step: int) -> None:
        pass

    def stop(self) -> None:
        pass

    def collect(self, step: int) -> tuple[list[Trajectory], dict[str, float]]:
        start = time.perf_counter()
        trajectories = self.roll(step)
        return trajectories, {"time/rollout_s": time.perf_counter() - start}

    def bound(
        self, trajectories: list[Trajectory], batch: TokenBatch, step: int
    ) -> tuple[list[Trajectory], TokenBatch, dict[str, float]]:
        return trajectories, batch, {}  # on-policy: taken as it is

    def learner_starts(self) -> None:
        """Let the engine free accelerator memory while the learner trains
        (``engine.vllm.colocate``); it wakes on its next call."""
        release(self.engine)


@dataclass
class EngineSink:
    """The synchronous sink: the weights go into the run's engine, which evaluations use too."""

    engine: Engine
    tokenizer: Any

    def publish(self, state: Mapping[str, Any], version: int) -> dict[str, float]:
        start = time.perf_counter()
        self.engine.update_weights(state, version=version)
        return {"time/sync_s": time.perf_counter() - start}

    def eval_engine(self, state: Mapping[str, Any], version: int) -> tuple[Engine, Any]:
        return self.engine, self.tokenizer  # holds the latest weights already
