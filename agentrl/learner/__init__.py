"""Learners: turn token batches into weight updates (``TorchLearner`` in one process,
``DeepSpeedLearner`` over torch.distributed ranks), and the registry of learner backends
(``learner.backend``): how each is built and what the launcher and trainer need to know of it.
Callers read a backend's fields, never its name. Importing this package does not import torch
(``Learner`` and ``TorchLearner`` load on first use), so the command line starts fast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentrl.errors import UnknownNameError
from agentrl.learner.config import LearnerConfig

if TYPE_CHECKING:
    from torch import nn

    from agentrl.algos.base import Algorithm
    from agentrl.learner.base import Learner
    from agentrl.learner.torch_learner import TorchLearner

__all__ = ["Learner", "LearnerBackend", "LearnerConfig", "TorchLearner", "backend", "data_parallel_names", "make"]


@dataclass(frozen=True)
class LearnerBackend:
    """A learner backend and what the run around it must do for it."""

    name: str
    build: Callable[[nn.Module, Algorithm, LearnerConfig], TorchLearner]
    # trains data-parallel over the ranks of a launched run (agentrl train --nproc N)
    data_parallel: bool = False
    # joins a launched run's process group its own way (given the timeout in minutes); None: torch's
    join: Callable[[float], None] | None = None


def __getattr__(name: str) -> Any:
    """``Learner`` and ``TorchLearner``, imported (with torch) when first asked for."""
    if name == "Learner":
        from agentrl.learner.base import Learner

        return Learner
    if name == "TorchLearner":
        from agentrl.learner.torch_learner import TorchLearner

        return TorchLearner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _torch(model: nn.Module, algorithm: Algorithm, config: LearnerConfig) -> TorchLearner:
    from agentrl.learner.torch_learner import TorchLearner

    return TorchLearner(model, algorithm, config)


def _deepspeed(model: nn.Module, algorithm: Algorithm, config: LearnerConfig) -> TorchLearner:
    from agentrl.learner.deepspeed_learner import DeepSpeedLearner  # imports deepspeed: only when asked for

    return DeepSpeedLearner(model, algorithm, config)


def _deepspeed_join(timeout_min: float) -> None:
    from agentrl.learner.deepspeed_learner import init_distributed

    init_distributed(timeout_min)


_BACKENDS = {
    "torch": LearnerBackend("torch", _torch),
    "deepspeed": LearnerBackend("deepspeed", _deepspeed, True, _deepspeed_join),
}


def backend(name: str) -> LearnerBackend:
    """The registered backend ``name`` (``learner.backend``)."""
    try:
        return _BACKENDS[name]
    except KeyError:
        raise UnknownNameError(f"unknown learner backend {name!r}; registered: {', '.join(_BACKENDS)}") from None


def data_parallel_names() -> list[str]:
    return [name for name, b in _BACKENDS.items() if b.data_parallel]


def make(model: nn.Module, algorithm: Algorithm, config: LearnerConfig) -> TorchLearner:
    """The learner ``config.backend`` names, training ``model`` with ``algorithm``."""
    return backend(config.backend).build(model, algorithm, config)
