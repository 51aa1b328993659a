"""`envtune eval`: official rules and verdicts, resume, rescore, the official export format."""

import json

import pytest

from envtune.bfcl.decoding import decode_prompt_output
from envtune.bfcl.tasks import CATEGORIES
from envtune.cli import main
from envtune.env.oracle import oracle_reply
from envtune.eval import runner
from envtune.eval.cli import select_tasks
from envtune.eval.runner import EvalConfig, evaluate, rescore
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


def stratified(count_per_category):
    tasks = select_tasks("test", None, None)
    return [task for category in CATEGORIES for task in [t for t in tasks if t.category == category][:count_per_category]]


def test_the_oracle_scores_100_percent_and_rescoring_reproduces_it(tmp_path, tokenizer, monkeypatch):
    backend = OracleBackend(tokenizer).watch(monkeypatch)
    tasks = stratified(5)
    summary = evaluate(tasks, backend, tokenizer, EvalConfig(batch_size=8), tmp_path, model="oracle")
    assert {category: row["accuracy"] for category, row in summary["categories"].items()} == dict.fromkeys(CATEGORIES, 1.0)
    assert summary["overall"] == 1.0 and summary["progress"] == 1.0 and summary["format_error_rate"] == 0.0
    assert rescore(tmp_path) == []
    records = read_jsonl(tmp_path / "results.jsonl")
    assert len(records) == 20 and all(record["messages"][0]["role"] == "system" for record in records)
    exported = {row["id"]: row["result"] for row in read_jsonl(tmp_path / "bfcl_result.jsonl")}
    for record in records:  # the official prompt-mode decoder reads the export back into the same calls
        assert [[decode_prompt_output(text) for text in turn] for turn in exported[record["id"]]] == record["decoded"]


def test_rescoring_finds_a_tampered_verdict(tmp_path, tokenizer, monkeypatch):
    evaluate(stratified(1), OracleBackend(tokenizer).watch(monkeypatch), tokenizer, EvalConfig(), tmp_path)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["decoded"][-1] = []  # drop the calls of the last turn
    (tmp_path / "results.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    assert len(rescore(tmp_path)) == 1


def test_resume_skips_finished_tasks(tmp_path, tokenizer, monkeypatch):
    backend = OracleBackend(tokenizer).watch(monkeypatch)
    tasks = stratified(1)
    evaluate(tasks[:2], backend, tokenizer, EvalConfig(), tmp_path)
    with pytest.raises(FileExistsError, match="pass --resume"):
        evaluate(tasks, backend, tokenizer, EvalConfig(), tmp_path)
    with pytest.raises(ValueError, match="different settings \\(feedback\\)"):
        evaluate(tasks, backend, tokenizer, EvalConfig(feedback="augmented"), tmp_path, resume=True)
    backend.played.clear()
    summary = evaluate(tasks, backend, tokenizer, EvalConfig(), tmp_path, resume=True)
    assert backend.played == [task.id for task in tasks[2:]]
    assert summary["entries"] == 4 and len(read_jsonl(tmp_path / "results.jsonl")) == 4


def test_several_samples_report_an_interval(tmp_path, tokenizer, monkeypatch):
    summary = evaluate(stratified(1), OracleBackend(tokenizer).watch(monkeypatch), tokenizer, EvalConfig(samples=3), tmp_path)
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
