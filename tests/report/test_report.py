"""`envtune report` without a browser: the conversation viewer's data, the sources it reads, the page."""

import json
import re

import pytest

from envtune.cli import main
from envtune.errors import EnvtuneError
from envtune.report.conversation import conversation_turns, split_hints
from envtune.curriculum.config import preset_path
from envtune.report.page import kept_conversations, render, report_data, table_one
from envtune.report.sources import EvalSource, read_source
from envtune.train.engine import rollout_record
from hinted_rollout import HINT_KIND, WRONG_CD, played_rollout

def test_hint_lines_are_set_apart_from_the_official_text():
    official, hints = split_hints('[1] cd: {"error": "no"}\nHint: Use ls first.\n[2] ls: {"current_directory_content": []}')
    assert official == '[1] cd: {"error": "no"}\n[2] ls: {"current_directory_content": []}'
    assert hints == ["Use ls first."]


def test_a_rollout_reads_turn_by_turn_with_its_hint_verdicts_and_ground_truth(tasks):
    task = tasks["multi_turn_base_0"]
    record = rollout_record(played_rollout(task))
    turns = conversation_turns(record, "envtune", task.ground_truth)
    assert len(turns) == task.num_turns
    first = turns[0]
    assert first["request"] == [task.turns[0][0]["content"]]
    assert first["hints"] == [HINT_KIND]
    replies = [entry for entry in first["entries"] if entry["kind"] == "reply"]
    assert replies[0]["calls"] == [WRONG_CD] and replies[0]["reading"] == "calls"
    environment = next(entry for entry in first["entries"] if entry["kind"] == "environment")
    assert "No such file or directory" in environment["text"] and "Hint:" not in environment["text"]
    assert len(environment["hints"]) == 1 and "ls" in environment["hints"][0]
    assert first["model_calls"][0] == WRONG_CD and first["model_calls"][1:] == list(task.ground_truth[0])
    assert [turn["ground_truth"] for turn in turns] == [list(calls) for calls in task.ground_truth]
    assert [turn["verdict"]["passed"] for turn in turns] == record["turn_successes"]
    assert all(turn["hints"] == [] for turn in turns[1:])


def test_an_eval_record_shows_the_decoded_calls_that_ran(tasks):
    task = tasks["multi_turn_base_0"]
    rollout = played_rollout(task)
    record = {"messages": rollout.messages, "turn_starts": list(rollout.turn_starts)[:2], "turn_verdicts": [],
              "decoded": [[["ls()"]], [["pwd()"], ["cd(folder='x')"]]], "num_turns": task.num_turns}
    turns = conversation_turns(record, "envtune", task.ground_truth)
    assert turns[0]["request"] == [task.turns[0][0]["content"]]  # the system prompt is left out
    assert [turn["model_calls"] for turn in turns] == [["ls()"], ["pwd()", "cd(folder='x')"], [], []]
    assert all(turn["verdict"] is None for turn in turns)
    # the turns a force-quit never reached: no messages, their ground truth
    assert [turn["played"] for turn in turns] == [True, True, False, False]
    assert turns[3]["entries"] == [] and turns[3]["ground_truth"] == list(task.ground_truth[3])


def test_a_record_without_turn_starts_is_one_block():
    record = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>ok</think><answer>done</answer>"}]}
    [turn] = conversation_turns(record, "envtune")
    assert turn["request"] == ["hi"] and turn["entries"][0]["reasoning"] == "ok" and turn["ground_truth"] is None


def test_the_sources_are_refused_by_name(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_source(tmp_path / "missing")
    with pytest.raises(EnvtuneError, match="neither a run directory"):
        read_source(tmp_path)
    assert main(["report", str(tmp_path), "--output", str(tmp_path / "r.html")]) == 2
    assert "neither a run directory" in capsys.readouterr().err and not (tmp_path / "r.html").exists()


def eval_source(tmp_path, name, records, summary=None) -> EvalSource:
    from envtune.eval.runner import summarize

    return EvalSource(tmp_path / name, {"model": f"model-{name}", "protocol": "envtune"}, summary or summarize(records), records)


def test_table_one_has_a_row_per_evaluation_with_its_intervals(tmp_path):
    def record(task_id, category, sample, valid):
        return {"id": task_id, "category": category, "sample": sample, "valid": valid, "request_error": None,
                "progress": 1.0 if valid else 0.0, "valid_calls": 1, "invalid_calls": 0, "format_violations": 0,
                "responses": 1, "model_tokens": 3, "total_tokens": 9}

    first = eval_source(tmp_path, "a", [record("multi_turn_base_0", "base", 0, True), record("multi_turn_base_0", "base", 1, False)])
    second = eval_source(tmp_path, "b", [record("multi_turn_miss_func_0", "miss_func", 0, True)])
    table = table_one([first, second])
    assert table["columns"] == ["base", "miss_func", "miss_param", "long_context", "overall"]
    a, b = table["rows"]
    assert (a["model"], a["cells"]["base"]["accuracy"], a["cells"]["miss_func"]) == ("model-a", 0.5, None)
    assert a["cells"]["base"]["interval95"] == pytest.approx(1.96 * 0.7071067811865476 / 2 ** 0.5)
    assert (b["cells"]["miss_func"], b["cells"]["overall"]["accuracy"]) == ({"accuracy": 1.0, "interval95": 0.0}, 1.0)


def test_the_page_inlines_everything_and_text_cannot_escape_its_script(tmp_path, tasks):
    hostile = "</script><script>alert('x')</script><img src=x onerror=alert(1)>"
    task = tasks["multi_turn_base_0"]
    rollout = played_rollout(task)
    rollout.messages[1]["content"] = hostile
    record = {"id": task.id, "sample": 0, "category": "base", "valid": False, "failing_turn": 0, "error_type": "x",
              "reason": hostile, "request_error": None, "progress": 0.0, "valid_calls": 0, "invalid_calls": 0,
              "format_violations": 0, "responses": 1, "model_tokens": 1, "total_tokens": 1,
              "messages": rollout.messages, "turn_starts": list(rollout.turn_starts), "turn_verdicts": []}
    html = render(report_data([eval_source(tmp_path, "e", [record])]))
    assert "</script><script>alert('x')" not in html and "<img src=x" not in html
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=", html, re.IGNORECASE)
    payload = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.DOTALL).group(1)
    assert json.loads(payload)["evals"][0]["records"][0]["reason"] == hostile


@pytest.mark.parametrize(("count", "limit", "kept"), [(3, 5, {0, 1, 2}), (10, 4, {0, 3, 6, 9}), (10, 1, {0}), (5, 5, {0, 1, 2, 3, 4})])
def test_a_long_run_keeps_conversations_spread_from_first_to_last(count, limit, kept):
    assert kept_conversations(count, limit) == kept


def test_conversations_past_the_limit_are_listed_without_one(tmp_path, tasks):
    task = tasks["multi_turn_base_0"]
    line = {"stage": "hints", "training_step": 1, **rollout_record(played_rollout(task))}
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(preset_path("smoke").read_text())
    (run / "state.json").write_text(json.dumps({"stages": []}))
    (run / "rollouts.jsonl").write_text("\n".join(json.dumps({**line, "training_step": step}) for step in range(1, 6)) + "\n")
    data = report_data([read_source(run)], max_conversations=2)["runs"][0]
    assert [rollout["step"] for rollout in data["rollouts"] if rollout["turns"] is not None] == [1, 5]
    assert len(data["rollouts"]) == 5 and "the conversations of 2 of 5 are kept" in data["notes"][0]
