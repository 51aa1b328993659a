"""The augmented-feedback layer: rules that turn an error result into an actionable hint.

A rule is keyed by the tools it applies to and a pattern over the official error message; it may
also read the call's arguments, the tool schemas and the environment state (never change it). It
returns the hint text, or None when it has nothing useful to say. Hints name the problem and the kind
of action that fixes it; they never hand over a value the model has not seen (no ground truth is
available here, and rules point to the tool that finds a value rather than listing values).

Hint categories follow the paper's error taxonomy: dependency_missing, parameter_constraint,
state_prerequisite, format_mismatch, resource_unavailable.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from envtune.bfcl.calls import ParsedCall, ToolCall
from envtune.bfcl.executor import ERROR_PREFIX, ToolSession

CATEGORIES = (
    "dependency_missing", "parameter_constraint", "state_prerequisite", "format_mismatch", "resource_unavailable",
)
HINT_PREFIX = "Hint: "


@dataclass(frozen=True)
class FeedbackContext:
    """Everything a rule may look at for one failed call. Read only."""

    call: ToolCall | None  # None when the call could not be parsed at all
    result: str  # the official result string
    error: str  # the error message inside the result
    class_name: str | None  # backend class owning the tool, if the tool exists in the episode
    instance: Any  # that backend instance (read its attributes; never call its tools)
    tool_docs: Mapping[str, dict]  # tools available now, by name (BFCL doc form)
    held_out: Mapping[str, int] = field(default_factory=dict)  # tools that come back at a later turn
    all_tools: Iterable[str] = ()  # every tool of the episode, available or not

    @property
    def arguments(self) -> dict[str, Any]:
        return self.call.arguments if self.call else {}

    def doc(self, tool: str | None = None) -> dict | None:
        return self.tool_docs.get(tool or (self.call.name if self.call else ""))


@dataclass(frozen=True)
class Hint:
    kind: str  # stable identifier, e.g. "file_system.path_not_allowed"
    category: str
    text: str


@dataclass(frozen=True)
class Rule:
    kind: str
    category: str
    tools: frozenset[str] | None  # None: any tool
    pattern: re.Pattern
    write: Callable[[FeedbackContext, re.Match], str | None]

    def apply(self, context: FeedbackContext) -> Hint | None:
        if self.tools is not None and (context.call is None or context.call.name not in self.tools):
            return None
        match = self.pattern.search(context.error)
        if not match:
            return None
        text = self.write(context, match)
        return Hint(self.kind, self.category, text) if text else None


RULES: list[Rule] = []


def hint_rule(kind: str, category: str, pattern: str, tools: Iterable[str] | None = None):
    """Register a rule: `write(context, match) -> hint text | None` runs when a call of one of
    `tools` fails with an error matching `pattern` (a regular expression, searched)."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown hint category {category!r}; choose from {', '.join(CATEGORIES)}")

    def register(write: Callable[[FeedbackContext, re.Match], str | None]):
        RULES.append(Rule(kind, category, frozenset(tools) if tools is not None else None, re.compile(pattern), write))
        return write

    return register


def error_message(result: str) -> str | None:
    """The error inside an official result string, or None if the call succeeded.

    Errors come in two shapes: an exception (`Error during execution: ...`) or a JSON object with an
    `error` key returned by the backend.
    """
    if result.startswith(ERROR_PREFIX):
        return result[len(ERROR_PREFIX):]
    if result.startswith("{"):
        try:
            payload = json.loads(result)
        except ValueError:
            return None
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            return payload["error"]
    return None


def find_hint(context: FeedbackContext) -> Hint | None:
    """The first rule that has a hint for this failure (rules register in import order)."""
    from envtune.feedback import rules  # noqa: F401  (registers every rule module)

    for rule in RULES:
        hint = rule.apply(context)
        if hint is not None:
            return hint
    return None


def render(result: str, hint: Hint | None) -> str:
    """The augmented message: the official result, then the hint on its own line."""
    return result if hint is None else f"{result}\n{HINT_PREFIX}{hint.text}"


def augment(
    session: ToolSession,
    call: str | ParsedCall | ToolCall,
    result: str,
    tool_docs: Mapping[str, dict],
    held_out: Mapping[str, int] | None = None,
) -> tuple[str, Hint | None]:
    """The augmented message for one executed call, and the hint it carries (None: unchanged).

    Successful results pass through untouched; the environment state is only read.
    """
    error = error_message(result)
    if error is None:
        return result, None
    tool_call = session.describe(call)
    owner = session.owner(tool_call.name) if tool_call and isinstance(tool_call.name, str) else None
    context = FeedbackContext(
        call=tool_call, result=result, error=error,
        class_name=owner[0] if owner else None, instance=owner[1] if owner else None,
        tool_docs=tool_docs, held_out=held_out or {}, all_tools=session.tool_names,
    )
    hint = find_hint(context)
    return render(result, hint), hint
