"""`envtune serve`: the tiny model behind an OpenAI-compatible API, driven by the official client."""

import json
import urllib.error
import urllib.request

import openai
import pytest
from openai import OpenAI

from envtune.eval.server import ChatModel, parse_chat_request, serve
from envtune.models import CHAT_TEMPLATE, load_model_and_tokenizer

API_KEY = "test-key"
HELLO = [{"role": "user", "content": "Hello"}]
TOOLS = [{"type": "function", "function": {"name": "ls", "description": "List files.",
                                            "parameters": {"type": "object", "properties": {}}}}]


@pytest.fixture(scope="module")
def server():
    running = serve("tiny", host="127.0.0.1", port=0, api_key=API_KEY)
    yield running
    running.close()


@pytest.fixture
def client(server):
    return OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=30)


def chat(client, **kwargs):
    return client.chat.completions.create(**{"model": "tiny", "messages": HELLO, "max_tokens": 8, **kwargs})


def test_the_served_model_is_listed(client):
    assert [model.id for model in client.models.list()] == ["tiny"]


def test_a_completion_has_content_and_usage(client):
    response = chat(client, temperature=1.0, seed=1)
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == "tiny"
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = response.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 8
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_greedy_decoding_is_deterministic(client):
    first, second = (chat(client, temperature=0) for _ in range(2))
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage == second.usage


def test_a_seeded_sample_repeats_and_stop_cuts_it(client):
    first, second = (chat(client, temperature=1.0, seed=7) for _ in range(2))
    content = first.choices[0].message.content
    assert content == second.choices[0].message.content and len(content) >= 4
    stop = content[2:4]
    stopped = chat(client, temperature=1.0, seed=7, stop=[stop]).choices[0]
    assert stopped.message.content == content[:content.index(stop)] and stopped.finish_reason == "stop"


def test_max_tokens_caps_the_completion(client):
    # The random tiny model essentially never emits its end token within 3 tokens.
    response = chat(client, temperature=0, max_completion_tokens=3)
    assert response.usage.completion_tokens == 3 and response.choices[0].finish_reason == "length"


def test_tools_are_accepted(client):
    assert chat(client, temperature=0, tools=TOOLS).choices[0].message.role == "assistant"


def test_tools_reach_the_chat_template():
    # The tiny template ignores tools; one that renders them shows they are passed as `tools=`.
    model, tokenizer = load_model_and_tokenizer("tiny")
    tokenizer.chat_template = "{%- if tools %}{{- tools | tojson }}{%- endif %}" + CHAT_TEMPLATE
    chat_model = ChatModel(model, tokenizer, "tiny")

    def prompt_tokens(**fields):
        request = parse_chat_request({"model": "tiny", "messages": HELLO, "max_tokens": 1, **fields}, "tiny")
        return chat_model.complete(request)["usage"]["prompt_tokens"]

    assert prompt_tokens(tools=TOOLS) > prompt_tokens()


def test_a_wrong_api_key_is_refused(server):
    with pytest.raises(openai.AuthenticationError):
        chat(OpenAI(base_url=server.url, api_key="wrong", max_retries=0))


def test_an_unknown_model_is_a_bad_request(client):
    with pytest.raises(openai.BadRequestError) as raised:
        chat(client, model="gpt-4o")
    assert raised.value.code == "model_not_found" and raised.value.param == "model"


def post(server, path, data, api_key=API_KEY):
    request = urllib.request.Request(server.url + path, data=data, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {api_key}"})
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=30)
    error = raised.value
    with error:
        return error.code, error.headers["Content-Type"], json.load(error)


def test_malformed_json_is_a_400_json_error(server):
    status, content_type, body = post(server, "/chat/completions", b"{not json")
    assert (status, content_type) == (400, "application/json")
    assert body["error"]["type"] == "invalid_request_error" and "not valid JSON" in body["error"]["message"]


@pytest.mark.parametrize("body, param", [
    ({"model": "tiny"}, "messages"),
    ({"model": "tiny", "messages": HELLO, "n": 2}, "n"),
    ({"model": "tiny", "messages": HELLO, "temperature": "hot"}, "temperature"),
    ({"model": "tiny", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
])
def test_invalid_fields_are_named_in_the_error(server, body, param):
    status, _, error = post(server, "/chat/completions", json.dumps(body).encode())
    assert status == 400 and error["error"]["param"] == param


def test_unknown_paths_are_404_and_the_server_keeps_serving(server, client):
    status, _, body = post(server, "/completions", b"{}")
    assert status == 404 and "error" in body
    assert chat(client, temperature=0, max_tokens=2).usage.completion_tokens == 2


def test_eval_drives_a_served_model_end_to_end(server, tmp_path, monkeypatch, capsys):
    """`envtune eval --base-url` through the official client against the loopback server."""
    from envtune.cli import main
    from envtune.run_files import read_jsonl

    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    ids = "multi_turn_base_0,multi_turn_miss_func_0"
    argv = ["eval", "--base-url", server.url, "--model", "tiny", "--ids", ids, "--protocol", "prompt",
            "--max-new-tokens", "8", "--max-steps-per-turn", "2", "--output", str(tmp_path)]
    assert main(argv) == 0
    records = read_jsonl(tmp_path / "results.jsonl")
    assert sorted(record["id"] for record in records) == sorted(ids.split(","))
    assert all(record["request_error"] is None and record["model_tokens"] > 0 for record in records)
    assert records[0]["messages"][0]["content"].startswith("You are an expert in composing functions.")  # the official prompt
    assert main(["eval", "--rescore", str(tmp_path)]) == 0
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")  # refused before the run, which never starts
    assert main([*argv[:-1], str(tmp_path / "refused")]) == 2
    assert "the API key in $OPENAI_API_KEY was refused" in capsys.readouterr().err
    assert not (tmp_path / "refused" / "results.jsonl").exists()


@pytest.fixture
def started(monkeypatch):
    """`envtune serve` up to the point where it would serve: the bound server, which then stops."""
    from envtune.eval import server as server_module

    bound = []
    monkeypatch.setattr(server_module._ChatServer, "serve_forever", lambda self: bound.append(self))
    return bound


def test_serve_reads_its_key_from_the_named_environment_variable(started, monkeypatch):
    from envtune.cli import main

    monkeypatch.setenv("ENVTUNE_TEST_SERVE_KEY", API_KEY)
    assert main(["serve", "--model", "tiny", "--port", "0", "--device", "cpu", "--api-key-env", "ENVTUNE_TEST_SERVE_KEY"]) == 0
    assert main(["serve", "--model", "tiny", "--port", "0", "--device", "cpu"]) == 0
    assert [server.api_key for server in started] == [API_KEY, None]  # without --api-key-env no key is required


@pytest.mark.parametrize("value", [None, ""])
def test_serve_refuses_an_unset_or_empty_key_variable(started, monkeypatch, capsys, value):
    from envtune.cli import main

    if value is None:
        monkeypatch.delenv("ENVTUNE_TEST_SERVE_KEY", raising=False)
    else:
        monkeypatch.setenv("ENVTUNE_TEST_SERVE_KEY", value)
    assert main(["serve", "--model", "tiny", "--port", "0", "--api-key-env", "ENVTUNE_TEST_SERVE_KEY"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "$ENVTUNE_TEST_SERVE_KEY is not set or is empty" in lines[0]
    assert started == []


def test_serve_takes_no_key_on_the_command_line(capsys):
    from envtune.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", "tiny", "--api-key", API_KEY])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --api-key" in capsys.readouterr().err
