"""Weights on their way from the learner to a rollout engine: a latest-wins mailbox.

Owns the hand-over between the two sides of asynchronous training. The learner publishes
a snapshot of its policy with a version number (a copy: the learner goes on updating its
own tensors in place); the rollout side takes the newest snapshot it has not loaded yet.
Older snapshots that were never taken are simply replaced, so the engine never loads a
version it has already passed. ``WeightMailbox`` serves a rollout thread in the learner's
process, ``SharedWeightMailbox`` a rollout worker in its own process. Knows nothing of
engines, learners or tensors' meaning.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import torch


class Mailbox(Protocol):
    """What the rollout side reads weights from."""

    def take_newer(self, than: int) -> tuple[dict[str, torch.Tensor], int] | None: ...

    def wait_newer(self, than: int, timeout: float) -> bool: ...

    def wake(self) -> None: ...


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


class SharedWeightMailbox:
    """``WeightMailbox``'s interface across processes: one slot of shared-memory tensors.

    Built in the learner's process from a template of the policy's tensors (names, shapes,
    dtypes); pickled into a spawned rollout process, it refers to the same memory. ``publish``
    copies under a process lock; ``take_newer`` returns a private copy taken under the same
    lock, so a reader never sees a half-written version. Readers poll (``wait_newer``)."""

    def __init__(self, template: Mapping[str, torch.Tensor]) -> None:
        import torch.multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._lock = ctx.Lock()
        self._version = ctx.Value("q", -1, lock=False)
        self._state = {k: torch.empty_like(v.detach(), device="cpu").share_memory_() for k, v in template.items()}

    def publish(self, state: Mapping[str, Any], version: int) -> None:
        with self._lock:
            if version <= self._version.value:
                raise ValueError(f"weights version {version} published after version {self._version.value}")
            for k, v in state.items():
                self._state[k].copy_(v.detach())
            self._version.value = version

    def take_newer(self, than: int) -> tuple[dict[str, torch.Tensor], int] | None:
        with self._lock:
            if self._version.value <= than:
                return None
            return {k: v.clone() for k, v in self._state.items()}, int(self._version.value)

    def wait_newer(self, than: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._version.value <= than:
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.005, max(deadline - time.monotonic(), 0.0)))
        return True

    def wake(self) -> None:
        """Readers poll; nothing to wake."""
