"""Turn-PPO, S-PPO and ST-PPO (docs/algorithms.md#turn_ppo, #s_ppo,
#st_ppo): turn ratios by hand, the reductions
(one turn = sequence-level PPO, one-token turns = token PPO, r = 1 gives the policy
gradient) and the clipping-bias correction (S-PPO = PPO when nothing is clipped)."""

import math

import pytest
import torch
from batches import counts_of, leaf_inputs, make_batch, prepared

from agentrl.algos import aggregate, make
from agentrl.algos.advantages import turn_gae
from agentrl.algos.clip import ClipConfig, ppo_token_loss
from agentrl.algos.core import broadcast, clipped_surrogate, turn_mean
from agentrl.algos.s_ppo import SPPOConfig, clip_correction
from agentrl.algos.turn_ppo import turn_log_ratio
from agentrl.errors import ConfigError

D = torch.float64


def loss_and_grad(name, batch, shift, **options):
    algo = make(name, **options)
    inputs = leaf_inputs(batch, shift)
    out = algo.loss(inputs, batch, counts_of(algo, batch))
    out.loss.backward()
    return out, inputs.logprobs.grad


def one_turn(batch):
    batch = batch.with_fields(turn_index=torch.where(batch.loss_mask > 0, 0, -1))
    return batch


def one_token_turns(batch):
    batch = batch.with_fields(turn_index=torch.where(batch.loss_mask > 0, batch.loss_mask.cumsum(-1).long() - 1, -1))
    return batch


# --- turn ratios ---


def test_turn_mean_by_hand():
    """Row 0: turn 0 = [0.1, 0.3], an observation, turn 1 = [0.2]; row 1: [0.1, 0.5] | [0.9]."""
    values = torch.tensor([[0.0, 0.1, 0.3, 7.0, 0.2], [0.1, 0.5, 0.9, 7.0, 0.0]], dtype=D)
    mask = torch.tensor([[0, 1, 1, 0, 1], [1, 1, 1, 0, 0]], dtype=D)
    turns = torch.tensor([[-1, 0, 0, -1, 1], [0, 0, 1, -1, -1]])
    expected = torch.tensor([[0.0, 0.2, 0.2, 0.0, 0.2], [0.3, 0.3, 0.9, 0.0, 0.0]], dtype=D)
    assert torch.allclose(turn_mean(values, turns, mask), expected)


def test_turn_log_ratio_has_the_turn_value_and_the_token_gradient():
    old = torch.zeros(1, 4, dtype=D)
    logprobs = torch.tensor([[0.1, 0.3, -0.4, 0.0]], dtype=D, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0]], dtype=D)
    log_s = turn_log_ratio(logprobs, old, torch.tensor([[0, 0, 1, -1]]), mask)
    assert torch.allclose(log_s, torch.tensor([[0.2, 0.2, -0.4, 0.0]], dtype=D))
    log_s.exp().sum().backward()  # d s_t / d logp_t = s_t (rho of its turn), nothing across tokens
    assert torch.allclose(logprobs.grad, torch.tensor([[math.exp(0.2), math.exp(0.2), math.exp(-0.4), 0.0]], dtype=D))


# --- Turn-PPO reductions ---


def test_one_turn_is_sequence_level_ppo():
    """A single turn per row gives GSPO's s_i = exp(mean_t log r) (here differentiated directly)."""
    options = {"aggregation": "seq-mean-token-mean", "clip_low": 0.05, "clip_high": 0.05}
    batch = one_turn(prepared(make("turn_ppo"), make_batch(seed=12)))
    out, grad = loss_and_grad("turn_ppo", batch, 0.3, **options)
    assert out.metrics["loss/clipfrac_low"] + out.metrics["loss/clipfrac_high"] > 0, "some rows should clip"
    logprobs = leaf_inputs(batch, 0.3).logprobs
    mask = batch.loss_mask
    seq_ratio = (((logprobs - batch.old_logprobs) * mask).sum(-1) / batch.lengths).exp()  # (B,)
    direct = clipped_surrogate(broadcast(seq_ratio, mask), batch.advantages, 0.05, 0.05).per_token
    expected = aggregate(direct, mask, "seq-mean-token-mean", counts_of(make("turn_ppo"), batch))
    expected.backward()
    assert torch.allclose(out.loss, expected, atol=1e-12)
    assert torch.allclose(grad, logprobs.grad, atol=1e-12)
    assert grad.abs().sum() > 0


