"""Training examples: oracle episodes of a split played through the rollout engine.

Each task is played by `RolloutEngine` against `ScriptedBackend`, whose replies are the oracle's
(`envtune.sft.recovery.scripted_reply`), so an example is exactly the token sequence an RL rollout
of the same replies would be: the same protocol, prompt, feedback, chat template and environment
tokens. Its labels are the rollout's loss mask (the model's tokens; environment tokens get none),
less the reply of a recovery example's mistake: we never train on the wrong call.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from envtune.bfcl.tasks import Task
from envtune.env.episode import Episode, EpisodeConfig
from envtune.rollout import ChatRenderer, GenerationRequest, Rollout, RolloutEngine, SamplingParams
from envtune.sft.recovery import Mistake, check_recovery, find_mistake, scripted_reply

IGNORED = -100  # the label of a token without loss (what transformers' loss skips)


class ScriptedBackend:
    """A generation backend that answers each episode with its scripted reply, tokenized as the chat
    template renders it and closed with the end token. It notes where each reply that is not to be
    learned from lies in the sequence."""

    def __init__(self, tokenizer, episodes: Sequence[Episode], mistakes: Sequence[Mistake | None]):
        self.renderer = ChatRenderer(tokenizer)
        self.eos_token_id = tokenizer.eos_token_id
        self.end_token_ids = (self.eos_token_id,)
        self.episodes, self.mistakes = episodes, mistakes
        self.untrained: dict[int, list[tuple[int, int]]] = {}  # episode index -> (start, end) token spans

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[list[int]]:
        completions = []
        for request in requests:
            index = request.episode_index
            text, trained = scripted_reply(self.episodes[index], self.mistakes[index])
            ids = self.renderer.encode(text) + [self.eos_token_id]
            if not trained:
                start = len(request.prompt_ids)  # the reply continues the whole sequence so far
                self.untrained.setdefault(index, []).append((start, start + len(ids)))
            completions.append(ids)
        return completions


@dataclass(frozen=True)
class Example:
    """One episode as a training sequence: `labels` are the tokens with loss, IGNORED elsewhere."""

    input_ids: list[int]
    labels: list[int]
    rollout: Rollout
    mistake: Mistake | None  # set on recovery examples

    @property
    def tokens_with_loss(self) -> int:
        return sum(label != IGNORED for label in self.labels)


@dataclass(frozen=True)
class ExampleSet:
    examples: list[Example]
    truncated: list[str]  # task ids of episodes longer than the completion budget, left out
    without_mistake: list[str]  # task ids where no recovery mistake applies


def play(tasks: Sequence[Task], mistakes: Sequence[Mistake | None], tokenizer, config: EpisodeConfig,
         max_completion_tokens: int) -> list[Example]:
    """Play every task with its scripted replies through the rollout engine; one example each."""
    episodes = [Episode(task, config) for task in tasks]
    backend = ScriptedBackend(tokenizer, episodes, mistakes)
    engine = RolloutEngine(backend, tokenizer, SamplingParams(max_new_tokens=max_completion_tokens, do_sample=False),
                           max_completion_tokens)
    try:
        rollouts = engine.run(episodes)
    finally:
        for episode in episodes:
            episode.close()
    examples = []
    for index, (rollout, mistake) in enumerate(zip(rollouts, mistakes)):
        input_ids = rollout.prompt_ids + rollout.completion_ids
        mask = [0] * len(rollout.prompt_ids) + rollout.loss_mask
        for start, end in backend.untrained.get(index, []):
            mask[start:end] = [0] * (end - start)
        labels = [token if keep else IGNORED for token, keep in zip(input_ids, mask)]
        examples.append(Example(input_ids, labels, rollout, mistake))
    return examples


def recovery_plan(tasks: Sequence[Task], rate: float, seed: int) -> list[tuple[Task, random.Random]]:
    """`round(rate * len(tasks))` (task, random source) pairs: every task once, in a seeded order,
    before any task comes again, each time with a source of its own."""
    order = list(tasks)
    random.Random(f"envtune-sft-recovery:{seed}").shuffle(order)
    plan = []
    for number in range(round(rate * len(order))):
        task, repeat = order[number % len(order)], number // len(order)
        plan.append((task, random.Random(f"envtune-sft-recovery:{seed}:{task.id}:{repeat}")))
    return plan


def build_examples(tasks: Sequence[Task], tokenizer, config: EpisodeConfig, max_completion_tokens: int,
                   recovery: float = 0.0, seed: int = 0) -> ExampleSet:
    """One oracle example per task, plus `recovery` recovery examples per task (0.5: for half of
    them, 2: two each); episodes that do not fit `max_completion_tokens` are left out."""
    check_recovery(config, recovery)
    planned = [(task, None) for task in tasks]
    without_mistake = []
    for task, rng in recovery_plan(tasks, recovery, seed):
        mistake = find_mistake(task, config, rng)
        if mistake is None:
            without_mistake.append(task.id)
        else:
            planned.append((task, mistake))
    played = play([task for task, _ in planned], [mistake for _, mistake in planned], tokenizer, config,
                  max_completion_tokens)
    kept = [example for example in played if not example.rollout.truncated]
    truncated = [example.rollout.task_id for example in played if example.rollout.truncated]
    return ExampleSet(kept, truncated, without_mistake)
