"""BFCL's own prompt-mode texts (system prompt, held-out-tool announcement), read from the pinned
release at run time, so untrained models are evaluated exactly as the leaderboard prompts them.

The texts live as constants in `bfcl_eval/constants/default_prompts.py`. We read that file with
`ast` (string literals, dicts of them, `+` and names of earlier constants) instead of importing
it, and assemble the default prompt-mode system prompt the way each release does: 2026 releases
compose it from style templates (python output, no tag, JSON docs indented by 4, plaintext,
classic style); the June-2025 release fills `{functions}` of one template with the docs list.
"""

from __future__ import annotations

import ast
import json
from functools import lru_cache
from typing import Any

from envtune.bfcl.release import package_dir


def _value(node: ast.AST, known: dict[str, Any]) -> Any:
    if isinstance(node, ast.Name):
        return known[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _value(node.left, known) + _value(node.right, known)
    if isinstance(node, ast.Dict):
        return {_value(key, known): _value(value, known) for key, value in zip(node.keys, node.values)}
    return ast.literal_eval(node)


@lru_cache(maxsize=None)
def prompt_constants(release: str | None = None) -> dict[str, Any]:
    """Every module-level constant of the release's default_prompts.py that is plain data."""
    source = (package_dir(release) / "constants" / "default_prompts.py").read_text(encoding="utf-8")
    known: dict[str, Any] = {}
    for statement in ast.parse(source).body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
            try:
                known[statement.targets[0].id] = _value(statement.value, known)
            except (ValueError, KeyError, TypeError, SyntaxError):
                continue  # not plain data (none of the constants we use)
    return known


def system_prompt(docs: list[dict], release: str | None = None) -> str:
    """The default prompt-mode system prompt with these tool docs."""
    constants = prompt_constants(release)
    if "PROMPT_STYLE_TEMPLATES" not in constants:  # June-2025 layout: one template
        return constants["DEFAULT_SYSTEM_PROMPT"].format(functions=docs)
    style = constants["PROMPT_STYLE_TEMPLATES"]["classic"]
    tool_call_format = style["tool_call_no_tag"].format(
        output_format=constants["OUTPUT_FORMAT_MAPPING"]["python"],
        param_types=constants["PARAM_TYPE_MAPPING"]["python"],
    )
    return constants["PROMPT_TEMPLATE_MAPPING"]["plaintext"].format(
        persona=style["persona"], task=style["task"], tool_call_format=tool_call_format,
        multiturn_behavior=style["multiturn_behavior"],
        available_tools=style["available_tools"].format(format="json", functions=json.dumps(docs, indent=4)),
    )


def new_tools_message(docs: list[dict], release: str | None = None) -> str:
    """The user message of the turn where held-out tools come back (the docs list as Python prints it)."""
    return prompt_constants(release)["DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_PROMPTING"].format(functions=docs)
