"""Memory over many long-context episodes: ours against the official BFCL executor and checker.

An episode scores one long_context entry's ground truth (fed back as the model's output, one step
per turn), cycling through the 200 long_context tasks; long-context scenarios are the largest, so a
leak shows there first. The official executor keeps every episode's backend instances in module
globals under a name made of model name and entry id; a long run (training, or scoring many models
in one process) uses a new name per episode, and its memory grows with the episode count (we
measured about 20 MiB per 1,000 episodes on the June-2025 release, about 42 MiB on 2026.3.23).
Ours frees each episode's instances with its session, so its memory should stay flat.

Each configuration (side x episode count) runs in its own fresh child process, on the same jobs
file, with data and backend imports loaded before the loop (see bench/common.py). We report the
child's peak RSS after the loop ("after N"), its RSS at the start of the loop, and the growth from
the small to the large run, which is the part that scales with the number of episodes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from common import SIDES, command_line, count_passed, ground_truth_jobs, mib, release_version, run_checker
from envtune.bfcl.tasks import load_tasks

FLAT_WITHIN = 0.05  # the goal for ours: growth from the small to the large run below 5%


@dataclass(frozen=True)
class MemoryRun:
    """One fresh child: `episodes` episodes, its RSS at the start of the loop and its peak."""

    side: str
    episodes: int
    start_kib: int
    peak_kib: int
    seconds: float
    passed: int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Peak memory after a small and a large number of long-context episodes, ours "
        "against the official BFCL checker, each configuration in a fresh child process.",
    )
    parser.add_argument("--release", default=None, help="pinned bfcl-eval release (default: envtune's default release)")
    parser.add_argument(
        "--episodes", type=int, nargs=2, default=(1_000, 20_000), metavar=("SMALL", "LARGE"),
        help="episode counts of the two runs per side (default: 1000 20000)",
    )
    parser.add_argument("--quick", action="store_true", help="a smaller run: 200 and 2000 episodes")
    args = parser.parse_args()
    if args.quick:
        args.episodes = (200, 2_000)
    small, large = args.episodes
    if not 0 < small < large:
        parser.error("--episodes needs 0 < SMALL < LARGE")
    return args


def measure(side: str, jobs: list[dict], version: str, episodes: int) -> MemoryRun:
    verdicts, stats = run_checker(side, jobs, version, episodes=episodes, progress=True)
    return MemoryRun(
        side, episodes, int(stats["rss_start_kb"]), int(stats["max_rss_kb"]), stats["elapsed_s"],
        count_passed(verdicts),
    )


def report(small: MemoryRun, large: MemoryRun) -> str:
    """One table row: RSS after each run, and the growth between them."""
    growth_mib = mib(large.peak_kib - small.peak_kib)
    growth = (large.peak_kib - small.peak_kib) / small.peak_kib
    per_thousand = growth_mib / (large.episodes - small.episodes) * 1_000
    return (
        f"{small.side:<10}{mib(small.start_kib):>10.1f}{mib(small.peak_kib):>14.1f}{mib(large.peak_kib):>14.1f}"
        f"{growth_mib:>+12.1f}{100 * growth:>+10.1f}%{per_thousand:>+14.2f}"
    )


def main() -> None:
    args = parse_args()
    version = release_version(args.release)
    small, large = args.episodes
    print(command_line())
    jobs = ground_truth_jobs(load_tasks(categories=("long_context",), release=version))
    print(
        f"bfcl-eval {version}: episodes cycle through the {len(jobs)} long_context entries (ground truth as "
        f"the model's output); each configuration in a fresh child process\n"
    )

    runs: dict[tuple[str, int], MemoryRun] = {}
    for episodes in (small, large):
        for side in SIDES:
            runs[side, episodes] = measure(side, jobs, version, episodes)

    print(
        f"{'side':<10}{'start':>10}{f'after {small:,}':>14}{f'after {large:,}':>14}"
        f"{'growth':>12}{'growth':>11}{'per 1,000':>14}"
    )
    for side in ("official", "ours"):
        print(report(runs[side, small], runs[side, large]))
    print(
        f"\n(MiB; start = RSS at the start of the loop; after N = peak RSS of the child that ran N episodes;\n"
        f" growth = after {large:,} - after {small:,}, also in % of after {small:,} and per 1,000 episodes)"
    )
    for side in ("official", "ours"):
        run = runs[side, large]
        print(
            f"{side}: {run.passed:,}/{run.episodes:,} episodes passed, "
            f"{1_000 * run.seconds / run.episodes:.2f} ms per episode"
        )
    ours_growth = (runs["ours", large].peak_kib - runs["ours", small].peak_kib) / runs["ours", small].peak_kib
    verdict = "met" if ours_growth < FLAT_WITHIN else "NOT met"
    print(f"goal for ours, flat within {100 * FLAT_WITHIN:.0f}%: {verdict} ({100 * ours_growth:+.1f}%)")


if __name__ == "__main__":
    main()
