"""Learners: turn token batches into weight updates (``TorchLearner`` in one process,
``DeepSpeedLearner`` over torch.distributed ranks); ``make`` builds the one a config names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentrl.learner.base import Learner
from agentrl.learner.config import LearnerConfig
from agentrl.learner.torch_learner import TorchLearner

if TYPE_CHECKING:
    from torch import nn

    from agentrl.algos.base import Algorithm

__all__ = ["Learner", "LearnerConfig", "TorchLearner", "make", "weights_dtype"]


def make(model: nn.Module, algorithm: Algorithm, config: LearnerConfig) -> TorchLearner:
    """The learner ``config.backend`` names, training ``model`` with ``algorithm``."""
    if config.backend == "deepspeed":  # imported only when asked for: it imports deepspeed
        from agentrl.learner.deepspeed_learner import DeepSpeedLearner

        return DeepSpeedLearner(model, algorithm, config)
    return TorchLearner(model, algorithm, config)


def weights_dtype(config: LearnerConfig) -> str:
    """The dtype to load the trained model in: float32 for DeepSpeed (its step's finite check
    needs it), else the device's default."""
    return "float32" if config.backend == "deepspeed" else "auto"
