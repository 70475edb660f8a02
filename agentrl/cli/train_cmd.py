"""``agentrl train``: train a model on an environment with an algorithm.

Options come from, in order: the defaults, the environment's own training defaults (a
per-turn token budget and the like), ``--config`` (a recipe's name or a YAML file), the named
flags, and ``--set section.key=value``. The run directory ``runs/<name>/`` must not exist unless
``--resume`` (continue from its last checkpoint; the run keeps its environment, objective, model
and seed) or ``--overwrite`` (start afresh).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from agentrl.cli import launch
from agentrl.cli.envs_cmd import parse_env_args
from agentrl.engines.registry import names as engine_backends
from agentrl.envs import make as make_env
from agentrl.errors import AgentRLError, count
from agentrl.models.names import check_model_name, run_model

if TYPE_CHECKING:
    from agentrl.learner import LearnerBackend
    from agentrl.trainer.config import TrainConfig


def register(commands: Any) -> None:
    from agentrl.trainer.config import TrainConfig, options_help

    d = TrainConfig.__dataclass_fields__  # the config's defaults, which the flags below override

    p = commands.add_parser(
        "train",
        help="train a model with RL",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="every option (YAML key, or --set KEY=VALUE):\n" + options_help(),
    )
    p.add_argument("--config", help="a recipe's name (agentrl configs list) or a YAML file of options")
    p.add_argument("--env", help=f"environment (agentrl envs list; default {d['env'].default})")
    p.add_argument(
        "--algo", help=f"algorithm (agentrl algos list) or package.module:Class (default {d['algo'].default})"
    )
    p.add_argument("--model", help="model directory or hub name (default: the model shipped with agentrl)")
    p.add_argument("--steps", type=int, help=f"rollout batches to train for (default {d['steps'].default})")
    p.add_argument("--seed", type=int, help=f"run seed (default {d['seed'].default})")
    p.add_argument("--device", help=f"auto, cpu, cuda or cuda:N (default {d['device'].default})")
    p.add_argument(
        "--logger",
        choices=["jsonl", "wandb"],
        help=f"metrics sink (metrics.jsonl is always written; default {d['logger'].default})",
    )
    p.add_argument(
        "--engine",
        choices=["auto", *engine_backends()],
        help="inference engine (engine.backend; default auto: vllm on a GPU when installed, else transformers)",
    )
    p.add_argument(
        "--async",
        dest="asynchronous",
        action="store_true",
        help="overlap rollout and training (asynchronous.enabled=true); see asynchronous.* below",
    )
    p.add_argument(
        "--max-staleness", type=int, metavar="K", help="async: samples at most K policy versions old (default 1)"
    )
    p.add_argument(
        "--env-arg", action="append", default=[], metavar="KEY=VALUE", help="environment option (env_args.KEY=VALUE)"
    )
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any option, e.g. learner.lr=1e-4")
    p.add_argument("--name", help="run name (default <env>-<algo>-<time>)")
    p.add_argument("--runs-dir", default="runs", help="where run directories go")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    launch.add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from agentrl.algos import make as make_algorithm
    from agentrl.learner import backend as learner_backend
    from agentrl.trainer import ranks
    from agentrl.trainer.async_loop import serve_rollout_rank
    from agentrl.trainer.setup import make_learner

    launch.check(args)
    # the process that owns the run directory: rank 0, or the launcher on node 0
    leads = ranks.rank() == 0 if launch.under_torchrun() else args.node_rank == 0
    config, run_dir = _config_and_run_dir(args, leads)
    workers, learner = config.asynchronous.workers, learner_backend(config.learner.backend)
    if not launch.under_torchrun() and (args.nproc or args.nnodes > 1 or workers or learner.data_parallel):
        if args.nproc is None and args.nnodes == 1:
            args.nproc = 1 + workers  # one learner rank and the rollout worker ranks
        if args.nnodes == 1:
            _check_ranks(args.nproc - workers, workers, learner)
        if leads:
            _check_before_start(config)
        return launch.launch(args, launch.rank_argv(args.argv[1:], None if args.resume else run_dir.name))
    if launch.under_torchrun():
        _check_ranks(ranks.learner_ranks(workers), workers, learner)
        ranks.join(learner, config.learner.dist_timeout_min)
    role = ranks.role(workers)
    if role == "learner":  # a learner rank other than 0: it trains what rank 0 sends
        ranks.follow(make_learner(config, make_algorithm(config.algo, **config.algo_args)))
    elif role == "rollout":
        serve_rollout_rank(config, ranks.rank() - ranks.learner_ranks(workers))
    else:
        _train(args, config, run_dir)
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The options the named flags and ``--set`` give, as dotted keys."""
    overrides: dict[str, Any] = {
        k: v
        for k in ("env", "algo", "model", "steps", "seed", "device", "logger")
        if (v := getattr(args, k)) is not None
    }
    if args.engine is not None:
        overrides["engine.backend"] = args.engine
    if args.asynchronous:
        overrides["asynchronous.enabled"] = True
    if args.max_staleness is not None:
        overrides["asynchronous.max_staleness"] = args.max_staleness
    overrides |= {f"env_args.{k}": v for k, v in parse_env_args(args.env_arg).items()}
    return overrides | parse_env_args(args.set, flag="--set")


