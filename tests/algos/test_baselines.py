"""The group-baseline objectives of docs/algorithms.md (grpo to bapo) with hand-computed
numbers on tiny batches, and each row's check from the table. The generic identities
(on-policy gradient, micro-batch sums, masked tokens, mismatch neutrality) run over every
registered objective in test_contract.py."""

import math

import pytest
import torch
from batches import counts_of, leaf_inputs, make_batch, prepared

from agentrl.algos import GlobalCounts, LossInputs, make
from agentrl.algos.bapo import BAPOConfig, BAPOPrepared, adaptive_clip_bounds, positive_share
from agentrl.algos.dapo import overlong_penalty
from agentrl.algos.sapo import soft_gate
from agentrl.batch import TokenBatch

F64 = torch.float64
GRPO_EPS = 1e-6


def tiny_batch(rewards, lengths, groups, width=None, old=-1.0) -> TokenBatch:
    """One prompt token, then ``lengths[i]`` generated tokens with ``pi_old = mu = exp(old)``, then padding."""
    rows, width = len(rewards), width or 1 + max(lengths)
    mask = torch.zeros(rows, width, dtype=F64)
    attention = torch.zeros(rows, width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, 1 : 1 + n] = 1
        attention[i, : 1 + n] = 1
    behavior = old * mask
    batch = TokenBatch(
        input_ids=3 * attention,
        attention_mask=attention,
        loss_mask=mask,
        behavior_logprobs=behavior,
        turn_index=torch.where(mask > 0, 0, -1),
        policy_version=torch.where(mask > 0, 0, -1),
        rewards=torch.tensor(rewards, dtype=F64),
        group_index=torch.tensor(groups),
        truncated=torch.zeros(rows, dtype=torch.bool),
        num_tool_calls=torch.zeros(rows, dtype=F64),
    )
    batch = batch.with_fields(old_logprobs=behavior.clone())
    return batch


def run(algo, batch, log_ratios=None, counts=None):
    """Prepare ``batch``, set ``log pi = log pi_old + log_ratios[i]`` on each row's generated
    tokens, and return (loss output, the logprobs leaf after backward)."""
    batch = prepared(algo, batch)
    delta = torch.zeros_like(batch.loss_mask)
    for i, row in enumerate(log_ratios or []):
        delta[i, 1 : 1 + len(row)] = torch.tensor(row, dtype=F64)
    logprobs = (batch.old_logprobs + delta).requires_grad_(True)
    out = algo.loss(LossInputs(logprobs=logprobs), batch, counts or counts_of(algo, batch))
    out.loss.backward()
    return out, logprobs


def gen(batch, values):
    """The values of ``(B, T)`` ``values`` on generated tokens, row by row, as one flat list."""
    return values[batch.loss_mask > 0].tolist()


def flat(*rows):
    return [v for row in rows for v in row]


# dr_grpo ------------------------------------------------------------------------------------


def test_dr_grpo_hand_numbers():
    algo = make("dr_grpo")
    batch = tiny_batch([1.0, 0.0, 0.5, 0.5], [2, 1, 3, 1], [0, 0, 1, 1])
    batch = prepared(algo, batch)  # the batch the loss sees, for the checks below
    out, _ = run(algo, batch)
    assert gen(batch, batch.advantages) == flat([0.5, 0.5], [-0.5], [0.0] * 3, [0.0])  # R - mean, no std
    # sum of -A over generated tokens = -0.5 * 2 + 0.5 = -0.5, over C = longest response = 3
    assert out.loss.item() == pytest.approx(-0.5 / 3)
    assert algo.config.kl_coef == 0
    fixed, _ = run(make("dr_grpo", norm_constant=4.0), batch)
    assert fixed.loss.item() == pytest.approx(-0.125)


