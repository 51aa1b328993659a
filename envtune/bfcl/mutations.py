"""Seeded near-misses of ground-truth trajectories: the mistakes (and harmless detours) agents make.

A trajectory is what the official checker consumes: turn -> step -> Python call strings. Starting
from a task's ground truth, each mutation kind imitates one kind of agent behaviour: dropping,
repeating or reordering calls, exploring with read-only tools, getting an argument wrong, passing
arguments by position, spreading a turn over several steps, answering a turn without calls, being
cut off early, or calling a tool that does not exist. Parity tests score them with our checker and
the official one; the per-call mutations (`with_wrong_argument`, `with_positional_arguments`,
`with_tool_name`) also serve on their own to build corpora of erroneous calls.

Everything is deterministic given the `random.Random` passed in, and every call string produced
parses as a Python call with literal arguments (values are rendered with `repr`).
"""

from __future__ import annotations

import builtins
import inspect
import keyword
import random
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

from envtune.bfcl.backends import BACKENDS, backend_class, class_tool_docs
from envtune.bfcl.calls import parse_call
from envtune.bfcl.tasks import Task
from envtune.errors import EnvtuneError

Trajectory = list[list[list[str]]]  # turn -> step -> call strings
Position = tuple[int, int, int]  # (turn, step, call)

# First words of tool names that only read state: calls an agent makes to look around.
READ_ONLY_VERBS = frozenset({"get", "list", "view", "check", "find", "ls", "pwd", "du", "display"})


# ---- single calls -------------------------------------------------------------------------------


def render_call(name: str, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None) -> str:
    """A call string with `repr`-rendered values, positional arguments first."""
    rendered = [repr(value) for value in args]
    rendered += [f"{key}={value!r}" for key, value in (kwargs or {}).items()]
    return f"{name}({', '.join(rendered)})"


def _edit_string(value: str, rng: random.Random) -> str:
    """A small typo-like edit, always different from `value`."""
    edits = [value + rng.choice("xs_1 "), value.upper(), value.lower(), value.title()]
    if len(value) > 1:
        cut = rng.randrange(len(value))
        edits += [value[:-1], value[:cut] + value[cut + 1:]]
    edits = [edit for edit in edits if edit != value]
    return rng.choice(edits)


def can_mutate(value: Any) -> bool:
    """Whether `mutate_value` can make a different value of the same type."""
    if isinstance(value, (list, tuple, dict)):
        return bool(value)
    return isinstance(value, (bool, int, float, str))


def mutate_value(value: Any, rng: random.Random, seen: Sequence[Any] = ()) -> Any:
    """A wrong value of the same type: an edit of `value`, or another value `seen` in the task
    (the mistake of mixing up two values the user mentioned). `value` must pass `can_mutate`."""
    others = [item for item in seen if type(item) is type(value) and item != value]
    if others and rng.random() < 0.4:
        return rng.choice(others)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice((-10, -1, 1, 10))
    if isinstance(value, float):
        return round(value + rng.choice((-1.5, -0.5, 0.5, 2.0)), 6)
    if isinstance(value, str):
        return _edit_string(value, rng)
    if isinstance(value, dict):
        key = rng.choice([key for key, item in value.items() if can_mutate(item)] or list(value))
        if not can_mutate(value[key]):
            return {name: item for name, item in value.items() if name != key}
        return {**value, key: mutate_value(value[key], rng, seen)}
    items = list(value)
    index = rng.randrange(len(items))
    if (len(items) > 1 and rng.random() < 0.5) or not can_mutate(items[index]):
        del items[index]
    else:
        items[index] = mutate_value(items[index], rng, seen)
    return type(value)(items)


