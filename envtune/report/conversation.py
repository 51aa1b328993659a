"""A played episode as the report's viewer shows it: turn by turn, each reply read under the
episode's protocol, each environment message with its hint set apart from the official text, the
turn's verdict and, beside the model's calls, the ground truth."""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from envtune.env.protocols import parse
from envtune.feedback.core import HINT_PREFIX

_REASONING = re.compile(r"<think>(.*?)(?:</think>|$)", re.DOTALL)


def split_hints(text: str) -> tuple[str, list[str]]:
    """An environment message without its hint lines, and the hints (augmented feedback puts each
    on its own line after the official result it explains)."""
    official, hints = [], []
    for line in text.splitlines():
        if line.startswith(HINT_PREFIX):
            hints.append(line.removeprefix(HINT_PREFIX))
        else:
            official.append(line)
    return "\n".join(official), hints


def _call_text(call: Any) -> str:
    return call.to_python() if hasattr(call, "to_python") else str(call)


def read_reply(message: Mapping[str, Any], protocol: str) -> dict[str, Any]:
    """An assistant message: its text, its reasoning, the calls it makes, or why it could not be read."""
    response = parse(protocol, dict(message))
    content = message.get("content") or ""
    reasoning = _REASONING.search(content)
    return {
        "kind": "reply", "text": content, "reasoning": reasoning.group(1).strip() if reasoning else "",
        "reading": response.kind, "calls": [_call_text(call) for call in response.calls], "error": response.error,
    }


def _turn_entries(messages: Sequence[Mapping[str, Any]], protocol: str) -> tuple[list[str], list[dict[str, Any]]]:
    """A turn's request (the user messages before the first reply) and everything after it."""
    request, entries = [], []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            entries.append(read_reply(message, protocol))
        elif not entries and role == "user":
            request.append(str(message.get("content") or ""))
        else:
            text, hints = split_hints(str(message.get("content") or ""))
            entries.append({"kind": "environment", "role": role, "name": message.get("name"), "text": text, "hints": hints})
    return request, entries


def conversation_turns(
    record: Mapping[str, Any], protocol: str, ground_truth: Sequence[Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """The played turns of an episode record (a rollouts.jsonl or results.jsonl line): request, entries,
    the calls the model made (the decoded calls that ran, where the record has them), the ground truth,
    the verdict (None for a turn the episode did not close) and the kinds of the hints it showed; then
    the turns the episode never reached, with their ground truth."""
    messages = [message for message in record.get("messages", []) if message.get("role") != "system"]
    starts = list(record.get("turn_starts") or [0])  # records from before turn_starts: one block
    if record.get("messages") and record["messages"][0].get("role") == "system":
        starts = [start - 1 for start in starts]  # eval records keep the system prompt; the viewer does not
    verdicts = record.get("turn_verdicts") or []
    decoded = record.get("decoded")

    def truth(turn: int) -> list[str] | None:
        return list(ground_truth[turn]) if ground_truth is not None and turn < len(ground_truth) else None

    turns = []
    for turn, start in enumerate(starts):
        end = starts[turn + 1] if turn + 1 < len(starts) else len(messages)
        request, entries = _turn_entries(messages[start:end], protocol)
        if decoded is not None:
            calls = [call for step in (decoded[turn] if turn < len(decoded) else []) for call in step]
        else:
            calls = [call for entry in entries if entry["kind"] == "reply" for call in entry["calls"]]
        turns.append({
            "turn": turn, "request": request, "entries": entries, "model_calls": calls,
            "ground_truth": truth(turn),
            "verdict": verdicts[turn] if turn < len(verdicts) else None, "played": True,
            "hints": [hint["kind"] for hint in record.get("hints", []) if hint.get("turn") == turn],
        })
    for turn in range(len(starts), record.get("num_turns") or 0):  # after a force-quit or the token budget
        turns.append({"turn": turn, "request": [], "entries": [], "model_calls": [], "verdict": None, "played": False,
                      "ground_truth": truth(turn), "hints": []})
    return turns
