"""SPEAR (docs/algorithms.md#spear) with hand-computed numbers: the cosine schedules, the
tool-call bonus, advantages and row drops, the replay buffer (admission, eviction, firing,
power-of-two batches, P50 / gamma recalibration, checkpointing) and Clip-Cov (equals PPO
when nothing is eligible, picks max(1, floor(ratio N)) tokens that then get exactly zero
gradient, micro-batch invariant). The generic identities run in test_contract.py."""

import io
import math
from dataclasses import replace

import pytest
import torch
from batches import counts_of, leaf_inputs, make_batch, prepared

from agentrl.algos import LossInputs, aggregate, make
from agentrl.algos.clip import ppo_token_loss
from agentrl.algos.clip_cov import clip_cov_keep_mask, covariance
from agentrl.algos.core import clipped_surrogate
from agentrl.algos.drbot import repetitive_rows, top_std_groups
from agentrl.algos.replay import ReplayBuffer, largest_power_of_two
from agentrl.algos.schedules import self_imitation_weight, tool_bonus_weight, tool_call_bonus
from agentrl.algos.spear import SPEARPrepared
from agentrl.batch import TokenBatch
from agentrl.errors import ConfigError

F64 = torch.float64


# The settings these tests were written against: each new Dr.BoT filter off, no entropy bonus,
# Clip-Cov once per optimizer batch on pi_old with one setting (0.02 / 1 / 40). The tests of the
# reference's settings (below, "as the authors run it") use make("spear") as it comes.
BEFORE = {
    "group_filter_ratio": 1.0,
    "mask_repetitive": False,
    "entropy_coef": 0.0,
    "clip_cov_logprobs": "pi_old",
    "clip_cov_ratio": 0.02,
    "clip_cov_ub": 40.0,
}


def spear(**options):
    return make("spear", **(BEFORE | options))


def rows_batch(rewards, groups, tool_calls=None, truncated=None, version=0, seed=0, tool_turns=None) -> TokenBatch:
    """make_batch's token layout with the given per-row fields (tool turns = tool calls unless given)."""
    n = len(rewards)
    batch = make_batch(seed=seed, rows=n, group=1)
    batch = batch.with_fields(rewards=torch.tensor(rewards, dtype=F64))
    batch = batch.with_fields(group_index=torch.tensor(groups))
    calls = tool_calls if tool_calls is not None else [0] * n
    batch = batch.with_fields(num_tool_calls=torch.tensor(calls, dtype=F64))
    batch = batch.with_fields(num_tool_turns=torch.tensor(tool_turns if tool_turns is not None else calls, dtype=F64))
    batch = batch.with_fields(truncated=torch.tensor(truncated if truncated is not None else [False] * n))
    batch = batch.with_fields(policy_version=torch.where(batch.loss_mask > 0, version, -1))
    return batch


def row_values(batch: TokenBatch, values: torch.Tensor) -> list[float]:
    """The per-row value of a (B, T) tensor broadcast over loss_mask."""
    return ((values * batch.loss_mask).sum(-1) / batch.lengths).tolist()


# --- schedules ---------------------------------------------------------------------------


def test_schedules_at_zero_half_and_end():
    assert self_imitation_weight(0, 200) == 0.0 and tool_bonus_weight(0, 200) == 1.0
    assert math.isclose(self_imitation_weight(100, 200), 0.5) and math.isclose(tool_bonus_weight(100, 200), 0.5)
    for t in (200, 201, 1000):
        assert self_imitation_weight(t, 200) == 1.0 and tool_bonus_weight(t, 200) == 0.0
    assert self_imitation_weight(200, 200, coef=2.0) == 2.0
    assert math.isclose(self_imitation_weight(50, 100, coef=2.0), 1.0)