def with_wrong_argument(call: str, rng: random.Random, seen: Sequence[Any] = ()) -> str | None:
    """`call` with one argument value changed (positional or keyword); None if it has none to change."""
    parsed = parse_call(call)
    slots = [index for index, value in enumerate(parsed.args) if can_mutate(value)]
    slots += [key for key, value in parsed.kwargs.items() if can_mutate(value)]
    if not slots:
        return None
    slot = rng.choice(slots)
    args, kwargs = list(parsed.args), dict(parsed.kwargs)
    if isinstance(slot, int):
        args[slot] = mutate_value(args[slot], rng, seen)
    else:
        kwargs[slot] = mutate_value(kwargs[slot], rng, seen)
    return render_call(parsed.name, args, kwargs)


def with_positional_arguments(call: str, parameters: Sequence[str]) -> str | None:
    """`call` with its keyword arguments passed by position, as far as `parameters` (the tool's
    signature order) allows; None if no keyword argument can move."""
    parsed = parse_call(call)
    args, kwargs = list(parsed.args), dict(parsed.kwargs)
    for parameter in parameters[len(args):]:
        if parameter not in kwargs:
            break
        args.append(kwargs.pop(parameter))
    if len(args) == len(parsed.args):
        return None
    return render_call(parsed.name, args, kwargs)


def with_tool_name(call: str, name: str) -> str:
    """`call` addressed to another tool, arguments unchanged (a hallucinated or misspelt tool)."""
    parsed = parse_call(call)
    return render_call(name, parsed.args, parsed.kwargs)


# ---- what a task offers -------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _signature_order(class_name: str, tool: str, release: str | None) -> tuple[str, ...]:
    function = getattr(backend_class(class_name, release), tool)
    return tuple(
        parameter.name for parameter in list(inspect.signature(function).parameters.values())[1:]
        if parameter.kind is parameter.POSITIONAL_OR_KEYWORD
    )


def tool_parameters(task: Task, tool: str) -> tuple[str, ...]:
    """Parameters of `tool` in signature order. The tool docs list a few in another order, and
    positional arguments bind by the signature, so it is read from the backend class itself."""
    owners = [
        name for name in task.involved_classes
        if any(doc["name"] == tool for doc in class_tool_docs(name, task.release))
    ]
    if not owners:
        return ()
    return _signature_order(owners[-1], tool, task.release)  # a later class wins a name clash


def seen_values(task: Task) -> list[Any]:
    """Argument values of the task's ground-truth calls (list items included), in call order."""
    values = []
    for turn in task.ground_truth:
        for call in turn:
            parsed = parse_call(call)
            for value in [*parsed.args, *parsed.kwargs.values()]:
                values.append(value)
                if isinstance(value, list):
                    values.extend(value)
    return values


def exploratory_calls(task: Task, turn: int) -> list[str]:
    """Argument-free calls of read-only tools available at `turn`, such as `ls()` or `get_watchlist()`."""
    return [
        f"{doc['name']}()"
        for doc in task.tool_docs(turn)
        if not doc.get("parameters", {}).get("required")
        and (doc["name"].split("_")[0] in READ_ONLY_VERBS or doc["name"].endswith("_login_status"))
    ]


def unknown_tool_names(task: Task, tool: str) -> list[str]:
    """Names no involved class defines: tools of the other domains, and misspellings of `tool`.

    Python builtins are excluded: the official executor `eval`s calls, so `print(...)` would run the
    builtin there instead of failing as an unknown tool does here (a deliberate difference).
    """
    known = {doc["name"] for name in task.involved_classes for doc in class_tool_docs(name, task.release)}
    foreign = [
        doc["name"] for name in BACKENDS if name not in task.involved_classes
        for doc in class_tool_docs(name, task.release)
    ]
    misspelt = [tool + "s", tool.replace("_", ""), f"get_{tool}", tool.capitalize()]
    return [
        name for name in dict.fromkeys(misspelt + foreign)
        if name not in known and name.isidentifier() and not keyword.iskeyword(name) and not hasattr(builtins, name)
    ]


# ---- trajectories -------------------------------------------------------------------------------


