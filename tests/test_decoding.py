"""Prompt-mode decoding follows the official BFCL rules, without evaluating anything."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envtune.bfcl.calls import CallError, parse_call
from envtune.bfcl.decoding import DecodeError, decode_prompt_output


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[cd(folder='a'), ls()]", ["cd(folder='a')", "ls()"]),
        ("cd(folder='a')", ["cd(folder='a')"]),
        ("```\n[ls(a=True)]\n```", ["ls(a=True)"]),
        # keyword arguments only: positional ones are dropped
        ("[post_tweet('hello', tags=['#a'])]", ["post_tweet(tags=['#a'])"]),
        # a bare name becomes a string
        ("[cd(folder=documents)]", ["cd(folder='documents')"]),
        # every unary operator negates, as in the official decoder
        ("[add(a=-5, b=+3)]", ["add(a=-5, b=-3)"]),
        ("[add(a=2*3, b=7/2)]", ["add(a=6, b=3.5)"]),
        ("[f(x=(1, 'a'), y={'k': [1, 2]})]", ["f(x=(1, 'a'), y={'k': [1, 2]})"]),
        # a dict whose values are all dicts is rendered as a call, as the official decoder does
        ("[f(x={'g': {'y': 1}})]", ["f(x=g(y=1))"]),
        ("[f(x=g())]", ["f(x='g()')"]),
        ("[f(x=a[0])]", ["f(x='a[0]')"]),
        ("[]", []),
        # `**` unpacking decodes to a keyword named None; running it is then a syntax error
        ("[f(**{'a': 1})]", ["f(None={'a': 1})"]),
    ],
)
def test_official_prompt_mode_rules(text, expected):
    assert decode_prompt_output(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "I will now list the files.",
        "[ls(), 'text']",
        "[f(x=lambda: 1)]",
        "[f(x={})]",
        "[f(x={1, 2})]",
        "[f(x=-y)]",
        "[f(x=1 if a else 2)]",
        "[f(x=10**10**10)]",
    ],
)
def test_texts_the_official_decoder_rejects_are_rejected(text):
    with pytest.raises(DecodeError):
        decode_prompt_output(text)


def test_parse_call_keeps_positional_arguments_for_binding():
    call = parse_call("sort('final_report.pdf')")
    assert (call.name, call.args, call.kwargs) == ("sort", ("final_report.pdf",), {})


@pytest.mark.parametrize(
    "source, message",
    [
        ("cd(folder=x)", "name 'x' is not defined"),
        ("os.system('ls')", "name 'os' is not defined"),
        ("cd(folder=ls())", "nested calls are not allowed; pass literal values"),
        ("cd", "expected a function call such as tool_name(arg=value)"),
        ("cd(folder=", "'(' was never closed (<string>, line 1)"),
    ],
)
def test_parse_errors_read_like_python(source, message):
    with pytest.raises(CallError, match=None) as error:
        parse_call(source)
    assert str(error.value) == message


literals = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**200), 2**200) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.tuples(children, children)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@given(literals)
def test_any_literal_argument_reads_back_unchanged(value):
    assert parse_call(f"tool(x={value!r})").kwargs == {"x": value}


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), literals, max_size=4))
def test_tool_call_strings_round_trip(arguments):
    from envtune.bfcl.calls import ToolCall

    arguments = {key: value for key, value in arguments.items() if key not in {"if", "in", "is", "or", "and", "not", "for", "def", "del", "try", "as"}}
    call = ToolCall("tool", arguments)
    parsed = parse_call(call.to_python())
    assert (parsed.name, parsed.kwargs) == ("tool", arguments)
