"""The asynchronous loop's parts: rollouts keep running while the learner trains.

Owns the source and sink ``agentrl train --async`` composes its loop from (the loop itself is
``Trainer``'s, the same as a synchronous run's; see ``agentrl.trainer.sources``). A rollout
stream runs episodes continuously on its engine; ``StreamSource`` hands the learner the next
``tasks_per_step`` finished groups and bounds their staleness (``agentrl.trainer.staleness``);
``MailboxSink`` publishes each update's weights to a mailbox as version ``step + 1``, which the
stream loads between two generation rounds (``asynchronous.in_flight`` says what happens to
episodes in flight). Update ``u`` trains on samples of versions ``>= u - max_staleness`` (the
stream's admission bound); a sample older than that is dropped or down-weighted and counted.

``asynchronous.worker`` says where the stream runs: ``thread``, a ``RolloutStream`` on a thread
of this process driving the run's engine, or ``process``, a spawned worker
(``agentrl.rollout.worker``) with its own engine, reading weights from shared memory
(``auto``, the default: a process for a backend that wants one or cannot be driven from a
second thread, such as vLLM; see ``agentrl.engines.registry``). ``asynchronous.workers=N`` runs N
rollout workers as torch.distributed ranks instead, on this machine or others
(``agentrl.rollout.remote``): the weights are broadcast to them, and each runs every N-th batch.
Evaluation runs on an engine the stream does not use (with a thread, a third copy of the
weights; with a process, the run's engine), so it does not pause the stream. Checkpoints hold
what the synchronous loop's hold; groups in flight at a checkpoint are not saved: a resumed
run samples them again.

Failures (the stream failing, a weight sync running longer than
``asynchronous.sync_timeout_s``) raise ``StreamError``; the loop turns it into one line naming
the checkpoint ``agentrl train --resume`` continues from. Never branches on an algorithm's name.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from agentrl.batch import TokenBatch
from agentrl.engines.base import Engine
from agentrl.engines.factory import make_engine
from agentrl.engines.loading import load_tokenizer
from agentrl.engines.mailbox import SharedWeightMailbox, WeightMailbox
from agentrl.envs import load as load_env
from agentrl.envs.base import Env
from agentrl.rollout.remote import BroadcastMailbox, RankStream, serve, weights_group
from agentrl.rollout.scheduler import RolloutConfig
from agentrl.rollout.stream import RolloutStream, StreamStats
from agentrl.rollout.worker import ProcessStream, WorkerSpec
from agentrl.trainer.config import TrainConfig
from agentrl.trainer.setup import Models, resolve_model
from agentrl.trainer.staleness import bound_staleness
from agentrl.trainer.sync import TaskDraw, check_sampled, env_tasks
from agentrl.types import Task, Trajectory

Stream = RolloutStream | ProcessStream | RankStream  # what a StreamSource takes groups from


def stream_parts(
    config: TrainConfig, models: Models, env_factory: Callable[[], Env], draw: Callable[[int], list[Task]]
) -> tuple[StreamSource, MailboxSink]:
    """The asynchronous run's source and sink, sharing one mailbox."""
    c, a, policy = config, config.asynchronous, models.learner.policy_state()
    if a.workers:  # rollout worker ranks: weights broadcast to them, the run's engine evaluates
        broadcast = BroadcastMailbox(policy, weights_group(c.learner.dist_timeout_min))

        def on_ranks(first: int) -> RankStream:
            broadcast.publish(models.learner.policy_state(), first)  # a resumed run's weights; at 0, the model's own
            return RankStream(a.workers, broadcast)

        sink = MailboxSink(broadcast, models.engine, models.tokenizer)
        return StreamSource(on_ranks, config, models.pad_token_id), sink
    if c.rollout_worker == "process":
        spec = worker_spec(config, draw)
        shared = SharedWeightMailbox(policy)

        def in_process(first: int) -> ProcessStream:
            shared.publish(models.learner.policy_state(), first)  # a resumed run's weights; at 0, the model's own
            return ProcessStream(replace(spec, first_batch=first), shared)

        return StreamSource(in_process, config, models.pad_token_id), MailboxSink(
            shared, models.engine, models.tokenizer
        )
    rollout = rollout_config(config)
    mailbox = WeightMailbox()

    def on_thread(first: int) -> RolloutStream:
        return RolloutStream(
            env_factory, draw, models.engine, models.tokenizer, c.sampling, rollout, mailbox,
            max_staleness=a.max_staleness, in_flight=a.in_flight, first_batch=first, env_id=c.env,
        )  # fmt: skip

    path = resolve_model(c.model)
    tokenizer = load_tokenizer(path)  # evaluation's own engine: the stream keeps the run's busy
    eval_engine = make_engine(c.engine, path, tokenizer, device=c.device, seed=c.seed)
    return StreamSource(on_thread, config, models.pad_token_id), MailboxSink(mailbox, eval_engine, tokenizer)


