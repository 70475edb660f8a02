"""Weights on their way from the learner to a rollout engine: a latest-wins mailbox.

Owns the hand-over between the two sides of asynchronous training. The learner publishes
a snapshot of its policy with a version number (a copy: the learner goes on updating its
own tensors in place); the rollout side takes the newest snapshot it has not loaded yet.
Older snapshots that were never taken are simply replaced, so the engine never loads a
version it has already passed. Knows nothing of engines, learners or tensors' meaning.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import torch


class WeightMailbox:
    """Thread-safe, one slot: ``publish`` overwrites, ``take_newer`` reads without emptying."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._state: dict[str, torch.Tensor] | None = None
        self.version = -1

    def publish(self, state: Mapping[str, Any], version: int) -> None:
        """Store a copy of ``state`` as ``version`` and wake a waiting reader."""
        snapshot = {k: v.detach().clone() for k, v in state.items()}
        with self._cond:
            if version <= self.version:
                raise ValueError(f"weights version {version} published after version {self.version}")
            self._state, self.version = snapshot, version
            self._cond.notify_all()

    def take_newer(self, than: int) -> tuple[dict[str, torch.Tensor], int] | None:
        """The newest snapshot if its version is above ``than``, else None."""
        with self._cond:
            if self._state is None or self.version <= than:
                return None
            return self._state, self.version

    def wait_newer(self, than: int, timeout: float) -> bool:
        """Block until a version above ``than`` is published or ``timeout`` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self.version > than, timeout=timeout)

    def wake(self) -> None:
        """Wake every waiting reader (to let it see a stop request)."""
        with self._cond:
            self._cond.notify_all()
