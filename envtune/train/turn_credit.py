"""TRL's `GRPOTrainer` with turn-level credit (`credit: turn`): each completion token's advantage is
its turn's (`envtune.curriculum.credit`), handed to TRL's loss as a (batch, tokens) tensor, the shape TRL
accepts from subclasses in place of one advantage per sequence. Everything else is TRL's."""

from __future__ import annotations

import torch
from trl import GRPOTrainer

from envtune.curriculum.credit import batch_token_advantages


class TurnCreditGRPOTrainer(GRPOTrainer):
    """GRPO whose advantages are per turn; `turn_weight` mixes each turn's progress with the episode
    reward (see `envtune.curriculum.credit`). The rollouts come from the `EpisodeRollouts` it plays."""

    def __init__(self, *args, turn_weight: float, **kwargs):
        super().__init__(*args, **kwargs)
        if self.scale_rewards not in ("group", "none"):
            raise ValueError(f"credit: turn normalizes within each group (scale_rewards group or none), not {self.scale_rewards!r}")
        self.turn_weight = turn_weight

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        rollouts = self.rollout_func.last_batch  # the episodes of this batch, in the order of its rows
        length = output["completion_ids"].shape[1]
        advantages = batch_token_advantages(rollouts, self.num_generations, self.turn_weight,
                                            scale=self.scale_rewards == "group", length=length)
        output["advantages"] = torch.tensor(advantages, dtype=torch.float32, device=output["completion_ids"].device)
        return output
