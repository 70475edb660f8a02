"""``agentrl eval``: run an environment's test split against a model and report metrics.

Prints accuracy, pass@k, mean reward, mean turns and tool-error rate; writes every
trajectory (JSONL, streamed as episodes finish), the episode store (``episodes/``, which
``agentrl view`` and ``agentrl show`` read) and ``metrics.json`` (the metrics and what made
them: model, environment and its arguments, split, sampling, seed, agentrl version, time) to
the output folder. When more than ``--max-service-failure-rate`` of the tool calls failed on
their service's side (a retriever down or hung), the evaluation measured the service, not the
model: it exits 1 with one line naming the services and writes no ``metrics.json``, unless
``--allow-service-failures`` reports the metrics with the failures flagged.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from agentrl import episodes
from agentrl.cli.envs_cmd import parse_env_args
from agentrl.config import build, field_help
from agentrl.engines.base import SamplingParams
from agentrl.engines.config import EngineConfig
from agentrl.engines.registry import names as engine_backends
from agentrl.envs import Env, load, make
from agentrl.errors import AgentRLError, ConfigError
from agentrl.evaluation import is_correct, service_failure_problem, summarize
from agentrl.models.names import check_model_name, run_model
from agentrl.rollout import RolloutConfig, rollout
from agentrl.rollout.io import TrajectoryWriter
from agentrl.types import Task

_SAMPLING = field_help(SamplingParams)
_ROLLOUT = field_help(RolloutConfig)


def register(commands: Any) -> None:
    p = commands.add_parser("eval", help="evaluate a model on an environment", description=__doc__)
    p.add_argument("--env", required=True, help="environment name (see `agentrl envs list`) or module:Class")
    p.add_argument(
        "--model",
        help="a local Hugging Face model directory, a run folder (its last checkpoint), a LoRA checkpoint "
        "(merged into its base for the evaluation) or a hub name (default: the model shipped with agentrl)",
    )
    p.add_argument(
        "-n",
        "--num-tasks",
        type=int,
        default=64,
        help="tasks to evaluate (from the start of the split)",
    )
    p.add_argument(
        "--group-size",
        type=int,
        default=1,
        help=_ROLLOUT["group_size"] + "; pass@k uses k = group size",
    )
    p.add_argument("--split", default="test", help="task split")
    p.add_argument(
        "--env-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment option (repeatable)",
    )
    p.add_argument("--temperature", type=float, default=1.0, help=_SAMPLING["temperature"])
    p.add_argument("--top-p", type=float, default=1.0, help=_SAMPLING["top_p"])
    p.add_argument("--top-k", type=int, default=0, help=_SAMPLING["top_k"])
    p.add_argument("--max-new-tokens", type=int, default=256, help=_SAMPLING["max_new_tokens"])
    p.add_argument("--max-total-tokens", type=int, default=1024, help=_ROLLOUT["max_total_tokens"])
    p.add_argument("--max-concurrent", type=int, default=64, help=_ROLLOUT["max_concurrent"])
    p.add_argument("--seed", type=int, default=0, help=_ROLLOUT["seed"])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--engine",
        default="auto",
        choices=["auto", *engine_backends()],
        help="inference engine (default auto: vllm on a GPU when installed, else transformers)",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16",
    )
    p.add_argument(
        "--max-service-failure-rate",
        type=float,
        default=0.5,
        help="fail when more than this share of tool calls failed on their service's side (the rule "
        "training stops on, train.max_service_failure_rate)",
    )
    p.add_argument(
        "--allow-service-failures",
        action="store_true",
        help="over that share, report the metrics anyway, flagged (service_failure_problem in metrics.json)",
    )
    p.add_argument("--output", help="output folder (default runs/eval-<env>-<time>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _checked(args: argparse.Namespace) -> tuple[SamplingParams, RolloutConfig]:
    """The sampling and rollout settings, with every mistake in the arguments one line before
    anything loads: a bad number, a GPU that is not there, a model path that does not exist (not
    hub retries after the environment). A run folder as ``--model`` becomes its last checkpoint."""
    if args.num_tasks < 1:
        raise ConfigError(f"eval: -n must be >= 1, got {args.num_tasks}")
    if not 0.0 <= args.max_service_failure_rate <= 1.0:
        raise ConfigError(f"eval: --max-service-failure-rate must be in [0, 1], got {args.max_service_failure_rate}")
    params = build(
        SamplingParams,
        _pick(args, "temperature", "top_p", "top_k", "max_new_tokens"),
        owner="sampling",
    )
    config = build(
        RolloutConfig,
        _pick(args, "group_size", "max_concurrent", "max_total_tokens", "seed"),
        owner="rollout",
    )
    from agentrl.engines.loading import resolve_device

    resolve_device(args.device)
    check_model_name(args.model)
    args.model = run_model(args.model)
    return params, config


def run(args: argparse.Namespace) -> int:
    params, config = _checked(args)
    factory, tasks = _environment(args)

    from agentrl.trainer.setup import resolve_model

    out = Path(args.output or f"runs/eval-{args.env.replace(':', '_')}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_dir(out)  # before the model loads: a typo costs nothing
    model = resolve_model(args.model)
    with merged_if_adapter(model) as loadable:  # metrics.json names the model as given
        return _evaluate(args, model, loadable, params, config, factory, tasks, out)


@contextlib.contextmanager
def merged_if_adapter(model: str) -> Iterator[str]:
    """``model``, or for a LoRA checkpoint a temporary model directory with the adapter merged
    into its base (removed afterwards), so that every engine loads it."""
    from agentrl.learner import lora
    from agentrl.trainer.interrupt import term_as_interrupt

    if not lora.is_adapter_dir(model):
        yield model
        return
    with term_as_interrupt(), tempfile.TemporaryDirectory(prefix="agentrl-merged-") as tmp:
        print(f"model: {model} is a LoRA adapter; merging it into its base, {lora.base_of(model)}", flush=True)
        yield str(lora.merge_adapter_dir(model, Path(tmp) / "model"))


def _evaluate(
    args: argparse.Namespace,
    model: str,
    loadable: str,
    params: SamplingParams,
    config: RolloutConfig,
    factory: Callable[[], Env],
    tasks: list[Task],
    out: Path,
) -> int:
    from agentrl.engines.factory import make_engine
    from agentrl.engines.loading import load_tokenizer

    tokenizer = load_tokenizer(loadable)
    sections = {"transformers": {"max_batch_size": args.max_concurrent}}
    engine_config = EngineConfig(backend=args.engine, dtype=args.dtype, sections=sections)
    engine_config.place(args.device)
    engine = make_engine(engine_config, loadable, tokenizer, device=args.device)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AgentRLError(f"--output {out}: cannot create the folder ({exc.strerror or exc})") from None
    (out / "trajectories.jsonl").unlink(missing_ok=True)
    episodes.rewind(out / episodes.FOLDER, None)  # an earlier evaluation's episodes, into the same folder
    start, started_at = time.perf_counter(), _now()
    with (
        TrajectoryWriter(out / "trajectories.jsonl") as writer,
        tqdm(
            total=len(tasks) * config.group_size,
            unit="ep",
            desc=f"eval {args.env}",
            disable=args.no_progress,
        ) as bar,
    ):
        done = correct = 0

        def on_episode(trajectories: list[Any]) -> None:
            nonlocal done, correct
            writer.write(trajectories)
            done, correct = done + 1, correct + is_correct(trajectories[0])
            bar.update(1)
            bar.set_postfix(acc=f"{correct / done:.3f}")

        trajectories = rollout(
            factory,
            tasks,
            engine,
            tokenizer,
            params,
            config,
            env_id=args.env,
            on_episode=on_episode,
        )
    metrics = summarize(trajectories) | {"wall_s": round(time.perf_counter() - start, 2)}
    episodes.keep(out / episodes.FOLDER, trajectories, tokenizer, step=0, split="eval")  # for agentrl view / show
    _report(args, metrics, out, _provenance(args, model, params, config, engine_config, started_at))
    return 0


def _report(args: argparse.Namespace, metrics: dict[str, Any], out: Path, made_by: dict[str, Any]) -> None:
    """``metrics.json`` and the printed table, unless the tools' services failed past the rule
    (then one line and no metrics, or with ``--allow-service-failures`` the metrics flagged)."""
    problem = service_failure_problem(metrics, args.max_service_failure_rate, "--max-service-failure-rate")
    if problem is not None and not args.allow_service_failures:
        raise AgentRLError(
            f"eval: {problem}; the metrics measure the service, not the model, and were not written "
            f"(trajectories: {out / 'trajectories.jsonl'}; --allow-service-failures reports them flagged)"
        )
    if problem is not None:
        metrics["service_failure_problem"] = problem
    (out / "metrics.json").write_text(json.dumps(metrics | {"made_by": made_by}, indent=2) + "\n")
    _print(metrics, out)
    if problem is not None:
        print(f"agentrl: warning: {problem}", file=sys.stderr)


def _provenance(
    args: argparse.Namespace,
    model: str,
    params: SamplingParams,
    config: RolloutConfig,
    engine_config: EngineConfig,
    started_at: str,
) -> dict[str, Any]:
    """What an evaluation folder came from: enough to run it again."""
    from agentrl import __version__

    return {
        "model": model,
        "env": args.env,
        "env_args": parse_env_args(args.env_arg),
        "split": args.split,
        "num_tasks": args.num_tasks,
        "sampling": dataclasses.asdict(params),
        "rollout": dataclasses.asdict(config),
        "engine": engine_config.backend,  # the backend that ran, `auto` resolved
        "engine_chosen_because": engine_config.chosen_because,
        "dtype": engine_config.dtype,
        "seed": args.seed,
        "agentrl_version": __version__,
        "started_at": started_at,
        "finished_at": _now(),
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def _environment(args: argparse.Namespace) -> tuple[Callable[[], Env], list[Task]]:
    """The environment factory and the first ``-n`` tasks of the split; the environment's
    options are validated here, before the model loads."""
    env_args = parse_env_args(args.env_arg)
    env = make(args.env, **env_args)
    split = env.tasks(args.split)
    tasks = [split[i] for i in range(min(args.num_tasks, len(split)))]
    env.close()
    if not tasks:
        raise AgentRLError(f"environment {args.env!r} has no tasks in split {args.split!r}")
    return functools.partial(load(args.env), **env_args), tasks


def check_output_dir(out: Path) -> None:
    """Refuse an output path that is a file, or lies under one, or a training run's folder (the
    evaluation's episodes would replace the run's)."""
    if (out / "config.yaml").is_file() or any(r["split"] == "train" for r in episodes.EpisodeStore(out).rows()):
        raise AgentRLError(
            f"--output {out} is a training run's folder: the evaluation would replace its episode store; "
            f"give another folder (such as {out / 'eval'})"
        )
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                where = "is a file" if path == out else f"is under {path}, which is a file"
                raise AgentRLError(f"--output {out} {where}; give a folder")
            return


def _pick(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    return {name: getattr(args, name) for name in names}


def _print(metrics: dict[str, Any], out: Path) -> None:
    components = {f"mean_{k}": v for k, v in metrics.get("components", {}).items()}
    kinds = {f"tool_error_rate[{k}]": v for k, v in metrics.get("tool_error_rate_by_kind", {}).items()}
    failures = {
        f"service_failures[{service}]": ", ".join(f"{n} {kind}" for kind, n in by_kind.items())
        for service, by_kind in metrics.get("service_failures", {}).items()
    }
    hidden = ("components", "tool_error_rate_by_kind", "service_failures", "service_failure_problem")
    shown = {k: v for k, v in metrics.items() if k not in hidden}
    shown = shown | kinds | components | failures
    width = max(map(len, [*shown, "trajectories"]))  # long keys keep the column straight
    for key, value in shown.items():
        print(f"{key:>{width}}  {value:.4f}" if isinstance(value, float) else f"{key:>{width}}  {value}")
    print(f"{'trajectories':>{width}}  {out / 'trajectories.jsonl'}")
