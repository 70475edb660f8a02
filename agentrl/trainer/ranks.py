"""A training run over several ranks (``agentrl train --nproc N``, or torchrun).

Owns who does what across ranks (``role``). Of W ranks, the last ``asynchronous.workers`` are
rollout workers (``agentrl.rollout.remote``); the others are learner ranks. Rank 0 runs the whole
``Trainer``: rollouts (or, with worker ranks, their stream), evaluation, logging and checkpoints,
so with one rollout source the batches are the one-process run's for the same seed. Its learner
is a ``LeaderLearner``: each call the trainer makes on it (``train_step``, ``policy_state``,
``save``, ``load``) is first broadcast to the other ranks (``broadcast_object_list``), which run
the same call on their own learner in ``follow``. The trainer never learns how many ranks there
are. Must not touch rollouts, engines or the run directory (rank 0's trainer owns them).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from agentrl.batch import TokenBatch
from agentrl.learner.base import Learner

CALLS = ("train_step", "policy_state", "save", "load")  # what the followers run; "close" ends them


def rank() -> int:
    """This process's global rank (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many ranks the run has (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def learner_ranks(workers: int) -> int:
    """How many ranks train (the rest, ``workers`` of them, roll out)."""
    return world_size() - workers


def role(workers: int) -> str:
    """``lead`` (rank 0: the trainer), ``learner`` (a rank that follows rank 0's learner calls)
    or ``rollout`` (a rollout worker rank)."""
    r = rank()
    if r == 0:
        return "lead"
    return "learner" if r < learner_ranks(workers) else "rollout"


def join(backend: str, timeout_min: float) -> None:
    """Join the launched run's process group (once): through DeepSpeed for its learner, else
    torch's own (gloo; with GPUs, NCCL for GPU tensors)."""
    if world_size() == 1 or dist.is_initialized():
        return
    if backend == "deepspeed":
        from agentrl.learner.deepspeed_learner import init_distributed

        init_distributed(timeout_min)
        return
    group = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(group, timeout=timedelta(minutes=timeout_min))


def shared(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (other ranks pass None)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class LeaderLearner:
    """Rank 0's learner: every call is broadcast to the other ranks before it runs here (each
    is collective: ZeRO reduces gradients, gathers weights and writes shards across ranks)."""

    def __init__(self, learner: Learner):
        self.inner = learner

    def __getattr__(self, name: str) -> Any:  # model, step, config, algorithm: rank 0's own
        return getattr(self.inner, name)

    def _call(self, name: str, *args: Any) -> Any:
        shared((name, args))
        return getattr(self.inner, name)(*args)

    def train_step(self, batch: TokenBatch) -> dict[str, float]:
        return dict(self._call("train_step", batch.to("cpu")))  # pickled for the broadcast

    def policy_state(self) -> dict[str, torch.Tensor]:
        return dict(self._call("policy_state"))

    def save(self, folder: Path) -> None:
        self._call("save", folder)

    def load(self, folder: Path) -> None:
        self._call("load", folder)

    def close(self) -> None:
        """Release the followers: they return from ``follow``."""
        shared(("close", ()))
        self.inner.close()


def follow(learner: Learner) -> None:
    """A rank other than 0: run rank 0's learner calls on ``learner`` until it closes."""
    while True:
        name, args = shared(None)
        if name == "close":
            learner.close()
            return
        if name not in CALLS:
            raise RuntimeError(f"rank {rank()}: rank 0 sent an unknown learner call {name!r}")
        getattr(learner, name)(*args)
