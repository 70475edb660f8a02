import pytest

from agentrl.evaluation import pass_at_k, service_failure_problem, summarize
from agentrl.types import Trajectory


def traj(group, correct, *, turns=1, calls=0, errors=0, attempts=0, sample=0, error=None, unavailable=0, extra=None):
    return Trajectory(
        token_ids=[1],
        loss_mask=[0],
        behavior_logprobs=[0.0],
        turn_index=[-1],
        policy_version=[-1],
        reward=float(correct),
        reward_components={"correct": float(correct), **(extra or {})},
        group_id=group,
        task_id=group,
        env_id="e",
        episode_id=f"{group}/{id(object())}",
        terminated=True,
        truncated=False,
        num_turns=turns,
        messages=[],
        temperature=1.0,
        sample_index=sample,
        tool_calls=calls,
        tool_errors=errors,
        tool_service_failures=unavailable,
        correct=correct,
        error=error,
        info={"call_attempts": attempts, "service_failures": {"search at u": {"timeout": unavailable}}},
    )


def test_pass_at_k_numbers():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 3, 2) == 1.0


def test_summarize():
    trajectories = [
        traj("a", True, turns=2, calls=2, errors=1, attempts=2),
        traj("a", False, turns=3, calls=1, attempts=2, errors=1),
        traj("a", False, sample=1),  # a second sample of an episode does not count twice
        traj("b", False),
        traj("b", False, error="boom"),
    ]
    m = summarize(trajectories)
    assert m["episodes"] == 4 and m["groups"] == 2
    assert m["accuracy"] == pytest.approx(0.25)
    assert m["pass@1"] == pytest.approx((0.5 + 0.0) / 2)
    assert m["pass@2"] == pytest.approx((1.0 + 0.0) / 2)
    assert m["mean_turns"] == pytest.approx(7 / 4)
    assert m["tool_error_rate"] == pytest.approx(2 / 4)
    assert m["error_rate"] == pytest.approx(0.25)


def test_service_failures_and_component_means():
    trajectories = [
        traj("a", True, calls=1, attempts=1, extra={"f1": 1.0, "searches": 1.0}),
        traj("a", False, calls=3, attempts=3, errors=2, unavailable=2, extra={"f1": 0.5, "searches": 3.0}),
        traj("b", False, extra={"searches": 0.0}),  # no f1 reported: counts as 0
    ]
    m = summarize(trajectories)
    assert m["tool_service_failure_rate"] == pytest.approx(2 / 4) and m["tool_error_rate"] == pytest.approx(2 / 4)
    assert m["service_failures"] == {"search at u": {"timeout": 2}}
    line = service_failure_problem(m, 0.4, "max_service_failure_rate")
    assert line == (
        "50% of 4 tool calls failed on the service's side (search at u: 2 timeout; max_service_failure_rate=0.4)"
    )
    assert service_failure_problem(m, 0.5, "max_service_failure_rate") is None  # the rule is "more than"
    assert m["components"] == {"f1": pytest.approx(1.5 / 3), "searches": pytest.approx(4 / 3)}


def test_tool_errors_by_kind_and_tool_time():
    a = traj("a", True, calls=2, attempts=3, errors=2)
    a.info.update(tool_errors_by_kind={"timeout": 1, "bad_args": 1}, tool_seconds=4.0)
    b = traj("b", False, calls=1, attempts=1, errors=1)
    b.info.update(tool_errors_by_kind={"timeout": 1}, tool_seconds=1.0)
    m = summarize([a, b])
    assert m["tool_error_rate_by_kind"] == {"bad_args": pytest.approx(1 / 4), "timeout": pytest.approx(2 / 4)}
    assert m["mean_tool_seconds"] == pytest.approx(2.5)
    assert summarize([traj("c", False)])["tool_error_rate_by_kind"] == {}