def test_tool_bonus_is_capped_at_one():
    calls = torch.tensor([0.0, 3.0, 10.0, 25.0])
    assert torch.allclose(tool_call_bonus(calls, 0, 200), torch.tensor([0.0, 0.3, 1.0, 1.0]))
    assert torch.allclose(tool_call_bonus(calls, 100, 200), torch.tensor([0.0, 0.15, 0.5, 0.5]))
    assert torch.equal(tool_call_bonus(calls, 200, 200), torch.zeros(4))


# --- advantages and row drops ------------------------------------------------------------


def test_advantages_by_hand_with_the_bonus():
    """R = [1, 0 | 0, 0], calls [2, 0 | 3, 1]: at t = 0, R' = [1.2, 0 | 0.3, 0.1] -> A = [0.6, -0.6 | 0.1, -0.1]."""
    algo = spear()
    batch = rows_batch([1, 0, 0, 0], [0, 0, 1, 1], tool_calls=[2, 0, 3, 1])
    expected = {0: [0.6, -0.6, 0.1, -0.1], 100: [0.55, -0.55, 0.05, -0.05], 200: [0.5, -0.5, 0.0, 0.0]}
    for step, values in expected.items():
        algo.begin_step(step)
        advantages = algo.advantages(batch)
        assert torch.allclose(torch.tensor(row_values(batch, advantages), dtype=F64), torch.tensor(values, dtype=F64))
        assert torch.equal(advantages * (1 - batch.loss_mask), torch.zeros_like(advantages))
    # at t = 200 the bonus is gone and group 1 (task rewards 0, 0) has zero variance
    assert algo.loss_mask(algo.with_advantages(batch)).sum(-1).tolist() == [*batch.lengths[:2].tolist(), 0.0, 0.0]


def test_the_bonus_counts_turns_that_call_a_tool_or_every_call():
    """Calls [2, 0 | 3, 1] made in turns [1, 0 | 1, 1] (parallel calls in rows 0 and 2). Counting
    turns (the default): R' = [1.1, 0 | 0.1, 0.1] -> A = [0.55, -0.55 | 0, 0]; counting calls:
    R' = [1.2, 0 | 0.3, 0.1] -> A = [0.6, -0.6 | 0.1, -0.1]."""
    batch = rows_batch([1, 0, 0, 0], [0, 0, 1, 1], tool_calls=[2, 0, 3, 1], tool_turns=[1, 0, 1, 1])
    for counts, values in (("turns", [0.55, -0.55, 0.0, 0.0]), ("calls", [0.6, -0.6, 0.1, -0.1])):
        algo = spear(bonus_counts=counts)
        algo.begin_step(0)
        got = torch.tensor(row_values(batch, algo.advantages(batch)), dtype=F64)
        assert torch.allclose(got, torch.tensor(values, dtype=F64))
    with pytest.raises(ValueError, match=r"no num_tool_turns: TokenBatch\.from_trajectories sets it"):
        spear().advantages(batch.with_fields(num_tool_turns=None))
    with pytest.raises(ConfigError, match="bonus_counts"):
        spear(bonus_counts="steps")


def test_zero_variance_groups_singletons_and_truncated_rows_leave_the_loss():
    rewards, groups = [1, 0, 0.5, 0.5, 1, 0, 1], [0, 0, 1, 1, 2, 2, 3]
    algo = spear(bonus_T=0)
    batch = rows_batch(rewards, groups, truncated=[False, False, False, False, True, False, False])
    advantages = algo.advantages(batch)
    assert row_values(batch, advantages) == [0.5, -0.5, 0.0, 0.0, 0.5, -0.5, 0.0]  # truncated rows count in the mean
    in_loss = algo.loss_mask(algo.with_advantages(batch)).sum(-1) > 0
    assert in_loss.tolist() == [True, True, False, False, False, True, False]
    kept = spear(bonus_T=0, mask_truncated=False, drop_zero_variance=False)
    assert torch.equal(kept.loss_mask(kept.with_advantages(batch)), batch.loss_mask)


