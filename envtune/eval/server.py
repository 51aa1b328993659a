"""`envtune serve`: a minimal OpenAI-compatible chat-completions server for a local model.

Evaluating through the official `openai` client must be testable end to end without a hosted
service, so this serves any local Hugging Face causal LM (or the tiny test model) on loopback with
the standard library's HTTP server. It speaks just enough of the API for that: `GET /v1/models` and
non-streaming `POST /v1/chat/completions` with one choice.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from envtune.errors import EnvtuneError
from envtune.models import Placement, add_placement_arguments, load_model_and_tokenizer, resolve_placement

DEFAULT_MAX_TOKENS = 1024  # as `envtune eval --max-new-tokens`
MAX_BODY_BYTES = 16 * 1024 * 1024  # a conversation far longer than any model's context
MAX_STOP_SEQUENCES = 4  # as the OpenAI API


class ApiError(Exception):
    """A request the server refuses, answered as an OpenAI-style error with its status code."""

    def __init__(self, status: HTTPStatus, message: str, error_type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str]


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message, param=param)


def _number(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"{key} must be a number", key)
    if not low <= value <= high:
        raise _bad(f"{key} must be between {low:g} and {high:g}", key)
    return float(value)


def _integer(body: dict, key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _bad(f"{key} must be an integer", key)
    return value


def _content(message: dict, index: int) -> str | None:
    """Message content as the chat template expects it: a string (text parts joined) or None."""
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content
    param = f"messages[{index}].content"
    if not isinstance(content, list):
        raise _bad("content must be a string or a list of text parts", param)
    if not all(isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str) for part in content):
        raise _bad("only text content parts are supported", param)
    return "".join(part["text"] for part in content)


def parse_chat_request(body: Any, served_name: str) -> ChatRequest:
    """Validate a chat-completions body; every problem is a 400 naming the offending field."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    if body.get("model") != served_name:
        raise ApiError(HTTPStatus.BAD_REQUEST, f"model {body.get('model')!r} is not served here; this server serves {served_name!r}",
                       param="model", code="model_not_found")
    if body.get("stream"):
        raise _bad("streaming is not supported", "stream")
    if body.get("n", 1) != 1:
        raise _bad("only n=1 is supported", "n")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty list", "messages")
    rendered = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _bad("each message must be an object with a string role", f"messages[{index}]")
        rendered.append({**message, "content": _content(message, index)})
    tools = body.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(tool, dict) for tool in tools)):
        raise _bad("tools must be a list of objects", "tools")
    limit = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _integer(body, limit)
    if max_tokens is not None and max_tokens < 1:
        raise _bad(f"{limit} must be at least 1", limit)
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop or []
    if not (isinstance(stop, list) and len(stop) <= MAX_STOP_SEQUENCES and all(isinstance(s, str) and s for s in stop)):
        raise _bad(f"stop must be a non-empty string or a list of at most {MAX_STOP_SEQUENCES} of them", "stop")
    return ChatRequest(
        messages=rendered, tools=tools or None, max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0), top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        seed=_integer(body, "seed"), stop=stop,
    )


class ChatModel:
    """A model and tokenizer behind one lock: neither generation nor the Rust tokenizer is thread-safe."""

    def __init__(self, model, tokenizer, name: str):
        from envtune.rollout import HFBackend

        self.name = name
        self.tokenizer = tokenizer
        self.backend = HFBackend(model, tokenizer, batch_size=1)
        self.lock = threading.Lock()

    def complete(self, request: ChatRequest) -> dict[str, Any]:
        from envtune.rollout import GenerationRequest, SamplingParams

        sampling = SamplingParams(
            max_new_tokens=request.max_tokens, temperature=request.temperature, top_p=request.top_p,
            do_sample=request.temperature > 0, seed=request.seed,
        )
        with self.lock:
            try:
                text = self.tokenizer.apply_chat_template(
                    request.messages, tools=request.tools, tokenize=False, add_generation_prompt=True)
            except Exception as error:  # the template rejects the conversation (roles, order, fields)
                raise _bad(f"the chat template cannot render these messages: {error}", "messages") from error
            prompt_ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            completion = self.backend.generate([GenerationRequest(prompt_ids, episode_index=0)], sampling)[0]
            content = self.tokenizer.decode(completion, skip_special_tokens=True)
        finish_reason = "stop" if completion and completion[-1] in self.backend.end_token_ids else "length"
        cut = min((content.find(s) for s in request.stop if s in content), default=-1)
        if cut >= 0:  # stop sequences are applied to the text, after generation, and are not returned
            content, finish_reason = content[:cut], "stop"
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": len(prompt_ids), "completion_tokens": len(completion),
                      "total_tokens": len(prompt_ids) + len(completion)},
        }