@pytest.mark.parametrize("norm_constant", [10.0, None])
@pytest.mark.parametrize("log_ratios", [None, [[0.3, -0.1], [0.5], [-0.4, 0.0, 0.2], [0.1]]])
def test_dr_grpo_is_invariant_to_padding_for_fixed_c(norm_constant, log_ratios):
    algo = make("dr_grpo", norm_constant=norm_constant)  # None: C = longest response, padding-free too
    rows = ([1.0, 0.0, 0.5, 0.2], [2, 1, 3, 1], [0, 0, 1, 1])
    (narrow, g_narrow), (wide, g_wide) = (run(algo, tiny_batch(*rows, width=w), log_ratios) for w in (4, 12))
    assert narrow.loss.item() == pytest.approx(wide.loss.item(), abs=1e-15)
    assert torch.equal(g_narrow.grad, g_wide.grad[:, :4])
    assert not g_wide.grad[:, 4:].any()


# rloo ---------------------------------------------------------------------------------------


def test_rloo_hand_numbers_and_the_g_over_g_minus_1_identity():
    algo = make("rloo")
    batch = tiny_batch([1.0, 0.0, 0.0], [1, 2, 1], [0, 0, 0])
    # token 0 of row 0 off-policy: r = 1.5 with A = 1 > 0 is clipped at 1.2
    batch = prepared(algo, batch)  # the batch the loss sees, for the checks below
    out, logprobs = run(algo, batch, [[math.log(1.5)]])
    assert gen(batch, batch.advantages) == pytest.approx(flat([1.0], [-0.5, -0.5], [-0.5]))
    # -1.2 * 1 + 0.5 * 2 + 0.5 over the 4 generated tokens
    assert out.loss.item() == pytest.approx((-1.2 + 1.0 + 0.5) / 4)
    assert out.metrics["loss/clipfrac_high"].item() == pytest.approx(0.25)
    assert logprobs.grad[0, 1].item() == 0.0  # clipped: no gradient
    big = make_batch(seed=6, rows=12, group=4)
    a = algo.advantages(big).sum(-1) / big.lengths  # (B,) the row's advantage
    mean = big.rewards.view(3, 4).mean(-1).repeat_interleave(4)
    assert torch.allclose(a, 4 / 3 * (big.rewards - mean), atol=1e-12)


# dapo ---------------------------------------------------------------------------------------


def test_dapo_overlong_penalty():
    lmax, lc = 20.0, 8.0
    lengths = torch.tensor([lmax - lc / 2, lmax - lc, 10.0, 18.0, lmax, 25.0], dtype=F64)
    assert overlong_penalty(lengths, lmax, lc).tolist() == [-0.5, 0.0, 0.0, -0.75, -1.0, -1.0]


def dapo_batch():
    # group 0: equal task rewards, one row overlong; group 1: mixed; group 2: a singleton
    return tiny_batch([1.0, 1.0, 1.0, 0.0, 1.0], [2, 4, 1, 2, 1], [0, 0, 1, 1, 2])


def test_dapo_hand_numbers():
    algo = make("dapo", max_response_tokens=4, overlong_buffer=2)
    assert (algo.config.clip_low, algo.config.clip_high, algo.config.aggregation) == (0.2, 0.28, "token-mean")
    batch = dapo_batch()
    batch = prepared(algo, batch)  # the batch the loss sees, for the checks below
    out, _ = run(algo, batch)
    a = 0.5 / (math.sqrt(0.5) + GRPO_EPS)  # two rewards 1 apart: mean +- 0.5, unbiased std sqrt(0.5)
    # shaped rewards [1, 0] in group 0 (L = 4 = Lmax -> -1), [1, 0] in group 1, singleton 0
    assert gen(batch, batch.advantages) == pytest.approx(flat([a] * 2, [-a] * 4, [a], [-a] * 2, [0.0]))
    assert algo.loss_mask(batch).sum(-1).tolist() == [0, 0, 1, 2, 0]  # task rewards: groups 0 and 2 dropped
    assert out.loss.item() == pytest.approx((-a + 2 * a) / 10)  # kept rows over all 10 generated tokens
    assert out.metrics["filter/zero_var_groups"].item() == 2
    assert out.metrics["filter/dropped_rows"].item() == 3
    assert out.metrics["reward/overlong_penalty"].item() == pytest.approx(-1 / 5)
    kept = run(algo, dapo_batch(), counts=GlobalCounts.of(algo.loss_mask(prepared(algo, dapo_batch()))))[0]
    assert kept.loss.item() == pytest.approx((-a + 2 * a) / 3)  # the learner's counts: kept tokens only
    shaped = make("dapo", max_response_tokens=4, overlong_buffer=2, filter_reward="shaped")
    out, _ = run(shaped, dapo_batch())
    assert out.metrics["filter/zero_var_groups"].item() == 1  # only the singleton
    assert out.loss.item() == pytest.approx((-2 * a + 4 * a - a + 2 * a) / 10)


