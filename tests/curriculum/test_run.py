"""The run around the engines, with an engine that trains nothing: stages in order, hand-off, resume,
the run directory's files, and refusals of a directory that holds another run."""

import json

import pytest
import yaml

from envtune.cli import main
from envtune.curriculum.config import override_episodes, parse_config
from envtune.curriculum.run import CurriculumRun, StageResult
from envtune.curriculum.transition import StageHistory
from envtune.errors import EnvtuneError

CONFIG = parse_config({
    "name": "three",
    "defaults": {"transition": {"patience": 2, "min_steps": 1}},
    "stages": [{"name": name, "split": "train", "reward": "progress", "max_steps": 2} for name in ("a", "b", "c")],
})


class RecordingEngine:
    """Finishes each stage at once; stage "b" has no best checkpoint, so its last one is handed on."""

    name = "fake"

    def __init__(self):
        self.started = []

    def run_stage(self, run, index, stage, start_from):
        self.started.append((stage.name, start_from))
        decision = run.decide(stage, StageHistory(steps=2, val_accuracy=[(0, 0.1), (2, 0.3)]))
        directory = run.stage_dir(index, stage)
        return StageResult(name=stage.name, steps=2, best_checkpoint=None if stage.name == "b" else str(directory / "best"),
                           last_checkpoint=str(directory / "last"), best_accuracy=decision.best_accuracy,
                           best_step=decision.best_step, decision=decision.reason)


def test_stages_run_in_order_and_each_starts_from_the_previous_hand_off(tmp_path):
    engine = RecordingEngine()
    summary = CurriculumRun(CONFIG, "base-model", tmp_path, None, engine).run()
    stages = tmp_path / "stages"
    assert engine.started == [("a", "base-model"), ("b", str(stages / "01-a" / "best")), ("c", str(stages / "02-b" / "last"))]
    assert summary["final_checkpoint"] == str(stages / "03-c" / "best") and summary["engine"] == "fake"
    # the same keys as the runs before StageResult: no handed_off_step unless the engine gives one
    assert list(summary["stages"][0]) == ["name", "steps", "best_checkpoint", "last_checkpoint", "best_accuracy",
                                          "best_step", "decision"]
    decisions = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [(d["stage"], d["step"], d["best_step"]) for d in decisions] == [("a", 2, 2), ("b", 2, 2), ("c", 2, 2)]
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_a_rerun_skips_finished_stages(tmp_path):
    CurriculumRun(CONFIG, "base-model", tmp_path, None, RecordingEngine()).run()
    state = json.loads((tmp_path / "state.json").read_text())
    state["stages"] = state["stages"][:1]  # killed during stage b
    (tmp_path / "state.json").write_text(json.dumps(state))
    engine = RecordingEngine()
    summary = CurriculumRun(CONFIG, "base-model", tmp_path, None, engine).run()
    assert [name for name, _ in engine.started] == ["b", "c"]
    assert engine.started[0][1] == str(tmp_path / "stages" / "01-a" / "best")
    assert [stage["name"] for stage in summary["stages"]] == ["a", "b", "c"]


def test_a_second_run_on_a_live_directory_is_refused(tmp_path):
    class NestedEngine(RecordingEngine):
        """While its first stage trains, a second run on the same directory starts."""

        def run_stage(self, run, index, stage, start_from):
            with pytest.raises(EnvtuneError, match="in use by another run"):
                CurriculumRun(CONFIG, "base-model", tmp_path, None, RecordingEngine()).run()
            return super().run_stage(run, index, stage, start_from)

    summary = CurriculumRun(CONFIG, "base-model", tmp_path, None, NestedEngine()).run()
    assert [stage["name"] for stage in summary["stages"]] == ["a", "b", "c"]


def test_episode_overrides_reach_every_stage_and_the_run_directory(tmp_path):
    config = override_episodes(CONFIG, feedback="augmented", prompt="extended", protocol=None, max_steps_per_turn=3)
    assert {(s.episode.feedback, s.episode.prompt, s.episode.max_steps_per_turn) for s in config.stages} == {
        ("augmented", "extended", 3)}
    assert {stage.validation_episode.feedback for stage in config.stages} == {"standard"}
    assert override_episodes(CONFIG, feedback=None) is CONFIG
    CurriculumRun(config, "base-model", tmp_path, None, RecordingEngine()).run()
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written["episode_overrides"] == {"feedback": "augmented", "prompt": "extended", "max_steps_per_turn": 3}
    assert json.loads((tmp_path / "state.json").read_text())["episode_overrides"] == written["episode_overrides"]


@pytest.mark.parametrize("change, named", [
    (lambda config: override_episodes(config, feedback="augmented"), "and episode overrides feedback=augmented"),
    (lambda config: parse_config({**config.source, "name": "other"}), "config 'other'"),
])
def test_a_directory_holding_another_run_is_refused_before_anything_is_written(tmp_path, change, named):
    CurriculumRun(CONFIG, "base-model", tmp_path, None, RecordingEngine()).run()
    before = (tmp_path / "config.yaml").read_text()
    with pytest.raises(EnvtuneError, match=f"holds a run of config 'three' .*; use another --output for .*{named}"):
        CurriculumRun(change(CONFIG), "base-model", tmp_path, None, RecordingEngine()).run()
    assert (tmp_path / "config.yaml").read_text() == before


def test_a_bad_override_names_the_setting():
    with pytest.raises(EnvtuneError, match="prompt='bfcl' is BFCL's prompt-mode text"):
        override_episodes(CONFIG, prompt="bfcl")


def test_tune_applies_the_episode_flags_and_writes_the_summary_where_json_says(monkeypatch, tmp_path, capsys):
    seen = []

    def run(self):
        seen.append(self.config)
        return {"stages": [], "final_checkpoint": "model"}

    monkeypatch.setattr(CurriculumRun, "run", run)
    summary = tmp_path / "out" / "summary.json"
    assert main(["tune", "--preset", "smoke", "--output", str(tmp_path / "run"), "--feedback", "augmented",
                 "--protocol", "prompt", "--prompt", "bfcl", "--max-steps-per-turn", "4", "--json", str(summary)]) == 0
    assert {(s.episode.feedback, s.episode.protocol, s.episode.prompt, s.episode.max_steps_per_turn)
            for s in seen[0].stages} == {("augmented", "prompt", "bfcl", 4)}
    assert json.loads(summary.read_text()) == {"stages": [], "final_checkpoint": "model"}
    assert f"summary written to {summary}" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--protocol", "native"], "argument --protocol: invalid choice: 'native'"),
    (["--max-steps-per-turn", "0"], "argument --max-steps-per-turn: expected a positive integer, got '0'"),
    (["--feedback", "loud"], "argument --feedback: invalid choice: 'loud'"),
])
def test_bad_episode_flags_are_refused_by_name(capsys, flags, message):
    with pytest.raises(SystemExit):
        main(["tune", "--preset", "smoke", *flags])
    assert message in capsys.readouterr().err
