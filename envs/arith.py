"""A seeded generator of arithmetic and word problems, the default task source.

Owns problem text, gold answers and the expression that solves each task
(``meta["expression"]``). Task ``i`` of a split depends only on
``(seed, split, i)`` and the difficulty knobs, so any slice of a split is reproducible
without generating the rest. Every answer is an integer (division is exact by construction).
The splits are ``train``, ``test`` and ``validation``; any other name is an error, so a typo
never evaluates silently on tasks of its own.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from agentrl.types import Task
from agentrl_envs.generated import GeneratedTasks
from agentrl_tools.calculator import evaluate

_NAMES = ("Ada", "Bo", "Cam", "Dee", "Eli", "Fay", "Gus", "Ivy", "Jo", "Kai")
_ITEMS = ("apples", "books", "coins", "stamps", "shells", "pens", "cards", "marbles")
SPLITS = tuple(GeneratedTasks.salts)


@dataclass(frozen=True)
class Difficulty:
    max_digits: int = 2
    num_ops: int = 1
    ops: str = "+-*"
    word_problems: float = 0.3


class ArithmeticTasks(GeneratedTasks):
    """``size`` arithmetic and word problems of ``split``, generated on access."""

    def __init__(self, split: str, size: int, seed: int = 0, difficulty: Difficulty = Difficulty()):
        super().__init__(split, size, seed)
        self.difficulty = difficulty

    def make(self, index: int, rng: random.Random) -> Task:
        d = self.difficulty
        prompt, expression = _word_problem(rng, d) if rng.random() < d.word_problems else _expression(rng, d)
        answer = int(evaluate(expression))
        meta = {"index": index, "expression": expression}
        return Task(id=f"arith-{self.split}-{self.seed}-{index}", prompt=prompt, answer=str(answer), meta=meta)


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(1, 10**digits - 1)


def _expression(rng: random.Random, d: Difficulty) -> tuple[str, str]:
    text = str(_number(rng, d.max_digits))
    for _ in range(d.num_ops):
        op = rng.choice(d.ops)
        operand = _number(rng, max(1, d.max_digits - 1) if op == "*" and d.num_ops > 1 else d.max_digits)
        if op == "/":  # keep division exact: multiply the running text's value in first
            value = int(evaluate(text))
            operand = rng.choice([k for k in range(1, 13) if value % k == 0] or [1])
            text = f"({text})" if any(c in text for c in "+-") else text
        text = f"{text} {op} {operand}"
    return f"What is {text}?", text


def _word_problem(rng: random.Random, d: Difficulty) -> tuple[str, str]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    a, b = _number(rng, d.max_digits), _number(rng, d.max_digits)
    kind = rng.choice(d.ops)
    if kind == "+":
        return f"{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?", f"{a} + {b}"
    if kind == "-":
        a, b = max(a, b), min(a, b)
        return f"{name} had {a} {item} and gave away {b}. How many {item} are left?", f"{a} - {b}"
    if kind == "*":
        b = rng.randint(2, 9)
        return f"Each box holds {a} {item}. How many {item} are in {b} boxes?", f"{a} * {b}"
    b = rng.randint(2, 9)
    return f"{name} shares {a * b} {item} equally among {b} friends. How many {item} does each get?", f"{a * b} / {b}"
