"""Generation with vLLM: the rollout backend when TRL trains with `use_vllm`.

Token ids in, token ids out, on either of TRL's vLLM engines: a `vllm.LLM` in the training process
(colocate) or TRL's `VLLMClient` to a `trl vllm-serve` server. Prompts go as token ids, never as
text, so the model continues exactly the sequence the episode built. Each reply stops at every end
token of the model (the backend's `end_token_ids`) and keeps the one it stopped at, as vLLM keeps
stop token ids in `token_ids`; it comes back as a `Completion` with the sampled tokens' log-probs,
which TRL's importance-sampling correction weighs against the trained policy's.

vLLM is imported only when a colocated engine generates, so this module imports without it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from envtune.errors import EnvtuneError
from envtune.rollout.generation import Completion, GenerationRequest, SamplingParams


class VLLMBackend:
    """Batched generation through vLLM: give exactly one of `llm` (a colocated `vllm.LLM`) or
    `client` (TRL's `VLLMClient`)."""

    def __init__(self, end_token_ids: Sequence[int], *, llm: Any = None, client: Any = None):
        if (llm is None) == (client is None):
            raise EnvtuneError("VLLMBackend needs exactly one engine: llm= (a colocated vllm.LLM) or client= "
                               "(TRL's VLLMClient to a vLLM server)")
        if not end_token_ids:
            raise EnvtuneError("VLLMBackend needs the model's end token ids (envtune.rollout.generation.end_token_ids)")
        self.end_token_ids = tuple(end_token_ids)
        self.llm, self.client = llm, client

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[Completion]:
        if not requests:
            return []
        if self.llm is not None:
            return self._generate_colocated(requests, sampling)
        return self._generate_served(requests, sampling)

    def _settings(self, sampling: SamplingParams) -> dict[str, Any]:
        """vLLM's sampling settings shared by every request of a call; temperature 0 is vLLM's greedy."""
        settings: dict[str, Any] = {"temperature": 0.0}
        if sampling.do_sample:
            settings = {"temperature": sampling.temperature, "top_p": sampling.top_p, "top_k": sampling.top_k}
        return {**settings, "stop_token_ids": list(self.end_token_ids), "logprobs": 0}

    def _generate_colocated(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[Completion]:
        """One `LLM.generate` for the whole call, with one vLLM SamplingParams per request: its own
        token cap and, when seeded, its own seed (seed + position), so identical prompts (a GRPO
        group's first round) still sample different replies."""
        from vllm import SamplingParams as VLLMSamplingParams

        settings = {**self._settings(sampling), "detokenize": False}  # token ids are all we read
        params = [
            VLLMSamplingParams(
                **settings, max_tokens=request.cap(sampling),
                **({} if sampling.seed is None else {"seed": sampling.seed + position}),
            )
            for position, request in enumerate(requests)
        ]
        prompts = [{"prompt_token_ids": list(request.prompt_ids)} for request in requests]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        return [_colocated_completion(output.outputs[0]) for output in outputs]

    def _generate_served(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[Completion]:
        """One server call per distinct token cap (a call has one `max_tokens`), answers put back in
        the requests' order. The server is not seeded: one seed for a whole call would give a GRPO
        group's identical prompts identical replies."""
        by_cap: dict[int, list[int]] = defaultdict(list)
        for position, request in enumerate(requests):
            by_cap[request.cap(sampling)].append(position)
        settings = self._settings(sampling)
        extra = {"stop_token_ids": settings.pop("stop_token_ids")}  # a vLLM request field the client passes through
        completions: list[Completion | None] = [None] * len(requests)
        for cap, positions in by_cap.items():
            answer = self.client.generate(
                prompts=[list(requests[position].prompt_ids) for position in positions], n=1, max_tokens=cap,
                generation_kwargs=extra, **settings,
            )
            for position, token_ids, logprobs in zip(positions, answer["completion_ids"], answer["logprobs"]):
                completions[position] = Completion(token_ids, [_float(ranked[0]) for ranked in logprobs])
        return completions


def _colocated_completion(output) -> Completion:
    """A vLLM CompletionOutput as a Completion: with logprobs=0, each position's dict holds the
    sampled token (and possibly nothing else)."""
    token_ids = list(output.token_ids)
    return Completion(token_ids, [position[token].logprob for token, position in zip(token_ids, output.logprobs)])


def _float(logprob: float | None) -> float:
    """TRL's client reports a log-prob vLLM could not compute (NaN) as None; TRL reads NaN as 'no correction'."""
    return float("nan") if logprob is None else float(logprob)
