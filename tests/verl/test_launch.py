"""The veRL engine against a simulated veRL: launches until the transition rule moves
on, keeps the latest and best checkpoints, hands the best one to the next stage, and resumes."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from envtune.curriculum.config import parse_config
from envtune.curriculum.run import CurriculumRun
from envtune.curriculum.transition import StageHistory
from envtune.models import tiny_model_path
from envtune.run_files import read_jsonl
from envtune.verl.config import Cluster, compose
from envtune.verl.engine import VerlEngine, hand_off_step

CONFIG = parse_config({
    "name": "two",
    "defaults": {
        "grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "save_steps": 3},
        "validation": {"split": "val", "every": 1, "max_tasks": 4},
        "transition": {"patience": 3, "min_delta": 0.01, "grad_window": 3, "max_grad_cv": 0.5, "min_steps": 3},
    },
    "stages": [
        {"name": "syntax", "split": "format", "reward": "format", "max_steps": 30},
        {"name": "hints", "split": "train", "categories": ["base"], "reward": "progress", "max_steps": 9},
    ],
})
# validation accuracy per step (step 0 scores the starting model); checkpoints every 3 steps.
# syntax peaks at step 4 (not checkpointed) and plateaus; hints peaks at step 3, then falls back
CURVES = {"syntax": [0.1, 0.2, 0.3, 0.4, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6],
          "hints": [0.3, 0.1, 0.2, 0.35, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3]}
CATEGORIES = ("base", "miss_func", "miss_param", "long_context")
MODEL = str(tiny_model_path())  # a local model, so the engine can measure prompts with its tokenizer


def verl_run(output, **engine):
    return CurriculumRun(CONFIG, MODEL, output, None, VerlEngine(**engine))


class FakeVerl:
    """Plays `verl.trainer.main_ppo` and `verl.model_merger` from their command lines: file-logger
    records, checkpoints on the save schedule and the tracker file, a merged model directory."""

    def __init__(self, fail_in=None):
        self.launches, self.merges, self.backends = [], [], []
        self.fail_in = fail_in  # (stage, step): die after logging this step, like a killed job

    def __call__(self, command, env, log_path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("veRL output\n")
        if "verl.model_merger" in command:
            target = Path(command[command.index("--target_dir") + 1])
            target.mkdir(parents=True)
            (target / "config.json").write_text("{}")
            self.merges.append(command[command.index("--local_dir") + 1])
            self.backends.append(command[command.index("--backend") + 1])
            return 0
        settings = dict(word.split("=", 1) for word in command if "=" in word)
        self.launches.append(settings)
        stage = settings["trainer.experiment_name"].split("-", 2)[2]
        checkpoints = Path(settings["trainer.default_local_dir"])
        tracker = checkpoints / "latest_checkpointed_iteration.txt"
        step = int(tracker.read_text()) if tracker.is_file() else 0
        target, save = int(settings["trainer.total_training_steps"]), int(settings["trainer.save_freq"])
        with open(env["VERL_FILE_LOGGER_PATH"], "w") as metrics:
            def log(at, data):
                metrics.write(json.dumps({"step": at, "data": data}) + "\n")

            def validation(at):
                return {f"val-core/bfcl_multi_turn_{c}/acc/mean@1": CURVES[stage][at] for c in CATEGORIES}

            if settings["trainer.val_before_train"] == "true":
                log(step, validation(step))
            while step < target:
                step += 1
                log(step, {"actor/grad_norm": 1.0 + 0.01 * step, "critic/score/mean": 0.1, **validation(step)})
                if step % save == 0 or step == target:
                    (checkpoints / f"global_step_{step}" / "actor").mkdir(parents=True)
                    tracker.write_text(str(step))
                if self.fail_in == (stage, step):
                    return 1
        return 0


def test_stages_run_until_the_rule_moves_on_and_hand_off_the_best_checkpoint(tmp_path):
    verl = FakeVerl()
    summary = verl_run(tmp_path / "run", cluster=Cluster(1, 2), launcher=verl).run()
    syntax, hints = summary["stages"]

    # syntax: launches of 3 steps until the accuracy is flat over the patience window
    syntax_launches = [launch for launch in verl.launches if "syntax" in launch["trainer.experiment_name"]]
    assert [int(launch["trainer.total_training_steps"]) for launch in syntax_launches] == [3, 6, 9]
    assert [launch["trainer.val_before_train"] for launch in syntax_launches] == ["true", "false", "false"]
    assert syntax["steps"] == 9 and syntax["decision"].startswith("plateau") and syntax["best_step"] == 4
    assert all(launch["actor_rollout_ref.model.path"] == MODEL for launch in syntax_launches)
    # the tiny tokenizer makes some opening prompts longer than 8192 tokens: the budget grows to fit
    assert all(int(launch["data.max_prompt_length"]) > 8192 for launch in verl.launches)
    # only step 6 (the best checkpointed validation: 0.6 was first reached at 4, not saved) and 9 (latest) survive
    stage_dir = tmp_path / "run" / "stages" / "01-syntax"
    assert sorted(path.name for path in (stage_dir / "checkpoints").glob("global_step_*")) == ["global_step_6", "global_step_9"]
    assert verl.merges[0] == str(stage_dir / "checkpoints" / "global_step_6" / "actor")
    assert syntax["best_checkpoint"] == str(stage_dir / "selected") and syntax["handed_off_step"] == 6

    # hints starts from syntax's merged model and hands on its best checkpoint, step 3
    hints_launches = [launch for launch in verl.launches if "hints" in launch["trainer.experiment_name"]]
    assert all(launch["actor_rollout_ref.model.path"] == str(stage_dir / "selected") for launch in hints_launches)
    assert hints["decision"].startswith("plateau") and hints["steps"] == 6 and hints["best_step"] == 3
    assert verl.merges[1].endswith("02-hints/checkpoints/global_step_3/actor")
    assert summary["final_checkpoint"] == str(tmp_path / "run" / "stages" / "02-hints" / "selected")
    assert summary["engine"] == "verl"

    # the run directory: one metrics line per stage and step, with the validation accuracy added
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    keys = [(line["stage"], line["step"]) for line in metrics]
    assert len(keys) == len(set(keys)) and ("syntax", 0) in keys and ("syntax", 9) in keys
    assert next(line for line in metrics if line["step"] == 2 and line["stage"] == "syntax")["val/accuracy"] == 0.3
    decisions = read_jsonl(tmp_path / "run" / "decisions.jsonl")
    assert [(d["stage"], d["step"], d["advance"]) for d in decisions] == [
        ("syntax", 3, False), ("syntax", 6, False), ("syntax", 9, True), ("hints", 3, False), ("hints", 6, True)]
    assert (stage_dir / "verl_config.yaml").is_file() and (stage_dir / "data" / "train.parquet").is_file()

    # running the same command again does nothing new
    again = FakeVerl()
    verl_run(tmp_path / "run", cluster=Cluster(1, 2), launcher=again).run()
    assert again.launches == [] and again.merges == []


def test_a_failed_launch_names_its_log_and_the_same_command_resumes(tmp_path):
    crashing = FakeVerl(fail_in=("hints", 5))
    with pytest.raises(ChildProcessError, match="launch-002.log.*same command again"):
        verl_run(tmp_path / "run", cluster=Cluster(1, 2), launcher=crashing).run()
    resumed = FakeVerl()
    summary = verl_run(tmp_path / "run", cluster=Cluster(1, 2), launcher=resumed).run()
    # syntax is not rerun; hints resumes from its step-3 checkpoint without validating again first
    assert [launch["trainer.experiment_name"] for launch in resumed.launches] == ["two-02-hints"]
    assert resumed.launches[0]["trainer.val_before_train"] == "false"
    assert resumed.launches[0]["trainer.total_training_steps"] == "6"
    assert [stage["name"] for stage in summary["stages"]] == ["syntax", "hints"]
    steps = [line["step"] for line in read_jsonl(tmp_path / "run" / "metrics.jsonl") if line["stage"] == "hints"]
    assert steps == sorted(set(steps)) == [0, 1, 2, 3, 4, 5, 6]


def test_a_run_directory_of_the_other_engine_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "state.json").write_text(json.dumps(
        {"config_name": "two", "model": MODEL, "release": "2026.3.23", "stages": []}))
    with pytest.raises(ValueError, match="on engine trl"):
        verl_run(tmp_path / "run", launcher=FakeVerl()).run()


def test_the_hand_off_takes_the_best_checkpoint_only_when_it_beats_the_start():
    history = StageHistory(steps=9, val_accuracy=[(0, 0.5), (3, 0.4), (4, 0.7), (6, 0.45), (9, float("nan"))])
    assert hand_off_step(history, [3, 6, 9]) == 9  # 0.7 at step 4 has no checkpoint; 0.45 < 0.5 at the start
    assert hand_off_step(history, [3, 4, 6, 9]) == 4
    assert hand_off_step(StageHistory(steps=6, val_accuracy=[(3, 0.4), (6, 0.4)]), [3, 6]) == 3  # ties: earliest
    assert hand_off_step(StageHistory(steps=0), []) is None


def test_the_metrics_paths_reach_verls_workers_through_rays_runtime_env(tmp_path, monkeypatch):
    """On a cluster joined with `ray start`, veRL's task runner (which writes the metrics) gets the
    environment of `ray start`, not the launcher's: the paths travel in the runtime env that veRL's
    own `run_ppo` hands to `ray.init`."""
    from verl.trainer import main_ppo

    engine = VerlEngine(launcher=FakeVerl())
    command, env, _ = engine.launch(verl_run(tmp_path / "run"), 0, CONFIG.stages[0], MODEL, done=0)
    config = compose([word for word in command if "=" in word])
    ray_init = {}
    monkeypatch.setattr(main_ppo.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(main_ppo.ray, "init", lambda **kwargs: ray_init.update(kwargs))
    monkeypatch.setattr(main_ppo.ray, "get", lambda reference: None)
    runner = SimpleNamespace(remote=lambda: SimpleNamespace(run=SimpleNamespace(remote=lambda config: None)))
    main_ppo.run_ppo(config, task_runner_class=runner)
    worker_env = ray_init["runtime_env"]["env_vars"]
    assert set(env) == {"VERL_FILE_LOGGER_PATH", "TENSORBOARD_DIR"}
    assert {name: worker_env.get(name) for name in env} == env


@pytest.mark.filterwarnings("ignore:set sequence parallel to false")  # veRL's Megatron defaults on one GPU
def test_a_megatron_stage_is_merged_with_the_megatron_backend(tmp_path):
    """veRL 0.9.1 selects Megatron with `model_engine: megatron`; the merger must follow the composed config."""
    megatron = parse_config({
        "name": "megatron",
        "defaults": {"grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "save_steps": 3},
                     "verl": {"model_engine": "megatron"}},
        "stages": [{"name": "syntax", "split": "format", "reward": "format", "max_steps": 3}],
    })
    verl = FakeVerl()
    CurriculumRun(megatron, MODEL, tmp_path / "run", None, VerlEngine(launcher=verl)).run()
    assert verl.launches[0]["model_engine"] == "megatron"
    assert verl.backends == ["megatron"]
