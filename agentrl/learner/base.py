"""The learner interface that every backend implements (plain PyTorch now, DeepSpeed later).

Owns the contract only: ``train_step(batch) -> metrics`` takes a ``TokenBatch`` whose
rewards and masks are set and returns flat, namespaced float metrics; the weights for the
inference engine come from ``policy_state()``; checkpoints from ``state_dict()``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from agentrl.batch import TokenBatch


class Learner(Protocol):
    step: int

    def train_step(self, batch: TokenBatch) -> dict[str, float]: ...

    def policy_state(self) -> dict[str, torch.Tensor]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
