"""Trajectories on disk: JSONL, one trajectory (normally one whole episode) per line.

Owns the file format only. Lines are written and flushed one at a time, so a run that is
killed leaves every finished episode readable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from agentrl.types import Trajectory


class TrajectoryWriter:
    """Appends trajectories to a JSONL file as they finish."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("a", encoding="utf-8")

    def write(self, trajectories: Iterable[Trajectory]) -> None:
        for trajectory in trajectories:
            self._file.write(json.dumps(trajectory.to_dict(), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_trajectories(path: str | Path, trajectories: Iterable[Trajectory]) -> None:
    with TrajectoryWriter(path) as writer:
        writer.write(trajectories)


def read_trajectories(path: str | Path) -> Iterator[Trajectory]:
    with Path(path).open(encoding="utf-8") as file:
        for line in file:
            if line.strip():
                yield Trajectory.from_dict(json.loads(line))
