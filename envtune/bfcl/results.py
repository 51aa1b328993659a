"""Read model results (JSONL) into what the checker consumes, with errors that name the line.

Each line holds `id` and one of:
- `decoded`: turn -> step -> list of call strings (exactly what the official checker consumes);
- `result`: turn -> list of raw step texts, decoded with the official prompt-mode rules. A step
  that does not decode, or decodes to no call, is dropped, as the official runner does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envtune.bfcl.decoding import DecodeError, decode_prompt_output
from envtune.bfcl.tasks import Task
from envtune.errors import EnvtuneError

Decoded = list[list[list[str]]]


class ResultsFileError(EnvtuneError):
    """A results file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class ModelResult:
    task: Task
    decoded: Decoded
    line: int


def decode_result_turns(turns: list[list[str]]) -> Decoded:
    """Prompt-mode step texts -> decoded calls, dropping steps without a decodable call."""
    decoded: Decoded = []
    for steps in turns:
        kept = []
        for text in steps:
            try:
                calls = decode_prompt_output(text)
            except DecodeError:
                continue
            if calls:
                kept.append(calls)
        decoded.append(kept)
    return decoded


def _is_list_of(value: Any, depth: int) -> bool:
    """True for `depth` levels of nested lists ending in strings."""
    if depth == 0:
        return isinstance(value, str)
    return isinstance(value, list) and all(_is_list_of(item, depth - 1) for item in value)


def _parse_line(record: Any, tasks: dict[str, Task], where: str) -> tuple[Task, Decoded]:
    if not isinstance(record, dict):
        raise ResultsFileError(f"{where}: expected a JSON object with 'id' and 'decoded' or 'result'")
    task_id = record.get("id")
    if not isinstance(task_id, str):
        raise ResultsFileError(f"{where}: missing or non-string 'id'")
    if task_id not in tasks:
        raise ResultsFileError(f"{where}: unknown task id {task_id!r} (expected e.g. multi_turn_base_0)")
    has_decoded, has_result = "decoded" in record, "result" in record
    if has_decoded == has_result:
        raise ResultsFileError(f"{where}: give exactly one of 'decoded' or 'result' (id {task_id})")
    if has_decoded:
        if not _is_list_of(record["decoded"], 3):
            raise ResultsFileError(
                f"{where}: 'decoded' must be a list (turns) of lists (steps) of lists of call strings (id {task_id})"
            )
        return tasks[task_id], record["decoded"]
    if not _is_list_of(record["result"], 2):
        raise ResultsFileError(
            f"{where}: 'result' must be a list (turns) of lists of step texts (id {task_id})"
        )
    return tasks[task_id], decode_result_turns(record["result"])


def read_results(path: str | Path, tasks: dict[str, Task]) -> list[ModelResult]:
    """Every entry of a results file; raises ResultsFileError on the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise ResultsFileError(f"results file not found: {path}")
    results: list[ModelResult] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as error:
                raise ResultsFileError(f"{where}: invalid JSON ({error})") from None
            task, decoded = _parse_line(record, tasks, where)
            if task.id in seen:
                raise ResultsFileError(f"{where}: id {task.id} already appeared on line {seen[task.id]}")
            seen[task.id] = number
            results.append(ModelResult(task, decoded, number))
    if not results:
        raise ResultsFileError(f"{path}: no entries")
    return results
