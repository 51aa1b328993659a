"""`envtune eval`: official rules and verdicts, resume, rescore, the official export format."""

import json

import pytest

from envtune.bfcl.decoding import decode_prompt_output
from envtune.bfcl.tasks import CATEGORIES
from envtune.cli import main
from envtune.env.oracle import oracle_reply
from envtune.eval import runner
from envtune.eval.cli import select_tasks
from envtune.eval.runner import EvalConfig, evaluate, play_tokens, rescore
from envtune.io import read_jsonl
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer


@pytest.fixture(scope="module")
def tokenizer():
    return load_model_and_tokenizer("tiny")[1]


class OracleBackend:
    """Plays the ground-truth oracle; sees the episodes of each engine run through `watch`."""

    def __init__(self, tokenizer):
        self.renderer = ChatRenderer(tokenizer)
        self.eos_token_id = tokenizer.eos_token_id
        self.episodes, self.played = [], []

    def watch(self, monkeypatch):
        backend, original = self, runner.RolloutEngine

        class Watching(original):
            def run(self, episodes):
                backend.episodes = episodes
                backend.played += [episode.task.id for episode in episodes]
                return super().run(episodes)

        monkeypatch.setattr(runner, "RolloutEngine", Watching)
        return self

    def generate(self, requests, sampling):
        return [self.renderer.encode(oracle_reply(self.episodes[request.episode])) + [self.eos_token_id] for request in requests]


def local(backend, tokenizer, config):
    return lambda episodes, sample: play_tokens(episodes, sample, backend=backend, tokenizer=tokenizer, config=config)


def stratified(count_per_category):
    tasks = select_tasks("test", None, None)
    return [task for category in CATEGORIES for task in [t for t in tasks if t.category == category][:count_per_category]]


def test_the_oracle_scores_100_percent_and_rescoring_reproduces_it(tmp_path, tokenizer, monkeypatch):
    backend = OracleBackend(tokenizer).watch(monkeypatch)
    tasks = stratified(5)
    config = EvalConfig(batch_size=8)
    summary = evaluate(tasks, local(backend, tokenizer, config), config, tmp_path, model="oracle")
    assert {category: row["accuracy"] for category, row in summary["categories"].items()} == dict.fromkeys(CATEGORIES, 1.0)
    assert summary["overall"] == 1.0 and summary["progress"] == 1.0 and summary["format_error_rate"] == 0.0
    assert rescore(tmp_path) == []
    records = read_jsonl(tmp_path / "results.jsonl")
    assert len(records) == 20 and all(record["messages"][0]["role"] == "system" for record in records)
    exported = {row["id"]: row["result"] for row in read_jsonl(tmp_path / "bfcl_result.jsonl")}
    for record in records:  # the official prompt-mode decoder reads the export back into the same calls
        assert [[decode_prompt_output(text) for text in turn] for turn in exported[record["id"]]] == record["decoded"]


