"""The asynchronous training loop: rollouts keep running while the learner trains.

Owns the learner's side of ``agentrl train --async``. A rollout stream runs episodes
continuously on its engine; the learner takes the next ``tasks_per_step`` finished groups,
bounds their staleness (``agentrl.trainer.staleness``), trains, and publishes its weights to a
mailbox as version ``step + 1``; the stream loads them between two generation rounds
(``asynchronous.in_flight`` says what happens to episodes in flight). Update ``u`` trains on
samples of versions ``>= u - max_staleness`` (the stream's admission bound); a sample older
than that is dropped or down-weighted and counted.

``asynchronous.worker`` says where the stream runs: ``thread``, a ``RolloutStream`` on a thread
of this process driving the run's engine, or ``process``, a spawned worker
(``agentrl.rollout.worker``) with its own engine, reading weights from shared memory
(``auto``, the default: a process for vLLM, which cannot be driven from a second thread).
Evaluation runs on an engine the stream does not use (with a thread, a third copy of the
weights; with a process, the run's engine), so it does not pause the stream. Checkpoints hold
what the synchronous loop's hold; groups in flight at a checkpoint are not saved: a resumed
run samples them again.

Failures stop the run with one line and leave the last checkpoint intact: the stream failing
(its engine or an environment), the learner failing, or a weight sync running longer than
``asynchronous.sync_timeout_s``. ``agentrl train --resume`` continues from that checkpoint.
Never branches on an algorithm's name; the synchronous loop (``agentrl.trainer.sync``) is
unchanged by this module.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agentrl.algos import TokenBatch
from agentrl.engines.base import Engine
from agentrl.engines.factory import make_engine
from agentrl.engines.loading import load_tokenizer
from agentrl.engines.mailbox import SharedWeightMailbox, WeightMailbox
from agentrl.errors import AgentRLError
from agentrl.rollout.runner import RolloutConfig
from agentrl.rollout.stream import RolloutStream, StreamError, StreamStats
from agentrl.rollout.worker import ProcessStream, WorkerSpec
from agentrl.trainer import checkpoint
from agentrl.trainer.config import TrainConfig
from agentrl.trainer.setup import Models, resolve_model
from agentrl.trainer.staleness import bound_staleness
from agentrl.trainer.sync import EmptyBatchError, Trainer, check_sampled
from agentrl.types import Trajectory


class TrainingError(AgentRLError):
    """The learner failed mid-run; the message names the step and the checkpoint to resume from."""


class AsyncTrainer(Trainer):
    def __init__(self, config: TrainConfig, run_dir: Path, *, models: Models | None = None):
        super().__init__(config, run_dir, models=models)
        self.path = resolve_model(config.model)
        self._eval: tuple[Engine, Any] = (self.models.engine, self.models.tokenizer)
        if config.rollout_worker == "thread":
            tokenizer = load_tokenizer(self.path)
            self._eval = (
                make_engine(config.engine, self.path, tokenizer, device=config.device, seed=config.seed),
                tokenizer,
            )
        self.mailbox: WeightMailbox | SharedWeightMailbox | None = None
        self.stream: RolloutStream | ProcessStream | None = None
        self._seen = StreamStats()

    # ---- the stream ---------------------------------------------------------------------
    def run(self, *, progress: bool = True) -> dict[str, Any]:
        c, m = self.config, self.models
        rollout = RolloutConfig(
            group_size=c.group_size, max_concurrent=256, max_total_tokens=c.max_total_tokens, seed=c.seed
        )
        a, policy = c.asynchronous, m.learner.policy_state()
        if c.rollout_worker == "process":
            spec = WorkerSpec(
                c.env, self.draw, self.path, c.sampling, rollout, a.max_staleness, a.in_flight, self.state.step,
                c.env_args, c.engine, a.worker_device or c.device, c.seed, a.worker_threads,
            )  # fmt: skip
            shared = SharedWeightMailbox(policy)
            shared.publish(policy, self.state.step)  # a resumed run's weights; at step 0, the model's own
            self.mailbox, self.stream = shared, ProcessStream(spec, shared)
        else:
            self.mailbox = WeightMailbox()
            self.stream = RolloutStream(
                self.env_factory, self.draw, m.engine, m.tokenizer, c.sampling, rollout, self.mailbox,
                max_staleness=a.max_staleness, in_flight=a.in_flight, first_batch=self.state.step, env_id=c.env,
            )  # fmt: skip
        self.stream.start()
        try:
            return super().run(progress=progress)
        finally:
            self.stream.stop()

    # ---- the hooks of the synchronous step ------------------------------------------------
    def collect(self) -> tuple[list[Trajectory], dict[str, float]]:
        trajectories, waited = self._take()
        return trajectories, {"time/learner_idle_s": waited} | self._stream_metrics()

    def prepare_batch(self, batch: TokenBatch) -> tuple[TokenBatch, dict[str, float]]:
        """Bound the batch's staleness. If every row was too old to keep, train on the next
        finished groups instead (their wait is ``time/learner_refill_s``; what the stream did
        meanwhile counts in the next step's metrics)."""
        a, step = self.config.asynchronous, self.state.step
        bounded, metrics = bound_staleness(batch, step, a.max_staleness, a.stale, a.stale_decay)
        metrics["time/learner_refill_s"] = 0.0
        while bounded is None:
            trajectories, waited = self._take()
            check_sampled(trajectories, step + 1)
            fresh = TokenBatch.from_trajectories(trajectories, self.models.pad_token_id)
            bounded, more = bound_staleness(fresh, step, a.max_staleness, a.stale, a.stale_decay)
            metrics["async/dropped_stale"] += more["async/dropped_stale"]
            metrics["time/learner_refill_s"] += waited
        return bounded, metrics

    def _take(self) -> tuple[list[Trajectory], float]:
        """The next ``tasks_per_step`` finished groups' trajectories, and the seconds waited."""
        assert self.stream is not None, "the stream runs inside run()"
        c, start = self.config, time.perf_counter()
        try:
            groups = self.stream.take(c.tasks_per_step, sync_timeout_s=c.asynchronous.sync_timeout_s)
        except StreamError as exc:
            raise StreamError(f"{exc}; {self._resume_hint()}") from None
        return [t for g in groups for t in g.trajectories], time.perf_counter() - start

    def step(self) -> dict[str, float]:
        try:
            return super().step()
        except EmptyBatchError as exc:
            raise TrainingError(f"{exc}; {self._resume_hint()}") from None
        except AgentRLError:
            raise
        except Exception as exc:
            raise TrainingError(
                f"the learner failed at step {self.state.step + 1} ({type(exc).__name__}: {exc}); {self._resume_hint()}"
            ) from exc

    def _resume_hint(self) -> str:
        last = checkpoint.latest(self.run_dir / "checkpoints")
        where = f"its last checkpoint, {last.name}" if last else "the start (no checkpoint yet)"
        return f"agentrl train --resume {self.run_dir} continues from {where}"

    def release_engine(self) -> None:
        """The stream keeps generating while the learner trains: the engine stays awake."""

    def publish(self, version: int) -> dict[str, float]:
        assert self.mailbox is not None, "the mailbox is made inside run()"
        start = time.perf_counter()
        self.mailbox.publish(self.models.learner.policy_state(), version)
        return {"time/publish_s": time.perf_counter() - start}

    def eval_engine(self) -> tuple[Engine, Any]:
        engine, tokenizer = self._eval
        engine.update_weights(self.models.learner.policy_state(), version=self.state.step)
        return engine, tokenizer

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
