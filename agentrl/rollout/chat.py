"""Chat-template arithmetic: the tokens an observation adds, without re-tokenising samples.

Owns rendering a conversation with the tokenizer's chat template and computing deltas.
Sampled tokens are kept exactly as sampled; only template text (turn closers, observation
messages, the next generation prompt) is ever tokenised, and only as a delta:

    glue = render(conv + [assistant] + observations, generation prompt)
           minus render(conv, generation prompt) + decode(sampled tokens)

Two prefix properties are checked on every turn: the template renders the assistant turn
as the text that was actually sampled (so the held tokens still spell a prefix of the
new render), and adding observations only appends. ``TemplateBreak`` signals a violation;
the rollout then continues the episode as a new sample (see ``agentrl.rollout.episode``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentrl.types import Message


class TemplateBreak(Exception):
    """The chat template is not prefix-preserving for this turn."""


class ChatRenderer:
    """Renders conversations with one tokenizer's chat template and tool specs."""

    def __init__(self, tokenizer: Any, tools: Sequence[dict[str, Any]] = ()):
        self.tokenizer = tokenizer
        self.tools = list(tools) or None

    def render(self, messages: Sequence[Message], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            list(messages),
            tools=self.tools,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, token_ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(token_ids), skip_special_tokens=False)

    def content_of(self, token_ids: Sequence[int], eos_token_ids: frozenset[int]) -> str:
        """The assistant message text of a turn: its tokens as sampled (special tokens
        included), minus a final end-of-turn token, which the template writes itself."""
        if token_ids and token_ids[-1] in eos_token_ids:
            token_ids = token_ids[:-1]
        return self.decode(token_ids)

    def glue(
        self,
        held_text: str,
        conversation: Sequence[Message],
        sampled_text: str,
        observations: Sequence[Message],
    ) -> tuple[list[int], str]:
        """Tokens that close the assistant turn and render ``observations`` plus the next
        generation prompt, and the full text they complete.

        ``held_text`` is the text the held tokens spell before the turn was sampled;
        ``conversation`` ends with the assistant message. Raises ``TemplateBreak``.
        """
        base = self.render(conversation, generation_prompt=False)
        if not base.startswith(held_text + sampled_text):
            raise TemplateBreak("the template does not render the assistant turn as sampled after the held prefix")
        full = self.render([*conversation, *observations], generation_prompt=True)
        if not full.startswith(base):
            raise TemplateBreak("rendering the observation changed earlier text")
        glue_text = full[len(held_text) + len(sampled_text) :]
        tokens = self.encode(glue_text)
        if self.decode(tokens) != glue_text:
            raise TemplateBreak("the template glue does not round-trip through the tokenizer")
        return tokens, full
