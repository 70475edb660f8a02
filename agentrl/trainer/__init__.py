"""The training loops (synchronous and asynchronous), their config, checkpoints and run directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentrl.trainer.config import TrainConfig
    from agentrl.trainer.sync import Trainer


def make_trainer(config: TrainConfig, run_dir: Path) -> Trainer:
    """The loop ``config`` asks for: asynchronous when ``asynchronous.enabled``, else synchronous."""
    from agentrl.trainer.async_loop import AsyncTrainer
    from agentrl.trainer.sync import Trainer

    return (AsyncTrainer if config.asynchronous.enabled else Trainer)(config, run_dir)
