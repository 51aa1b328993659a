"""A scripted oracle that plays an episode with the ground truth, to check the environment itself.

Per turn it sends every ground-truth call in one step, then answers; on turns whose ground truth is
empty it answers at once. It replies in the envtune or the prompt protocol (the calls as a Python
list with keyword arguments, the answer as plain text). Driving every task this way must reach
progress 1.0 in both feedback modes and both protocols: anything less is a bug in the episode, the
executor or the checker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

from envtune.bfcl.tasks import Task
from envtune.env.episode import Episode, EpisodeConfig
from envtune.errors import EnvtuneError

ANSWER = "<think>The request is handled.</think><answer>Done.</answer>"
PROMPT_ANSWER = "The request is handled."  # prompt mode: any reply that is not a list of calls answers
ORACLE_PROTOCOLS = ("envtune", "prompt")


def _protocol(episode: Episode) -> str:
    protocol = episode.config.protocol
    if protocol not in ORACLE_PROTOCOLS:
        raise EnvtuneError(f"the oracle replies in the {' or '.join(ORACLE_PROTOCOLS)} protocol, not {protocol!r}")
    return protocol


def oracle_reply(episode: Episode) -> str:
    """The oracle's next reply, in the episode's protocol (envtune or prompt)."""
    protocol = _protocol(episode)
    calls = episode.task.ground_truth[episode.turn]
    if not calls or episode.step_in_turn > 0:
        return ANSWER if protocol == "envtune" else PROMPT_ANSWER
    return calls_reply(episode, calls)


def calls_reply(episode: Episode, calls: Sequence[str]) -> str:
    """A reply that makes `calls` (call strings) in one step, in the episode's protocol (envtune or
    prompt), written as the oracle writes its calls."""
    protocol = _protocol(episode)
    structured = [episode.checker.session.describe(call) for call in calls]
    if protocol == "prompt":
        return "[" + ", ".join(call.to_python() for call in structured) + "]"
    payload = json.dumps([{"name": call.name, "arguments": call.arguments} for call in structured])
    return f"<think>Run the calls this request needs.</think><tool_call>{payload}</tool_call>"


@dataclass(frozen=True)
class OracleOutcome:
    task_id: str
    progress: float
    failures: tuple[str, ...]  # reasons of the turns that did not succeed


def replay(task: Task, config: EpisodeConfig) -> OracleOutcome:
    """Play one task with the oracle and report its progress and any failed turn."""
    with Episode(task, config) as episode:
        episode.reset()
        while not episode.done:
            episode.step(oracle_reply(episode))
        failures = tuple(
            f"turn {verdict.turn}: {verdict.reason}" for verdict in episode.turn_verdicts if not verdict.passed
        )
        return OracleOutcome(task.id, episode.reward("progress"), failures)
