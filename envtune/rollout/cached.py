"""Rollouts whose rounds cost only their new tokens: a transformers backend that keeps each
episode's KV cache from round to round.

A lock-step round asks for one reply per live episode, and each request is the episode's previous
request plus the last reply and the environment's answer. Re-reading that whole context every round
(what `HFBackend` does) makes a multi-turn episode with a 4-7k-token prompt cost mostly prefill. Here:

- **Prefix sharing.** An episode's first request is prefilled without padding, once per distinct
  prompt: the rollouts of a GRPO group share theirs. Prompts are prefilled in sorted order, each
  starting from the cache of the longest prefix it shares with the one before (tasks that use the
  same tools share most of their documentation), so every distinct prefix is computed once.
- **KV reuse across rounds.** Episodes live in cohorts of at most `batch_size` rows that decode
  together. A cohort keeps one key and one value buffer per layer, `[rows, kv heads, columns,
  head dim]`; a column is a time slot shared by the rows, and each row marks the columns that hold
  its tokens (the others are holes, masked out). Rows carry their own position ids, so holes never
  shift a token's position. A later request must extend the tokens its row holds; only the new ones
  are run, right-aligned in one segment so that every row's last token lands in the last column.
- **Length-aware batching.** Cohorts are formed from prompts of similar length, and prompts are
  never padded, so a round does not pay for its longest prompt in every row.
- **Bounded memory.** A row is dropped as soon as its episode does not ask in a call (in lock step,
  an episode that does not ask is over), and `release()` drops everything; buffers grow by a quarter at a time.

Decoding samples with the call's settings only (temperature, top-k, top-p through transformers' own
logits warpers, as `generate` applies them), so greedy decoding gives `HFBackend`'s tokens. Models
with sliding-window or other non-global attention layers need `HFBackend` (`cached_backend_supports`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache, CacheLayerMixin
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from envtune.errors import EnvtuneError
from envtune.rollout.generation import GenerationRequest, HFBackend, SamplingParams, end_token_ids, inference



GROUPED_SDPA = "envtune_grouped_sdpa"


def _grouped_sdpa(module, query, key, value, attention_mask, dropout=0.0, scaling=None, is_causal=None, **kwargs):
    """transformers' sdpa attention, except that on CPU under a mask torch shares each key/value head
    with its group of query heads (`enable_gqa`) instead of transformers copying the cache once per
    query head: with caches thousands of columns long, that copy was most of a decode step. (On
    GPUs, torch's kernels for masks do not take grouped heads: transformers' own path stays.)"""
    groups = getattr(module, "num_key_value_groups", 1)
    if attention_mask is None or groups == 1 or query.device.type != "cpu":
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    output = torch.nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=attention_mask, dropout_p=dropout, scale=scaling, enable_gqa=True)
    return output.transpose(1, 2).contiguous(), None


AttentionInterface.register(GROUPED_SDPA, _grouped_sdpa)
AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)


@contextmanager
def _grouped_attention(model) -> Iterator[None]:
    """A model that attends with sdpa attends with `_grouped_sdpa` for the call."""
    config = model.config
    own = config._attn_implementation
    if own != "sdpa":
        yield
        return
    config._attn_implementation = GROUPED_SDPA
    try:
        yield
    finally:
        config._attn_implementation = own


class _GrowingLayer(CacheLayerMixin):
    """One layer's keys and values in buffers that are written in place and grow when full; the
    model sees the filled columns only."""

    is_sliding = False

    def __init__(self, keys: torch.Tensor | None = None, values: torch.Tensor | None = None, length: int = 0):
        super().__init__()
        self.length = length
        if keys is not None:
            self.keys, self.values, self.is_initialized = keys, values, True

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.keys = key_states.new_zeros((*key_states.shape[:2], 0, key_states.shape[-1]))
        self.values = value_states.new_zeros((*value_states.shape[:2], 0, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        self.reserve(end)
        self.keys[:, :, self.length:end] = key_states
        self.values[:, :, self.length:end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def reserve(self, columns: int) -> None:
        """Room for `columns` columns in all, keeping what is filled; a buffer that must grow grows by
        a quarter at least, so appending a token at a time copies it only now and then."""
        capacity = self.keys.shape[-2]
        if columns <= capacity:
            return
        columns = max(columns, capacity + capacity // 4)
        keys = self.keys.new_zeros((*self.keys.shape[:2], columns, self.keys.shape[-1]))
        values = self.values.new_zeros((*self.values.shape[:2], columns, self.values.shape[-1]))
        keys[:, :, :self.length] = self.keys[:, :, :self.length]
        values[:, :, :self.length] = self.values[:, :, :self.length]
        self.keys, self.values = keys, values

    def keep_rows(self, rows: torch.Tensor) -> None:
        self.keys, self.values = self.keys[rows], self.values[rows]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_cache_shape(self) -> int:
        return -1


def cached_backend_supports(model) -> bool:
    """Whether every attention layer of the model attends over the whole sequence (the cache keeps
    all columns; a sliding-window layer would need its own)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return all(kind == "full_attention" for kind in getattr(config, "layer_types", None) or ["full_attention"])