def test_dapo_clip_higher_and_a_group_split_across_micro_batches():
    algo = make("dapo", max_response_tokens=4, overlong_buffer=2)
    batch = dapo_batch()
    # row 2 (A = a > 0) at r = 1.3 is clipped at 1.28; row 3 (A = -a) at r = 0.7 is clipped at 0.8
    ratios = [[0.0, 0.0], [0.0] * 4, [math.log(1.3)], [math.log(0.7), 0.0]]
    batch = prepared(algo, batch)  # the batch the loss sees, for the checks below
    out, logprobs = run(algo, batch, ratios)
    a = 0.5 / (math.sqrt(0.5) + GRPO_EPS)
    assert out.loss.item() == pytest.approx((-1.28 * a + 0.8 * a + a) / 10)
    assert out.metrics["loss/clipfrac_high"].item() == pytest.approx(0.1)
    assert out.metrics["loss/clipfrac_low"].item() == pytest.approx(0.1)
    counts, total, dropped = counts_of(algo, batch), torch.zeros((), dtype=F64), 0.0
    for rows in (slice(0, 1), slice(1, 3), slice(3, 5)):  # cuts group 0 in two
        part = batch.rows(rows)
        inputs = LossInputs(logprobs=logprobs.detach()[rows].clone().requires_grad_(True))
        piece = algo.loss(inputs, part, counts)
        total, dropped = total + piece.loss.detach(), dropped + piece.metrics["filter/zero_var_groups"].item()
    assert total.item() == pytest.approx(out.loss.item())
    assert dropped == pytest.approx(2)


# gspo ---------------------------------------------------------------------------------------


def test_gspo_hand_numbers():
    algo = make("gspo")
    assert (algo.config.clip_low, algo.config.clip_high) == (3e-4, 4e-4)
    batch = tiny_batch([1.0, 0.0], [2, 3], [0, 0])
    # row 0: log s = mean(0.1, 0.3) = 0.2, clipped at 1 + 4e-4 (A > 0); row 1: log s = 1e-4, inside
    batch = prepared(algo, batch)  # the batch the loss sees, for the checks below
    out, _ = run(algo, batch, [[0.1, 0.3], [1e-4, -2e-4, 4e-4]])
    a = 0.5 / (math.sqrt(0.5) + GRPO_EPS)
    assert out.loss.item() == pytest.approx((-1.0004 * a + math.exp(1e-4) * a) / 2)
    assert out.metrics["loss/clipfrac_high"].item() == pytest.approx(2 / 5)
    assert out.metrics["ratio/max"].item() == pytest.approx(math.exp(0.2))


@pytest.mark.parametrize("shift", [2e-4, 0.3])
def test_gspo_token_form_equals_sequence_form_for_per_sequence_advantages(shift):
    algo = make("gspo")
    batch = prepared(algo, make_batch(seed=7))
    counts = counts_of(algo, batch)
    token = leaf_inputs(batch, shift)
    out = algo.loss(token, batch, counts).loss
    out.backward()
    seq = leaf_inputs(batch, shift).logprobs
    mask, adv = batch.loss_mask, batch.advantages.sum(-1) / batch.lengths  # (B,) per-row advantage
    s = (((seq - batch.old_logprobs) * mask).sum(-1) / mask.sum(-1)).exp()  # gradient through the mean
    c = algo.config
    sequence = torch.maximum(-s * adv, -s.clamp(1 - c.clip_low, 1 + c.clip_high) * adv).mean()
    sequence.backward()
    assert torch.allclose(out, sequence, atol=1e-12)
    assert torch.allclose(token.logprobs.grad, seq.grad, atol=1e-12)


