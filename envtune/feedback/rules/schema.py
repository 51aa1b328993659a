"""Hints derived from the tool schemas alone, so every tool of every domain is covered: unknown or
not-yet-available tools, missing and unexpected arguments, wrong types and values outside an enum."""

from __future__ import annotations

import difflib

from envtune.bfcl.arguments import check_arguments, signature
from envtune.feedback.core import FeedbackContext, hint_rule


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
    close = difflib.get_close_matches(str(call.name), list(context.tool_docs), n=3, cutoff=0.5)
    suggestion = f" Did you mean: {', '.join(close)}?" if close else " Check the tool list for the exact name."
    return f"There is no tool named '{call.name}'.{suggestion}"


def _problems(context: FeedbackContext):
    doc = context.doc()
    return (doc, check_arguments(doc, context.arguments)) if doc is not None else (None, None)


@hint_rule("schema.unexpected_argument", "parameter_constraint", r".")
def unexpected_argument(context: FeedbackContext, match) -> str | None:
    doc, problems = _problems(context)
    if not problems or not problems.unexpected:
        return None
    names = ", ".join(f"'{name}'" for name in problems.unexpected)
    return f"'{doc['name']}' takes no argument {names}. Use only the documented arguments: {signature(doc)}."


@hint_rule("schema.missing_argument", "parameter_constraint", r".")
def missing_argument(context: FeedbackContext, match) -> str | None:
    doc, problems = _problems(context)
    if not problems or not problems.missing:
        return None
    names = ", ".join(f"'{name}'" for name in problems.missing)
    return (f"'{doc['name']}' is missing the required argument {names}. Its signature is {signature(doc)}; "
            "if you do not know the value, find it with another tool or ask the user.")


@hint_rule("schema.wrong_type", "format_mismatch", r".")
def wrong_type(context: FeedbackContext, match) -> str | None:
    doc, problems = _problems(context)
    if not problems or not problems.wrong_type:
        return None
    name, problem = next(iter(problems.wrong_type.items()))
    return f"Argument '{name}' of '{doc['name']}' {problem}. Call it again with a value of the right type."


@hint_rule("schema.outside_enum", "parameter_constraint", r".")
def outside_enum(context: FeedbackContext, match) -> str | None:
    doc, problems = _problems(context)
    if not problems or not problems.outside_enum:
        return None
    name, allowed = next(iter(problems.outside_enum.items()))
    choices = ", ".join(repr(choice) for choice in allowed)
    return f"Argument '{name}' of '{doc['name']}' must be one of {choices}; {context.arguments[name]!r} is not allowed."


# The order they are tried in.
RULES = (unparseable_call, unknown_tool, unexpected_argument, missing_argument, wrong_type, outside_enum)