def rollout_config(config: TrainConfig) -> RolloutConfig:
    c = config
    return RolloutConfig(group_size=c.group_size, max_concurrent=256, max_total_tokens=c.max_total_tokens, seed=c.seed)


def worker_spec(config: TrainConfig, draw: Callable[[int], list[Task]]) -> WorkerSpec:
    """What a rollout worker (a spawned process or a worker rank) builds its stream from."""
    c, a = config, config.asynchronous
    return WorkerSpec(
        c.env, draw, resolve_model(c.model), c.sampling, rollout_config(c), a.max_staleness, a.in_flight, 0,
        c.env_args, c.engine, a.worker_device or c.device, c.seed, a.worker_threads,
    )  # fmt: skip


def serve_rollout_rank(config: TrainConfig, index: int) -> None:
    """A rollout worker rank (``asynchronous.workers``): worker ``index`` of them, until rank 0 stops."""
    tasks, _ = env_tasks(functools.partial(load_env(config.env), **config.env_args))
    draw = TaskDraw(tasks, config.seed, config.tasks_per_step)
    a = config.asynchronous
    group = weights_group(config.learner.dist_timeout_min)
    serve(worker_spec(config, draw), index, a.workers, group, a.sync_timeout_s)


class StreamSource:
    """The asynchronous source: finished groups from a rollout stream, staleness-bounded."""

    def __init__(self, open_stream: Callable[[int], Stream], config: TrainConfig, pad: int):
        self.open_stream, self.config, self.pad_token_id = open_stream, config, pad
        self.stream: Stream | None = None
        self._seen = StreamStats()

    def start(self, step: int) -> None:
        self.stream = self.open_stream(step)  # its first batch is the first step's
        self.stream.start()

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()

    def collect(self, step: int) -> tuple[list[Trajectory], dict[str, float]]:
        trajectories, waited = self._take()
        return trajectories, {"time/learner_idle_s": waited} | self._stream_metrics()

    def bound(
        self, trajectories: list[Trajectory], batch: TokenBatch, step: int
    ) -> tuple[list[Trajectory], TokenBatch, dict[str, float]]:
        """Bound the batch's staleness. If every row was too old to keep, train on the next
        finished groups instead (their wait is ``time/learner_refill_s``; what the stream did
        meanwhile counts in the next step's metrics); their trajectories follow the first ones."""
        a = self.config.asynchronous
        bounded, metrics = bound_staleness(batch, step, a.max_staleness, a.stale, a.stale_decay)
        metrics["time/learner_refill_s"] = 0.0
        taken = list(trajectories)
        while bounded is None:
            more_trajectories, waited = self._take()
            check_sampled(more_trajectories, step + 1)
            fresh = TokenBatch.from_trajectories(more_trajectories, self.pad_token_id)
            fresh = fresh.with_fields(source_row=fresh.require("source_row") + len(taken))
            taken += more_trajectories
            bounded, more = bound_staleness(fresh, step, a.max_staleness, a.stale, a.stale_decay)
            metrics["async/dropped_stale"] += more["async/dropped_stale"]
            metrics["time/learner_refill_s"] += waited
        return taken, bounded, metrics

    def learner_starts(self) -> None:
        """The stream keeps generating while the learner trains: the engine stays awake."""

    def _take(self) -> tuple[list[Trajectory], float]:
        """The next ``tasks_per_step`` finished groups' trajectories, and the seconds waited."""
        assert self.stream is not None, "the stream runs between start() and stop()"
        c, start = self.config, time.perf_counter()
        groups = self.stream.take(c.tasks_per_step, sync_timeout_s=c.asynchronous.sync_timeout_s)
        return [t for g in groups for t in g.trajectories], time.perf_counter() - start

    def _stream_metrics(self) -> dict[str, float]:
        """What the stream did since the last step: generating, loading weights, idle, aborts."""
        assert self.stream is not None
        now, seen = self.stream.stats, self._seen
        metrics = {
            "time/generate_s": now.generate_s - seen.generate_s,
            "time/sync_s": now.sync_s - seen.sync_s,
            "time/rollout_idle_s": now.idle_s - seen.idle_s,
            "async/syncs": float(now.syncs - seen.syncs),
            "async/aborted_episodes": float(now.aborted_episodes - seen.aborted_episodes),
            "async/engine_version": float(self.stream.engine_version),
        }
        self._seen = StreamStats(**vars(now))
        return metrics


@dataclass
class MailboxSink:
    """The asynchronous sink: weights to the stream's mailbox; evaluations on ``engine``,
    which the stream does not use."""

    mailbox: WeightMailbox | SharedWeightMailbox | BroadcastMailbox
    engine: Engine
    tokenizer: Any

    def publish(self, state: Mapping[str, Any], version: int) -> dict[str, float]:
        start = time.perf_counter()
        self.mailbox.publish(state, version)
        return {"time/publish_s": time.perf_counter() - start}

    def eval_engine(self, state: Mapping[str, Any], version: int) -> tuple[Engine, Any]:
        self.engine.update_weights(state, version=version)
        return self.engine, self.tokenizer
