"""Episodes: one BFCL multi-turn task as a chat environment with protocols, feedback and rewards."""

from envtune.env.episode import FEEDBACK_MODES, Episode, EpisodeConfig, StepResult
from envtune.env.protocols import PROTOCOLS, ParsedResponse, parse
from envtune.env.record import EpisodeRecord
from envtune.env.rewards import REWARDS, reward

__all__ = [
    "FEEDBACK_MODES", "PROTOCOLS", "REWARDS", "Episode", "EpisodeConfig", "EpisodeRecord",
    "ParsedResponse", "StepResult", "parse", "reward",
]
