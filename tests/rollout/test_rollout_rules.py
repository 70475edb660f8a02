"""Episode rules, driven by a scripted engine (fast) over a real tokenizer."""

import dataclasses
import functools
import json

import pytest

from agentrl.batch import TokenBatch
from agentrl.engines.base import SamplingParams
from agentrl.engines.loading import load_tokenizer
from agentrl.envs import Env, EnvSpec, make, new_info
from agentrl.rollout import RolloutConfig, read_trajectories, rollout, write_trajectories
from agentrl.types import Task
from helpers import ScriptedEngine, solver

TASKS = [Task(id=f"t{i}", prompt=f"What is {i} + 1?", answer=str(i + 1)) for i in range(4)]
PARAMS = SamplingParams(max_new_tokens=64)


@pytest.fixture(scope="module")
def tokenizer(tiny_random):
    return load_tokenizer(str(tiny_random))


def run(tokenizer, respond, env="math_tool", config=None, tasks=TASKS, **env_kwargs):
    factory = functools.partial(make, env, **env_kwargs) if isinstance(env, str) else env
    engine = ScriptedEngine(tokenizer, respond)
    return rollout(factory, tasks, engine, tokenizer, PARAMS, config or RolloutConfig(), env_id="x"), engine


def test_scripted_solver_solves_everything(tokenizer):
    trajectories, engine = run(tokenizer, solver)
    assert [t.correct for t in trajectories] == [True] * 4
    assert all(t.num_turns == 2 and t.tool_calls == 1 and t.stop_reason == "terminated" for t in trajectories)
    assert len(engine.calls) == 2  # each round batches every live episode into one call
    assert [len(c) for c in engine.calls] == [4, 4]


def test_groups_share_tasks_and_ids(tokenizer):
    trajectories, _ = run(tokenizer, solver, config=RolloutConfig(group_size=3))
    assert len(trajectories) == 12
    assert [t.group_id for t in trajectories] == [f"{t.id}@0.{p}" for p, t in enumerate(TASKS) for _ in range(3)]
    assert [t.episode_id for t in trajectories[:3]] == ["t0@0.0/0", "t0@0.0/1", "t0@0.0/2"]
    assert len({t.episode_id for t in trajectories}) == 12


def test_a_task_drawn_twice_in_a_batch_is_two_groups(tokenizer):
    trajectories, _ = run(tokenizer, solver, config=RolloutConfig(group_size=2), tasks=[TASKS[0], TASKS[0]])
    assert [t.group_id for t in trajectories] == ["t0@0.0", "t0@0.0", "t0@0.1", "t0@0.1"]


def test_max_concurrent_limits_the_batch(tokenizer):
    trajectories, engine = run(tokenizer, solver, config=RolloutConfig(max_concurrent=3))
    assert max(len(c) for c in engine.calls) == 3 and len(trajectories) == 4
    assert all(t.correct for t in trajectories)


def test_output_that_never_stops_is_truncated(tokenizer):
    trajectories, _ = run(tokenizer, lambda _: "and on " * 200)
    for t in trajectories:
        assert (t.truncated, t.terminated, t.stop_reason) == (True, False, "turn_length")
        assert t.num_sampled_tokens == PARAMS.max_new_tokens and t.reward == 0.0


def test_token_budget_truncates(tokenizer):
    respond = lambda _: "<calculator>1+1</calculator>"  # noqa: E731
    trajectories, _ = run(tokenizer, respond, config=RolloutConfig(max_total_tokens=120), max_turns=30)
    for t in trajectories:
        assert t.truncated and t.stop_reason == "token_budget"
        assert len(t.token_ids) <= 120


def test_empty_output_is_an_observation(tokenizer):
    trajectories, _ = run(tokenizer, lambda _: "", max_turns=2)
    for t in trajectories:
        assert t.stop_reason == "env_truncated" and t.parse_errors == 2 and t.num_turns == 2
        assert t.messages[3]["content"].startswith("Your reply was empty")


def test_turn_budget_from_env(tokenizer):
    trajectories, _ = run(tokenizer, lambda _: "<calculator>2*3</calculator>", max_turns=3)
    assert all(t.num_turns == 3 and t.truncated and t.tool_calls == 3 and t.tool_turns == 3 for t in trajectories)


def test_parallel_calls_count_once_per_turn_in_tool_turns(tokenizer):
    """Two turns, the first with two calls, the second with none (an empty reply)."""

    def respond(prompt: str) -> str:
        first = "<|im_start|>tool\n" not in prompt
        return "<calculator>2*3</calculator><calculator>4+1</calculator>" if first else ""

    trajectories, _ = run(tokenizer, respond, max_turns=2)
    assert [(t.tool_calls, t.tool_turns) for t in trajectories] == [(2, 1)] * len(TASKS)
    batch = TokenBatch.from_trajectories(trajectories)
    assert batch.num_tool_calls.tolist() == [2.0] * len(TASKS) and batch.num_tool_turns.tolist() == [1.0] * len(TASKS)


