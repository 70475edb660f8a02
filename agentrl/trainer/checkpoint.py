"""Checkpoints: written atomically, found again on resume.

Owns the on-disk layout of ``runs/<name>/checkpoints/``: one folder per step
(``step-000010/``) holding the policy as a Hugging Face model directory, or with LoRA as a peft
adapter (either way ``agentrl eval --model runs/<name>/checkpoints/last`` works), what the learner writes to resume (its
``save``: ``learner.pt`` with the model, optimizer, value head and the algorithm's state such
as a replay buffer; the DeepSpeed learner adds each rank's ZeRO shards under ``deepspeed/``),
``rng.pt`` and ``trainer.json``; and ``last``, a link to the newest complete one.

Atomicity: a checkpoint is written into ``step-N.tmp/`` and renamed to ``step-N/`` only when
complete, then ``last`` is replaced by a rename. A kill or a full disk during the write
leaves the previous checkpoint and ``last`` untouched; the partial folder is removed.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from pathlib import Path
from typing import Any

import torch

from agentrl.errors import CheckpointError
from agentrl.models.files import readable

__all__ = ["CheckpointError", "latest", "load", "save"]


# what a checkpoint holds besides the policy, for resuming only (agentrl export leaves it out)
RESUME_STATE = ("learner.pt", "rng.pt", "trainer.json", "deepspeed")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:06d}"


def save(
    root: Path,
    step: int,
    *,
    learner: Any,
    tokenizer: Any,
    trainer_state: dict[str, Any],
    keep: int,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = step_dir(root, step), root / f"step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        if learner.lora is None:  # with LoRA, learner.save writes the adapter: the checkpoint's policy
            learner.model.save_pretrained(tmp, state_dict=learner.policy_state())  # whole weights, also under ZeRO-3
        tokenizer.save_pretrained(tmp)
        learner.save(tmp)
        torch.save(rng_state(), tmp / "rng.pt")
        (tmp / "trainer.json").write_text(json.dumps(trainer_state, indent=2) + "\n")
        readable(tmp)  # safetensors writes weights as 0600
        _fsync_dir(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        link = root / "last.tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(final.name)
        os.replace(link, root / "last")
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        last = latest(root)
        kept = f"the last complete checkpoint is {last.name}" if last else "no earlier checkpoint exists"
        raise CheckpointError(f"writing the step-{step} checkpoint failed ({exc.strerror or exc}); {kept}") from None
    _prune(root, keep)
    return final


def latest(root: Path) -> Path | None:
    """The newest complete checkpoint (``last``), or None."""
    link = root / "last"
    if link.exists():
        return link.resolve()
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")) if root.exists() else []
    return done[-1] if done else None


def latest_step(root: Path) -> int | None:
    """The step of the newest complete checkpoint under ``root``, or None (none, or unreadable:
    resuming reports that)."""
    path = latest(root)
    try:
        return int(json.loads((path / "trainer.json").read_text())["step"]) if path else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(rng_state, trainer_state)`` of the checkpoint at ``path`` (the learner reads its own
    files: ``learner.load(path)``)."""
    try:
        rng = torch.load(path / "rng.pt", weights_only=False)
        trainer_state = json.loads((path / "trainer.json").read_text())
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    return rng, trainer_state


def damaged_hint(path: Path) -> str:
    """What to do when the checkpoint at ``path`` cannot be read: the earlier ones, and how to
    resume from the newest of them."""
    earlier = sorted(
        p.name for p in path.parent.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and p.name < path.name
    )
    if not earlier:
        return f"{path.name} is damaged and no earlier checkpoint is kept"
    return (
        f"{path.name} is damaged; to resume from {earlier[-1]} (kept: {', '.join(earlier)}), move {path} "
        "out of the checkpoints folder and resume again"
    )


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    for file in path.rglob("*"):
        if not file.is_file():
            continue
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
