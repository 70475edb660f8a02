"""Staleness of asynchronous samples, by hand: the row staleness, the histogram, drop and
down-weight; and the learner's off-policy statistics (ESS, ratio tails) for any objective."""

import math

import pytest
import torch

from agentrl.batch import TokenBatch
from agentrl.learner.metrics import behavior_weight_stats
from agentrl.trainer.staleness import bound_staleness, row_staleness
from agentrl.types import Trajectory


def trajectory(turn_versions, reward=1.0):
    """Prompt of 2 tokens, then per turn 2 sampled tokens of that turn's version and 1 observation token."""
    ids, mask, turns, versions = [1, 2], [0, 0], [-1, -1], [-1, -1]
    for k, v in enumerate(turn_versions):
        ids += [3, 4, 5]
        mask += [1, 1, 0]
        turns += [k, k, -1]
        versions += [v, v, -1]
    n = len(ids)
    return Trajectory(
        token_ids=ids,
        loss_mask=mask,
        behavior_logprobs=[-0.5 * m for m in mask],
        turn_index=turns,
        policy_version=versions,
        reward=reward,
        reward_components={},
        group_id="g",
        task_id="t",
        env_id="e",
        episode_id=f"e{n}",
        terminated=True,
        truncated=False,
        num_turns=len(turn_versions),
        messages=[],
        temperature=1.0,
    )


def batch_of(*turn_versions):
    return TokenBatch.from_trajectories([trajectory(v) for v in turn_versions])


def test_row_staleness_counts_from_the_oldest_turn():
    batch = batch_of([5], [4], [3, 5], [2, 2, 2])
    assert row_staleness(batch, 5).tolist() == [0, 1, 2, 3]


def test_within_the_bound_nothing_changes():
    batch = batch_of([5], [4], [4, 5])
    kept, metrics = bound_staleness(batch, 5, 1, "drop", 0.5)
    assert kept is batch and batch.sample_weight is None
    assert metrics["async/staleness/0"] == 1 and metrics["async/staleness/1"] == 2
    assert metrics["async/staleness/over"] == 0 and metrics["async/dropped_stale"] == 0
    assert metrics["async/mixed_version_rows"] == 1 and metrics["async/staleness_max"] == 1


def test_drop_removes_and_counts_rows_past_the_bound():
    batch = batch_of([5], [4], [3, 5], [2, 2, 2])
    kept, metrics = bound_staleness(batch, 5, 1, "drop", 0.5)
    assert kept is not None and kept.size == 2
    assert row_staleness(kept, 5).tolist() == [0, 1]
    assert metrics["async/dropped_stale"] == 2 and metrics["async/staleness/over"] == 2
    assert metrics["async/staleness_mean"] == pytest.approx(1.5)


def test_downweight_scales_by_decay_per_version_past_the_bound():
    batch = batch_of([5], [4], [3, 5], [2, 2, 2])
    kept, metrics = bound_staleness(batch, 5, 1, "downweight", 0.5)
    assert kept is not None and metrics["async/downweighted_stale"] == 2
    assert kept.sample_weight.tolist() == [1.0, 1.0, 0.5, 0.25]
    assert kept.rows(torch.tensor([3])).sample_weight.tolist() == [0.25]  # sliced with its row


def test_every_row_too_old_leaves_nothing_to_train_on():
    kept, metrics = bound_staleness(batch_of([0], [1]), 9, 2, "drop", 0.5)
    assert kept is None and metrics["async/dropped_stale"] == 2


def test_behavior_weight_stats_by_hand():
    """Two rows of two sampled tokens; log pi_old - log mu = [0, 0] and [ln 2, ln 2]."""
    mask = torch.tensor([[0.0, 1, 1], [0.0, 1, 1]])
    behavior = torch.tensor([[0.0, -1, -1], [0.0, -1, -1]])
    old = behavior + torch.tensor([[0.0, 0, 0], [0.0, math.log(2), math.log(2)]])
    stats = behavior_weight_stats(mask, old, behavior)
    # sequence weights 1 and 4: ESS = 25 / 17, over 2 rows
    assert stats["offpolicy/ess_frac"] == pytest.approx(25 / 17 / 2)
    assert stats["offpolicy/seq_log_weight/max"] == pytest.approx(2 * math.log(2))
    assert stats["offpolicy/token_ratio/max"] == pytest.approx(2.0)
    assert stats["offpolicy/token_ratio/min"] == pytest.approx(1.0)
    assert stats["offpolicy/frac_outside_0.5_2"] == 0.0
    on_policy = behavior_weight_stats(mask, behavior, behavior)
    assert on_policy["offpolicy/ess_frac"] == pytest.approx(1.0) and on_policy["offpolicy/token_ratio/max"] == 1.0


class FakeStream:
    """Hands out prepared groups, as ``RolloutStream.take`` would."""

    def __init__(self, *groups):
        self.groups = list(groups)

    def take(self, n, *, sync_timeout_s):
        from agentrl.rollout.scheduler import Group

        return [Group(0, i, self.groups.pop(0)) for i in range(n)]


def test_a_batch_with_every_row_too_stale_is_replaced_by_the_next_groups():
    from agentrl.trainer.async_loop import StreamSource
    from agentrl.trainer.config import AsyncConfig, TrainConfig

    config = TrainConfig(tasks_per_step=1, asynchronous=AsyncConfig(enabled=True, max_staleness=1))
    stream = FakeStream([trajectory([2]), trajectory([1])], [trajectory([4]), trajectory([5])])
    source = StreamSource(lambda first: stream, config, pad=0)
    source.stream = stream  # as start() leaves it, without starting anything
    first = [trajectory([3]), trajectory([3, 4])]
    taken, bounded, metrics = source.bound(first, batch_of([3], [3, 4]), step=5)
    assert bounded.policy_version.max().item() == 5 and bounded.loss_mask.shape[0] == 2
    assert len(taken) == 6 and bounded.source_row.tolist() == [4, 5]  # the rows point at the second refill
    assert [max(taken[r].policy_version) for r in bounded.source_row.tolist()] == [4, 5]
    assert metrics["async/dropped_stale"] == 2 + 2  # the first batch, then the first refill
    assert metrics["time/learner_refill_s"] >= 0 and stream.groups == []