class Flaky(Env):
    """Raises on the task with id t2, in reset or step."""

    rollout_spec = EnvSpec(max_turns=1)

    def __init__(self, where="step"):
        self.where = where

    def reset(self, *, seed=None, options=None):
        self.task = options["task"]
        if self.where == "reset" and self.task.id == "t2":
            raise RuntimeError("reset exploded")
        return [{"role": "user", "content": self.task.prompt}], new_info(0)

    def step(self, action):
        if self.task.id == "t2":
            raise ValueError("step exploded")
        return [], 1.0, True, False, new_info(1, reward_components={"correct": 1.0})


@pytest.mark.parametrize("where", ["reset", "step"])
def test_an_environment_crash_ends_only_its_episode(tokenizer, where):
    trajectories, _ = run(tokenizer, lambda _: "hi", env=functools.partial(Flaky, where))
    broken = [t for t in trajectories if t.task_id == "t2"]
    assert len(broken) == 1 and f"{where} exploded" in broken[0].error
    assert broken[0].stop_reason == "env_error" and broken[0].truncated
    assert all(t.correct and t.error is None for t in trajectories if t.task_id != "t2")


class SeedEcho(Env):
    """Ends at once; its reward is the seed its reset got."""

    rollout_spec = EnvSpec(max_turns=1)

    def reset(self, *, seed=None, options=None):
        self.seed = seed
        return [{"role": "user", "content": options["task"].prompt}], new_info(0)

    def step(self, action):
        return [], float(self.seed), True, False, new_info(1)


def test_reset_seeds_follow_from_seed_batch_position_and_member(tokenizer):
    config = RolloutConfig(group_size=2, seed=5)
    for batch in (0, 3):
        engine = ScriptedEngine(tokenizer, lambda _: "hi")
        trajectories = rollout(SeedEcho, TASKS[:2], engine, tokenizer, PARAMS, config, batch=batch)
        expected = [5 + (batch * 1_000_003 + p) * 2 + g for p in range(2) for g in range(2)]
        assert [t.reward for t in trajectories] == expected
        assert [t.group_id for t in trajectories] == [f"t{p}@{batch}.{p}" for p in range(2) for _ in range(2)]


class Inline(Env):
    """Observations appended inside the assistant's own turn."""

    rollout_spec = EnvSpec(max_turns=2, observation_format="inline", stop_strings=("</search>",))

    def reset(self, *, seed=None, options=None):
        return [{"role": "user", "content": "Find it."}], new_info(0)

    def step(self, action):
        if action.endswith("</search>"):
            return [{"role": "tool", "content": " <result>42</result> "}], 0.0, False, False, new_info(1)
        return [], 1.0, True, False, new_info(2, answer="42")


def test_inline_observations(tokenizer):
    replies = iter(["<search>q</search>", "so 42"] * 4)
    trajectories, _ = run(tokenizer, lambda _: next(replies), env=Inline, tasks=TASKS[:1])
    (t,) = trajectories
    text = tokenizer.decode(t.token_ids)
    assert text.endswith("<|im_start|>assistant\n<search>q</search> <result>42</result> so 42<|im_end|>")
    obs_tokens = tokenizer.encode(" <result>42</result> ", add_special_tokens=False)
    first_turn_end = t.turn_index.index(1)
    assert t.token_ids[first_turn_end - len(obs_tokens) : first_turn_end] == obs_tokens
    assert t.loss_mask[first_turn_end - len(obs_tokens) : first_turn_end] == [0] * len(obs_tokens)


def test_jsonl_round_trip_with_design_field_names(tokenizer, tmp_path):
    trajectories, _ = run(tokenizer, solver)
    write_trajectories(tmp_path / "t.jsonl", trajectories)
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    assert len(lines) == 4
    row = json.loads(lines[0])
    for name in [
        "token_ids",
        "loss_mask",
        "behavior_logprobs",
        "turn_index",
        "policy_version",
        "reward",
        "reward_components",
        "group_id",
        "task_id",
        "env_id",
        "terminated",
        "truncated",
        "num_turns",
        "tool_calls",
        "tool_errors",
        "messages",
        "temperature",
    ]:
        assert name in row, name
    assert row["temperature"] == PARAMS.temperature and row["env_id"] == "x"
    back = list(read_trajectories(tmp_path / "t.jsonl"))
    assert [dataclasses.asdict(t) for t in back] == [dataclasses.asdict(t) for t in trajectories]


def test_failed_calls_are_counted_by_kind_with_tool_time(tokenizer):
    replies = iter(["<calculator>9**9**9</calculator>", "<calculator>1+1", "<calculator>2+2</calculator>"] * 4)

    def respond(prompt_text: str) -> str:
        return next(replies)

    trajectories, _ = run(tokenizer, respond, tasks=TASKS[:1])
    info = trajectories[0].info
    # four turns (the budget): refused, unclosed, fine, refused again
    assert info["tool_errors_by_kind"] == {"error": 2, "malformed_call": 1}
    assert info["call_attempts"] == 4 and info["tool_seconds"] > 0
