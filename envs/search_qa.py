"""``search_qa``: answer a question by searching a corpus, over several turns.

Each turn the model either searches (``<search>query</search>``, or a Hermes
``<tool_call>{"name": "search", "arguments": {"query": ...}}</tool_call>``), and the top-k
passages come back as a ``tool`` message ``<information>Doc 1 (Title: ...) ...</information>``;
or it answers (``<answer>...</answer>``), which ends the episode. Observation tokens are never
trained on: the rollout masks everything the environment sends.

Reward: 1 for an exact match (SQuAD normalisation) with any gold answer, else
``format_reward`` when the episode ended in a well-formed answer; minus ``search_cost`` per
search. Components: ``correct`` (exact match), ``f1``, ``searches``.

Budgets: ``max_turns`` (truncated, reward 0, when spent), ``max_searches`` (a search past it
is refused with ``too_many_calls``), and the rollout's token budget (``max_total_tokens``).
Defined outcomes for bad actions follow ``math_tool``'s (``empty_output``, ``no_action``,
``malformed_call``, ``invalid_json``, ``unknown_tool``, ``bad_args``, ``too_many_calls``);
a search that fails is an ``Error: ...`` observation with ``info["tool_status"]`` =
``timeout`` / ``unavailable`` / ``error``. ``step`` never raises because of the model or the
retriever.

Data: ``source="world"`` (default) is a seeded fictional world (``agentrl_envs.search_world``)
whose corpus is written once to the cache dir; any other source is a question file or
``hf:`` dataset in the Search-R1 / FlashRAG shape (``question``, ``golden_answers``) with a
``corpus`` JSONL beside it. The retriever is ``local`` (BM25 in this process) or the URL of
``agentrl serve retriever``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from agentrl.config import build, check_choice, check_range, option
from agentrl.envs.base import Env, EnvSpec, StepResult, TurnCounter, new_info
from agentrl.errors import ConfigError
from agentrl.tasks import resolve
from agentrl.types import Message, Task
from agentrl_envs import search_world
from agentrl_envs.common import opening, pick_task
from agentrl_envs.qa_grading import exact_match, extract_answer, f1, gold_list, golds_of
from agentrl_envs.tool_turn import take_turn
from agentrl_tools.base import tool_spec
from agentrl_tools.parsers import FORMATS
from agentrl_tools.search.base import default_cache_dir
from agentrl_tools.search.factory import open_retriever
from agentrl_tools.search.tool import SearchTool

_PROMPTS = {
    "xml": "Answer the question. To look something up, write <search>QUERY</search>; the results come back "
    "to you. When you know the answer, write <answer>ANSWER</answer>.",
    "hermes": 'Answer the question. To look something up, call <tool_call>{"name": "search", "arguments": '
    '{"query": "..."}}</tool_call>; the results come back to you. When you know the answer, write '
    "<answer>ANSWER</answer>.",
}


@dataclass
class SearchQAConfig:
    source: str = option(
        "world", "'world' (a generated fictional world), a .jsonl/.parquet question file ({split}), or hf:NAME[:CONFIG]"
    )
    corpus: str | None = option(
        None, "corpus JSONL ({id, contents} or {id, title, text}); required unless source=world"
    )
    retriever: str = option("local", "'local' (BM25 in this process) or the URL of `agentrl serve retriever`")
    topk: int = option(3, "passages per search")
    num_tasks: int = option(1000, "world: questions per split")
    seed: int = option(0, "world: generator seed")
    two_hop_share: float = option(0.3, "world: share of questions that need two searches")
    question_key: str | None = option(None, "file/dataset: the question column (default: question/prompt/...)")
    answer_key: str | None = option(None, "file/dataset: the gold column (default: golden_answers/answer/...)")
    max_turns: int = option(4, "turn budget; the episode is truncated when it runs out")
    max_searches: int = option(3, "search budget of an episode; later searches are refused (too_many_calls)")
    tool_format: str = option("xml", "search-call format: xml (<search>q</search>) or hermes (<tool_call>)")
    max_passage_chars: int = option(400, "each passage's text is cut to this many characters")
    max_observation_chars: int = option(2000, "the whole <information> block is cut to this many characters")
    format_reward: float = option(0.0, "reward for a well-formed but wrong <answer>")
    search_cost: float = option(0.0, "reward subtracted per search")
    timeout_s: float = option(5.0, "http retriever: seconds per request before it counts as a timeout")
    retries: int = option(2, "http retriever: retries after a connection error, timeout or 5xx")
    max_concurrent_requests: int = option(8, "http retriever: requests in flight at once")
    cache_dir: str | None = option(None, "where the world's corpus and BM25 indexes go (default ~/.cache/agentrl)")
    system_prompt: str | None = option(None, "system message; None uses the environment's default")

    def __post_init__(self) -> None:
        check_range("search_qa", "topk", self.topk, 1, 100)
        check_range("search_qa", "num_tasks", self.num_tasks, 1)
        check_range("search_qa", "two_hop_share", self.two_hop_share, 0, 1)
        check_range("search_qa", "max_turns", self.max_turns, 1, 64)
        check_range("search_qa", "max_searches", self.max_searches, 0)
        check_choice("search_qa", "tool_format", self.tool_format, FORMATS)
        check_range("search_qa", "max_passage_chars", self.max_passage_chars, 20)
        check_range("search_qa", "max_observation_chars", self.max_observation_chars, 100)
        check_range("search_qa", "timeout_s", self.timeout_s, 0.01)
        check_range("search_qa", "retries", self.retries, 0, 10)
        check_range("search_qa", "max_concurrent_requests", self.max_concurrent_requests, 1)
        if self.source != "world" and self.corpus is None and self.retriever == "local":
            raise ConfigError(f"search_qa: source={self.source!r} needs corpus=FILE (the documents to search)")


class SearchQAEnv(Env):
    """Multi-turn question answering with a search tool; exact match against the gold answers."""

    name: ClassVar[str] = "search_qa"
    check_actions: ClassVar[tuple[str, ...]] = ("<search>capital</search>", "<search></search>", "<answer>x</answer>")

    options_cls = SearchQAConfig

    def __init__(self, **config: Any):
        self.config = build(SearchQAConfig, config, owner="search_qa")
        c = self.config
        retriever = open_retriever(
            c.retriever,
            corpus=self.corpus_path() if c.retriever == "local" else None,
            cache_dir=c.cache_dir,
            timeout_s=c.timeout_s,
            retries=c.retries,
            max_concurrent_requests=c.max_concurrent_requests,
        )
        self.search = SearchTool(
            retriever, topk=c.topk, max_passage_chars=c.max_passage_chars, max_observation_chars=c.max_observation_chars
        )
        self.tools = {self.search.name: self.search}
        stops = ("</search>", "</answer>") if c.tool_format == "xml" else ("</tool_call>", "</answer>")
        self.rollout_spec = EnvSpec(max_turns=c.max_turns, stop_strings=stops, tools=(tool_spec(self.search),))
        self.default_system_prompt = _PROMPTS[c.tool_format]
        self.turns = TurnCounter(max_turns=c.max_turns)
        self.task: Task | None = None
        self.searches = 0

    def corpus_path(self) -> str:
        """The corpus the local retriever indexes: the world's (written once) or ``corpus``."""
        c = self.config
        if c.source != "world":
            assert c.corpus is not None
            return c.corpus
        return str(_world_corpus(Path(c.cache_dir) if c.cache_dir else default_cache_dir(), c.seed))

    def tasks(self, split: str = "test") -> Sequence[Task]:
        c = self.config
        if c.source == "world":
            return search_world.world(c.seed).tasks(split, c.num_tasks, c.two_hop_share)
        return _file_tasks(c.source, split, c.question_key, c.answer_key)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[list[Message], dict]:
        self.task = pick_task(self.tasks, options, lambda n: int(self.np_random.integers(n)))
        self.searches = 0
        self.turns.start()
        return opening(self.task, self.config.system_prompt, self.default_system_prompt)

    def step(self, action: str) -> StepResult:
        return asyncio.run(self.astep(action))

    async def astep(self, action: str) -> StepResult:
        turn = self.turns.advance(action)
        budget = self.config.max_searches
        taken = await take_turn(
            action,
            self.tools,
            self.config.tool_format,
            max_calls=budget - self.searches,
            too_many=f"the search budget ({budget}) is spent; give the answer",
            empty_hint="Your reply was empty. Search or give the answer.",
        )
        self.searches += len(taken.info.get("tool_calls", ()))
        if taken.final is None:
            return self._go_on(turn, taken.messages, **taken.info)
        answer = extract_answer(action)
        if answer is None:
            return self._tell(
                turn,
                "user",
                "Search with <search>QUERY</search> or answer with <answer>ANSWER</answer>.",
                parse_error="no_action",
            )
        return self._answered(turn, answer)

    def _answered(self, turn: int, answer: str) -> StepResult:
        assert self.task is not None, "reset() first"
        golds = golds_of(self.task.answer)
        em = exact_match(answer, golds)
        components = {"correct": em, "f1": f1(answer, golds), "searches": float(self.searches)}
        reward = (em or self.config.format_reward) - self.config.search_cost * self.searches
        self.turns.done = True
        return [], reward, True, False, new_info(turn, answer=answer, reward_components=components)

    def _tell(self, turn: int, role: str, content: str, **info: Any) -> StepResult:
        return self._go_on(turn, [{"role": role, "content": content}], **info)

    def _go_on(self, turn: int, messages: list[Message], **info: Any) -> StepResult:
        spent = float(self.searches)
        components = {"correct": 0.0, "f1": 0.0, "searches": spent}
        cost = -self.config.search_cost * spent
        return self.turns.go_on(turn, messages, truncated_reward=cost, truncated_components=components, **info)


@functools.cache
def _world_corpus(cache_dir: Path, seed: int) -> Path:
    path = cache_dir / "search_qa" / f"world-v{search_world.VERSION}-s{seed}.jsonl"
    if not path.is_file():
        search_world.write_corpus(path, seed)
    return path


@functools.cache
def _file_tasks(source: str, split: str, question_key: str | None, answer_key: str | None) -> tuple[Task, ...]:
    return tuple(resolve(source, split, question_key=question_key, answer_key=answer_key, answer=gold_list))