@dataclass
class _Row:
    """One episode in a cohort: the tokens whose keys and values the cohort holds, in order."""

    episode_index: int
    tokens: list[int]


@dataclass
class _Cohort:
    """Episodes that decode together, with one growing buffer per layer (see the module docstring)."""

    rows: list[_Row]
    cache: Cache
    filled: torch.Tensor  # [rows, columns] bool: which columns hold each row's tokens
    next_logits: torch.Tensor  # [rows, vocab]: the scores of each row's next token

    @property
    def columns(self) -> int:
        return self.cache.layers[0].length

    def keep(self, keep: list[int]) -> None:
        if len(keep) == len(self.rows):
            return
        index = torch.tensor(keep, dtype=torch.long, device=self.filled.device)
        for layer in self.cache.layers:
            layer.keep_rows(index)
        self.filled = self.filled[index]
        self.rows = [self.rows[row] for row in keep]

    def reserve(self, columns: int) -> None:
        """Room for `columns` more columns, so a round writes in place."""
        needed = self.columns + columns
        for layer in self.cache.layers:
            layer.reserve(needed)
        if self.filled.shape[1] < needed:
            grown = torch.zeros((self.filled.shape[0], self.cache.layers[0].keys.shape[-2]), dtype=torch.bool,
                                device=self.filled.device)
            grown[:, :self.columns] = self.filled[:, :self.columns]
            self.filled = grown


@dataclass
class _Prefilled:
    """A distinct prompt, prefilled alone: its keys and values per layer and its next-token scores."""

    tokens: list[int]
    keys: list[torch.Tensor]  # per layer [1, kv heads, tokens, head dim]
    values: list[torch.Tensor]
    logits: torch.Tensor  # [vocab]


