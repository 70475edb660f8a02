"""Hand-computed numbers for the aggregation, the clipped surrogate, the mismatch
correction and the reference objectives (reinforce, grpo, opo, ppo)."""

import math

import pytest
import torch

from agentrl.algos import GlobalCounts, LossInputs, aggregate, make
from agentrl.algos.advantages import gae, group_normalized, leave_one_out, length_weighted_baseline
from agentrl.algos.base import mismatch_weights
from agentrl.algos.core import clipped_surrogate
from agentrl.batch import TokenBatch
from agentrl.errors import ConfigError


def tiny_batch(rewards, groups, lengths, length=None):
    length = length or max(lengths) + 1
    mask = torch.zeros(len(rewards), length, dtype=torch.float64)
    for i, n in enumerate(lengths):
        mask[i, 1 : 1 + n] = 1
    batch = TokenBatch(
        input_ids=torch.zeros(len(rewards), length, dtype=torch.long),
        attention_mask=torch.ones(len(rewards), length, dtype=torch.long),
        loss_mask=mask,
        behavior_logprobs=-0.5 * mask,
        turn_index=torch.where(mask > 0, 0, -1),
        policy_version=torch.where(mask > 0, 0, -1),
        rewards=torch.tensor(rewards, dtype=torch.float64),
        group_index=torch.tensor(groups),
        truncated=torch.zeros(len(rewards), dtype=torch.bool),
        num_tool_calls=torch.zeros(len(rewards), dtype=torch.float64),
    )
    batch = batch.with_fields(old_logprobs=batch.behavior_logprobs.clone())
    return batch


def test_aggregations_by_hand():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    counts = GlobalCounts.of(mask, norm_constant=10)
    assert aggregate(loss, mask, "token-mean", counts).item() == pytest.approx(10 / 4)
    assert aggregate(loss, mask, "seq-mean-token-mean", counts).item() == pytest.approx((2 + 4) / 2)
    assert aggregate(loss, mask, "seq-mean-token-sum", counts).item() == pytest.approx((6 + 4) / 2)
    assert aggregate(loss, mask, "seq-mean-token-sum-norm", counts).item() == pytest.approx(10 / 10)
    assert GlobalCounts.of(mask).norm_constant == 3  # default C: the longest response


def test_clipped_surrogate_by_hand():
    e = math.e
    ratio = torch.tensor([e, e, e, 0.5])
    adv = torch.tensor([1.0, -1.0, 2.0, 1.0])
    out = clipped_surrogate(ratio, adv, 0.2, 0.2)
    # A > 0 and r = e: clipped to 1.2; A < 0 and r = e: the unclipped -e*A is larger, kept
    assert out.per_token.tolist() == pytest.approx([-1.2, e, -2.4, -0.5])
    assert out.clipped_high.tolist() == [True, False, True, False]
    assert out.clipped_low.tolist() == [False, False, False, False]  # r = 0.5, A > 0: min keeps 0.5 A
    dual = clipped_surrogate(torch.tensor([10.0]), torch.tensor([-1.0]), 0.2, 0.2, dual_clip=3.0)
    assert dual.per_token.item() == pytest.approx(3.0)  # -c A caps the loss at 3


def test_opo_baseline_numbers():
    lengths, rewards = torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0])
    a = length_weighted_baseline(rewards, torch.tensor([0, 0]), lengths)
    assert a.tolist() == pytest.approx([0.75, -0.25])  # b = 0.25
    assert float((lengths * a).sum()) == pytest.approx(0.0)  # sum |y| A = 0
    equal = length_weighted_baseline(torch.tensor([1.0, 0.0, 0.5]), torch.tensor([0, 0, 0]), torch.tensor([2.0] * 3))
    assert equal.tolist() == pytest.approx([0.5, -0.5, 0.0])  # equal lengths: b = mean R
    assert length_weighted_baseline(torch.tensor([1.0]), torch.tensor([0]), torch.tensor([4.0])).tolist() == [0.0]