def test_one_token_turns_are_token_level_ppo():
    config = ClipConfig(clip_low=0.1, clip_high=0.1)
    batch = one_token_turns(prepared(make("turn_ppo"), make_batch(seed=8)))
    out, grad = loss_and_grad("turn_ppo", batch, 0.3, clip_low=0.1, clip_high=0.1)
    logprobs = leaf_inputs(batch, 0.3).logprobs
    counts = counts_of(make("turn_ppo"), batch)
    per_token, metrics = ppo_token_loss(logprobs, batch.old_logprobs, batch.advantages, batch.loss_mask, config, counts)
    aggregate(per_token, batch.loss_mask, "token-mean", counts).backward()
    assert metrics["loss/clipfrac_low"] + metrics["loss/clipfrac_high"] > 0
    assert torch.allclose(out.metrics["loss/policy"], metrics["loss/policy"], atol=1e-12)
    assert torch.allclose(grad, logprobs.grad, atol=1e-12)


@pytest.mark.parametrize("name", ["turn_ppo", "st_ppo"])
def test_multi_turn_gradient_at_ratio_one_is_the_policy_gradient(name):
    batch = prepared(make(name), make_batch(seed=9))
    assert int(batch.turn_index.max()) == 1, "rows should have two turns"
    _, grad = loss_and_grad(name, batch, 0.0)
    logprobs = leaf_inputs(batch).logprobs
    aggregate(-batch.advantages * logprobs, batch.loss_mask, "token-mean", counts_of(make(name), batch)).backward()
    assert torch.allclose(grad, logprobs.grad, atol=1e-12)


def test_advantage_modes():
    batch = make_batch(seed=10, rows=4, group=4)
    batch = batch.with_fields(rewards=torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=D))
    first = batch.loss_mask.argmax(-1)[:, None]  # each row's first generated token
    plain = make("turn_ppo", advantage="group").advantages(batch).gather(1, first)[:, 0]
    assert torch.allclose(plain, torch.tensor([0.5, -0.5, -0.5, 0.5], dtype=D))
    std = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1]
    normed = make("turn_ppo").advantages(batch).gather(1, first)[:, 0]
    assert torch.allclose(normed, plain / (std + 1e-6))


# --- clipping-bias correction ---


@pytest.mark.parametrize("correction, weight", [("downweight", 0.75), ("renormalize", 4 / 3)])
def test_correction_weights_by_hand(correction, weight):
    """Row 0: one of four tokens clipped (r = e > 1.2, A > 0): f = 1/4; row 1: none clipped;
    row 2: every token clipped."""
    log_ratio = torch.tensor([[0.0, 0.0, 1.0, 0.0], [0.1, -0.1, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]], dtype=D)
    advantages = torch.ones(3, 4, dtype=D)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]], dtype=D)
    weights, fraction = clip_correction(log_ratio, advantages, mask, SPPOConfig(correction=correction))
    assert torch.allclose(fraction, torch.tensor([0.25, 0.0, 1.0], dtype=D))
    all_clipped = 0.0 if correction == "downweight" else 1.0
    assert torch.allclose(weights, torch.tensor([weight, 1.0, all_clipped], dtype=D))


@pytest.mark.parametrize("correction", ["downweight", "renormalize"])
def test_s_ppo_equals_ppo_when_nothing_is_clipped(correction):
    batch = prepared(make("grpo"), make_batch(seed=11))
    ppo, ppo_grad = loss_and_grad("grpo", batch, 0.01)
    assert ppo.metrics["loss/clipfrac_low"] + ppo.metrics["loss/clipfrac_high"] == 0
    s, s_grad = loss_and_grad("s_ppo", batch, 0.01, correction=correction)
    assert torch.equal(s.loss, ppo.loss)
    assert torch.equal(s_grad, ppo_grad)