def test_rescoring_finds_a_tampered_verdict(tmp_path, tokenizer, monkeypatch):
    evaluate(stratified(1), local(OracleBackend(tokenizer).watch(monkeypatch), tokenizer, EvalConfig()), EvalConfig(), tmp_path)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["decoded"][-1] = []  # drop the calls of the last turn
    (tmp_path / "results.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    assert len(rescore(tmp_path)) == 1


def test_resume_skips_finished_tasks(tmp_path, tokenizer, monkeypatch):
    backend = OracleBackend(tokenizer).watch(monkeypatch)
    tasks = stratified(1)
    policy = local(backend, tokenizer, EvalConfig())
    evaluate(tasks[:2], policy, EvalConfig(), tmp_path)
    with pytest.raises(FileExistsError, match="pass --resume"):
        evaluate(tasks, policy, EvalConfig(), tmp_path)
    with pytest.raises(ValueError, match="different settings \\(feedback\\)"):
        evaluate(tasks, policy, EvalConfig(feedback="augmented"), tmp_path, resume=True)
    backend.played.clear()
    summary = evaluate(tasks, policy, EvalConfig(), tmp_path, resume=True)
    assert backend.played == [task.id for task in tasks[2:]]
    assert summary["entries"] == 4 and len(read_jsonl(tmp_path / "results.jsonl")) == 4


def test_several_samples_report_an_interval(tmp_path, tokenizer, monkeypatch):
    config = EvalConfig(samples=3)
    summary = evaluate(stratified(1), local(OracleBackend(tokenizer).watch(monkeypatch), tokenizer, config), config, tmp_path)
    assert summary["samples"] == 3 and summary["entries"] == 12
    assert summary["categories"]["base"] == {"accuracy": 1.0, "interval95": 0.0, "entries": 3}


def test_the_command_runs_a_local_model_end_to_end(tmp_path, capsys):
    ids = "multi_turn_base_0,multi_turn_miss_param_0"
    argv = ["eval", "--model", "tiny", "--ids", ids, "--max-new-tokens", "8", "--max-completion-tokens", "24",
            "--output", str(tmp_path)]
    assert main(argv) == 0
    assert "overall" in capsys.readouterr().out
    assert main(["eval", "--rescore", str(tmp_path)]) == 0
    assert "all stored verdicts reproduced" in capsys.readouterr().out
    assert main(["eval", "--model", "tiny", "--ids", "multi_turn_nothing_9"]) == 2


class OracleEndpoint:
    """Stands in for a served model: answers each conversation with the oracle, in the protocol's shape;
    the conversation of `fail_task` fails as a request would after its retries."""

    def __init__(self, protocol, fail_task=None):
        self.protocol, self.fail_task, self.episodes = protocol, fail_task, []

    def _reply(self, episode):
        calls = episode.task.ground_truth[episode.turn]
        if not calls or episode.step_in_turn > 0:
            return {"role": "assistant", "content": "Done."}
        structured = [episode.checker.model.describe(call) for call in calls]
        if self.protocol == "native":
            return {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"c{index}", "type": "function", "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
                for index, call in enumerate(structured)]}
        return {"role": "assistant", "content": "[" + ", ".join(call.to_python() for call in structured) + "]"}

    def complete_many(self, requests, sampling):
        from envtune.eval.api import ChatResult

        # the requests come in the order of the episodes still playing (base and long-context tasks
        # share their requests, so the text alone cannot tell them apart)
        playing = [episode for episode in self.episodes if not episode.done and episode.task.id != self.fail_task]
        playing += [episode for episode in self.episodes if episode.task.id == self.fail_task and episode.info()["responses"] == 0
                    and not getattr(self, "failed", False)]
        playing.sort(key=self.episodes.index)
        assert len(playing) == len(requests)
        results = []
        for episode, (messages, tools) in zip(playing, requests):
            assert messages[1]["content"] == episode.task.turns[0][0]["content"]
            assert (tools is not None) == (self.protocol == "native")
            if episode.task.id == self.fail_task:
                self.failed = True
                results.append(ChatResult(None, "APIConnectionError after 5 attempts: refused", attempts=5))
            else:
                results.append(ChatResult(self._reply(episode), prompt_tokens=10, completion_tokens=3))
        return results


@pytest.mark.parametrize("protocol", ["prompt", "native"])
def test_a_served_model_is_driven_message_by_message(tmp_path, protocol):
    from envtune.eval.runner import play_chat

    tasks = stratified(2)
    endpoint = OracleEndpoint(protocol, fail_task=tasks[0].id)
    config = EvalConfig(protocol=protocol, prompt="basic")

    def policy(episodes, sample):
        endpoint.episodes = episodes
        return play_chat(episodes, sample, endpoint=endpoint, config=config)

    summary = evaluate(tasks, policy, config, tmp_path)
    records = {record["id"]: record for record in read_jsonl(tmp_path / "results.jsonl")}
    failed = records.pop(tasks[0].id)
    assert failed["valid"] is False and failed["request_error"].startswith("APIConnectionError")
    assert all(record["valid"] and record["request_error"] is None for record in records.values())
    assert summary["entries"] == 8 and summary["model_tokens"] > 0
