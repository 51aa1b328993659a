"""Drive many episodes at once against a generation backend, token in / token out.

Each round sends every active episode's token sequence to the backend in one call and feeds each
reply (and its log-probs, when the backend reports them) to its `TokenDriver`
(`envtune.rollout.driver`, which owns the budget and the stepping rules). Environment tokens are
the chat template's rendering of the new messages after the model's end token, so every prefix
equals what the template renders for the same messages.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from envtune.env.episode import Episode
from envtune.errors import EnvtuneError
from envtune.rollout.driver import Rollout, TokenDriver
from envtune.rollout.generation import GenerationBackend, GenerationRequest, SamplingParams, completion_logprobs

Message = dict[str, Any]


class ChatRenderer:
    """The tokenizer's chat template as text and as token ids."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.eos_text = tokenizer.decode([tokenizer.eos_token_id])

    def text(self, messages: Sequence[Message], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_all(self, texts: Sequence[str]) -> list[list[int]]:
        """Several texts in one call, which a fast tokenizer spreads over the CPU's cores."""
        return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"] if texts else []

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
        try:
            return self._run(episodes)
        finally:
            release = getattr(self.backend, "release", None)  # a backend that caches per episode frees it
            if release is not None:
                release()

    def _run(self, episodes: Sequence[Episode]) -> list[Rollout]:
        prompts = [self.renderer.text(episode.reset(), add_generation_prompt=True) for episode in episodes]
        distinct = list(dict.fromkeys(prompts))  # the rollouts of a group share their prompt: encode it once
        encoded = dict(zip(distinct, self.renderer.encode_all(distinct)))
        drivers = [TokenDriver(episode, encoded[prompt], self.tokenizer, self.max_completion_tokens,
                               self.backend.end_token_ids) for episode, prompt in zip(episodes, prompts)]
        round_number = 0
        while True:
            limits = {index: driver.reply_limit(self.sampling.max_new_tokens)
                      for index, driver in enumerate(drivers) if not driver.done}
            active = [index for index in limits if not drivers[index].done]
            if not active:
                break
            seed = None if self.sampling.seed is None else self.sampling.seed + round_number
            requests = [GenerationRequest(drivers[index].token_ids, index, limits[index]) for index in active]
            outputs = self.backend.generate(requests, replace(self.sampling, seed=seed))
            for index, generated in zip(active, outputs):
                driver = drivers[index]
                answer = driver.add_reply(generated, completion_logprobs(generated))
                if answer is not None:
                    driver.add_environment(self.renderer.environment_delta(answer.before, answer.messages))
            round_number += 1
        return [driver.rollout() for driver in drivers]
