from agentrl_tools.calculator import Calculator
from agentrl_tools.parsers import parse_hermes, parse_tool_calls, parse_xml

TOOLS = {"calculator": Calculator()}


def test_xml_calls():
    parsed = parse_xml("Let me compute <calculator> 12*7 </calculator> now", TOOLS)
    assert parsed.error is None
    assert [(c.name, c.arguments) for c in parsed.calls] == [("calculator", {"expression": "12*7"})]
    two = parse_xml("<calculator>1+1</calculator> and <calculator>2+2</calculator>", TOOLS)
    assert len(two.calls) == 2


def test_xml_prose_and_think_are_not_calls():
    assert parse_xml("The answer is 5.", TOOLS).calls == []
    parsed = parse_xml("<think>hmm</think> The answer is 5.", TOOLS)
    assert parsed.error is None and parsed.calls == []


def test_xml_errors():
    assert parse_xml("<calculator>1+1", TOOLS).error == "malformed_call"
    assert parse_xml("<search>cats</search>", TOOLS).error == "unknown_tool"
    assert parse_xml("<calculator>  </calculator>", TOOLS).error == "bad_args"
    # one malformed call poisons the turn: nothing runs
    mixed = parse_xml("<calculator>1+1</calculator><python>x</python>", TOOLS)
    assert mixed.error == "unknown_tool" and mixed.calls == []


def test_hermes_calls():
    text = 'ok <tool_call>{"name": "calculator", "arguments": {"expression": "3*3"}}</tool_call>'
    parsed = parse_hermes(text, TOOLS)
    assert parsed.error is None and parsed.calls[0].arguments == {"expression": "3*3"}
    encoded = '<tool_call>{"name": "calculator", "arguments": "{\\"expression\\": \\"1\\"}"}</tool_call>'
    assert parse_hermes(encoded, TOOLS).calls[0].arguments == {"expression": "1"}


def test_hermes_errors():
    def kind(text):
        return parse_hermes(text, TOOLS).error

    assert kind("<tool_call>{not json}</tool_call>") == "invalid_json"
    assert kind('<tool_call>{"name": "search", "arguments": {}}</tool_call>') == "unknown_tool"
    assert kind('<tool_call>{"arguments": {}}</tool_call>') == "bad_args"
    assert kind('<tool_call>["calculator"]</tool_call>') == "bad_args"
    assert kind('<tool_call>{"name": "calculator", "arguments": {}}</tool_call>') == "bad_args"
    assert kind('<tool_call>{"name": "calculator", "arguments": {"expression": 5}}</tool_call>') == "bad_args"
    extra = '<tool_call>{"name": "calculator", "arguments": {"expression": "1", "x": 2}}</tool_call>'
    assert kind(extra) == "bad_args"
    assert kind('<tool_call>{"name": "calculator", "arguments": {"expression": "1"}}') == "malformed_call"
    assert parse_hermes("no calls here", TOOLS).calls == []


def test_messages_are_one_line():
    for text in ["<tool_call>{bad</tool_call>", "<nope>1</nope>", "<calculator>1"]:
        parsed = parse_tool_calls(text, TOOLS, "hermes" if "tool_call" in text else "xml")
        assert parsed.message and "\n" not in parsed.message
