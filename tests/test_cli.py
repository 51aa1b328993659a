"""The `envtune bfcl` commands: verify, score with clear errors on bad lines, splits, task."""

import json

import pytest

from envtune.cli import main


def write_lines(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_verify_prints_the_count(capsys):
    assert main(["bfcl", "verify"]) == 0
    assert "800/800 ground-truth entries pass" in capsys.readouterr().out


def test_score_prints_a_table_and_writes_verdicts(tmp_path, capsys, tasks):
    task = tasks["multi_turn_base_0"]
    decoded = [[list(turn)] for turn in task.ground_truth]
    broken = [["[" + ", ".join(turn) + "]"] for turn in tasks["multi_turn_miss_param_3"].ground_truth]
    broken[0] = ["I am not sure what to do."]
    results = write_lines(
        tmp_path / "results.jsonl",
        {"id": task.id, "decoded": decoded},
        {"id": "multi_turn_miss_param_3", "result": broken},
    )
    out_path = tmp_path / "out" / "verdicts.json"
    assert main(["bfcl", "score", str(results), "--json", str(out_path)]) == 0
    out = capsys.readouterr().out
    assert "base                 1       1    100.00%" in out
    assert "miss_param           0       1      0.00%" in out
    document = json.loads(out_path.read_text())
    entries = {entry["id"]: entry for entry in document["entries"]}
    assert entries[task.id]["valid"] is True
    assert entries["multi_turn_miss_param_3"] == {
        "id": "multi_turn_miss_param_3", "category": "miss_param", "valid": False, "failing_turn": 0,
        "error_type": "multi_turn:empty_turn_model_response",
        "reason": "Model response list is empty for turn 0",
    }


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"id": "multi_turn_base_0", "decoded": [[[]]]', ], "results.jsonl:1: invalid JSON"),
        ([{"id": "multi_turn_base_0", "decoded": []}, {"id": "nope", "decoded": []}], "results.jsonl:2: unknown task id 'nope'"),
        ([{"id": "multi_turn_base_0"}], "give exactly one of 'decoded' or 'result'"),
        ([{"id": "multi_turn_base_0", "decoded": [], "result": []}], "give exactly one of"),
        ([{"id": "multi_turn_base_0", "decoded": [["ls()"]]}], "'decoded' must be a list (turns) of lists (steps)"),
        ([{"id": "multi_turn_base_0", "result": [[1]]}], "'result' must be a list (turns)"),
        ([{"decoded": []}], "missing or non-string 'id'"),
        ([[1, 2]], "expected a JSON object"),
        ([{"id": "multi_turn_base_0", "decoded": []}, "", {"id": "multi_turn_base_0", "decoded": []}], "results.jsonl:3: id multi_turn_base_0 already appeared on line 1"),
        ([""], "no entries"),
    ],
)
def test_bad_lines_are_named(tmp_path, capsys, lines, message):
    results = write_lines(tmp_path / "results.jsonl", *lines)
    assert main(["bfcl", "score", str(results)]) == 2
    assert message in capsys.readouterr().err


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["bfcl", "score", str(tmp_path / "absent.jsonl")]) == 2
    assert "results file not found" in capsys.readouterr().err


def test_splits_check(capsys):
    assert main(["bfcl", "splits", "--check"]) == 0
    out = capsys.readouterr().out
    assert "heldout   400 tasks  (base 100, miss_func 100, miss_param 100, long_context 100)" in out


def test_task_shows_turns_and_tools(capsys):
    assert main(["bfcl", "task", "multi_turn_miss_func_0"]) == 0
    assert "held-out tools: turn 3: sort" in capsys.readouterr().out
    assert main(["bfcl", "task", "multi_turn_miss_func_0", "--tools", "--openai"]) == 0
    tools = json.loads(capsys.readouterr().out)
    assert "sort" not in {tool["function"]["name"] for tool in tools}
    assert main(["bfcl", "task", "multi_turn_nothing_1"]) == 2


def test_every_command_has_help(capsys):
    for argv in (["--help"], ["bfcl", "--help"], ["bfcl", "score", "--help"], ["bfcl", "fetch", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    assert "usage: envtune" in capsys.readouterr().out
