"""BFCL V3 multi-turn tasks as typed objects, and their tool schemas per turn."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, Mapping

from envtune.bfcl.backends import class_tool_docs
from envtune.bfcl.release import package_dir, resolve_release
from envtune.errors import EnvtuneError

CATEGORIES: tuple[str, ...] = ("base", "miss_func", "miss_param", "long_context")


@dataclass(frozen=True, eq=False)
class Task:
    """One multi-turn entry: the user turns, the starting scenario and the ground-truth calls.

    `turns[t]` holds the user messages of turn t; an empty turn (miss_func only) is the turn where
    the held-out tools of `held_out_tools[t]` come back. `ground_truth[t]` lists the official call
    strings of turn t; it is empty where the model is expected to ask or decline instead of calling.
    """

    id: str
    category: str
    turns: tuple[tuple[Mapping[str, str], ...], ...]
    initial_config: Mapping[str, Any]
    involved_classes: tuple[str, ...]
    held_out_tools: Mapping[int, tuple[str, ...]]
    ground_truth: tuple[tuple[str, ...], ...]
    excluded_functions: tuple[str, ...] = ()
    release: str | None = None

    @property
    def num_turns(self) -> int:
        return len(self.ground_truth)

    @property
    def long_context(self) -> bool:
        """The official executor loads long-context scenarios for this category only."""
        return self.category == "long_context"

    def scenario(self) -> dict[str, Any]:
        """A private deep copy of the initial configuration, safe to hand to backends.

        Scenarios are plain JSON, so re-reading their JSON text gives exactly what `copy.deepcopy`
        would, several times faster (this runs twice per scored entry).
        """
        return json.loads(self._scenario_json)

    @cached_property
    def _scenario_json(self) -> str:
        return json.dumps(dict(self.initial_config))

    def tool_docs(self, turn: int = 0) -> list[dict]:
        """Tool docs (BFCL JSON form) the model can use at `turn`.

        Order follows the official harness: involved classes in order, held-out tools removed and
        appended again, in turn order, from the turn where they come back.
        """
        docs = [doc for name in self.involved_classes for doc in class_tool_docs(name, self.release)]
        held_out = {name for names in self.held_out_tools.values() for name in names}
        available = [doc for doc in docs if doc["name"] not in held_out]
        by_name = {doc["name"]: doc for doc in docs}
        for back_at in sorted(self.held_out_tools):
            if back_at <= turn:
                available.extend(by_name[name] for name in self.held_out_tools[back_at] if name in by_name)
        return copy.deepcopy(available)

    def openai_tools(self, turn: int = 0) -> list[dict]:
        """The same tools in OpenAI function-tool form."""
        return [to_openai_tool(doc) for doc in self.tool_docs(turn)]


# BFCL doc types -> JSON Schema types (facts of the official harness: unknown types become strings).
_JSON_SCHEMA_TYPES = {
    "integer": "integer", "number": "number", "float": "number", "string": "string",
    "boolean": "boolean", "bool": "boolean", "array": "array", "list": "array",
    "tuple": "array", "dict": "object", "object": "object", "any": "string",
}


def _json_schema(node: Mapping[str, Any]) -> dict[str, Any]:
    bfcl_type = node.get("type", "string")
    schema = {"type": _JSON_SCHEMA_TYPES.get(bfcl_type, "string")}
    schema.update((key, value) for key, value in node.items() if key not in ("type", "properties", "items"))
    if bfcl_type == "float":
        schema["format"] = "float"
    if "properties" in node:
        schema["properties"] = {name: _json_schema(child) for name, child in node["properties"].items()}
    if "items" in node:
        schema["items"] = _json_schema(node["items"])
    return schema


def to_openai_tool(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Convert one BFCL tool doc to an OpenAI `{"type": "function", ...}` tool."""
    parameters = _json_schema(doc.get("parameters", {"type": "dict", "properties": {}}))
    parameters.setdefault("properties", {})
    return {
        "type": "function",
        "function": {"name": doc["name"], "description": doc.get("description", ""), "parameters": parameters},
    }


def _read_jsonl(path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _frozen_turns(question: list[list[dict]]) -> tuple[tuple[Mapping[str, str], ...], ...]:
    return tuple(tuple(MappingProxyType(dict(message)) for message in turn) for turn in question)


@lru_cache(maxsize=None)
def _load_category(category: str, version: str) -> tuple[Task, ...]:
    release = resolve_release(version)
    data = package_dir(version) / "data"
    stem = f"{release.data_prefix}_multi_turn_{category}.json"
    entries = _read_jsonl(data / stem)
    answers = {entry["id"]: entry["ground_truth"] for entry in _read_jsonl(data / "possible_answer" / stem)}
    tasks = []
    for entry in entries:
        tasks.append(
            Task(
                id=entry["id"],
                category=category,
                turns=_frozen_turns(entry["question"]),
                initial_config=MappingProxyType(entry.get("initial_config", {})),
                involved_classes=tuple(entry["involved_classes"]),
                held_out_tools=MappingProxyType(
                    {int(turn): tuple(names) for turn, names in entry.get("missed_function", {}).items()}
                ),
                ground_truth=tuple(tuple(turn) for turn in answers[entry["id"]]),
                excluded_functions=tuple(entry.get("excluded_function", ())),
                release=version,
            )
        )
    return tuple(tasks)


def load_tasks(categories: tuple[str, ...] | list[str] = CATEGORIES, release: str | None = None) -> list[Task]:
    """All tasks of the given categories (default: the four multi-turn categories, 800 tasks)."""
    version = resolve_release(release).version
    unknown = [category for category in categories if category not in CATEGORIES]
    if unknown:
        raise EnvtuneError(f"unknown BFCL category {unknown[0]!r}; choose from {', '.join(CATEGORIES)}")
    return [task for category in categories for task in _load_category(category, version)]


def task_index(release: str | None = None) -> dict[str, Task]:
    """All 800 tasks by id."""
    return {task.id: task for task in load_tasks(release=release)}


def category_of(task_id: str) -> str:
    """Category of an official id such as `multi_turn_miss_param_17`."""
    prefix = task_id.rsplit("_", 1)[0]
    category = prefix.removeprefix("multi_turn_")
    if prefix == category or category not in CATEGORIES:
        raise EnvtuneError(f"{task_id!r} is not a BFCL multi-turn task id (expected multi_turn_<category>_<n>)")
    return category