class CachedHFBackend:
    """Generation with a transformers causal LM that keeps each episode's KV cache between calls
    (see the module docstring). `batch_size` is the most episodes that decode together."""

    def __init__(self, model, tokenizer, batch_size: int = 16):
        if not cached_backend_supports(model):
            raise EnvtuneError(f"{type(model).__name__} has attention layers that are not global (sliding window or "
                               "linear); the cached rollout backend keeps whole-sequence caches, use HFBackend")
        if batch_size < 1:
            raise EnvtuneError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.batch_size = batch_size
        self.end_token_ids = end_token_ids(model.generation_config, tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._cohorts: list[_Cohort] = []

    @property
    def live_episodes(self) -> int:
        """Episodes whose caches are held now."""
        return sum(len(cohort.rows) for cohort in self._cohorts)

    def release(self) -> None:
        """Drop every cache (the rollout engine calls this when its episodes are over)."""
        self._cohorts = []

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingParams) -> list[list[int]]:
        by_episode = {request.episode_index: request for request in requests}
        if len(by_episode) != len(requests):
            raise EnvtuneError("a generation call asked twice for the same episode_index; each episode asks once per call")
        completions: dict[int, list[int]] = {}
        with inference(self.model, sampling.seed) as device, _grouped_attention(self.model):
            fresh = self._follow(by_episode)
            self._cohorts += self._start(fresh, device)
            for cohort in self._cohorts:
                caps = [by_episode[row.episode_index].cap(sampling) for row in cohort.rows]
                for row, completion in zip(cohort.rows, self._decode(cohort, caps, sampling)):
                    completions[row.episode_index] = completion
        return [completions[request.episode_index] for request in requests]

    # ----- which rows go on, and the new ones -----------------------------------------------------
    def _follow(self, by_episode: dict[int, GenerationRequest]) -> list[GenerationRequest]:
        """Keep the rows whose episodes ask again with a longer sequence, feed them their new tokens,
        and drop the others. Returns the requests that need a fresh start."""
        continued: set[int] = set()
        for cohort in self._cohorts:
            keep, new_tokens = [], []
            for position, row in enumerate(cohort.rows):
                request = by_episode.get(row.episode_index)
                if request is None:
                    continue  # the episode is over
                prompt = list(request.prompt_ids)
                if len(prompt) > len(row.tokens) and prompt[:len(row.tokens)] == row.tokens:
                    keep.append(position)
                    new_tokens.append(prompt[len(row.tokens):])
                    continued.add(row.episode_index)
            if keep:
                cohort.keep(keep)
                self._extend(cohort, new_tokens)
            else:
                cohort.rows = []
        self._cohorts = [cohort for cohort in self._cohorts if cohort.rows]
        return [request for index, request in by_episode.items() if index not in continued]

    def _extend(self, cohort: _Cohort, new_tokens: list[list[int]]) -> None:
        """Run each row's new tokens, right-aligned in one segment of columns."""
        width = max(len(tokens) for tokens in new_tokens)
        start = cohort.columns
        cohort.reserve(width)
        device = cohort.filled.device
        input_ids = torch.full((len(new_tokens), width), self.pad_token_id, dtype=torch.long)
        positions = torch.zeros((len(new_tokens), width), dtype=torch.long)
        for row, tokens in enumerate(new_tokens):
            first = len(cohort.rows[row].tokens)
            input_ids[row, width - len(tokens):] = torch.tensor(tokens)
            positions[row] = torch.arange(first + len(tokens) - width, first + len(tokens)).clamp(min=first)
            cohort.filled[row, start + width - len(tokens):start + width] = True
            cohort.rows[row].tokens += tokens
        cohort.next_logits = self._forward(cohort, input_ids.to(device), positions.to(device), start + width)

    def _start(self, requests: list[GenerationRequest], device) -> list[_Cohort]:
        """Cohorts for episodes seen for the first time: distinct prompts prefilled once each, rows
        grouped by prompt length."""
        if not requests:
            return []
        prompts = sorted({tuple(request.prompt_ids) for request in requests})
        prefilled = dict(zip(prompts, self._prefill(prompts, device)))
        ordered = sorted(requests, key=lambda request: (len(request.prompt_ids), tuple(request.prompt_ids)))
        return [self._cohort([(request.episode_index, prefilled[tuple(request.prompt_ids)])
                              for request in ordered[start:start + self.batch_size]], device)
                for start in range(0, len(ordered), self.batch_size)]

    def _prefill(self, prompts: list[tuple[int, ...]], device) -> list[_Prefilled]:
        """Prefill sorted distinct prompts, each from the cached prefix it shares with the one before."""
        done: list[_Prefilled] = []
        for prompt in prompts:
            if not prompt:
                raise EnvtuneError("a generation request has no prompt tokens")
            before = done[-1] if done else None
            shared = len(os.path.commonprefix([before.tokens, list(prompt)])) if before else 0
            cache = Cache(layers=[_GrowingLayer(_rows([keys[:, :, :shared]], len(prompt)),
                                                _rows([values[:, :, :shared]], len(prompt)), shared)
                                  for keys, values in zip(before.keys, before.values)]) if shared else \
                Cache(layer_class_to_replicate=_GrowingLayer)
            new = torch.tensor([prompt[shared:]], device=device)
            positions = torch.arange(shared, len(prompt), device=device)[None]
            output = self.model(input_ids=new, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1)
            done.append(_Prefilled(
                list(prompt), [layer.keys[:, :, :layer.length] for layer in cache.layers],
                [layer.values[:, :, :layer.length] for layer in cache.layers], output.logits[0, -1].float(),
            ))
        return done

    def _cohort(self, members: list[tuple[int, _Prefilled]], device) -> _Cohort:
        """Rows for prefilled prompts: each row's prompt in the first columns, holes after shorter ones."""
        width = max(len(state.tokens) for _, state in members)
        layers = [_GrowingLayer(_rows([state.keys[layer] for _, state in members], width),
                                _rows([state.values[layer] for _, state in members], width), width)
                  for layer in range(len(members[0][1].keys))]
        filled = torch.zeros((len(members), width), dtype=torch.bool, device=device)
        for row, (_, state) in enumerate(members):
            filled[row, :len(state.tokens)] = True
        return _Cohort(
            rows=[_Row(index, list(state.tokens)) for index, state in members], cache=Cache(layers=layers),
            filled=filled, next_logits=torch.stack([state.logits for _, state in members]),
        )

    # ----- decoding ---------------------------------------------------------------------------------
    def _decode(self, cohort: _Cohort, caps: list[int], sampling: SamplingParams) -> list[list[int]]:
        """Sample every row's reply; a row stops at an end token or its cap. Each reply's last token
        is not run (the next request carries it)."""
        device = cohort.filled.device
        replies: list[list[int]] = [[] for _ in cohort.rows]
        live = [cap > 0 for cap in caps]
        choose = _chooser(sampling)
        cohort.reserve(max(caps))
        while True:
            chosen = choose(cohort.next_logits).tolist()
            for row, token in enumerate(chosen):
                if live[row]:
                    replies[row].append(token)
                    live[row] = token not in self.end_token_ids and len(replies[row]) < caps[row]
            if not any(live):
                return replies
            column = cohort.columns
            cohort.filled[:, column] = torch.tensor(live, device=device)
            positions = torch.tensor([[len(row.tokens)] for row in cohort.rows], device=device)
            for row, token in enumerate(chosen):
                if live[row]:
                    cohort.rows[row].tokens.append(token)
            input_ids = torch.tensor([[token if live[row] else self.pad_token_id] for row, token in enumerate(chosen)],
                                     device=device)
            cohort.next_logits = self._forward(cohort, input_ids, positions, column + 1)

    def _forward(self, cohort: _Cohort, input_ids: torch.Tensor, positions: torch.Tensor, columns: int) -> torch.Tensor:
        """Run new columns through the model against the cohort's cache; the last column's scores."""
        output = self.model(input_ids=input_ids, attention_mask=cohort.filled[:, :columns], position_ids=positions,
                            past_key_values=cohort.cache, use_cache=True, logits_to_keep=1)
        return output.logits[:, -1].float()


