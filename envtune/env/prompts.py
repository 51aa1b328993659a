"""Every text the environment writes to the policy: system prompts, reminders, announcements.

Two system-prompt variants follow the curriculum: `basic` (stages 1-2) and `extended` (stages 3-4),
which adds two rules for ambiguous requests: look for a tool that can find missing information
before asking, and never invent a call for a missing function or parameter. A third, `bfcl`, is the
official prompt-mode text of the pinned release (with the prompt protocol), for evaluating models as
the leaderboard prompts them. `compact` has the basic rules and lists each tool on one line, as a
signature and the first sentence of what the tool does: some 5x fewer prompt tokens, for small
models and CPU runs, where a 4-7k-token prompt would be most of every step.
"""

from __future__ import annotations

import json
from typing import Iterable

from envtune.bfcl import official_prompts
from envtune.errors import EnvtuneError

PROMPT_VARIANTS = ("basic", "extended", "compact", "bfcl")

_FORMAT = {
    "envtune": (
        "Every reply has exactly two parts and nothing outside them: first <think>your reasoning</think>, "
        "then either <tool_call>[{\"name\": \"tool_name\", \"arguments\": {\"argument\": \"value\"}}]</tool_call> "
        "to call one or more tools (a JSON list, run in order), or <answer>your reply to the user</answer> "
        "when the request is done or you need something from the user."
    ),
    "prompt": (
        "To call tools, reply with nothing but a Python list of calls, such as "
        "[tool_name(argument='value'), other_tool(number=3)], using keyword arguments only. "
        "Any other reply is taken as your answer to the user."
    ),
    "native": "Call tools through function calling. Reply in plain text when the request is done or you need something from the user.",
}

_RULES = (
    "Work step by step: call the tools you need, read their results, then call more tools or answer.",
    "Use only the tools listed, with their documented argument names and types.",
    "When the request is done, or cannot be done, answer the user.",
)
_EXTENDED_RULES = (
    "If a value you need is missing, first look for a tool that can find it (a lookup, search or "
    "listing tool) before asking the user.",
    "If the request needs a function that is not in the list, or a parameter you cannot find with a "
    "tool, do not invent a call: say what is missing and ask the user.",
)

REMINDER = {
    "envtune": (
        "If the request is complete, reply with <think>...</think><answer>...</answer>; "
        "otherwise keep going with <think>...</think><tool_call>[...]</tool_call>."
    ),
    "prompt": "",
    "native": "",
}


def render_tool_docs(docs: Iterable[dict], variant: str = "basic") -> str:
    """One tool per line, as the policy reads them: its BFCL JSON description, or in the compact
    variant its signature and what it does."""
    if variant == "compact":
        return "\n".join(_compact_tool(doc) for doc in docs)
    return "\n".join(json.dumps(doc, ensure_ascii=False) for doc in docs)


def _compact_tool(doc: dict) -> str:
    """`name(argument: type, optional?: type): what it does` (the first sentence of its description,
    without the API class's preamble)."""
    parameters = doc.get("parameters") or {}
    required = set(parameters.get("required") or ())
    arguments = ", ".join(f"{name}{'' if name in required else '?'}: {spec.get('type', 'any')}"
                          for name, spec in (parameters.get("properties") or {}).items())
    purpose = str(doc.get("description", "")).split("Tool description:")[-1].strip()
    return f"{doc['name']}({arguments}): {purpose.split('. ')[0].rstrip('.')}."


def system_prompt(protocol: str, variant: str, docs: Iterable[dict], release: str | None = None) -> str:
    """The system prompt: role, the tools available at the first turn, the reply format, the rules."""
    if variant not in PROMPT_VARIANTS:
        raise EnvtuneError(f"unknown prompt variant {variant!r}; choose from {', '.join(PROMPT_VARIANTS)}")
    if variant == "bfcl":
        return official_prompts.system_prompt(list(docs), release)
    rules = _RULES + (_EXTENDED_RULES if variant == "extended" else ())
    sections = [
        "You are an assistant that completes the user's requests by calling tools.",
        _FORMAT[protocol],
    ]
    if protocol != "native":  # native tools travel through the chat template's tool list
        sections.append("Tools you can call:\n" + render_tool_docs(docs, variant))
    sections.append("Rules:\n" + "\n".join(f"- {rule}" for rule in rules))
    return "\n\n".join(sections)


def format_error(protocol: str, error: str) -> str:
    """The environment's reply to a response that breaks the envtune protocol."""
    return f"Your last reply could not be read: {error}\n{REMINDER[protocol]}"


def new_tools_message(docs: Iterable[dict], variant: str = "basic", release: str | None = None) -> str:
    """The user message of a turn where held-out tools come back."""
    if variant == "bfcl":
        return official_prompts.new_tools_message(list(docs), release)
    return (
        "New tools are available from now on:\n" + render_tool_docs(docs, variant)
        + "\nPlease try my earlier request again with them."
    )


CALLED_WHEN_ASKING = (
    "Note: my last request could not be completed with the tools or information you had, so no tool "
    "should have been called; those calls were not carried out."
)
