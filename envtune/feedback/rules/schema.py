"""Hints derived from the tool schemas alone, so every tool of every domain is covered: unknown or
not-yet-available tools, missing and unexpected arguments, wrong types and values outside an enum."""

from __future__ import annotations

import difflib
from typing import Any

from envtune.feedback.core import FeedbackContext, hint_rule

# BFCL doc type -> (Python types accepted, words for the hint)
_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "a string"),
    "integer": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "number": ((int, float), "a number"),
    "boolean": ((bool,), "a boolean (true or false)"),
    "array": ((list, tuple), "a list"),
    "tuple": ((list, tuple), "a list"),
    "dict": ((dict,), "an object"),
}


def _type_problem(value: Any, schema: dict) -> str | None:
    """What is wrong with a value's type against its schema (None if it fits)."""
    expected = _TYPES.get(schema.get("type", "any"))
    if expected is None:
        return None
    types, words = expected
    if isinstance(value, bool) and bool not in types:
        return f"must be {words}, not a boolean"
    if not isinstance(value, types):
        return f"must be {words}, not {type(value).__name__} {value!r}"
    if isinstance(value, (list, tuple)) and "items" in schema:
        for item in value:
            problem = _type_problem(item, schema["items"])
            if problem:
                return f"must be a list whose items {problem.removeprefix('must be ')}"
    return None


def _signature(doc: dict) -> str:
    properties = doc.get("parameters", {}).get("properties", {})
    required = set(doc.get("parameters", {}).get("required", []))
    parts = [f"{name}{'' if name in required else '?'}: {spec.get('type', 'any')}" for name, spec in properties.items()]
    return f"{doc['name']}({', '.join(parts)})"


@hint_rule("schema.unparseable_call", "format_mismatch", r".")
def unparseable_call(context: FeedbackContext, match) -> str | None:
    if context.call is not None:
        return None
    return ("The call could not be read. Write each call as tool_name(argument=value, ...) using only "
            "tool names from the tool list and literal values (strings in quotes, numbers, lists, objects).")


@hint_rule("schema.unknown_tool", "dependency_missing", r"is not defined|is not allowed")
def unknown_tool(context: FeedbackContext, match) -> str | None:
    call = context.call
    if call is None or call.name in context.tool_docs:
        return None
    if call.name in context.held_out:
        return (f"The tool '{call.name}' is not available yet. Do not call it; tell the user that this "
                "function is missing, or solve the request with the tools you have.")
    close = difflib.get_close_matches(call.name, list(context.tool_docs), n=3, cutoff=0.5)
    suggestion = f" Did you mean: {', '.join(close)}?" if close else " Check the tool list for the exact name."
    return f"There is no tool named '{call.name}'.{suggestion}"


@hint_rule("schema.unexpected_argument", "parameter_constraint", r".")
def unexpected_argument(context: FeedbackContext, match) -> str | None:
    doc = context.doc()
    if doc is None:
        return None
    properties = doc.get("parameters", {}).get("properties", {})
    unexpected = [name for name in context.arguments if name not in properties]
    if not unexpected:
        return None
    names = ", ".join(f"'{name}'" for name in unexpected)
    return f"'{doc['name']}' takes no argument {names}. Use only the documented arguments: {_signature(doc)}."


@hint_rule("schema.missing_argument", "parameter_constraint", r".")
def missing_argument(context: FeedbackContext, match) -> str | None:
    doc = context.doc()
    if doc is None:
        return None
    required = doc.get("parameters", {}).get("required", [])
    missing = [name for name in required if name not in context.arguments]
    if not missing:
        return None
    names = ", ".join(f"'{name}'" for name in missing)
    return (f"'{doc['name']}' is missing the required argument {names}. Its signature is {_signature(doc)}; "
            "if you do not know the value, find it with another tool or ask the user.")


@hint_rule("schema.wrong_type", "format_mismatch", r".")
def wrong_type(context: FeedbackContext, match) -> str | None:
    doc = context.doc()
    if doc is None:
        return None
    properties = doc.get("parameters", {}).get("properties", {})
    for name, value in context.arguments.items():
        if name in properties:
            problem = _type_problem(value, properties[name])
            if problem:
                return f"Argument '{name}' of '{doc['name']}' {problem}. Call it again with a value of the right type."
    return None


@hint_rule("schema.outside_enum", "parameter_constraint", r".")
def outside_enum(context: FeedbackContext, match) -> str | None:
    doc = context.doc()
    if doc is None:
        return None
    properties = doc.get("parameters", {}).get("properties", {})
    for name, value in context.arguments.items():
        allowed = properties.get(name, {}).get("enum")
        if allowed and value not in allowed:
            choices = ", ".join(repr(choice) for choice in allowed)
            return f"Argument '{name}' of '{doc['name']}' must be one of {choices}; {value!r} is not allowed."
    return None
