"""Rollouts: episodes played token in / token out (or message by message) against a generator."""

from envtune.rollout.driver import ChatDriver, Rollout, TokenDriver
from envtune.rollout.lockstep import ChatRenderer, RolloutEngine
from envtune.rollout.generation import Completion, GenerationBackend, GenerationRequest, HFBackend, SamplingParams
from envtune.rollout.vllm import VLLMBackend

__all__ = [
    "ChatDriver", "ChatRenderer", "Completion", "GenerationBackend", "GenerationRequest", "HFBackend", "Rollout", "RolloutEngine",
    "SamplingParams", "TokenDriver", "VLLMBackend",
]
