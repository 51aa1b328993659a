"""`envtune eval` against BFCL's own inference loop, on the same replies.

Both clients play the same tasks against one scripted endpoint (`envtune.eval.scripted`), whose
replies depend only on the conversation; the official side runs the pinned release's handler and
checker (`envtune.bfcl.official_loop`). An entry agrees when both give the same verdict and error
type and the same calls, turn by turn and step by step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from envtune.bfcl.calls import CallError, parse_call
from envtune.bfcl.official_loop import run_official_inference


def normalized_calls(decoded: Sequence[Sequence[Sequence[str]]] | None) -> list[list[list[Any]]] | None:
    """turn -> step -> (name, keyword arguments) of call strings, whatever their spacing or quoting."""
    if decoded is None:
        return None

    def read(call: str) -> Any:
        try:
            parsed = parse_call(call)
        except CallError:
            return call
        return [parsed.name, list(parsed.args), sorted(parsed.kwargs.items(), key=lambda item: item[0])]

    return [[[read(call) for call in step] for step in turn] for turn in decoded]


@dataclass(frozen=True)
class Disagreement:
    task_id: str
    ours: dict[str, Any]
    official: dict[str, Any]

    def __str__(self) -> str:
        def side(record: dict[str, Any]) -> str:
            turns = record.get("decoded")
            steps = [len(turn) for turn in turns] if turns is not None else None
            return f"valid={record['valid']} {record['error_type']} steps per turn {steps}"

        return f"{self.task_id}: envtune {side(self.ours)}; official {side(self.official)}"


def find_disagreements(ours: Sequence[dict[str, Any]], official: Sequence[dict[str, Any]]) -> list[Disagreement]:
    """Entries (matched by id) whose verdict, error type or calls differ."""
    theirs_by_id = {record["id"]: record for record in official}
    return [
        Disagreement(mine["id"], mine, theirs_by_id[mine["id"]])
        for mine in ours if mine["sample"] == 0
        if (mine["valid"], mine["error_type"]) != (theirs_by_id[mine["id"]]["valid"], theirs_by_id[mine["id"]]["error_type"])
        or normalized_calls(mine["decoded"]) != normalized_calls(theirs_by_id[mine["id"]]["decoded"])
    ]


def compare_to_official(
    records: Sequence[dict[str, Any]], base_url: str, model: str, protocol: str, release: str | None = None,
) -> tuple[list[dict[str, Any]], list[Disagreement]]:
    """Run the official loop on the tasks of `records` (envtune's results.jsonl lines of sample 0)
    against the same endpoint; returns its records and every entry where the two differ."""
    ours = [record for record in records if record["sample"] == 0]
    official = run_official_inference([record["id"] for record in ours], base_url, model, protocol, release)
    return official, find_disagreements(ours, official)
