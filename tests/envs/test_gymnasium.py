"""agentrl environments as Gymnasium environments: spaces, seeding, ids, wrappers, Gymnasium's checker."""

import asyncio
import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils import seeding
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from gymnasium.wrappers import OrderEnforcing, PassiveEnvChecker, RecordEpisodeStatistics, TimeLimit

from agentrl.envs import (
    ChatMessages,
    Env,
    EnvCheckError,
    EnvSpec,
    UnicodeText,
    check_env,
    gym_id,
    load,
    make,
    names,
    new_info,
    register_envs,
)
from agentrl.envs import gym as agentrl_gym
from agentrl.envs.registry import EnvEntry
from agentrl.types import Task

TASK = Task(id="t", prompt="What is 6 * 7?", answer="42")


class Recorder(Env):
    """Records the seeds its reset and areset receive."""

    def __init__(self) -> None:
        self.seeds: list[object] = []

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        return [{"role": "user", "content": f"seed {seed}"}], new_info(0)

    async def areset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        return [{"role": "user", "content": f"seed {seed}"}], new_info(0)

    def step(self, action):
        return [], 0.0, True, False, new_info(1)


def wrappers_of(env: gymnasium.Env) -> list[type]:
    found = []
    while isinstance(env, gymnasium.Wrapper):
        found.append(type(env))
        env = env.env
    return found


# -- spaces ---------------------------------------------------------------------------------


def test_env_is_a_gymnasium_env_with_text_spaces():
    env = make("math_tool")
    assert isinstance(env, gymnasium.Env)
    assert isinstance(env.action_space, gymnasium.spaces.Text)
    assert isinstance(env.action_space, UnicodeText) and env.action_space.min_length == 0
    assert isinstance(env.observation_space, ChatMessages)


@pytest.mark.parametrize("text", ["", "The answer is 42.", "héllo 中文 🙂\n\t", "\x00<tool_call>{}", "x" * 8])
def test_action_space_admits_any_text_up_to_its_length(text):
    assert text in UnicodeText(8) or len(text) > 8
    assert text in make("math").action_space


@pytest.mark.parametrize("bad", [b"bytes", 3, None, ["text"], "x" * 9, "lone \ud800 surrogate"])
def test_action_space_rejects_non_text_too_long_and_unencodable(bad):
    assert bad not in UnicodeText(8)


def test_action_space_rejects_text_shorter_than_min_length():
    assert "ab" not in UnicodeText(8, min_length=3) and "abc" in UnicodeText(8, min_length=3)


def test_text_samples_are_seeded_short_and_contained():
    a, b = UnicodeText(seed=3), UnicodeText(seed=3)
    samples = [a.sample() for _ in range(50)]
    assert samples == [b.sample() for _ in range(50)]
    assert all(s in a and len(s) <= 32 for s in samples) and len(set(samples)) > 40
    assert len(a.sample(mask=(100, None))) == 100
    assert UnicodeText(5, min_length=5, seed=0).sample() in UnicodeText(5, min_length=5)


def test_text_space_equality_and_repr():
    assert UnicodeText(8) == UnicodeText(8) and UnicodeText(8) != UnicodeText(9)
    assert UnicodeText(8) != gymnasium.spaces.Text(8, min_length=0)
    assert repr(UnicodeText(8)) == "UnicodeText(0, 8)"


@pytest.mark.parametrize("name", ["math", "math_tool"])
def test_observation_space_contains_what_reset_and_step_produce(name):
    env = make(name)
    space = env.observation_space
    for seed in range(3):
        messages, _ = env.reset(seed=seed)
        assert messages in space and len(messages) > 0
        for action in ["", "<calculator>2+3</calculator>", "hmm", "The answer is 5."]:
            new, *_, terminated, truncated, _ = env.step(action)
            assert new in space
            if terminated or truncated:
                break


def test_observation_space_contents():
    space = ChatMessages(max_messages=2, max_length=5)
    assert [] in space
    assert [{"role": "user", "content": "hi"}, {"role": "tool", "content": ""}] in space


