"""`envtune play` and `envtune replay`: episodes for people to try and to check."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from tqdm import tqdm

from envtune.bfcl.splits import ALL, SPLIT_NAMES, split_tasks
from envtune.bfcl.tasks import task_index
from envtune.cli_options import add_episode_arguments, episode_overrides
from envtune.env.episode import Episode, EpisodeConfig
from envtune.env.oracle import ORACLE_PROTOCOLS, replay
from envtune.env.rewards import REWARDS
from envtune.errors import EnvtuneError

SCRIPT_SEPARATOR = "---"


def _episode_options(parser: argparse.ArgumentParser, protocols: tuple[str, ...]) -> None:
    # EpisodeConfig's own defaults: the curriculum's training settings, 5 steps per turn as in the paper
    add_episode_arguments(parser, protocols=protocols, defaults=asdict(EpisodeConfig()))
    parser.add_argument("--block-held-out-tools", action="store_true", help="hide held-out tools until their turn")


def _config(args: argparse.Namespace) -> EpisodeConfig:
    return EpisodeConfig(**episode_overrides(args), block_held_out_tools=args.block_held_out_tools)


def read_script(path: str) -> list[str]:
    """Scripted replies: a JSON list of strings, or plain text with replies separated by `---` lines."""
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        try:
            replies = json.loads(text)
        except json.JSONDecodeError as error:
            raise EnvtuneError(f"{path}: not valid JSON ({error})") from None
        if not isinstance(replies, list) or not all(isinstance(reply, str) for reply in replies):
            raise EnvtuneError(f"{path}: a .json script must be a list of reply strings")
        return replies
    replies, current = [], []
    for line in text.splitlines():
        if line.strip() == SCRIPT_SEPARATOR:
            replies.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if any(line.strip() for line in current):
        replies.append("\n".join(current))
    return replies


def _typed_replies() -> Iterator[str]:
    """Replies typed in the terminal: several lines, ended by a line with a single '.' (or EOF)."""
    while True:
        print("\nassistant (end with a line '.', Ctrl-D to stop)>", flush=True)
        lines = []
        for line in sys.stdin:
            if line.rstrip("\n") == ".":
                break
            lines.append(line.rstrip("\n"))
        else:
            if lines:
                yield "\n".join(lines)
            return
        yield "\n".join(lines)


def _show(role: str, content: str) -> None:
    print(f"\n[{role}]\n{content}")


def _describe(verdict) -> str:
    if verdict.passed:
        return f"turn {verdict.turn} closed: success"
    details = [f"differs: {', '.join(verdict.state_differences)}"] if verdict.state_differences else []
    details += [f"missing results: {len(verdict.missing_results)}"] if verdict.missing_results else []
    return f"turn {verdict.turn} closed: failed: {verdict.reason}" + (f" ({'; '.join(details)})" if details else "")


def cmd_play(args: argparse.Namespace) -> int:
    tasks = task_index(args.release)
    if args.task_id not in tasks:
        raise EnvtuneError(f"unknown task id {args.task_id!r} (expected e.g. multi_turn_base_0)")
    replies = iter(read_script(args.script)) if args.script else _typed_replies()
    with Episode(tasks[args.task_id], _config(args)) as episode:
        for message in episode.reset():
            content = message["content"] if args.show_system or message["role"] != "system" else (
                f"(system prompt with {len(episode.tool_docs())} tools: "
                f"{', '.join(doc['name'] for doc in episode.tool_docs())}; --show-system prints it)"
            )
            _show(message["role"], content)
        for reply in replies:
            if args.script:
                _show("assistant", reply)
            step = episode.step(reply)
            for message in step.feedback:
                _show(message["role"] if message["role"] != "tool" else f"tool {message.get('name', '')}", message["content"])
            if step.closed_turn is not None:
                print(f"\n== {_describe(step.closed_turn)}")
            for message in step.request:
                _show(message["role"], message["content"])
            if step.done:
                break
        state = "finished" if episode.done else f"stopped at turn {episode.turn} of {episode.task.num_turns}"
        print(f"\nepisode {state}; turn successes {episode.turn_successes}")
        print("rewards: " + ", ".join(f"{name} {episode.reward(name):.3f}" for name in REWARDS))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    config = _config(args)
    tasks = split_tasks(args.split, args.release)
    outcomes = [replay(task, config) for task in tqdm(tasks, desc=f"oracle ({args.feedback})", unit="task", disable=None)]
    failed = [outcome for outcome in outcomes if outcome.progress != 1.0]
    for outcome in failed:
        print(f"FAIL {outcome.task_id}: progress {outcome.progress:.2f}; " + "; ".join(outcome.failures))
    print(f"{len(outcomes) - len(failed)}/{len(outcomes)} tasks reach progress 1.0 "
          f"(split {args.split}, {args.feedback} feedback, oracle in the {args.protocol} protocol)")
    return 1 if failed else 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("play", help="play one episode in the terminal (or from a script)")
    parser.add_argument("task_id", help="e.g. multi_turn_base_0")
    parser.add_argument("--script", help="replies from a file: a JSON list, or text separated by '---' lines")
    parser.add_argument("--show-system", action="store_true", help="print the whole system prompt")
    _episode_options(parser, ("envtune", "prompt"))
    parser.set_defaults(handler=cmd_play)

    parser = commands.add_parser("replay", help="drive tasks with the ground-truth oracle; every task must reach progress 1.0")
    parser.add_argument("--split", choices=(*SPLIT_NAMES, ALL), default="train", help="tasks to replay (default: train)")
    _episode_options(parser, ORACLE_PROTOCOLS)
    parser.set_defaults(handler=cmd_replay)
