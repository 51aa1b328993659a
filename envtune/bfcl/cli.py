"""`envtune bfcl ...`: fetch the benchmark, verify it, score results, manage splits, show tasks."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from envtune.bfcl.release import RELEASES, fetch, resolve_release
from envtune.bfcl.results import read_results
from envtune.bfcl.scoring import score_entry, summarize
from envtune.bfcl.splits import (
    SEED,
    SPLIT_NAMES,
    check_manifest,
    generate_splits,
    split_ids,
    write_manifest,
)
from envtune.bfcl.tasks import CATEGORIES, task_index
from envtune.cli_options import add_release_argument
from envtune.run_files import write_json
from envtune.errors import EnvtuneError


def _progress(items, description: str, total: int | None = None):
    """A progress bar on stderr that stays quiet when stderr is not a terminal."""
    return tqdm(items, desc=description, total=total, unit="entry", leave=False, disable=None)


def cmd_fetch(args: argparse.Namespace) -> int:
    versions = sorted(RELEASES) if args.all else [resolve_release(args.release).version]
    if args.wheel and len(versions) != 1:
        raise EnvtuneError("--wheel installs one release; combine it with --release, not --all")
    for version in versions:
        root = fetch(RELEASES[version], Path(args.wheel) if args.wheel else None)
        print(f"bfcl-eval {version}: ready at {root} (sha256 verified)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    tasks = [task for task in task_index(args.release).values() if task.category in args.category]
    failures = []
    for task in _progress(tasks, "verifying ground truth"):
        verdict = score_entry(task, [[list(turn)] for turn in task.ground_truth])
        if not verdict.valid:
            failures.append(verdict)
    for verdict in failures:
        print(f"FAIL {verdict.id}: turn {verdict.failing_turn}: {verdict.reason}")
    version = resolve_release(args.release).version
    print(f"{len(tasks) - len(failures)}/{len(tasks)} ground-truth entries pass (bfcl-eval {version})")
    return 1 if failures else 0


def cmd_score(args: argparse.Namespace) -> int:
    results = read_results(args.file, task_index(args.release))
    verdicts = [
        score_entry(result.task, result.decoded, all_turns=args.all_turns)
        for result in _progress(results, "scoring")
    ]
    report = summarize(verdicts)
    version = resolve_release(args.release).version
    print(f"{args.file}: {len(verdicts)} entries scored with bfcl-eval {version}")
    print(report.table())
    if args.json:
        entries = [
            {
                "id": verdict.id, "category": verdict.category, "valid": verdict.valid,
                "failing_turn": verdict.failing_turn, "error_type": verdict.error_type,
                "reason": verdict.reason,
                **({"turns": verdict.to_json()["turns"]} if args.all_turns else {}),
            }
            for verdict in verdicts
        ]
        write_json(
            Path(args.json), {"bfcl_release": version, "summary": report.to_json(), "entries": entries}
        )
        print(f"per-entry verdicts written to {args.json}")
    return 0


def cmd_splits(args: argparse.Namespace) -> int:
    ids = list(task_index(args.release))
    if args.write:
        path = write_manifest(generate_splits(ids, args.seed), args.seed)
        print(f"wrote {path}")
    problems = check_manifest(ids)
    for name in SPLIT_NAMES:
        members = split_ids(name)
        counts = ", ".join(
            f"{category} {sum(task_id.startswith(f'multi_turn_{category}_') for task_id in members)}"
            for category in CATEGORIES
        )
        print(f"{name:<8} {len(members):>4} tasks  ({counts})")
    if problems:
        for problem in problems:
            print(f"PROBLEM: {problem}")
        return 1
    if args.check:
        print("splits match a fresh generation from the seed and keep every invariant")
    return 0


def cmd_task(args: argparse.Namespace) -> int:
    tasks = task_index(args.release)
    if args.task_id not in tasks:
        raise EnvtuneError(f"unknown task id {args.task_id!r} (expected e.g. multi_turn_base_0)")
    task = tasks[args.task_id]
    if args.tools:
        tools = task.openai_tools(args.turn) if args.openai else task.tool_docs(args.turn)
        print(json.dumps(tools, indent=1))
        return 0
    print(f"{task.id}  category={task.category}  classes={', '.join(task.involved_classes)}")
    if task.held_out_tools:
        print("held-out tools: " + "; ".join(f"turn {t}: {', '.join(n)}" for t, n in task.held_out_tools.items()))
    for turn, (messages, calls) in enumerate(zip(task.turns, task.ground_truth)):
        request = " ".join(message["content"] for message in messages) or "(held-out tools come back)"
        print(f"\nturn {turn}: {request}")
        for call in calls or ["(no call: the model should ask or decline)"]:
            print(f"  -> {call}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    bfcl = commands.add_parser("bfcl", help="BFCL V3 multi-turn: data, verification, scoring, splits")
    sub = bfcl.add_subparsers(dest="bfcl_command", metavar="COMMAND", required=True)

    parser = sub.add_parser("fetch", help="download a pinned bfcl-eval wheel (no dependencies) into the cache")
    add_release_argument(parser)
    parser.add_argument("--all", action="store_true", help="fetch every pinned release")
    parser.add_argument("--wheel", help="install this already downloaded wheel instead (sha256 is checked)")
    parser.set_defaults(handler=cmd_fetch)

    parser = sub.add_parser("verify", help="run every task's ground truth through executor and scorer")
    add_release_argument(parser)
    parser.add_argument("--category", nargs="+", choices=CATEGORIES, default=list(CATEGORIES))
    parser.set_defaults(handler=cmd_verify)

    parser = sub.add_parser(
        "score", help="score a JSONL results file with the official multi-turn rules",
        description="Each line: {\"id\": ..., \"decoded\": turn->step->[call strings]} or "
        "{\"id\": ..., \"result\": turn->[raw step texts]} (prompt-mode, decoded as BFCL does).",
    )
    parser.add_argument("file", help="results JSONL")
    parser.add_argument("--json", metavar="PATH", help="also write the per-entry verdicts as JSON to PATH")
    parser.add_argument("--all-turns", action="store_true", help="check every turn, not only up to the first failure")
    add_release_argument(parser)
    parser.set_defaults(handler=cmd_score)

    parser = sub.add_parser("splits", help="show, check or regenerate the train/val/test/heldout/format splits")
    parser.add_argument("--check", action="store_true", help="regenerate from the seed and compare (exit 1 on mismatch)")
    parser.add_argument("--write", action="store_true", help="regenerate the shipped manifest (for maintainers)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed used with --write (default: {SEED})")
    add_release_argument(parser)
    parser.set_defaults(handler=cmd_splits)

    parser = sub.add_parser("task", help="show one task: turns and ground truth, or its tools")
    parser.add_argument("task_id")
    parser.add_argument("--tools", action="store_true", help="print the tool schemas instead")
    parser.add_argument("--turn", type=int, default=0, help="turn whose tools to show (held-out tools appear later)")
    parser.add_argument("--openai", action="store_true", help="print tools in OpenAI function-tool form")
    add_release_argument(parser)
    parser.set_defaults(handler=cmd_task)
