"""GRPO on one machine through TRL's `GRPOTrainer`, with envtune episodes as the rollouts.

TRL hands `rollout_func` the prompts of a batch (each task id repeated `num_generations` times);
we play each as an episode with the rollout engine against the policy being trained and return
token ids, the loss mask (environment tokens get no loss) and the episode record's metrics as
extra fields. The stage's reward is one of those fields, read back by `episode_reward`.

Episodes generate with `rollout_backend`: through TRL's vLLM engine when the trainer has one
(`use_vllm`), whose per-token log-probs go back to TRL for its importance-sampling correction,
else with transformers on the policy itself, each episode's KV cache kept from round to round
(`envtune.rollout.cached`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Callable, Sequence

from envtune.bfcl.tasks import Task
from envtune.curriculum.credit import group_without_signal
from envtune.env.episode import Episode, EpisodeConfig
from envtune.env.record import METRIC_NAMES
from envtune.errors import EnvtuneError
from envtune.rollout import GenerationBackend, Rollout, RolloutEngine, SamplingParams, VLLMBackend
from envtune.rollout.cached import hf_backend
from envtune.rollout.generation import end_token_ids

# Per-episode numbers passed to reward functions and logged (TRL forwards extra fields as kwargs):
# the stage reward, then the episode record's metrics, then two numbers of the whole batch (the same
# on every row): the share of its groups whose rewards were all equal when first played, and the
# rollouts played to replace them (`zero_variance: resample`).
EPISODE_FIELDS = ("episode_reward", *METRIC_NAMES)
BATCH_FIELDS = ("flat_groups", "extra_rollouts")
LOGGED_FIELDS = (*EPISODE_FIELDS, *BATCH_FIELDS)  # every extra field a rollout_func returns


def episode_numbers(rollout: Rollout) -> dict[str, float]:
    """The extra fields of one episode, by EPISODE_FIELDS name."""
    return {"episode_reward": rollout.reward, **rollout.record.metrics()}


def groups(prompts: Sequence[str]) -> list[range]:
    """The positions of each group: TRL lays a batch out task by task, each task's rollouts together."""
    spans, start = [], 0
    for index in range(1, len(prompts) + 1):
        if index == len(prompts) or prompts[index] != prompts[start]:
            spans.append(range(start, index))
            start = index
    return spans


def is_flat(rollouts: Sequence[Rollout], by_turn: bool = False) -> bool:
    """A group whose advantage is 0, so it teaches nothing: its rewards are all equal (and, with
    `by_turn`, under turn credit, its turn outcomes too)."""
    return group_without_signal([rollout.record.turn_successes for rollout in rollouts],
                                [rollout.reward for rollout in rollouts], rollouts[0].record.num_turns, by_turn)


def rollout_backend(trainer, tokenizer, batch_size: int) -> GenerationBackend:
    """The backend that plays a trainer's episodes (training and validation) with its current
    weights: TRL's vLLM engine when the trainer uses one, else transformers on the policy."""
    if not getattr(trainer, "use_vllm", False):
        return hf_backend(trainer.model, tokenizer, batch_size)
    sync_vllm_weights(trainer)
    generation = trainer.vllm_generation
    ends = end_token_ids(trainer.model.generation_config, tokenizer)
    if generation.mode == "colocate":
        return VLLMBackend(ends, llm=generation.llm)
    return VLLMBackend(ends, client=generation.vllm_client)


def sync_vllm_weights(trainer) -> None:
    """Load the policy's weights into vLLM unless it has this step's already. TRL syncs only before
    generating a training batch and records the step it loaded; validation after an optimizer step
    (or before the first batch) needs the same, and recording it spares TRL a second sync."""
    if trainer.state.global_step != trainer._last_loaded_step:
        trainer.vllm_generation.sync_weights()
        trainer._last_loaded_step = trainer.state.global_step


