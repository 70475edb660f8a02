"""The rollout stream with a scripted engine: the staleness bound on admission, what happens to
episodes in flight when weights arrive (continue / drain / abort), and its failures."""

import functools
import time

import pytest

from agentrl.engines.base import SamplingParams
from agentrl.engines.loading import load_tokenizer
from agentrl.engines.mailbox import WeightMailbox
from agentrl.envs import make
from agentrl.rollout import RolloutConfig
from agentrl.rollout.stream import RolloutStream, StreamError
from agentrl.types import Task
from helpers import ScriptedEngine, solver

PARAMS = SamplingParams(max_new_tokens=64)


def feed(batch):
    return [Task(id=f"b{batch}t{i}", prompt=f"What is {batch} + {i}?", answer=str(batch + i)) for i in range(2)]


class HookedEngine(ScriptedEngine):
    """Calls ``hook(call_number)`` before each generate call (to publish weights mid-episode)."""

    def __init__(self, tokenizer, hook=None, sync_s=0.0):
        super().__init__(tokenizer, solver)
        self.hook, self.sync_s = hook, sync_s

    def generate(self, prompts, params, max_new_tokens=None):
        if self.hook is not None:
            self.hook(len(self.calls))
        return super().generate(prompts, params, max_new_tokens)

    def update_weights(self, state, version):
        time.sleep(self.sync_s)
        super().update_weights(state, version)


@pytest.fixture(scope="module")
def tokenizer(tiny_random):
    return load_tokenizer(str(tiny_random))


def stream_of(tokenizer, engine, mailbox, **kwargs):
    config = RolloutConfig(group_size=2, max_concurrent=16, seed=3)
    stream = RolloutStream(
        functools.partial(make, "math_tool"), feed, engine, tokenizer, PARAMS, config, mailbox, **kwargs
    )
    stream.start()
    return stream


def versions_by_turn(trajectory):
    return {
        k: v
        for k, v, m in zip(trajectory.turn_index, trajectory.policy_version, trajectory.loss_mask, strict=True)
        if m
    }


def test_admission_waits_for_weights_within_the_staleness_bound(tokenizer):
    engine, mailbox = HookedEngine(tokenizer), WeightMailbox()
    stream = stream_of(tokenizer, engine, mailbox, max_staleness=1)
    try:
        groups = stream.take(4, sync_timeout_s=5)
        assert sorted(g.batch for g in groups) == [0, 0, 1, 1]  # batches 0 and 1 on version 0 (K = 1)
        time.sleep(0.3)
        assert stream.next_batch == 2 and stream._out.empty()  # batch 2 needs version >= 1
        mailbox.publish({}, 1)
        later = stream.take(2, sync_timeout_s=5)
        assert [g.batch for g in later] == [2, 2]
        assert all(set(versions_by_turn(t).values()) == {1} for g in later for t in g.trajectories)
        assert all(t.correct for g in groups + later for t in g.trajectories)
        assert {t.group_id for g in groups for t in g.trajectories} == {"b0t0@0.0", "b0t1@0.1", "b1t0@1.0", "b1t1@1.1"}
    finally:
        stream.stop()
    assert stream.stats.syncs == 1 and stream.stats.episodes == 12 and stream.stats.generate_s > 0


@pytest.mark.parametrize(
    ("in_flight", "turn_versions", "aborted"),
    [("continue", {0: 0, 1: 1}, 0), ("drain", {0: 0, 1: 0}, 0), ("abort", {0: 1, 1: 1}, 4)],
)
def test_episodes_in_flight_when_weights_arrive(tokenizer, in_flight, turn_versions, aborted):
    """Version 1 is published while batch 0's first turns are sampled (K = 0)."""
    mailbox = WeightMailbox()
    engine = HookedEngine(tokenizer, hook=lambda call: mailbox.publish({}, 1) if call == 0 else None)
    stream = stream_of(tokenizer, engine, mailbox, max_staleness=0, in_flight=in_flight)
    try:
        groups = stream.take(2, sync_timeout_s=5)
    finally:
        stream.stop()
    assert [g.batch for g in groups] == [0, 0]
    assert all(versions_by_turn(t) == turn_versions for g in groups for t in g.trajectories)
    assert stream.stats.aborted_episodes == aborted


