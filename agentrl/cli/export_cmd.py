"""``agentrl export CHECKPOINT --out DIR``: a checkpoint as a plain Hugging Face model directory.

A checkpoint of a run that trained every weight already holds one (its ``config.json``, weights
and tokenizer), and export copies those files without the resume state (``learner.pt``,
``rng.pt``, ``trainer.json``, ZeRO shards). A LoRA checkpoint holds an adapter: export loads its
base model, merges the adapter into the weights (peft's ``merge_and_unload``) and writes the
result, which ``transformers``, vLLM or ``agentrl eval`` load as any model. A run folder means its
last checkpoint. ``DIR`` must not exist or be empty; it is written under ``DIR.tmp`` and renamed
when complete, so a failure leaves no half-written model.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from agentrl.errors import AgentRLError, ModelLoadError
from agentrl.models.files import readable
from agentrl.models.names import check_model_name, run_model


def register(commands: Any) -> None:
    p = commands.add_parser(
        "export", help="write a checkpoint as a Hugging Face model directory (LoRA merged)", description=__doc__
    )
    p.add_argument("checkpoint", help="a checkpoint folder (runs/<name>/checkpoints/step-N) or a run folder")
    p.add_argument("--out", required=True, help="the model directory to write (must not exist, or be empty)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_model_name(args.checkpoint, "checkpoint")
    source = Path(run_model(args.checkpoint, "checkpoint") or args.checkpoint)
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AgentRLError(f"--out {out} exists and is not an empty folder; choose a new one")
    print(f"exporting {source} to {out}", flush=True)
    export(source, out)
    print(f"wrote {out}: load it with --model {out}")
    return 0


def export(source: Path, out: Path) -> Path:
    """Write the model of checkpoint ``source`` to ``out`` (see the module docstring)."""
    from agentrl.learner import lora
    from agentrl.trainer.checkpoint import RESUME_STATE

    adapter = lora.is_adapter_dir(source)
    if not adapter and not (source / "config.json").is_file():
        raise ModelLoadError(f"{source} is neither a model directory nor a LoRA checkpoint (no config.json)")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        if adapter:
            lora.merge_adapter_dir(source, tmp)
        else:
            shutil.copytree(source, tmp, ignore=lambda _, names: [n for n in names if n in RESUME_STATE])
            readable(tmp)
        if out.exists():
            out.rmdir()  # empty: checked
        tmp.rename(out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AgentRLError(f"writing {out} failed ({exc.strerror or exc}); nothing was left there") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
