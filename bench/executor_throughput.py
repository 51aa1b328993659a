"""Executor + scorer throughput: ours against the official BFCL executor and checker.

Workload: all 800 multi-turn entries, with each entry's ground truth fed back as the model's decoded
output (one step per turn), so every call really executes on both the model's and the ground
truth's instances and every turn goes through the state and response checks. This is the work an
RL rollout or an evaluation pays per entry, minus the model.

Fairness: each run is a fresh child process on the same jobs file; data loading and backend imports
happen before the clock starts and only the checking loop is timed (see bench/common.py). Machines
are noisy, so the two sides alternate within each round (which side goes first alternates too) and
the table reports medians over the rounds; the ratio is of the medians, with each round's own ratio
listed so the spread is visible.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from tqdm import tqdm

from common import SIDES, command_line, count_passed, ground_truth_jobs, median, release_version, run_checker
from envtune.bfcl.tasks import load_tasks


@dataclass
class SideTimings:
    """Loop times of one side over the rounds."""

    side: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return median(self.seconds)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Entries per second of our executor + scorer against the official BFCL checker "
        "on the ground truth of all 800 multi-turn entries (medians of interleaved rounds).",
    )
    parser.add_argument("--release", default=None, help="pinned bfcl-eval release (default: envtune's default release)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs both sides once (default: 5)")
    parser.add_argument("--quick", action="store_true", help="a single round, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def main() -> None:
    args = parse_args()
    version = release_version(args.release)
    print(command_line())
    jobs = ground_truth_jobs(load_tasks(release=version))
    print(
        f"bfcl-eval {version}: {len(jobs)} entries, ground truth as the model's output (one step per turn); "
        f"{args.rounds} round(s), fresh child per run, checking loop timed only\n"
    )

    timings = {side: SideTimings(side) for side in SIDES}
    passed: dict[str, int] = {}
    disagreements: set[str] = set()
    with tqdm(total=args.rounds * len(SIDES), desc="runs", unit="run", leave=False, disable=None) as progress:
        for round_index in range(args.rounds):
            order = SIDES if round_index % 2 == 0 else SIDES[::-1]
            verdicts = {}
            for side in order:
                progress.set_postfix_str(f"round {round_index + 1}: {side}")
                verdicts[side], stats = run_checker(side, jobs, version)
                timings[side].seconds.append(stats["elapsed_s"])
                passed[side] = count_passed(verdicts[side])
                progress.update()
            disagreements |= {
                ours["id"] for ours, official in zip(verdicts["ours"], verdicts["official"])
                if ours["valid"] != official["valid"]
            }

    print(f"{'side':<10}{'median s':>10}{'entries/s':>11}{'min s':>9}{'max s':>9}{'passed':>9}")
    for side in ("official", "ours"):
        timing = timings[side]
        print(
            f"{side:<10}{timing.median_s:>10.3f}{len(jobs) / timing.median_s:>11.0f}"
            f"{min(timing.seconds):>9.3f}{max(timing.seconds):>9.3f}{passed[side]:>9}"
        )
    ratio = timings["official"].median_s / timings["ours"].median_s
    per_round = [official / ours for ours, official in zip(timings["ours"].seconds, timings["official"].seconds)]
    print(f"\nthroughput ours/official: {ratio:.2f}x  (per round: {', '.join(f'{r:.2f}' for r in per_round)})")
    if disagreements:
        print(f"WARNING: verdicts differ on {len(disagreements)} entries, e.g. {sorted(disagreements)[:5]}")
    else:
        print(f"verdicts agree on all {len(jobs)} entries")


if __name__ == "__main__":
    main()
