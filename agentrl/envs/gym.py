"""agentrl's environments as Gymnasium ids: ``gymnasium.make("agentrl/<name>-v0", **config)``.

Owns the registration of every environment of the ``agentrl.envs`` entry-point group with
Gymnasium's registry, nothing else (the spaces and the seeding rule live in
``agentrl.envs.base``, name resolution in ``agentrl.envs.registry``).

Registration is lazy: an id points at its entry point's ``"module:attr"`` string, which
Gymnasium imports only in ``gymnasium.make``; keyword arguments of ``make`` go to the
environment's constructor. ``make`` adds ``PassiveEnvChecker`` and ``OrderEnforcing`` as for
any id, and ``TimeLimit`` when given ``max_episode_steps`` (no id sets one: the turn budget is
the environment's own config, ``rollout_spec.max_turns``).

When registration runs: Gymnasium 1.0 removed the plugin loader that read the ``gymnasium.envs``
entry-point group on ``import gymnasium``, so importing this module registers the ids, and
``agentrl.envs`` imports it. Either ``import agentrl.envs`` before ``gymnasium.make``, or name
the module in the id, Gymnasium's own form for this: ``gymnasium.make("agentrl.envs.gym:agentrl/math-v0")``.
"""

from __future__ import annotations

import warnings

import gymnasium
from gymnasium.envs.registration import register, registry

from agentrl.envs.registry import EnvEntry, usable

NAMESPACE = "agentrl"
VERSION = 0


def gym_id(name: str) -> str:
    """The Gymnasium id of agentrl environment ``name``."""
    return f"{NAMESPACE}/{name}-v{VERSION}"


def register_envs() -> list[str]:
    """Register one Gymnasium id per installed agentrl environment; return the ids.

    Idempotent: an id already registered for the same entry point is left alone. A name
    Gymnasium cannot use in an id is skipped with a warning.
    """
    ids = []
    for name, entry in usable().items():
        env_id, target = gym_id(name), _target(entry)
        known = registry.get(env_id)
        if known is None or known.entry_point != target:
            registry.pop(env_id, None)
            try:
                register(id=env_id, entry_point=target)
            except gymnasium.error.Error as exc:
                warnings.warn(f"agentrl environment {name!r} has no Gymnasium id: {exc}", stacklevel=2)
                continue
        ids.append(env_id)
    return ids


def _target(entry: EnvEntry) -> str:
    return entry.target.split("[", 1)[0].strip()  # an entry point's value without its [extras]


# A name two packages claim is left out of ``entries()`` (with a warning): it gets no id either.
register_envs()
