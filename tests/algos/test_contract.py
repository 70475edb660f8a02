"""Every registered objective, held at the tensor level to the identities that
docs/algorithms.md#loss-assembly and #aggregation-with-global-counts imply: the on-policy
identity, micro-batch invariance and zero gradient on masked tokens. (The same identities
through a real model are in tests/learner.)"""

import pytest
import torch
from batches import counts_of, leaf_inputs, make_batch, prepared

from agentrl.algos import LossInputs, aggregate, make, names
from agentrl.learner.micro import gather, micro_batches


@pytest.mark.parametrize("name", names())
def test_on_policy_gradient_is_the_policy_gradient(name):
    """At ratio 1 the gradient of the loss equals that of aggregate(-A log pi)."""
    algo = make(name)
    batch = prepared(algo, make_batch())
    counts = counts_of(algo, batch)
    inputs = leaf_inputs(batch)
    inputs.values = None  # the policy part only (ppo's value loss has its own parameters' gradient)
    algo.loss(inputs, batch, counts).loss.backward()
    direct = leaf_inputs(batch).logprobs
    mask = algo.loss_mask(batch)
    aggregate(-batch.advantages * direct, mask, algo.config.aggregation, counts).backward()
    assert torch.allclose(inputs.logprobs.grad, direct.grad, atol=1e-10, rtol=1e-8)
    assert inputs.logprobs.grad.abs().sum() > 0, "the batch should produce a non-zero gradient"


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_micro_batches_sum_to_the_batch(name, shift):
    algo = make(name)
    batch = prepared(algo, make_batch(seed=2))
    counts = counts_of(algo, batch)
    whole = leaf_inputs(batch, shift)
    full = algo.loss(whole, batch, counts).loss
    full.backward()
    parts_loss = torch.zeros((), dtype=torch.float64)
    grads = []
    for rows in batch.row_slices(4):
        part = batch.rows(rows)
        inputs = LossInputs(
            *(t.detach()[rows].clone().requires_grad_(True) for t in (whole.logprobs, whole.entropy, whole.values))
        )
        out = algo.loss(inputs, part, counts).loss
        out.backward()
        parts_loss = parts_loss + out.detach()
        grads.append(inputs.logprobs.grad)
    assert torch.allclose(parts_loss, full.detach(), atol=1e-12, rtol=1e-9)
    assert torch.allclose(torch.cat(grads), whole.logprobs.grad, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("name", names())
@pytest.mark.parametrize(("max_rows", "max_tokens"), [(3, None), (8, 24), (8, 1)])
def test_packed_micro_batches_sum_to_the_batch(name, max_rows, max_tokens):
    """Rows sorted by length, packed under a token budget and cut to each micro-batch's
    longest row (agentrl.learner.micro) give the whole batch's loss and gradient."""
    algo = make(name)
    batch = prepared(algo, make_batch(seed=4))
    counts = counts_of(algo, batch)
    whole = leaf_inputs(batch, shift=0.3)
    full = algo.loss(whole, batch, counts).loss
    full.backward()
    micro = micro_batches(batch, max_rows, max_tokens)
    assert len(micro) > 1 and sorted(torch.cat([mb.index for mb in micro]).tolist()) == list(range(batch.size))
    assert any(mb.batch.input_ids.shape[1] < batch.input_ids.shape[1] for mb in micro), "some pass is cut"
    total, grads = torch.zeros((), dtype=torch.float64), []
    for mb in micro:
        t = mb.batch.input_ids.shape[1]
        outputs = (whole.logprobs, whole.entropy, whole.values)
        inputs = LossInputs(*(x.detach()[mb.index, :t].clone().requires_grad_(True) for x in outputs))
        out = algo.loss(inputs, mb.batch, counts).loss
        out.backward()
        total = total + out.detach()
        grads.append(inputs.logprobs.grad)
    assert torch.allclose(total, full.detach(), atol=1e-12, rtol=1e-9)
    assert torch.allclose(gather(grads, micro, batch.loss_mask), whole.logprobs.grad, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("name", [n for n in names() if make(n).old_logprobs_in_loss_only])
def test_an_objective_that_reads_pi_old_only_in_its_loss_does_so(name):
    """``old_logprobs_in_loss_only`` lets the learner set pi_old only for the loss; everything
    before the loss must then give the same with pi_old absent as with any pi_old."""
    algo = make(name)
    batch = make_batch(seed=5)
    absent = batch.with_fields(old_logprobs=None)
    moved = batch.with_fields(old_logprobs=batch.old_logprobs + 0.7 * batch.loss_mask)
    a, b = prepared(algo, absent), prepared(algo, moved)
    assert torch.equal(a.advantages, b.advantages)
    assert torch.equal(algo.loss_mask(a), algo.loss_mask(b))
    assert algo.lr_scale(a) == algo.lr_scale(b)
    assert repr(a.prepared) == repr(b.prepared)


@pytest.mark.parametrize("name", names())
def test_masked_tokens_get_exactly_zero_gradient(name):
    algo = make(name, entropy_coef=0.01)
    batch = prepared(algo, make_batch(seed=3))
    inputs = leaf_inputs(batch, shift=0.5)
    algo.loss(inputs, batch, counts_of(algo, batch)).loss.backward()
    masked = batch.loss_mask == 0
    assert torch.equal(inputs.logprobs.grad[masked], torch.zeros_like(inputs.logprobs.grad[masked]))
    assert torch.equal(inputs.entropy.grad[masked], torch.zeros_like(inputs.entropy.grad[masked]))
    if inputs.values.grad is not None:
        assert torch.equal(inputs.values.grad[masked], torch.zeros_like(inputs.values.grad[masked]))


@pytest.mark.parametrize("name", names())
def test_mismatch_correction_is_neutral_when_mu_equals_pi_old(name):
    plain, corrected = make(name), make(name, mismatch="token")
    batch = prepared(plain, make_batch(seed=4))
    counts = counts_of(plain, batch)
    a = plain.loss(leaf_inputs(batch, 0.2), batch, counts).loss
    b = corrected.loss(leaf_inputs(batch, 0.2), batch, counts).loss
    assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("name", names())
def test_sample_weights_scale_each_rows_loss(name):
    """Unit weights change nothing; a zero weight removes its row's gradient, other rows keep theirs."""
    algo = make(name)
    batch = prepared(algo, make_batch(seed=5))
    counts = counts_of(algo, batch)
    plain = leaf_inputs(batch, 0.3)
    algo.loss(plain, batch, counts).loss.backward()
    weights = torch.ones(batch.size, dtype=batch.loss_mask.dtype)
    batch = batch.with_fields(sample_weight=weights)
    assert torch.allclose(algo.loss(leaf_inputs(batch, 0.3), batch, counts).loss, algo.loss(plain, batch, counts).loss)
    weights[0] = 0.0
    weighted = leaf_inputs(batch, 0.3)
    algo.loss(weighted, batch, counts).loss.backward()
    assert torch.equal(weighted.logprobs.grad[0], torch.zeros_like(weighted.logprobs.grad[0]))
    assert torch.allclose(weighted.logprobs.grad[1:], plain.logprobs.grad[1:], atol=1e-12)
