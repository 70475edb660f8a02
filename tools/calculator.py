"""A calculator tool with safe evaluation.

Only arithmetic is evaluated: number literals, ``+ - * / // % **``, unary signs and
parentheses, walked from Python's ``ast``. There are no names, calls, attributes or
subscripts, so ``__import__('os')`` is refused before anything runs. Every intermediate
result is bounded so no expression can take unbounded time or memory:

- the expression text is at most ``max_length`` characters (a 10 MB input is refused
  before parsing);
- integer operands and results have at most ``max_digits`` digits;
- an exponent's absolute value is at most ``max_exponent``, and ``a ** b`` is refused
  when its result would exceed ``max_digits`` digits (estimated from ``b * log10|a|``
  before computing it), so ``9**9**9`` is refused instantly.
"""

from __future__ import annotations

import ast
import math
import operator
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from agentrl_tools.base import ToolInputError


class CalculatorError(ToolInputError):
    """The expression was refused or could not be evaluated."""


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


@dataclass(frozen=True)
class Limits:
    max_length: int = 512
    max_digits: int = 100
    max_exponent: int = 1000


def evaluate(expression: str, limits: Limits = Limits()) -> int | float:
    """Evaluate an arithmetic expression within ``limits`` or raise ``CalculatorError``."""
    if len(expression) > limits.max_length:
        raise CalculatorError(f"expression too long ({len(expression)} characters, limit {limits.max_length})")
    text = expression.strip().replace("^", "**").replace("×", "*").replace("÷", "/")
    text = text.replace(",", "") if _looks_like_thousands(text) else text
    if not text:
        raise CalculatorError("empty expression")
    try:
        with warnings.catch_warnings():  # "1and" warns before it fails; the refusal is the answer
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise CalculatorError(f"not an arithmetic expression: {expression.strip()[:80]!r}") from None
    return _eval(tree.body, limits)


def _looks_like_thousands(text: str) -> bool:
    # "1,234 + 5" is a number with a thousands separator, not a tuple.
    return "," in text and all(part[:3].isdigit() for part in text.split(",")[1:])


def _eval(node: ast.AST, limits: Limits) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check(node.value, limits)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, limits))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, limits), _eval(node.right, limits)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right, limits)
        try:
            return _check(_BINARY[type(node.op)](left, right), limits)
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("result too large") from None
    if isinstance(node, ast.Name | ast.Call | ast.Attribute | ast.Subscript):
        raise CalculatorError("only numbers and + - * / // % ** ( ) are allowed; no names, calls or attributes")
    raise CalculatorError(f"unsupported syntax: {type(node).__name__}")


def _check_power(base: float, exponent: float, limits: Limits) -> None:
    if abs(exponent) > limits.max_exponent:
        raise CalculatorError(f"exponent too large (limit {limits.max_exponent})")
    if base not in (0, 1, -1) and exponent > 0:
        digits = exponent * math.log10(abs(base)) if base else 0.0
        if digits > limits.max_digits:
            raise CalculatorError(f"result too large (more than {limits.max_digits} digits)")
    if base == 0 and exponent < 0:
        raise CalculatorError("division by zero")


def _check(value: Any, limits: Limits) -> int | float:
    if isinstance(value, complex):
        raise CalculatorError("complex result")
    # bit_length is O(1); log2(10) ~ 3.32 bits per decimal digit.
    if isinstance(value, int) and value.bit_length() > limits.max_digits * 3.33:
        raise CalculatorError(f"number too large (more than {limits.max_digits} digits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise CalculatorError("result is not finite")
    return value


def format_number(value: int | float) -> str:
    """Integers as integers, floats without float noise (``0.1 + 0.2`` -> ``0.3``)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


@dataclass
class Calculator:
    """The ``calculator`` tool: evaluates one arithmetic expression."""

    limits: Limits = Limits()
    name: ClassVar[str] = "calculator"
    description: ClassVar[str] = "Evaluate an arithmetic expression, e.g. 12*(3+4)/2."
    primary_argument: ClassVar[str] = "expression"
    schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. 12*(3+4)"}},
        "required": ["expression"],
    }

    def __call__(self, **arguments: Any) -> str:
        expression = arguments.get("expression")
        if not isinstance(expression, str) or set(arguments) != {"expression"}:
            raise CalculatorError('expected exactly one string argument "expression"')
        return format_number(evaluate(expression, self.limits))
