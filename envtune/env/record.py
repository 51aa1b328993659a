"""The episode record: one frozen snapshot of everything a reward, a log line or a report reads.

An `Episode` produces it (`episode.record`, and on every `StepResult`); whoever played the episode
adds what only it knows (tokens, truncation) with `with_tokens`. Rewards are pure functions of it
(`envtune.env.rewards`), `metrics()` is what trainers log per episode, and `to_json()` is how run
files store it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from envtune.bfcl.scoring import TurnVerdict
from envtune.env.rewards import REWARDS, reward


@dataclass(frozen=True)
class HintUse:
    """An augmented hint the episode showed: where, and which rule wrote it."""

    turn: int
    step: int
    kind: str


@dataclass(frozen=True)
class EpisodeRecord:
    """What happened in one episode so far (or in all of it, once it is done)."""

    num_turns: int
    turn_successes: tuple[bool, ...]  # one per turn closed so far, in order
    responses: int = 0  # replies the policy gave
    format_violations: int = 0  # replies that broke the protocol's format
    valid_calls: int = 0  # calls of a tool shown at that turn, with arguments its schema accepts
    invalid_calls: int = 0  # every other call (unknown tool, bad arguments)
    task_id: str = ""
    category: str = ""
    step: int = 0  # replies so far in the turn being played
    done: bool = False
    force_quit: bool = False  # official turn rules: a turn went past the step limit
    turn_verdicts: tuple[TurnVerdict, ...] = ()
    hints: tuple[HintUse, ...] = ()
    hint_rule_errors: int = 0  # hint rules that raised instead of answering (a bug in the rule)
    # Known to whoever played the episode, not to the episode itself:
    model_tokens: int = 0  # tokens the policy generated
    total_tokens: int = 0  # the longest context the episode needed (prompt and completion)
    truncated: bool = False  # the token budget ended the episode before its last turn closed

    @property
    def turn(self) -> int:
        """The turn being played (every closed turn has a success entry)."""
        return len(self.turn_successes)

    @property
    def tool_calls(self) -> int:
        return self.valid_calls + self.invalid_calls

    def with_tokens(self, model_tokens: int, total_tokens: int, truncated: bool = False) -> "EpisodeRecord":
        """This record with the token counts of the player that produced it."""
        return replace(self, model_tokens=model_tokens, total_tokens=total_tokens, truncated=truncated)

    def reward(self, name: str) -> float:
        return reward(name, self)

    def rewards(self) -> dict[str, float]:
        """Every named reward of the episode."""
        return {name: self.reward(name) for name in REWARDS}

    def metrics(self) -> dict[str, float]:
        """The per-episode numbers a practitioner watches, as floats (TRL and veRL average them)."""
        return {
            "acc": self.reward("binary"),
            "progress": self.reward("progress"),
            "format_reward": self.reward("format"),
            "turn_success_rate": sum(self.turn_successes) / max(len(self.turn_successes), 1),
            "format_error_rate": self.format_violations / max(self.responses, 1),
            "tool_calls": float(self.tool_calls),
            "hints": float(len(self.hints)),
            "hint_rule_errors": float(self.hint_rule_errors),
            "rounds": float(self.responses),
            "model_tokens": float(self.model_tokens),
            "truncated": float(self.truncated),
        }

    def to_json(self) -> dict[str, Any]:
        """The record as plain JSON values (verdicts and hints as objects)."""
        document = asdict(self)
        document["turn_successes"] = list(self.turn_successes)
        return document


METRIC_NAMES = tuple(EpisodeRecord(num_turns=1, turn_successes=()).metrics())
