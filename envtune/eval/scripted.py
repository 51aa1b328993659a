"""A scripted model behind an OpenAI-compatible endpoint, with injected faults.

`envtune eval` must give the number the official BFCL loop gives for the same replies, and must
survive an endpoint that misbehaves. Both need a model whose replies are a pure function of the
conversation, so that two different clients (envtune and the official handler) get the same reply
at the same point of an entry. `ScriptedModel` reads the conversation the way both clients render
it (the user requests so far, and how many replies the current turn already has) and answers with
the ground-truth calls of the matching task plus seeded noise: split steps, a wrong call before the
right one, chatting instead of acting, replies that do not decode, and runs of extra calls that
cross BFCL's 20-step limit. `Faults` makes the server fail some attempts (bad JSON, no choices, no
message, 500, 429, timeouts) and delay others; a retried request gets the same reply.

    server = serve_scripted(Faults(rate=0.12))    # a RunningServer on a free loopback port
    ... envtune eval --base-url {server.url} --model {server.model_name} --protocol prompt ...
    server.close()
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Any, Callable, Sequence

from envtune.bfcl.calls import ToolCall
from envtune.bfcl.executor import ToolSession
from envtune.bfcl.tasks import Task, load_tasks
from envtune.eval.server import ApiError, ChatRequest, RunningServer, _ChatServer, _Handler
from envtune.errors import EnvtuneError

SCRIPTED_MODEL_NAME = "envtune-scripted"
DONE_TEXT = "I have taken care of that request."
UNDECODABLE_PROMPT = "[cd(folder='document'"  # an unclosed call: BFCL's decoder fails on it
UNDECODABLE_ARGUMENTS = '{"folder": "document"'
IDLE_CALL = ToolCall("check_progress", {})  # no such tool: it runs as an error and changes no state
# Where the official prompting loop and envtune's envtune protocol put tool results in user messages.
RESULT_PREFIXES = ("[{'role': 'tool'", "<tool_response>")

Reply = tuple[ToolCall, ...] | str  # calls for one step, or a text reply


def _unit(*parts: Any) -> float:
    """A uniform number in [0, 1) that depends on `parts` only (same in every process)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64


@dataclass(frozen=True)
class Conversation:
    """What the script reads off a request: the turn-opening user messages and the replies so far
    in the current turn."""

    openings: tuple[str, ...]
    step: int

    @classmethod
    def read(cls, messages: Sequence[dict[str, Any]]) -> "Conversation":
        openings, step = [], 0
        for message in messages:
            content = message.get("content")
            text = content if isinstance(content, str) else ""
            if message.get("role") == "user" and not text.startswith(RESULT_PREFIXES):
                openings.append(text)
                step = 0
            elif message.get("role") == "assistant":
                step += 1
        return cls(tuple(openings), step)


