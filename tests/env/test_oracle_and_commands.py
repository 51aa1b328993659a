"""The oracle reaches progress 1.0 everywhere; play, replay and coverage work from the command line."""

import json

import pytest

from envtune.bfcl.tasks import load_tasks
from envtune.cli import main
from envtune.env import Episode, EpisodeConfig
from envtune.env.oracle import oracle_reply, replay
from envtune.errors import EnvtuneError
from envtune.feedback.coverage import measure


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["standard", "augmented"])
@pytest.mark.parametrize("protocol, prompt", [("envtune", "basic"), ("prompt", "bfcl")])
def test_the_oracle_solves_every_task(mode, protocol, prompt):
    outcomes = [replay(task, EpisodeConfig(feedback=mode, protocol=protocol, prompt=prompt)) for task in load_tasks()]
    assert [outcome for outcome in outcomes if outcome.progress != 1.0] == []


@pytest.mark.slow
def test_hints_cover_the_error_surface_without_leaking():
    report = measure(load_tasks(), progress=False)
    assert len(report.kinds) > 300 and report.errors > 10_000
    assert report.covered_share >= 0.90
    assert report.leaks == []


def test_replay_command(capsys):
    assert main(["replay", "--split", "format", "--feedback", "augmented"]) == 0
    assert "75/75 tasks reach progress 1.0 (split format, augmented feedback" in capsys.readouterr().out


def test_replay_in_the_prompt_protocol_with_the_official_prompt(capsys):
    assert main(["replay", "--split", "format", "--protocol", "prompt", "--prompt", "bfcl"]) == 0
    assert "75/75 tasks reach progress 1.0 (split format, standard feedback, oracle in the prompt protocol)" in capsys.readouterr().out


def test_replay_refuses_the_official_prompt_outside_its_protocol_in_one_line(capsys):
    assert main(["replay", "--split", "format", "--prompt", "bfcl"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "use it with protocol='prompt'" in lines[0] and "Traceback" not in captured.err
    assert captured.out == ""


def test_the_oracle_names_the_protocols_it_speaks(tasks):
    with Episode(tasks["multi_turn_base_0"], EpisodeConfig(protocol="native")) as episode:
        episode.reset()
        with pytest.raises(EnvtuneError, match="the oracle replies in the envtune or prompt protocol, not 'native'"):
            oracle_reply(episode)


def test_play_from_a_script(tmp_path, capsys):
    script = tmp_path / "replies.txt"
    script.write_text(
        "<think>look</think><tool_call>[{\"name\": \"cd\", \"arguments\": {\"folder\": \"document/x\"}}]</tool_call>\n"
        "---\n<think>done</think><answer>ok</answer>\n"
    )
    assert main(["play", "multi_turn_base_0", "--feedback", "augmented", "--script", str(script)]) == 0
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
