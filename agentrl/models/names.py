"""Telling a model path on this machine from a Hugging Face hub name, before anything loads.

Owns ``check_model_name``: a ``--model`` that looks like a path (it starts with ``/``, ``./``,
``../`` or ``~``, has more than one ``/``, or its first part is a folder here, as ``runs/x``
with a ``runs/`` folder) and does not exist is a one-line ``ModelLoadError`` at once, naming
close matches, instead of a minute of retries against the hub for a typo. A name like
``org/model`` with no such local folder is left to the hub. Also owns ``run_model``: a run folder
given where a model is wanted means its last checkpoint. Imports nothing heavy.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from agentrl.errors import ModelLoadError


def looks_local(name: str) -> bool:
    """Whether ``name`` can only mean a path on this machine."""
    if name.startswith(("/", "./", "../", "~")) or name in (".", "..") or name.count("/") > 1:
        return True
    first, slash, _ = name.partition("/")
    return bool(slash) and Path(first).expanduser().is_dir()


def check_model_name(name: str | None, flag: str = "--model") -> None:
    """Nothing for the default (None), an existing path or a hub name; a one-line
    ``ModelLoadError`` for a path that does not exist."""
    if name is None or not looks_local(name):
        return
    path = Path(name).expanduser()
    if path.exists():
        return
    parent, hint = path.parent, ""
    if not parent.is_dir():
        hint = f"; {parent} does not exist either"
    else:
        entries = sorted(p.name for p in parent.iterdir() if not p.name.startswith("."))
        close = difflib.get_close_matches(path.name, entries, n=3, cutoff=0.5)
        if close:
            hint = f"; did you mean {' or '.join(str(parent / c) for c in close)}?"
        elif entries:
            hint = f"; {parent} holds {', '.join(entries[:5])}" + (", ..." if len(entries) > 5 else "")
    raise ModelLoadError(f"{flag} {name} does not exist (a local path, so the hub was not asked){hint}")


def run_model(name: str | None, flag: str = "--model") -> str | None:
    """``name``, or, when it is a run folder (a ``config.yaml``, no ``config.json``), the model
    directory of its last checkpoint: ``runs/x`` (or ``runs/x/checkpoints``) ->
    ``runs/x/checkpoints/last``. A run folder
    with no checkpoint yet is a one-line ``ModelLoadError``."""
    if name is None:
        return None
    path = Path(name).expanduser()
    if path.name == "checkpoints" and (path.parent / "config.yaml").is_file():
        path = path.parent  # a run's checkpoints folder: its last one too
    elif not (path / "config.yaml").is_file() or (path / "config.json").is_file():
        return name
    last = path / "checkpoints" / "last"
    if not last.is_dir():
        raise ModelLoadError(f"{flag} {name} is a run folder with no checkpoint yet ({last} does not exist)")
    if not (last / "config.json").is_file() and not (last / "adapter_config.json").is_file():  # a model, or LoRA
        raise ModelLoadError(
            f"{flag} {name}: its last checkpoint, {last.resolve().name}, holds neither a model (config.json) nor a "
            "LoRA adapter (adapter_config.json); it is damaged: give an earlier checkpoint folder"
        )
    return str(last)
