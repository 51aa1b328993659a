"""Error-recovery episodes: the oracle with one seeded mistake it then makes right.

In a recovery episode one turn starts with a reply that makes the turn's ground-truth calls up to one
of them, that one wrong (a wrong argument value or a tool that does not exist). The environment
answers as it answers any model: the official error text and, with augmented feedback, the hint.
The next reply makes the failed call right together with the rest of the turn's calls, and the
oracle goes on as usual. Only mistakes whose wrong call the environment answers with an error, and
after which the episode still reaches the oracle's outcome, are used.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Sequence

from envtune.bfcl.calls import parse_call
from envtune.bfcl.mutations import seen_values, unknown_tool_names, with_tool_name, with_wrong_argument
from envtune.bfcl.tasks import Task
from envtune.env.episode import Episode, EpisodeConfig
from envtune.env.oracle import calls_reply, oracle_reply
from envtune.errors import EnvtuneError
from envtune.feedback.core import error_message

MISTAKE_KINDS = ("wrong_argument", "unknown_tool")
MIN_STEPS_PER_TURN = 2  # the wrong reply and its correction share one turn


@dataclass(frozen=True)
class Mistake:
    """Ground-truth call `index` of `turn` made wrong (`call`), in the turn's first reply."""

    turn: int
    index: int
    call: str
    kind: str  # one of MISTAKE_KINDS


def scripted_reply(episode: Episode, mistake: Mistake | None) -> tuple[str, bool]:
    """The next reply of the oracle with `mistake` (None: the plain oracle), and whether it is one to
    learn from (False for the reply that makes the mistake)."""
    if mistake is None or episode.turn != mistake.turn or episode.step_in_turn >= MIN_STEPS_PER_TURN:
        return oracle_reply(episode), True
    calls = episode.task.ground_truth[mistake.turn]
    if episode.step_in_turn == 0:
        return calls_reply(episode, [*calls[:mistake.index], mistake.call]), False
    return calls_reply(episode, calls[mistake.index:]), True


@dataclass(frozen=True)
class Rehearsal:
    """A scripted episode played at the message level: what a mistake must preserve and provoke."""

    turn_successes: tuple[bool, ...]
    error: str | None  # the environment's error for the wrong call; None when it succeeded (or no mistake)


def rehearse(task: Task, config: EpisodeConfig, mistake: Mistake | None) -> Rehearsal:
    """Play `task` with the scripted replies and report its per-turn outcome and the wrong call's error."""
    error = None
    with Episode(task, config) as episode:
        episode.reset()
        while not episode.done:
            text, trained = scripted_reply(episode, mistake)
            episode.step(text)
            if not trained:  # the wrong call came last in its reply: its result is the last one
                error = error_message(episode.checker.session_results[-1], parse_call(mistake.call).name)
        return Rehearsal(tuple(episode.turn_successes), error)


def _wrong_call(kind: str, task: Task, call: str, rng: random.Random, seen: Sequence[Any]) -> str | None:
    if kind == "wrong_argument":
        return with_wrong_argument(call, rng, seen)
    names = unknown_tool_names(task, parse_call(call).name)
    return with_tool_name(call, rng.choice(names)) if names else None


def check_recovery(config: EpisodeConfig, rate: float) -> None:
    """Recovery examples (`rate` per task) need room for the wrong reply and its correction in one turn."""
    if rate > 0 and config.max_steps_per_turn < MIN_STEPS_PER_TURN:
        raise EnvtuneError(f"--recovery needs --max-steps-per-turn of at least {MIN_STEPS_PER_TURN} (a wrong reply, "
                           f"then its correction), not {config.max_steps_per_turn}; raise it or drop --recovery")


def find_mistake(task: Task, config: EpisodeConfig, rng: random.Random) -> Mistake | None:
    """A seeded mistake in `task` that the environment answers with an error and after which the
    episode still ends as the oracle's does; None when no call of the task allows one."""
    expected = rehearse(task, config, None).turn_successes
    seen = seen_values(task)
    positions = [(turn, index) for turn, calls in enumerate(task.ground_truth) for index in range(len(calls))]
    rng.shuffle(positions)
    for turn, index in positions:
        for kind in rng.sample(MISTAKE_KINDS, len(MISTAKE_KINDS)):
            wrong = _wrong_call(kind, task, task.ground_truth[turn][index], rng, seen)
            if wrong is None:
                continue
            mistake = Mistake(turn, index, wrong, kind)
            rehearsal = rehearse(task, config, mistake)
            if rehearsal.error is not None and rehearsal.turn_successes == expected:
                return mistake
    return None
