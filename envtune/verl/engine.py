"""The veRL engine: each curriculum stage is a series of `verl.trainer.main_ppo` launches, judged
between launches by the same transition rule as the TRL engine.

A stage runs like this:

1. Write the stage's parquet files (`data/`), render its veRL overrides and check them with veRL.
2. Launch veRL up to the next checkpoint (`steps_per_launch` steps, by default the checkpoint
   interval). veRL validates before the first step and every `validation.every` steps with our
   agent loop on the validation rows (standard feedback, greedy), logs every metric to
   `logs/launch-NNN.jsonl` and saves `checkpoints/global_step_N`.
3. Read the logs. A launch in which veRL lost sessions (an error in the agent loop, which veRL
   trains and validates around) stops the run, its metrics set aside (`lost_sessions`). Otherwise
   take validation accuracy per step (the mean over BFCL categories of
   `val-core/bfcl_multi_turn_<category>/acc/mean@1`) and `actor/grad_norm`; ask the transition rule.
   Continue with another launch (veRL resumes from its latest checkpoint) until the rule moves on:
   plateau, or the stage's `max_steps`.
4. Hand off: merge the best validated checkpoint (or the last one, if none beat the stage's start)
   into a Hugging Face model in `selected/`, which the next stage starts from.

Only the latest checkpoint (for resuming) and the best validated one are kept. Killing envtune or
veRL at any point and running the same command again resumes: finished stages are skipped and the
current one goes on from its last checkpoint.

Files it adds to the run directory (see `envtune.curriculum.run`):

    agent_loops.yaml                            registers envtune's agent loop with veRL's workers
    stages/NN-name/data/{train,val}.parquet     the rows veRL reads
    stages/NN-name/verl_config.yaml             the full veRL config of the latest launch
    stages/NN-name/logs/launch-NNN.{log,jsonl}  each launch's output and veRL's metrics
    stages/NN-name/logs/launch-NNN.lost-sessions.jsonl  the metrics of a launch that lost sessions
    stages/NN-name/checkpoints/global_step_N/   veRL checkpoints
    stages/NN-name/tensorboard/                 veRL's TensorBoard events
    stages/NN-name/selected/                    the Hugging Face model handed to the next stage
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import pyarrow.parquet as pq
from omegaconf import OmegaConf

from envtune.bfcl.scoring import category_mean
from envtune.curriculum.config import StageConfig
from envtune.curriculum.console import step_line
from envtune.curriculum.run import CurriculumRun, StageResult
from envtune.curriculum.transition import Decision, StageHistory
from envtune.errors import EnvtuneError
from envtune.run_files import read_jsonl
from envtune.verl.config import (
    MAX_PROMPT_TOKENS, TRAINER_MODULE, Cluster, StageRun, agent_loop_config_path, check_overrides, command_line,
    model_context, stage_overrides,
)
from envtune.verl.data import DATA_SOURCE_PREFIX, build_stage_data, prompt_lengths

VAL_ACCURACY = re.compile(rf"^val-core/{DATA_SOURCE_PREFIX}(\w+)/acc/mean@\d+$")
# veRL's accuracy over the validation sessions that ran; `acc` counts the lost ones as 0
VAL_ACCURACY_RAN = re.compile(rf"^val-aux/{DATA_SOURCE_PREFIX}(\w+)/acc_success_only/mean@\d+$")
GRAD_NORM = "actor/grad_norm"
# What veRL's (v1) agent-loop worker logs for each session that raised; its group goes on without it.
SESSION_ERROR = "Error in _run_prompt"
RAY_PREFIX = re.compile(r"^(?:\x1b\[[\d;]*m)?\([^)]*\)(?:\x1b\[[\d;]*m)? ?")  # "(AgentLoopWorkerTQ pid=7) "
RAY_REPEATED = re.compile(r"\[repeated (\d+)x across cluster\]")  # Ray's summary of lines from other workers

# (command, extra environment, log file) -> exit status
Launcher = Callable[[list[str], dict[str, str], Path], int]


def run_logged(command: list[str], env: dict[str, str], log_path: Path) -> int:
    """Run a command with its output on the terminal and in `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as process:
        for line in process.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            log.write(line)
    return process.returncode


class StagePaths:
    """Where one stage's veRL files live (see the module docstring)."""

    def __init__(self, root: Path):
        self.root = root
        self.data, self.checkpoints, self.logs, self.selected = (root / name for name in ("data", "checkpoints", "logs", "selected"))

    def checkpoint_steps(self) -> list[int]:
        """Steps with a complete veRL checkpoint (veRL writes the tracker file after the shards)."""
        tracker = self.checkpoints / "latest_checkpointed_iteration.txt"
        latest = int(tracker.read_text().strip()) if tracker.is_file() else 0
        steps = [int(path.name.rsplit("_", 1)[1]) for path in self.checkpoints.glob("global_step_*")
                 if path.name.rsplit("_", 1)[1].isdigit() and (path / "actor").is_dir()]
        return sorted(step for step in steps if step <= latest)

    def latest_step(self) -> int:
        """The step veRL resumes from (0 before the first checkpoint)."""
        return (self.checkpoint_steps() or [0])[-1]

    def launches(self) -> list[Path]:
        """The metrics files of the launches, less those set aside (`launch-NNN.lost-sessions.jsonl`)."""
        return sorted(path for path in self.logs.glob("launch-*.jsonl") if re.fullmatch(r"launch-\d+", path.stem))

    def next_launch(self) -> Path:
        """The next launch's log and metrics path, without suffix: every launch leaves a log."""
        return self.logs / f"launch-{len(list(self.logs.glob('launch-*.log'))) + 1:03d}"


def read_metrics(paths: StagePaths) -> dict[int, dict[str, Any]]:
    """veRL's file-logger records of every launch, merged by step (a later launch wins)."""
    by_step: dict[int, dict[str, Any]] = {}
    for path in paths.launches():
        for step, data in read_launch_metrics(path).items():
            by_step.setdefault(step, {}).update(data)
    return by_step


def read_launch_metrics(path: Path) -> dict[int, dict[str, Any]]:
    """One launch's file-logger records by step (none when veRL did not get to write the file)."""
    by_step: dict[int, dict[str, Any]] = {}
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a killed launch can leave a cut last line
            continue
        by_step.setdefault(int(record["step"]), {}).update(record["data"])
    return by_step


def session_errors(log: str) -> tuple[int, str | None]:
    """How many sessions veRL's agent-loop workers logged as failed, and the exception of the first
    (the last line of the first part of its traceback)."""
    lines = [RAY_PREFIX.sub("", line) for line in log.splitlines()]
    count, first = 0, None
    for index, line in enumerate(lines):
        if SESSION_ERROR not in line:
            continue
        repeated = RAY_REPEATED.search(line)
        count += int(repeated.group(1)) if repeated else 1
        if first is None and index + 1 < len(lines) and lines[index + 1].startswith("Traceback"):
            first = next((later.strip() for later in lines[index + 2:] if later and not later[0].isspace()), None)
    return count, first


def lost_sessions(log: str, metrics: dict[int, dict[str, Any]], categories: set[str]) -> list[str]:
    """What says that veRL lost sessions in a launch, one line each: veRL (its v1 trainer) catches an
    error in the agent loop per session, trains on the groups that survive and scores a lost
    validation session as accuracy 0, so a broken environment would pass for a weak model."""
    problems = []
    errors, first = session_errors(log)
    if errors:
        problems.append(f"{errors} session(s) raised in the agent loop" + (f" (the first: {first})" if first else ""))
    for step, data in sorted(metrics.items()):
        accuracy = {category: values[0] for category, values in by_category(data, VAL_ACCURACY).items()}
        if not accuracy:
            continue
        # with several samples per task, the accuracy over the sessions that ran has a key per session count
        ran = by_category(data, VAL_ACCURACY_RAN)
        short = sorted(category for category, value in accuracy.items() if category in ran
                       and (len(ran[category]) > 1 or not math.isclose(value, ran[category][0])))
        if short:
            problems.append(f"validation at step {step} lost sessions of {', '.join(short)}")
        if missing := sorted(categories - set(accuracy)):
            problems.append(f"validation at step {step} has no accuracy for {', '.join(missing)}")
    return problems


def by_category(metrics: dict[str, Any], pattern: re.Pattern) -> dict[str, list[float]]:
    """The values of the metrics whose names match `pattern`, by the BFCL category it captures."""
    found: dict[str, list[float]] = {}
    for key, value in metrics.items():
        if match := pattern.match(key):
            found.setdefault(match.group(1), []).append(float(value))
    return found


def validation_accuracy(metrics: dict[str, Any]) -> dict[str, float]:
    """`val/accuracy` (the unweighted mean over categories) and `val/accuracy_<category>`, as the
    single-machine trainer logs them; empty when the step has no validation."""
    per_category = {category: values[0] for category, values in by_category(metrics, VAL_ACCURACY).items()}
    if not per_category:
        return {}
    return {"val/accuracy": category_mean(per_category),
            **{f"val/accuracy_{category}": value for category, value in sorted(per_category.items())}}


def validation_metric(metrics: dict[str, Any], metric: str) -> float | None:
    """A step's validation value of a transition metric, the unweighted mean over categories: the
    accuracy, or an episode number veRL logs per category under val-aux (progress, format_reward);
    None when the step has no validation."""
    if metric == "accuracy":
        return validation_accuracy(metrics).get("val/accuracy")
    pattern = re.compile(rf"^val-aux/{DATA_SOURCE_PREFIX}(\w+)/{metric}/mean@\d+$")
    per_category = {category: values[0] for category, values in by_category(metrics, pattern).items()}
    return category_mean(per_category) if per_category else None


def validation_record(metrics: dict[str, Any], metric: str) -> dict[str, float]:
    """What a step adds to the run's metrics.jsonl: the accuracies, and the transition metric under the
    name the TRL engine logs it (`val/progress`, `val/format_reward`), so both engines' runs read alike."""
    record = validation_accuracy(metrics)
    value = validation_metric(metrics, metric)
    if value is not None:
        record[f"val/{metric}"] = value
    return record


def stage_history(metrics: dict[int, dict[str, Any]], steps: int, metric: str = "accuracy") -> StageHistory:
    values = {step: validation_metric(data, metric) for step, data in metrics.items() if step <= steps}
    val = [(step, value) for step, value in sorted(values.items()) if value is not None]
    grad = [(step, float(data[GRAD_NORM])) for step, data in sorted(metrics.items())
            if 0 < step <= steps and GRAD_NORM in data]
    return StageHistory(steps=steps, val_accuracy=val, grad_norm=grad, metric=metric)


def hand_off_step(history: StageHistory, checkpointed: list[int]) -> int | None:
    """The checkpoint the next stage starts from: the best validated one (ties: earliest) when it
    beats the stage's starting point (step 0), else the latest; None when there is no checkpoint."""
    accuracy = dict(history.val_accuracy)
    scored = [step for step in checkpointed if step in accuracy and math.isfinite(accuracy[step])]
    best = max(scored, key=lambda step: (accuracy[step], -step), default=None)
    start = accuracy.get(0)
    if best is not None and (start is None or accuracy[best] > start):
        return best
    return checkpointed[-1] if checkpointed else None


@lru_cache(maxsize=None)
def load_tokenizer(model: str) -> Any:
    """The model's tokenizer, or None (said once) when it cannot be loaded on this machine."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(model)
    except (OSError, ValueError) as error:
        print(f"envtune: cannot load the tokenizer of {model} here ({str(error).splitlines()[0]}); "
              f"prompts get {MAX_PROMPT_TOKENS} tokens and veRL drops longer ones", file=sys.stderr)
        return None


@dataclass(frozen=True)
class StagePlan:
    """A stage's data and its first veRL launch, as `--dry-run` shows them."""

    stage: str
    max_steps: int
    steps_per_launch: int
    command: str  # a shell command a person can copy
    ignored: list[str]  # curriculum fields veRL has no use for
    data: dict[str, Path]  # train / val parquet files
    rows: dict[str, int]  # tasks in each


class VerlEngine:
    """Trains each stage as a series of veRL launches on a Ray cluster (see the module docstring)."""

    name = "verl"

    def __init__(self, cluster: Cluster = Cluster(), steps_per_launch: int | None = None, launcher: Launcher = run_logged):
        if steps_per_launch is not None and (not isinstance(steps_per_launch, int) or steps_per_launch < 1):
            raise EnvtuneError(f"steps_per_launch must be a positive integer, got {steps_per_launch!r}")
        self.cluster = cluster
        self.steps_per_launch = steps_per_launch
        self.launcher = launcher

    @staticmethod
    def paths(run: CurriculumRun, index: int, stage: StageConfig) -> StagePaths:
        return StagePaths(run.stage_dir(index, stage))

    @staticmethod
    def prompt_budget(run: CurriculumRun, stage: StageConfig, files: list[Path]) -> int:
        """veRL drops rows whose prompt exceeds `data.max_prompt_length`, so the budget is the paper's
        8192 tokens or, when longer, the longest opening prompt under the model's chat template."""
        tokenizer = load_tokenizer(run.model_source)
        if tokenizer is None:
            return MAX_PROMPT_TOKENS
        longest = max(prompt_lengths(tokenizer, files))
        configured = stage.verl.get("data.max_prompt_length")
        if configured is not None and int(configured) < longest:
            print(f"envtune: stage {stage.name}: data.max_prompt_length={configured} is below the longest prompt "
                  f"({longest} tokens); veRL drops the longer tasks", file=sys.stderr)
        return max(MAX_PROMPT_TOKENS, -(-longest // 256) * 256)

    def _launch_length(self, stage: StageConfig) -> int:
        return self.steps_per_launch or int(stage.grpo_settings["save_steps"])

    def stage_data(self, run: CurriculumRun, index: int, stage: StageConfig) -> dict[str, Path]:
        """The stage's train and val parquet files, written on first use."""
        data = self.paths(run, index, stage).data
        files = {"train": data / "train.parquet", "val": data / "val.parquet"}
        if all(path.is_file() for path in files.values()):
            return files
        return build_stage_data(stage, data, run.release)

    def launch(self, run: CurriculumRun, index: int, stage: StageConfig, model: str,
               done: int) -> tuple[list[str], dict[str, str], list[str]]:
        """(command, environment, ignored curriculum fields) of the stage's next launch after `done` steps."""
        paths = self.paths(run, index, stage)
        data = self.stage_data(run, index, stage)
        # veRL's workers may run on other nodes, where the package can sit elsewhere: they read the
        # agent-loop registry from the run directory, which every node sees
        agent_loops = run.output / "agent_loops.yaml"
        if not agent_loops.is_file():
            run.output.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(agent_loop_config_path(), agent_loops)
        log = paths.next_launch()
        env = {"VERL_FILE_LOGGER_PATH": str(log.with_suffix(".jsonl")), "TENSORBOARD_DIR": str(paths.root / "tensorboard")}
        stage_run = StageRun(
            model=model, train_file=data["train"], val_file=data["val"],
            train_tasks=pq.read_metadata(data["train"]).num_rows, checkpoint_dir=paths.checkpoints,
            max_prompt_tokens=self.prompt_budget(run, stage, list(data.values())),
            experiment=f"{run.config.name}-{index + 1:02d}-{stage.name}",
            total_steps=min(done + self._launch_length(stage), stage.max_steps), val_before_train=done == 0,
            seed=run.config.seed, agent_loops=str(agent_loops), worker_env=env,
            context_tokens=model_context(run.model_source),  # every stage keeps the architecture
        )
        overrides, ignored = stage_overrides(stage, stage_run, self.cluster)
        composed = check_overrides(stage, overrides)
        response = composed.data.max_response_length
        if response < stage.max_completion_tokens and "data.max_response_length" not in stage.verl:
            print(f"envtune: stage {stage.name}: responses get {response} tokens, not "
                  f"{stage.max_completion_tokens}: with {composed.data.max_prompt_length} for the prompt, that fills "
                  "the model's context", file=sys.stderr)
        paths.root.mkdir(parents=True, exist_ok=True)
        (paths.root / "verl_config.yaml").write_text(OmegaConf.to_yaml(composed), encoding="utf-8")
        return [sys.executable, "-m", TRAINER_MODULE, *overrides], env, ignored

    def plan(self, run: CurriculumRun) -> list[StagePlan]:
        """Every stage's data and first launch, without running anything (`--dry-run`): stage N > 1
        starts from stage N-1's `selected/` model, which exists once that stage has run."""
        planned, model = [], run.model_source
        for index, stage in enumerate(run.config.stages):
            command, env, ignored = self.launch(run, index, stage, model, done=0)
            data = self.stage_data(run, index, stage)
            planned.append(StagePlan(
                stage=stage.name, max_steps=stage.max_steps, steps_per_launch=self._launch_length(stage),
                command=command_line(command, env), ignored=ignored, data=data,
                rows={name: pq.read_metadata(path).num_rows for name, path in data.items()},
            ))
            model = str(self.paths(run, index, stage).selected)
        return planned

    @staticmethod
    def _decide(run: CurriculumRun, stage: StageConfig, paths: StagePaths) -> tuple[Decision, StageHistory]:
        history = stage_history(read_metrics(paths), paths.latest_step(), stage.transition_rule.metric)
        return run.decide(stage, history), history

    def run_stage(self, run: CurriculumRun, index: int, stage: StageConfig, start_from: str) -> StageResult:
        paths = self.paths(run, index, stage)
        while True:
            done = paths.latest_step()
            if done:
                decision, history = self._decide(run, stage, paths)
                if decision.advance:
                    break
            command, env, ignored = self.launch(run, index, stage, start_from, done)
            if ignored:
                print(f"envtune: stage {stage.name}: veRL has no use for {', '.join(ignored)}", file=sys.stderr)
            log = Path(env["VERL_FILE_LOGGER_PATH"]).with_suffix(".log")
            status = self.launcher(command, env, log)
            reached = paths.latest_step()
            self._check_sessions(run, index, stage, log, reached)
            if status != 0 or reached <= done:
                raise ChildProcessError(
                    f"veRL stopped in stage {stage.name} (exit status {status}, last checkpoint at step {reached}); "
                    f"its output is in {log}. Run the same command again to resume from the last checkpoint.")
            self._record(run, stage, paths, reached)
            self._prune(paths, stage_history(read_metrics(paths), reached, stage.transition_rule.metric))
        step = hand_off_step(history, paths.checkpoint_steps())
        return StageResult(
            name=stage.name, steps=done, best_checkpoint=str(self._hand_off(paths, stage, step)),
            last_checkpoint=str(paths.checkpoints / f"global_step_{done}"), best_accuracy=decision.best_accuracy,
            best_step=decision.best_step, decision=decision.reason, handed_off_step=step,
        )

    def _check_sessions(self, run: CurriculumRun, index: int, stage: StageConfig, log: Path, reached: int) -> None:
        """Stop when veRL lost sessions in the launch (see `lost_sessions`), with its metrics set aside so
        that the transition rule and the hand-off never read them."""
        metrics_path = log.with_suffix(".jsonl")
        val = self.stage_data(run, index, stage)["val"]
        sources = pq.read_table(val, columns=["data_source"]).column("data_source").to_pylist()
        categories = {source.removeprefix(DATA_SOURCE_PREFIX) for source in sources}
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        problems = lost_sessions(text, read_launch_metrics(metrics_path), categories)
        if not problems:
            return
        aside = metrics_path.with_suffix(".lost-sessions.jsonl")
        if metrics_path.is_file():
            os.replace(metrics_path, aside)
        raise ChildProcessError(
            f"veRL lost sessions in stage {stage.name}: {'; '.join(problems)}. veRL trains on the groups that survive "
            f"and scores a lost validation session as 0, so this launch's metrics are set aside ({aside.name}); its "
            f"output is in {log}. Fix the cause (often one node's environment: envtune and the BFCL releases "
            f"installed there) and run the same command again to go on from the last checkpoint (step {reached}).")

    @staticmethod
    def _record(run: CurriculumRun, stage: StageConfig, paths: StagePaths, reached: int) -> None:
        """Copy veRL's steps up to the latest checkpoint into the run's metrics.jsonl (each step once,
        with the validation accuracy and the stage's transition metric added), with a line per step on
        the console, as the TRL engine prints."""
        recorded = {line["step"] for line in read_jsonl(run.output / "metrics.jsonl") if line.get("stage") == stage.name}
        for step, data in sorted(read_metrics(paths).items()):
            if step <= reached and step not in recorded:
                row = {**validation_record(data, stage.transition_rule.metric), **data}
                run.log(stage, step, row)
                print(step_line(stage, step, row), flush=True)

    @staticmethod
    def _prune(paths: StagePaths, history: StageHistory) -> None:
        """Keep the latest checkpoint (to resume) and the one the hand-off would pick; free the rest."""
        steps = paths.checkpoint_steps()
        keep = {steps[-1], hand_off_step(history, steps)} if steps else set()
        for step in steps:
            if step not in keep:
                shutil.rmtree(paths.checkpoints / f"global_step_{step}", ignore_errors=True)

    def _hand_off(self, paths: StagePaths, stage: StageConfig, step: int) -> Path:
        """Merge the chosen checkpoint's shards into a Hugging Face model in `selected/`."""
        if (paths.selected / "config.json").is_file():
            return paths.selected
        # the actor's strategy as veRL composed it (`model_engine: megatron` selects Megatron in 0.9.1)
        strategy = OmegaConf.load(paths.root / "verl_config.yaml").actor_rollout_ref.actor.strategy
        backend = "megatron" if strategy == "megatron" else "fsdp"
        staging = paths.root / ".selected.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        command = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", backend,
                   "--local_dir", str(paths.checkpoints / f"global_step_{step}" / "actor"), "--target_dir", str(staging)]
        log = paths.logs / "merge.log"
        if self.launcher(command, {}, log) != 0 or not (staging / "config.json").is_file():
            raise ChildProcessError(f"merging checkpoint step {step} of stage {stage.name} into a Hugging Face model "
                                    f"failed; its output is in {log}. Run the same command again to retry.")
        os.replace(staging, paths.selected)
        return paths.selected
