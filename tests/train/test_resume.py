"""A curriculum killed with SIGKILL resumes from its last checkpoint when the same command runs again."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from envtune.run_files import read_jsonl

MINI = """
name: mini
seed: 0
defaults:
  episode: {max_steps_per_turn: 1}
  grpo: {learning_rate: 1.0e-3, num_generations: 2, per_device_train_batch_size: 2, save_steps: 1}
  sampling: {max_new_tokens: 8}
  max_completion_tokens: 24
  validation: {split: val, every: 1, max_tasks: 1}
  transition: {patience: 5, min_steps: 10}
stages:
  - {name: first, split: format, reward: format, max_steps: 3}
  - {name: second, split: train, categories: [base], reward: progress, max_steps: 1}
"""


def tune(config, run):
    command = [sys.executable, "-m", "envtune", "tune", "--config", str(config), "--model", "tiny", "--output", str(run)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1"})


@pytest.mark.slow
def test_kill_and_resume(tmp_path):
    config = tmp_path / "mini.yaml"
    config.write_text(MINI)
    run = tmp_path / "run"
    first_checkpoint = run / "stages" / "01-first" / "checkpoint-1" / "trainer_state.json"
    process = tune(config, run)
    deadline = time.time() + 300
    while not first_checkpoint.exists():
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline, "no checkpoint within 5 minutes"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run / "summary.json").exists()

    resumed = tune(config, run)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    summary = json.loads((run / "summary.json").read_text())
    assert [(stage["name"], stage["steps"]) for stage in summary["stages"]] == [("first", 3), ("second", 1)]
    assert summary["final_checkpoint"].startswith(str(run / "stages" / "02-second"))
    state = json.loads((run / "state.json").read_text())
    assert [stage["name"] for stage in state["stages"]] == ["first", "second"]
    # the resumed stage went on from checkpoint 1 instead of starting over
    logged_steps = [record["step"] for record in read_jsonl(run / "metrics.jsonl")
                    if record["stage"] == "first" and "grad_norm" in record]
    assert sorted(set(logged_steps)) == [1, 2, 3] and logged_steps.count(1) <= 2
    decisions = read_jsonl(run / "decisions.jsonl")
    assert decisions[-1]["stage"] == "second" and decisions[-1]["advance"]
    assert (run / "config.yaml").is_file() and (run / "rollouts.jsonl").is_file()
    events = list((run / "stages" / "01-first" / "tensorboard").rglob("events.out.tfevents.*"))
    assert any("validation" in str(path) for path in events) and any("validation" not in str(path) for path in events)


class _Saved:
    def save_pretrained(self, path):
        Path(path).mkdir(parents=True, exist_ok=True)


def test_replayed_steps_replace_their_old_points(tmp_path, monkeypatch):
    """After a kill between a validation and the next checkpoint, the replayed step validates again."""
    from envtune.run_files import write_json
    from envtune.curriculum.config import parse_config
    from envtune.curriculum.run import CurriculumRun
    from envtune.train import engine

    config = parse_config({"name": "t", "stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 9}]})
    run = CurriculumRun(config, "tiny", tmp_path, None, engine.TrlEngine())
    stage = config.stages[0]
    stage_dir = run.stage_dir(0, stage)
    write_json(stage_dir / "history.json", {
        "val_accuracy": [[0, 0.1], [1, 0.2], [2, 0.3]], "grad_norm": [[1, 1.0], [2, 1.1]], "best_checkpoint": None,
    })
    monkeypatch.setattr(engine, "validate", lambda *args: {"val/accuracy": 0.25})
    monkeypatch.setattr(engine, "rollout_backend", lambda *args: None)
    monitor = engine.StageMonitor(run, 0, stage, SimpleNamespace(model=_Saved()), _Saved())
    state = SimpleNamespace(global_step=1)  # resumed from checkpoint-1
    monitor.on_train_begin(None, state, None)  # the stage had validated its start: not again
    monitor._validate(2)
    assert monitor.val_accuracy == [[0, 0.1], [1, 0.2], [2, 0.25]]
    state.global_step = 2
    monitor.on_log(None, state, None, logs={"grad_norm": 0.9})
    assert monitor.grad_norm == [[1, 1.0], [2, 0.9]]
    assert monitor.decide(2).best_step == 2