# cispo --------------------------------------------------------------------------------------


def test_cispo_hand_numbers():
    algo = make("cispo")
    assert (algo.config.clip_low, algo.config.clip_high) == (1.0, 3.0)  # weights in [0, 4]
    batch = tiny_batch([1.0, 0.0], [2, 1], [0, 0], old=-1.0)
    a = 0.5 / (math.sqrt(0.5) + GRPO_EPS)
    out, logprobs = run(algo, batch, [[math.log(0.5), math.log(6.0)], [0.0]])
    # -w A log pi with w = [0.5, 4 (6 truncated)] on row 0 and w = 1, A = -a on row 1, over 3 tokens
    lp = [-1 + math.log(0.5), -1 + math.log(6.0), -1.0]
    assert out.loss.item() == pytest.approx((-0.5 * a * lp[0] - 4 * a * lp[1] + a * lp[2]) / 3)
    assert gen(batch, logprobs.grad) == pytest.approx([-0.5 * a / 3, -4 * a / 3, a / 3])
    assert out.metrics["loss/clipfrac_high"].item() == pytest.approx(1 / 3)
    assert out.metrics["loss/clipfrac_low"].item() == 0


def test_cispo_is_the_ppo_gradient_inside_the_clip_range_and_nonzero_outside():
    cispo, ppo = make("cispo", clip_low=0.5, clip_high=2.0), make("grpo", clip_low=0.5, clip_high=2.0)
    batch = make_batch(seed=8)
    grads = []
    for algo in (cispo, ppo):
        ready = prepared(algo, batch)
        inputs = leaf_inputs(ready, shift=0.15)  # every ratio within [0.5, 3]
        algo.loss(inputs, ready, counts_of(algo, ready)).loss.backward()
        grads.append(inputs.logprobs.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-12)
    cispo, ppo = make("cispo", clip_low=0.2, clip_high=0.2), make("grpo")
    batch = tiny_batch([1.0, 0.0], [1, 1], [0, 0])
    (_, g_cispo), (_, g_ppo) = run(cispo, batch, [[math.log(1.5)], [0.0]]), run(ppo, batch, [[math.log(1.5)], [0.0]])
    a = 0.5 / (math.sqrt(0.5) + GRPO_EPS)
    assert g_ppo.grad[0, 1].item() == 0.0  # r = 1.5 > 1.2 with A > 0: PPO drops the token
    assert g_cispo.grad[0, 1].item() == pytest.approx(-1.2 * a / 2)  # CISPO keeps it with weight 1.2


# sapo ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1.0, 1.05, 3.0])
def test_sapo_gate_has_unit_slope_at_one(tau):
    r = torch.ones((), dtype=F64, requires_grad=True)
    f = soft_gate(r, torch.tensor(tau, dtype=F64))
    f.backward()
    assert r.grad.item() == pytest.approx(1.0, abs=1e-15)
    assert f.item() == pytest.approx(2 / tau)  # so the loss value at r = 1 is -2 A / tau, not -A


def test_sapo_hand_numbers():
    algo = make("sapo")
    assert algo.config.aggregation == "seq-mean-token-mean"
    batch = tiny_batch([1.0, 0.0], [1, 2], [0, 0])
    a = 0.5 / (math.sqrt(0.5) + GRPO_EPS)
    out, logprobs = run(algo, batch, [[0.5], [0.0, 0.0]])
    r = math.exp(0.5)
    sig = 1 / (1 + math.exp(-(r - 1)))  # tau_pos = 1 on row 0
    # row 0: -4 sig(r - 1) a; row 1 (tau_neg = 1.05, r = 1): -(4 / 1.05) (1/2) (-a) on both tokens
    assert out.loss.item() == pytest.approx((-4 * sig * a + 2 / 1.05 * a) / 2)
    # d/dlogp: -f'(r) r A with f'(r) = 4 sig (1 - sig); row 1 on policy: the policy gradient a / 2 / 2
    assert gen(batch, logprobs.grad) == pytest.approx([-4 * sig * (1 - sig) * r * a / 2, a / 4, a / 4])
    assert out.metrics["policy/soft_gate"].item() == pytest.approx((4 * sig * (1 - sig) + 2) / 3)


