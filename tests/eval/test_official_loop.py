"""`envtune eval` plays entries exactly as BFCL's own inference loop does, on both pinned releases.

A scripted endpoint (`envtune.eval.scripted`) answers both clients with the same replies; the
official handler of the release plays each entry in a child process (`envtune.bfcl.official_loop`)
and its result is checked by the official checker. Verdicts, error types and the calls of every
turn and step must be equal.

Boundary cases: on a middle turn and on the last turn, a turn of 19, 20, 21 or 22 executed call
steps (BFCL force-quits on the 21st and keeps that turn), then an answer or an undecodable reply.
A process can import one BFCL release only, so the June-2025 side runs this file as a script in a
child process (`python tests/eval/test_official_loop.py RELEASE PROTOCOL OUT`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from envtune.bfcl.release import DEFAULT_RELEASE, PAPER_RELEASE
from envtune.bfcl.tasks import CATEGORIES, load_tasks
from envtune.eval.api import ChatEndpoint, EndpointConfig
from envtune.eval.parity import compare_to_official
from envtune.eval.players import play_endpoint
from envtune.eval.runner import EvalConfig, evaluate
from envtune.eval.scripted import DONE_TEXT, IDLE_CALL, UNDECODABLE_PROMPT, Faults, ScriptedModel, serve_scripted
from envtune.run_files import read_jsonl

STEP_COUNTS = (19, 20, 21, 22)
LIMIT = 20  # BFCL's MAXIMUM_STEP_LIMIT


def boundary_cases(release: str) -> dict[str, tuple[int, int, str, int]]:
    """task id -> (turn, executed call steps, closing reply, turns of the task) for the boundary
    cases: base tasks of
    three or more turns whose middle and last turns have ground-truth calls."""
    eligible = [task for task in load_tasks(["base"], release=release)
                if task.num_turns >= 3 and task.ground_truth[1] and task.ground_truth[-1]]
    cases, pick = {}, iter(eligible)
    for position in ("middle", "last"):
        for steps in STEP_COUNTS:
            task = next(pick)
            cases[task.id] = (1 if position == "middle" else task.num_turns - 1, steps, DONE_TEXT, task.num_turns)
        task = next(pick)  # twenty steps, then a reply that does not decode
        cases[task.id] = (1 if position == "middle" else task.num_turns - 1, LIMIT, UNDECODABLE_PROMPT, task.num_turns)
    return cases


def play_both(release: str, protocol: str, tasks, model: ScriptedModel, faults: Faults = Faults(), **endpoint) -> dict[str, Any]:
    """envtune eval against the scripted endpoint with `faults`, and the official loop against the
    same script without faults (its client would give up on them): our records, the official ones,
    and the disagreements as text."""
    faulty, clean = serve_scripted(faults, model), serve_scripted(Faults(), model)
    try:
        config = EvalConfig(protocol=protocol, prompt="bfcl" if protocol == "prompt" else "extended")
        client = ChatEndpoint(EndpointConfig(faulty.url, faulty.model_name, **{"backoff_seconds": 0.01, **endpoint}))
        with tempfile.TemporaryDirectory() as output:
            summary = evaluate(tasks, partial(play_endpoint, endpoint=client, config=config), config, output, release=release)
            ours = read_jsonl(Path(output) / "results.jsonl")
        order = {task.id: index for index, task in enumerate(tasks)}
        ours.sort(key=lambda record: order[record["id"]])
        official, disagreements = compare_to_official(ours, clean.url, clean.model_name, protocol, release)
        return {"ours": ours, "official": official, "disagreements": [str(d) for d in disagreements],
                "summary": summary, "served": dict(faulty.served)}
    finally:
        faulty.close()
        clean.close()


def boundary_run(release: str, protocol: str) -> dict[str, Any]:
    cases = boundary_cases(release)
    tasks = [task for task in load_tasks(["base"], release=release) if task.id in cases]

    def script(task, turn, calls):
        if task.id not in cases:
            return None
        target, steps, closing, _ = cases[task.id]
        if turn != target:
            return [calls, DONE_TEXT]
        return [calls] + [(IDLE_CALL,)] * (steps - 1) + [closing]

    result = play_both(release, protocol, tasks, ScriptedModel(tasks, release, script=script))
    result["cases"] = cases
    return result


def _in_child(release: str, protocol: str, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / f"{release}-{protocol}.json"
    env = {**os.environ, "ENVTUNE_BFCL_RELEASE": release}
    completed = subprocess.run([sys.executable, __file__, release, protocol, str(out)], capture_output=True, text=True,
                               timeout=900, env=env, cwd=Path(__file__).resolve().parents[2])
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize("protocol", ["prompt", "native"])
@pytest.mark.parametrize("release", [DEFAULT_RELEASE, PAPER_RELEASE])
def test_step_limit_boundaries_match_the_official_loop(release, protocol, tmp_path):
    run = boundary_run(release, protocol) if release == DEFAULT_RELEASE else _in_child(release, protocol, tmp_path)
    assert run["disagreements"] == []
    official = {record["id"]: record for record in run["official"]}
    assert len(run["ours"]) == 10
    for record in run["ours"]:
        turn, steps, _, turns = run["cases"][record["id"]]
        quits, last = steps > LIMIT, turn == turns - 1
        assert record["force_quit"] == quits, record["id"]
        assert len(record["decoded"][turn]) == min(steps, LIMIT + 1)  # the quitting turn keeps all 21 steps
        assert len(record["decoded"]) == len(official[record["id"]]["result"]) == (turn + 1 if quits else turns)
        if quits and not last:  # quitting before the last turn fails on the turn count
            assert record["error_type"] == "multi_turn:force_terminated"
        if quits and last:  # quitting on the last turn is scored as usual (the idle calls change nothing)
            assert record["valid"], record["reason"]


def stratified(release: str | None, per_category: int) -> list:
    from envtune.bfcl.splits import split_tasks

    tasks = split_tasks("heldout", release)
    return [task for category in CATEGORIES for task in [t for t in tasks if t.category == category][:per_category]]


@pytest.mark.parametrize("protocol", ["prompt", "native"])
def test_a_noisy_faulty_endpoint_gets_the_official_loops_verdicts(protocol):
    """Realistic noise (split steps, failing calls, chatter, undecodable replies, runs across the
    step limit) and every kind of fault on up to two attempts of 15% of requests: every task is
    scored, and the verdicts are the official loop's on the same replies."""
    tasks = stratified(None, 10)
    run = play_both(DEFAULT_RELEASE, protocol, tasks, ScriptedModel(), Faults(rate=0.15, timeout_seconds=1.5), timeout=0.5)
    assert run["disagreements"] == []
    assert run["summary"]["request_errors"] == 0 and len(run["ours"]) == 40
    assert {"bad_json", "no_choices", "no_message", "http_500", "http_429", "timeout"} <= set(run["served"])
    assert 0.4 < run["summary"]["overall"] < 0.95 and run["summary"]["force_quits"] > 0


if __name__ == "__main__":
    release_, protocol_, out_ = sys.argv[1:]
    Path(out_).write_text(json.dumps(boundary_run(release_, protocol_)), encoding="utf-8")
