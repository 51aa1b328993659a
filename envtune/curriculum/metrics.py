"""The numbers both engines report for each episode: TRL logs them as zero-weight reward columns,
veRL's agent loop as `reward_extra_info`."""

from __future__ import annotations

from envtune.rollout import Rollout

# Per-episode numbers passed to reward functions and logged (TRL forwards extra fields as kwargs).
EPISODE_FIELDS = (
    "episode_reward", "progress", "format_reward", "turn_success_rate", "format_error_rate",
    "tool_calls", "hints", "rounds", "model_tokens", "truncated",
)


def episode_numbers(rollout: Rollout) -> dict[str, float]:
    """What a practitioner watches for one episode, from its rollout."""
    info = rollout.info
    successes = info["turn_successes"]
    return {
        "episode_reward": rollout.reward,
        "progress": info["rewards"]["progress"],
        "format_reward": info["rewards"]["format"],
        "turn_success_rate": sum(successes) / max(len(successes), 1),
        "format_error_rate": info["format_violations"] / max(info["responses"], 1),
        "tool_calls": float(info["valid_calls"] + info["invalid_calls"]),
        "hints": float(len(info["hints"])),
        "rounds": float(info["responses"]),
        "model_tokens": float(rollout.model_tokens),
        "truncated": float(rollout.truncated),
    }