def test_zero_variance_can_read_the_task_reward():
    """Group 1 differs only by tool calls: kept by default, dropped when the test reads the task reward."""
    batch = rows_batch([1, 0, 0, 0], [0, 0, 1, 1], tool_calls=[0, 0, 3, 1])
    for on, rows in (("augmented", [True] * 4), ("task", [True, True, False, False])):
        algo = spear(zero_variance_on=on)
        assert (algo.loss_mask(algo.with_advantages(batch)).sum(-1) > 0).tolist() == rows


def test_config_errors_are_one_line():
    for options in ({"tolerate_steps": 11}, {"recalibration": "mean"}, {"clip_cov_ub": 0.5}, {"gamma": 2}):
        with pytest.raises(ConfigError, match="spear"):
            spear(**options)


# --- replay buffer -----------------------------------------------------------------------


def test_admission_never_stores_non_positive_advantages():
    buffer = ReplayBuffer(buffer_size=4)
    batch = rows_batch([1, 0, 1, 0, 1], [0, 0, 1, 1, 2])
    stored = buffer.add(batch, torch.tensor([0.5, 0.0, -0.3, float("nan"), 1e-9], dtype=F64))
    assert stored == 2 and [e.advantage for e in buffer.entries] == [0.5, 1e-9]
    assert all(e.advantage > 0 for e in buffer.entries)
    row = buffer.entries[0].row
    length = int(batch.attention_mask[0].sum())
    assert row.input_ids.shape == (1, length)
    assert torch.equal(row.behavior_logprobs, batch.behavior_logprobs[:1, :length])


def test_after_step_admits_only_positive_rows_in_the_loss():
    algo = spear(bonus_T=0)
    batch = rows_batch([1, 0, 1, 0, 1, 1], [0, 0, 1, 1, 2, 2], truncated=[False, False, True, False, False, False])
    batch = algo.with_advantages(batch)
    algo.after_step(batch)
    # row 0: A = 0.5; row 2: A = 0.5 but truncated; group 2 has zero variance
    assert [e.reward for e in algo.buffer.entries] == [1.0]
    assert list(algo.buffer.history) == [0.5, 0.5, 1.0]


def test_eviction_by_version_age():
    buffer = ReplayBuffer(buffer_size=4, tolerate_steps=5)
    for version in (0, 5):
        buffer.add(rows_batch([1, 0], [0, 0], version=version), torch.tensor([0.5, 0.0], dtype=F64))
    assert [e.version for e in buffer.entries] == [0, 5]  # age 5 == tolerate_steps is kept
    buffer.add(rows_batch([1, 0], [0, 0], version=6), torch.tensor([0.5, 0.0], dtype=F64))
    assert [e.version for e in buffer.entries] == [5, 6]
    buffer.add(rows_batch([0, 0], [0, 0], version=12), torch.zeros(2, dtype=F64))  # nothing admitted, still ages
    assert buffer.entries == []


def fill(buffer: ReplayBuffer, rewards: list[float], advantages: list[float] | None = None) -> None:
    n = len(rewards)
    batch = rows_batch(rewards, list(range(n)), seed=n)
    buffer.add(batch, torch.tensor(advantages if advantages is not None else [0.5] * n, dtype=F64))


def test_replay_fires_only_above_one_and_a_half_buffer_sizes():
    buffer = ReplayBuffer(buffer_size=4, recalibration="gamma")
    fill(buffer, [1.0] * 6)
    assert not buffer.ready() and buffer.sample() is None and len(buffer) == 6  # 6 is not > 1.5 x 4
    fill(buffer, [1.0])
    assert buffer.ready()
    batch = buffer.sample()
    assert batch is not None and batch.size == 4 and len(buffer) == 0


@pytest.mark.parametrize(("buffer_size", "count", "size"), [(4, 7, 4), (16, 25, 16), (12, 19, 8), (64, 100, 64)])
def test_replay_batch_is_a_capped_power_of_two(buffer_size, count, size):
    buffer = ReplayBuffer(buffer_size=buffer_size, recalibration="gamma")
    fill(buffer, [1.0] * count)
    batch = buffer.sample()
    assert batch is not None and batch.size == size == largest_power_of_two(min(count, buffer_size))


