"""`envtune eval` against BFCL's own inference loop: agreement, and wall time with and without faults.

Workload: the held-out split (400 tasks; `--split all` for 800) answered by a scripted loopback
endpoint (`envtune.eval.scripted`): the ground-truth calls with seeded noise (split steps, failing
calls, chatter, undecodable replies, runs of extra calls across the 20-step limit). The same script
answers three runs in this one command:

- `clean`: envtune eval against the endpoint without faults (the baseline wall time);
- `faults`: envtune eval against the endpoint failing up to two attempts of `--fault-rate` of the
  requests (bad JSON, no choices, no message, 500, 429, timeouts) and delaying `--slow-rate` of them;
- `official`: the pinned release's own handler loop and checker against the endpoint without faults.

It prints the accuracy of each run, how many verdicts (and per-step calls) of each envtune run
differ from the official loop's, and the wall time of each, with the faulty run as a ratio of the
clean one. `--json PATH` writes the same numbers (keys: tasks, protocol, accuracy, disagreements,
request_errors, wall_s, fault_slowdown, served).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

from common import command_line
from envtune.bfcl.splits import ALL, SPLIT_NAMES, split_tasks
from envtune.eval.api import ChatEndpoint, EndpointConfig
from envtune.eval.parity import compare_to_official, find_disagreements
from envtune.eval.players import play_endpoint
from envtune.eval.runner import EvalConfig, evaluate
from envtune.eval.scripted import Faults, ScriptedModel, serve_scripted
from envtune.run_files import read_jsonl


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=(*SPLIT_NAMES, ALL), default="heldout")
    parser.add_argument("--protocol", choices=("prompt", "native"), default="prompt")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--fault-rate", type=float, default=0.12)
    parser.add_argument("--slow-rate", type=float, default=0.05)
    parser.add_argument("--slow-seconds", type=float, default=0.5)
    parser.add_argument("--timeout", type=float, default=1.0, help="client seconds per request (timeout faults last 2 s)")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    return parser.parse_args()


def run_envtune(tasks, protocol: str, faults: Faults, model: ScriptedModel, concurrency: int, timeout: float):
    server = serve_scripted(faults, model)
    try:
        config = EvalConfig(protocol=protocol, prompt="bfcl" if protocol == "prompt" else "extended")
        endpoint = ChatEndpoint(EndpointConfig(server.url, server.model_name, concurrency=concurrency, timeout=timeout,
                                               backoff_seconds=0.05))
        with tempfile.TemporaryDirectory() as output:
            start = time.perf_counter()
            summary = evaluate(tasks, partial(play_endpoint, endpoint=endpoint, config=config), config, output)
            elapsed = time.perf_counter() - start
            records = read_jsonl(Path(output) / "results.jsonl")
        order = {task.id: index for index, task in enumerate(tasks)}
        return sorted(records, key=lambda record: order[record["id"]]), summary, elapsed, dict(server.served)
    finally:
        server.close()


def main() -> None:
    args = parse_args()
    print(command_line())
    tasks = split_tasks(args.split)
    model = ScriptedModel()
    faulty = Faults(rate=args.fault_rate, slow_rate=args.slow_rate, slow_seconds=args.slow_seconds)
    runs = {
        "clean": run_envtune(tasks, args.protocol, Faults(), model, args.concurrency, args.timeout),
        "faults": run_envtune(tasks, args.protocol, faulty, model, args.concurrency, args.timeout),
    }
    server = serve_scripted(Faults(), model)
    try:
        start = time.perf_counter()
        official, disagreements = compare_to_official(runs["clean"][0], server.url, server.model_name, args.protocol)
        official_wall = time.perf_counter() - start
    finally:
        server.close()
    faulty_disagreements = find_disagreements(runs["faults"][0], official)
    report = {
        "tasks": len(tasks), "protocol": args.protocol,
        "accuracy": {name: run[1]["overall"] for name, run in runs.items()},
        "disagreements": {"clean": len(disagreements), "faults": len(faulty_disagreements)},
        "request_errors": {name: run[1]["request_errors"] for name, run in runs.items()},
        "wall_s": {**{name: round(run[2], 2) for name, run in runs.items()}, "official": round(official_wall, 2)},
        "fault_slowdown": round(runs["faults"][2] / runs["clean"][2], 3),
        "served": runs["faults"][3],
    }
    official_accuracy = sum(record["valid"] for record in official) / len(official)
    print(f"{len(tasks)} tasks, {args.protocol} protocol, concurrency {args.concurrency}")
    print(f"{'run':<10}{'accuracy':>10}{'differ':>8}{'errors':>8}{'wall s':>9}")
    for name, run in runs.items():
        print(f"{name:<10}{100 * run[1]['overall']:>9.2f}%{report['disagreements'][name]:>8}"
              f"{run[1]['request_errors']:>8}{run[2]:>9.1f}")
    print(f"{'official':<10}{'':>10}{'':>8}{'':>8}{official_wall:>9.1f}   (entry pass rate {100 * official_accuracy:.2f}%)")
    print(f"faulty / clean wall time: {report['fault_slowdown']:.2f}x; attempts served: {report['served']}")
    for disagreement in (disagreements + faulty_disagreements)[:5]:
        print(f"DIFFER {disagreement}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
