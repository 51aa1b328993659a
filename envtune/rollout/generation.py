"""Generation backends: token ids in, token ids out.

The rollout engine only needs `generate(requests, sampling) -> completions`, so a vLLM, SGLang or
server backend can slot in later. `HFBackend` runs Hugging Face transformers with batched,
left-padded generation and the KV cache, on CPU or GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


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


class GenerationBackend(Protocol):
    eos_token_id: int

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[list[int]]:
        """One completion per request, without padding, at most its `max_new_tokens` long, ending at
        (and including) the end token when the model produced it."""


class HFBackend:
    """Batched generation with a transformers causal LM."""

    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[list[int]]:
        import torch

        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        completions: list[list[int]] = []
        device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(requests), self.batch_size):
                chunk = requests[start:start + self.batch_size]
                batch = [list(request.prompt_ids) for request in chunk]
                caps = [request.max_new_tokens or sampling.max_new_tokens for request in chunk]
                width = max(len(ids) for ids in batch)
                input_ids = torch.tensor([[self.pad_token_id] * (width - len(ids)) + ids for ids in batch], device=device)
                attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=device)
                with torch.no_grad():
                    output = self.model.generate(
                        input_ids=input_ids, attention_mask=attention, max_new_tokens=max(caps),
                        do_sample=sampling.do_sample, temperature=sampling.temperature if sampling.do_sample else None,
                        top_p=sampling.top_p if sampling.do_sample else None,
                        top_k=sampling.top_k if sampling.do_sample else None,
                        eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id, use_cache=True,
                    )
                for row, cap in zip(output[:, width:].tolist(), caps):
                    completions.append(_until_eos(row[:cap], self.eos_token_id))
        finally:
            self.model.train(was_training)
        return completions


def _until_eos(ids: list[int], eos_token_id: int) -> list[int]:
    """Cut a generated row after its first end token (the rest is padding)."""
    return ids[: ids.index(eos_token_id) + 1] if eos_token_id in ids else ids
