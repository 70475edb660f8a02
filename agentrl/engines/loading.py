"""Load a causal LM and its tokenizer from a local directory or a hub name, with clear errors.

Owns device / dtype resolution and the checks that turn a wrong path into one line
("... is not a model directory") instead of a transformers traceback; also what every engine
reads from a loaded model (its end-of-sequence ids). Nothing here samples.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from agentrl.errors import ModelLoadError, first_line  # first_line: also imported from here by engines


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: a GPU when one is visible, else the CPU. A GPU that is not there is a one-line
    ``ModelLoadError`` here, not a traceback from the first tensor sent to it."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ModelLoadError(f"bad device {device!r}: {exc}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ModelLoadError(
                f"device {device}: no CUDA GPU is visible (torch {torch.__version__}, {build}); "
                "use --device cpu, or install a CUDA build of torch on a GPU machine"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ModelLoadError(f"device {device}: only {torch.cuda.device_count()} GPU(s) are visible")
    return resolved


def quiet_deepspeed_accelerator() -> None:
    """Tell DeepSpeed it runs on the CPU when no GPU is visible, before anything imports it
    (transformers through accelerate, peft, the DeepSpeed learner); unasked, it warns that it
    guessed. Where DS_ACCELERATOR is set already, that stands."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in table:
        raise ModelLoadError(f"bad dtype {dtype!r}; choose one of auto, {', '.join(table)}")
    return table[dtype]


def load_tokenizer(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    _check_location(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:
        raise ModelLoadError(f"cannot load a tokenizer from {name_or_path!r}: {first_line(exc)}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise ModelLoadError(f"the tokenizer of {name_or_path!r} has no chat template; agentrl needs one")
    return tokenizer


def load_model(name_or_path: str, device: str = "auto", dtype: str = "auto") -> torch.nn.Module:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # agentrl shows its own progress; per-load bars are noise
    quiet_deepspeed_accelerator()
    _check_location(name_or_path)
    torch_device = resolve_device(device)
    try:
        model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=resolve_dtype(dtype, torch_device))
    except Exception as exc:
        raise ModelLoadError(f"cannot load a causal language model from {name_or_path!r}: {first_line(exc)}") from None
    return model.to(torch_device).eval()  # type: ignore[arg-type]  # transformers types .to narrowly


def _check_location(name_or_path: str) -> None:
    path = Path(name_or_path).expanduser()
    looks_local = path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if path.is_file():
        raise ModelLoadError(f"{name_or_path} is a file, not a model directory (the folder that holds config.json)")
    if looks_local and not path.is_dir():
        raise ModelLoadError(f"model directory {name_or_path} does not exist")
    if path.is_dir() and not (path / "config.json").is_file():
        if (path / "adapter_config.json").is_file():
            raise ModelLoadError(
                f"{name_or_path} is a LoRA adapter, not a whole model: agentrl eval takes it as it is; "
                f"elsewhere, merge it into its base first (agentrl export {name_or_path} --out DIR)"
            )
        raise ModelLoadError(f"{name_or_path} is not a Hugging Face model directory (no config.json)")


def eos_token_ids(model_eos: int | list[int] | None, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids: the model's (``eos_token_id`` of its generation config, one id or a
    list) and the tokenizer's."""
    ids = set(model_eos if isinstance(model_eos, list) else [model_eos] if model_eos is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)
