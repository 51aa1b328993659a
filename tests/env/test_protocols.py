"""The envtune protocol parser: structured calls, or a precise error saying what to fix."""

import pytest

from envtune.bfcl.calls import ToolCall
from envtune.env.protocols import parse_envtune, parse_native, parse_prompt, result_messages

CALL = '<tool_call>[{"name": "cd", "arguments": {"folder": "docs"}}]</tool_call>'


def test_a_well_formed_call_reply():
    response = parse_envtune(f"<think>go to docs</think>\n{CALL}")
    assert response.kind == "calls"
    assert response.calls == (ToolCall("cd", {"folder": "docs"}),)


def test_a_well_formed_answer_reply():
    response = parse_envtune("<think>done</think> <answer>All moved.</answer>\n")
    assert (response.kind, response.answer) == ("answer", "All moved.")


@pytest.mark.parametrize(
    "reply, error",
    [
        (CALL, "Start with one <think>...</think> block with your reasoning."),
        ("", "Start with one <think>...</think> block with your reasoning."),
        (f"<think>a</think><think>b</think>{CALL}", "Use exactly one <think> block; found 2."),
        (f"<think>a</think>{CALL}{CALL}", "Use exactly one <tool_call> block; found 2."),
        (f"<think>a</think>{CALL}<answer>x</answer>", "Give either a <tool_call> block or an <answer> block, not both."),
        ("<think>a</think>", "After <think>, give one <tool_call> block to act or one <answer> block to reply to the user."),
        (f"Sure! <think>a</think>{CALL}", "Text outside the tags is not allowed: 'Sure!'. Put reasoning inside <think>."),
        (f"<think>a</think>{CALL} Thanks", "Text outside the tags is not allowed: 'Thanks'. Put reasoning inside <think>."),
        (f"{CALL}<think>a</think>", "The <think> block must come first, before <tool_call> or <answer>."),
        ("<think>a", "The <think> block is never closed; end it with </think>."),
        ("<think>a <answer>b</answer></think>", "<answer> appears inside the <think> block; close <think> first."),
        ("</think>", "</think> at character 0 closes a block that was never opened."),
        ('<think>a</think><tool_call>[{"name": "cd", "arguments": {"folder": "docs"}]</tool_call>',
         "The <tool_call> block is not valid JSON: Expecting ',' delimiter at line 1 column 48."),
        ('<think>a</think><tool_call>{"name": "cd"}</tool_call>',
         'The <tool_call> block must hold a JSON list: [{"name": ..., "arguments": {...}}].'),
        ("<think>a</think><tool_call>[]</tool_call>",
         "The <tool_call> list is empty. Call at least one tool, or reply with <answer> if you are done."),
        ('<think>a</think><tool_call>[{"arguments": {}}]</tool_call>', 'Call 1 has no "name"; give the tool name as a string.'),
        ('<think>a</think><tool_call>[{"name": "ls"}, {"name": "cd", "arguments": ["docs"]}]</tool_call>',
         'The "arguments" of call 2 (cd) must be a JSON object of argument names to values.'),
        ('<think>a</think><tool_call>["ls()"]</tool_call>', 'Call 1 must be an object {"name": ..., "arguments": {...}}.'),
        ('<think>a</think><tool_call>[{"name": "ls", "args": {}}]</tool_call>',
         "Call 1 (ls) has unexpected keys ['args']; use only \"name\" and \"arguments\"."),
    ],
)
def test_format_errors_say_what_to_fix(reply, error):
    response = parse_envtune(reply)
    assert (response.kind, response.error) == ("invalid", error)


def test_prompt_mode_replies():
    assert parse_prompt("[cd(folder='docs'), ls()]").calls == ("cd(folder='docs')", "ls()")
    assert parse_prompt("I could not find that file.").kind == "answer"


def test_native_tool_calls():
    message = {
        "role": "assistant", "content": None,
        "tool_calls": [
            {"id": "a1", "type": "function", "function": {"name": "cd", "arguments": '{"folder": "docs"}'}},
            {"id": "a2", "type": "function", "function": {"name": "ls", "arguments": {}}},
        ],
    }
    response = parse_native(message)
    assert response.calls == (ToolCall("cd", {"folder": "docs"}), ToolCall("ls", {}))
    assert response.call_ids == ("a1", "a2")
    messages = result_messages("native", response, ["r1", "r2"], "")
    assert messages[0] == {"role": "tool", "tool_call_id": "a1", "name": "cd", "content": "r1"}
    assert parse_native({"role": "assistant", "content": "All done."}).kind == "answer"


@pytest.mark.parametrize("arguments", ["not json", "", "[1, 2]", 3])
def test_native_calls_whose_arguments_are_not_an_object_do_not_decode(arguments):
    # BFCL's function-calling loop json-loads every call's arguments; one failure ends the turn with nothing run
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "a1", "type": "function", "function": {"name": "cd", "arguments": '{"folder": "docs"}'}},
        {"id": "a2", "type": "function", "function": {"name": "ls", "arguments": arguments}},
    ]}
    response = parse_native(message)
    assert response.kind == "invalid" and response.calls == () and "tool call 2" in response.error
