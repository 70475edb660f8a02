"""Build a small Qwen2-architecture model with its own byte-level BPE tokenizer and chat
template, and optionally give it a short supervised warm start on calculator traces.

Owns the tiny model recipe. Two chat templates:

- ``chatml``: ChatML, prefix-preserving (adding messages only appends text);
- ``turn_stamped``: ChatML whose system header states how many assistant turns the
  conversation has, so rendering a longer conversation rewrites earlier text. It exists
  to exercise the rollout's fallback for templates that are not prefix-preserving.

The warm start teaches the ``math_tool`` call format (``<calculator>a op b</calculator>`` ->
result -> "The answer is N.") so tool calls really happen in tests; it is not the shipped
default model (that comes from ``scripts/`` with its own recipe).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_BODY = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
TEMPLATES = {
    "chatml": _BODY,
    "turn_stamped": (
        "{{- '<|im_start|>system\\nturns so far: ' "
        "+ (messages | selectattr('role', 'equalto', 'assistant') | list | length) | string "
        "+ '<|im_end|>\\n' }}" + _BODY
    ),
}
SYSTEM_XML = (
    "Use the calculator by writing <calculator>EXPRESSION</calculator>; its result comes back to you. "
    "When you know the result, end with: The answer is N."
)


def calculator_traces(n: int, seed: int = 0, max_digits: int = 2) -> list[list[dict[str, str]]]:
    """``n`` two-turn conversations: question -> calculator call -> result -> answer."""
    rng = random.Random(seed)
    traces = []
    for _ in range(n):
        a, b = rng.randint(1, 10**max_digits - 1), rng.randint(1, 10**max_digits - 1)
        op = rng.choice("+-*")
        value = {"+": a + b, "-": a - b, "*": a * b}[op]
        traces.append(
            [
                {"role": "system", "content": SYSTEM_XML},
                {"role": "user", "content": f"What is {a} {op} {b}?"},
                {"role": "assistant", "content": f"<calculator>{a} {op} {b}</calculator>"},
                {"role": "tool", "content": str(value)},
                {"role": "assistant", "content": f"The answer is {value}."},
            ]
        )
    return traces


def build_tokenizer(corpus: Iterable[str], vocab_size: int = 400, template: str = "chatml") -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    tokenizer.chat_template = TEMPLATES[template]
    return tokenizer


def as_reloaded(tokenizer: Any, out_dir: str | Path) -> Any:
    """Save ``tokenizer`` to ``out_dir`` and load it back as users will (``AutoTokenizer``).

    transformers may load a saved tokenizer as another class than the one saved (for a
    Qwen2 model directory, ``Qwen2Tokenizer`` with its own pre-tokenizer, which splits
    digits one by one), so a model must be trained with the reloaded tokenizer or it sees
    other tokens at use than in training."""
    from transformers import AutoTokenizer, Qwen2Config

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    # the class AutoTokenizer picks depends on the model type in config.json; the model's own
    # save_pretrained overwrites this placeholder later
    Qwen2Config(vocab_size=len(tokenizer)).save_pretrained(out_dir)
    return AutoTokenizer.from_pretrained(out_dir)


def build_model(
    tokenizer: Any,
    *,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    seed: int = 0,
) -> Any:
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 3,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
    )
    model = Qwen2ForCausalLM(config)
    ids = tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    model.generation_config = GenerationConfig(eos_token_id=ids, pad_token_id=tokenizer.pad_token_id)
    return model


def warm_start(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict[str, str]]],
    *,
    steps: int,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
) -> list[float]:
    """A short next-token-prediction pass over rendered ``conversations``; returns losses."""
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in conversations]
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        batch = tokenizer(
            [rng.choice(texts) for _ in range(batch_size)],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses


def make_tiny_model(
    out_dir: str | Path,
    *,
    template: str = "chatml",
    warm_start_steps: int = 0,
    seed: int = 0,
    hidden: int = 64,
    layers: int = 2,
) -> Path:
    """Write a tiny model directory (config, weights, tokenizer, chat template) to ``out_dir``."""
    out = Path(out_dir)
    traces = calculator_traces(2000, seed=seed)
    tokenizer = as_reloaded(build_tokenizer((_render_plain(c) for c in traces), template=template), out)
    model = build_model(tokenizer, hidden=hidden, layers=layers, seed=seed)
    if warm_start_steps:
        warm_start(model, tokenizer, traces, steps=warm_start_steps, seed=seed)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _render_plain(conversation: list[dict[str, str]]) -> str:
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in conversation)
