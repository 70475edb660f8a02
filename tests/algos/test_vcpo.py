"""VCPO (docs/algorithms.md#vcpo) with hand-computed numbers: the ESS learning-rate factor,
the optimal off-policy baseline (exact and cheap modes) and the truncated-IS loss."""

import math

import pytest
import torch
from batches import counts_of, leaf_inputs, make_batch, prepared

from agentrl.algos import GlobalCounts, LossInputs, make
from agentrl.algos.core import effective_sample_size
from agentrl.algos.vcpo import lr_factor, opob_baseline
from agentrl.batch import TokenBatch
from agentrl.errors import ConfigError

D = torch.float64


def tiny_batch(mask: list[list[float]], rewards: list[float], groups: list[int]) -> TokenBatch:
    """A hand-made batch: behaviour = old logprobs = -1 on generated tokens."""
    m = torch.tensor(mask, dtype=D)
    behavior = -m
    batch = TokenBatch(
        input_ids=torch.ones_like(m, dtype=torch.long),
        attention_mask=torch.ones_like(m, dtype=torch.long),
        loss_mask=m,
        behavior_logprobs=behavior,
        turn_index=torch.where(m > 0, 0, -1),
        policy_version=torch.where(m > 0, 0, -1),
        rewards=torch.tensor(rewards, dtype=D),
        group_index=torch.tensor(groups),
        truncated=torch.zeros(len(rewards), dtype=torch.bool),
        num_tool_calls=torch.zeros(len(rewards), dtype=D),
    )
    batch = batch.with_fields(old_logprobs=behavior.clone())
    return batch


def with_log_weights(batch: TokenBatch, log_w: list[float]) -> TokenBatch:
    """Set ``old_logprobs`` so that ``sum_t m (old - mu) = log_w`` per row (on its first token)."""
    first = batch.loss_mask.argmax(-1)
    old = batch.behavior_logprobs.clone()
    old[torch.arange(batch.size), first] += torch.tensor(log_w, dtype=old.dtype)
    batch = batch.with_fields(old_logprobs=old)
    return batch


# --- ESS learning-rate scaling ---


def test_equal_weights_give_ess_b_and_leave_the_lr_unchanged():
    algo = make("vcpo")
    batch = with_log_weights(make_batch(rows=4), [math.log(3.0)] * 4)
    factor, metrics = algo.lr_scale(batch)
    assert metrics["vcpo/ess"] == pytest.approx(4.0)
    assert metrics["vcpo/rho"] == pytest.approx(1.0)
    assert factor == pytest.approx(1.0)
    assert metrics["is/weight_mean"] == pytest.approx(3.0)


@pytest.mark.parametrize("big", [-1000.0, 1000.0])
def test_one_dominant_weight_gives_ess_one(big):
    """One non-zero weight (or one weight that overflows exp) -> ESS = 1, rho = 1/B."""
    log_w = [0.0, big, big, big] if big < 0 else [big, 0.0, 0.0, 0.0]
    factor, metrics = make("vcpo").lr_scale(with_log_weights(make_batch(rows=4), log_w))
    assert metrics["vcpo/ess"] == pytest.approx(1.0)
    assert metrics["vcpo/rho"] == pytest.approx(0.25)
    assert factor == pytest.approx(0.5)


def test_ess_of_1_1_2_4():
    batch = with_log_weights(make_batch(rows=4), [math.log(w) for w in (1, 1, 2, 4)])
    factor, metrics = make("vcpo").lr_scale(batch)
    assert metrics["vcpo/ess"] == pytest.approx(64 / 22)  # 2.909
    assert metrics["vcpo/rho"] == pytest.approx(64 / 88)  # 0.727
    assert factor == pytest.approx(math.sqrt(64 / 88))  # 0.853
    assert round(factor, 3) == 0.853
    assert metrics["is/weight/max"] == pytest.approx(4.0)
    assert metrics["is/weight_mean"] == pytest.approx(2.0)
    assert metrics["is/clipped_frac"] == 0.0
    linear, _ = make("vcpo", lr_rule="linear").lr_scale(batch)
    assert linear == pytest.approx(64 / 88)
    off, _ = make("vcpo", lr_rule="off").lr_scale(batch)
    assert off == 1.0
    half, _ = make("vcpo", rho_base=0.5).lr_scale(batch)
    assert half == 1.0  # rho 0.727 >= rho_base 0.5


def test_ess_from_clipped_weights_is_a_flag():
    batch = with_log_weights(make_batch(rows=4), [math.log(w) for w in (1, 1, 2, 4)])
    _, metrics = make("vcpo", is_cap=2.0, ess_clipped=True).lr_scale(batch)
    assert metrics["vcpo/ess"] == pytest.approx(36 / 10)  # w = [1, 1, 2, 2]
    assert metrics["is/clipped_frac"] == pytest.approx(0.25)
    assert effective_sample_size(torch.tensor([0.0, 0.0, math.log(2), math.log(4)], dtype=D)) == pytest.approx(64 / 22)


