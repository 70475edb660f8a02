"""LoRA through ``peft``: low-rank adapters trained in place of the model's weights.

Owns putting adapters into a model
(``apply``: peft's layers replace the targeted linear layers in place, the base weights are
frozen), the merged weights the engines load (``merged``), the reference policy as the base model
with the adapters switched off (``adapters_off``), and the adapter's files: a checkpoint's
``adapter_config.json`` + ``adapter_model.safetensors`` in peft's own format (``save_adapter``),
and a merged Hugging Face model directory made from them (``merge_adapter_dir``, which
``agentrl eval`` and ``agentrl export`` use). The only module of agentrl that imports peft.

The merge: for each adapted layer, ``W + (alpha / rank) * B @ A``, computed in float32 (or
float64 for float64 weights) and cast to ``W``'s dtype (docs/gpu.md#lora).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agentrl.errors import ConfigError, ModelLoadError, first_line
from agentrl.learner.config import ALL_LINEAR, LoraConfig
from agentrl.models.files import readable

__all__ = ["ALL_LINEAR", "Adapters", "LoraConfig", "adapters_off", "apply", "merged", "save_adapter"]

ADAPTER = "default"  # peft's name for the one adapter a run trains
CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
_PEFT_PREFIX = "base_model.model."  # how peft names a weight in its adapter file


@dataclass(frozen=True)
class Adapters:
    """What a model with adapters carries (as ``model.agentrl_lora``): its options and base."""

    config: LoraConfig
    base: str  # the base model's directory or hub name, recorded in the adapter's files
    targets: tuple[str, ...]  # the adapted modules, by name


def import_peft() -> Any:
    """peft (a one-line error when absent). peft imports accelerate, which imports DeepSpeed when
    installed: DeepSpeed is told the CPU first where no GPU is visible."""
    from agentrl.engines.loading import quiet_deepspeed_accelerator

    quiet_deepspeed_accelerator()
    try:
        import peft
    except ImportError as err:
        raise ConfigError(f"lora.rank > 0 needs peft: pip install 'agentrl[lora]' ({err})") from None
    return peft


def _peft_config(config: LoraConfig, targets: Any, base: str) -> Any:
    peft = import_peft()
    return peft.LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        bias="none",
        base_model_name_or_path=base,
    )


def apply(model: nn.Module, config: LoraConfig, base: str) -> nn.Module:
    """Put adapters into ``model`` in place (B = 0: the model computes what it did) and freeze the
    rest; returns ``model``. ``base`` is where the model was loaded from."""
    peft = import_peft()
    named = list(config.target_modules)
    if named != [ALL_LINEAR]:
        _check_targets(model, named)
    targets: str | list[str] = ALL_LINEAR if named == [ALL_LINEAR] else named
    local = Path(base).expanduser()
    base = str(local.resolve()) if local.is_dir() else base  # an adapter names its base from anywhere
    peft_config = _peft_config(config, targets, base)
    try:
        peft.inject_adapter_in_model(peft_config, model, adapter_name=ADAPTER)
    except ValueError as exc:
        raise ConfigError(f"lora.target_modules={config.target_modules}: {first_line(exc)}") from None
    adapted = tuple(name for name, module in model.named_modules() if _is_lora_layer(module))
    if not adapted:
        raise ConfigError(f"lora.target_modules={config.target_modules} matched no layer of the model")
    object.__setattr__(model, "agentrl_lora", Adapters(config, base, adapted))  # a plain attribute, not a module
    return model


def _check_targets(model: nn.Module, targets: list[str]) -> None:
    """Named targets must be linear layers, and not an output projection that shares its weight
    with the input embeddings (a merged adapter would change both): a one-line ``ConfigError``
    naming the layers that can be adapted."""
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    tied = head is not None and getattr(getattr(model, "config", None), "tie_word_embeddings", False)
    linear = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear) and m is not head}
    choices = f"layers that can be adapted: {', '.join(sorted(linear))}, or [all-linear]"
    for target in targets:
        if target == ALL_LINEAR:
            raise ConfigError(f"lora.target_modules={targets}: all-linear stands alone; {choices}")
        found = [m for n, m in model.named_modules() if n == target or n.endswith("." + target)]
        if not found:
            raise ConfigError(f"lora.target_modules: no layer is called {target!r}; {choices}")
        if head is not None and any(m is head for m in found) and tied:
            raise ConfigError(
                f"lora.target_modules: {target!r} shares its weight with the input embeddings (tie_word_embeddings), "
                f"so a merged adapter would change both; {choices}"
            )
        if any(not isinstance(m, nn.Linear) for m in found):
            kind = type(next(m for m in found if not isinstance(m, nn.Linear))).__name__
            raise ConfigError(f"lora.target_modules: {target!r} is a {kind}, not a linear layer; {choices}")


def adapters_of(model: nn.Module) -> Adapters | None:
    """The adapters ``apply`` put into ``model``, or None."""
    found = getattr(model, "agentrl_lora", None)
    return found if isinstance(found, Adapters) else None


def _is_lora_layer(module: nn.Module) -> bool:
    return hasattr(module, "lora_A") and hasattr(module, "get_base_layer")


@contextlib.contextmanager
def adapters_off(model: nn.Module) -> Iterator[None]:
    """The base model: every adapter switched off and the model in eval mode, for the reference
    policy's logprobs (no second copy of the weights). Restores both on exit."""
    layers: list[Any] = [m for m in model.modules() if _is_lora_layer(m)]  # peft's LoRA layers
    training = model.training
    model.eval()
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)
        model.train(training)


