"""Evaluating a served model: a preflight that names what is wrong, episodes that advance on their
own, request errors reported apart from accuracy and retried by --resume."""

from __future__ import annotations

import json
import threading
import time

import pytest

from envtune.cli import main
from envtune.eval.api import ChatResult, EndpointConfig
from envtune.eval.players import play_endpoint
from envtune.eval.runner import EvalConfig
from envtune.eval.scripted import DONE_TEXT, Faults, ScriptedModel, serve_scripted
from envtune.run_files import read_jsonl

IDS = "multi_turn_base_0,multi_turn_base_1,multi_turn_miss_param_0,multi_turn_long_context_0,multi_turn_miss_func_0,multi_turn_base_2"


@pytest.fixture(scope="module")
def oracle_model():
    return ScriptedModel(noise=0)  # the ground truth in one step per turn, then an answer


def run_eval(server, tmp_path, *extra):
    return main(["eval", "--base-url", server.url, "--model", server.model_name, "--protocol", "prompt",
                 "--ids", IDS, "--output", str(tmp_path / "run"), "--retries", "1", *extra])


def test_a_served_oracle_scores_every_task(tmp_path, oracle_model, capsys):
    server = serve_scripted(model=oracle_model)
    try:
        assert run_eval(server, tmp_path) == 0
    finally:
        server.close()
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["overall"] == 1.0 and summary["request_errors"] == 0 and summary["entries"] == 6


@pytest.mark.parametrize(("setup", "message"), [
    ("unreachable", "endpoint http://127.0.0.1:{port}/v1 cannot be reached"),
    ("wrong key", "the API key in $OPENAI_API_KEY was refused"),
    ("no key", "the API key in $OPENAI_API_KEY is not set"),
    ("unknown model", "does not serve model 'no-such-model'"),
])
def test_the_preflight_ends_the_command_at_once_naming_the_endpoint(setup, message, oracle_model, monkeypatch, capsys, tmp_path):
    server = serve_scripted(model=oracle_model, api_key="right-key")
    port = server.url.rsplit(":", 1)[1].split("/")[0]
    model = server.model_name
    if setup == "unreachable":
        server.close()
    monkeypatch.setenv("OPENAI_API_KEY", "wrong-key" if setup == "wrong key" else "right-key")
    if setup == "no key":
        monkeypatch.delenv("OPENAI_API_KEY")
    if setup == "unknown model":
        model = "no-such-model"
    try:
        code = main(["eval", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", model, "--ids", IDS,
                     "--output", str(tmp_path / "run"), "--retries", "0"])
    finally:
        if setup != "unreachable":
            server.close()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message.format(port=port) in err[0]
    assert not (tmp_path / "run" / "results.jsonl").exists()  # nothing was run


def test_request_errors_are_reported_apart_and_resume_retries_only_them(tmp_path, oracle_model, capsys):
    broken = serve_scripted(Faults(broken_rate=0.08, seed=3), oracle_model)
    try:
        assert run_eval(broken, tmp_path) == 1
    finally:
        broken.close()
    captured = capsys.readouterr()
    first = {record["id"]: record for record in read_jsonl(tmp_path / "run" / "results.jsonl")}
    failed = sorted(task_id for task_id, record in first.items() if record["request_error"])
    assert 0 < len(failed) < 6 and len(first) == 6
    assert "run the same command with --resume to retry them" in captured.err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["request_errors"] == len(failed)
    completed_share = {category: row["accuracy_completed"] for category, row in summary["categories"].items()}
    assert all(share in (1.0, None) for share in completed_share.values())  # every completed task passes
    assert summary["overall"] < 1.0  # errors count as failures, as on the leaderboard
    assert f"{summary['request_errors']:>8}" in captured.out or "errors" in captured.out

    healthy = serve_scripted(model=oracle_model)
    try:
        assert run_eval(healthy, tmp_path, "--resume") == 0
    finally:
        healthy.close()
    lines = read_jsonl(tmp_path / "run" / "results.jsonl")
    assert sorted(record["id"] for record in lines[6:]) == failed  # only the failed tasks ran again
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["overall"] == 1.0 and summary["request_errors"] == 0


class SlowForOneTask:
    """An endpoint stand-in: requests of one task take long, the others answer at once."""

    def __init__(self, slow_request: str):
        self.config = EndpointConfig("http://127.0.0.1:1/v1", "stand-in", concurrency=2)
        self.slow_request = slow_request
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def complete(self, messages, tools, sampling) -> ChatResult:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if messages[1]["content"] == self.slow_request:
            time.sleep(1.0)
        with self.lock:
            self.in_flight -= 1
        return ChatResult({"role": "assistant", "content": DONE_TEXT}, prompt_tokens=5, completion_tokens=2)


def test_a_slow_request_holds_up_only_its_own_episode(tasks):
    chosen = [tasks[f"multi_turn_base_{index}"] for index in range(6)]
    assert len({task.turns[0][0]["content"] for task in chosen}) == 6
    endpoint = SlowForOneTask(chosen[0].turns[0][0]["content"])  # every request of base_0 takes a second
    config = EvalConfig(protocol="prompt", prompt="bfcl")
    finished = [record["id"] for record in play_endpoint([(task, 0) for task in chosen], endpoint=endpoint, config=config)]
    assert finished == [task.id for task in chosen[1:]] + [chosen[0].id]  # the other five went on meanwhile
    assert endpoint.most_in_flight == 2  # never more requests at once than --concurrency


def test_device_flags_are_refused_for_an_endpoint(capsys):
    assert main(["eval", "--base-url", "http://127.0.0.1:1/v1", "--model", "m", "--device", "cpu"]) == 2
    assert "--device applies to local models" in capsys.readouterr().err
