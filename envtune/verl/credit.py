"""Turn-level credit on veRL: envtune's estimator (`envtune.curriculum.credit`, the formula is there)
registered as a veRL advantage estimator, and the sync trainer that hands it each trajectory's turns.

veRL calls an advantage estimator with token rewards, the response mask and the group ids only. The
turns travel with each trajectory from the agent loop (its extra fields `turn_scores`, `turn_offsets`
and `task_turns`, see `envtune.verl.agent_loop`). `TurnCreditTrainer`, veRL's sync v1 trainer in
every other respect, reads them from TransferQueue for the batch it is about to score and lends them
to the estimator for that call. A stage with `credit: turn` launches with

    algorithm.adv_estimator=envtune_turn_credit   +algorithm.turn_weight=W
    trainer.v1.trainer_mode=envtune_turn_credit
    ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=envtune.verl.credit.register

Ray starts veRL's task runner in a process of its own; the setup hook registers both names there
before veRL looks them up.

The group normalization is veRL's GRPO's (unbiased std, eps 1e-6, `norm_adv_by_std_in_grpo: false`
leaves the division out), so whenever every turn has its episode's outcome the advantages are
exactly what `adv_estimator: grpo` gives.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import transfer_queue as tq
from omegaconf import open_dict
from verl.trainer.ppo.core_algos import register_adv_est
from verl.trainer.ppo.v1 import PPOTrainerSync, register_trainer

from envtune.curriculum.config import StageConfig
from envtune.curriculum.credit import group_turn_advantages, offsets_to_turns, token_advantages
from envtune.errors import EnvtuneError

ESTIMATOR = "envtune_turn_credit"
TRAINER = "envtune_turn_credit"
SETUP_HOOK = "envtune.verl.credit.register"
VERL_EPSILON = 1e-6  # veRL's GRPO: scores / (std + 1e-6)


@dataclass(frozen=True)
class TrajectoryTurns:
    """What the estimator needs of one trajectory besides its reward."""

    successes: tuple[bool, ...]  # per turn closed
    offsets: tuple[int, ...]  # where each played turn's tokens begin in the response
    num_turns: int  # the task's

    @classmethod
    def from_extra_fields(cls, fields: Any) -> TrajectoryTurns:
        fields = getattr(fields, "data", fields)  # TransferQueue may hand back its non-tensor wrapper
        missing = [name for name in ("turn_scores", "turn_offsets", "task_turns") if name not in (fields or {})]
        if missing:
            raise EnvtuneError(f"credit: turn needs each trajectory's turns, but one came without {', '.join(missing)}: "
                               "was it played by envtune's agent loop (agent_name envtune_episode)?")
        return cls(tuple(score > 0 for score in fields["turn_scores"]), tuple(int(offset) for offset in fields["turn_offsets"]),
                   int(fields["task_turns"]))


PADDING = TrajectoryTurns(successes=(), offsets=(), num_turns=1)  # veRL's synthetic padding rows: no loss either way
_batch_turns: ContextVar[Sequence[TrajectoryTurns] | None] = ContextVar("envtune_batch_turns", default=None)


@contextmanager
def lend_turns(turns: Sequence[TrajectoryTurns]) -> Iterator[None]:
    """The estimator sees `turns` (one per row of the batch being scored) within this block."""
    token = _batch_turns.set(turns)
    try:
        yield
    finally:
        _batch_turns.reset(token)


def turn_credit_advantage(token_level_rewards: torch.Tensor, response_mask: torch.Tensor, index: Any,
                          config: Any = None, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """veRL's advantage-estimator interface: (advantages, returns), both (batch, response tokens)."""
    turns = _batch_turns.get()
    if turns is None:
        raise EnvtuneError(f"adv_estimator {ESTIMATOR} needs the turns of the batch: launch veRL with "
                           f"trainer.v1.trainer_mode={TRAINER} (envtune tune --engine verl does)")
    if len(turns) != len(index):
        raise EnvtuneError(f"{len(turns)} trajectories' turns for a batch of {len(index)} rows")
    config = config or {}
    weight = float(config.get("turn_weight", StageConfig.turn_weight))
    scale = bool(config.get("norm_adv_by_std_in_grpo", True))
    rewards = token_level_rewards.sum(-1).tolist()
    length = response_mask.shape[-1]
    groups: dict[Any, list[int]] = defaultdict(list)
    for row, group in enumerate(index):
        groups[group].append(row)
    advantages = torch.zeros_like(token_level_rewards, dtype=torch.float32)
    for rows in groups.values():
        num_turns = max(turns[row].num_turns for row in rows)
        per_turn = group_turn_advantages([turns[row].successes for row in rows], [rewards[row] for row in rows],
                                         num_turns, weight, scale, epsilon=VERL_EPSILON)
        for row, values in zip(rows, per_turn):
            positions = offsets_to_turns(turns[row].offsets, length)
            advantages[row] = torch.tensor(token_advantages(values, positions, length))
    advantages = advantages * response_mask
    return advantages, advantages


class TurnCreditTrainer(PPOTrainerSync):
    """veRL's sync trainer that lends the turns of each batch's trajectories to the estimator."""

    def __init__(self, config: Any):
        with open_dict(config):
            config.trainer.v1.trainer_mode = "sync"  # veRL's own sync trainer in every other respect
        super().__init__(config)

    def _compute_advantage(self, batch: Any, metrics: dict) -> Any:
        stored = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        turns = [PADDING if tag.get("is_padding", False) else TrajectoryTurns.from_extra_fields(fields)
                 for tag, fields in zip(batch.tags, stored["extra_fields"])]
        with lend_turns(turns):
            return super()._compute_advantage(batch, metrics)


def register() -> None:
    """Register the estimator and the trainer with veRL (Ray's worker_process_setup_hook calls this in
    every process of the job; registering twice is harmless)."""
    register_adv_est(ESTIMATOR)(turn_credit_advantage)
    register_trainer(TRAINER)(TurnCreditTrainer)
