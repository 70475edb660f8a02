import asyncio
import threading
import time

import pytest

from agentrl.envs import EpisodeOverError, make
from agentrl.errors import ConfigError
from agentrl.types import Task
from agentrl_envs.grading import MathGrader, extract_answer

TASK = Task(id="t", prompt="What is 6 * 7?", answer="42")


def episode(name="math_tool", **config):
    env = make(name, **config)
    env.reset(seed=0, options={"task": TASK})
    return env


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so \\boxed{42}", "42"),
        ("\\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),
        ("work\n#### 1,234", "1,234"),
        ("The answer is 42.", "42"),
        ("the answer is: -3.5", "-3.5"),
        ("the answer is 1,200", "1200"),
        ("no idea", None),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_math_single_turn():
    env = episode("math")
    new, reward, terminated, truncated, info = env.step("6*7 is 42. The answer is 42.")
    assert (new, reward, terminated, truncated) == ([], 1.0, True, False)
    assert info["answer"] == "42" and info["reward_components"] == {"correct": 1.0}
    with pytest.raises(EpisodeOverError):
        env.step("again")
    assert episode("math").step("The answer is 41.")[1] == 0.0
    assert episode("math").step("")[4]["parse_error"] == "empty_output"
    assert episode("math").step("hmm")[4]["parse_error"] == "no_action"


def test_math_verify_checks_equivalent_forms():
    grader = MathGrader(timeout_s=30)
    try:
        assert grader.check("0.5", "\\frac{1}{2}") == (True, "ok")
        assert grader.check("1/2", "0.5") == (True, "ok")
        assert grader.check("42", "41") == (False, "ok")
        assert grader.check("42", None) == (False, "no_answer")
    finally:
        grader.close()


def test_grader_works_off_the_main_thread_and_recovers_from_timeouts():
    grader = MathGrader(timeout_s=1e-4)  # far shorter than the child's start-up
    try:
        assert grader.check("0.5", "\\frac{1}{2}") == (False, "timeout")
        grader.timeout_s = 30
        results = []
        thread = threading.Thread(target=lambda: results.append(grader.check("0.5", "\\frac{1}{2}")))
        thread.start()
        thread.join()
        assert results == [(True, "ok")]
    finally:
        grader.close()


def test_math_tool_call_then_answer():
    env = episode()
    new, reward, terminated, truncated, info = env.step("<calculator>6*7</calculator>")
    assert new == [{"role": "tool", "content": "42"}]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["tool_calls"] == [{"name": "calculator", "arguments": {"expression": "6*7"}}]
    assert info["tool_status"] == "ok" and info["tool_latency_s"] >= 0 and info["turn"] == 1
    new, reward, terminated, truncated, info = env.step("The answer is 42.")
    assert (reward, terminated, truncated, info["turn"]) == (1.0, True, False, 2)


def test_math_tool_hermes_format():
    env = episode(tool_format="hermes")
    assert env.rollout_spec.stop_strings == ("</tool_call>",)
    call = '<tool_call>{"name": "calculator", "arguments": {"expression": "6*7"}}</tool_call>'
    assert env.step(call)[0] == [{"role": "tool", "content": "42"}]
    assert env.step("<tool_call>{oops</tool_call>")[4]["parse_error"] == "invalid_json"


@pytest.mark.parametrize(
    ("action", "kind", "status"),
    [
        ("", "empty_output", None),
        ("I think so", "no_action", None),
        ("<calculator>6*7", "malformed_call", None),
        ("<python>print(1)</python>", "unknown_tool", None),
        ("<calculator></calculator>", "bad_args", None),
        ("<calculator>1</calculator>" * 5, "too_many_calls", None),
        ("<calculator>9**9**9</calculator>", None, "error"),
        ("<calculator>__import__('os')</calculator>", None, "error"),
        ("<calculator>" + "1+" * 5_000_000 + "1</calculator>", None, "error"),
    ],
)
def test_math_tool_bad_actions_are_observations(action, kind, status):
    new, reward, terminated, truncated, info = episode().step(action)
    assert len(new) == 1 and new[0]["content"]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert info["parse_error"] == kind and info["tool_status"] == status
    if status == "error":
        assert new[0] == {"role": "tool", "content": new[0]["content"]} and new[0]["content"].startswith("Error:")


def test_math_tool_delay_applies_to_calculator_turns_only():
    env = episode(tool_delay_s=0.2)
    start = time.perf_counter()
    assert env.step("<calculator>6*7</calculator>")[0] == [{"role": "tool", "content": "42"}]
    assert time.perf_counter() - start >= 0.2
    start = time.perf_counter()
    assert env.step("The answer is 42.")[1] == 1.0
    assert time.perf_counter() - start < 0.2


def test_math_tool_delay_does_not_block_other_episodes():
    envs = [episode(tool_delay_s=0.3) for _ in range(8)]

    async def all_steps():
        return await asyncio.gather(*(env.astep("<calculator>6*7</calculator>") for env in envs))

    start = time.perf_counter()
    results = asyncio.run(all_steps())
    assert [r[0] for r in results] == [[{"role": "tool", "content": "42"}]] * 8
    assert 0.3 <= time.perf_counter() - start < 8 * 0.3 / 2  # the eight waits overlap


def test_math_tool_turn_budget_truncates():
    env = episode(max_turns=2)
    assert env.step("<calculator>1+1</calculator>")[3] is False
    _, reward, terminated, truncated, info = env.step("<calculator>2+2</calculator>")
    assert (reward, terminated, truncated) == (0.0, False, True)
    assert info["reward_components"] == {"correct": 0.0}


def test_bad_config_values_are_one_line_errors():
    with pytest.raises(ConfigError, match="tool_format='yaml' is not allowed"):
        make("math_tool", tool_format="yaml")
    with pytest.raises(ConfigError, match="unknown option 'turns'"):
        make("math_tool", turns=3)
    with pytest.raises(ConfigError, match="tool_delay_s"):
        make("math_tool", tool_delay_s=-1)
    with pytest.raises(ConfigError, match="max_turns"):
        make("math_tool", max_turns="many")
    assert make("math_tool", max_turns="3").rollout_spec.max_turns == 3
