"""The training loops (synchronous and asynchronous), their config, checkpoints and run directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentrl.trainer.config import TrainConfig
    from agentrl.trainer.sync import Trainer


def make_trainer(config: TrainConfig, run_dir: Path) -> Trainer:
    """The training loop for ``config``: one loop, whose batch source and weight sink are the
    asynchronous stream's when ``asynchronous.enabled`` (``agentrl.trainer.sources``)."""
    from agentrl.trainer.sync import Trainer

    return Trainer(config, run_dir)