def _rows(parts: list[torch.Tensor], columns: int) -> torch.Tensor:
    """Single-row states `[1, heads, n, dim]` stacked as rows of a `columns`-wide buffer, each in
    its first columns."""
    stacked = parts[0].new_zeros((len(parts), parts[0].shape[1], columns, parts[0].shape[-1]))
    for row, part in enumerate(parts):
        stacked[row, :, :part.shape[2]] = part[0]
    return stacked


def _chooser(sampling: SamplingParams):
    """The next token per row from its scores: argmax, or a draw after transformers' temperature,
    top-k and top-p warpers (in `generate`'s order)."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    if not sampling.do_sample:
        return lambda scores: scores.argmax(dim=-1)
    warpers = [
        *([TemperatureLogitsWarper(sampling.temperature)] if sampling.temperature != 1.0 else []),
        *([TopKLogitsWarper(sampling.top_k)] if sampling.top_k else []),
        *([TopPLogitsWarper(sampling.top_p)] if sampling.top_p < 1.0 else []),
    ]

    def draw(scores: torch.Tensor) -> torch.Tensor:
        for warper in warpers:
            scores = warper(None, scores)
        return torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)

    return draw


def hf_backend(model, tokenizer, batch_size: int = 16):
    """The fastest transformers backend the model allows: the cached one, or `HFBackend` for models
    with attention layers it does not cache (sliding windows)."""
    if cached_backend_supports(model):
        return CachedHFBackend(model, tokenizer, batch_size)
    return HFBackend(model, tokenizer, batch_size)
