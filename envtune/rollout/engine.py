"""Drive many episodes at once against a generation backend, token in / token out.

Each episode becomes one token sequence: `prompt_ids` (the chat template's rendering of the system
prompt and first request, with the assistant header) and `completion_ids` (the model's replies and
the environment's messages after it, in order), with `env_mask` marking which completion tokens the
model wrote (1) and which the environment added (0, excluded from the loss). The model's tokens are
kept exactly as generated; environment tokens are the template's rendering of the new messages, so
every prefix equals what the chat template renders for the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from envtune.env.episode import Episode
from envtune.env.rewards import REWARDS
from envtune.rollout.generation import GenerationBackend, GenerationRequest, SamplingParams
from envtune.errors import EnvtuneError

Message = dict[str, Any]


@dataclass
class Rollout:
    """One episode as training data, plus what a person needs to read it."""

    task_id: str
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    truncated: bool = False  # hit the completion budget before the episode ended
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model_tokens(self) -> int:
        return sum(self.env_mask)


def record_outcome(rollout: Rollout, episode: Episode) -> None:
    """Store the finished episode's stage reward, every named reward and its info on the rollout."""
    rollout.reward = episode.reward()
    rollout.info = {**episode.info(), "rewards": {name: episode.reward(name) for name in REWARDS}}


class ChatRenderer:
    """The tokenizer's chat template as text and as token ids."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.eos_text = tokenizer.decode([tokenizer.eos_token_id])

    def text(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def environment_delta(self, before: Sequence[Message], added: Sequence[Message]) -> list[int]:
        """Tokens that follow the model's end token when `added` messages come after `before`
        (which ends with the assistant's reply), up to the next assistant header."""
        rendered_before = self.text(before, add_generation_prompt=False)
        rendered_after = self.text([*before, *added], add_generation_prompt=True)
        if not rendered_after.startswith(rendered_before):
            raise EnvtuneError("the chat template does not render conversations prefix by prefix; "
                             "token-in/token-out rollouts need a template that only appends")
        end = rendered_before.rfind(self.eos_text)
        if end < 0:
            raise EnvtuneError("the rendered assistant reply does not end with the tokenizer's end token")
        template_tail = rendered_before[end + len(self.eos_text):]
        return self.encode(template_tail + rendered_after[len(rendered_before):])


@dataclass
class _Running:
    index: int
    episode: Episode
    rollout: Rollout
    done: bool = False


class RolloutEngine:
    """Runs episodes in lock step: one batched generation call per round for all that are active."""

    def __init__(
        self,
        backend: GenerationBackend,
        tokenizer,
        sampling: SamplingParams = SamplingParams(),
        max_completion_tokens: int = 4096,
    ):
        self.backend = backend
        self.renderer = ChatRenderer(tokenizer)
        self.tokenizer = tokenizer
        self.sampling = sampling
        self.max_completion_tokens = max_completion_tokens

    def run(self, episodes: Sequence[Episode]) -> list[Rollout]:
        """Play every episode to its end or its token budget; returns one rollout per episode."""
        running = []
        for index, episode in enumerate(episodes):
            if episode.config.protocol == "native":
                raise EnvtuneError("token-in/token-out rollouts support the envtune and prompt protocols, not native")
            messages = episode.reset()
            prompt_ids = self.renderer.encode(self.renderer.text(messages, add_generation_prompt=True))
            running.append(_Running(index, episode, Rollout(episode.task.id, prompt_ids, messages=messages)))
        round_number = 0
        while active := [item for item in running if not item.done]:
            seed = None if self.sampling.seed is None else self.sampling.seed + round_number
            requests = [GenerationRequest(item.rollout.prompt_ids + item.rollout.completion_ids, item.index) for item in active]
            outputs = self.backend.generate(requests, replace(self.sampling, seed=seed))
            for item, generated in zip(active, outputs):
                self._advance(item, generated)
            round_number += 1
        for item in running:
            record_outcome(item.rollout, item.episode)
        return [item.rollout for item in running]

    def _budget(self, rollout: Rollout) -> int:
        return self.max_completion_tokens - len(rollout.completion_ids)

    def _extend(self, rollout: Rollout, ids: Sequence[int], mask: int) -> bool:
        """Append tokens within the budget; False (and truncated) when they did not all fit."""
        room = self._budget(rollout)
        rollout.completion_ids.extend(ids[:room])
        rollout.env_mask.extend([mask] * min(len(ids), room))
        if len(ids) > room:
            rollout.truncated = True
            return False
        return True

    def _advance(self, item: _Running, generated: Sequence[int]) -> None:
        rollout, eos = item.rollout, self.backend.eos_token_id
        if not self._extend(rollout, generated, mask=1):
            item.done = True
            return
        if not generated or generated[-1] != eos:  # cut by max_new_tokens: close the reply for the model
            if not self._extend(rollout, [eos], mask=0):
                item.done = True
                return
        body = generated[:-1] if generated and generated[-1] == eos else generated
        reply = {"role": "assistant", "content": self.tokenizer.decode(body, skip_special_tokens=False)}
        before = [*rollout.messages, reply]
        step = item.episode.step(reply)
        rollout.messages = [*before, *step.messages]
        if step.done:
            item.done = True
            return
        if not self._extend(rollout, self.renderer.environment_delta(before, step.messages), mask=0):
            item.done = True
