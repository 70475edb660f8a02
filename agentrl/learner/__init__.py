"""Learners: turn token batches into weight updates (``TorchLearner`` now; DeepSpeed later)."""

from agentrl.learner.base import Learner
from agentrl.learner.config import LearnerConfig
from agentrl.learner.torch_learner import TorchLearner

__all__ = ["Learner", "LearnerConfig", "TorchLearner"]