def test_opo_batch_uses_the_whole_batch():
    batch = tiny_batch([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1], [1, 3, 2, 2])
    per_group = make("opo").advantages(batch)
    whole = make("opo_batch").advantages(batch)
    assert per_group[2].sum() == 0  # group 1 has equal rewards
    b = (1 * 1 + 0 * 3 + 1 * 2 + 1 * 2) / 8
    assert whole[0, 1].item() == pytest.approx(1 - b) and whole[2, 1].item() == pytest.approx(1 - b)


def test_grpo_advantages_and_loss_by_hand():
    batch = tiny_batch([1.0, 0.0, 0.5], [0, 0, 1], [2, 1, 1])
    algo = make("grpo")
    adv = algo.advantages(batch)
    std = math.sqrt(0.5)  # unbiased std of [1, 0]
    assert adv[0, 1].item() == pytest.approx(0.5 / (std + 1e-6))
    assert adv[1, 1].item() == pytest.approx(-0.5 / (std + 1e-6))
    assert adv[2].abs().sum() == 0  # singleton group
    batch = batch.with_fields(advantages=adv)
    logprobs = (batch.old_logprobs + 1.0 * batch.loss_mask).requires_grad_(True)  # ratio e everywhere
    out = algo.loss(LossInputs(logprobs), batch, GlobalCounts.of(batch.loss_mask))
    a = 0.5 / (std + 1e-6)
    # tokens: two of row 0 (A > 0, clipped to 1.2), one of row 1 (A < 0, unclipped e), one of row 2 (A = 0)
    assert out.loss.item() == pytest.approx((-1.2 * a * 2 + math.e * a) / 4)
    assert out.metrics["loss/clipfrac_high"].item() == pytest.approx(2 / 4)


def test_rloo_identity():
    r, g = torch.tensor([1.0, 0.0, 0.5, 0.2]), torch.tensor([0, 0, 0, 0])
    assert leave_one_out(r, g).tolist() == pytest.approx([(4 / 3) * (x - r.mean().item()) for x in r.tolist()])


def test_group_normalized_singleton_and_constant_groups():
    out = group_normalized(torch.tensor([1.0, 1.0, 0.3]), torch.tensor([0, 0, 1]))
    assert out.tolist() == [0.0, 0.0, 0.0]


def test_gae_by_hand_with_observation_gap():
    mask = torch.tensor([[0.0, 1, 1, 0, 0, 1, 0]])
    values = torch.tensor([[0.0, 0.2, 0.4, 9, 9, 0.5, 0.0]])  # values on observation tokens are ignored
    adv, returns = gae(torch.tensor([1.0]), values, mask)
    # gamma = lambda = 1: A_t = R - V_t on every generated token
    assert adv[0].tolist() == pytest.approx([0, 0.8, 0.6, 0, 0, 0.5, 0])
    assert returns[0].tolist() == pytest.approx([0, 1, 1, 0, 0, 1, 0])
    adv, _ = gae(torch.tensor([1.0]), values, mask, gamma=0.5, lam=1.0)
    # last: 1 - 0.5 = 0.5; middle: 0 + 0.5*0.5 - 0.4 + 0.5*0.5 = 0.1; first: 0.5*0.4 - 0.2 + 0.5*0.1 = 0.05
    assert adv[0, [5, 2, 1]].tolist() == pytest.approx([0.5, 0.1, 0.05])


def test_ppo_value_loss_is_clipped():
    batch = tiny_batch([1.0], [0], [1])
    batch = batch.with_fields(old_values=torch.zeros_like(batch.loss_mask))
    algo = make("ppo", vf_coef=1.0, value_clip=0.2)
    batch = algo.with_advantages(batch)  # A = 1 - 0 on the one token, returns 1
    values = (batch.old_values + 0.5 * batch.loss_mask).requires_grad_(True)
    out = algo.loss(
        LossInputs(batch.old_logprobs.clone().requires_grad_(True), values=values),
        batch,
        GlobalCounts.of(batch.loss_mask),
    )
    # V = 0.5 clipped to 0.2; returns 1: 0.5 * max(0.25, 0.64) = 0.32; policy part -1
    assert out.metrics["loss/value"].item() == pytest.approx(0.32)
    assert out.loss.item() == pytest.approx(-1 + 0.32)


