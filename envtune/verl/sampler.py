"""Zero-variance groups on veRL: veRL's own group filter (DAPO's dynamic sampling in its sync v1 replay
buffer) with the bound envtune's `max_extra_rollouts` puts on it.

veRL's filter evicts every finished group whose rewards are all equal and refills from the data
until the batch is full, with no limit: a model that fails every task would never finish a step.
`BoundedGroupFilter` evicts such a group only while the step's extra-rollout budget can pay for
its replacement (budget // rollouts per task groups per step) and dispatches no refill past the
budget; the flat groups it keeps train as played, as on the TRL engine. Under turn credit a group
is flat only when its turn outcomes are alike too (`StageConfig.flat_by_turn`): equal rewards alone
still give its turns advantages. Each step logs, under the
TRL engine's names, `rewards/flat_groups/mean` (the share of the step's finished groups that were
flat) and `rewards/extra_rollouts/mean` (the rollouts of the refills, surplus ones included).

A stage with `zero_variance: resample` launches with `algorithm.filter_groups.enable=true` (so veRL
feeds refills one task at a time) and this class as `trainer.v1.sampler.custom_sampler`, its
settings in `trainer.v1.sampler.sampler_kwargs`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import transfer_queue as tq
from verl.trainer.ppo.v1.replay_buffer import FILTER_GROUPS_REWARD_METRIC, ReplayBuffer

from envtune.curriculum.credit import turns_alike
from envtune.verl.credit import TrajectoryTurns

MODULE = "pkg://envtune.verl.sampler"
FLAT_GROUPS = "rewards/flat_groups/mean"
EXTRA_ROLLOUTS = "rewards/extra_rollouts/mean"


class BoundedGroupFilter(ReplayBuffer):
    """veRL's sync replay buffer with its group filter on, bounded per step (see the module docstring).

    sampler_kwargs: tasks_per_step, rollouts_per_task (veRL's rollout.n), max_extra_rollouts,
    flat_by_turn."""

    def __init__(self, *, sampler_kwargs: Any, refill_fn: Callable[[int], Any] | None = None, **kwargs: Any):
        settings = dict(sampler_kwargs)
        self.rollouts_per_task = int(settings["rollouts_per_task"])
        self.refill_budget = int(settings["max_extra_rollouts"]) // self.rollouts_per_task  # tasks per step
        self.flat_by_turn = bool(settings.get("flat_by_turn", False))
        self._dispatch = refill_fn
        super().__init__(sampler_kwargs=sampler_kwargs, refill_fn=self._refill if refill_fn else None,
                         filter_groups_metric=FILTER_GROUPS_REWARD_METRIC, train_batch_size=int(settings["tasks_per_step"]),
                         gen_batch_size=1, **kwargs)
        self._new_step()

    def _new_step(self) -> None:
        self.refilled, self.evicted = 0, 0
        self._turns_alike: dict[str, bool] = {}  # per group with equal rewards, under turn credit
        self.flat: set[str] = set()
        self.finished: set[str] = set()

    def _refill(self, count: int) -> None:
        """veRL asks for two tasks per group it evicts; this dispatches no more than the budget pays for."""
        count = min(count, self.refill_budget - self.refilled)
        if count > 0:
            self.refilled += count
            self._dispatch(count)

    def _terminal_eviction_reasons(self, global_steps: int, partition_id: str) -> tuple[set[str], set[str], set[str], Counter]:
        stale, flat, failed, _ = super()._terminal_eviction_reasons(global_steps, partition_id)
        if partition_id == "val":
            return stale, flat, failed, Counter()
        if self.flat_by_turn:
            flat = {uid for uid in flat if self._turns_are_alike(uid, partition_id)}
        self.flat |= flat
        self.finished |= self.finished_keys[partition_id]
        # evict only groups whose replacement the budget still pays for; the others train as played
        evict = set(sorted(flat)[:max(self.refill_budget - self.evicted, 0)])
        self.evicted += len(evict)
        rewards = self._dapo_classification_cache[partition_id]
        return stale, evict, failed, Counter(rewards[uid] for uid in evict)

    def _turns_are_alike(self, uid: str, partition_id: str) -> bool:
        """Whether the trajectories of a group with equal rewards also passed the same turns."""
        if uid not in self._turns_alike:
            keys = [key for key in self.partitions[partition_id] if key.split("_")[0] == uid]
            stored = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=["extra_fields"])["extra_fields"]
            turns = [TrajectoryTurns.from_extra_fields(fields) for fields in stored]
            self._turns_alike[uid] = turns_alike([trajectory.successes for trajectory in turns], turns[0].num_turns)
        return self._turns_alike[uid]

    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[Any, dict]:
        batch, metrics = super().sample(global_steps, partition_id, batch_size)
        if partition_id != "val":
            metrics[FLAT_GROUPS] = len(self.flat) / max(len(self.finished), 1)
            metrics[EXTRA_ROLLOUTS] = float(self.refilled * self.rollouts_per_task)
            self._new_step()
        return batch, metrics
