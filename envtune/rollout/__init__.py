"""Rollouts: many episodes at once against a generation backend, token in / token out."""

from envtune.rollout.generation import GenerationBackend, GenerationRequest, HFBackend, SamplingParams
from envtune.rollout.engine import ChatRenderer, Rollout, RolloutEngine

__all__ = ["ChatRenderer", "GenerationBackend", "GenerationRequest", "HFBackend", "Rollout", "RolloutEngine", "SamplingParams"]