# opmd ---------------------------------------------------------------------------------------


def test_opmd_hand_numbers():
    algo = make("opmd")
    assert algo.config.tau == 0.1
    batch = tiny_batch([1.0, 0.0], [2, 1], [0, 0], old=-1.0)
    out, logprobs = run(algo, batch, [[0.2, -0.1], [0.0]])
    # A = +-0.5 (R - mean); -A log pi + 0.1 (log pi - log pi_old)^2, over 3 tokens
    expected = -0.5 * (-0.8) + 0.1 * 0.04 - 0.5 * (-1.1) + 0.1 * 0.01 + 0.5 * (-1.0)
    assert out.loss.item() == pytest.approx(expected / 3)
    assert gen(batch, logprobs.grad) == pytest.approx([(-0.5 + 0.04) / 3, (-0.5 - 0.02) / 3, 0.5 / 3])
    assert out.metrics["loss/opmd_penalty"].item() == pytest.approx(0.05 / 3)


# asymre -------------------------------------------------------------------------------------


def test_asymre_hand_numbers_and_singletons():
    batch = tiny_batch([1.0, 0.0, 1.0], [1, 2, 1], [0, 0, 1], old=-1.0)
    batch = prepared(make("asymre"), batch)  # the batch the loss sees, for the checks below
    out, logprobs = run(make("asymre"), batch)
    assert gen(batch, batch.advantages) == pytest.approx([0.6, -0.4, -0.4, 0.0])  # R - (mean - 0.1)
    assert out.loss.item() == pytest.approx((0.6 * 1.0 - 0.4 * 2.0) / 4)  # -A log pi, log pi = -1
    assert gen(batch, logprobs.grad) == pytest.approx([-0.6 / 4, 0.1, 0.1, 0.0])
    literal = make("asymre", singleton="beta")
    assert gen(batch, literal.advantages(batch))[3] == pytest.approx(0.1)


# reinforce_pp -------------------------------------------------------------------------------


def test_reinforce_pp_whitens_over_the_batch_tokens():
    algo = make("reinforce_pp")
    batch = tiny_batch([1.0, 0.0, 1.0, 1.0], [1, 3, 2, 2], [0, 0, 1, 1])
    batch = prepared(algo, batch)  # the batch the loss sees, for the checks below
    out, _ = run(algo, batch)
    # a = [0.5, -0.5, 0, 0]; over 8 tokens mu = -1/8, var = (0.625^2 + 3 * 0.375^2 + 4 * 0.125^2) / 8
    std = math.sqrt(0.875 / 8)
    expected = flat([0.625 / std], [-0.375 / std] * 3, [0.125 / std] * 4)
    assert gen(batch, batch.advantages) == pytest.approx(expected)
    tokens = batch.advantages[batch.loss_mask > 0]
    assert tokens.mean().item() == pytest.approx(0.0, abs=1e-12)
    assert tokens.var(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)
    assert out.loss.item() == pytest.approx(-tokens.sum().item() / 8, abs=1e-12)  # on policy: -mean A = 0
    rows = make("reinforce_pp", whiten_over="sequences")
    std = math.sqrt(0.5 / 4)  # mu = 0 over the 4 rows
    assert gen(batch, rows.advantages(batch)) == pytest.approx(flat([0.5 / std], [-0.5 / std] * 3, [0.0] * 4))


# bapo ---------------------------------------------------------------------------------------


