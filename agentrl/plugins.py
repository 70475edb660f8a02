"""Loading a ``"package.module:attr"`` string: the one loader every registry shares.

Owns importing the module and fetching the attribute, with one-line errors in one style
(``cannot load <what>: <reason>``). The current directory is searched after the installed
packages, so ``--env my_envs:Echo`` finds ``./my_envs.py`` from the ``agentrl`` script too
(``python -m`` puts the current directory on ``sys.path``; a console script does not). Knows
nothing about what the object is for: the caller names it and says what class it must be.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from agentrl.errors import AgentRLError, UnknownNameError, first_line


def is_path(name: str) -> bool:
    """Whether ``name`` is a ``"module:attr"`` path rather than a registered name."""
    return ":" in name


def load_class(target: str, base: type, what: str) -> Any:
    """The subclass of ``base`` at ``target`` (``"module:attr"``, the attr may be dotted).

    ``what`` names it in errors, e.g. ``"environment 'my_envs:Echo'"``. Typed ``Any`` so that an
    abstract ``base`` (``Env``) is accepted; callers annotate what they get.
    """
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UnknownNameError(f"cannot load {what}: expected module:attr, e.g. my_envs:Echo")
    _search_current_directory()
    try:
        obj: object = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
            raise AgentRLError(f"cannot load {what}: importing {module_name} failed: {first_line(exc)}") from None
        raise UnknownNameError(
            f"cannot load {what}: no module named {exc.name!r} in the installed packages or the current directory"
        ) from None
    except Exception as exc:  # the plugin's own code failed; the user needs its first line, not our stack
        raise AgentRLError(f"cannot load {what}: importing {module_name} failed: {first_line(exc)}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UnknownNameError(f"cannot load {what}: {module_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise AgentRLError(f"cannot load {what}: {obj!r} is not a subclass of {base.__module__}.{base.__qualname__}")
    return obj


def _search_current_directory() -> None:
    cwd = os.getcwd()
    if not any(os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.append(cwd)  # last, so a local file never shadows an installed package
