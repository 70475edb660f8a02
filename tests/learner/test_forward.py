"""The chunked lm_head path against the full-logits path: values and gradients, in float64."""

import pytest
import torch

from agentrl.engines.loading import load_model
from agentrl.learner import LearnerConfig
from agentrl.learner.forward import LOGITS_MAX, LOGITS_MIN, ValueHead, base_and_head, chunk_positions, forward_tokens


@pytest.fixture(scope="module")
def model64(tiny_random):
    return load_model(str(tiny_random)).double().train()


@pytest.fixture(scope="module")
def tokens(model64):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model64.config.vocab_size, (3, 23), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 17:] = 0  # a right-padded row
    return ids, mask


def grads_of(model, value_head, ids, mask, temperature, chunk, entropy_grad=True, positions=None):
    model.zero_grad()
    value_head.zero_grad()
    logprobs, entropy, values = forward_tokens(
        model, ids, mask, temperature, with_entropy=True, entropy_grad=entropy_grad, value_head=value_head,
        logits_chunk=chunk, positions=positions,
    )  # fmt: skip
    g = torch.Generator().manual_seed(1)
    w, u, s = (torch.randn(ids.shape, generator=g, dtype=torch.float64) for _ in range(3))
    loss = (logprobs * w).sum() + (values * s).sum()
    if entropy_grad:
        loss = loss + (entropy * u).sum()
    loss.backward()
    params = [*model.parameters(), *value_head.parameters()]
    flat = torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()).double() for p in params])
    return logprobs.detach(), entropy.detach(), values.detach(), flat


def test_the_default_model_exposes_its_base_and_head(model64):
    assert base_and_head(model64) is not None
    assert LearnerConfig().logits_chunk is None  # sized by chunk_positions


def test_default_chunks_hold_as_many_logits_as_the_hidden_states_within_bounds():
    assert chunk_positions(512, 64, 151_936) == 56  # a short pass of a small model: LOGITS_MIN, rounded up
    assert 56 * 151_936 >= LOGITS_MIN > 55 * 151_936
    assert chunk_positions(8192, 3584, 151_936) == 194  # a 7B model's long pass: 8192 x 3584 / V, rounded up
    assert chunk_positions(10**6, 4096, 151_936) == 221  # LOGITS_MAX / V, rounded up
    assert 221 * 151_936 >= LOGITS_MAX > 220 * 151_936
    assert chunk_positions(16_384, 128, 400) >= 16_384  # the default model: a full micro-batch in one chunk


@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
@pytest.mark.parametrize("chunk", [1, 5, 22, 23, 66, 1000])
def test_chunked_values_and_gradients_equal_the_full_logits(model64, tokens, temperature, chunk):
    """3 rows x 22 predicted positions = 66: chunks that divide it, that do not, of 1, of all."""
    ids, mask = tokens
    head = ValueHead(model64.config.hidden_size).double()
    torch.nn.init.normal_(head.linear.weight, generator=torch.Generator().manual_seed(2))
    want = grads_of(model64, head, ids, mask, temperature, 0)
    got = grads_of(model64, head, ids, mask, temperature, chunk)
    for name, a, b in zip(("logprobs", "entropy", "values"), got[:3], want[:3], strict=True):
        assert a.shape == b.shape == ids.shape and (a[:, 0] == 0).all(), name
        assert (a - b).abs().max() <= 1e-10, (name, (a - b).abs().max())
    assert want[3].abs().sum() > 0
    assert (got[3] - want[3]).abs().max() <= 1e-9, (got[3] - want[3]).abs().max()


@pytest.mark.parametrize("chunk", [0, 4, None])
def test_only_the_wanted_positions_are_computed_and_the_rest_is_zero(model64, tokens, chunk):
    """The learner asks for its loss mask's tokens only: there they equal the full
    computation, elsewhere they are 0, and the gradient is the full gradient's restricted to them."""
    ids, mask = tokens
    wanted = torch.zeros_like(ids, dtype=torch.bool)
    wanted[0, 5:12] = wanted[1, 3:17] = wanted[2, 20:] = True
    head = ValueHead(model64.config.hidden_size).double()
    torch.nn.init.normal_(head.linear.weight, generator=torch.Generator().manual_seed(2))
    got = grads_of(model64, head, ids, mask, 0.7, chunk, positions=wanted)
    full = grads_of(model64, head, ids, mask, 0.7, 0)
    for name, a, b in zip(("logprobs", "entropy"), got[:2], full[:2], strict=True):
        assert (a[wanted] - b[wanted]).abs().max() <= 1e-10, name
        assert (a[~wanted] == 0).all(), name

    def masked_grads():  # the full path with the unwanted tokens' weights zeroed by hand
        model64.zero_grad()
        head.zero_grad()
        logprobs, entropy, values = forward_tokens(
            model64, ids, mask, 0.7, with_entropy=True, value_head=head, logits_chunk=0
        )
        g = torch.Generator().manual_seed(1)
        w, u, s = (torch.randn(ids.shape, generator=g, dtype=torch.float64) for _ in range(3))
        ((logprobs * w * wanted).sum() + (values * s).sum() + (entropy * u * wanted).sum()).backward()
        params = [*model64.parameters(), *head.parameters()]
        return torch.cat([p.grad.flatten() if p.grad is not None else torch.zeros(p.numel()).double() for p in params])

    assert (got[3] - masked_grads()).abs().max() <= 1e-9


def test_a_metric_entropy_keeps_no_graph_and_no_gradient(model64, tokens):
    ids, mask = tokens
    head = ValueHead(model64.config.hidden_size).double()
    logprobs, entropy, _ = forward_tokens(
        model64, ids, mask, 1.0, with_entropy=True, entropy_grad=False, logits_chunk=7
    )
    assert logprobs.requires_grad and not entropy.requires_grad
    want = grads_of(model64, head, ids, mask, 1.0, 0, entropy_grad=False)
    got = grads_of(model64, head, ids, mask, 1.0, 7, entropy_grad=False)
    assert (got[1] - want[1]).abs().max() <= 1e-10
    assert (got[3] - want[3]).abs().max() <= 1e-9


def test_no_grad_and_single_token_rows(model64, tokens):
    ids, mask = tokens
    with torch.no_grad():
        got = forward_tokens(model64, ids, mask, 1.0, with_entropy=True, logits_chunk=4)
        want = forward_tokens(model64, ids, mask, 1.0, with_entropy=True, logits_chunk=0)
        assert not got[0].requires_grad and (got[0] - want[0]).abs().max() <= 1e-10
        one = forward_tokens(model64, ids[:, :1], mask[:, :1], 1.0, with_entropy=True)
    assert one[0].shape == one[1].shape == (3, 1) and (one[0] == 0).all()


def test_a_model_without_a_separate_head_takes_the_full_logits_path(model64, tokens):
    class Wrapped(torch.nn.Module):  # exposes neither base_model nor get_output_embeddings
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **kwargs):
            return self.inner(**kwargs)

    ids, mask = tokens
    wrapped = Wrapped(model64)
    assert base_and_head(wrapped) is None
    with torch.no_grad():
        got = forward_tokens(wrapped, ids, mask, 1.0)[0]
        want = forward_tokens(model64, ids, mask, 1.0)[0]
    assert (got - want).abs().max() <= 1e-10
