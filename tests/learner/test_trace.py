"""What the learner keeps per token of an update (``train_step(batch, trace=True)``), checked
against what the objective's own rule says each token should get: on-policy the weight is the
advantage; past the clip range a token's weight is zero and it is marked clipped, and nowhere
else; a row a group filter drops is out of the loss."""

from __future__ import annotations

import pytest
import torch

from agentrl.algos import make
from agentrl.batch import TokenBatch
from agentrl.engines.loading import load_model
from agentrl.learner import LearnerConfig, TorchLearner


@pytest.fixture(scope="module")
def batch(trajectories) -> TokenBatch:
    batch = TokenBatch.from_trajectories(trajectories)
    return batch.with_fields(rewards=batch.rewards + 0.25 * (torch.arange(batch.size) % 3))


def traced(tiny_chatml, batch, name, **config):
    learner = TorchLearner(load_model(str(tiny_chatml)), make(name), LearnerConfig(**config))
    learner.train_step(batch, trace=True)
    assert learner.last_trace is not None and len(learner.last_trace) == batch.size
    width = batch.loss_mask.shape[1]  # each row is kept to its own length: padded back here
    padded = {k: [row[k] + [0.0] * (width - len(row[k])) for row in learner.last_trace] for k in learner.last_trace[0]}
    return learner, {k: torch.tensor(v) for k, v in padded.items()}


def test_on_policy_each_tokens_weight_is_its_advantage(tiny_chatml, batch):
    learner, t = traced(tiny_chatml, batch, "grpo")
    mask = batch.loss_mask.bool()
    assert t["logprob"].shape == batch.loss_mask.shape
    assert torch.allclose(t["ratio"][mask], torch.ones(int(mask.sum())), atol=1e-5)
    assert torch.allclose(t["weight"][mask], t["advantage"][mask], atol=1e-4)  # d loss / d logprob x tokens
    assert t["advantage"][mask].abs().max() > 0.1 and (t["entropy"][mask] > 0).all()
    assert (t["weight"][~mask] == 0).all() and (t["in_loss"][mask] == 1).all() and t["clipped"].sum() == 0
    learner.train_step(batch)
    assert learner.last_trace is None  # not asked: nothing kept


def test_the_clip_marks_exactly_the_tokens_past_its_range(tiny_chatml, batch):
    """Two epochs at a large learning rate: the second pass (the one kept) runs off-policy, and
    PPO's clip zeroes the tokens whose ratio left [0.8, 1.2] on their advantage's side."""
    _, t = traced(tiny_chatml, batch, "grpo", epochs=2, lr=2e-2)
    mask, ratio, advantage = batch.loss_mask.bool(), t["ratio"], t["advantage"]
    past = ((advantage > 0) & (ratio > 1.2)) | ((advantage < 0) & (ratio < 0.8))
    assert (ratio[mask] != 1).any() and past[mask].sum() > 0
    assert torch.equal(t["clipped"].bool() & mask, past & mask)
    inside = mask & ~past & (advantage != 0)
    assert torch.allclose(t["weight"][inside], (advantage * ratio)[inside], rtol=1e-3, atol=1e-4)


def test_a_row_the_objective_filters_out_is_not_in_the_loss(tiny_chatml, trajectories):
    """DAPO drops groups whose rewards are all equal: their tokens are out of the loss."""
    batch = TokenBatch.from_trajectories(trajectories)
    rewards = batch.rewards.clone()
    rewards[batch.group_index == 0] = 1.0  # group 0: no variance
    rewards[batch.group_index == 1] = torch.arange(int((batch.group_index == 1).sum())).float()
    _, t = traced(tiny_chatml, batch.with_fields(rewards=rewards), "dapo")
    sampled = batch.loss_mask.bool()
    dropped = (batch.group_index == 0)[:, None] & sampled
    kept = (batch.group_index == 1)[:, None] & sampled
    assert dropped.any() and (t["in_loss"][dropped] == 0).all() and (t["weight"][dropped] == 0).all()
    assert (t["in_loss"][kept] == 1).all()