def test_a_failing_engine_stops_the_stream_with_its_error(tokenizer):
    def fail(call):
        if call == 1:
            raise RuntimeError("engine died")

    stream = stream_of(tokenizer, HookedEngine(tokenizer, hook=fail), WeightMailbox(), max_staleness=0)
    try:
        with pytest.raises(StreamError, match="the rollout worker failed: RuntimeError: engine died"):
            stream.take(2, sync_timeout_s=5)
    finally:
        stream.stop()


def test_a_hung_weight_sync_times_out(tokenizer):
    mailbox = WeightMailbox()
    engine = HookedEngine(tokenizer, sync_s=2.0)
    stream = stream_of(tokenizer, engine, mailbox, max_staleness=0)
    try:
        stream.take(2, sync_timeout_s=5)
        mailbox.publish({}, 1)
        start = time.perf_counter()
        with pytest.raises(StreamError, match=r"took longer than sync_timeout_s=0\.2 s"):
            stream.take(2, sync_timeout_s=0.2)
        assert time.perf_counter() - start < 1.5
    finally:
        stream.stop()


def test_the_mailbox_keeps_a_copy_and_only_newer_versions():
    import torch

    mailbox, weight = WeightMailbox(), torch.zeros(3)
    assert mailbox.take_newer(-1) is None
    mailbox.publish({"w": weight}, 1)
    weight += 1  # the learner goes on updating its own tensor in place
    state, version = mailbox.take_newer(0)
    assert version == 1 and torch.equal(state["w"], torch.zeros(3))
    assert mailbox.take_newer(1) is None
    with pytest.raises(ValueError, match="version 1 published after version 1"):
        mailbox.publish({"w": weight}, 1)


def test_at_staleness_zero_the_stream_samples_what_synchronous_rollouts_sample(tiny_chatml):
    """One scheduler and one seeding rule: the stream's batch ``s`` (K = 0, so batch ``s`` runs
    alone, on version ``s``) holds the tasks, ids, seeds, tokens and logprobs of a synchronous
    rollout of batch ``s``, on a real engine sampling at temperature 1."""
    from agentrl.engines.hf import TransformersEngine
    from agentrl.engines.loading import load_model
    from agentrl.rollout import rollout

    tok = load_tokenizer(str(tiny_chatml))
    params = SamplingParams(max_new_tokens=12, temperature=1.0)
    config = RolloutConfig(group_size=2, max_concurrent=3, seed=11)  # 4 episodes a batch, 3 at a time
    env = functools.partial(make, "math_tool", max_turns=2)
    weights = load_model(str(tiny_chatml)).state_dict()

    def engine():
        return TransformersEngine(load_model(str(tiny_chatml)), tok, seed=99)

    sync_engine, sync = engine(), {}
    for s in range(3):
        sync_engine.update_weights(weights, version=s)  # what a training step's publish does
        for t in rollout(env, feed(s), sync_engine, tok, params, config, batch=s, env_id="x"):
            sync[t.episode_id] = t
    mailbox = WeightMailbox()
    stream = RolloutStream(env, feed, engine(), tok, params, config, mailbox, max_staleness=0, env_id="x")
    stream.start()
    streamed = {}
    try:
        for s in range(3):
            groups = stream.take(2, sync_timeout_s=30)
            assert {g.batch for g in groups} == {s}
            streamed |= {t.episode_id: t for g in groups for t in g.trajectories}
            mailbox.publish(weights, s + 1)
    finally:
        stream.stop()
    assert sorted(streamed) == sorted(sync) and len(sync) == 12
    for key, t in sync.items():
        other = streamed[key]
        assert (other.group_id, other.task_id) == (t.group_id, t.task_id)
        assert other.token_ids == t.token_ids and other.loss_mask == t.loss_mask
        assert other.behavior_logprobs == t.behavior_logprobs
    assert len({tuple(t.token_ids) for t in sync.values()}) > 6  # sampled, not all alike
