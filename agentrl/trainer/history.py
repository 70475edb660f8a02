"""A run's history on disk: ``metrics.jsonl`` and ``episodes/``, kept true across a kill.

Owns cutting a run's history back to a checkpoint (``agentrl.curves`` reads ``metrics.jsonl``).
A run killed after its last checkpoint has logged steps the resumed run will take again;
``rewind`` removes them (and their episodes, ``agentrl.episodes.rewind``) first, so that after any number of
kills and resumes the history holds exactly one line per step, each from the run whose
weights went on. Writing the history is ``agentrl.trainer.logging``'s; this module must not
touch checkpoints.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentrl import episodes
from agentrl.curves import METRICS, parse


def rewind(run_dir: Path, step: int | None) -> int:
    """Cut the history of ``run_dir`` back to the checkpoint at ``step`` (None: there is no
    checkpoint, and the run starts afresh). Returns how many metric lines were removed.

    Keeps the lines of steps ``<= step`` (the first of each, should a step appear twice) and
    the stored episodes of those steps; removes the rest. The new ``metrics.jsonl`` is
    written beside the old one and renamed over it, so a kill during the rewind leaves one
    or the other, never a mix.
    """
    removed = 0
    path = run_dir / METRICS
    if path.exists():
        kept: list[str] = []
        seen: set[float] = set()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            row = parse(line)
            if row is not None and step is not None and row["step"] <= step and row["step"] not in seen:
                seen.add(row["step"])
                kept.append(line)
            elif line.strip():
                removed += 1
        if removed:
            tmp = path.with_suffix(".jsonl.tmp")
            with tmp.open("w", encoding="utf-8") as handle:
                handle.write("".join(f"{line}\n" for line in kept))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
    episodes.rewind(run_dir / episodes.FOLDER, step)
    return removed
