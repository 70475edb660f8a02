"""A seeded generator of problems that are easy with code and hard in the head (ToRL-style).

Owns problem text, exact integer answers and, per task, a short Python program that prints
the answer (``meta["solution"]``, what a model with the ``python`` tool would write; the
default model's traces are built from it; its numbers are the question's, as written there:
an inclusive bound ``n`` becomes ``range(1, n + 1)``, so writing the program is copying, not
mental arithmetic). Families: sums over a range with a divisibility
condition, products of large numbers, counting numbers by digit sum, Collatz step counts,
counting primes below a bound, Fibonacci numbers modulo m. Task ``i`` of a split depends only
on ``(seed, split, i)``; the splits are ``train``, ``test`` and ``validation``, and any other
name is an error. Answers are computed in this process by plain Python, never by a model.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import ClassVar

from agentrl.tasks import TaskSourceError
from agentrl.types import Task
from agentrl_envs.generated import GeneratedTasks


def _divisible_sum(rng: random.Random) -> tuple[str, str, int]:
    n, a, b = rng.randint(200, 5000), rng.choice((3, 4, 6, 7)), rng.choice((5, 9, 11, 13))
    prompt = f"What is the sum of all integers from 1 to {n} that are divisible by {a} or by {b}?"
    code = f"print(sum(k for k in range(1, {n} + 1) if k % {a} == 0 or k % {b} == 0))"
    return prompt, code, sum(k for k in range(1, n + 1) if k % a == 0 or k % b == 0)


def _big_product(rng: random.Random) -> tuple[str, str, int]:
    x, y, z = rng.randint(1000, 99999), rng.randint(1000, 99999), rng.randint(100, 9999)
    return f"What is {x} * {y} - {z}?", f"print({x} * {y} - {z})", x * y - z


def _digit_sum_count(rng: random.Random) -> tuple[str, str, int]:
    n, s = rng.randint(500, 9999), rng.randint(5, 20)
    prompt = f"How many integers from 1 to {n} have digits that add up to {s}?"
    code = f"print(sum(1 for k in range(1, {n} + 1) if sum(map(int, str(k))) == {s}))"
    return prompt, code, sum(1 for k in range(1, n + 1) if sum(map(int, str(k))) == s)


def _collatz(rng: random.Random) -> tuple[str, str, int]:
    start = rng.randint(30, 5000)
    prompt = (
        f"Start with {start}. Repeatedly halve the number if it is even, otherwise triple it and add 1. "
        "How many steps does it take to reach 1?"
    )
    code = f"n, steps = {start}, 0\nwhile n != 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\n"
    code += "print(steps)"
    n, steps = start, 0
    while n != 1:
        n, steps = (n // 2 if n % 2 == 0 else 3 * n + 1), steps + 1
    return prompt, code, steps


def _prime_count(rng: random.Random) -> tuple[str, str, int]:
    n = rng.randint(100, 20000)
    code = f"print(sum(1 for k in range(2, {n}) if all(k % d for d in range(2, int(k ** 0.5) + 1))))"
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for k in range(2, int(n**0.5) + 1):
        if sieve[k]:
            sieve[k * k :: k] = bytearray(len(range(k * k, n, k)))
    return f"How many prime numbers are smaller than {n}?", code, sum(sieve)


def _fibonacci_mod(rng: random.Random) -> tuple[str, str, int]:
    n, m = rng.randint(30, 400), rng.choice((97, 1000, 1009, 10007))
    prompt = f"Let F(1) = F(2) = 1 and F(k) = F(k-1) + F(k-2). What is F({n}) modulo {m}?"
    code = f"a, b = 1, 1\nfor _ in range({n} - 2):\n    a, b = b, a + b\nprint(b % {m})"
    a, b = 1, 1
    for _ in range(n - 2):
        a, b = b, a + b
    return prompt, code, b % m


FAMILIES: dict[str, Callable[[random.Random], tuple[str, str, int]]] = {
    "divisible_sum": _divisible_sum,
    "big_product": _big_product,
    "digit_sum_count": _digit_sum_count,
    "collatz": _collatz,
    "prime_count": _prime_count,
    "fibonacci_mod": _fibonacci_mod,
}


class CodeTasks(GeneratedTasks):
    """``size`` tasks of ``split``, generated on access, each of one of ``families``."""

    what = "the code-task generator"
    rng_prefix = "code/"
    salts: ClassVar[dict[str, int]] = {"train": 10, "test": 11, "validation": 12}

    def __init__(self, split: str, size: int, seed: int = 0, families: Sequence[str] = tuple(FAMILIES)):
        super().__init__(split, size, seed)
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise TaskSourceError(f"unknown code-task families {unknown}; known: {', '.join(FAMILIES)}")
        self.families = tuple(families)

    def make(self, index: int, rng: random.Random) -> Task:
        family = self.families[rng.randrange(len(self.families))]
        prompt, code, answer = FAMILIES[family](rng)
        meta = {"family": family, "solution": code, "tools": ["python"]}
        return Task(id=f"code-{self.split}-{index}", prompt=prompt, answer=str(answer), meta=meta)
