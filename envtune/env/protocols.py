"""How a policy's messages are read and how results go back to it.

Three protocols drive the same episode, so trained and untrained models compare in one environment:

- `envtune`: one `<think>` block, then one `<tool_call>` block holding a JSON list of
  `{"name": ..., "arguments": {...}}` or one `<answer>` block, nothing outside the tags. A strict
  parser returns the calls or a precise error saying what to fix. Results go back as a user message.
- `prompt`: BFCL prompt mode, a Python list of calls decoded with the official rules; text that
  does not decode is a non-call response. Results go back as one `tool` message per call.
- `native`: OpenAI-style `tool_calls` on the assistant message; a message without them is a
  non-call response, one whose arguments are not JSON objects a format violation. Results go back
  as `tool` messages tied to the call ids.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from envtune.bfcl.calls import ToolCall
from envtune.bfcl.decoding import DecodeError, decode_prompt_output
from envtune.errors import EnvtuneError

Message = dict[str, Any]
Call = ToolCall | str


@dataclass(frozen=True)
class ParsedResponse:
    """One assistant message, read. `kind` is `calls`, `answer` (closes the turn) or `invalid`
    (a format violation: `error` says what is wrong and how to fix it)."""

    kind: Literal["calls", "answer", "invalid"]
    calls: tuple[Call, ...] = ()
    call_ids: tuple[str, ...] = ()
    answer: str = ""
    error: str = ""


class FormatError(ValueError):
    """A response that breaks the envtune protocol; the message is shown to the policy."""


_TAG = re.compile(r"<(/?)(think|tool_call|answer)>")
_BLOCKS = ("think", "tool_call", "answer")


def _blocks(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """Split a response into its tagged blocks (contents by tag, and the tag order), refusing
    nesting, unclosed tags and stray text."""
    blocks: dict[str, list[str]] = {name: [] for name in _BLOCKS}
    order: list[str] = []
    position, open_tag, open_at = 0, None, 0
    for match in _TAG.finditer(text):
        closing, name = match.group(1) == "/", match.group(2)
        if open_tag is None:
            if closing:
                raise FormatError(f"</{name}> at character {match.start()} closes a block that was never opened.")
            outside = text[position:match.start()].strip()
            if outside:
                raise FormatError(f"Text outside the tags is not allowed: {outside[:60]!r}. Put reasoning inside <think>.")
            open_tag, open_at = name, match.end()
        elif closing and name == open_tag:
            blocks[name].append(text[open_at:match.start()])
            order.append(name)
            open_tag, position = None, match.end()
        else:
            raise FormatError(f"<{match.group(1)}{name}> appears inside the <{open_tag}> block; close <{open_tag}> first.")
    if open_tag is not None:
        raise FormatError(f"The <{open_tag}> block is never closed; end it with </{open_tag}>.")
    trailing = text[position:].strip()
    if trailing:
        raise FormatError(f"Text outside the tags is not allowed: {trailing[:60]!r}. Put reasoning inside <think>.")
    return blocks, order


def _read_calls(payload: str) -> tuple[ToolCall, ...]:
    try:
        calls = json.loads(payload)
    except json.JSONDecodeError as error:
        raise FormatError(
            f"The <tool_call> block is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}."
        ) from None
    if not isinstance(calls, list):
        raise FormatError('The <tool_call> block must hold a JSON list: [{"name": ..., "arguments": {...}}].')
    if not calls:
        raise FormatError("The <tool_call> list is empty. Call at least one tool, or reply with <answer> if you are done.")
    parsed = []
    for number, call in enumerate(calls, start=1):
        if not isinstance(call, dict):
            raise FormatError(f'Call {number} must be an object {{"name": ..., "arguments": {{...}}}}.')
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise FormatError(f"Call {number} has no \"name\"; give the tool name as a string.")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, dict):
            raise FormatError(f"The \"arguments\" of call {number} ({name}) must be a JSON object of argument names to values.")
        extra = sorted(set(call) - {"name", "arguments"})
        if extra:
            raise FormatError(f"Call {number} ({name}) has unexpected keys {extra}; use only \"name\" and \"arguments\".")
        parsed.append(ToolCall(name, arguments))
    return tuple(parsed)


def parse_envtune(text: str) -> ParsedResponse:
    """Read one response in the envtune protocol."""
    try:
        blocks, order = _blocks(text or "")
        for name in _BLOCKS:
            if len(blocks[name]) > 1:
                raise FormatError(f"Use exactly one <{name}> block; found {len(blocks[name])}.")
        if not blocks["think"]:
            raise FormatError("Start with one <think>...</think> block with your reasoning.")
        if order[0] != "think":
            raise FormatError("The <think> block must come first, before <tool_call> or <answer>.")
        if blocks["tool_call"] and blocks["answer"]:
            raise FormatError("Give either a <tool_call> block or an <answer> block, not both.")
        if blocks["answer"]:
            return ParsedResponse("answer", answer=blocks["answer"][0].strip())
        if not blocks["tool_call"]:
            raise FormatError("After <think>, give one <tool_call> block to act or one <answer> block to reply to the user.")
        return ParsedResponse("calls", calls=_read_calls(blocks["tool_call"][0]))
    except FormatError as error:
        return ParsedResponse("invalid", error=str(error))


def parse_prompt(text: str) -> ParsedResponse:
    """Read one BFCL prompt-mode response: a Python list of calls, else a non-call reply."""
    try:
        calls = decode_prompt_output(text or "")
    except DecodeError:
        calls = []
    if not calls:
        return ParsedResponse("answer", answer=text or "")
    return ParsedResponse("calls", calls=tuple(calls))


def parse_native(message: Message) -> ParsedResponse:
    """Read one assistant message with OpenAI-style `tool_calls`. As in BFCL's function-calling
    loop, a reply whose call arguments are not a JSON object does not decode: nothing of it runs."""
    tool_calls = message.get("tool_calls") or []
    if not tool_calls:
        return ParsedResponse("answer", answer=message.get("content") or "")
    calls, ids = [], []
    for index, tool_call in enumerate(tool_calls):
        tool_call = tool_call if isinstance(tool_call, dict) else {}
        function = tool_call.get("function") or {}
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as error:
                return ParsedResponse("invalid", error=f"The arguments of tool call {index + 1} are not valid JSON: {error.msg}.")
        if not isinstance(arguments, dict):
            return ParsedResponse("invalid", error=f"The arguments of tool call {index + 1} must be a JSON object.")
        calls.append(ToolCall(function.get("name"), arguments))
        ids.append(tool_call.get("id") or f"call_{index}")
    return ParsedResponse("calls", calls=tuple(calls), call_ids=tuple(ids))


PROTOCOLS = ("envtune", "prompt", "native")


def parse(protocol: str, message: Message) -> ParsedResponse:
    """Read an assistant message under `protocol`."""
    if protocol == "envtune":
        return parse_envtune(message.get("content") or "")
    if protocol == "prompt":
        return parse_prompt(message.get("content") or "")
    if protocol == "native":
        return parse_native(message)
    raise EnvtuneError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")


def result_messages(
    protocol: str, response: ParsedResponse, results: Sequence[str], reminder: str
) -> list[Message]:
    """The environment's reply to executed calls."""
    names = [call.name if isinstance(call, ToolCall) else str(call).split("(", 1)[0] for call in response.calls]
    if protocol == "envtune":
        body = "\n".join(f"[{number}] {name}: {result}" for number, (name, result) in enumerate(zip(names, results), 1))
        return [{"role": "user", "content": f"<tool_response>\n{body}\n</tool_response>\n{reminder}"}]
    if protocol == "native":
        return [
            {"role": "tool", "tool_call_id": call_id, "name": name, "content": result}
            for call_id, name, result in zip(response.call_ids, names, results)
        ]
    return [{"role": "tool", "name": name, "content": result} for name, result in zip(names, results)]
