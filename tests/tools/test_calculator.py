import pytest

from agentrl_tools.base import ToolCall, run_tool
from agentrl_tools.calculator import Calculator, CalculatorError, evaluate, format_number


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2+3*4", 14),
        ("(1+2)**3", 27),
        ("7/2", 3.5),
        ("17 // 5", 3),
        ("17 % 5", 2),
        ("-5 + 2", -3),
        ("2^10", 1024),
        ("1,234 + 1", 1235),
        ("2**-1", 0.5),
    ],
)
def test_arithmetic(expression, expected):
    assert evaluate(expression) == expected


def test_format_number_hides_float_noise():
    assert format_number(evaluate("0.1 + 0.2")) == "0.3"
    assert format_number(evaluate("6/3")) == "2"
    assert format_number(evaluate("10**20")) == "100000000000000000000"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("9**9**9", "too large"),
        ("10**1000", "too large"),
        ("2**100000", "exponent too large"),
        ("99999999999999999999**20", "too large"),
        ("9" * 60 + "*" + "9" * 60, "too large"),
        ("__import__('os')", "no names"),
        ("().__class__", "no names"),
        ("(lambda: 1)()", "no names"),
        ("x + 1", "no names"),
        ("[1, 2][0]", "no names"),
        ("{1: 2}", "unsupported syntax"),
        ("1/0", "division by zero"),
        ("0**-1", "division by zero"),
        ("(-8)**0.5", "complex"),
        ("1e308*10", "not finite"),
        ("", "empty expression"),
        ("2 +", "not an arithmetic expression"),
    ],
)
def test_abuse_is_refused(expression, message):
    with pytest.raises(CalculatorError, match=message):
        evaluate(expression)


@pytest.mark.timeout(10)
def test_ten_megabyte_expression_is_refused_before_parsing():
    with pytest.raises(CalculatorError, match="too long"):
        evaluate("1+" * 5_000_000 + "1")


def test_tool_wraps_errors_as_results():
    calc = Calculator()
    ok = run_tool(calc, ToolCall("calculator", {"expression": "6*7"}))
    assert (ok.status, ok.output) == ("ok", "42") and ok.latency_s >= 0
    bad = run_tool(calc, ToolCall("calculator", {"expression": "__import__('os')"}))
    assert bad.status == "error" and bad.output.startswith("Error: ")
    wrong_args = run_tool(calc, ToolCall("calculator", {"expr": "1"}))
    assert wrong_args.status == "error" and "expression" in wrong_args.output


def test_tool_timeout_becomes_timeout_status():
    class Slow:
        name, description, schema, primary_argument = "slow", "", {}, "x"

        def __call__(self, **arguments):
            raise TimeoutError("took too long")

    result = run_tool(Slow(), ToolCall("slow", {}))
    assert result.status == "timeout" and "took too long" in result.output