def test_s_ppo_down_weights_sequences_with_clipped_tokens():
    batch = prepared(make("grpo"), make_batch(seed=12))
    options = {"clip_low": 0.1, "clip_high": 0.1}
    ppo, ppo_grad = loss_and_grad("grpo", batch, 0.3, **options)
    s, s_grad = loss_and_grad("s_ppo", batch, 0.3, **options)
    log_ratio = (leaf_inputs(batch, 0.3).logprobs - batch.old_logprobs).detach() * batch.loss_mask
    flags = clipped_surrogate(log_ratio.exp(), batch.advantages, 0.1, 0.1)
    clipped = ((flags.clipped_low | flags.clipped_high).to(D) * batch.loss_mask).sum(-1)
    weights = 1 - clipped / batch.lengths
    assert (weights < 1).any() and (weights == 1).any()
    assert torch.allclose(s_grad, ppo_grad * weights[:, None], atol=1e-12)
    assert s.metrics["sppo/weight_mean"].item() == pytest.approx(weights.mean().item())
    assert s.loss.item() != pytest.approx(ppo.loss.item())


# --- ST-PPO = turn ratios + correction ---


def test_st_ppo_equals_turn_ppo_when_no_turn_is_clipped():
    batch = prepared(make("turn_ppo"), make_batch(seed=13))
    turn, turn_grad = loss_and_grad("turn_ppo", batch, 0.01)
    st, st_grad = loss_and_grad("st_ppo", batch, 0.01)
    assert torch.equal(st.loss, turn.loss) and torch.equal(st_grad, turn_grad)


def test_st_ppo_with_one_token_turns_equals_s_ppo():
    batch = one_token_turns(prepared(make("s_ppo"), make_batch(seed=14)))
    s, s_grad = loss_and_grad("s_ppo", batch, 0.3, clip_low=0.1, clip_high=0.1)
    st, st_grad = loss_and_grad("st_ppo", batch, 0.3, clip_low=0.1, clip_high=0.1)
    assert s.metrics["sppo/weight_mean"] < 1
    assert torch.allclose(st.loss, s.loss, atol=1e-12) and torch.allclose(st_grad, s_grad, atol=1e-12)


def test_st_ppo_weights_rows_by_their_share_of_clipped_turns():
    """ST-PPO = Turn-PPO x sg(1 - share of the row's tokens in clipped turns)."""
    options = {"clip_low": 0.05, "clip_high": 0.05}
    batch = prepared(make("turn_ppo"), make_batch(seed=15))
    _, turn_grad = loss_and_grad("turn_ppo", batch, 0.3, **options)
    _, st_grad = loss_and_grad("st_ppo", batch, 0.3, **options)
    mask = batch.loss_mask
    log_s = turn_log_ratio(leaf_inputs(batch, 0.3).logprobs, batch.old_logprobs, batch.turn_index, mask).detach()
    flags = clipped_surrogate(log_s.exp(), batch.advantages, 0.05, 0.05)
    clipped = (flags.clipped_low | flags.clipped_high).to(D) * mask
    for row in range(batch.size):  # a turn is clipped as a whole
        for k in (0, 1):
            in_turn = clipped[row][batch.turn_index[row] == k]
            assert bool((in_turn == in_turn[0]).all())
    weights = 1 - clipped.sum(-1) / batch.lengths
    assert (weights < 1).any() and (weights == 1).any()
    assert torch.allclose(st_grad, turn_grad * weights[:, None], atol=1e-12)


@pytest.mark.parametrize(
    "name, options",
    [
        ("turn_ppo", {"advantage": "critic"}),
        ("s_ppo", {"correction": "batch"}),
        ("st_ppo", {"clip_low": 2}),
        ("st_ppo", {"lam": 1.5}),
    ],
)
def test_bad_options_are_one_line_config_errors(name, options):
    with pytest.raises(ConfigError):
        make(name, **options)