def _config_and_run_dir(args: argparse.Namespace, leads: bool) -> tuple[TrainConfig, Path]:
    """The run's config and directory: a resumed run's own, or a new one (checked by the process
    that owns it, ``leads``)."""
    from agentrl.trainer import config as train_config

    overrides = _overrides(args)
    if args.resume:
        run_dir = Path(args.resume)
        if not run_dir.is_dir():
            raise AgentRLError(f"cannot resume: run directory {run_dir} does not exist")
        if not (run_dir / "config.yaml").is_file():
            raise AgentRLError(f"{run_dir} is not a run directory (no config.yaml)")
        if args.config:
            raise AgentRLError(f"--resume takes the run's own config ({run_dir / 'config.yaml'}), not --config")
        stored = train_config.load(run_dir / "config.yaml")
        config = train_config.load(run_dir / "config.yaml", overrides)
        _same_run(run_dir, stored, config)
        return config, run_dir
    config = train_config.load(args.config, overrides)
    name = args.name or f"{_safe(config.env)}-{_safe(config.algo)}-{time.strftime('%Y%m%d-%H%M%S')}"
    if name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        raise AgentRLError(f"--name {name!r} is not a run name: one folder name, without / (runs go under --runs-dir)")
    run_dir = Path(args.runs_dir) / name
    if leads:
        _fresh_run_dir(run_dir, args)
    return config, run_dir


IDENTITY = ("env", "env_args", "algo", "algo_args", "model", "lora", "seed")
"""What a run is: a resume may change its length, schedule and logging, not these."""


def _same_run(run_dir: Path, stored: TrainConfig, config: TrainConfig) -> None:
    """A one-line refusal when ``--resume`` flags would make the run another one."""
    changed = [key for key in IDENTITY if getattr(stored, key) != getattr(config, key)]
    if changed:
        was = ", ".join(_differences(key, getattr(stored, key), getattr(config, key)) for key in changed)
        raise AgentRLError(
            f"{run_dir} was trained with {was}; a resumed run keeps its {', '.join(changed)} "
            f"(start a new run, or drop those flags)"
        )


def _differences(key: str, stored: Any, given: Any) -> str:
    """``key=value`` as the run has it; for a section (``lora``), only its fields that differ."""
    if dataclasses.is_dataclass(stored) and dataclasses.is_dataclass(given):
        fields = [f.name for f in dataclasses.fields(stored) if getattr(stored, f.name) != getattr(given, f.name)]
        return ", ".join(f"{key}.{name}={getattr(stored, name)!r}" for name in fields)
    return f"{key}={stored!r}"


def _safe(name: str) -> str:
    """A registered name as it is; ``package.module:Class`` as ``package.module_Class``."""
    return name.replace(":", "_").replace("/", "_")


def _train(args: argparse.Namespace, config: TrainConfig, run_dir: Path) -> None:
    """Rank 0, or the only process: the training loop, start to end."""
    from agentrl.trainer import make_trainer

    _check_before_start(config)
    if args.resume and _finished(run_dir, config):
        return
    print(f"engine: {config.engine.backend} ({config.engine.chosen_because})")
    trainer = make_trainer(config, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    if args.resume:
        print(f"resuming {run_dir} at step {trainer.resume()}")
    summary = trainer.run(progress=not args.no_progress)
    trainer.models.learner.close()  # on success only: after a failure the launcher stops the other ranks
    before, after = summary["accuracy_before"], summary["accuracy_after"]
    steps = count(summary["steps"], "step")
    print(f"{config.algo} on {config.env}: {steps}, held-out accuracy {before:.3f} -> {after:.3f}")
    print(f"run directory: {run_dir}")


def _finished(run_dir: Path, config: TrainConfig) -> bool:
    """Whether a resumed run has already trained its ``steps`` (then it says so and nothing is
    loaded, trained or rewritten)."""
    from agentrl.trainer.checkpoint import latest_step

    done = latest_step(run_dir / "checkpoints")
    if done is None or done < config.steps:
        return False
    print(
        f"{run_dir} has already trained its {config.steps} steps (its last checkpoint is step {done}); nothing "
        f"to do. To train further: agentrl train --resume {run_dir} --steps {done + config.steps}"
    )
    return True


def _check_before_start(config: TrainConfig) -> None:
    """What a typo can get wrong, checked in one line each before a model loads: a device that is
    not there, the objective and its options, the environment and its options, a model path that
    does not exist (not a minute of hub retries)."""
    from agentrl.algos import make as make_algorithm
    from agentrl.engines.loading import resolve_device

    resolve_device(config.device)
    make_algorithm(config.algo, **config.algo_args)
    make_env(config.env, **config.env_args).close()
    check_model_name(config.model)
    config.model = run_model(config.model)  # a run folder: its last checkpoint


def _check_ranks(learners: int, workers: int, backend: LearnerBackend) -> None:
    """What the ranks of a launched run may be: one learner rank or more (several need the DeepSpeed
    learner), the rollout worker ranks beside one learner rank."""
    if learners < 1:
        raise AgentRLError(
            f"{learners + workers} ranks cannot hold a learner rank and asynchronous.workers={workers} rollout "
            f"ranks; use --nproc {workers + 1} or more"
        )
    if learners > 1 and not backend.data_parallel:
        from agentrl.learner import data_parallel_names

        choices = " or ".join(f"learner.backend={name}" for name in data_parallel_names())
        raise AgentRLError(f"{learners} learner ranks (--nproc / --nnodes) train data-parallel: set {choices}")
    if learners > 1 and workers:
        raise AgentRLError(
            f"asynchronous.workers={workers} rollout ranks run beside one learner rank for now, not {learners}"
        )


def _fresh_run_dir(run_dir: Path, args: argparse.Namespace) -> None:
    """Check that a new run may use ``run_dir`` (removing it with ``--overwrite``)."""
    if Path(args.runs_dir).exists() and not Path(args.runs_dir).is_dir():
        raise AgentRLError(f"--runs-dir {args.runs_dir} is a file, not a directory")
    if run_dir.exists():
        if not args.overwrite:
            raise AgentRLError(f"run directory {run_dir} exists; use --resume {run_dir} to continue or --overwrite")
        shutil.rmtree(run_dir)
