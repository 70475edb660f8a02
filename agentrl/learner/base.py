"""The learner interface that every backend implements (plain PyTorch now, DeepSpeed later).

Owns the contract only: ``train_step(batch) -> metrics`` takes a ``TokenBatch`` whose rewards
and masks are set and returns flat, namespaced float metrics; the weights for the inference
engine come from ``policy_state()`` (whole, under the plain model's names, LoRA merged); a
checkpoint folder is written by ``save(folder)`` and read back by ``load(folder)``; ``close()``
releases what the learner holds beyond its own process (other ranks).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from agentrl.batch import TokenBatch


class Learner(Protocol):
    @property
    def step(self) -> int:
        """Rollout batches trained on."""
        ...

    @property
    def model(self) -> Any:
        """The policy (a Hugging Face model: its configuration and ``save_pretrained``)."""
        ...

    @property
    def lora(self) -> Any:
        """The LoRA adapters trained (``agentrl.learner.lora.Adapters``; their ``save`` writes the
        adapter, the checkpoint's policy), or None when every weight trains."""
        ...

    def train_step(self, batch: TokenBatch, trace: bool = False) -> dict[str, float]:
        """One rollout batch's update; with ``trace``, ``last_trace`` then holds, per row of
        ``batch``, what the update computed for each token (``agentrl.learner.trace``)."""
        ...

    @property
    def last_trace(self) -> list[dict[str, list[float]] | None] | None:
        """The token trace of the last ``train_step(..., trace=True)``, or None."""
        ...

    def policy_state(self) -> dict[str, torch.Tensor]: ...

    def save(self, folder: Path) -> None: ...

    def load(self, folder: Path) -> None: ...

    def close(self) -> None: ...
