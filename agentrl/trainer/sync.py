"""The synchronous training loop: rollout, advantages and update, weights to the engine.

Owns the order of a step and the run directory (``runs/<name>/``: ``config.yaml``, the
resolved config; ``metrics.jsonl``; ``checkpoints/``; ``episodes/``, the episode store). Each step:

1. sample ``tasks_per_step`` tasks from the train split (seeded by step);
2. roll out ``group_size`` episodes per task on the engine, as rollout batch ``step``
   (seeded by the scheduler's rule, ``agentrl.rollout.scheduler``: the asynchronous stream's
   batch ``step`` samples alike);
3. ``learner.train_step`` on the token batch (the algorithm decides the rest);
4. push the learner's weights into the engine (``update_weights``, timed);
5. keep the step's episodes, with what the learner computed per token, every ``episodes_every``
   steps (and the held-out episodes of each evaluation);
6. evaluate on the held-out split every ``eval_every`` steps; checkpoint every
   ``checkpoint_every`` steps.

Everything a step draws is seeded from ``(seed, step)``, so a run resumed from a checkpoint
continues exactly as the uninterrupted run would. Never branches on an algorithm's name.
"""

from __future__ import annotations

import functools
import random
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agentrl import episodes, recipes
from agentrl.algos import make as make_algorithm
from agentrl.batch import TokenBatch
from agentrl.engines.base import Engine, SamplingParams
from agentrl.envs import load as load_env
from agentrl.episodes.records import table_rows
from agentrl.errors import AgentRLError, AgentRLWarning, CheckpointError
from agentrl.evaluation import service_failure_problem, summarize
from agentrl.rollout import RolloutConfig, rollout
from agentrl.rollout.stream import StreamError
from agentrl.trainer import checkpoint, history
from agentrl.trainer.config import TrainConfig
from agentrl.trainer.interrupt import Interrupted, StopAfterStep
from agentrl.trainer.logging import MetricsLogger
from agentrl.trainer.setup import Models, load_models
from agentrl.trainer.sources import BatchSource, EngineSink, Rollouts, WeightSink
from agentrl.types import Task, Trajectory

TURN_LENGTH_WARNING = 0.1
"""A run warns once when more than this share of a step's turns hit the per-turn token limit."""


class EmptyBatchError(AgentRLError):
    """No episode of a step's batch sampled a token (every one failed before its first turn)."""


class TrainingError(AgentRLError):
    """A step failed; the message names the step and the checkpoint to resume from."""


class ToolUnavailableError(AgentRLError):
    """Too many of a step's tool calls found their service (a retriever) down."""


def check_sampled(trajectories: Sequence[Trajectory], step: int) -> None:
    """Raise ``EmptyBatchError`` if no trajectory holds a sampled token, naming the first error."""
    if any(t.num_sampled_tokens for t in trajectories):
        return
    failed = [t for t in trajectories if t.error]
    first = f"; the first: {failed[0].error}" if failed else ""
    raise EmptyBatchError(
        f"step {step}: no episode sampled a token ({len(failed)} of {len(trajectories)} ended with an error{first})"
    )


def env_tasks(env_factory: Callable[[], Any]) -> tuple[Sequence[Task], Sequence[Task]]:
    """The environment's train and test tasks, read from one instance that is closed after."""
    probe = env_factory()
    try:
        return probe.tasks("train"), probe.tasks("test")
    finally:
        probe.close()


@dataclass(frozen=True)
class TaskDraw:
    """The train tasks of each step: ``per_step`` drawn with replacement, seeded by
    ``(seed, step)``. A plain picklable callable, so a rollout worker process can draw them."""

    tasks: Sequence[Task]
    seed: int
    per_step: int

    def __call__(self, step: int) -> list[Task]:
        rng = random.Random(f"{self.seed}/tasks/{step}")
        return [self.tasks[rng.randrange(len(self.tasks))] for _ in range(self.per_step)]


