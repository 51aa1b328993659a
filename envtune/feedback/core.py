"""The augmented-feedback layer: rules that turn an error result into an actionable hint.

A rule is keyed by the tools it applies to and a pattern over the official error message; it may
also read the call's arguments, the tool schemas and the environment state (never change it). It
returns the hint text, or None when it has nothing useful to say. Hints name the problem and the kind
of action that fixes it; they never hand over a value the model has not seen (no ground truth is
available here, and rules point to the tool that finds a value rather than listing values).

Hint categories follow the paper's error taxonomy: dependency_missing, parameter_constraint,
state_prerequisite, format_mismatch, resource_unavailable.

There is no global registry: `hint_rule` only builds a `Rule`, and `find_hint` and `augment` take the
rules to try, in order. The built-in ones live in `envtune.feedback.rules`, which this module never
imports, so a caller can pass its own set (`envtune.feedback.DEFAULT_RULES` plus or minus some).
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

from envtune.bfcl.calls import ParsedCall, ToolCall
from envtune.bfcl.executor import ERROR_PREFIX, ToolSession
from envtune.errors import EnvtuneError

CATEGORIES = (
    "dependency_missing", "parameter_constraint", "state_prerequisite", "format_mismatch", "resource_unavailable",
)
HINT_PREFIX = "Hint: "
ENUM_MARKER = "[Enum]:"


def quoted(value: object) -> str:
    """A value the model gave, as hints quote it: a string between single quotes as written (unescaped),
    anything else as Python writes it."""
    return f"'{value}'" if isinstance(value, str) else repr(value)


def agreeing(items: list[str], singular: str, plural: str) -> str:
    """'a is ...' or 'a and b are ...': the items joined with 'and', then the phrase that agrees in number."""
    return f"{' and '.join(items)} {singular if len(items) == 1 else plural}"


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

    def available(self, *tools: str) -> list[str]:
        """The tools among `tools` the model can call now (hints only name tools it can use; in
        missing-function tasks some are held out)."""
        return [tool for tool in tools if tool in self.tool_docs]

    def tool_uses(self, uses: Mapping[str, str]) -> list[str]:
        """'tool use' for each tool of `uses` (tool -> what it does) that the model can call now, in order:
        a hint points only to lookups the model can make."""
        return [f"{tool} {use}" for tool, use in uses.items() if tool in self.tool_docs]

    def misfits(self, form: re.Pattern, *arguments: str) -> list[str]:
        """`name='value'` for each of `arguments` whose value is not wholly of `form` (an airport code, a
        zipcode): backends that take codes often answer a city name with a vague 'not found'."""
        given = {name: self.arguments.get(name) for name in arguments}
        return [f"{name}={quoted(value)}" for name, value in given.items() if not form.fullmatch(str(value))]

    def documented_choices(self, tool: str, argument: str) -> list[str]:
        """The values listed after `[Enum]:` in an argument's description (BFCL docs keep most
        enums there rather than in an `enum` field); empty when the tool or the list is not shown."""
        doc = self.doc(tool) or {}
        description = doc.get("parameters", {}).get("properties", {}).get(argument, {}).get("description", "")
        _, marker, listed = description.partition(ENUM_MARKER)
        return re.findall(r"[\w-]+", listed) if marker else []


@dataclass(frozen=True)
class Hint:
    kind: str  # stable identifier, e.g. "file_system.path_not_allowed"
    category: str
    text: str


# A rule's body: `write(context, match)` returns the hint text, or None when it has nothing useful to say.
Writer = Callable[[FeedbackContext, re.Match], str | None]


@dataclass(frozen=True)
class Rule:
    kind: str
    category: str
    tools: frozenset[str] | None  # None: any tool
    pattern: re.Pattern
    write: Writer

    def apply(self, context: FeedbackContext) -> Hint | None:
        if self.tools is not None and (context.call is None or context.call.name not in self.tools):
            return None
        match = self.pattern.search(context.error)
        if not match:
            return None
        text = self.write(context, match)
        return Hint(self.kind, self.category, text) if text else None


class HintRuleWarning(RuntimeWarning):
    """A hint rule raised: it was skipped, so its hint is missing until the rule is fixed."""


def hint_rule(kind: str, category: str, pattern: str, tools: Iterable[str] | None = None) -> Callable[[Writer], Rule]:
    """Decorate `write(context, match) -> hint text | None` into a `Rule` that runs when a call of one of
    `tools` fails with an error matching `pattern` (a regular expression, searched). The rule takes
    effect only in the rule sets it is listed in."""
    if category not in CATEGORIES:
        raise EnvtuneError(f"unknown hint category {category!r}; choose from {', '.join(CATEGORIES)}")

    def make(write: Writer) -> Rule:
        return Rule(kind, category, frozenset(tools) if tools is not None else None, re.compile(pattern), write)

    return make


# Tools that report failure without an `error` key: tool -> (status key that is false on failure,
# key of the reason, if any). Status queries such as `message_get_login_status` are not failures.
SOFT_FAILURES: dict[str, tuple[str, str | None]] = {
    "message_login": ("login_status", "message"),
    "authenticate_twitter": ("authentication_status", None),
    "verify_traveler_information": ("verification_status", "verification_failure"),
}


def login_step(context: FeedbackContext, login_tool: str, how: str | None = None) -> str:
    """What to do about a missing login: `how` to log in (by default a generic step) when the login tool
    is available now, else that it cannot be done yet."""
    if not context.available(login_tool):
        return "No tool to log in is available right now, so tell the user this cannot be done yet."
    return how or (f"Log in with {login_tool} first (ask the user for the username and password if you do not "
                   "have them), then try again.")


# The error of the ticket and trading backends (the same code in both) for a call that needs a login.
LOGIN_REQUIRED = r"User not authenticated\. Please log in to (?P<action>[^.]+)\."


def login_required_rule(kind: str, system: str, login_tool: str, tools: Iterable[str]) -> Rule:
    """The rule for LOGIN_REQUIRED on `tools`: what needed the login in `system`, and how to log in."""

    def not_logged_in(context: FeedbackContext, match: re.Match) -> str:
        return (f"You are not logged in to the {system}, which is needed to {match['action']}. "
                f"{login_step(context, login_tool)}")

    return hint_rule(kind, "state_prerequisite", LOGIN_REQUIRED, tools)(not_logged_in)


def error_message(result: str, tool: str | None = None) -> str | None:
    """The error inside an official result string, or None if the call succeeded.

    Errors come in four shapes: an exception (`Error during execution: ...`); a JSON object with an
    `error` key (a number, in one weather tool, becomes its text); a one-item list holding such a
    dict or an `Error: ...` string (printed with `str()`, as lists are); and, for the tools of
    `SOFT_FAILURES`, a false status with an optional reason.
    """
    if result.startswith(ERROR_PREFIX):
        return result[len(ERROR_PREFIX):]
    if result.startswith("{"):
        try:
            payload = json.loads(result)
        except ValueError:
            return None
    elif result.startswith("[") and "rror" in result:
        try:
            items = ast.literal_eval(result)  # our own backend's output, read as data: never evaluated
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
        if not isinstance(items, list) or len(items) != 1:
            return None
        payload = items[0]
        if isinstance(payload, str):
            return payload.removeprefix("Error: ") if payload.startswith("Error: ") else None
    else:
        return None
    if not isinstance(payload, dict):
        return None
    if payload.get("error") is not None:
        return str(payload["error"])
    if tool in SOFT_FAILURES:
        status, reason = SOFT_FAILURES[tool]
        if payload.get(status) is False:
            return str(payload.get(reason) or f"{status} is false")
    return None


def _first_hint(context: FeedbackContext, rules: Iterable[Rule]) -> tuple[Hint | None, tuple[str, ...]]:
    """The first hint of `rules` (tried in order), and the kinds of the rules that raised before it.

    A broken rule must not break the episode, so it is skipped, but loudly: a HintRuleWarning names it.
    """
    failed: list[str] = []
    for rule in rules:
        try:
            hint = rule.apply(context)
        except Exception as error:
            message = f"hint rule {rule.kind} failed on {context.error!r}: {error!r}"
            warnings.warn(message, HintRuleWarning, stacklevel=3)
            failed.append(rule.kind)
            continue
        if hint is not None:
            return hint, tuple(failed)
    return None, tuple(failed)


def find_hint(context: FeedbackContext, rules: Sequence[Rule]) -> Hint | None:
    """The first hint `rules` give for this failure, trying them in order (None: none has one)."""
    return _first_hint(context, rules)[0]


def render(result: str, hint: Hint | None) -> str:
    """The augmented message: the official result, then the hint on its own line."""
    return result if hint is None else f"{result}\n{HINT_PREFIX}{hint.text}"


class Augmented(NamedTuple):
    """What `augment` made of one result."""

    text: str  # the message the model sees
    hint: Hint | None  # the hint appended to it (None: the result is unchanged)
    rule_errors: tuple[str, ...] = ()  # kinds of the rules that raised on this call (see HintRuleWarning)


def augment(
    session: ToolSession,
    call: str | ParsedCall | ToolCall,
    result: str,
    tool_docs: Mapping[str, dict],
    held_out: Mapping[str, int] | None = None,
    *,
    rules: Sequence[Rule],
) -> Augmented:
    """The augmented message for one executed call, with the hint of the first of `rules` that has one.

    Successful results pass through untouched; the environment state is only read.
    """
    tool_call = session.describe(call)
    error = error_message(result, tool_call.name if tool_call else None)
    if error is None:
        return Augmented(result, None)
    owner = session.owner(tool_call.name) if tool_call and isinstance(tool_call.name, str) else None
    context = FeedbackContext(
        call=tool_call, result=result, error=error,
        class_name=owner[0] if owner else None, instance=owner[1] if owner else None,
        tool_docs=tool_docs, held_out=held_out or {}, all_tools=session.tool_names,
    )
    hint, rule_errors = _first_hint(context, rules)
    return Augmented(render(result, hint), hint, rule_errors)
