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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from agentrl.batch import TokenBatch
from agentrl.learner import LearnerBackend
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


def join(backend: LearnerBackend, timeout_min: float) -> None:
    """Join the launched run's process group (once), on this rank's own GPU when there are GPUs:
    through the learner backend's own way when it has one, else torch's (gloo; NCCL for GPU
    tensors). A collective that waits longer than ``timeout_min`` fails."""
    if world_size() == 1 or dist.is_initialized():
        return
    if torch.cuda.is_available():  # before any CUDA tensor: each rank its own device
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if backend.join is not None:
        backend.join(timeout_min)
        return
    group = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(group, timeout=timedelta(minutes=timeout_min))


def shared(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (other ranks pass None)."""
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@dataclass(frozen=True)
class Call:
    """A learner call rank 0 makes, which every other learner rank repeats (``close`` ends them)."""

    method: str  # one of CALLS, or close
    args: tuple[Any, ...] = ()


class LeaderLearner:
    """Rank 0's learner: every call is broadcast to the other ranks before it runs here (each
    is collective: ZeRO reduces gradients, gathers weights and writes shards across ranks).
    Only these calls exist: one that ran on rank 0 alone would leave the others waiting."""

    def __init__(self, learner: Learner):
        self.inner = learner

    @property
    def model(self) -> Any:
        """Rank 0's model (its configuration and ``save_pretrained``; weights come from ``policy_state``)."""
        return self.inner.model

    @property
    def step(self) -> int:
        return self.inner.step

    @property
    def lora(self) -> Any:
        """Rank 0's LoRA adapters (``agentrl.learner.lora.Adapters``), or None."""
        return getattr(self.inner, "lora", None)

    def _call(self, method: str, *args: Any) -> Any:
        shared(Call(method, args))
        return getattr(self.inner, method)(*args)

    def train_step(self, batch: TokenBatch, trace: bool = False) -> dict[str, float]:
        return dict(self._call("train_step", batch.to("cpu"), trace))  # pickled for the broadcast

    @property
    def last_trace(self) -> list[dict[str, list[float]] | None] | None:
        return self.inner.last_trace

    def policy_state(self) -> dict[str, torch.Tensor]:
        return dict(self._call("policy_state"))

    def save(self, folder: Path) -> None:
        self._call("save", folder)

    def load(self, folder: Path) -> None:
        self._call("load", folder)

    def close(self) -> None:
        """Release the followers: they return from ``follow``."""
        shared(Call("close"))
        self.inner.close()


def follow(learner: Learner) -> None:
    """A learner rank other than 0: run rank 0's learner calls on ``learner`` until it closes."""
    while True:
        call: Call = shared(None)
        if call.method == "close":
            learner.close()
            return
        if call.method not in CALLS:
            raise RuntimeError(f"rank {rank()}: rank 0 sent an unknown learner call {call.method!r}")
        getattr(learner, call.method)(*call.args)
