"""A policy behind any OpenAI-compatible chat-completions endpoint (vLLM, SGLang, hosted APIs).

One bad reply never costs a run: transient failures (connection errors, timeouts, rate limits, 5xx,
and 200 responses whose body is not a usable completion) are retried with exponential backoff, and a
request that still fails comes back as an error for its task, never raised and never dropped. What
would fail every request the same way (no scheme, an unreachable host, a refused key, an unknown
model) is caught before the run by `preflight`, which raises `EndpointError` naming the cause.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence
from urllib.parse import urlsplit
from envtune.errors import EnvtuneError

PREFLIGHT_MESSAGES = [{"role": "user", "content": "Reply with the word OK."}]


class EndpointError(EnvtuneError):
    """The endpoint cannot serve the run at all; the message names the endpoint and the cause."""


class MalformedReply(Exception):
    """A 200 response that is not a chat completion with a message to act on."""


@dataclass(frozen=True)
class EndpointConfig:
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this environment variable, never a flag
    concurrency: int = 8  # requests in flight at once
    max_retries: int = 4
    timeout: float = 120.0
    backoff_seconds: float = 1.0

    def __post_init__(self):
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise EndpointError(
                f"--base-url {self.base_url!r} is not an http(s) URL; write it in full, e.g. http://localhost:8000/v1"
            )


@dataclass
class ChatResult:
    message: dict[str, Any] | None  # the assistant message (content and/or tool_calls)
    error: str | None = None
    status: int | None = None  # the HTTP status of a refused request
    code: str | None = None  # the error code in its body, e.g. model_not_found
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def read_completion(body: str) -> tuple[dict[str, Any], int, int]:
    """The assistant message and token usage of a chat-completions body; MalformedReply otherwise."""
    try:
        payload = json.loads(body)
    except json.JSONDecodeError as error:
        raise MalformedReply(f"the response body is not valid JSON ({error})") from None
    choices = payload.get("choices") if isinstance(payload, dict) else None
    if not isinstance(choices, list) or not choices:
        raise MalformedReply("the response has no choices")
    choice = choices[0]
    reply = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(reply, dict):
        raise MalformedReply("the response's choice has no message")
    content, tool_calls = reply.get("content"), reply.get("tool_calls")
    if content is None and not tool_calls:
        raise MalformedReply("the response's message has neither content nor tool calls")
    if content is not None and not isinstance(content, str) or tool_calls and not isinstance(tool_calls, list):
        raise MalformedReply("the response's message content or tool calls have the wrong type")
    message: dict[str, Any] = {"role": "assistant", "content": content or ""}
    if tool_calls:
        message["tool_calls"] = [_tool_call(call, index) for index, call in enumerate(tool_calls)]
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
    return message, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _tool_call(call: Any, index: int) -> dict[str, Any]:
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise MalformedReply(f"tool call {index + 1} of the response has no function")
    function = call["function"]
    return {"id": call.get("id") or f"call_{index}", "type": "function",
            "function": {"name": function.get("name"), "arguments": function.get("arguments", "")}}


class ChatEndpoint:
    def __init__(self, config: EndpointConfig):
        from openai import OpenAI

        self.config = config
        self.client = OpenAI(
            base_url=config.base_url, api_key=os.environ.get(config.api_key_env) or "EMPTY",
            timeout=config.timeout, max_retries=0,  # retries are ours, so every attempt is counted
        )

    def _attempt(self, messages: Sequence[dict[str, Any]], tools: list[dict] | None, sampling: dict[str, Any]) -> ChatResult:
        raw = self.client.chat.completions.with_raw_response.create(
            model=self.config.model, messages=list(messages), **({"tools": tools} if tools else {}), **sampling,
        )
        message, prompt_tokens, completion_tokens = read_completion(raw.text)
        return ChatResult(message, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def complete(
        self, messages: Sequence[dict[str, Any]], tools: list[dict] | None, sampling: dict[str, Any], retries: int | None = None,
    ) -> ChatResult:
        """One chat completion, retried on transient failures; an error result when it cannot be had."""
        import openai

        transient = (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError, MalformedReply)
        retries = self.config.max_retries if retries is None else retries
        for attempt in range(1, retries + 2):
            try:
                result = self._attempt(messages, tools, sampling)
            except transient as error:
                if attempt > retries:
                    cause = f" ({error.__cause__})" if error.__cause__ is not None else ""
                    return ChatResult(None, f"{type(error).__name__} after {attempt} attempts: {error}{cause}",
                                      status=getattr(error, "status_code", None), attempts=attempt)
                time.sleep(self.config.backoff_seconds * 2 ** (attempt - 1))
                continue
            except openai.APIStatusError as error:  # refused as asked (400, 401, 404, ...): retrying cannot help
                return ChatResult(None, f"{type(error).__name__}: {error}", status=error.status_code,
                                  code=error.code if isinstance(error.code, str) else None, attempts=attempt)
            result.attempts = attempt
            return result
        raise AssertionError("unreachable: the loop returns on its last attempt")

    def preflight(self) -> None:
        """One small request before the run (retried once); EndpointError when no request of the run
        could succeed."""
        result = self.complete(PREFLIGHT_MESSAGES, None, {"max_tokens": 1}, retries=min(1, self.config.max_retries))
        if result.error is None:
            return
        where = f"endpoint {self.config.base_url}"
        if result.status in (401, 403):
            key = "is not set" if not os.environ.get(self.config.api_key_env) else "was refused"
            raise EndpointError(f"{where}: the API key in ${self.config.api_key_env} {key} ({result.error})")
        if result.status == 404 or result.code == "model_not_found":
            raise EndpointError(f"{where} does not serve model {self.config.model!r} or has no chat-completions route "
                                f"(check --model and that the URL ends in /v1): {result.error}")
        if result.status is None and result.error.startswith(("APIConnectionError", "APITimeoutError")):
            raise EndpointError(f"{where} cannot be reached: {result.error}")
        raise EndpointError(f"{where} did not answer a test request: {result.error}")
