"""How much of the benchmark's error surface the augmented layer explains, and whether it leaks.

We replay every task's ground truth and, before each ground-truth call, try erroneous variants of
it: a wrong argument value, a missing, an unexpected or a mistyped argument, a path instead of a
name, a misspelt or foreign tool, and the turn's last call made first (skipping its prerequisites).
Each failed call's official error message is reduced to an error *kind* (its own argument values,
quoted text and numbers replaced by placeholders). A kind is covered when the layer gave a hint on
every occurrence. A hint leaks when it contains a ground-truth argument value of the task that the
model has not seen: not in the tool docs, the user's requests so far, the results returned so far
or the call itself.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from tqdm import tqdm

from envtune.bfcl.calls import parse_call
from envtune.bfcl.executor import ToolSession
from envtune.bfcl.mutations import render_call, seen_values, unknown_tool_names, with_tool_name, with_wrong_argument
from envtune.bfcl.tasks import Task
from envtune.feedback import DEFAULT_RULES, augment, error_message


@dataclass
class ErrorKind:
    kind: str
    tool: str
    occurrences: int = 0
    hinted: int = 0
    example_call: str = ""
    example_result: str = ""
    example_hint: str = ""

    @property
    def covered(self) -> bool:
        return self.hinted == self.occurrences


@dataclass
class Leak:
    task_id: str
    call: str
    hint: str
    values: tuple[str, ...]


@dataclass
class CoverageReport:
    calls_tried: int = 0
    errors: int = 0
    kinds: dict[str, ErrorKind] = field(default_factory=dict)
    leaks: list[Leak] = field(default_factory=list)

    @property
    def covered_share(self) -> float:
        return sum(kind.covered for kind in self.kinds.values()) / len(self.kinds) if self.kinds else 0.0

    @property
    def hinted_share(self) -> float:
        """Share of erroneous calls (not kinds) that got a hint."""
        return sum(kind.hinted for kind in self.kinds.values()) / self.errors if self.errors else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "calls_tried": self.calls_tried,
            "errors": self.errors,
            "error_kinds": len(self.kinds),
            "covered_kinds": sum(kind.covered for kind in self.kinds.values()),
            "covered_share": self.covered_share,
            "hinted_share_of_errors": self.hinted_share,
            "leaks": len(self.leaks),
            "kinds": [vars(kind) | {"covered": kind.covered} for kind in sorted(self.kinds.values(), key=lambda k: k.kind)],
            "leak_examples": [vars(leak) for leak in self.leaks[:20]],
        }


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def error_kind(tool: str, error: str, arguments: dict[str, Any]) -> str:
    """The error with the call's own values, quoted text and numbers replaced by placeholders."""
    text = error
    values = sorted((str(value) for value in _flatten(arguments.values()) if len(str(value)) >= 2), key=len, reverse=True)
    for value in values:
        text = text.replace(value, "<arg>")
    text = _NUMBER.sub("<n>", _QUOTED.sub("<s>", text))
    return f"{tool}: {text}"


def _flatten(values: Iterable[Any]) -> Iterator[Any]:
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _flatten(value)
        elif isinstance(value, dict):
            yield from _flatten(value.values())
        else:
            yield value


def _secret_values(task: Task) -> set[str]:
    """Ground-truth argument values worth hiding: strings of 3+ characters and 3+ digit numbers."""
    secrets = set()
    for value in _flatten(seen_values(task)):
        text = str(value)
        if isinstance(value, str) and len(text) >= 3:
            secrets.add(text)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and len(text.replace("-", "").replace(".", "")) >= 3:
            secrets.add(text)
    return secrets


def _variants(call: str, task: Task, rng: random.Random, seen: list[Any]) -> list[str]:
    """Erroneous versions of one ground-truth call."""
    parsed = parse_call(call)
    variants = [with_wrong_argument(call, rng, seen) for _ in range(2)]
    names = unknown_tool_names(task, parsed.name)
    if names:
        variants.append(with_tool_name(call, rng.choice(names)))
    if parsed.kwargs:
        dropped = rng.choice(list(parsed.kwargs))
        variants.append(render_call(parsed.name, parsed.args, {k: v for k, v in parsed.kwargs.items() if k != dropped}))
        key = rng.choice(list(parsed.kwargs))
        value = parsed.kwargs[key]
        mistyped = 7 if isinstance(value, str) else "seven" if isinstance(value, (int, float)) else "text"
        variants.append(render_call(parsed.name, parsed.args, {**parsed.kwargs, key: mistyped}))
        strings = [k for k, v in parsed.kwargs.items() if isinstance(v, str)]
        if strings:
            key = rng.choice(strings)
            variants.append(render_call(parsed.name, parsed.args, {**parsed.kwargs, key: f"folder/{parsed.kwargs[key]}"}))
    variants.append(render_call(parsed.name, parsed.args, {**parsed.kwargs, "extra_option": True}))
    return [variant for variant in variants if variant and variant != call]


def measure(tasks: Iterable[Task], seed: int = 0, progress: bool = True) -> CoverageReport:
    """Build the error corpus over `tasks` and measure hint coverage and leaks."""
    report = CoverageReport()
    tasks = list(tasks)
    bar_disabled = None if progress else True  # None: shown on a terminal only
    for task in tqdm(tasks, desc="error corpus", unit="task", disable=bar_disabled):
        rng = random.Random(f"{seed}:{task.id}")
        _measure_task(task, rng, report)
    return report


def _measure_task(task: Task, rng: random.Random, report: CoverageReport) -> None:
    secrets = _secret_values(task)
    seen = seen_values(task)
    hidden = {name: turn for turn, names in task.held_out_tools.items() for name in names}
    with ToolSession.for_task(task) as env:
        env.hide(hidden)
        visible: list[str] = []
        for turn, calls in enumerate(task.ground_truth):
            env.reveal(task.held_out_tools.get(turn, ()))
            docs = {doc["name"]: doc for doc in task.tool_docs(turn)}
            visible.append(json.dumps(list(docs.values())))
            visible.extend(message["content"] for message in task.turns[turn])
            held_out = {name: back for name, back in hidden.items() if back > turn}
            tries: list[str] = [calls[-1]] if len(calls) > 1 else []  # out of order: prerequisites skipped
            for call in calls:
                tries += _variants(call, task, rng, seen)
                for attempt in tries:
                    _try(env, task, attempt, docs, held_out, secrets, visible, report)
                tries = []
                visible.append(env.execute(call))


def _try(env, task, call, docs, held_out, secrets, visible, report: CoverageReport) -> None:
    """Run one erroneous call; file its error kind, whether it got a hint, and any leak."""
    report.calls_tried += 1
    result = env.execute(call)
    visible.append(result)
    described = env.describe(call)
    error = error_message(result, described.name if described else None)
    if error is None:
        return
    report.errors += 1
    hint = augment(env, call, result, docs, held_out, rules=DEFAULT_RULES).hint
    tool = str(described.name) if described else "?"
    name = error_kind(tool, error, described.arguments if described else {})
    kind = report.kinds.setdefault(name, ErrorKind(name, tool, example_call=call, example_result=result))
    kind.occurrences += 1
    if hint is None:
        kind.example_call, kind.example_result = call, result  # show an occurrence without a hint
        return
    kind.hinted += 1
    kind.example_hint = kind.example_hint or hint.text
    own_values = [str(value) for value in _flatten(described.arguments.values())] if described else []
    context = " ".join([*visible, call, *own_values])
    leaked = tuple(sorted(value for value in secrets if value in hint.text and value not in context))
    if leaked:
        report.leaks.append(Leak(task.id, call, hint.text, leaked))
