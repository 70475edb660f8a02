"""What the built-in environments share: the math task-source config, task loading and
reset (a turn's tool calls are ``agentrl_envs.tool_turn``'s).

Owns choosing a task on reset (an explicit ``options["task"]``, an index, or the seed) and
the opening messages. Tasks from a file or dataset are loaded once per process and source.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentrl.config import check_range, option
from agentrl.envs.base import TurnCounter, new_info
from agentrl.errors import ConfigError
from agentrl.tasks import resolve
from agentrl.types import Message, Task
from agentrl_envs.arith import ArithmeticTasks, Difficulty
from agentrl_envs.grading import extract_answer, gold_answer, shared_grader


def pick_task(
    tasks: Callable[[str], Sequence[Task]], options: dict[str, Any] | None, draw: Callable[[int], int]
) -> Task:
    """The task a reset starts: ``options["task"]``, else ``options["task_index"]`` of the split
    ``options["split"]`` ("test"), else the index ``draw(len(pool))``."""
    options = options or {}
    if options.get("task") is not None:
        return options["task"]
    pool = tasks(options.get("split", "test"))
    return pool[options["task_index"] if "task_index" in options else draw(len(pool))]


def opening(task: Task, system_prompt: str | None, default: str) -> tuple[list[Message], dict[str, Any]]:
    """The opening messages of an episode on ``task`` (the system prompt, ``default`` when
    ``system_prompt`` is None, then the question) and the reset ``info``."""
    system = system_prompt if system_prompt is not None else default
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": task.prompt})
    return messages, new_info(0, task_id=task.id)


@dataclass
class MathTaskConfig:
    source: str = option(
        "generator",
        "'generator', a .jsonl/.json/.parquet path ({split} is replaced by the split), or hf:NAME[:CONFIG]",
    )
    num_tasks: int = option(500, "tasks per split from the generator")
    seed: int = option(0, "generator seed")
    max_digits: int = option(2, "generator: largest operand has this many digits")
    num_ops: int = option(1, "generator: operators per arithmetic problem")
    ops: str = option("+-*", "generator: operators to draw from, any of + - * /")
    word_problems: float = option(0.3, "generator: fraction of word problems")
    question_key: str | None = option(
        None, "file/dataset: the question column (default: first of question/prompt/problem/...)"
    )
    answer_key: str | None = option(None, "file/dataset: the answer column (default: first of answer/solution/...)")
    grader_timeout_s: float = option(5.0, "seconds before a math-verify check counts as wrong")
    system_prompt: str | None = option(None, "system message; None uses the environment's default")

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "num_tasks", self.num_tasks, 1)
        check_range(owner, "max_digits", self.max_digits, 1, 12)
        check_range(owner, "num_ops", self.num_ops, 1, 6)
        check_range(owner, "word_problems", self.word_problems, 0, 1)
        check_range(owner, "grader_timeout_s", self.grader_timeout_s, 0.01)
        if not self.ops or set(self.ops) - set("+-*/"):
            raise ConfigError(f"{owner}: ops={self.ops!r} must be made of + - * /")


@functools.cache
def _cached_tasks(source: str, split: str, question_key: str | None, answer_key: str | None) -> tuple[Task, ...]:
    return tuple(resolve(source, split, question_key=question_key, answer_key=answer_key, answer=gold_answer))


class MathTaskMixin:
    """Task handling for environments configured by a ``MathTaskConfig`` in ``self.config``."""

    config: MathTaskConfig
    default_system_prompt: str = ""
    turns: TurnCounter
    task: Task | None = None

    def tasks(self, split: str = "test") -> Sequence[Task]:
        c = self.config
        if c.source == "generator":
            difficulty = Difficulty(c.max_digits, c.num_ops, c.ops, c.word_problems)
            return ArithmeticTasks(split, c.num_tasks, c.seed, difficulty)
        return _cached_tasks(c.source, split, c.question_key, c.answer_key)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[list[Message], dict[str, Any]]:
        self.task = pick_task(self.tasks, options, random.Random(seed).randrange)
        self.turns.start()
        return opening(self.task, self.config.system_prompt, self.default_system_prompt)

    def grade(self, text: str) -> tuple[str | None, dict[str, float], str]:
        """``(answer, reward_components, grader_status)`` for the final turn ``text``."""
        assert self.task is not None, "reset() first"
        answer = extract_answer(text)
        correct, status = shared_grader(self.config.grader_timeout_s).check(self.task.answer, answer)
        return answer, {"correct": float(correct)}, status
