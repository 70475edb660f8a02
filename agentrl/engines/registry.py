"""The engine backend registry: one name, one ``EngineBackend``.

Owns name -> backend resolution and what a backend tells the rest of agentrl before any
engine is built: its options (the ``engine.<name>`` config section) and its capabilities,
which the trainer reads instead of testing a backend's name. A duplicate name raises at
registration; an unknown name lists the known ones.

The built-in backends are declared in ``agentrl.engines.backends``, imported on the first
lookup. Registering a backend imports none of its engine code: ``build`` does that when an
engine is made, so vllm stays an optional dependency.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agentrl.errors import UnknownNameError, did_you_mean

if TYPE_CHECKING:
    from agentrl.engines.base import Engine

BUILTIN = "agentrl.engines.backends"
COMMON = ("backend", "dtype", "auto")  # shared options and the auto choice; not available as backend names


@dataclass(frozen=True)
class EngineBackend:
    """A backend: its name, its options, how to build one, and what the trainer may do with it."""

    name: str
    description: str
    options: type[Any]  # a dataclass: the ``engine.<name>`` section, validated in its __post_init__
    build: Callable[..., Engine]  # (config: EngineConfig, path, tokenizer, *, device, seed) -> Engine
    # may be driven from a second thread of the process that built it (asynchronous.worker=thread)
    thread_safe: bool = True
    # asynchronous rollouts run it in a worker process of its own by default (asynchronous.worker=auto)
    wants_process: bool = False
    # it takes the first GPU its process sees: a worker on cuda:N is shown only GPU N and told cuda
    pins_device: bool = False
    # engine.backend=auto picks it when a GPU is visible and this module is installed (the fast one on GPUs)
    auto_on_gpu_with: str | None = None
    # engine.backend=auto picks it otherwise (exactly one backend says so)
    auto_fallback: bool = False
    # it loads the learner's whole weights from memory (update_weights), after every step; False for
    # an engine that serves fixed weights (a remote endpoint, say): it can evaluate, not be trained
    loads_weights: bool = True

    def __post_init__(self) -> None:
        if not self.name or not self.description:
            raise ValueError("an engine backend needs a name and a one-line description")
        if self.name in COMMON:
            raise ValueError(f"{self.name!r} is an option every engine shares; a backend cannot take that name")
        if not dataclasses.is_dataclass(self.options):
            raise ValueError(f"engine backend {self.name!r}: its options must be a dataclass")


_BACKENDS: dict[str, EngineBackend] = {}


def register(backend: EngineBackend) -> EngineBackend:
    """Add ``backend`` under its name; a name registered twice raises."""
    if backend.name in _BACKENDS:
        raise ValueError(f"engine backend {backend.name!r} is registered twice")
    _BACKENDS[backend.name] = backend
    return backend


def _registered() -> dict[str, EngineBackend]:
    importlib.import_module(BUILTIN)  # registers the built-in backends, once
    return _BACKENDS


def names() -> list[str]:
    return sorted(_registered())


def get(name: str) -> EngineBackend:
    backends = _registered()
    if name not in backends:
        hint = did_you_mean(name, names())
        raise UnknownNameError(f"unknown engine backend {name!r}{hint}; known: {', '.join(names())}")
    return backends[name]


def auto(gpu: bool | None = None, installed: Callable[[str], bool] | None = None) -> tuple[str, str]:
    """The backend ``engine.backend=auto`` means here, and why in a few words: the first backend
    (by name) that asks for a GPU when one is visible (``gpu``, default: torch sees CUDA) and its
    module is ``installed`` (default: importlib finds it, without importing it), else the fallback."""
    if gpu is None:
        import torch

        gpu = torch.cuda.is_available()
    installed = installed or (lambda module: importlib.util.find_spec(module) is not None)
    backends = [get(name) for name in names()]
    wanted = [b for b in backends if b.auto_on_gpu_with]
    for b in wanted:
        if gpu and installed(b.auto_on_gpu_with or ""):
            return b.name, f"auto: a GPU is visible and {b.auto_on_gpu_with} is installed"
    fallback = next(b for b in backends if b.auto_fallback)
    if not gpu:
        return fallback.name, "auto: no GPU is visible"
    missing = ", ".join(b.auto_on_gpu_with or "" for b in wanted)
    return fallback.name, f"auto: a GPU is visible but {missing or 'no GPU engine'} is not installed"
