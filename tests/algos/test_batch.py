"""The batch contract: ``with_fields`` is the one checked way to change a batch, prepared
quantities and typed fields are sliced with their rows, and ``agentrl.batch`` knows nothing
of objectives."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import torch
from batches import make_batch

from agentrl.algos.bapo import BAPOPrepared
from agentrl.algos.dapo import DAPOPrepared
from agentrl.algos.ppo import PPOPrepared
from agentrl.algos.spear import SPEARPrepared
from agentrl.batch import PER_ROW, PER_TOKEN, Prepared, TokenBatch


def test_every_tensor_field_has_a_declared_shape():
    tensors = {f.name for f in dataclasses.fields(TokenBatch) if "Tensor" in str(f.type) and f.name != "prepared"}
    assert set(PER_TOKEN) | set(PER_ROW) == tensors
    assert not set(PER_TOKEN) & set(PER_ROW)


def test_a_batch_is_frozen():
    batch = make_batch()
    with pytest.raises(dataclasses.FrozenInstanceError):
        batch.advantages = torch.zeros_like(batch.loss_mask)


def test_rows_and_split_slice_prepared_and_typed_fields():
    batch = make_batch(rows=6).with_fields(
        sample_weight=torch.arange(6.0),
        grad_sq_norm=torch.arange(6.0) * 10,
        prepared=SPEARPrepared(rows=torch.arange(6.0), clip_cov_keep=torch.arange(6.0)[:, None] * torch.ones(6, 14)),
    )
    part = batch.rows(torch.tensor([1, 4]))
    spear = part.prepared_as(SPEARPrepared)
    assert spear.rows.tolist() == [1.0, 4.0] and spear.clip_cov_keep[:, 0].tolist() == [1.0, 4.0]
    assert spear.replay_weight is None  # a field that is not a tensor is kept as it is
    assert part.sample_weight.tolist() == [1.0, 4.0] and part.grad_sq_norm.tolist() == [10.0, 40.0]
    pieces = batch.split(4)
    assert [p.prepared_as(SPEARPrepared).rows.tolist() for p in pieces] == [[0.0, 1.0], [2.0], [3.0], [4.0, 5.0]]
    assert torch.cat([p.sample_weight for p in pieces]).tolist() == batch.sample_weight.tolist()


def test_to_moves_and_casts_prepared_tensors():
    batch = make_batch(rows=2).with_fields(prepared=PPOPrepared(returns=torch.ones(2, 14, dtype=torch.float64)))
    moved = batch.to("cpu", torch.float32)
    assert moved.prepared_as(PPOPrepared).returns.dtype == torch.float32
    assert moved.input_ids.dtype == torch.long  # only floating tensors are cast


def test_prepared_as_the_wrong_or_a_missing_type_is_a_clear_error():
    batch = make_batch(rows=2)
    with pytest.raises(ValueError, match="carries nothing where PPOPrepared is needed"):
        batch.prepared_as(PPOPrepared)
    ones = torch.ones(2)
    dapo = batch.with_fields(prepared=DAPOPrepared(keep=ones, dropped_group_share=ones, overlong_penalty=ones))
    with pytest.raises(ValueError, match="carries DAPOPrepared where BAPOPrepared is needed"):
        dapo.prepared_as(BAPOPrepared)
    assert dapo.prepared_as(Prepared) is dapo.prepared  # a base class matches its subclasses


def test_with_fields_returns_a_new_batch_and_leaves_the_old_one():
    batch = make_batch(rows=3)
    new = batch.with_fields(advantages=torch.ones_like(batch.loss_mask), sample_weight=None)
    assert new is not batch and torch.equal(new.advantages, torch.ones_like(batch.loss_mask))
    assert batch.advantages is None


def test_with_fields_rejects_wrong_shapes():
    batch = make_batch(rows=3, length=14)
    with pytest.raises(ValueError, match=r"TokenBatch\.advantages must be \(3, 14\), got \(3, 13\)"):
        batch.with_fields(advantages=torch.zeros(3, 13))
    with pytest.raises(ValueError, match=r"TokenBatch\.sample_weight must be \(3,\), got \(3, 1\)"):
        batch.with_fields(sample_weight=torch.ones(3, 1))
    with pytest.raises(ValueError, match=r"TokenBatch\.prepared\.returns must be \(3, \.\.\.\), got \(2, 14\)"):
        batch.with_fields(prepared=PPOPrepared(returns=torch.zeros(2, 14)))
    with pytest.raises(TypeError, match="must be a tensor"):
        batch.with_fields(rewards=[1.0, 0.0, 1.0])
    with pytest.raises(TypeError, match="must be a Prepared"):
        batch.with_fields(prepared={"returns": torch.zeros(3, 14)})


def test_with_fields_rejects_unknown_names():
    batch = make_batch(rows=2)
    with pytest.raises(TypeError, match="TokenBatch has no field extras; its fields: "):
        batch.with_fields(extras={})


def test_require_names_who_sets_a_missing_field():
    batch = make_batch(rows=2)
    assert batch.require("old_logprobs") is batch.old_logprobs
    with pytest.raises(ValueError, match="no advantages: the algorithm's with_advantages sets it first"):
        batch.require("advantages")


def test_the_batch_imports_nothing_from_the_objectives():
    code = "import sys, agentrl.batch; print(sorted(m for m in sys.modules if m.startswith('agentrl')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert eval(out) == ["agentrl", "agentrl.batch", "agentrl.types"]
