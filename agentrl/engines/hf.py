"""The transformers engine: batched sampling with a KV cache, on CPU or CUDA.

Owns the decode loop. Prompts of a batch are left-padded; positions come from the attention
mask, so a padded row sees exactly the positions it would alone. Identical prompts (the
episodes of a group at their first turn) are prefilled once and their cache rows copied. Each step samples from
``sampling_logprobs`` (temperature, top-k, top-p) and records the chosen token's logprob
under that distribution. Rows that finish (end-of-sequence token, stop string, or their
token limit) leave the batch and the cache, so later steps cost only the live rows.

Stop strings are matched on the decoded tail of a row's output, only at tokens that
contain a stop string's last character (precomputed per vocabulary), and the output keeps
the whole token that completed the stop string: tokens are never cut or re-tokenised.

Knows nothing of environments or chat templates. ``update_weights`` loads a state dict
into the engine's own model.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from agentrl.engines.base import Completion, FinishReason, SamplingParams, token_limits
from agentrl.engines.loading import eos_token_ids
from agentrl.engines.logprobs import sampling_logprobs


@dataclass
class _Row:
    """One request's output so far."""

    limit: int
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: FinishReason | None = None
    stop_reason: str | None = None


class TransformersEngine:
    """Samples from a ``transformers`` causal LM. ``max_batch_size`` bounds rows per forward."""

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, max_batch_size: int = 64, seed: int = 0):
        self.model = model.eval()
        self._cache_name = cache_kwarg(model)
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.policy_version = 0
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        generation = getattr(model, "generation_config", None)
        self.eos_token_ids = eos_token_ids(getattr(generation, "eos_token_id", None), tokenizer)
        self.pad_token_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_token_ids, default=0)
        )

    def update_weights(self, state: Mapping[str, Any], version: int) -> None:
        self.model.load_state_dict(dict(state), strict=True)
        self.policy_version = version

    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        max_new_tokens: Sequence[int] | None = None,
    ) -> list[Completion]:
        if params.seed is not None:
            self.generator.manual_seed(params.seed)
        limits = token_limits(params, max_new_tokens, len(prompts))
        rows = [_Row(limit=max(0, m)) for m in limits]
        # longest first, so rows of similar length share a batch and padding stays small
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        for start in range(0, len(order), self.max_batch_size):
            chunk = order[start : start + self.max_batch_size]
            self._decode([prompts[i] for i in chunk], [rows[i] for i in chunk], params)
        return [
            Completion(r.tokens, r.logprobs, r.finish or "length", r.stop_reason, self.policy_version) for r in rows
        ]

    def _decode(self, prompts: list[Sequence[int]], rows: list[_Row], params: SamplingParams) -> None:
        live = [i for i, r in enumerate(rows) if r.limit > 0]
        for r in rows:
            if r.limit <= 0:
                r.finish = "length"
        if not live:
            return
        # rows with the same prompt (a group's episodes at their first turn) share one prefill
        unique: dict[tuple[int, ...], int] = {}
        copy_of = [unique.setdefault(tuple(prompts[i]), len(unique)) for i in live]
        ids, mask = self._left_pad([list(p) for p in unique])  # (U, T)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        next_position = mask.sum(-1)  # (U,)
        stops = _StopMatcher(self.tokenizer, params.stop) if params.stop else None
        cache = _new_cache(self.model)
        logits = self._forward(ids, mask, positions, cache)  # (U, V)
        if len(unique) < len(live):  # each row takes its prompt's cache, logits and positions
            index = torch.tensor(copy_of, device=self.device)
            cache.batch_select_indices(index)
            logits, mask, next_position = logits[index], mask[index], next_position[index]  # (B, ...)
        while True:
            logprobs = sampling_logprobs(logits, params.temperature, params.top_k, params.top_p)  # (B, V)
            if params.temperature == 0:
                tokens = logprobs.argmax(-1)
            else:
                tokens = torch.multinomial(logprobs.exp(), 1, generator=self.generator).squeeze(-1)
            chosen = logprobs.gather(-1, tokens[:, None]).squeeze(-1)  # (B,)
            keep = []
            for b, (token, logprob) in enumerate(zip(tokens.tolist(), chosen.tolist(), strict=True)):
                row = rows[live[b]]
                row.tokens.append(token)
                row.logprobs.append(logprob)
                if not self._finished(row, token, params, stops):
                    keep.append(b)
            if not keep:
                return
            if len(keep) < len(live):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, next_position, tokens = mask[index], next_position[index], tokens[index]
                live = [live[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones(len(live), 1)], dim=-1)
            logits = self._forward(tokens[:, None], mask, next_position[:, None], cache)
            next_position = next_position + 1

    def _finished(self, row: _Row, token: int, params: SamplingParams, stops: _StopMatcher | None) -> bool:
        if token in self.eos_token_ids and not params.ignore_eos:
            row.finish, row.stop_reason = "stop", self.tokenizer.convert_ids_to_tokens(token)
        elif stops is not None and (matched := stops.match(row.tokens)) is not None:
            row.finish, row.stop_reason = "stop", matched
        elif len(row.tokens) >= row.limit:
            row.finish = "length"
        return row.finish is not None

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any) -> torch.Tensor:
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_name: cache},
        )
        return out.logits[:, -1, :]

    def _left_pad(self, prompts: list[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        length = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), length), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), length), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if prompt:
                ids[row, length - len(prompt) :] = torch.tensor(list(prompt))
                mask[row, length - len(prompt) :] = 1
        return ids.to(self.device), mask.to(self.device)


def cache_kwarg(model: torch.nn.Module) -> str:
    """The name the model's ``forward`` gives its KV cache.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` and warns on the old name;
    earlier 5.x releases know only ``past_key_values``. Asking the signature uses whichever
    the installed release expects, with no warning either way.
    """
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _new_cache(model: torch.nn.Module) -> Any:
    from transformers import DynamicCache

    return DynamicCache(config=getattr(model, "config", None))


class _StopMatcher:
    """Finds stop strings in a row's decoded tail, decoding only when a token could end one."""

    def __init__(self, tokenizer: Any, stops: tuple[str, ...]):
        self.tokenizer, self.stops = tokenizer, stops
        self.window = max(len(s) for s in stops) + 2  # tokens; every token decodes to >= 1 char
        self.candidates = _tokens_containing(tokenizer, "".join(sorted({s[-1] for s in stops})))

    def match(self, tokens: list[int]) -> str | None:
        if self.candidates is not None and tokens[-1] not in self.candidates:
            return None
        tail = self.tokenizer.decode(tokens[-self.window :])
        return next((s for s in self.stops if s in tail), None)


@functools.lru_cache(maxsize=16)
def _tokens_containing(tokenizer: Any, chars: str) -> frozenset[int] | None:
    """Token ids whose text contains any of ``chars``; None (check every token) when a char
    is not ASCII, since a multi-byte character can be split across byte-level tokens."""
    if not chars.isascii():
        return None
    texts = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    decoded = [tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in texts]
    return frozenset(i for i, text in enumerate(decoded) if any(c in text for c in chars))
