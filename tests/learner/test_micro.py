"""Micro-batch packing (agentrl.learner.micro) and pi_old taken from the loss's own forward."""

import copy

import pytest
import torch

from agentrl.algos import make
from agentrl.learner import LearnerConfig, TorchLearner
from agentrl.learner.micro import gather, micro_batches, plan


@pytest.mark.parametrize(("max_rows", "max_tokens"), [(4, None), (100, 40), (3, 25), (100, 1)])
def test_the_plan_covers_every_row_once_within_its_limits(max_rows, max_tokens):
    lengths = [7, 30, 12, 12, 0, 25, 3, 18, 30, 9]
    groups = plan(lengths, max_rows, max_tokens)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    order = [i for g in groups for i in g]
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True), "longest first"
    assert order == sorted(order, key=lambda i: (-lengths[i], i)), "ties in row order"
    for g in groups:
        assert len(g) <= max_rows
        if max_tokens is not None and len(g) > 1:
            assert len(g) * lengths[g[0]] <= max_tokens
    assert plan(lengths, max_rows, max_tokens) == groups


def test_a_budget_packs_short_rows_together():
    assert plan([10, 2, 2, 2, 2, 10], 100, 20) == [[0, 5], [1, 2, 3, 4]]


def test_micro_batches_are_cut_to_their_longest_row_and_gather_back(batch):
    micro = micro_batches(batch, 100, 3 * int(batch.seq_lengths.min()))
    assert len(micro) > 1
    for mb in micro:
        rows = batch.rows(mb.index)
        t = int(rows.seq_lengths.max())
        assert mb.batch.input_ids.shape == (len(mb.index), t)
        assert torch.equal(mb.batch.input_ids, rows.input_ids[:, :t])
        assert torch.equal(mb.batch.loss_mask, rows.loss_mask[:, :t])
        assert torch.equal(mb.batch.rewards, rows.rewards)
    assert torch.equal(gather([mb.batch.loss_mask for mb in micro], micro, batch.loss_mask), batch.loss_mask)
    real = batch.attention_mask.bool()
    back = gather([mb.batch.input_ids for mb in micro], micro, batch.loss_mask)
    assert torch.equal(back[real], batch.input_ids[real].to(back.dtype))


@pytest.mark.parametrize("name", ["grpo", "opo", "st_ppo"])
def test_pi_old_from_the_loss_is_the_separate_pass(name, model64, batch):
    """On an exactly on-policy step the learner skips the separate pi_old pass; the update
    and every metric are those of the step that pays for it."""
    results = []
    for from_loss in (True, False):
        model = copy.deepcopy(model64)
        algo = make(name)
        algo.old_logprobs_in_loss_only = from_loss  # the instance's answer decides
        learner = TorchLearner(model, algo, LearnerConfig(precision="fp64", lr=1e-2, micro_batch_size=5))
        assert learner.pi_old_from_loss is from_loss
        metrics = learner.train_step(copy.deepcopy(batch))
        results.append((metrics, model.state_dict()))
    (m1, w1), (m2, w2) = results
    assert m1.keys() == m2.keys()
    for key in m1:
        assert m1[key] == pytest.approx(m2[key], rel=1e-9, abs=1e-12), key
    for key in w1:
        assert torch.allclose(w1[key], w2[key], rtol=0, atol=1e-12), key
    assert any(not torch.equal(w1[k], model64.state_dict()[k]) for k in w1), "the step moved the weights"


def test_pi_old_has_its_own_pass_whenever_the_step_is_not_exactly_on_policy(model64):
    assert TorchLearner(copy.deepcopy(model64), make("grpo")).pi_old_from_loss
    assert not TorchLearner(copy.deepcopy(model64), make("grpo"), LearnerConfig(minibatches=2)).pi_old_from_loss
    assert not TorchLearner(copy.deepcopy(model64), make("grpo"), LearnerConfig(epochs=2)).pi_old_from_loss
    config = LearnerConfig(recompute_old_logprobs=False)
    assert not TorchLearner(copy.deepcopy(model64), make("grpo"), config).pi_old_from_loss
    assert not TorchLearner(copy.deepcopy(model64), make("vcpo")).pi_old_from_loss  # reads pi_old in its advantages
    assert not TorchLearner(copy.deepcopy(model64), make("ppo")).pi_old_from_loss  # a value head
