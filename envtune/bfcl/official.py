"""Run the official BFCL multi-turn checker of a pinned release, isolated in a child process.

This exists to prove parity (tests) and to compare speed and memory (benchmarks). The official
executor `eval`s call strings with full builtins and keeps its instances in module globals, so it
only ever runs in a throwaway child process, on trajectories we generated ourselves, each under a
unique model name so that no entry sees another's stale instances.

Child protocol: `python -m envtune.bfcl.official ROOT VERSION OUT [--episodes N] [--progress] < jobs.jsonl`
(verdicts go to the file OUT), one job `{"id": ..., "decoded": turn -> step -> [call strings]}` per
line; the last output line is `{"elapsed_s", "max_rss_kb", "rss_start_kb", "episodes"}` measured
around the checking loop only: the backend modules are imported before the clock starts, and each
verdict is written out at once, so the loop holds nothing per entry beyond what the checker keeps.
`--episodes N` cycles through the jobs until N entries were checked, each under its own model name,
like one long official run (the memory benchmark); `--progress` draws a progress bar on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Iterable

from envtune.bfcl.release import RELEASES, release_root, resolve_release


def run_official_checker(
    jobs: Iterable[dict[str, Any]],
    release: str | None = None,
    timeout: float = 1800,
    *,
    episodes: int | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Verdicts of the official checker for each job (for each episode when `episodes` is given),
    plus the child's timing and memory stats. With `progress` the child's stderr is not captured."""
    command = [
        sys.executable, "-m", "envtune.bfcl.official",
        str(release_root(release)), resolve_release(release).version,
    ]
    return run_checker_child(command, jobs, timeout=timeout, episodes=episodes, progress=progress)


def run_checker_child(
    command: list[str],
    jobs: Iterable[dict[str, Any]],
    *,
    timeout: float = 1800,
    episodes: int | None = None,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Run a checker child of the protocol above (`command` without OUT and options)."""
    with tempfile.TemporaryDirectory(prefix="envtune-checker-") as workdir:
        jobs_path = os.path.join(workdir, "jobs.jsonl")
        with open(jobs_path, "w", encoding="utf-8") as handle:
            for job in jobs:
                handle.write(json.dumps(job) + "\n")
        command = command + ["verdicts.jsonl"]
        if episodes is not None:
            command += ["--episodes", str(episodes)]
        if progress:
            command.append("--progress")
        with open(jobs_path, encoding="utf-8") as stdin:
            completed = subprocess.run(
                command, stdin=stdin, stdout=subprocess.PIPE, stderr=None if progress else subprocess.PIPE,
                text=True, timeout=timeout, cwd=workdir,
            )
        if completed.returncode != 0:
            details = completed.stderr[-4000:] if completed.stderr else "(see its stderr above)"
            raise RuntimeError(f"checker child {command[1:3]} failed:\n{details}")
        with open(os.path.join(workdir, "verdicts.jsonl"), encoding="utf-8") as handle:
            lines = [json.loads(line) for line in handle if line.strip()]
    return lines[:-1], lines[-1]


def child_arguments(prog: str, argv: list[str], *leading: str):
    """Parse a checker child's command line: `leading` positionals, then OUT and the options."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog)
    for name in leading:
        parser.add_argument(name)
    parser.add_argument("out_path")
    parser.add_argument("--episodes", type=int, default=None)
    parser.add_argument("--progress", action="store_true")
    return parser.parse_args(argv)


def checker_child_loop(args, check: Callable[[dict[str, Any], int], dict[str, Any]], label: str) -> None:
    """The timed loop of a checker child: read jobs from stdin, write one verdict per episode to
    OUT as it goes, then the stats line. `check(job, episode_index)` returns the verdict record."""
    import resource
    import time

    jobs = [json.loads(line) for line in sys.stdin if line.strip()]
    count = len(jobs) if args.episodes is None else args.episodes
    episodes = range(count)
    if args.progress:
        from tqdm import tqdm

        episodes = tqdm(episodes, desc=label, unit="entry", leave=False, disable=None)
    with open(args.out_path, "w", encoding="utf-8") as out:
        rss_start_kb = resident_kb()
        start = time.perf_counter()
        for index in episodes:
            out.write(json.dumps(check(jobs[index % len(jobs)], index)) + "\n")
        stats = {
            "elapsed_s": time.perf_counter() - start,
            "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "rss_start_kb": rss_start_kb,
            "episodes": count,
        }
        out.write(json.dumps(stats) + "\n")


def resident_kb() -> int:
    """Resident memory of this process now, in KiB (Linux /proc; elsewhere the peak so far)."""
    import resource

    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def official_entries(root: str, version: str) -> tuple[dict[str, dict], dict[str, list]]:
    """The release's multi-turn entries and ground truths by id, read from its data files as the
    official runner reads them."""
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
    return entries, answers


def _child_main(argv: list[str]) -> None:  # pragma: no cover - runs in the child process
    import importlib

    args = child_arguments("python -m envtune.bfcl.official", argv, "root", "version")
    sys.path.insert(0, args.root)
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    from envtune.bfcl.backends import BACKEND_PACKAGE, BACKENDS

    for module_name, _ in BACKENDS.values():  # imported before the clock, as our side does
        importlib.import_module(f"{BACKEND_PACKAGE}.{module_name}")
    entries, answers = official_entries(args.root, args.version)

    def check(job: dict[str, Any], index: int) -> dict[str, Any]:
        entry_id = job["id"]
        ground_truth = answers[entry_id]
        if len(job["decoded"]) != len(ground_truth):  # the runner's force-termination rule
            return {"id": entry_id, "valid": False, "error_type": "multi_turn:force_terminated"}
        try:
            result = multi_turn_checker(
                job["decoded"], ground_truth, entries[entry_id], entry_id.rsplit("_", 1)[0], f"parity_{index}"
            )
        except Exception as error:  # the official checker can crash on odd states
            return {"id": entry_id, "valid": None, "error_type": f"crash: {type(error).__name__}: {error}"}
        return {"id": entry_id, "valid": result["valid"], "error_type": result.get("error_type")}

    checker_child_loop(args, check, "official")


if __name__ == "__main__":  # pragma: no cover
    _child_main(sys.argv[1:])