@dataclass
class RunState:
    """What a checkpoint's ``trainer.json`` holds besides the weights."""

    step: int = 0
    evals: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: float = 0.0  # training time up to ``step``, summed over the run's resumes
    wandb_id: str | None = None  # the wandb run a resumed run continues


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: Path, *, models: Models | None = None):
        self.config, self.run_dir = config, run_dir
        self.env_factory = functools.partial(load_env(config.env), **config.env_args)
        self.train_tasks, self.test_tasks = env_tasks(self.env_factory)
        self.draw = TaskDraw(self.train_tasks, config.seed, config.tasks_per_step)
        algorithm = make_algorithm(config.algo, **config.algo_args)
        self.models = models or load_models(config, algorithm)
        self.state = RunState()
        self._last_eval_s = 0.0
        self._warned_turn_length = False
        self.tables: dict[str, list[dict[str, Any]]] = {}  # episode tables for the logger (wandb)
        self.source, self.sink = self._parts()

    def _parts(self) -> tuple[BatchSource, WeightSink]:
        """The loop's batch source and weight sink (``agentrl.trainer.sources``)."""
        c, m = self.config, self.models
        if c.asynchronous.enabled:
            from agentrl.trainer.async_loop import stream_parts

            return stream_parts(c, m, self.env_factory, self.draw)

        def roll(step: int) -> list[Trajectory]:
            return self._rollout(m.engine, m.tokenizer, self.draw(step), c.group_size, batch=step)

        return Rollouts(roll, m.engine), EngineSink(m.engine, m.tokenizer)

    # ---- one step ---------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """One step, top to bottom: the source's trajectories, the batch it bounds, the
        learner's update, the new weights to the sink. A failure is one line naming the
        checkpoint ``--resume`` continues from."""
        try:
            return self._step()
        except (EmptyBatchError, StreamError) as exc:
            raise TrainingError(f"{exc}; {self._resume_hint()}") from None
        except ToolUnavailableError as exc:
            if self.state.step and self.state.step % self.config.checkpoint_every:
                self.save_checkpoint()  # the last finished step, so --resume loses nothing
            raise TrainingError(f"{exc}; once it is back, {self._resume_hint()}") from None
        except AgentRLError:
            raise
        except Exception as exc:
            raise TrainingError(
                f"the learner failed at step {self.state.step + 1} ({type(exc).__name__}: {exc}); {self._resume_hint()}"
            ) from exc

    def _step(self) -> dict[str, float]:
        c, step = self.config, self.state.step
        started = time.perf_counter()
        trajectories, metrics = self.source.collect(step)
        summary = summarize(trajectories)
        self._check_tools(summary, step + 1)
        self._warn_turn_length(summary, step + 1)
        check_sampled(trajectories, step + 1)
        batch = TokenBatch.from_trajectories(trajectories, self.models.pad_token_id)
        trajectories, batch, extra = self.source.bound(trajectories, batch, step)
        self.source.learner_starts()
        keep = bool(c.episodes_every) and ((step + 1) % c.episodes_every == 0 or step + 1 == c.steps)
        start = time.perf_counter()
        metrics |= self.models.learner.train_step(batch, trace=keep) | extra
        learner_s = time.perf_counter() - start
        start = time.perf_counter()
        state = self.models.learner.policy_state()  # under ZeRO-3, gathered from every rank
        metrics["time/weights_s"] = time.perf_counter() - start
        metrics |= self.sink.publish(state, step + 1)
        self.state.step += 1
        sampled = sum(t.num_sampled_tokens for t in trajectories)
        rollout_s = metrics.get("time/rollout_s", time.perf_counter() - started)
        metrics |= {
            "rollout/reward_mean": summary["mean_reward"],
            "rollout/accuracy": summary["accuracy"],
            "rollout/mean_turns": summary["mean_turns"],
            "rollout/tool_calls_per_episode": summary["tool_calls"] / summary["episodes"],
            "rollout/tool_error_rate": summary["tool_error_rate"],
            "rollout/tool_service_failure_rate": summary["tool_service_failure_rate"],
            "rollout/turn_length_rate": summary["turn_length_rate"],
            **{f"rollout/mean_{k}": v for k, v in summary["components"].items()},
            "rollout/sampled_tokens": float(sampled),
            "rollout/tokens_per_s": sampled / max(rollout_s, 1e-9),
            "time/learner_s": learner_s,
        }
        if keep:
            start = time.perf_counter()
            rows = batch.require("source_row").tolist()
            trace = self.models.learner.last_trace
            metrics["episodes/bytes"] = self._keep(trajectories, "train", trace=trace, source_rows=rows)
            metrics["time/episodes_s"] = time.perf_counter() - start
        metrics["time/step_s"] = time.perf_counter() - started  # rollout to published weights, no eval
        return metrics

    def _warn_turn_length(self, summary: dict[str, Any], step: int) -> None:
        """Warn once a run when more than 10% of a step's turns were cut by the per-turn limit."""
        rate = summary.get("turn_length_rate", 0.0)
        if rate > TURN_LENGTH_WARNING and not self._warned_turn_length:
            self._warned_turn_length = True
            limit, env = self.config.sampling.max_new_tokens, self.config.env
            shipped = recipes.for_env(env)
            recipe = f" or train with a recipe for {env} (--config {shipped[0]})" if shipped else ""
            warnings.warn(
                f"step {step}: {rate:.0%} of turns hit the per-turn token limit (sampling.max_new_tokens={limit}) "
                f"and were cut off; raise it (--set sampling.max_new_tokens=N){recipe}",
                AgentRLWarning,
                stacklevel=2,
            )

    def _check_tools(self, summary: dict[str, Any], step: int) -> None:
        """Stop before training on a batch whose tools' services mostly failed (``max_service_failure_rate``)."""
        problem = service_failure_problem(summary, self.config.max_service_failure_rate, "max_service_failure_rate")
        if problem is not None:
            raise ToolUnavailableError(f"step {step}: {problem}; the step was not trained on")

    def _resume_hint(self) -> str:
        last = checkpoint.latest(self.run_dir / "checkpoints")
        where = f"its last checkpoint, {last.name}" if last else "the start (no checkpoint yet)"
        return f"agentrl train --resume {self.run_dir} continues from {where}"

    def eval_engine(self) -> tuple[Engine, Any]:
        """The engine evaluations run on, holding the learner's current weights, and its tokenizer."""
        return self.sink.eval_engine(self.models.learner.policy_state(), self.state.step)

    def evaluate(self) -> dict[str, float]:
        tasks = [self.test_tasks[i] for i in range(min(self.config.eval_tasks, len(self.test_tasks)))]
        start = time.perf_counter()
        trajectories = self._rollout(*self.eval_engine(), tasks, 1, batch=0)  # the same draws each time
        eval_s = time.perf_counter() - start
        s = summarize(trajectories)
        limit = self.config.max_service_failure_rate
        problem = service_failure_problem(s, limit, "max_service_failure_rate")
        if self.config.episodes_every:  # kept also when the evaluation is refused: they show why
            self._keep(trajectories, "eval")
        if self.config.logger == "wandb":
            self.tables["eval/episodes"] = table_rows(trajectories, self.state.step, self.config.wandb_table_rows)
        if problem is not None:
            raise ToolUnavailableError(f"the evaluation at step {self.state.step}: {problem}; it was not reported")
        result = {
            "eval/accuracy": s["accuracy"],
            "eval/mean_reward": s["mean_reward"],
            "eval/mean_turns": s["mean_turns"],
        }
        self.state.evals.append({"step": self.state.step, **result})
        return result | {"time/eval_s": eval_s}

    def _take_tables(self) -> dict[str, list[dict[str, Any]]]:
        """The episode tables made since the last log (the evaluation's), for the logger."""
        tables, self.tables = self.tables, {}
        return tables

    def _keep(self, trajectories: list[Trajectory], split: str, **learner: Any) -> float:
        """Store the step's ``split`` episodes (``agentrl.episodes``); returns the bytes written."""
        folder, tokenizer, step = self.run_dir / episodes.FOLDER, self.models.tokenizer, self.state.step
        try:
            return float(episodes.keep(folder, trajectories, tokenizer, step=step, split=split, **learner))
        except OSError as exc:
            raise TrainingError(
                f"cannot keep step {step}'s {split} episodes in {folder} ({type(exc).__name__}: {exc}); "
                f"once it is writable, {self._resume_hint()}"
            ) from None

    def _rollout(
        self, engine: Engine, tokenizer: Any, tasks: list[Task], group_size: int, batch: int
    ) -> list[Trajectory]:
        c = self.config
        config = RolloutConfig(
            group_size=group_size, max_total_tokens=c.max_total_tokens, seed=c.seed, max_concurrent=256
        )
        params: SamplingParams = c.sampling
        return rollout(self.env_factory, tasks, engine, tokenizer, params, config, batch=batch, env_id=c.env)

    # ---- the run ------------------------------------------------------------------------
    def run(self, *, progress: bool = True) -> dict[str, Any]:
        c = self.config
        store = self.run_dir / episodes.FOLDER
        if c.episodes_every and store.exists() and not store.is_dir():
            raise AgentRLError(f"{store} is a file, not the run's episode store; move it away and run again")
        logger = MetricsLogger(
            self.run_dir,
            use_wandb=c.logger == "wandb",
            name=self.run_dir.name,
            config=c.to_dict(),
            wandb_id=self.state.wandb_id,
            resume_step=self.state.step,
        )
        self.state.wandb_id = logger.wandb_id
        self.source.start(self.state.step)
        try:
            with StopAfterStep(self._resume_hint) as ctrl_c:
                self._loop(logger, ctrl_c, progress)
        finally:
            self.source.stop()
            logger.close()
        return self.summary()

    def _loop(self, logger: MetricsLogger, ctrl_c: StopAfterStep, progress: bool) -> None:
        """Steps until ``steps`` (or the time limit, or a Ctrl-C at a step's end), evaluating
        and checkpointing on their schedules."""
        c = self.config
        started, elapsed_before = time.perf_counter(), self.state.elapsed_s
        if self.state.step == 0:
            first = self._evaluate_or_stop(None, logger)
            self._last_eval_s = first["time/eval_s"]
            logger.log(0, first, self._take_tables())
        desc = f"{c.algo} on {c.env}"
        with tqdm(total=c.steps, initial=self.state.step, unit="step", desc=desc, disable=not progress) as bar:
            while self.state.step < c.steps:
                if ctrl_c.requested:
                    self._stop_on_ctrl_c()
                step_started = time.perf_counter()
                metrics = self.step()
                step = self.state.step
                out_of_time = self._out_of_time(started, time.perf_counter() - step_started)
                if (c.eval_every and step % c.eval_every == 0) or step == c.steps or out_of_time:
                    metrics |= self._evaluate_or_stop(metrics, logger)
                    self._last_eval_s = metrics["time/eval_s"]
                self.state.elapsed_s = elapsed_before + time.perf_counter() - started
                metrics["time/elapsed_s"] = self.state.elapsed_s
                logger.log(step, metrics, self._take_tables())
                if step % c.checkpoint_every == 0 or step == c.steps or out_of_time:
                    self.save_checkpoint()
                bar.update(1)
                bar.set_postfix(
                    reward=f"{metrics['rollout/reward_mean']:.3f}",
                    acc=f"{self._last_accuracy():.3f}",
                    tok_s=f"{metrics['rollout/tokens_per_s']:.0f}",
                )
                if out_of_time:
                    break

    def _stop_on_ctrl_c(self) -> None:
        """After a Ctrl-C: the last finished step checkpointed (if it is not yet), then stop."""
        if self.state.step and not checkpoint.step_dir(self.run_dir / "checkpoints", self.state.step).is_dir():
            self.save_checkpoint()
        raise Interrupted(f"stopped after step {self.state.step}; {self._resume_hint()}")

    def _evaluate_or_stop(self, metrics: dict[str, float] | None, logger: MetricsLogger) -> dict[str, float]:
        """``evaluate``; when its tools' services failed, the step just trained (``metrics``) is
        logged and checkpointed, and the run stops with the line to resume it."""
        try:
            return self.evaluate()
        except ToolUnavailableError as exc:
            if metrics is not None:
                logger.log(self.state.step, metrics)
                self.save_checkpoint()
            raise TrainingError(f"{exc}; once it is back, {self._resume_hint()}") from None

    def _out_of_time(self, started: float, step_s: float) -> bool:
        """Whether another step and the final evaluation would overrun ``time_limit_min``."""
        if self.config.time_limit_min is None:
            return False
        finish = time.perf_counter() - started + step_s + self._last_eval_s
        return finish > 60 * self.config.time_limit_min

    def summary(self) -> dict[str, Any]:
        evals = self.state.evals
        return {
            "steps": self.state.step,
            "accuracy_before": evals[0]["eval/accuracy"] if evals else None,
            "accuracy_after": evals[-1]["eval/accuracy"] if evals else None,
            "run_dir": str(self.run_dir),
        }

    def _last_accuracy(self) -> float:
        return self.state.evals[-1]["eval/accuracy"] if self.state.evals else 0.0

    # ---- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        m = self.models
        return checkpoint.save(
            self.run_dir / "checkpoints",
            self.state.step,
            learner=m.learner,
            tokenizer=m.tokenizer,
            trainer_state=asdict(self.state),
            keep=self.config.keep_checkpoints,
        )

    def resume(self) -> int:
        """Load the newest checkpoint and cut the run's history back to it; returns its step
        (0 when there is none: the run starts afresh, its earlier history removed)."""
        path = checkpoint.latest(self.run_dir / "checkpoints")
        if path is None:
            history.rewind(self.run_dir, None)
            return 0
        try:
            rng, trainer_state = checkpoint.load(path)
            self.models.learner.load(path)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; {checkpoint.damaged_hint(path)}") from None
        self.models.engine.update_weights(self.models.learner.policy_state(), version=trainer_state["step"])
        checkpoint.restore_rng(rng)
        known = {f.name for f in fields(RunState)}
        self.state = RunState(**{k: v for k, v in trainer_state.items() if k in known})
        history.rewind(self.run_dir, self.state.step)
        return self.state.step