@pytest.mark.parametrize(
    "bad",
    [
        ({"role": "user", "content": "hi"},),  # a tuple, not a list
        [{"role": "narrator", "content": "hi"}],  # unknown role
        [{"role": "user"}],  # no content
        [{"role": "user", "content": "hi", "name": "x"}],  # a key the space does not declare
        [{"role": "user", "content": 3}],  # content not text
        [{"role": "user", "content": "toolong"}],  # content over max_length
        [{"role": "user", "content": "a"}] * 3,  # more than max_messages
        ["user: hi"],  # not a dict
        "hi",
    ],
)
def test_observation_space_rejects(bad):
    assert bad not in ChatMessages(max_messages=2, max_length=5)


def test_observation_space_roles_are_configurable():
    assert [{"role": "narrator", "content": "hi"}] in ChatMessages(roles=("narrator",))


def test_observation_samples_are_seeded_and_contained():
    a, b = ChatMessages(seed=1), ChatMessages(seed=1)
    samples = [a.sample() for _ in range(30)]
    assert samples == [b.sample() for _ in range(30)]
    assert all(s in a for s in samples) and any(len(s) > 1 for s in samples)
    with pytest.raises(ValueError, match="no mask"):
        a.sample(mask=(1, None))


def test_agentrl_check_env_requires_observations_in_the_space():
    class Narrated(Env):
        def reset(self, *, seed=None, options=None):
            return [{"role": "narrator", "content": "once"}], new_info(0)

        def step(self, action):
            return [], 0.0, True, False, new_info(1)

    with pytest.raises(EnvCheckError, match=r"reset: .* is not in ChatMessages"):
        check_env(Narrated)


# -- seeding ----------------------------------------------------------------------------------


def test_a_seeded_reset_seeds_np_random_even_through_a_mixin():
    env = make("math")  # MathEnv's reset comes from MathTaskMixin, which is not an Env
    env.reset(seed=3)
    assert env.np_random.bit_generator.state == seeding.np_random(3)[0].bit_generator.state


def test_reset_without_a_seed_draws_one_from_np_random():
    env = Recorder()
    env.reset(seed=11)
    env.reset()
    drawn = env.seeds[1]
    assert env.seeds[0] == 11 and isinstance(drawn, int)
    assert drawn == int(seeding.np_random(11)[0].integers(2**31))


def test_reset_after_a_seeded_reset_is_reproducible():
    first, second = make("math"), make("math")
    runs = []
    for env in (first, second):
        env.reset(seed=5)
        runs.append([env.reset()[0] for _ in range(4)])
    assert runs[0] == runs[1]
    assert len({str(m) for m in runs[0]}) > 1  # the draws go on, they do not repeat one task


def test_areset_overrides_are_seeded_too():
    env = Recorder()
    asyncio.run(env.areset(seed=2))
    asyncio.run(env.areset())
    assert env.seeds[0] == 2 and isinstance(env.seeds[1], int)
    assert env.np_random is not None


def test_a_subclass_of_a_seeded_env_is_not_wrapped_twice():
    class Child(Recorder):
        pass

    assert Child.reset is Recorder.reset
    env = Child()
    env.reset()
    assert len(env.seeds) == 1 and isinstance(env.seeds[0], int)


# -- spec: Gymnasium's, and the deprecated agentrl use --------------------------------------------


def test_spec_is_gymnasiums_and_rollout_spec_is_agentrls():
    assert make("math").spec is None
    env = gymnasium.make("agentrl/math_tool-v0", max_turns=3)
    assert env.spec is not None and env.spec.id == "agentrl/math_tool-v0"
    assert env.unwrapped.spec.kwargs == {"max_turns": 3}
    assert env.unwrapped.rollout_spec == make("math_tool", max_turns=3).rollout_spec
    assert str(env.unwrapped) == "<MathToolEnv<agentrl/math_tool-v0>>"


def test_an_envspec_class_attribute_named_spec_moves_to_rollout_spec_with_a_warning():
    with pytest.warns(DeprecationWarning, match="rollout_spec"):

        class Old(Recorder):
            spec = EnvSpec(max_turns=3)

    assert Old.rollout_spec.max_turns == 3
    assert Old().spec is None