def test_reinforce_loss_by_hand():
    batch = tiny_batch([1.0, 0.0], [0, 0], [1, 1])
    algo = make("reinforce")
    batch = batch.with_fields(advantages=algo.advantages(batch))
    out = algo.loss(
        LossInputs(batch.old_logprobs.clone().requires_grad_(True)), batch, GlobalCounts.of(batch.loss_mask)
    )
    # A = [0.5, -0.5], log pi = -0.5: loss = mean(-A log pi) = (0.25 - 0.25) / 2
    assert out.loss.item() == pytest.approx(0.0)
    assert batch.advantages[:, 1].tolist() == [0.5, -0.5]


def test_mismatch_correction_numbers():
    batch = tiny_batch([1.0, 0.0], [0, 0], [1, 1])
    batch = batch.with_fields(
        old_logprobs=batch.behavior_logprobs
        + torch.log(torch.tensor([[1.0], [3.0]], dtype=torch.float64)) * batch.loss_mask
    )
    algo = make("reinforce", mismatch="token", mismatch_cap=2.0)
    batch = batch.with_fields(advantages=algo.advantages(batch))
    logprobs = batch.old_logprobs.clone().requires_grad_(True)
    out = algo.loss(LossInputs(logprobs), batch, GlobalCounts.of(batch.loss_mask))
    # weights min(pi_old / mu, 2) = [1, 2]
    want = (-0.5 * -0.5 * 1 + 0.5 * (-0.5 + math.log(3)) * 2) / 2
    assert out.loss.item() == pytest.approx(want)
    assert out.metrics["mismatch/ratio/max"].item() == pytest.approx(3.0)
    assert out.metrics["mismatch/frac_outside_0.9_1.1"].item() == pytest.approx(0.5)
    assert out.metrics["mismatch/capped_frac"].item() == pytest.approx(0.5)  # the row at ratio 3 > cap 2
    masked = make("reinforce", mismatch="token", mismatch_mask=True, mismatch_low=0.5, mismatch_high=2.0)
    out = masked.loss(LossInputs(logprobs), batch, GlobalCounts.of(batch.loss_mask))
    assert out.loss.item() == pytest.approx(-0.5 * -0.5 / 2)  # the row at ratio 3 is masked out


def test_turn_mismatch_weights_each_turn_by_its_own_geometric_mean():
    """One row, two turns of two tokens each (sampled by different versions): pi_old / mu is
    [1, 4] on turn 0 and [2, 2] on turn 1, so the turn weights are sqrt(4) = 2 and 2; with cap 1.5
    both truncate to 1.5. Per token the weights would be [1, 1.5, 1.5, 1.5]."""
    mask = torch.tensor([[0.0, 1, 1, 0, 1, 1]], dtype=torch.float64)
    turns = torch.tensor([[-1, 0, 0, -1, 1, 1]])
    behavior = -0.5 * mask
    old = behavior + torch.log(torch.tensor([[1.0, 1, 4, 1, 2, 2]], dtype=torch.float64)) * mask
    counts = GlobalCounts.of(mask)
    turn, _ = mismatch_weights(old, behavior, mask, make("reinforce", mismatch="turn").config, counts, turns)
    assert turn[0].tolist() == pytest.approx([0, 2, 2, 0, 2, 2])
    capped, _ = mismatch_weights(
        old, behavior, mask, make("reinforce", mismatch="turn", mismatch_cap=1.5).config, counts, turns
    )
    assert capped[0].tolist() == pytest.approx([0, 1.5, 1.5, 0, 1.5, 1.5])
    token, _ = mismatch_weights(
        old, behavior, mask, make("reinforce", mismatch="token", mismatch_cap=1.5).config, counts, turns
    )
    assert token[0].tolist() == pytest.approx([0, 1, 1.5, 0, 1.5, 1.5])


def test_bad_objective_configs():
    with pytest.raises(ConfigError, match="aggregation='mean' is not allowed"):
        make("grpo", aggregation="mean")
    with pytest.raises(ConfigError, match="unknown option 'clip'"):
        make("grpo", clip=0.2)
    with pytest.raises(ConfigError, match="clip_low"):
        make("grpo", clip_low=1.5)
    from agentrl.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"unknown algorithm 'nope'; known: .*grpo"):
        make("nope")