# --- the turn-level critic (advantage=gae) ---


def two_turn_row():
    """One row: prompt, turn 0 (2 tokens), an observation, turn 1 (3 tokens)."""
    mask = torch.tensor([[0, 1, 1, 0, 1, 1, 1]], dtype=D)
    turn_index = torch.tensor([[-1, 0, 0, -1, 1, 1, 1]])
    values = torch.tensor([[9.0, 0.2, 7.0, 9.0, 0.5, 7.0, 7.0]], dtype=D)  # only each turn's first token counts
    return mask, turn_index, values


def test_turn_gae_by_hand():
    mask, turn_index, values = two_turn_row()
    advantages, returns, weights = turn_gae(torch.tensor([1.0], dtype=D), values, mask, turn_index, 0.9, 0.8)
    # turn 1 (last): delta = 1 + 0.9 * 0 - 0.5 = 0.5; turn 0: delta = 0 + 0.9 * 0.5 - 0.2 = 0.25,
    # A_0 = 0.25 + 0.9 * 0.8 * 0.5 = 0.61; G = A + V
    expected_a = torch.tensor([[0, 0.61, 0.61, 0, 0.5, 0.5, 0.5]], dtype=D)
    expected_g = torch.tensor([[0, 0.81, 0.81, 0, 1.0, 1.0, 1.0]], dtype=D)
    assert torch.allclose(advantages, expected_a) and torch.allclose(returns, expected_g)
    assert weights.tolist() == [[0, 2, 0, 0, 3, 0, 0]]


def test_one_turn_gae_is_reward_minus_the_first_value():
    batch = one_turn(make_batch(seed=12))
    algo = make("turn_ppo", advantage="gae")
    advantages = algo.with_advantages(batch).advantages
    first = batch.loss_mask.argmax(-1)
    expected = (batch.rewards - batch.old_values.gather(1, first[:, None])[:, 0])[:, None] * batch.loss_mask
    assert torch.allclose(advantages, expected)


@pytest.mark.parametrize("name", ["turn_ppo", "s_ppo", "st_ppo"])
def test_the_critic_asks_for_a_value_head_and_adds_the_turn_value_loss(name):
    assert not make(name).needs_value_head
    algo = make(name, advantage="gae", vf_coef=0.5)
    assert algo.needs_value_head
    batch = prepared(algo, make_batch(seed=13))
    inputs = leaf_inputs(batch, shift=0.05)
    with_value = algo.loss(inputs, batch, counts_of(algo, batch))
    without = make(name, advantage="gae", vf_coef=0.0).loss(inputs, batch, counts_of(algo, batch))
    value = with_value.metrics["loss/value"]
    assert value > 0 and torch.isclose(with_value.loss - without.loss, 0.5 * value)
    with_value.loss.backward()
    grad = inputs.values.grad
    starts = prepared_weights(batch) > 0
    assert (grad[~starts] == 0).all() and (grad[starts] != 0).any()  # only each turn's first value learns


def prepared_weights(batch):
    from agentrl.algos.turn_ppo import TurnValuePrepared

    return batch.prepared_as(TurnValuePrepared).weights


@pytest.mark.parametrize("name", ["turn_ppo", "st_ppo"])
def test_token_spread_is_the_largest_single_token_move(name):
    """Within a turn the geometric mean hides a single token's move; the metric shows it."""
    batch = prepared(make(name), make_batch(seed=9))
    out, _ = loss_and_grad(name, batch, 0.3)
    logprobs = leaf_inputs(batch, 0.3).logprobs.detach()
    mask = batch.loss_mask
    expected = ((logprobs - batch.old_logprobs).exp() - 1).abs()[mask > 0].max()
    assert out.metrics["ratio/token_abs_dev/max"].item() == pytest.approx(expected.item())
    assert out.metrics["ratio/token_abs_dev/max"] > out.metrics["ratio/abs_dev/max"], "the turn mean should hide it"