def is_adapter_key(key: str) -> bool:
    return ".lora_" in key


def merged(state: Mapping[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """The plain model's weights from a state dict with adapters: ``base_layer`` weights with
    ``scaling * B @ A`` added, under the names the model had before ``apply``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if is_adapter_key(key):
            continue
        if ".base_layer." in key:
            prefix, leaf = key.split(".base_layer.", 1)
            if leaf == "weight":
                a, b = state[f"{prefix}.lora_A.{ADAPTER}.weight"], state[f"{prefix}.lora_B.{ADAPTER}.weight"]
                wide = torch.promote_types(value.dtype, torch.float32)  # bf16 merges in float32, float64 stays
                value = (value.to(wide) + scaling * (b.to(wide) @ a.to(wide))).to(value.dtype)
            key = f"{prefix}.{leaf}"
        out[key] = value
    return out


def adapter_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adapters' own weights in ``state`` (what a LoRA checkpoint keeps)."""
    return {k: v for k, v in state.items() if is_adapter_key(k)}


def save_adapter(adapters: Adapters, state: Mapping[str, torch.Tensor], folder: Path) -> None:
    """Write the adapter in peft's format (``PeftModel.from_pretrained(base, folder)`` loads it)."""
    from safetensors.torch import save_file

    peft_config = _peft_config(adapters.config, sorted(adapters.targets), adapters.base)  # by full name: exact
    peft_config.save_pretrained(str(folder))
    tensors = {
        _PEFT_PREFIX + key.replace(f".{ADAPTER}.", "."): value.detach().to("cpu").contiguous()
        for key, value in adapter_state(state).items()
    }
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def is_adapter_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file() and not (Path(path) / "config.json").is_file()


def base_of(adapter_dir: str | Path) -> str:
    """The base model an adapter directory was trained on."""
    try:
        base = json.loads((Path(adapter_dir) / CONFIG_FILE).read_text())["base_model_name_or_path"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{adapter_dir} is not a readable LoRA adapter ({first_line(exc)})") from None
    if not base:
        raise ModelLoadError(f"{adapter_dir}/{CONFIG_FILE} names no base model (base_model_name_or_path)")
    local = Path(str(base)).expanduser()
    if (local.is_absolute() or str(base).startswith(".")) and not (local / "config.json").is_file():
        raise ModelLoadError(
            f"{adapter_dir} was trained on the base model {base}, which is not there any more; put it back, "
            f"or set base_model_name_or_path in {Path(adapter_dir) / CONFIG_FILE} to where it is now"
        )
    return str(base)


def merge_adapter_dir(adapter_dir: str | Path, out: str | Path) -> Path:
    """A Hugging Face model directory at ``out``: the base model with the adapter at
    ``adapter_dir`` merged into its weights, and the tokenizer saved beside the adapter (or the
    base's). Returns ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    peft = import_peft()
    hf_logging.disable_progress_bar()  # agentrl says what it does; per-file bars are noise
    base = base_of(adapter_dir)
    if not (Path(adapter_dir) / WEIGHTS_FILE).is_file():
        raise ModelLoadError(f"{adapter_dir} has no {WEIGHTS_FILE}: the checkpoint is incomplete; use an earlier one")
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype="auto")
    except Exception as exc:
        raise ModelLoadError(f"cannot load {adapter_dir}'s base model {base!r}: {first_line(exc)}") from None
    try:
        model = peft.PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    except Exception as exc:
        raise ModelLoadError(f"cannot load the LoRA adapter at {adapter_dir}: {first_line(exc)}") from None
    out = Path(out)
    model.save_pretrained(out)
    readable(out)
    has_tokenizer = (Path(adapter_dir) / "tokenizer_config.json").is_file()
    AutoTokenizer.from_pretrained(str(adapter_dir) if has_tokenizer else base).save_pretrained(out)
    return out