class _Handler(BaseHTTPRequestHandler):
    """Routes requests and turns every failure into a JSON error, so a client never sees a traceback."""

    protocol_version = "HTTP/1.1"  # keep-alive: the client reuses one connection per worker
    server: _ChatServer

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            body = self._read_body()  # read first, so a refused request leaves the connection clean
            self._authorize()
            path = urlsplit(self.path).path.rstrip("/")
            routes = {("GET", "/v1/models"): self._models, ("POST", "/v1/chat/completions"): self._chat}
            if (method, path) not in routes:
                if any(path == known for _, known in routes):
                    raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}")
                raise ApiError(HTTPStatus.NOT_FOUND, f"unknown path {path!r}", code="unknown_url")
            self._send_json(HTTPStatus.OK, routes[method, path](body))
        except ApiError as error:
            self._send_json(error.status, error.body)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, ApiError(
                HTTPStatus.INTERNAL_SERVER_ERROR, "internal server error", "server_error").body)

    def _read_body(self) -> bytes:
        try:
            length = -1 if "Transfer-Encoding" in self.headers else int(self.headers.get("Content-Length", 0))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True  # the unread body would be taken for the next request
            raise _bad(f"a request body needs a Content-Length of at most {MAX_BODY_BYTES} bytes")
        return self.rfile.read(length)

    def _authorize(self) -> None:
        expected = self.server.api_key
        if expected is None:
            return
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
            raise ApiError(HTTPStatus.UNAUTHORIZED, "invalid or missing API key", code="invalid_api_key")

    def _models(self, body: bytes) -> dict[str, Any]:
        name = self.server.chat_model.name
        return {"object": "list", "data": [{"id": name, "object": "model", "created": self.server.started, "owned_by": "envtune"}]}

    def _chat(self, body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise _bad(f"the request body is not valid JSON: {error}") from error
        chat_model = self.server.chat_model
        return chat_model.complete(parse_chat_request(payload, chat_model.name))

    def _send_json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol-level failures (bad request line, unsupported method) as JSON too."""
        self.close_connection = True
        status = HTTPStatus(code)
        self._send_json(status, ApiError(status, message or status.phrase).body)


class _ChatServer(ThreadingHTTPServer):
    daemon_threads = True  # a hung client must not keep the process alive

    def __init__(self, address: tuple[str, int], chat_model: ChatModel, api_key: str | None):
        super().__init__(address, _Handler)
        self.chat_model = chat_model
        self.api_key = api_key
        self.started = int(time.time())

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


def make_server(model_path: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
                model_name: str | None = None, placement: Placement | None = None) -> _ChatServer:
    """Load the model (default placement: `resolve_placement()`) and bind the server (port 0 picks a
    free one); nothing is served yet."""
    model, tokenizer = load_model_and_tokenizer(model_path, placement=placement or resolve_placement())
    return _ChatServer((host, port), ChatModel(model, tokenizer, model_name or str(model_path)), api_key)


class RunningServer:
    """A server answering from a background thread, for tests and notebooks."""

    def __init__(self, server: _ChatServer):
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="envtune-serve", daemon=True)
        self._thread.start()
        self.url = server.url
        self.model_name = server.chat_model.name

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def serve(model_path: str, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          model_name: str | None = None, placement: Placement | None = None) -> RunningServer:
    """Serve `model_path` in a background thread until `.close()`."""
    return RunningServer(make_server(model_path, host, port, api_key, model_name, placement))


def _api_key(variable: str | None) -> str | None:
    """The key clients must send, read from the environment so that it stays out of shell history and `ps`."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise EnvtuneError(f"--api-key-env {variable}: ${variable} is not set or is empty; export the key there, "
                           "or leave out --api-key-env to serve without one")
    return key


def cmd_serve(args: argparse.Namespace) -> int:
    api_key = _api_key(args.api_key_env)
    placement = resolve_placement(args.device, args.dtype)
    server = make_server(args.model, args.host, args.port, api_key, args.name, placement)
    print(f"serving {server.chat_model.name!r} at {server.url} on {placement.describe()} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    # No abbreviated flags: the removed `--api-key KEY` would otherwise be read as `--api-key-env KEY`.
    parser = commands.add_parser("serve", help="serve a local model over an OpenAI-compatible chat-completions API",
                                 allow_abbrev=False)
    parser.add_argument("--model", required=True, help="local path or Hugging Face id of a causal LM with a chat template ('tiny' or 'tiny-HIDDENxLAYERS': a local test model)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    parser.add_argument("--api-key-env", metavar="VAR",
                        help="require `Authorization: Bearer KEY` on every request, KEY read from the environment "
                             "variable VAR (default: no key required)")
    parser.add_argument("--name", help="model name clients must send (default: the --model value)")
    add_placement_arguments(parser)
    parser.set_defaults(handler=cmd_serve)
