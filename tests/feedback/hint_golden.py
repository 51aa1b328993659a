"""Golden hint cases: a failing call on a real backend session, with the official result it must
return and the augmented text the feedback layer must turn it into, checked on both pinned releases.

A process can import one BFCL release only, so cases of the release this process does not use run in
a child process: the test file is executed as a script (`python tests/feedback/test_x.py RELEASE`),
calls `main(CASES)`, and prints each case's outcome as JSON.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envtune.bfcl.backends import class_tool_docs
from envtune.bfcl.calls import DEFAULT_LIMITS, CallLimits
from envtune.bfcl.executor import ToolSession
from envtune.bfcl.release import DEFAULT_RELEASE, PAPER_RELEASE, resolve_release
from envtune.bfcl.tasks import task_index
from envtune.feedback import DEFAULT_RULES, HintRuleWarning, augment, error_message

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
    setup: tuple[str, ...] = ()  # calls run before the failing one; all must succeed but those of setup_errors
    setup_errors: tuple[str, ...] = ()  # official results of the setup calls meant to fail, in order
    held_out: tuple[str, ...] = ()  # tools missing from the docs, as in a missing-function task
    releases: tuple[str, ...] = RELEASES
    docs_release: str | None = None  # show the tool docs of this release instead of the case's own
    limits: CallLimits = DEFAULT_LIMITS

    @property
    def augmented(self) -> str:
        return self.result if self.hint is None else f"{self.result}\nHint: {self.hint}"


@dataclass(frozen=True)
class Domain:
    """Cases on one backend class that share a scenario: each case changes only the fields it is about."""

    class_name: str
    scenario: Mapping[str, Any]
    releases: tuple[str, ...] = RELEASES

    def case(
        self, name: str, call: str, result: str, hint: str | None, kind: str | None, *,
        changes: Mapping[str, Any] | None = None, releases: tuple[str, ...] | None = None, **options: Any,
    ) -> Golden:
        """A case on the shared scenario with `changes` applied, on `releases` (default: the domain's)."""
        scenario = {self.class_name: {**self.scenario, **(changes or {})}}
        return Golden(
            name, (self.class_name,), call, result, hint, kind, scenario, releases=releases or self.releases, **options,
        )


def tool_docs(case: Golden, release: str) -> dict[str, dict]:
    """The docs the model sees in `case` on `release`: its classes' tools less the held-out ones."""
    return {
        doc["name"]: doc for name in case.classes for doc in class_tool_docs(name, case.docs_release or release)
        if doc["name"] not in case.held_out
    }


def snapshot(env: ToolSession) -> dict[str, dict[str, Any]]:
    """Every attribute of every instance, private ones included (random generators by their state):
    what augmenting must leave as it was."""
    return {
        name: {
            key: value.getstate() if isinstance(value, random.Random) else copy.deepcopy(value)
            for key, value in vars(instance).items()
        }
        for name, instance in env.instances.items()
    }


def outcome(case: Golden, release: str) -> dict[str, Any]:
    """Run the case on a fresh session of `release` (the one this process imports)."""
    config = task_index(release)[case.scenario].initial_config if isinstance(case.scenario, str) else case.scenario
    with ToolSession(case.classes, config, release=release, limits=case.limits) as env:
        setup_errors = [result for result in map(env.execute, case.setup) if error_message(result) is not None]
        result = env.execute(case.call)
        before = snapshot(env)
        augmented, hint, _ = augment(env, case.call, result, tool_docs(case, release), rules=DEFAULT_RULES)
        return {
            "setup_errors": setup_errors, "result": result, "augmented": augmented,
            "kind": hint.kind if hint else None, "state_unchanged": snapshot(env) == before,
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


def check(
    test_file: str, cases: list[Golden], release: str, case: Golden, normalise: Callable[[str], str] | None = None,
) -> None:
    """Assert the case's outcome; `normalise` rewrites the texts first, for parts the backend prints
    in an order that varies from process to process."""
    got = outcomes(test_file, cases, release)[case.name]
    normal = normalise or (lambda text: text)
    assert got["setup_errors"] == list(case.setup_errors)
    assert normal(got["result"]) == case.result
    assert normal(got["augmented"]) == case.augmented
    assert got["kind"] == case.kind
    assert got["state_unchanged"], "augment changed the environment state"


def main(cases: list[Golden]) -> None:
    """Child-process entry: print the outcomes of the cases of the release named on the command line."""
    release = sys.argv[1]
    warnings.simplefilter("error", HintRuleWarning)  # a broken rule fails here as under pytest
    print(json.dumps({case.name: outcome(case, release) for case in cases if release in case.releases}))