@dataclass
class EpisodeRollouts:
    """A TRL `rollout_func`: plays the batch's tasks as episodes with the policy being trained."""

    tasks: dict[str, Task]
    tokenizer: Any
    episode_config: EpisodeConfig
    sampling: SamplingParams
    max_completion_tokens: int
    generation_batch_size: int = 16
    # Builds the generation backend from (policy, tokenizer, batch size) instead of `rollout_backend`,
    # e.g. to script replies in tests.
    backend_factory: Callable[[Any, Any, int], GenerationBackend] | None = None
    on_rollouts: Callable[[list[Rollout]], None] | None = None  # e.g. write samples to the run directory
    # `zero_variance: resample`: a group whose rewards are all equal is replaced by a group of the next
    # of these tasks (the stage's, in order, not in the batch) that scores unequally, playing at most
    # `max_extra_rollouts` more rollouts per batch; 0 keeps every group as played.
    replacement_ids: Sequence[str] = ()
    max_extra_rollouts: int = 0
    flat_by_turn: bool = False  # StageConfig.flat_by_turn
    _step: int = field(default=-1, init=False)  # the trainer's global step at the last batch
    _batches_in_step: int = field(default=0, init=False)  # the last batch's place among those of its step
    episodes: list[Episode] = field(default_factory=list, init=False)  # the batch being played
    last_batch: list[Rollout] = field(default_factory=list, init=False)  # its rollouts, once played (turn credit)

    def __call__(self, prompts: Sequence[str], trainer) -> dict[str, Any]:
        unknown = [prompt for prompt in prompts if prompt not in self.tasks]
        if unknown:
            raise EnvtuneError(f"rollout prompts must be BFCL task ids; got {unknown[0]!r}")
        seed = None if self.sampling.seed is None else self.sampling.seed + 1000 * self._batch_number(trainer)
        backend = (rollout_backend(trainer, self.tokenizer, self.generation_batch_size) if self.backend_factory is None
                   else self.backend_factory(trainer.model, self.tokenizer, self.generation_batch_size))
        rollouts = self._play(list(prompts), backend, seed)
        spans = groups(prompts)
        flat = [span for span in spans if is_flat(rollouts[span.start:span.stop], self.flat_by_turn)]
        extra = self._replace_flat_groups(rollouts, flat, prompts, backend, seed) if self.max_extra_rollouts else 0
        self.last_batch = rollouts
        if self.on_rollouts is not None:
            self.on_rollouts(rollouts)
        numbers = [episode_numbers(rollout) for rollout in rollouts]
        output: dict[str, Any] = {
            "prompt_ids": [rollout.prompt_ids for rollout in rollouts],
            "completion_ids": [rollout.completion_ids for rollout in rollouts],
            "env_mask": [rollout.loss_mask for rollout in rollouts],  # TRL's name for the loss mask
            # the sampler's log-probs, aligned with completion_ids (0.0 on environment tokens), when every reply had them
            "logprobs": (None if any(rollout.logprobs is None for rollout in rollouts)
                         else [rollout.logprobs for rollout in rollouts]),
        }
        for name in EPISODE_FIELDS:
            output[name] = [row[name] for row in numbers]
        output["flat_groups"] = [len(flat) / len(spans)] * len(rollouts)
        output["extra_rollouts"] = [float(extra)] * len(rollouts)
        return output

    def _play(self, task_ids: list[str], backend: GenerationBackend, seed: int | None) -> list[Rollout]:
        engine = RolloutEngine(backend, self.tokenizer, replace(self.sampling, seed=seed), self.max_completion_tokens)
        self.episodes = [Episode(self.tasks[task_id], self.episode_config) for task_id in task_ids]
        try:
            return engine.run(self.episodes)
        finally:
            for episode in self.episodes:
                episode.close()

    def _replace_flat_groups(self, rollouts: list[Rollout], flat: list[range], prompts: Sequence[str],
                             backend: GenerationBackend, seed: int | None) -> int:
        """Replace the flat groups of `rollouts` in place, round by round (each round plays one new task
        per group still flat, all in one lock-step batch), until none is flat, no task is left or the
        next round would pass `max_extra_rollouts`. Returns the rollouts played."""
        candidates = iter([task_id for task_id in self.replacement_ids if task_id not in set(prompts)])
        played, rounds = 0, 0
        while flat:
            size = len(flat[0])
            count = min(len(flat), (self.max_extra_rollouts - played) // size)
            tasks = list(islice(candidates, count))
            if not tasks:
                break
            rounds += 1
            replayed = self._play([task_id for task_id in tasks for _ in range(size)], backend,
                                  None if seed is None else seed + rounds)  # a batch's seeds step by 1000
            played += len(replayed)
            still_flat = []
            for index, span in enumerate(flat):
                group = replayed[index * size:(index + 1) * size]
                if index < len(tasks) and not is_flat(group, self.flat_by_turn):
                    rollouts[span.start:span.stop] = group
                else:
                    still_flat.append(span)
            flat = still_flat
        return played

    def _batch_number(self, trainer) -> int:
        """Which batch of the stage this is, from the trainer's global step, so a resumed stage goes
        on with new seeds instead of replaying those of its first batches. TRL plays at most one
        batch per accumulation step (micro-batch), so numbers never repeat."""
        step = trainer.state.global_step
        self._batches_in_step = self._batches_in_step + 1 if step == self._step else 0
        self._step = step
        return step * trainer.args.gradient_accumulation_steps + self._batches_in_step


def episode_reward(prompts, completions, episode_reward, **kwargs) -> list[float]:
    """The reward function TRL calls: the stage reward each episode already computed."""
    return list(episode_reward)


def _watched(name: str) -> Callable[..., list[float]]:
    """A zero-weight reward function that only makes TRL log one episode number (mean and std)."""

    def read(prompts, completions, **fields) -> list[float]:
        return [float(value) for value in fields[name]]

    read.__name__ = name
    return read


def make_trainer(model, tokenizer, train_task_ids: Sequence[str], rollouts: EpisodeRollouts, args, peft_config=None,
                 turn_weight: float | None = None):
    """A `GRPOTrainer` whose dataset is the stage's task ids and whose rollouts are episodes; with
    `turn_weight`, one that credits each turn (`credit: turn`, `envtune.train.turn_credit`).

    The stage reward trains; every other episode number rides along with weight 0, so it shows up
    in TRL's logs (`rewards/<name>/mean`) and TensorBoard without changing the advantage."""
    import os

    from datasets import Dataset
    from trl import GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is experimental in TRL; we pin the version
    dataset = Dataset.from_list([{"prompt": task_id} for task_id in train_task_ids])
    watched = [_watched(name) for name in LOGGED_FIELDS if name != "episode_reward"]
    args.reward_weights = [1.0] + [0.0] * len(watched)
    settings = dict(model=model, reward_funcs=[episode_reward, *watched], args=args, train_dataset=dataset,
                    processing_class=tokenizer, rollout_func=rollouts, peft_config=peft_config)
    if turn_weight is None:
        return GRPOTrainer(**settings)
    from envtune.train.turn_credit import TurnCreditGRPOTrainer

    return TurnCreditGRPOTrainer(**settings, turn_weight=turn_weight)
