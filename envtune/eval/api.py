"""A policy behind any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, hosted APIs).

Requests run concurrently up to a limit; transient failures (connection errors, timeouts, rate
limits, 5xx) are retried with exponential backoff; a request that still fails comes back as an
error for its task, never silently dropped.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass(frozen=True)
class EndpointConfig:
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never a flag
    concurrency: int = 8
    max_retries: int = 4
    timeout: float = 120.0
    backoff_seconds: float = 1.0


@dataclass
class ChatResult:
    message: dict[str, Any] | None  # the assistant message (content and/or tool_calls)
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class ChatEndpoint:
    def __init__(self, config: EndpointConfig):
        from openai import OpenAI

        self.config = config
        self.client = OpenAI(
            base_url=config.base_url, api_key=os.environ.get(config.api_key_env) or "EMPTY",
            timeout=config.timeout, max_retries=0,  # retries are ours, so every attempt is counted
        )

    def complete(self, messages: Sequence[dict[str, Any]], tools: list[dict] | None, sampling: dict[str, Any]) -> ChatResult:
        import openai

        transient = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)
        for attempt in range(1, self.config.max_retries + 2):
            try:
                response = self.client.chat.completions.create(
                    model=self.config.model, messages=list(messages), **({"tools": tools} if tools else {}), **sampling,
                )
            except transient as error:
                if attempt > self.config.max_retries:
                    return ChatResult(None, f"{type(error).__name__} after {attempt} attempts: {error}", attempts=attempt)
                time.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
                continue
            except openai.APIError as error:
                return ChatResult(None, f"{type(error).__name__}: {error}", attempts=attempt)
            choice = response.choices[0].message
            message: dict[str, Any] = {"role": "assistant", "content": choice.content or ""}
            if choice.tool_calls:
                message["tool_calls"] = [
                    {"id": call.id, "type": "function",
                     "function": {"name": call.function.name, "arguments": call.function.arguments}}
                    for call in choice.tool_calls
                ]
            usage = response.usage
            return ChatResult(
                message, prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0, attempts=attempt,
            )
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def complete_many(self, requests: Sequence[tuple[Sequence[dict], list[dict] | None]], sampling: dict[str, Any]) -> list[ChatResult]:
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(lambda request: self.complete(request[0], request[1], sampling), requests))
