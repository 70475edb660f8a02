import functools
from importlib.metadata import EntryPoint

import pytest

from agentrl.envs import DuplicateEnvError, Env, check_env, describe, entries, load, make, names, registry
from agentrl.errors import AgentRLError, UnknownNameError
from agentrl_envs.math_tool import MathToolEnv


def test_builtins_register_through_entry_points():
    assert {"math", "math_tool"} <= set(names())
    assert entries()["math_tool"].package == "agentrl"
    assert entries()["math_tool"].target == "agentrl_envs.math_tool:MathToolEnv"
    assert load("math_tool") is MathToolEnv
    assert describe(MathToolEnv).startswith("Multi-turn math")


@pytest.mark.parametrize("name", names())
def test_check_env_on_every_registered_environment(name):
    log = check_env(functools.partial(make, name))
    assert any("async twins agree" in line for line in log)


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownNameError) as err:
        load("nope")
    message = str(err.value)
    assert "unknown environment 'nope'" in message and "math_tool" in message and "\n" not in message


def test_module_path_escape_hatch():
    assert load("agentrl_envs.math_tool:MathToolEnv") is MathToolEnv
    with pytest.raises(UnknownNameError):
        load("agentrl_envs.math_tool:Nope")
    with pytest.raises(AgentRLError, match="not a subclass"):
        load("agentrl_envs.math_tool:MathToolConfig")


def test_same_name_from_two_packages_names_both(monkeypatch):
    class Dist:
        def __init__(self, name):
            self.name = name

    def fake_entry_points(group):
        a = EntryPoint("math", "agentrl_envs.math_env:MathEnv", group)
        b = EntryPoint("math", "other_pkg.envs:Math", group)
        object.__setattr__(a, "dist", Dist("agentrl"))
        object.__setattr__(b, "dist", Dist("other-pkg"))
        return [a, b]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    registry.refresh()
    try:
        with pytest.raises(DuplicateEnvError) as err:
            load("math")
        assert "agentrl" in str(err.value) and "other-pkg" in str(err.value)
    finally:
        monkeypatch.undo()
        registry.refresh()


def test_check_env_catches_a_broken_environment():
    from agentrl.envs import EnvCheckError, EnvSpec, new_info

    class NeverEnds(Env):
        spec = EnvSpec(max_turns=2)

        def reset(self, *, seed=None, options=None):
            return [{"role": "user", "content": "hi"}], new_info(0)

        def step(self, action):
            return [{"role": "user", "content": "again"}], 0.0, False, False, new_info(1)

    with pytest.raises(EnvCheckError, match=r"turn budget|info\['turn'\]"):
        check_env(NeverEnds)
