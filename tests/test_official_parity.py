"""Our scorer against the official BFCL checker: the same entry verdict for every trajectory.

For each pinned release, the ground truth of all 800 entries and a batch of seeded mutated
trajectories (`envtune.bfcl.mutations`) are scored by `score_entry` and by the official checker of
that release. The official checker runs once per release, in one child process that holds all the
release's jobs (`envtune.bfcl.official`).

A process can import only one BFCL release (`release.import_bfcl_package`), and building mutations
imports the backends too (positional arguments follow the backend signatures). So our side of the
default release runs in the pytest process, and our side of any other release runs in a child
process that executes this very file as a script (`python tests/test_official_parity.py RELEASE
COUNT OUT`): both go through the same function, `our_side`, and the child only adds a JSON file.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envtune.bfcl.calls import parse_call
from envtune.bfcl.mutations import (
    COMBINED,
    MUTATIONS,
    ground_truth_trajectory,
    mutate_trajectory,
    with_positional_arguments,
)
from envtune.bfcl.official import run_official_checker
from envtune.bfcl.release import DEFAULT_RELEASE, PAPER_RELEASE
from envtune.bfcl.scoring import score_entry
from envtune.bfcl.tasks import CATEGORIES, load_tasks

GROUND_TRUTH = "ground_truth"
MUTATED_COUNT = {DEFAULT_RELEASE: 5000, PAPER_RELEASE: 1000}
ERROR_TYPES = (
    "multi_turn:force_terminated", "multi_turn:empty_turn_model_response",
    "multi_turn:instance_state_mismatch", "multi_turn:execution_response_mismatch",
)


def mutated_batch(release: str, count: int) -> list[tuple[Any, str, list]]:
    """`count` (task, kind, trajectory) triples spread evenly over the tasks of all categories;
    trajectory i depends only on (release, i), so any one of them can be rebuilt alone."""
    tasks = load_tasks(release=release)
    random.Random(release).shuffle(tasks)
    batch = []
    for index in range(count):
        task = tasks[index % len(tasks)]
        kind, trajectory = mutate_trajectory(task, random.Random(f"{release}/{index}"))
        batch.append((task, kind, trajectory))
    return batch


def our_side(release: str, count: int) -> list[dict[str, Any]]:
    """Every job of a release (the ground truth of each task, then `count` mutations) with our verdict."""
    ground_truth = [(task, GROUND_TRUTH, ground_truth_trajectory(task)) for task in load_tasks(release=release)]
    records = []
    for task, kind, trajectory in ground_truth + mutated_batch(release, count):
        verdict = score_entry(task, trajectory)
        records.append({
            "id": task.id, "category": task.category, "kind": kind, "decoded": trajectory,
            "valid": verdict.valid, "error_type": verdict.error_type, "reason": verdict.reason,
        })
    return records


@dataclass(frozen=True)
class Row:
    ours: dict[str, Any]
    official: dict[str, Any]

    @property
    def agrees(self) -> bool:
        if self.ours["valid"] != self.official["valid"]:
            return False
        return self.ours["valid"] or self.ours["error_type"] == self.official["error_type"]

    def describe(self) -> str:
        return (
            f"{self.ours['id']} [{self.ours['kind']}]\n"
            f"  ours:     valid={self.ours['valid']} {self.ours['error_type']} ({self.ours['reason']})\n"
            f"  official: valid={self.official['valid']} {self.official['error_type']}\n"
            f"  decoded:  {json.dumps(self.ours['decoded'])}"
        )


def _our_side_in_child(release: str, count: int, workdir: Path) -> list[dict[str, Any]]:
    out = workdir / f"ours-{release}.json"
    completed = subprocess.run(
        [sys.executable, __file__, release, str(count), str(out)],
        capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1],
    )
    assert completed.returncode == 0, f"our side of {release} failed:\n{completed.stderr[-4000:]}"
    return json.loads(out.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Parity:
    release: str
    rows: list[Row]

    def of_kind(self, ground_truth: bool) -> list[Row]:
        return [row for row in self.rows if (row.ours["kind"] == GROUND_TRUTH) == ground_truth]


@pytest.fixture(scope="module", params=[DEFAULT_RELEASE, PAPER_RELEASE])
def parity(request, tmp_path_factory) -> Parity:
    """Our verdicts and the official ones, job by job, for one release."""
    release = request.param
    if release == DEFAULT_RELEASE:
        ours = our_side(release, MUTATED_COUNT[release])
    else:
        ours = _our_side_in_child(release, MUTATED_COUNT[release], tmp_path_factory.mktemp("parity"))
    official, _ = run_official_checker(
        ({"id": record["id"], "decoded": record["decoded"]} for record in ours), release
    )
    assert [verdict["id"] for verdict in official] == [record["id"] for record in ours]
    return Parity(release, [Row(record, verdict) for record, verdict in zip(ours, official)])


def _disagreements(release: str, rows: list[Row]) -> str:
    """'' if every verdict agrees, else a report of the first disagreements."""
    wrong = [row for row in rows if not row.agrees]
    if not wrong:
        return ""
    first = "\n".join(row.describe() for row in wrong[:5])
    return f"bfcl-eval {release}: {len(wrong)} of {len(rows)} verdicts differ; first ones:\n{first}"


@pytest.mark.slow
def test_ground_truth_passes_on_both_sides(parity):
    rows = parity.of_kind(ground_truth=True)
    assert len(rows) == 800
    disagreements = _disagreements(parity.release, rows)
    assert not disagreements, disagreements
    failing = [row.describe() for row in rows if not row.ours["valid"]]
    assert not failing, "ground truth must pass:\n" + "\n".join(failing[:5])


@pytest.mark.slow
def test_mutated_trajectories_get_the_official_verdict(parity):
    rows = parity.of_kind(ground_truth=False)
    assert len(rows) == MUTATED_COUNT[parity.release]
    disagreements = _disagreements(parity.release, rows)
    assert not disagreements, disagreements

    # Not vacuous: every kind and every failure type occurred, both verdicts common in every category.
    kinds = Counter(COMBINED if row.ours["kind"].startswith(COMBINED) else row.ours["kind"] for row in rows)
    assert set(kinds) == set(MUTATIONS) | {COMBINED}, f"kinds that never occurred: {set(MUTATIONS) - set(kinds)}"
    assert min(kinds.values()) >= len(rows) // 50, kinds
    failures = Counter(row.ours["error_type"] for row in rows if not row.ours["valid"])
    assert set(failures) == set(ERROR_TYPES), failures
    for category in CATEGORIES:
        verdicts = [row.ours["valid"] for row in rows if row.ours["category"] == category]
        passed = sum(verdicts)
        assert 0.15 * len(verdicts) <= passed <= 0.85 * len(verdicts), (parity.release, category, passed, len(verdicts))


def test_mutations_are_deterministic_and_parse():
    tasks = load_tasks()[::40]
    for index, task in enumerate(tasks):
        first = mutate_trajectory(task, random.Random(index))
        assert first == mutate_trajectory(task, random.Random(index))
        kind, trajectory = first
        assert trajectory != ground_truth_trajectory(task), kind
        for call in (call for turn in trajectory for step in turn for call in step):
            parse_call(call)


def test_positional_rewrite_follows_the_signature():
    # The tool docs list purchase_insurance's parameters in another order than its signature.
    call = (
        "purchase_insurance(access_token='abc', insurance_type='basic', insurance_cost=50.0, "
        "booking_id='1', card_id='2')"
    )
    order = ("access_token", "insurance_type", "booking_id", "insurance_cost", "card_id")
    assert with_positional_arguments(call, order) == "purchase_insurance('abc', 'basic', '1', 50.0, '2')"
    assert with_positional_arguments("sort('a.txt')", ("file_name",)) is None


if __name__ == "__main__":  # our side of one release, for the fixture above
    release_arg, count_arg, out_arg = sys.argv[1:4]
    Path(out_arg).write_text(json.dumps(our_side(release_arg, int(count_arg))), encoding="utf-8")
