"""``tool_use``: generated code problems, and episodes run in each real sandbox."""

from __future__ import annotations

import contextlib
import io

import pytest

from agentrl.envs import make
from agentrl.errors import ConfigError
from agentrl.tasks import TaskSourceError
from agentrl_envs.code_tasks import FAMILIES, CodeTasks
from helpers import open_or_skip


def test_code_tasks_are_seeded_split_and_solved_by_their_reference_code():
    tasks = CodeTasks("test", 120)
    assert [t.prompt for t in tasks[:10]] == [t.prompt for t in CodeTasks("test", 120)[:10]]
    assert not {t.prompt for t in tasks} & {t.prompt for t in CodeTasks("train", 120)}
    assert {t.meta["family"] for t in tasks} == set(FAMILIES)
    for task in tasks:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(task.meta["solution"], {})  # our own reference code, not a model's
        assert printed.getvalue().strip() == task.answer, task
    with pytest.raises(TaskSourceError, match="unknown split 'dev'"):
        CodeTasks("dev", 3)
    with pytest.raises(TaskSourceError, match="unknown code-task families"):
        CodeTasks("test", 3, families=("nope",))


def test_bad_options_are_one_line():
    with pytest.raises(ConfigError, match="sandbox"):
        make("tool_use", sandbox="none")
    with pytest.raises(ConfigError, match="tools"):
        make("tool_use", tools=" , ")


@pytest.fixture(params=["bwrap", "docker"])
def env(request):
    open_or_skip(request.param).close()
    made = make("tool_use", sandbox=request.param, timeout_s=3.0)
    yield made
    made.close()


@pytest.mark.sandbox
def test_solving_with_python_then_answering(env):
    env.reset(seed=0)
    code = env.task.meta["solution"]
    obs, reward, terminated, truncated, info = env.step(f"Let me compute.\n<python>{code}</python>")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert obs == [{"role": "tool", "content": env.task.answer}] and info["tool_status"] == "ok"
    assert info["tool_calls"] == [{"name": "python", "arguments": {"code": code}}] and info["tool_latency_s"] > 0
    obs, reward, terminated, _, info = env.step(f"The answer is {env.task.answer}.")
    assert (obs, reward, terminated, info["reward_components"]) == ([], 1.0, True, {"correct": 1.0})


@pytest.mark.sandbox
def test_state_persists_within_an_episode_not_across(env):
    env.reset(seed=1)
    obs, *_ = env.step("<python>x = 20</python><python>y = x + 1</python>")
    assert [m["content"] for m in obs] == ["(no output)", "(no output)"]  # several calls, in order
    assert env.step("<python>print(x + y)</python>")[0][0]["content"] == "41"
    assert env.step("The answer is 3.")[1] in (0.0, 1.0)
    env.reset(seed=2)
    obs, *_, info = env.step("<python>print(x)</python>")
    assert "NameError" in obs[0]["content"] and info["tool_status"] == "error"


@pytest.mark.sandbox
def test_a_timeout_is_an_observation_and_the_episode_goes_on(env):
    env.reset(seed=3)
    obs, _reward, terminated, truncated, info = env.step("<python>while True:\n    pass</python>")
    assert info["tool_status"] == "timeout" and not terminated and not truncated
    assert obs[0]["content"].startswith("Error: the call ran past its 3 s timeout") and "lost" in obs[0]["content"]
    assert env.step("<python>print(2 + 2)</python>")[0][0]["content"] == "4"


@pytest.mark.sandbox
def test_bad_actions_have_defined_outcomes(env):
    env.reset(seed=4)
    assert env.step("")[4]["parse_error"] == "empty_output"
    assert env.step("<python>print(1)")[4]["parse_error"] == "malformed_call"
    info = env.step("I think so.")[4]
    assert info["parse_error"] == "no_action"
    *_, truncated, info = env.step("<python>1</python>" * 5)
    assert info["parse_error"] == "too_many_calls" and truncated  # the fourth turn: the budget is spent
    env.reset(seed=4)
    _obs, reward, terminated, _, _ = env.step("The answer is -1.")
    assert (reward, terminated) == (0.0, True)


@pytest.mark.sandbox
@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_math_tool_with_python_instead_of_the_calculator(backend):
    open_or_skip(backend).close()
    env = make("math_tool", tool="python", sandbox=backend)
    assert [t["function"]["name"] for t in env.rollout_spec.tools] == ["python"]
    assert env.rollout_spec.stop_strings == ("</python>",)
    env.reset(seed=0)
    obs, *_ = env.step(f"<python>print({env.task.meta['expression']})</python>")
    assert obs == [{"role": "tool", "content": env.task.answer}]
    assert env.step("<calculator>1+1</calculator>")[4]["parse_error"] == "unknown_tool"
    assert env.step(f"The answer is {env.task.answer}.")[1] == 1.0
    env.close()
    with pytest.raises(ConfigError, match="tool"):
        make("math_tool", tool="shell")
