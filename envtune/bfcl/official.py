"""Run the official BFCL multi-turn checker of a pinned release, isolated in a child process.

This exists to prove parity (tests) and to compare speed and memory (benchmarks). The official
executor `eval`s call strings with full builtins and keeps its instances in module globals, so it
only ever runs in a throwaway child process, on trajectories we generated ourselves, each under a
unique model name so that no entry sees another's stale instances.

Child protocol: `python -m envtune.bfcl.official ROOT VERSION OUT < jobs.jsonl` (verdicts go to the file OUT), one job
`{"id": ..., "decoded": turn -> step -> [call strings]}` per line; the last output line is
`{"elapsed_s": ..., "max_rss_kb": ...}` measured around the checking loop only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Iterable

from envtune.bfcl.release import release_root, resolve_release


def run_official_checker(
    jobs: Iterable[dict[str, Any]], release: str | None = None, timeout: float = 1800
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Verdicts of the official checker for each job, plus the child's timing and memory stats."""
    root = release_root(release)
    version = resolve_release(release).version
    with tempfile.TemporaryDirectory(prefix="envtune-official-") as workdir:
        jobs_path = os.path.join(workdir, "jobs.jsonl")
        with open(jobs_path, "w", encoding="utf-8") as handle:
            for job in jobs:
                handle.write(json.dumps(job) + "\n")
        with open(jobs_path, encoding="utf-8") as stdin:
            completed = subprocess.run(
                [sys.executable, "-m", "envtune.bfcl.official", str(root), version, "verdicts.jsonl"],
                stdin=stdin, capture_output=True, text=True, timeout=timeout, cwd=workdir,
            )
        if completed.returncode != 0:
            raise RuntimeError(f"official checker failed:\n{completed.stderr[-4000:]}")
        with open(os.path.join(workdir, "verdicts.jsonl"), encoding="utf-8") as handle:
            lines = [json.loads(line) for line in handle if line.strip()]
    return lines[:-1], lines[-1]


def _child_main(root: str, version: str, out_path: str) -> None:  # pragma: no cover - runs in the child process
    import resource
    import time

    sys.path.insert(0, root)
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    from envtune.bfcl.release import RELEASES

    data = os.path.join(root, "bfcl_eval", "data")
    prefix = RELEASES[version].data_prefix
    entries, answers = {}, {}
    for category in ("base", "miss_func", "miss_param", "long_context"):
        stem = f"{prefix}_multi_turn_{category}.json"
        with open(os.path.join(data, stem), encoding="utf-8") as handle:
            for line in handle:
                entry = json.loads(line)
                entries[entry["id"]] = entry
        with open(os.path.join(data, "possible_answer", stem), encoding="utf-8") as handle:
            for line in handle:
                answer = json.loads(line)
                answers[answer["id"]] = answer["ground_truth"]
    jobs = [json.loads(line) for line in sys.stdin if line.strip()]
    out = []
    start = time.perf_counter()
    for index, job in enumerate(jobs):
        entry_id = job["id"]
        ground_truth = answers[entry_id]
        if len(job["decoded"]) != len(ground_truth):  # the runner's force-termination rule
            out.append({"id": entry_id, "valid": False, "error_type": "multi_turn:force_terminated"})
            continue
        try:
            result = multi_turn_checker(
                job["decoded"], ground_truth, entries[entry_id],
                entry_id.rsplit("_", 1)[0], f"parity_{index}",
            )
            out.append({"id": entry_id, "valid": result["valid"], "error_type": result.get("error_type")})
        except Exception as error:  # the official checker can crash on odd states
            out.append({"id": entry_id, "valid": None, "error_type": f"crash: {type(error).__name__}: {error}"})
    elapsed = time.perf_counter() - start
    stats = {"elapsed_s": elapsed, "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    with open(out_path, "w", encoding="utf-8") as handle:
        for record in out + [stats]:
            handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":  # pragma: no cover
    _child_main(sys.argv[1], sys.argv[2], sys.argv[3])
