"""Players: how evaluated episodes get their replies.

- `play_local`: a local model, token in / token out through the rollout engine, in batches.
- `play_endpoint`: an OpenAI-compatible endpoint, message by message. Every episode advances on its
  own: up to `concurrency` requests are in flight, and a slow or retried request holds up only its
  own episode. Requests run on worker threads; episodes (tool calls, checks) step on the calling
  thread only: stepping is pure Python, which more threads would not make faster.

Both yield one results.jsonl record per (task, sample) as soon as it is finished.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Iterator, Sequence

from envtune.bfcl.tasks import Task
from envtune.env.episode import Episode
from envtune.eval.api import ChatEndpoint, ChatResult
from envtune.eval.runner import EvalConfig, episode_record
from envtune.rollout import GenerationBackend, RolloutEngine
from envtune.rollout.driver import ChatDriver


def play_local(
    todo: Sequence[tuple[Task, int]], *, backend: GenerationBackend, tokenizer, config: EvalConfig,
) -> Iterator[dict[str, Any]]:
    """Batches of `config.batch_size` episodes of one sample through the rollout engine."""
    for sample, pairs in groupby(todo, key=lambda pair: pair[1]):
        tasks = [task for task, _ in pairs]
        for start in range(0, len(tasks), config.batch_size):
            episodes = [Episode(task, config.episode_config()) for task in tasks[start:start + config.batch_size]]
            try:
                engine = RolloutEngine(backend, tokenizer, config.sampling(sample), config.max_completion_tokens)
                rollouts = engine.run(episodes)
                for episode, rollout in zip(episodes, rollouts):
                    yield episode_record(episode, rollout.record, sample, rollout.messages, rollout.turn_starts)
            finally:
                for episode in episodes:
                    episode.close()


@dataclass
class _Conversation:
    driver: ChatDriver
    sample: int
    error: str | None = None


def play_endpoint(
    todo: Sequence[tuple[Task, int]], *, endpoint: ChatEndpoint, config: EvalConfig,
) -> Iterator[dict[str, Any]]:
    """Every episode on its own, with at most `endpoint.config.concurrency` requests in flight; a
    request that fails after its retries ends (and fails) its own task only."""
    waiting = list(reversed(todo))
    in_flight: dict[Future, _Conversation] = {}

    def ask(pool: ThreadPoolExecutor, conversation: _Conversation) -> None:
        driver = conversation.driver
        sampling = {"temperature": config.temperature, "max_tokens": config.max_new_tokens,
                    "seed": config.seed + 1000 * conversation.sample}
        tools = driver.episode.tools() if config.protocol == "native" else None
        in_flight[pool.submit(endpoint.complete, driver.messages, tools, sampling)] = conversation

    def finish(conversation: _Conversation) -> dict[str, Any]:
        driver = conversation.driver
        record = episode_record(driver.episode, driver.record(), conversation.sample, driver.messages, driver.turn_starts,
                                conversation.error)
        driver.episode.close()
        return record

    pool = ThreadPoolExecutor(max_workers=endpoint.config.concurrency, thread_name_prefix="envtune-request")
    try:
        while waiting or in_flight:
            while waiting and len(in_flight) < endpoint.config.concurrency:
                task, sample = waiting.pop()
                ask(pool, _Conversation(ChatDriver(Episode(task, config.episode_config())), sample))
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                conversation = in_flight.pop(future)
                result: ChatResult = future.result()
                conversation.driver.count_tokens(result.prompt_tokens, result.completion_tokens)
                if result.error is not None:
                    conversation.error = result.error
                    yield finish(conversation)
                    continue
                if conversation.driver.reply(result.message).done:
                    yield finish(conversation)
                else:
                    ask(pool, conversation)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for conversation in in_flight.values():
            conversation.driver.episode.close()