class ScriptedModel:
    """Ground-truth calls with seeded noise, per task turn; see the module docstring."""

    def __init__(self, tasks: Sequence[Task] | None = None, release: str | None = None, noise: float = 1.0,
                 script: Callable[[Task, int, tuple[ToolCall, ...]], list[Reply] | None] | None = None):
        self.tasks = list(tasks) if tasks is not None else load_tasks(release=release)
        self.noise = noise  # 0: always the ground truth in one step, then an answer
        self.script = script  # (task, turn, ground-truth calls) -> the turn's replies, or None for the noisy plan
        self._requests = {task.id: [turn[-1]["content"] if turn else None for turn in task.turns] for task in self.tasks}

    def task_for(self, conversation: Conversation) -> Task | None:
        """The first task (in load order) whose requests match the conversation's; a turn whose
        request the task leaves empty (held-out tools return) matches any announcement."""
        turn = len(conversation.openings) - 1
        for task in self.tasks:
            requests = self._requests[task.id]
            if turn < len(requests) and all(
                expected is None or expected == seen for expected, seen in zip(requests, conversation.openings)
            ):
                return task
        return None

    @lru_cache(maxsize=4096)
    def _turn_calls(self, task: Task, turn: int) -> tuple[ToolCall, ...]:
        with ToolSession(task.involved_classes, {}, release=task.release) as session:  # signatures only
            return tuple(session.describe(call) for call in task.ground_truth[turn])

    def plan(self, task: Task, conversation: Conversation) -> list[Reply]:
        """The replies of one turn, in order; a reply past the plan's end is DONE_TEXT."""
        turn = len(conversation.openings) - 1
        calls = self._turn_calls(task, turn)
        scripted = self.script(task, turn, calls) if self.script else None
        if scripted is not None:
            return scripted
        key = (task.release, task.id, turn)  # not the texts: held-out-tool announcements differ between clients
        draw = _unit("plan", *key) / max(self.noise, 1e-9)
        length = _unit("length", *key)
        if not calls:  # the model should ask or decline: mostly it does
            return [DONE_TEXT] if draw < 0.85 else [(IDLE_CALL,), DONE_TEXT]
        wrong = ToolCall(calls[0].name, {**calls[0].arguments, "unexpected_flag": True})
        if draw >= 0.16:
            return [calls, DONE_TEXT]
        if draw < 0.04:  # one call per step
            return [(call,) for call in calls] + [DONE_TEXT]
        if draw < 0.07:  # a failing call first, then the right ones
            return [(wrong,), calls, DONE_TEXT]
        if draw < 0.085:  # talks instead of acting
            return [DONE_TEXT]
        if draw < 0.10:  # a reply that does not decode
            return [UNDECODABLE_PROMPT]
        if draw < 0.13:  # keeps going after the work is done, around the step limit
            return [calls] + [(IDLE_CALL,)] * (18 + int(length * 5)) + [DONE_TEXT]
        return [(IDLE_CALL,)] * (19 + int(length * 3)) + [calls, DONE_TEXT]  # wanders first, around the limit

    def reply(self, messages: Sequence[dict[str, Any]], function_calling: bool) -> dict[str, Any]:
        """The assistant message for this conversation: prompt-mode text, or tool calls when the
        request carries tools."""
        conversation = Conversation.read(messages)
        task = self.task_for(conversation) if conversation.openings else None
        if task is None:
            return {"role": "assistant", "content": DONE_TEXT}
        plan = self.plan(task, conversation)
        step = plan[conversation.step] if conversation.step < len(plan) else DONE_TEXT
        if isinstance(step, str):
            if step == UNDECODABLE_PROMPT and function_calling:
                return {"role": "assistant", "content": None, "tool_calls": [
                    {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                     "function": {"name": "cd", "arguments": UNDECODABLE_ARGUMENTS}}]}
            return {"role": "assistant", "content": step}
        if function_calling:
            return {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{uuid.uuid4().hex[:12]}", "type": "function",
                 "function": {"name": call.name, "arguments": json.dumps(call.arguments)}} for call in step]}
        return {"role": "assistant", "content": "[" + ", ".join(call.to_python() for call in step) + "]"}


@dataclass(frozen=True)
class Faults:
    """Seeded failures of the endpoint. Each attempt of a request (a request is known by its body)
    fails with probability `rate` up to its `faulty_attempts`-th attempt, so a client that retries
    enough always gets through; `broken_rate` of requests fail on every attempt."""

    rate: float = 0.0
    kinds: tuple[str, ...] = ("bad_json", "no_choices", "no_message", "http_500", "http_429", "timeout")
    faulty_attempts: int = 2
    timeout_seconds: float = 2.0  # a `timeout` fault answers only after this long (clients give up first)
    slow_rate: float = 0.0
    slow_seconds: float = 0.2
    broken_rate: float = 0.0
    seed: int = 0

    def __post_init__(self):
        unknown = set(self.kinds) - set(FAULT_BODIES) - {"http_500", "http_429", "timeout"}
        if unknown:
            raise EnvtuneError(f"unknown fault kinds {sorted(unknown)}")