def test_lr_factor_rules():
    assert lr_factor(0.25, 1.0, "sqrt") == pytest.approx(0.5)
    assert lr_factor(0.25, 1.0, "linear") == pytest.approx(0.25)
    assert lr_factor(0.25, 0.5, "sqrt") == pytest.approx(math.sqrt(0.5))


# --- optimal off-policy baseline ---


def test_opob_with_equal_norms_and_weights_is_the_group_mean():
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.2, 0.4, 0.9], dtype=D)
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    b = opob_baseline(rewards, groups, torch.full((6,), 0.7, dtype=D), torch.full((6,), 3.0, dtype=D))
    assert torch.allclose(b, torch.tensor([0.5] * 3 + [0.5] * 3, dtype=D))


def test_opob_hand_value_and_advantages_exact_mode():
    """||g||^2 = [4, 1], w = [1, 1], R = [1, 0] -> b = 0.8; sigma = 0.5 -> A = [0.4, -1.6]."""
    b = opob_baseline(
        torch.tensor([1.0, 0.0], dtype=D),
        torch.tensor([0, 0]),
        torch.zeros(2, dtype=D),
        torch.tensor([4.0, 1.0], dtype=D),
    )
    assert torch.allclose(b, torch.tensor([0.8, 0.8], dtype=D))
    algo = make("vcpo", grad_norm="exact")
    assert algo.needs_grad_norms
    batch = tiny_batch([[1, 1, 0], [1, 0, 0]], [1.0, 0.0], [0, 0])
    batch = batch.with_fields(grad_sq_norm=torch.tensor([4.0, 1.0], dtype=D))
    advantages = algo.advantages(batch)
    assert torch.allclose(advantages, torch.tensor([[0.4, 0.4, 0.0], [-1.6, 0.0, 0.0]], dtype=D))


def test_cheap_mode_uses_lengths_and_matches_exact_mode_with_norms_equal_to_lengths():
    cheap = make("vcpo")
    assert cheap.config.grad_norm == "length" and not cheap.needs_grad_norms
    batch = tiny_batch([[1, 1, 1, 1], [1, 0, 0, 0]], [1.0, 0.0], [0, 0])  # |y| = [4, 1] -> b = 0.8
    assert torch.allclose(cheap.advantages(batch)[:, 0], torch.tensor([0.4, -1.6], dtype=D))
    batch = batch.with_fields(grad_sq_norm=batch.lengths.clone())
    assert torch.equal(make("vcpo", grad_norm="exact").advantages(batch), cheap.advantages(batch))
    batch = batch.with_fields(grad_sq_norm=torch.tensor([1.0, 1.0], dtype=D))  # equal norms: b = mean = 0.5
    assert torch.allclose(make("vcpo", grad_norm="exact").advantages(batch)[:, 0], torch.tensor([1.0, -1.0], dtype=D))


def test_exact_mode_without_grad_norms_says_what_is_missing():
    with pytest.raises(ValueError, match="grad_sq_norm"):
        make("vcpo", grad_norm="exact").advantages(tiny_batch([[1], [1]], [1.0, 0.0], [0, 0]))


def test_baseline_weights_use_pi_old_over_mu_squared():
    """w = [1, 2], equal lengths, R = [1, 0] -> b = (1 * 1 + 4 * 0) / (1 + 4) = 0.2."""
    batch = with_log_weights(tiny_batch([[1, 1], [1, 1]], [1.0, 0.0], [0, 0]), [0.0, math.log(2.0)])
    a = make("vcpo", std_normalize=False).advantages(batch)[:, 0]
    assert torch.allclose(a, torch.tensor([0.8, -0.2], dtype=D))
    batch = batch.with_fields(old_logprobs=None)  # recomputation skipped: pi_old = mu, w = 1, b = mean
    assert torch.allclose(make("vcpo", std_normalize=False).advantages(batch)[:, 0], torch.tensor([0.5, -0.5], dtype=D))


def test_the_opob_weights_by_hand():
    """w = [1, 16], cap 8, equal lengths, R = [1, 0]: unclipped b = (1 * 1 + 256 * 0) / (1 + 256) = 1/257;
    capped b = (1 * 1 + 64 * 0) / (1 + 64) = 1/65."""
    batch = with_log_weights(tiny_batch([[1, 1], [1, 1]], [1.0, 0.0], [0, 0]), [0.0, math.log(16.0)])
    plain = make("vcpo", std_normalize=False).advantages(batch)[:, 0]
    assert torch.allclose(plain, torch.tensor([1 - 1 / 257, -1 / 257], dtype=D))
    clipped = make("vcpo", std_normalize=False, opob_weight="capped").advantages(batch)[:, 0]
    assert torch.allclose(clipped, torch.tensor([1 - 1 / 65, -1 / 65], dtype=D))
    # authors: min(w, C)^2 w^2 = [1, 64 * 256]: b = 1 / (1 + 16384)
    authors = make("vcpo", std_normalize=False, opob_weight="authors").advantages(batch)[:, 0]
    assert torch.allclose(authors, torch.tensor([1 - 1 / 16385, -1 / 16385], dtype=D))


