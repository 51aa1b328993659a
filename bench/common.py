"""Helpers shared by the benchmarks: the workload, and running either checker in a fresh child.

Both sides run the same way so their numbers compare: a fresh Python process per run, the same
jobs file on stdin, data loading and backend imports before the clock, one verdict written out
per entry, and the same stats line at the end (see `envtune.bfcl.official` for the protocol).
Our side's child is this file run as a script:

    python bench/common.py VERSION OUT [--episodes N] [--progress] < jobs.jsonl
"""

from __future__ import annotations

import shlex
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence


from envtune.bfcl.backends import BACKENDS, backend_class
from envtune.bfcl.official import checker_child_loop, child_arguments, run_checker_child, run_official_checker
from envtune.bfcl.release import resolve_release
from envtune.bfcl.scoring import score_entry
from envtune.bfcl.tasks import Task, task_index

SIDES = ("ours", "official")
Job = dict[str, Any]


def command_line() -> str:
    """The exact command that started this benchmark, to print at the top of its output."""
    return "$ " + shlex.join(sys.orig_argv)


def release_version(release: str | None) -> str:
    """The pinned release a `--release` value (None: the default or $ENVTUNE_BFCL_RELEASE) means."""
    return resolve_release(release).version


def ground_truth_jobs(tasks: Iterable[Task]) -> list[Job]:
    """Each task's ground truth fed back as the model's decoded output: one step per turn."""
    return [{"id": task.id, "decoded": [[list(calls)] for calls in task.ground_truth]} for task in tasks]


def run_ours_checker(
    jobs: Iterable[Job], release: str | None = None, *, episodes: int | None = None, progress: bool = False
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Verdicts and stats of our scorer, run in a fresh child exactly as the official one is."""
    command = [sys.executable, str(Path(__file__).resolve()), release_version(release)]
    return run_checker_child(command, jobs, episodes=episodes, progress=progress)


def run_checker(
    side: str, jobs: Sequence[Job], release: str | None, *, episodes: int | None = None, progress: bool = False
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One fresh-child run of either side over the same jobs."""
    if side == "ours":
        return run_ours_checker(jobs, release, episodes=episodes, progress=progress)
    if side == "official":
        return run_official_checker(jobs, release, episodes=episodes, progress=progress)
    raise ValueError(f"unknown side {side!r}; choose from {', '.join(SIDES)}")


def count_passed(verdicts: Iterable[dict[str, Any]]) -> int:
    return sum(verdict["valid"] is True for verdict in verdicts)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def mib(kib: float) -> float:
    return kib / 1024


def _ours_child(argv: list[str]) -> None:
    """Our side of the child protocol: the official child's loop, with `score_entry` as the checker."""
    args = child_arguments("python bench/common.py", argv, "version")
    tasks = task_index(args.version)
    for class_name in BACKENDS:  # imported before the clock, as the official child does
        backend_class(class_name, args.version)

    def check(job: Job, index: int) -> dict[str, Any]:
        verdict = score_entry(tasks[job["id"]], job["decoded"])
        return {"id": job["id"], "valid": verdict.valid, "error_type": verdict.error_type}

    checker_child_loop(args, check, "ours")


if __name__ == "__main__":
    _ours_child(sys.argv[1:])