FAULT_BODIES = {
    "bad_json": b'{"id": "chatcmpl-x", "choi',
    "no_choices": b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": []}',
    "no_message": b'{"id": "chatcmpl-x", "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop"}]}',
}


class ScriptedChatModel:
    """The `ChatModel` face of a ScriptedModel for the chat server (see `envtune.eval.server`)."""

    def __init__(self, model: ScriptedModel, name: str = SCRIPTED_MODEL_NAME):
        self.model = model
        self.name = name

    def complete(self, request: ChatRequest) -> dict[str, Any]:
        message = self.model.reply(request.messages, function_calling=bool(request.tools))
        prompt_tokens = sum(len(str(message.get("content") or "")) for message in request.messages) // 4
        completion_tokens = max(1, len(json.dumps(message)) // 4)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()), "model": self.name,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


@dataclass(frozen=True)
class _RawBody:
    body: bytes


class _FaultyHandler(_Handler):
    """The chat server's handler, failing the attempts `Faults` picks."""

    server: "ScriptedServer"

    def _chat(self, body: bytes) -> dict[str, Any] | _RawBody:
        fault = self.server.fault_for(body)
        if fault in FAULT_BODIES:
            return _RawBody(FAULT_BODIES[fault])
        if fault == "timeout":
            time.sleep(self.server.faults.timeout_seconds)
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the scripted server timed out", "server_error")
        if fault == "http_429":
            raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, "rate limit reached (scripted)", "rate_limit_error")
        if fault == "http_500":
            raise ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal server error (scripted)", "server_error")
        if fault == "slow":
            time.sleep(self.server.faults.slow_seconds)
        return super()._chat(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a load test makes thousands of requests."""

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any] | _RawBody) -> None:
        try:
            if not isinstance(payload, _RawBody):
                super()._send_json(status, payload)
                return
            self.send_response(status)  # a 200 whose body is not a usable completion
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload.body)))
            self.end_headers()
            self.wfile.write(payload.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up on a slow answer


class ScriptedServer(_ChatServer):
    """The loopback chat server with a scripted model and seeded faults; counts what it served."""

    def __init__(self, address: tuple[str, int], chat_model: ScriptedChatModel, faults: Faults, api_key: str | None = None):
        super().__init__(address, chat_model, api_key)
        self.RequestHandlerClass = _FaultyHandler
        self.faults = faults
        self.attempts: Counter[str] = Counter()
        self.served: Counter[str] = Counter()  # fault kinds (and "ok") by count
        self._lock = threading.Lock()

    def fault_for(self, body: bytes) -> str:
        key = hashlib.sha256(body).hexdigest()
        with self._lock:
            self.attempts[key] += 1
            attempt = self.attempts[key]
        faults = self.faults
        if _unit("broken", faults.seed, key) < faults.broken_rate:
            kind = "http_500"
        elif attempt <= faults.faulty_attempts and _unit("fault", faults.seed, key, attempt) < faults.rate:
            kind = faults.kinds[int(_unit("kind", faults.seed, key, attempt) * len(faults.kinds))]
        elif _unit("slow", faults.seed, key, attempt) < faults.slow_rate:
            kind = "slow"
        else:
            kind = "ok"
        with self._lock:
            self.served[kind] += 1
        return kind


class RunningScriptedServer(RunningServer):
    @property
    def served(self) -> Counter[str]:
        """Attempts answered so far, by fault kind ("ok" for a normal answer, "slow" for a late one)."""
        return self._server.served


def serve_scripted(
    faults: Faults = Faults(), model: ScriptedModel | None = None, name: str = SCRIPTED_MODEL_NAME,
    api_key: str | None = None,
) -> RunningScriptedServer:
    """A scripted endpoint (the noisy ScriptedModel of all tasks by default) answering from a
    background thread on a free loopback port."""
    model = ScriptedChatModel(model or ScriptedModel(), name)
    return RunningScriptedServer(ScriptedServer(("127.0.0.1", 0), model, faults, api_key))
