"""The folders ``agentrl view`` shows: runs and evaluations, each with its episode store.

Owns opening them (a folder that is not a run or eval folder with a store is one line of
``AgentRLError``), naming them (the folder's name; its parent's too where two share a name),
and their curves (the panels ``agentrl plot`` draws, from ``metrics.jsonl`` read as it reads it;
an evaluation's numbers from its ``metrics.json``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrl.curves import COUNTS, UNITS, panels, read_metrics
from agentrl.episodes import FOLDER, EpisodeStore
from agentrl.errors import AgentRLError, AgentRLWarning

GONE = "is gone (moved or deleted since the viewer started)"
WHAT = "a run folder (agentrl train: runs/<name>) or an eval folder (agentrl eval --output DIR)"


@dataclass
class Source:
    """One run or evaluation: its name in the page, its folder, what it is and its store."""

    name: str
    path: Path
    kind: str  # "run" (metrics.jsonl), "eval" (metrics.json) or "store" (only the episodes)
    store: EpisodeStore

    def curves(self) -> dict[str, Any]:
        """The panels of ``agentrl plot`` (a run), or the numbers of an evaluation, and a note on
        what is missing or was skipped."""
        if self.kind == "eval":
            return {"panels": [], "numbers": eval_numbers(self.path / "metrics.json"), "note": None}
        if not self.path.is_dir():
            return {
                "panels": [],
                "numbers": {},
                "note": f"{self.path} is gone (moved or deleted since the viewer started)",
            }
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rows = read_metrics(self.path)
        except AgentRLError as exc:
            return {"panels": [], "numbers": {}, "note": str(exc)}
        drawn = [
            {"name": name, "unit": UNITS[name], "counts": name in COUNTS, "series": series}
            for name, series in panels(rows).items()
        ]
        note = "; ".join(str(w.message) for w in caught) or None
        return {"panels": drawn, "numbers": {}, "note": note}

    def summary(self) -> dict[str, Any]:
        rows = self.store.rows()
        steps = {split: sorted({r["step"] for r in rows if r["split"] == split}) for split in ("train", "eval")}
        made_by = eval_made_by(self.path / "metrics.json") if self.kind == "eval" else {}
        gone = None if self.path.is_dir() else f"{self.path} {GONE}"
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "episodes": len(rows),
            "steps": steps,
            "made_by": made_by,
            "note": gone,
        }


def eval_numbers(path: Path) -> dict[str, float]:
    """The top-level numbers of an evaluation's ``metrics.json`` (none while it still runs)."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def eval_made_by(path: Path) -> dict[str, Any]:
    """What made an evaluation (model, environment, sampling, ...), from its ``metrics.json``."""
    try:
        made_by = json.loads(path.read_text(encoding="utf-8")).get("made_by")
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return made_by if isinstance(made_by, dict) else {}


def open_sources(dirs: list[str | Path]) -> list[Source]:
    """The folders ``dirs`` as sources, each named by its folder; one line of ``AgentRLError``
    for a folder that is missing, not a folder, or has no episode store."""
    if not dirs:
        raise AgentRLError(f"agentrl view needs {WHAT}")
    folders: list[Path] = []
    for given in dirs:
        path = Path(given).expanduser()
        if not path.exists():
            raise AgentRLError(f"{given}: no such folder; give {WHAT}")
        if not path.is_dir():
            raise AgentRLError(f"{given} is a file; give {WHAT}")
        if path.name == FOLDER and not (path / FOLDER).is_dir():
            path = path.parent  # the store itself given: the folder that holds it
        if not EpisodeStore(path).exists:
            if (path / FOLDER).is_dir():
                raise AgentRLError(f"{given} has an empty episode store (no step files in {path / FOLDER})")
            if kind_of(path) != "store":
                raise AgentRLError(
                    f"{given} has no episode store yet ({FOLDER}/): a run writes it as its first step "
                    "ends, an evaluation as it runs; one made before agentrl kept episodes has none"
                )
            raise AgentRLError(f"{given} has no episode store; give {WHAT}")
        missing = EpisodeStore(path).unindexed_files()
        if missing:
            warnings.warn(
                f"{given}: the episode store's index lacks the rows of {missing} step file(s), read from the files "
                "themselves (slower to start); agentrl train --resume writes the index again",
                AgentRLWarning,
                stacklevel=2,
            )
        if path.resolve() not in [f.resolve() for f in folders]:
            folders.append(path)
    names = unique_names(folders)
    return [Source(name, path, kind_of(path), EpisodeStore(path)) for name, path in zip(names, folders, strict=True)]


def kind_of(path: Path) -> str:
    if (path / "metrics.jsonl").is_file() or (path / "config.yaml").is_file():
        return "run"
    if (path / "metrics.json").is_file() or (path / "trajectories.jsonl").is_file():
        return "eval"
    return "store"


def unique_names(folders: list[Path]) -> list[str]:
    """Each folder's name, with its parent's (``runs2/a``) where two folders share a name, and a
    number after where even that is shared."""
    names = [f.name for f in folders]
    names = [f"{f.resolve().parent.name}/{f.name}" if names.count(f.name) > 1 else f.name for f in folders]
    return [f"{n}#{names[:i].count(n) + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]
