"""Generation backends: token ids in, token ids out.

The rollout engine only needs `generate(requests, sampling) -> completions`: each completion is a
list of token ids, or a `Completion` (a list of token ids that also carries the sampler's per-token
log-probs). A backend may keep state per episode between calls (a KV cache): it then has a
`release()` method, which the engine calls when its episodes are over.

`HFBackend` runs Hugging Face transformers with one batched, left-padded `generate` per call: every
call reads each request whole, which suits independent requests (`envtune serve`). Rollouts use
`envtune.rollout.cached.CachedHFBackend`, which keeps each episode's KV cache from round to round.
Both sample with the settings they are given and nothing else: not the model's own
`generation_config`, which instruct models ship with settings such as a repetition penalty.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0: no top-k filtering
    do_sample: bool = True
    seed: int | None = None


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: Sequence[int]
    episode_index: int  # which episode of the batch asks (scripted backends answer per episode; others ignore it)
    max_new_tokens: int | None = None  # this request's cap (what is left of its budget); None: the sampling's

    def cap(self, sampling: SamplingParams) -> int:
        """The most tokens this request's completion may have under `sampling`."""
        return self.max_new_tokens or sampling.max_new_tokens


class Completion(list):
    """A completion's token ids (it is the list) with the log-probability the sampler gave each one."""

    def __init__(self, token_ids: Sequence[int], logprobs: Sequence[float]):
        super().__init__(token_ids)
        if len(logprobs) != len(token_ids):
            raise ValueError(f"{len(logprobs)} log-probs for {len(token_ids)} tokens")
        self.logprobs = list(logprobs)


def completion_logprobs(completion: Sequence[int]) -> list[float] | None:
    """The per-token log-probs a backend reported with a completion, if it did."""
    return completion.logprobs if isinstance(completion, Completion) else None


class GenerationBackend(Protocol):
    end_token_ids: Sequence[int]  # what ends a completion: the tokenizer's (the chat template's) end token first

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[list[int]]:
        """One completion per request, without padding, at most its `max_new_tokens` long, ending at
        (and including) an end token when the model produced one; a `Completion` when the backend
        reports log-probs."""


def end_token_ids(generation_config, tokenizer) -> tuple[int, ...]:
    """The tokenizer's end token (the chat template's end of a turn), then every other end token
    the model's generation config declares: instruct models list several (Qwen2.5 also stops at
    <|endoftext|>), and sampling stops at any of them, as TRL's and vLLM's generation do."""
    declared = generation_config.eos_token_id if generation_config is not None else None
    declared = [] if declared is None else [declared] if isinstance(declared, int) else list(declared)
    return tuple(dict.fromkeys([tokenizer.eos_token_id, *declared]))


class HFBackend:
    """Batched generation with a transformers causal LM, with the given sampling settings only."""

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.end_token_ids = end_token_ids(model.generation_config, tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[list[int]]:
        completions: list[list[int]] = []
        with inference(self.model, sampling.seed) as device:
            for start in range(0, len(requests), self.batch_size):
                completions += self._generate_batch(requests[start:start + self.batch_size], sampling, device)
        return completions

    def _generate_batch(self, chunk: Sequence[GenerationRequest], sampling: SamplingParams, device) -> list[list[int]]:
        import torch

        batch = [list(request.prompt_ids) for request in chunk]
        caps = [request.cap(sampling) for request in chunk]
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[self.pad_token_id] * (width - len(ids)) + ids for ids in batch], device=device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
        config = self._generation_config(sampling, max(caps))
        with _only_generation_config(self.model, config):
            output = self.model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config)
        return [_until_end(row[:cap], self.end_token_ids) for row, cap in zip(output[:, width:].tolist(), caps)]

    def _generation_config(self, sampling: SamplingParams, max_new_tokens: int):
        from transformers import GenerationConfig

        sampled = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k}
        return GenerationConfig(
            max_new_tokens=max_new_tokens, do_sample=sampling.do_sample, **(sampled if sampling.do_sample else {}),
            eos_token_id=list(self.end_token_ids), pad_token_id=self.pad_token_id, use_cache=True,
        )


@contextmanager
def inference(model, seed: int | None) -> Iterator["torch.device"]:
    """The model in eval mode without gradients, for one generation call; yields its device. Seeded
    sampling runs on a forked random state, so the state the trainer seeded (TRL seeds each process
    and restores it on resume) goes on as if nothing had been drawn."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        cuda = [device] if device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=cuda, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            yield device
    finally:
        model.train(was_training)


@contextmanager
def _only_generation_config(model, config) -> Iterator[None]:
    """transformers fills every setting a generation config leaves unset from the model's own
    `generation_config` (an instruct model's repetition penalty, top-k, min-p, ...), which would
    change sampling and validation behind the stage's back. For the call, the model's config is
    `config` itself, so only it and transformers' neutral defaults apply."""
    target = model.get_base_model() if hasattr(model, "get_base_model") else model  # under a PEFT wrapper
    own = target.generation_config
    target.generation_config = config
    try:
        yield
    finally:
        target.generation_config = own


def _until_end(ids: list[int], end_token_ids: Sequence[int]) -> list[int]:
    """Cut a generated row after its first end token (the rest is padding)."""
    return next((ids[: index + 1] for index, token in enumerate(ids) if token in end_token_ids), ids)
