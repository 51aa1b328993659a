"""`envtune feedback coverage`: how much of the error surface the augmented layer explains."""

from __future__ import annotations

import argparse
from pathlib import Path

from envtune.bfcl.splits import ALL, SPLIT_NAMES, split_tasks
from envtune.cli_options import add_release_argument
from envtune.feedback import DEFAULT_RULES
from envtune.feedback.coverage import measure
from envtune.run_files import write_json

COVERAGE_GOAL = 0.90


def cmd_coverage(args: argparse.Namespace) -> int:
    tasks = split_tasks(args.split, args.release)
    report = measure(tasks, seed=args.seed)
    covered = sum(kind.covered for kind in report.kinds.values())
    print(f"error corpus: {report.calls_tried} erroneous call variants over {len(tasks)} tasks, "
          f"{report.errors} official errors, {len(report.kinds)} distinct error kinds")
    print(f"kinds turned into an actionable hint: {covered}/{len(report.kinds)} = {100 * report.covered_share:.1f}% "
          f"(goal >= {100 * COVERAGE_GOAL:.0f}%); erroneous calls with a hint: {100 * report.hinted_share:.1f}%")
    print(f"leaks (hints holding a ground-truth value the model has not seen): {len(report.leaks)}")
    uncovered = sorted((kind for kind in report.kinds.values() if not kind.covered), key=lambda k: -k.occurrences)
    for kind in uncovered[: args.show]:
        print(f"  no hint ({kind.occurrences - kind.hinted}/{kind.occurrences}): {kind.kind[:160]}")
    for leak in report.leaks[: args.show]:
        print(f"  LEAK {leak.task_id}: {leak.call[:80]} -> {leak.values}")
    if args.json:
        write_json(Path(args.json), report.to_json())
        print(f"full report written to {args.json}")
    return 0 if report.covered_share >= COVERAGE_GOAL and not report.leaks else 1


def cmd_rules(args: argparse.Namespace) -> int:
    """The hint catalogue: every default rule, in the order they are tried, with its category and tools."""
    for rule in DEFAULT_RULES:
        tools = "any tool" if rule.tools is None else ", ".join(sorted(rule.tools))
        print(f"{rule.kind:<42} {rule.category:<21} {tools}")
    print(f"{len(DEFAULT_RULES)} rules")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    feedback = commands.add_parser("feedback", help="the augmented-feedback layer")
    sub = feedback.add_subparsers(dest="feedback_command", metavar="COMMAND", required=True)
    parser = sub.add_parser("coverage", help="measure hint coverage and leaks on a corpus of erroneous calls")
    parser.add_argument("--split", choices=(*SPLIT_NAMES, ALL), default="all", help="tasks to mutate (default: all 800)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=15, help="how many uncovered kinds and leaks to list")
    parser.add_argument("--json", metavar="PATH", help="also write the full report (every kind with an example) as JSON to PATH")
    add_release_argument(parser)
    parser.set_defaults(handler=cmd_coverage)
    parser = sub.add_parser("rules", help="list the hint catalogue: rule kinds, categories and tools")
    parser.set_defaults(handler=cmd_rules)