def test_p50_recalibration_by_hand():
    buffer = ReplayBuffer(buffer_size=2)
    buffer.record_groups(torch.tensor([1, 0, 1, 1, 0, 0, 0.5, 0.5]), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    assert list(buffer.history) == [0.5, 1.0, 0.0, 0.5]
    assert buffer.baseline() == 0.5
    fill(buffer, [1.0, 0.9, 0.8, 0.75, 0.5, 0.25])
    assert torch.allclose(buffer.recalibrated(), torch.tensor([0.5, 0.4, 0.3, 0.25, 0.0, -0.25], dtype=F64))
    assert buffer.admissible() == 4 and buffer.ready()  # 4 > 1.5 x 2
    batch = buffer.sample()
    assert batch is not None and batch.size == 2 and len(buffer) == 0
    replayed = row_values(batch, batch.advantages)
    assert all(any(math.isclose(a, b) for b in (0.5, 0.4, 0.3, 0.25, 0.0)) for a in replayed)  # A >= 0 only
    assert torch.equal(batch.old_logprobs, batch.behavior_logprobs)


def test_p50_interpolates_and_the_history_is_bounded():
    buffer = ReplayBuffer(buffer_size=2, history_size=4)
    buffer.record_groups(torch.tensor([9.0, 0.0, 0.2, 0.6, 1.0], dtype=F64), torch.arange(5))
    assert list(buffer.history) == [0.0, 0.2, 0.6, 1.0]  # 9.0 fell out
    assert math.isclose(buffer.baseline(), 0.4)  # linear interpolation between 0.2 and 0.6


def test_gamma_recalibration_scales_the_stored_advantage():
    buffer = ReplayBuffer(buffer_size=1, recalibration="gamma", gamma=0.5)
    buffer.record_groups(torch.tensor([1.0]), torch.tensor([0]))
    fill(buffer, [1.0, 0.0], advantages=[0.4, 0.2])
    assert torch.allclose(buffer.recalibrated(), torch.tensor([0.2, 0.1], dtype=F64))


def test_replay_batch_pads_rows_of_different_lengths():
    buffer = ReplayBuffer(buffer_size=4, recalibration="gamma")
    source = rows_batch([1.0] * 7, list(range(7)), seed=3)
    buffer.add(source, torch.full((7,), 0.5, dtype=F64))
    lengths = source.attention_mask.sum(-1)
    batch = buffer.sample()
    assert batch is not None and batch.size == 4
    assert batch.input_ids.shape[1] == int(batch.attention_mask.sum(-1).max())
    for i in range(batch.size):
        real = int(batch.attention_mask[i].sum())
        j = next(
            k
            for k in range(7)
            if int(lengths[k]) == real and torch.equal(source.input_ids[k, :real], batch.input_ids[i, :real])
        )
        assert torch.equal(batch.behavior_logprobs[i, :real], source.behavior_logprobs[j, :real])
        assert torch.equal(batch.loss_mask[i, :real], source.loss_mask[j, :real])
        assert (batch.turn_index[i, real:] == -1).all() and (batch.policy_version[i, real:] == -1).all()
        assert (batch.loss_mask[i, real:] == 0).all() and (batch.input_ids[i, real:] == 0).all()


def test_state_dict_round_trip():
    a, b = ReplayBuffer(buffer_size=2, seed=7), ReplayBuffer(buffer_size=2, seed=99)
    a.record_groups(torch.tensor([0.0, 1.0, 0.0, 0.0]), torch.tensor([0, 0, 1, 1]))
    fill(a, [1.0, 0.9, 0.8, 0.7, 0.6])
    blob = io.BytesIO()
    torch.save(a.state_dict(), blob)
    blob.seek(0)
    b.load_state_dict(torch.load(blob, weights_only=True))
    assert len(b) == 5 and list(b.history) == list(a.history) and b.latest_version == a.latest_version
    first, second = a.sample(), b.sample()
    assert first is not None and second is not None
    for name in ("input_ids", "loss_mask", "behavior_logprobs", "advantages", "old_logprobs", "rewards"):
        assert torch.equal(getattr(first, name), getattr(second, name))


def test_spear_replay_step_end_to_end():
    algo = spear(buffer_size=2, bonus_T=0, clip_cov=False)
    algo.begin_step(100)  # self-imitation weight 0.5
    for version in range(2):
        batch = rows_batch([1, 0, 1, 0, 1, 0], [0, 0, 1, 1, 2, 2], version=version, seed=version)
        batch = algo.with_advantages(batch)
        algo.after_step(batch)
        assert (algo.replay_batch() is None) == (version == 0)  # 3 then 6 admissible > 3
    # the second call above consumed the buffer; refill and look at the replay batch itself
    for version in range(2, 4):
        batch = rows_batch([1, 0, 1, 0, 1, 0], [0, 0, 1, 1, 2, 2], version=version, seed=version)
        batch = algo.with_advantages(batch)
        algo.after_step(batch)
    replay = algo.replay_batch()
    assert replay is not None and replay.size == 2 and len(algo.buffer) == 0
    marks = replay.prepared_as(SPEARPrepared)
    assert torch.allclose(marks.replay_weight, torch.full((2,), 0.5, dtype=F64))
    assert torch.equal(replay.old_logprobs, replay.behavior_logprobs)
    counts = counts_of(algo, replay)
    weighted = algo.loss(leaf_inputs(replay, 0.2), replay, counts).loss
    unweighted = replay.with_fields(prepared=replace(marks, replay_weight=None))
    assert torch.allclose(weighted, 0.5 * algo.loss(leaf_inputs(replay, 0.2), unweighted, counts).loss)
    algo.after_step(replay)  # replayed rows are not admitted again
    assert len(algo.buffer) == 0


def test_no_replay_step_while_the_weight_is_zero():
    algo = spear(buffer_size=1, bonus_T=0)
    algo.begin_step(0)
    batch = rows_batch([1, 0, 1, 0], [0, 0, 1, 1])
    batch = algo.with_advantages(batch)
    algo.after_step(batch)
    assert algo.buffer.ready()
    assert algo.replay_batch() is None and len(algo.buffer) == 0


# --- Clip-Cov ----------------------------------------------------------------------------


def test_clip_cov_picks_by_hand():
    """A = [3, 3, -3, -3], log pi = [-1, -3, -1, -3]: cov = [3, -3, -3, 3], tokens 0 and 3 eligible."""
    advantages = torch.tensor([[3.0, 3.0, -3.0, -3.0]], dtype=F64)
    logprobs = torch.tensor([[-1.0, -3.0, -1.0, -3.0]], dtype=F64)
    mask = torch.ones(1, 4, dtype=F64)
    assert torch.equal(covariance(advantages, logprobs, mask), torch.tensor([[3.0, -3.0, -3.0, 3.0]], dtype=F64))
    picks = set()
    for seed in range(20):
        keep = clip_cov_keep_mask(advantages, logprobs, mask, 0.02, 1, 40, torch.Generator().manual_seed(seed))
        dropped = (keep == 0).nonzero()[:, 1].tolist()
        assert len(dropped) == 1 and dropped[0] in (0, 3)  # max(1, floor(0.02 x 4)) = 1
        picks.add(dropped[0])
    assert picks == {0, 3}
    both = clip_cov_keep_mask(advantages, logprobs, mask, 0.5, 1, 40)
    assert both.tolist() == [[0.0, 1.0, 1.0, 0.0]]  # floor(0.5 x 4) = 2
    assert torch.equal(clip_cov_keep_mask(advantages, logprobs, mask, 0.5, 1, 2.5), mask)  # 3 is not < 2.5
    clipped = torch.tensor([[True, False, False, False]])
    assert clip_cov_keep_mask(advantages, logprobs, mask, 0.5, 1, 40, clipped=clipped).tolist() == [[1.0, 1, 1, 0]]


def test_clip_cov_with_no_eligible_token_equals_ppo():
    algo = spear()
    batch = prepared(algo, make_batch(seed=5))
    assert torch.equal(batch.prepared_as(SPEARPrepared).clip_cov_keep, torch.ones_like(batch.loss_mask))
    counts = counts_of(algo, batch)
    inputs, direct = leaf_inputs(batch, 0.3), leaf_inputs(batch, 0.3)
    loss = algo.loss(inputs, batch, counts).loss
    loss.backward()
    mask = algo.loss_mask(batch)
    per_token, _ = ppo_token_loss(direct.logprobs, batch.old_logprobs, batch.advantages, mask, algo.config, counts)
    reference = aggregate(per_token, mask, algo.config.aggregation, counts)
    reference.backward()
    assert torch.equal(loss.detach(), reference.detach())
    assert torch.equal(inputs.logprobs.grad, direct.logprobs.grad)


def clip_cov_active():
    algo = spear(clip_cov_lb=0.05, clip_cov_ratio=0.1)
    return algo, prepared(algo, make_batch(seed=2))


def test_clip_cov_picked_tokens_get_exactly_zero_gradient():
    algo, batch = clip_cov_active()
    mask = algo.loss_mask(batch)
    cov = covariance(batch.advantages, batch.old_logprobs, mask)
    eligible = (mask > 0) & (cov > 0.05) & (cov < 40)
    picked = batch.prepared_as(SPEARPrepared).clip_cov_keep == 0
    expected = min(max(1, math.floor(0.1 * float(mask.sum()))), int(eligible.sum()))
    assert int(picked.sum()) == expected == 3 and bool((picked <= eligible).all())
    counts = counts_of(algo, batch)
    inputs = leaf_inputs(batch, 0.3)
    algo.loss(inputs, batch, counts).loss.backward()
    plain = spear(clip_cov=False)
    reference = leaf_inputs(batch, 0.3)
    plain.loss(reference, batch, counts).loss.backward()
    assert torch.equal(inputs.logprobs.grad[picked], torch.zeros(expected, dtype=F64))
    assert (reference.logprobs.grad[picked] != 0).any(), "the picked tokens had a gradient under plain PPO"
    assert torch.equal(inputs.logprobs.grad[~picked], reference.logprobs.grad[~picked])


def test_clip_cov_pick_is_seeded():
    first, second = clip_cov_active()[1], clip_cov_active()[1]
    assert torch.equal(first.prepared_as(SPEARPrepared).clip_cov_keep, second.prepared_as(SPEARPrepared).clip_cov_keep)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_micro_batch_invariance_with_clip_cov_active(shift):
    algo, batch = clip_cov_active()
    assert (batch.prepared_as(SPEARPrepared).clip_cov_keep == 0).any()
    counts = counts_of(algo, batch)
    whole = leaf_inputs(batch, shift)
    full = algo.loss(whole, batch, counts).loss
    full.backward()
    total, grads = torch.zeros((), dtype=F64), []
    for rows in batch.row_slices(4):
        part = LossInputs(*(t.detach()[rows].clone().requires_grad_(True) for t in (whole.logprobs, whole.entropy)))
        out = algo.loss(part, batch.rows(rows), counts).loss
        out.backward()
        total, grads = total + out.detach(), [*grads, part.logprobs.grad]
    assert torch.allclose(total, full.detach(), atol=1e-12, rtol=1e-9)
    assert torch.allclose(torch.cat(grads), whole.logprobs.grad, atol=1e-12, rtol=1e-9)


# --- as the authors run it ------------------------------------------------------------------


def test_the_defaults_are_the_references():
    c = make("spear").config
    assert (c.clip_cov_ratio, c.clip_cov_lb, c.clip_cov_ub) == (0.0002, 1.0, 5.0)
    assert (c.replay_clip_cov_ratio, c.replay_clip_cov_lb, c.replay_clip_cov_ub) == (0.02, 2.0, 60.0)
    assert c.clip_cov_logprobs == "current" and c.entropy_coef == 0.001
    assert (c.group_filter_ratio, c.mask_repetitive, c.repetition_ngram, c.repetition_count) == (0.75, True, 20, 10)


def test_the_group_filter_keeps_the_groups_with_the_most_reward_spread():
    # population stds by group: 0.5, 0, 0.25, 0.1
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.75, 0.25, 0.6, 0.4], dtype=F64)
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    assert top_std_groups(rewards, groups, 0.75).tolist() == [True, True, False, False, True, True, True, True]
    assert top_std_groups(rewards, groups, 0.5).tolist() == [True, True, False, False, True, True, False, False]
    assert top_std_groups(rewards, groups, 1.0).all()
    algo = make("spear", bonus_T=0, drop_zero_variance=False, group_filter_ratio=0.5, mask_repetitive=False)
    batch = rows_batch(rewards.tolist(), groups.tolist())
    assert (algo.loss_mask(algo.with_advantages(batch)).sum(-1) > 0).tolist() == [True, True, False, False] * 2


