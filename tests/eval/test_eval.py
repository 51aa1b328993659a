"""`envtune eval`: official rules and verdicts, resume, rescore, the official export format."""

import json
import os
import stat
from functools import partial

import pytest

from envtune.bfcl.decoding import decode_prompt_output
from envtune.bfcl.tasks import CATEGORIES
from envtune.cli import main
from envtune.env.oracle import oracle_reply
from envtune.eval import players
from envtune.eval.cli import default_output, select_tasks
from envtune.eval.players import play_local
from envtune.eval.runner import EvalConfig, RunningScore, evaluate, rescore
from envtune.run_files import DirectoryInUse, exclusive_directory, read_jsonl
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
        self.end_token_ids = (tokenizer.eos_token_id,)
        self.episodes, self.played = [], []

    def watch(self, monkeypatch):
        backend, original = self, players.RolloutEngine

        class Watching(original):
            def run(self, episodes):
                backend.episodes = episodes
                backend.played += [episode.task.id for episode in episodes]
                return super().run(episodes)

        monkeypatch.setattr(players, "RolloutEngine", Watching)
        return self

    def generate(self, requests, sampling):
        return [self.renderer.encode(oracle_reply(self.episodes[request.episode_index])) + [self.eos_token_id] for request in requests]


def local(backend, tokenizer, config):
    return partial(play_local, backend=backend, tokenizer=tokenizer, config=config)


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
    assert rescore(tmp_path)[1] == []
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
    assert len(rescore(tmp_path)[1]) == 1


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
    assert summary["categories"]["base"] == {
        "accuracy": 1.0, "interval95": 0.0, "entries": 3, "request_errors": 0, "accuracy_completed": 1.0}


def test_the_progress_bar_shows_the_running_accuracy_and_request_errors():
    score = RunningScore()
    assert score.describe() == "accuracy -"
    for valid, error in [(True, None), (False, None), (True, None), (False, "timed out")]:
        score.add({"valid": valid, "request_error": error})
        if score.finished == 3:
            assert score.describe() == "accuracy 66.7%"
    assert score.describe() == "accuracy 50.0%, 1 request error"


def test_the_command_runs_a_local_model_end_to_end(tmp_path, capsys):
    ids = "multi_turn_base_0,multi_turn_miss_param_0"
    argv = ["eval", "--model", "tiny", "--ids", ids, "--max-new-tokens", "8", "--max-completion-tokens", "24",
            "--output", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "overall" in captured.out
    assert "loading model tiny on cpu (float32) ..." in captured.err and "Loading weights" not in captured.err
    assert main(["eval", "--rescore", str(tmp_path)]) == 0
    assert "all stored verdicts reproduced" in capsys.readouterr().out
    assert main(["eval", "--model", "tiny", "--ids", "multi_turn_nothing_9"]) == 2



def test_a_line_cut_by_a_kill_is_removed_and_its_task_played_again(tmp_path, tokenizer, monkeypatch, capsys):
    backend = OracleBackend(tokenizer).watch(monkeypatch)
    tasks, config = stratified(1), EvalConfig()
    evaluate(tasks, local(backend, tokenizer, config), config, tmp_path)
    results = tmp_path / "results.jsonl"
    data = results.read_bytes()
    results.write_bytes(data[:-40])  # kill -9 in the middle of the last line
    backend.played.clear()
    summary = evaluate(tasks, local(backend, tokenizer, config), config, tmp_path, resume=True)
    assert "cut short by an interrupted run" in capsys.readouterr().err
    assert backend.played == [tasks[-1].id]
    lines = results.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [task.id for task in tasks]  # every line parses
    assert summary["entries"] == 4 and summary["overall"] == 1.0


def test_two_runs_on_one_directory_at_once_are_refused(tmp_path, tokenizer, monkeypatch):
    policy = local(OracleBackend(tokenizer).watch(monkeypatch), tokenizer, EvalConfig())
    with exclusive_directory(tmp_path):  # another run holds the directory
        with pytest.raises(DirectoryInUse, match=f"in use by another run \\(pid {os.getpid()}\\).*another --output"):
            evaluate(stratified(1), policy, EvalConfig(), tmp_path)
    evaluate(stratified(1), policy, EvalConfig(), tmp_path)  # released: the next run goes ahead


def test_result_files_are_readable_like_ordinary_files(tmp_path, tokenizer, monkeypatch):
    evaluate(stratified(1), local(OracleBackend(tokenizer).watch(monkeypatch), tokenizer, EvalConfig()), EvalConfig(), tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    for name in ("summary.json", "eval_config.json", "bfcl_result.jsonl", "results.jsonl"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask, name


def test_default_output_directories_do_not_collide(tmp_path):
    (tmp_path / "a" / "best-step-40").mkdir(parents=True)
    (tmp_path / "b" / "best-step-40").mkdir(parents=True)
    first, second = default_output(str(tmp_path / "a" / "best-step-40"), None), default_output(str(tmp_path / "b" / "best-step-40"), None)
    assert first != second and first.name.startswith("best-step-40-") and first.parent == second.parent
    assert default_output("m", "http://a/v1") != default_output("m", "http://b/v1")
    assert default_output("m", "http://a/v1") == default_output("m", "http://a/v1")  # stable, so --resume finds it


def test_rescore_prints_the_rescored_table_and_writes_only_when_asked(tmp_path, tokenizer, monkeypatch, capsys):
    evaluate(stratified(1), local(OracleBackend(tokenizer).watch(monkeypatch), tokenizer, EvalConfig()), EvalConfig(), tmp_path)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["decoded"][-1] = []  # the stored verdict says valid; the calls no longer pass
    (tmp_path / "results.jsonl").write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()}
    capsys.readouterr()
    assert main(["eval", "--rescore", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"MISMATCH {record['id']}" in out and "1 differ" in out
    assert f"{record['category']:<14}{1:>8}{0:>8}{'0.00%':>12}" in out  # the table shows the rescored verdict
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir() if path.is_file()} == before
    assert main(["eval", "--rescore", str(tmp_path), "--write"]) == 1
    assert json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])["valid"] is False
    assert json.loads((tmp_path / "summary.json").read_text())["overall"] == 0.75
    assert main(["eval", "--rescore", str(tmp_path)]) == 0  # the rewritten verdicts reproduce


@pytest.mark.parametrize(("argv", "message"), [
    (["--ids", ","], "--ids ',' names no task"),
    (["--rescore", "/nonexistent/run"], "--rescore /nonexistent/run: not an eval directory"),
    (["--output", "README.md", "--ids", "multi_turn_base_0"], "--output README.md is a file"),
    (["--concurrency", "0"], "argument --concurrency: expected a positive integer, got '0'"),
    (["--timeout", "-1"], "argument --timeout: expected a positive number, got '-1'"),
    (["--samples", "0"], "argument --samples: expected a positive integer, got '0'"),
    (["--max-steps-per-turn", "0"], "argument --max-steps-per-turn: expected a positive integer, got '0'"),
    (["--retries", "-2"], "argument --retries: expected an integer of 0 or more, got '-2'"),
    (["--base-url", "localhost:8000/v1", "--ids", "multi_turn_base_0"], "--base-url 'localhost:8000/v1' is not an http(s) URL"),
    (["--write"], "--write applies to --rescore only"),
])
def test_bad_input_gets_one_line_naming_the_flag_and_status_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(["eval", "--model", "tiny", *argv]))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in captured.err