def test_an_envspec_assigned_to_spec_moves_to_rollout_spec_with_a_warning():
    class OldInit(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.spec = EnvSpec(max_turns=4)

    with pytest.warns(DeprecationWarning, match="rollout_spec"):
        env = OldInit()
    assert env.rollout_spec.max_turns == 4 and env.spec is None


# -- Gymnasium ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", names())
def test_every_agentrl_environment_has_a_gymnasium_id(name):
    assert gym_id(name) == f"agentrl/{name}-v0"
    env = gymnasium.make(gym_id(name))
    assert type(env.unwrapped) is load(name)
    assert wrappers_of(env) == [OrderEnforcing, PassiveEnvChecker]
    messages, _ = env.reset(seed=0)
    assert messages == make(name).reset(seed=0)[0]
    env.close()


def test_make_passes_keyword_arguments_to_the_environment():
    env = gymnasium.make("agentrl/math_tool-v0", max_turns=3, tool_format="hermes")
    assert env.unwrapped.rollout_spec.max_turns == 3
    assert env.unwrapped.rollout_spec.stop_strings == ("</tool_call>",)


def test_registration_is_lazy_and_works_through_gymnasiums_module_prefix():
    script = (
        "import sys, gymnasium\n"
        "env = gymnasium.make('agentrl.envs.gym:agentrl/math_tool-v0', max_turns=2)\n"
        "assert type(env.unwrapped).__name__ == 'MathToolEnv', env\n"
        "assert 'agentrl/math-v0' in gymnasium.registry\n"
        "assert 'agentrl_envs.math_env' not in sys.modules, 'math registered but imported'\n"
        "gymnasium.make('agentrl/math-v0')\n"
        "assert 'agentrl_envs.math_env' in sys.modules\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_register_envs_is_idempotent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Gymnasium warns when an id is overridden
        assert register_envs() == register_envs() == [gym_id(n) for n in names()]


def test_a_name_gymnasium_cannot_use_is_skipped_with_a_warning(monkeypatch):
    good = EnvEntry("fine", "agentrl_envs.math_env:MathEnv", "pkg")
    bad = EnvEntry("bad/na me", "agentrl_envs.math_env:MathEnv", "pkg")
    monkeypatch.setattr(agentrl_gym, "usable", lambda: {bad.name: bad, good.name: good})
    try:
        with pytest.warns(UserWarning, match="'bad/na me' has no Gymnasium id"):
            assert register_envs() == ["agentrl/fine-v0"]
    finally:
        gymnasium.registry.pop("agentrl/fine-v0", None)


def test_time_limit_and_episode_statistics_on_a_text_episode():
    env = RecordEpisodeStatistics(gymnasium.make("agentrl/math_tool-v0", max_episode_steps=2))
    assert TimeLimit in wrappers_of(env)
    env.reset(seed=0, options={"task": TASK})
    _, _, terminated, truncated, info = env.step("<calculator>6*7</calculator>")
    assert (terminated, truncated, "episode" not in info) == (False, False, True)
    _, _, terminated, truncated, info = env.step("let me think")  # turn 2 of the env's 4: TimeLimit cuts
    assert (terminated, truncated) == (False, True)
    assert info["episode"]["r"] == 0.0 and info["episode"]["l"] == 2

    env.reset(seed=0, options={"task": TASK})
    _, reward, terminated, truncated, info = env.step("The answer is 42.")
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info["episode"]["r"] == 1.0 and info["episode"]["l"] == 1
    assert list(env.return_queue) == [0.0, 1.0] and list(env.length_queue) == [2, 1]


def test_order_enforcing_refuses_a_step_before_reset():
    env = gymnasium.make("agentrl/math-v0")
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step("The answer is 1.")


# -- Gymnasium's own checker --------------------------------------------------------------------


@pytest.mark.filterwarnings("error")  # the checker reports most findings as warnings
@pytest.mark.parametrize("name", names())
def test_gymnasium_check_env_passes(name):
    made = gymnasium.make(gym_id(name))
    gymnasium_check_env(made.unwrapped)  # with a spec: also reset() determinism and close via spec.make
    # a bare instance; without a spec the checker cannot remake it, and says so in a warning
    gymnasium_check_env(make(name), skip_render_check=True)


def test_gymnasium_check_env_sees_a_reset_that_ignores_its_seed():
    class Unseeded(Recorder):
        def reset(self, *, seed=None, options=None):
            return [{"role": "user", "content": str(np.random.default_rng().integers(10**9))}], new_info(0)

    gymnasium.register(id="agentrl_test/Unseeded-v0", entry_point=Unseeded)
    try:
        env = gymnasium.make("agentrl_test/Unseeded-v0")
        with pytest.raises(AssertionError, match="non-deterministic"):
            gymnasium_check_env(env.unwrapped)
    finally:
        gymnasium.registry.pop("agentrl_test/Unseeded-v0")