def test_rows_that_repeat_an_n_gram_leave_the_loss():
    ids = torch.tensor([[5, 1, 2, 3, 1, 2, 3, 1, 2, 3, 9], [5, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]])
    mask = torch.tensor([[0] + [1] * 10, [0] + [1] * 10], dtype=F64)
    assert repetitive_rows(ids, mask, 3, 3).tolist() == [True, False]  # (1, 2, 3) three times
    assert repetitive_rows(ids, mask, 3, 4).tolist() == [False, False]
    prompt_only = mask.clone()
    prompt_only[0, 1:8] = 0  # the repeats outside the generated tokens do not count
    assert repetitive_rows(ids, prompt_only, 3, 3).tolist() == [False, False]


def test_clip_cov_on_the_current_policy_skips_clipped_tokens_and_zeroes_the_picked():
    algo = make("spear", clip_cov_lb=0.05, clip_cov_ratio=0.1, entropy_coef=0.0, group_filter_ratio=1.0)
    batch = prepared(algo, make_batch(seed=2))
    assert batch.prepared_as(SPEARPrepared).clip_cov_keep is None  # nothing precomputed in prepare
    inputs = leaf_inputs(batch, 0.3)
    mask = algo.loss_mask(batch)
    ratio = (inputs.logprobs.detach() - batch.old_logprobs).exp()
    c = algo.config
    flags = clipped_surrogate(ratio, batch.advantages, c.clip_low, c.clip_high)
    clipped = (flags.clipped_low | flags.clipped_high) & (mask > 0)
    assert clipped.any()
    keep = clip_cov_keep_mask(
        batch.advantages, inputs.logprobs, mask, 0.1, 0.05, 5.0, torch.Generator().manual_seed(1), clipped=clipped
    )
    picked = keep == 0
    assert picked.any() and not (picked & clipped).any()
    counts = counts_of(algo, batch)
    out = algo.loss(inputs, batch, counts)  # the algorithm's generator starts at seed + 1 = 1 as well
    out.loss.backward()
    assert torch.equal(inputs.logprobs.grad[picked], torch.zeros(int(picked.sum()), dtype=F64))
    assert float(out.metrics["loss/clip_cov_frac"]) > 0


def test_the_replay_step_uses_the_replay_clip_cov_setting():
    algo = make("spear")
    batch = algo.with_advantages(rows_batch([1, 0], [0, 0]))
    assert algo.clip_cov_setting(batch) == (0.0002, 1.0, 5.0)
    replay = batch.with_fields(prepared=replace(batch.prepared, replay_weight=torch.ones(2, dtype=F64)))
    assert algo.clip_cov_setting(replay) == (0.02, 2.0, 60.0)
