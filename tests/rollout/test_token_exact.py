"""Every recorded logprob is reproduced by teacher-forcing, and the masks mark exactly the
sampled tokens, for a prefix-preserving template and for one that is not."""

import functools

import pytest

from agentrl.engines.base import SamplingParams
from agentrl.engines.hf import TransformersEngine
from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.engines.logprobs import teacher_forced_logprobs
from agentrl.envs import make
from agentrl.rollout import ChatRenderer, RolloutConfig, rollout

TEMPERATURE = 1.0


class RecordingEngine:
    """Passes calls through and remembers which completion answered which prompt."""

    def __init__(self, engine):
        self.engine = engine
        self.eos_token_ids = engine.eos_token_ids
        self.policy_version = engine.policy_version
        self.answers: dict[tuple[int, ...], list[list[int]]] = {}

    def generate(self, prompts, params, max_new_tokens=None):
        out = self.engine.generate(prompts, params, max_new_tokens)
        for prompt, completion in zip(prompts, out, strict=True):
            self.answers.setdefault(tuple(prompt), []).append(completion.token_ids)
        return out

    def update_weights(self, state, version):
        self.engine.update_weights(state, version)


def run_episodes(model_dir):
    tokenizer, model = load_tokenizer(str(model_dir)), load_model(str(model_dir))
    engine = RecordingEngine(TransformersEngine(model, tokenizer))
    factory = functools.partial(make, "math_tool", max_turns=4)
    tasks = list(factory().tasks("test")[:24])
    params = SamplingParams(temperature=TEMPERATURE, max_new_tokens=40)
    trajectories = rollout(factory, tasks, engine, tokenizer, params, RolloutConfig(group_size=2, max_total_tokens=512))
    return trajectories, model, tokenizer, engine


def turn_runs(trajectory):
    """``{turn: (start, end)}`` of the contiguous runs of each turn index."""
    runs = {}
    for i, turn in enumerate(trajectory.turn_index):
        if turn >= 0:
            start, _ = runs.get(turn, (i, i))
            assert turn not in runs or runs[turn][1] == i, f"turn {turn} is not contiguous"
            runs[turn] = (start, i + 1)
    return runs


def check_token_exact(trajectories, model, engine):
    forced = teacher_forced_logprobs(model, [t.token_ids for t in trajectories], TEMPERATURE)
    worst = 0.0
    for trajectory, logprobs in zip(trajectories, forced, strict=True):
        n = len(trajectory.token_ids)
        assert len(trajectory.loss_mask) == len(trajectory.behavior_logprobs) == len(trajectory.turn_index) == n
        assert len(trajectory.policy_version) == n
        for i in range(n):
            sampled = trajectory.loss_mask[i] == 1
            assert (trajectory.turn_index[i] >= 0) == sampled
            assert (trajectory.policy_version[i] >= 0) == sampled
            if sampled:
                worst = max(worst, abs(logprobs[i] - trajectory.behavior_logprobs[i]))
            else:
                assert trajectory.behavior_logprobs[i] == 0.0
        # each turn's tokens are exactly what the engine sampled for the tokens before them
        for start, end in turn_runs(trajectory).values():
            assert trajectory.token_ids[start:end] in engine.answers[tuple(trajectory.token_ids[:start])]
    assert worst <= 1e-4, worst
    return worst


def episodes_by_id(trajectories):
    out = {}
    for t in trajectories:
        out.setdefault(t.episode_id, []).append(t)
    return out


@pytest.mark.slow
def test_chatml_rollouts_are_token_exact(tiny_chatml):
    trajectories, model, tokenizer, engine = run_episodes(tiny_chatml)
    assert sum(t.tool_calls for t in trajectories) >= 5, "tool calls must really happen"
    assert max(t.num_turns for t in trajectories) >= 2
    check_token_exact(trajectories, model, engine)
    renderer = ChatRenderer(tokenizer)
    for t in trajectories:
        assert t.num_samples == 1  # ChatML is prefix-preserving: one sample per episode
        assert len(turn_runs(t)) == t.num_turns
        # the tokens spell the conversation as the template renders it: nothing lost or invented
        # (a final end-of-sequence token may be another EOS than the one the template writes)
        tokens = t.token_ids[:-1] if t.token_ids[-1] in engine.eos_token_ids else t.token_ids
        assert renderer.render(t.messages, generation_prompt=False).startswith(renderer.decode(tokens))


@pytest.mark.slow
def test_non_prefix_preserving_template_falls_back_to_new_samples(tiny_stamped):
    trajectories, model, tokenizer, engine = run_episodes(tiny_stamped)
    check_token_exact(trajectories, model, engine)
    multi_turn = [e for e in episodes_by_id(trajectories).values() if e[0].num_turns >= 2]
    assert multi_turn, "need multi-turn episodes to exercise the fallback"
    renderer = ChatRenderer(tokenizer)
    for samples in multi_turn:
        assert len(samples) == samples[0].num_turns == samples[0].num_samples
        for sample in samples:
            runs = turn_runs(sample)
            assert list(runs) == [sample.sample_index]  # a new sample for every turn
            first = runs[sample.sample_index][0]
            # the sample's prompt is the conversation so far rendered afresh, stamped with its turn count
            prompt = renderer.decode(sample.token_ids[:first])
            assert prompt.startswith(f"<|im_start|>system\nturns so far: {sample.sample_index}<|im_end|>")
        assert sum(len(turn_runs(s)) for s in samples) == samples[0].num_turns
