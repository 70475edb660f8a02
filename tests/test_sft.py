"""Supervised warm starts: the assistant-token mask, and micro-batches that change nothing."""

import copy

import torch

from agentrl.engines.loading import load_model, load_tokenizer
from agentrl.models import sft
from agentrl.models.tiny import calculator_traces


def test_micro_batches_give_the_gradient_of_one_padded_batch(tiny_random):
    tokenizer, model = load_tokenizer(str(tiny_random)), load_model(str(tiny_random)).double()
    conversations = calculator_traces(12)
    long = [{"role": "user", "content": "and once more, with many more words " * 6}]
    conversations[3] = conversations[3] + long + [{"role": "assistant", "content": "The answer is 5."}]
    whole, split = copy.deepcopy(model), copy.deepcopy(model)
    (a,) = sft.train(whole, tokenizer, conversations, steps=1, lr=0.0, batch_size=8, seed=0)
    (b,) = sft.train(split, tokenizer, conversations, steps=1, lr=0.0, batch_size=8, seed=0, micro_batch_size=3)
    assert abs(a - b) < 1e-5  # transformers computes the loss in float32
    for p, q in zip(whole.parameters(), split.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-8)


def test_only_assistant_tokens_are_targets(tiny_random):
    tokenizer = load_tokenizer(str(tiny_random))
    conversation = calculator_traces(1)[0]
    ids, mask = sft.encode_for_sft(tokenizer, conversation)
    targets = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert "<calculator>" in targets and "The answer is" in targets
    assert "Use the calculator" not in targets and "What is" not in targets