def bapo_tokens():
    """(A, r) per token: two positive (one at r = 1.35) and three negative (r = 1.0, 0.75, 0.85)."""
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, -1.0]], dtype=F64)
    ratio = torch.tensor([[1.35, 1.0, 1.0, 0.75, 0.85]], dtype=F64)
    return ratio, adv, torch.ones_like(adv)


def test_bapo_positive_share_and_the_bound_search():
    ratio, adv, mask = bapo_tokens()
    # at [0.6, 1.2]: positive 1.0 (1.35 is clipped), negative 1.0 + 0.75 + 0.85
    assert positive_share(ratio, adv, mask, 0.6, 1.2) == pytest.approx(1.0 / 3.6)
    config = BAPOConfig(target_share=0.5, low_step=0.1, high_max=1.5, high_step=0.1)
    c_low, c_high, share = adaptive_clip_bounds(ratio, adv, mask, config)
    # step 1 ([0.7, 1.3]) changes nothing; step 2 ([0.8, 1.4]) lets 1.35 in and clips 0.75
    assert (c_low, c_high) == pytest.approx((0.8, 1.4))
    assert share == pytest.approx(2.35 / 4.2)
    high_target = BAPOConfig(target_share=0.9, low_step=0.1, high_max=1.5, high_step=0.1)
    assert adaptive_clip_bounds(ratio, adv, mask, high_target)[:2] == pytest.approx((0.9, 1.5))  # limits
    assert positive_share(ratio, torch.zeros_like(adv), mask, 0.6, 1.2) == 1.0  # nothing contributes


def test_bapo_prepare_stores_the_batch_bounds_and_the_loss_uses_them():
    algo = make("bapo", target_share=0.5, low_step=0.1, high_max=1.5, high_step=0.1)
    # one group of two: row 0 (R = 1) has the positive tokens, row 1 the negative ones
    batch = tiny_batch([1.0, 0.0], [2, 3], [0, 0])
    ratio, _, _ = bapo_tokens()
    log_r = torch.zeros_like(batch.loss_mask)
    log_r[0, 1:3] = ratio[0, :2].log()
    log_r[1, 1:4] = ratio[0, 2:].log()
    batch = batch.with_fields(behavior_logprobs=batch.old_logprobs - log_r)  # pi_old / mu = the ratios above
    batch = prepared(algo, batch)  # the batch the loss sees, for the checks below
    out, _ = run(algo, batch, [[math.log(1.3), 0.0], [0.0, math.log(0.85), 0.0]])
    assert batch.prepared_as(BAPOPrepared).clip_low.tolist() == pytest.approx([0.8, 0.8])
    assert batch.prepared_as(BAPOPrepared).clip_high.tolist() == pytest.approx([1.4, 1.4])
    assert out.metrics["bapo/clip_high/max"].item() == pytest.approx(1.4)
    assert out.metrics["bapo/positive_share/min"].item() == pytest.approx(2.35 / 4.2)
    a = 0.5 / (math.sqrt(0.5) + GRPO_EPS)
    # bounds [0.8, 1.4]: r = 1.3 (A > 0) and r = 0.85 (A < 0) are both inside, nothing clipped
    assert out.loss.item() == pytest.approx((-1.3 * a - a + a + 0.85 * a + a) / 5)
    assert out.metrics["loss/clipfrac_high"].item() == 0
    # ratio_source=start: r = 1, the share is the |A| share 2a / 5a = 0.4 whatever the bounds
    below, above = (make("bapo", ratio_source="start", target_share=t) for t in (0.3, 0.5))
    for algo, bounds in ((below, (0.6, 1.2)), (above, (0.9, 3.0))):  # above: unreachable, both go to their limits
        got = prepared(algo, batch).prepared_as(BAPOPrepared)
        assert (got.clip_low[0].item(), got.clip_high[0].item()) == bounds
    bare = tiny_batch([1.0], [1], [0])
    bare = bare.with_fields(advantages=torch.zeros_like(bare.loss_mask))
    with pytest.raises(ValueError, match="prepare"):
        make("bapo").loss(LossInputs(logprobs=bare.old_logprobs), bare, counts_of(below, bare))
