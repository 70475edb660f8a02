"""A split of generated tasks: the sequence behind every seeded task generator.

Owns the split names and their salts, the length, indexing and slicing, and the rule that
task ``i`` of a split is made from an RNG seeded by ``(seed, split, i)`` alone, so any slice
is reproducible without generating the rest. A generator subclasses ``GeneratedTasks`` and
says how one task is made (``make``). Any split name but ``train``, ``test`` and
``validation`` is an error, so a typo never evaluates silently on tasks of its own.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar, overload

from agentrl.tasks import TaskSourceError
from agentrl.types import Task


class GeneratedTasks(Sequence[Task]):
    """``size`` tasks of ``split``, made on access."""

    what: ClassVar[str] = "the task generator"  # in errors
    rng_prefix: ClassVar[str] = ""  # keeps each generator's draws its own
    salts: ClassVar[dict[str, int]] = {"train": 0, "test": 1, "validation": 2}

    def __init__(self, split: str, size: int, seed: int = 0):
        if split not in self.salts:
            raise TaskSourceError(f"unknown split {split!r} of {self.what}; valid splits: {', '.join(self.salts)}")
        self.split, self.size, self.seed = split, size, seed
        self._salt = self.salts[split]

    def make(self, index: int, rng: random.Random) -> Task:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.size

    @overload
    def __getitem__(self, index: int) -> Task: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Task]: ...
    def __getitem__(self, index: int | slice) -> Task | Sequence[Task]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        if not -self.size <= index < self.size:
            raise IndexError(index)
        index %= self.size
        return self.make(index, random.Random(f"{self.rng_prefix}{self.seed}/{self._salt}/{index}"))
