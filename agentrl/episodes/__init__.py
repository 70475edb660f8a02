"""The episode store: every episode of a run or an evaluation, with what the learner computed.

``store`` owns the files (``EpisodeWriter``, ``EpisodeStore``, ``rewind``); ``records`` owns one
episode's stored form; ``keep`` writes one step's episodes. ``agentrl view`` and ``agentrl show``
read a store; docs/episodes.md describes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrl.episodes.records import Trace, per_trajectory, records
from agentrl.episodes.store import FOLDER, EpisodeStore, EpisodeWriter, rewind
from agentrl.types import Trajectory

__all__ = ["FOLDER", "EpisodeStore", "EpisodeWriter", "keep", "records", "rewind"]


def keep(
    folder: str | Path,
    trajectories: list[Trajectory],
    tokenizer: Any,
    *,
    step: int,
    split: str,
    trace: Trace | None = None,
    source_rows: list[int] | None = None,
) -> int:
    """Store ``trajectories`` as step ``step``'s ``split`` in the store at ``folder``, each with
    the learner's ``trace`` row for it (``source_rows[r]``: the trajectory of the batch's row
    ``r``); returns the bytes written."""
    learner = per_trajectory(len(trajectories), trace, source_rows) if trace is not None else None
    stored = records(trajectories, tokenizer, step=step, split=split, learner=learner)
    return EpisodeWriter(folder).write(step, split, stored)
