"""The files of a model directory agentrl writes (checkpoints, exports, merged adapters).

Owns ``readable``: safetensors writes weights with mode 0600, so a model saved for others (an
export, a checkpoint on a shared machine) would list its weights but not let them be read; the
files get the permissions the process's umask gives every other file.
"""

from __future__ import annotations

import os
from pathlib import Path


def readable(folder: Path) -> None:
    """Every file under ``folder`` at ``0666 & ~umask``."""
    umask = os.umask(0)
    os.umask(umask)
    for file in folder.rglob("*"):
        if file.is_file():
            file.chmod(0o666 & ~umask)
