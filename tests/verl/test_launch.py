"""The veRL engine against a simulated veRL: launches until the transition rule moves
on, keeps the latest and best checkpoints, hands the best one to the next stage, and resumes."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from envtune.curriculum.config import parse_config
from envtune.curriculum.run import CurriculumRun
from envtune.curriculum.transition import StageHistory
from envtune.models import tiny_model_path
from envtune.run_files import read_jsonl
from envtune.verl.config import Cluster
from envtune.verl.engine import VerlEngine, hand_off_step, lost_sessions

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


# What veRL's v1 agent-loop workers print, through Ray, when sessions raise: the first worker's
# traceback, then another worker's line folded into Ray's summary of repeated lines.
LOST_SESSIONS_LOG = """\
(AgentLoopWorkerTQ pid=4242) ERROR:2026-12-01 10:00:00,000:Error in _run_prompt for uid=0b6f2c1e
(AgentLoopWorkerTQ pid=4242) Traceback (most recent call last):
(AgentLoopWorkerTQ pid=4242)   File "envtune/verl/agent_loop.py", line 81, in run
(AgentLoopWorkerTQ pid=4242)     episode = await self.loop.run_in_executor(None, Episode, task, spec.episode)
(AgentLoopWorkerTQ pid=4242) envtune.errors.EnvtuneError: bfcl-eval 2026.3.23 is not installed here
(AgentLoopWorkerTQ pid=5151, ip=10.0.0.2) ERROR:2026-12-01 10:00:01,000:Error in _run_prompt for uid=9d1c4e7a \
\x1b[32m [repeated 2x across cluster]\x1b[0m
"""


class FakeVerl:
    """Plays `verl.trainer.main_ppo` and `verl.model_merger` from their command lines: file-logger
    records, checkpoints on the save schedule and the tracker file, a merged model directory."""

    def __init__(self, fail_in=None, lose_sessions_in=None):
        self.launches, self.merges, self.backends = [], [], []
        self.fail_in = fail_in  # (stage, step): die after logging this step, like a killed job
        # (stage, step): sessions of base tasks raise in the agent loop at this step's validation
        self.lose_sessions_in = lose_sessions_in

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
                # veRL v1 scores lost sessions as 0 in acc, and leaves them out of acc_success_only
                lost = self.lose_sessions_in == (stage, at)
                if lost:
                    with open(log_path, "a") as log:
                        log.write(LOST_SESSIONS_LOG)
                accuracy = CURVES[stage][at]
                return {**{f"val-core/bfcl_multi_turn_{c}/acc/mean@1": accuracy / 2 if lost and c == "base"
                           else accuracy for c in CATEGORIES},
                        **{f"val-aux/bfcl_multi_turn_{c}/acc_success_only/mean@1": accuracy for c in CATEGORIES}}

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


def test_stages_run_until_the_rule_moves_on_and_hand_off_the_best_checkpoint(tmp_path, capsys):
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

    # the console: a line per step as each launch is recorded, as the TRL engine prints them
    console = capsys.readouterr().out.splitlines()
    syntax = [line for line in console if line.split()[:2] in (["syntax", "start"], ["syntax", "step"])]
    assert len(syntax) == 10 and syntax[0].split() == ["syntax", "start", "val", "accuracy", "0.100"]
    assert "reward 0.100" in syntax[2] and "val accuracy 0.300" in syntax[2] and "grad 1.02 " in syntax[2]

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


def test_lost_sessions_stop_the_run_and_their_launch_is_not_read(tmp_path):
    """A broken environment on one node makes veRL lose sessions, which it trains and validates around:
    the run stops and says why, and that launch's numbers never reach the transition rule or the hand-off."""
    broken = FakeVerl(lose_sessions_in=("syntax", 2))
    with pytest.raises(ChildProcessError) as stopped:
        verl_run(tmp_path / "run", cluster=Cluster(1, 2), launcher=broken).run()
    message = str(stopped.value)
    assert message.startswith("veRL lost sessions in stage syntax: 3 session(s) raised in the agent loop (the first: "
                              "envtune.errors.EnvtuneError: bfcl-eval 2026.3.23 is not installed here); "
                              "validation at step 2 lost sessions of base.")
    logs = tmp_path / "run" / "stages" / "01-syntax" / "logs"
    assert f"set aside (launch-001.lost-sessions.jsonl); its output is in {logs / 'launch-001.log'}" in message
    assert "run the same command again to go on from the last checkpoint (step 3)" in message
    assert not read_jsonl(tmp_path / "run" / "metrics.jsonl")

    resumed = FakeVerl()
    summary = verl_run(tmp_path / "run", cluster=Cluster(1, 2), launcher=resumed).run()
    assert resumed.launches[0]["trainer.val_before_train"] == "false" and (logs / "launch-002.log").is_file()
    assert [stage["name"] for stage in summary["stages"]] == ["syntax", "hints"]
    syntax = [line["step"] for line in read_jsonl(tmp_path / "run" / "metrics.jsonl") if line["stage"] == "syntax"]
    assert min(syntax) == 4  # steps 0-3 came from the launch that lost sessions


def test_validation_with_a_category_missing_is_a_lost_session():
    """When every session of a category fails, veRL logs no accuracy for it at all."""
    records = {0: {f"val-core/bfcl_multi_turn_{c}/acc/mean@1": 0.5 for c in ("base", "miss_func")}}
    assert lost_sessions("", records, {"base", "miss_func", "long_context"}) == [
        "validation at step 0 has no accuracy for long_context"]
    assert lost_sessions("veRL output\n", {1: {"actor/grad_norm": 1.0}}, {"base"}) == []


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


# veRL's `run_ppo` (overrides, report file, variables) with a task runner that writes what it sees of
# the variables (defined in __main__, so Ray ships the class and what it reads to its worker by value).
RUN_PPO_WITH_A_PROBE = """
import json, os, sys
import ray
from verl.trainer import main_ppo
from envtune.verl.config import compose

REPORT, NAMES = sys.argv[2], sys.argv[3:]

@ray.remote
class Probe:
    def run(self, config):
        with open(REPORT, "w") as report:
            json.dump({name: os.environ.get(name) for name in NAMES}, report)

main_ppo.run_ppo(compose(json.loads(sys.argv[1])), task_runner_class=Probe)
"""


def test_the_metrics_paths_reach_verls_task_runner_on_a_cluster_joined_with_ray_start(tmp_path):
    """veRL's task runner writes the metrics. On a cluster started with `ray start` it runs with the
    environment of `ray start`, not the launcher's: without the paths in Ray's runtime env it writes no
    metrics file, and the transition rule sees no validation."""
    engine = VerlEngine(launcher=FakeVerl())
    command, env, _ = engine.launch(verl_run(tmp_path / "run"), 0, CONFIG.stages[0], MODEL, done=0)
    overrides = [word for word in command if "=" in word]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray_env = {name: value for name, value in os.environ.items() if name not in env}
    ray_env["RAY_AUTH_MODE"] = "disabled"  # a throwaway local cluster
    # a temp dir of its own (short: Ray puts sockets there) keeps later ray.init() calls from finding it
    ray_dir = tempfile.mkdtemp(prefix="ray-")
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}", "--num-cpus=1",
         f"--temp-dir={ray_dir}", "--include-dashboard=false", "--disable-usage-stats", "--block"],
        env=ray_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while socket.socket().connect_ex(("127.0.0.1", port)) and time.monotonic() < deadline:
            time.sleep(0.5)
        report = tmp_path / "seen.json"
        driver = subprocess.run(
            [sys.executable, "-c", RUN_PPO_WITH_A_PROBE, json.dumps(overrides), str(report), *env],
            env={**ray_env, **env, "RAY_ADDRESS": f"127.0.0.1:{port}"}, capture_output=True, text=True, timeout=240)
    finally:
        head.terminate()
        head.wait(timeout=60)
        shutil.rmtree(ray_dir, ignore_errors=True)
    assert driver.returncode == 0, driver.stderr[-3000:]
    assert json.loads(report.read_text()) == env
    assert set(env) == {"VERL_FILE_LOGGER_PATH", "TENSORBOARD_DIR"}


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
    assert verl.launches[0]["actor_rollout_ref.actor.optim.lr_decay_style"] == "constant"  # Megatron's name for it
    assert verl.backends == ["megatron"]
