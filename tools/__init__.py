"""Tools that agentrl's environments call (installed as ``agentrl_tools``).

A tool takes parsed arguments and returns a ``ToolResult``; it never raises for bad input,
never sees tokens and knows nothing about the environment that calls it.
"""

from agentrl_tools.base import Tool, ToolCall, ToolResult, run_tool
from agentrl_tools.calculator import Calculator, CalculatorError, evaluate
from agentrl_tools.parsers import ParsedCalls, parse_hermes, parse_tool_calls, parse_xml

__all__ = [
    "Calculator",
    "CalculatorError",
    "ParsedCalls",
    "Tool",
    "ToolCall",
    "ToolResult",
    "evaluate",
    "parse_hermes",
    "parse_tool_calls",
    "parse_xml",
    "run_tool",
]
