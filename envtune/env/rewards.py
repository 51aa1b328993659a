"""Episode rewards of every curriculum stage, as pure functions of an episode record
(`envtune.env.record.EpisodeRecord`).

- format (stage 1): N responses, C_format of them malformed, C_correct / C_error calls with a known
  tool and valid / invalid arguments (a call to an unknown tool counts as invalid), I_tool = 1 if any
  call was attempted: R = I_tool * ((N - C_format) / N + C_correct / (C_correct + C_error)), in [0, 2].
- progress (stages 2-4): mean turn success over all turns of the task (unreached turns count 0), or
  over the turns reached.
- binary: 1 iff every turn of the task succeeded.
- mixed (the direct-GRPO baseline): 0.9 * progress + 0.1 * format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from envtune.errors import EnvtuneError

if TYPE_CHECKING:
    from envtune.env.record import EpisodeRecord


def format_reward(record: EpisodeRecord) -> float:
    attempted = record.valid_calls + record.invalid_calls
    if attempted == 0 or record.responses == 0:
        return 0.0
    well_formed = (record.responses - record.format_violations) / record.responses
    return well_formed + record.valid_calls / attempted


def progress_reward(record: EpisodeRecord, over: str = "all") -> float:
    """Mean turn success over all turns of the task (`over="all"`) or over the turns reached."""
    if over not in ("all", "reached"):
        raise EnvtuneError(f"progress is averaged over 'all' or 'reached' turns, not {over!r}")
    denominator = record.num_turns if over == "all" else len(record.turn_successes)
    return sum(record.turn_successes) / denominator if denominator else 0.0


def binary_reward(record: EpisodeRecord) -> float:
    complete = len(record.turn_successes) == record.num_turns
    return 1.0 if complete and all(record.turn_successes) else 0.0


def mixed_reward(record: EpisodeRecord) -> float:
    return 0.9 * progress_reward(record) + 0.1 * format_reward(record)


REWARDS: dict[str, Callable[[EpisodeRecord], float]] = {
    "format": format_reward,
    "progress": progress_reward,
    "progress_reached": lambda record: progress_reward(record, over="reached"),
    "binary": binary_reward,
    "mixed": mixed_reward,
}


def reward(name: str, record: EpisodeRecord) -> float:
    if name not in REWARDS:
        raise EnvtuneError(f"unknown reward {name!r}; choose from {', '.join(REWARDS)}")
    return REWARDS[name](record)
