"""The recipes that ship with agentrl: one YAML file of training options per environment and
algorithm pairing that was tuned and measured (``<env>_<algo>.yaml``), installed with the
package and read by name (``agentrl train --config tool_use_grpo``) as well as by path. In a
clone, ``configs/`` points here.

Owns finding a recipe (``path``), listing them with their first line of description
(``described``), and the one-line error that names them all for an unknown name.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from agentrl.errors import ConfigError, did_you_mean

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    return sorted(path.stem for path in HERE.glob("*.yaml"))


def is_name(text: str) -> bool:
    """Whether ``text`` can only be a recipe's name (no folder, no ``.yaml``)."""
    return re.fullmatch(r"[A-Za-z0-9_.-]+", text) is not None and not text.endswith((".yaml", ".yml"))


def path(name: str) -> Path:
    """The recipe ``name``; a ``ConfigError`` naming every recipe when there is none."""
    found = HERE / f"{name}.yaml"
    if not found.is_file():
        hint = did_you_mean(name, names())
        recipes = ", ".join(names())
        raise ConfigError(f"no recipe or file named {name!r}{hint}; recipes: {recipes} (agentrl configs list)")
    return found


def for_env(env: str) -> list[str]:
    """The recipes that train ``env``."""
    return [name for name in names() if _options(name).get("env") == env]


def _options(name: str) -> dict:
    return yaml.safe_load(path(name).read_text(encoding="utf-8")) or {}


def described() -> list[tuple[str, str]]:
    """Each recipe's name and what it trains: environment, algorithm and steps, then its first
    comment line that is not the command that runs it."""
    rows = []
    for name in names():
        text, options = path(name).read_text(encoding="utf-8"), _options(name)
        what = f"{options.get('env', '?')} with {options.get('algo', '?')}, {options.get('steps', '?')} steps"
        about = [line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")]
        first = next((a for a in about if a and not a.startswith("agentrl ")), "")
        first = first if len(first) <= 80 else first[:77].rsplit(" ", 1)[0] + " ..."
        rows.append((name, f"{what}: {first}" if first else what))
    return rows