def test_batch_baseline_and_degenerate_groups():
    batch = tiny_batch([[1], [1], [1], [1], [1]], [1.0, 0.0, 0.6, 0.6, 0.3], [0, 0, 1, 1, 2])
    a = make("vcpo").advantages(batch)[:, 0]
    assert torch.allclose(a, torch.tensor([1.0, -1.0, 0.0, 0.0, 0.0], dtype=D))  # equal rewards, singleton: 0
    whole = make("vcpo", baseline="batch", std_normalize=False).advantages(batch)[:, 0]
    assert torch.allclose(whole, batch.rewards - 0.5)


# --- the loss ---


def test_loss_value_and_gradient_by_hand_with_truncation_at_c():
    """Row 0: log w = 0.5 over two tokens, A = 1; row 1: w = 10 > C = 8, A = -1.
    L = -(1/2) [e^0.5 * 1 * (-1 - 2) / 2 + 8 * (-1) * (-0.5) / 1]."""
    batch = tiny_batch([[0, 1, 1], [0, 1, 0]], [1.0, 0.0], [0, 1])
    batch = batch.with_fields(
        behavior_logprobs=torch.tensor([[0.0, -1.0, -2.5], [0.0, -0.5 - math.log(10.0), 0.0]], dtype=D)
    )
    batch = batch.with_fields(advantages=torch.tensor([[0.0, 1.0, 1.0], [0.0, -1.0, 0.0]], dtype=D))
    logprobs = torch.tensor([[0.0, -1.0, -2.0], [0.0, -0.5, 0.0]], dtype=D, requires_grad=True)
    algo = make("vcpo")
    out = algo.loss(LossInputs(logprobs), batch, counts_of(algo, batch))
    w0 = math.exp(0.5)
    assert out.loss.item() == pytest.approx(-0.5 * (w0 * -1.5 + 8 * -1 * -0.5))
    out.loss.backward()
    expected = torch.tensor([[0.0, -w0 / 4, -w0 / 4], [0.0, 4.0, 0.0]], dtype=D)
    assert torch.allclose(logprobs.grad, expected)
    assert out.metrics["is/loss_clipped_frac"].item() == pytest.approx(0.5)
    assert out.metrics["is/loss_weight/max"].item() == pytest.approx(10.0)
    assert out.metrics["is/loss_weight_mean"].item() == pytest.approx((w0 + 8) / 2)


def test_loss_weight_follows_the_current_policy_and_the_cap_is_a_flag():
    batch = tiny_batch([[1, 1], [1, 1]], [1.0, 0.0], [0, 0])
    batch = batch.with_fields(advantages=torch.tensor([[1.0, 1.0], [-1.0, -1.0]], dtype=D))
    counts = GlobalCounts.of(batch.loss_mask)
    grads = {}
    for cap in (8.0, 2.0):
        algo = make("vcpo", is_cap=cap)
        logprobs = (batch.behavior_logprobs + torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=D)).requires_grad_(True)
        algo.loss(LossInputs(logprobs), batch, counts).loss.backward()
        grads[cap] = logprobs.grad
    # row 0 has w = e^2 = 7.39: under C = 8 it is kept, under C = 2 it is truncated to 2
    assert torch.allclose(grads[8.0][0], torch.full((2,), -math.exp(2) / 4, dtype=D))
    assert torch.allclose(grads[2.0][0], torch.full((2,), -2 / 4, dtype=D))
    assert torch.allclose(grads[8.0][1], grads[2.0][1])  # row 1 is on-policy: w = 1


def test_on_policy_vcpo_is_seq_mean_reinforce():
    algo = make("vcpo")
    assert algo.config.aggregation == "seq-mean-token-mean"
    batch = prepared(algo, make_batch(seed=5))
    inputs = leaf_inputs(batch)
    out = algo.loss(inputs, batch, counts_of(algo, batch))
    per_seq = (-batch.advantages * inputs.logprobs.detach() * batch.loss_mask).sum(-1) / batch.lengths
    assert out.loss.item() == pytest.approx(per_seq.mean().item())
    assert out.metrics["is/loss_weight_mean"].item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "options",
    [{"lr_rule": "cosine"}, {"baseline": "prompt"}, {"grad_norm": "fast"}, {"is_cap": 0.0}, {"rho_base": 2.0}],
)
def test_bad_options_are_one_line_config_errors(options):
    with pytest.raises(ConfigError):
        make("vcpo", **options)
