"""Golden hint cases: a failing call on a real backend session, with the official result it must
return and the augmented text the feedback layer must turn it into, checked on both pinned releases.

A process can import one BFCL release only, so cases of the release this process does not use run in
a child process: the test file is executed as a script (`python tests/feedback/test_x.py RELEASE`),
calls `main(CASES)`, and prints each case's outcome as JSON.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envtune.bfcl.backends import class_tool_docs
from envtune.bfcl.calls import DEFAULT_LIMITS, CallLimits
from envtune.bfcl.executor import ToolSession
from envtune.bfcl.release import DEFAULT_RELEASE, PAPER_RELEASE, resolve_release
from envtune.bfcl.tasks import task_index
from envtune.feedback import augment, error_message

RELEASES = (DEFAULT_RELEASE, PAPER_RELEASE)


@dataclass(frozen=True)
class Golden:
    name: str
    classes: tuple[str, ...]
    call: str
    result: str  # the official result string
    hint: str | None  # the text after "Hint: " in the augmented message; None: left unchanged
    kind: str | None
    scenario: Mapping[str, Any] | str = field(default_factory=dict)  # config by class, or a task id to take it from
    setup: tuple[str, ...] = ()  # calls that must succeed before the failing one
    held_out: tuple[str, ...] = ()  # tools missing from the docs, as in a missing-function task
    releases: tuple[str, ...] = RELEASES
    limits: CallLimits = DEFAULT_LIMITS

    @property
    def augmented(self) -> str:
        return self.result if self.hint is None else f"{self.result}\nHint: {self.hint}"


def outcome(case: Golden, release: str) -> dict[str, Any]:
    """Run the case on a fresh session of `release` (the one this process imports)."""
    config = task_index(release)[case.scenario].initial_config if isinstance(case.scenario, str) else case.scenario
    docs = {
        doc["name"]: doc for name in case.classes for doc in class_tool_docs(name, release)
        if doc["name"] not in case.held_out
    }
    with ToolSession(case.classes, config, release=release, limits=case.limits) as env:
        setup_errors = [result for result in map(env.execute, case.setup) if error_message(result) is not None]
        result = env.execute(case.call)
        before = copy.deepcopy(env.state())
        augmented, hint = augment(env, case.call, result, docs)
        return {
            "setup_errors": setup_errors, "result": result, "augmented": augmented,
            "kind": hint.kind if hint else None, "state_unchanged": env.state() == before,
        }


def hint_kind(classes: tuple[str, ...], call: str, setup: tuple[str, ...] = ()) -> tuple[str, str | None]:
    """The official result of `call` on a default scenario and the kind of hint it gets, on this
    process's release (for errors a test only needs to see explained, not word for word)."""
    got = outcome(Golden(call, classes, call, "", None, None, setup=setup), resolve_release().version)
    assert got["setup_errors"] == []
    return got["result"], got["kind"]


_OUTCOMES: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}


def outcomes(test_file: str, cases: list[Golden], release: str) -> dict[str, dict[str, Any]]:
    """Every case of `release` by name: in this process for its own release, else in a child."""
    key = (test_file, release)
    if key not in _OUTCOMES:
        if release == resolve_release().version:
            _OUTCOMES[key] = {case.name: outcome(case, release) for case in cases if release in case.releases}
        else:
            completed = subprocess.run(
                [sys.executable, test_file, release], check=False, capture_output=True, text=True, timeout=300,
                cwd=Path(__file__).resolve().parents[2],
            )
            assert completed.returncode == 0, f"cases of {release} failed:\n{completed.stderr[-4000:]}"
            _OUTCOMES[key] = json.loads(completed.stdout)
    return _OUTCOMES[key]


def by_release(cases: list[Golden]) -> list[tuple[str, Golden]]:
    """(release, case) pairs to parametrize a test with, each case on the releases it applies to."""
    return [(release, case) for case in cases for release in case.releases]


def case_id(value: str | Golden) -> str:
    """Test ids: the release, then the case name."""
    return value.name if isinstance(value, Golden) else value


def check(test_file: str, cases: list[Golden], release: str, case: Golden) -> None:
    got = outcomes(test_file, cases, release)[case.name]
    assert got["setup_errors"] == []
    assert got["result"] == case.result
    assert got["augmented"] == case.augmented
    assert got["kind"] == case.kind
    assert got["state_unchanged"], "augment changed the environment state"


def main(cases: list[Golden]) -> None:
    """Child-process entry: print the outcomes of the cases of the release named on the command line."""
    release = sys.argv[1]
    print(json.dumps({case.name: outcome(case, release) for case in cases if release in case.releases}))
