"""The oracle reaches progress 1.0 everywhere; play, replay and coverage work from the command line."""

import json

import pytest

from envtune.bfcl.tasks import load_tasks
from envtune.cli import main
from envtune.env import EpisodeConfig
from envtune.env.oracle import replay
from envtune.feedback.coverage import measure


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["standard", "augmented"])
def test_the_oracle_solves_every_task(mode):
    outcomes = [replay(task, EpisodeConfig(feedback=mode)) for task in load_tasks()]
    assert [outcome for outcome in outcomes if outcome.progress != 1.0] == []


@pytest.mark.slow
def test_hints_cover_the_error_surface_without_leaking():
    report = measure(load_tasks(), progress=False)
    assert len(report.kinds) > 300 and report.errors > 10_000
    assert report.covered_share >= 0.90
    assert report.leaks == []


def test_replay_command(capsys):
    assert main(["replay", "--split", "format", "--mode", "augmented"]) == 0
    assert "75/75 tasks reach progress 1.0 (split format, augmented feedback" in capsys.readouterr().out


def test_play_from_a_script(tmp_path, capsys):
    script = tmp_path / "replies.txt"
    script.write_text(
        "<think>look</think><tool_call>[{\"name\": \"cd\", \"arguments\": {\"folder\": \"document/x\"}}]</tool_call>\n"
        "---\n<think>done</think><answer>ok</answer>\n"
    )
    assert main(["play", "multi_turn_base_0", "--mode", "augmented", "--script", str(script)]) == 0
    out = capsys.readouterr().out
    assert "Hint: " in out and "== turn 0 closed: failed" in out
    assert "episode stopped at turn 1 of" in out and "rewards: format" in out


def test_play_reads_a_json_script_and_rejects_a_bad_one(tmp_path, capsys):
    good = tmp_path / "replies.json"
    good.write_text(json.dumps(["<think>x</think><answer>no</answer>"]))
    assert main(["play", "multi_turn_base_0", "--script", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"reply": 1}))
    assert main(["play", "multi_turn_base_0", "--script", str(bad)]) == 2
    assert "must be a list of reply strings" in capsys.readouterr().err