def ground_truth_trajectory(task: Task) -> Trajectory:
    """The ground truth as a model would produce it: one step per turn, no step where it is empty."""
    return [[list(turn)] if turn else [] for turn in task.ground_truth]


def _copy(trajectory: Trajectory) -> Trajectory:
    return [[list(step) for step in turn] for turn in trajectory]


def _positions(trajectory: Trajectory) -> list[Position]:
    return [(t, s, c) for t, turn in enumerate(trajectory) for s, step in enumerate(turn) for c in range(len(step))]


def _remove(trajectory: Trajectory, position: Position) -> str:
    """Take one call out, dropping its step if that leaves it empty (as decoding would)."""
    t, s, c = position
    call = trajectory[t][s].pop(c)
    if not trajectory[t][s]:
        del trajectory[t][s]
    return call


def _replace_call(trajectory: Trajectory, rng: random.Random, change: Callable[[str], str | None]) -> Trajectory | None:
    """Apply `change` to one random call it applies to."""
    positions = _positions(trajectory)
    rng.shuffle(positions)
    for t, s, c in positions:
        changed = change(trajectory[t][s][c])
        if changed is not None:
            trajectory[t][s][c] = changed
            return trajectory
    return None


def drop_call(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Leave out one call (a forgotten step)."""
    positions = _positions(trajectory)
    if not positions:
        return None
    _remove(trajectory, rng.choice(positions))
    return trajectory


def duplicate_call(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Repeat one call right after itself (a retry of a call that had worked)."""
    positions = _positions(trajectory)
    if not positions:
        return None
    t, s, c = rng.choice(positions)
    trajectory[t][s].insert(c + 1, trajectory[t][s][c])
    return trajectory


def reorder_within_turn(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Swap two different calls of one turn, wherever its steps put them (step sizes kept)."""
    candidates = [t for t, turn in enumerate(trajectory) if len({call for step in turn for call in step}) > 1]
    if not candidates:
        return None
    turn = trajectory[rng.choice(candidates)]
    calls = [call for step in turn for call in step]
    first, second = rng.sample(range(len(calls)), 2)
    while calls[first] == calls[second]:
        first, second = rng.sample(range(len(calls)), 2)
    calls[first], calls[second] = calls[second], calls[first]
    for step in turn:
        step[:], calls = calls[:len(step)], calls[len(step):]
    return trajectory


def reorder_across_turns(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Move one call into the previous turn (done too early) or the next one (done too late)."""
    moves = [
        (position, target)
        for position in _positions(trajectory)
        for target in (position[0] - 1, position[0] + 1)
        if 0 <= target < len(trajectory)
    ]
    if not moves:
        return None
    position, target = rng.choice(moves)
    call = _remove(trajectory, position)
    steps = trajectory[target]
    if target < position[0]:
        steps[-1:] = [steps[-1] + [call]] if steps else [[call]]
    else:
        steps[:1] = [[call] + steps[0]] if steps else [[call]]
    return trajectory


def exploratory_call(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Add one or two read-only calls to a turn, as a step of their own or inside a step."""
    if not trajectory:
        return None
    t = rng.randrange(len(trajectory))
    options = exploratory_calls(task, t)
    if not options:
        return None
    calls = rng.sample(options, min(len(options), rng.choice((1, 2))))
    steps = trajectory[t]
    if steps and rng.random() < 0.5:
        step = rng.choice(steps)
        at = rng.randrange(len(step) + 1)
        step[at:at] = calls
    else:
        steps.insert(rng.randrange(len(steps) + 1), calls)
    return trajectory


def wrong_argument(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Get one argument value of one call wrong."""
    seen = seen_values(task)
    return _replace_call(trajectory, rng, lambda call: with_wrong_argument(call, rng, seen))


def positional_arguments(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Pass the keyword arguments of some calls (at least one) by position."""
    rewrites = []
    for t, s, c in _positions(trajectory):
        call = trajectory[t][s][c]
        rewritten = with_positional_arguments(call, tool_parameters(task, parse_call(call).name))
        if rewritten is not None:
            rewrites.append((t, s, c, rewritten))
    if not rewrites:
        return None
    chosen = [rewrite for rewrite in rewrites if rng.random() < 0.5] or [rng.choice(rewrites)]
    for t, s, c, rewritten in chosen:
        trajectory[t][s][c] = rewritten
    return trajectory


def split_steps(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Spread one step's calls over several consecutive steps."""
    candidates = [(t, s) for t, turn in enumerate(trajectory) for s, step in enumerate(turn) if len(step) > 1]
    if not candidates:
        return None
    t, s = rng.choice(candidates)
    step = trajectory[t][s]
    cuts = sorted(rng.sample(range(1, len(step)), rng.randint(1, len(step) - 1)))
    bounds = [0, *cuts, len(step)]
    trajectory[t][s:s + 1] = [step[start:end] for start, end in zip(bounds, bounds[1:])]
    return trajectory


def empty_turn(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Answer a turn without calls: no step, one empty step, or several empty steps."""
    candidates = [t for t, turn in enumerate(trajectory) if any(turn)]
    if not candidates:
        return None
    trajectory[rng.choice(candidates)] = rng.choice(([], [[]], [[], []]))
    return trajectory


def missing_turns(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Stop before the last turns, as a force-terminated run does."""
    if not trajectory:
        return None
    return trajectory[:rng.randrange(len(trajectory))]


def unknown_tool(task: Task, trajectory: Trajectory, rng: random.Random) -> Trajectory | None:
    """Call a tool the task does not have, under another domain's or a misspelt name."""
    def rename(call: str) -> str | None:
        names = unknown_tool_names(task, parse_call(call).name)
        return with_tool_name(call, rng.choice(names)) if names else None

    return _replace_call(trajectory, rng, rename)


MUTATIONS: dict[str, Callable[[Task, Trajectory, random.Random], Trajectory | None]] = {
    "drop_call": drop_call,
    "duplicate_call": duplicate_call,
    "reorder_within_turn": reorder_within_turn,
    "reorder_across_turns": reorder_across_turns,
    "exploratory_call": exploratory_call,
    "wrong_argument": wrong_argument,
    "positional_arguments": positional_arguments,
    "split_steps": split_steps,
    "empty_turn": empty_turn,
    "missing_turns": missing_turns,
    "unknown_tool": unknown_tool,
}
COMBINED = "combined"  # kind prefix of two mutations applied in sequence: "combined:a+b"


def apply_mutations(task: Task, kinds: Iterable[str], rng: random.Random) -> Trajectory | None:
    """The ground truth with the given kinds applied in order; None if one of them changes nothing."""
    trajectory = ground_truth_trajectory(task)
    for kind in kinds:
        mutated = MUTATIONS[kind](task, _copy(trajectory), rng)
        if mutated is None or mutated == trajectory:
            return None
        trajectory = mutated
    return trajectory


def mutate_trajectory(task: Task, rng: random.Random) -> tuple[str, Trajectory]:
    """One mutated trajectory of `task` and its kind: one of `MUTATIONS`, or "combined:a+b".

    Each kind, and a combination of two, is equally likely; a kind that cannot change this task
    (say, reordering a task of single-call turns) gives way to the next one in a shuffled order.
    """
    kinds = list(MUTATIONS)
    combine = rng.randrange(len(kinds) + 1) == 0
    rng.shuffle(kinds)
    singles = [[kind] for kind in kinds]
    pairs = [kinds[index:index + 2] for index in range(len(kinds) - 1)] if combine else []
    for plan in pairs + singles:
        trajectory = apply_mutations(task, plan, rng)
        if trajectory is not None:
            kind = plan[0] if len(plan) == 1 else f"{COMBINED}:{'+'.join(plan)}"
            return kind, trajectory
    raise EnvtuneError(f"no mutation applies to {task.id}")
