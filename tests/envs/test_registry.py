import functools
import sys
import warnings
from importlib.metadata import EntryPoint
from importlib.metadata import entry_points as registry_entry_points

import pytest

import agentrl.entry_points
from agentrl.envs import DuplicateEnvError, Env, EnvSpec, check_env, describe, entries, load, make, names, registry
from agentrl.envs.registry import DuplicateEnvWarning
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
    with pytest.raises(UnknownNameError, match=r"^cannot load environment '.*:Nope': agentrl_envs.math_tool has no"):
        load("agentrl_envs.math_tool:Nope")
    with pytest.raises(UnknownNameError, match="no module named 'no_such_module' in the installed packages"):
        load("no_such_module:Env")
    with pytest.raises(AgentRLError, match=r"not a subclass of agentrl\.envs\.base\.Env"):
        load("agentrl_envs.math_tool:MathToolConfig")


def test_environments_and_algorithms_share_one_loader_and_one_error_style(tmp_path, monkeypatch):
    from agentrl.algos import get as get_algorithm

    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('boom\\nmore')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for kind, get in (("environment", load), ("algorithm", get_algorithm)):
        with pytest.raises(AgentRLError) as err:
            get("broken_plugin:X")
        assert (
            str(err.value)
            == f"cannot load {kind} 'broken_plugin:X': importing broken_plugin failed: RuntimeError: boom"
        )
        with pytest.raises(UnknownNameError, match=f"^cannot load {kind} 'nope:X': no module named 'nope'"):
            get("nope:X")
        with pytest.raises(UnknownNameError, match=f"^cannot load {kind} ':X': expected module:attr"):
            get(":X")


def _two_packages_claim_math(monkeypatch):
    class Dist:
        def __init__(self, name):
            self.name = name

    def fake_entry_points(group):
        real = [ep for ep in registry_entry_points(group=group)]
        clash = EntryPoint("math", "other_pkg.envs:Math", group)
        object.__setattr__(clash, "dist", Dist("other-pkg"))
        return [*real, clash]

    monkeypatch.setattr(agentrl.entry_points, "entry_points", fake_entry_points)
    registry.refresh()


def test_a_name_claimed_twice_disables_only_that_name(monkeypatch):
    _two_packages_claim_math(monkeypatch)
    try:
        with pytest.warns(DuplicateEnvWarning) as caught:
            known = names()
        # pytest.warns records every warning, and a ResourceWarning from an earlier test's garbage can land here
        duplicates = [w for w in caught if issubclass(w.category, DuplicateEnvWarning)]
        assert len(duplicates) == 1
        warning = str(duplicates[0].message)
        assert "'math' is registered twice" in warning and "by agentrl (" in warning and "by other-pkg (" in warning
        assert "math" not in known and "math_tool" in known
        assert load("math_tool") is MathToolEnv  # the others stay usable
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # said once: the scan is not repeated
            with pytest.raises(DuplicateEnvError) as err:
                load("math")
        message = str(err.value)
        assert "agentrl" in message and "other-pkg" in message and "\n" not in message
    finally:
        monkeypatch.undo()
        registry.refresh()
    assert load("math").name == "math"


class Picky(Env):
    """Refuses a size over 3 (a third party's constructor validating its own options)."""

    rollout_spec = EnvSpec(max_turns=1)

    def __init__(self, size=1):
        if size > 3:
            raise ValueError(f"size {size} is too big\nsecond line")

    def reset(self, *, seed=None, options=None):
        raise NotImplementedError

    def step(self, action):
        raise NotImplementedError


def test_make_turns_a_rejected_option_into_one_line():
    with pytest.raises(AgentRLError) as err:
        make("math_tool", colour="red")
    assert str(err.value).startswith("math_tool: unknown option 'colour'")
    picky = f"{__name__}:Picky"
    with pytest.raises(AgentRLError) as err:
        make(picky, colour="red")
    assert str(err.value) == (
        f"environment '{picky}' rejected its options (colour='red'): "
        "TypeError: Picky.__init__() got an unexpected keyword argument 'colour'"
    )
    with pytest.raises(AgentRLError) as err:
        make(picky, size=5)
    assert str(err.value) == f"environment '{picky}' rejected its options (size=5): ValueError: size 5 is too big"


def test_check_env_catches_a_broken_environment():
    from agentrl.envs import EnvCheckError, EnvSpec, new_info

    class NeverEnds(Env):
        rollout_spec = EnvSpec(max_turns=2)

        def reset(self, *, seed=None, options=None):
            return [{"role": "user", "content": "hi"}], new_info(0)

        def step(self, action):
            return [{"role": "user", "content": "again"}], 0.0, False, False, new_info(1)

    with pytest.raises(EnvCheckError, match=r"turn budget|info\['turn'\]"):
        check_env(NeverEnds)
