"""The TRL engine: each curriculum stage is one run of TRL's `GRPOTrainer` on this machine, whose
rollouts are envtune episodes with the policy being trained. A trainer callback validates, keeps the
best checkpoint and stops the stage when the transition rule says so.

Files it adds to the run directory (see `envtune.curriculum.run`):

    rollouts.jsonl       sampled rollouts: stage, training step, messages, feedback, turn verdicts, rewards
    stages/NN-name/      the trainer's output: checkpoint-N/, best-step-N/, last/, TensorBoard events,
                         history.json (validations and grad norms the rule reads)

A killed stage resumes from its last complete `checkpoint-N`.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from envtune.bfcl.scoring import category_mean
from envtune.bfcl.tasks import CATEGORIES, task_index
from envtune.console import status
from envtune.curriculum.config import StageConfig, training_tasks, validation_tasks
from envtune.curriculum.console import step_line
from envtune.curriculum.run import CurriculumRun, StageResult
from envtune.curriculum.transition import StageHistory
from envtune.env.episode import Episode
from envtune.errors import EnvtuneError
from envtune.models import Placement, load_model_and_tokenizer, resolve_placement
from envtune.rollout import GenerationBackend, Rollout, RolloutEngine, SamplingParams
from envtune.train.grpo import rollout_backend
from envtune.run_files import append_jsonl, write_json

if TYPE_CHECKING:
    from peft import LoraConfig


def last_complete_checkpoint(stage_dir: Path) -> Path | None:
    """The newest `checkpoint-N` that has its trainer state (a kill during saving leaves none)."""
    complete = [
        path for path in stage_dir.glob("checkpoint-*")
        if (path / "trainer_state.json").is_file() and path.name.split("-")[-1].isdigit()
    ]
    return max(complete, key=lambda path: int(path.name.split("-")[-1]), default=None)


def remove_console_callbacks(trainer) -> None:
    """Take transformers' progress bar and metric-dict printer off a trainer (it has one or the other,
    as the log level decides), so that the console shows envtune's own lines."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


# ----- validation ------------------------------------------------------------------------------
def validate(backend: GenerationBackend, tokenizer, stage: StageConfig, tasks) -> dict[str, float]:
    """Greedy episodes with standard feedback: official per-task accuracy per category, progress and
    the format reward (the numbers a stage's transition `metric` may read)."""
    engine = RolloutEngine(
        backend, tokenizer, SamplingParams(max_new_tokens=stage.sampling.max_new_tokens, do_sample=False),
        stage.max_completion_tokens,
    )
    episodes = [Episode(task, stage.validation_episode) for task in tasks]
    rollouts = engine.run(episodes)
    for episode in episodes:
        episode.close()
    metrics: dict[str, float] = {}
    accuracies = {}
    for category in CATEGORIES:
        scored = [rollout for rollout, task in zip(rollouts, tasks) if task.category == category]
        if scored:
            accuracies[category] = sum(rollout.record.reward("binary") for rollout in scored) / len(scored)
            metrics[f"val/accuracy_{category}"] = accuracies[category]
    metrics["val/accuracy"] = category_mean(accuracies)
    metrics["val/progress"] = sum(rollout.record.reward("progress") for rollout in rollouts) / len(rollouts)
    metrics["val/format_reward"] = sum(rollout.record.reward("format") for rollout in rollouts) / len(rollouts)
    return metrics


def sampled_rollouts(batch: list[Rollout], generations: int, count: int) -> list[Rollout]:
    """`count` rollouts of a generation batch, one of each task before a second of any (TRL lays a
    batch out task by task, `generations` rollouts each)."""
    order = sorted(range(len(batch)), key=lambda index: (index % generations, index // generations))
    return [batch[index] for index in order[:count]]


def rollout_record(rollout: Rollout) -> dict[str, Any]:
    """A rollout as a person reads it: the episode record, every reward and the conversation."""
    return {**rollout.record.to_json(), "reward": rollout.reward, "rewards": rollout.record.rewards(),
            "messages": rollout.messages[1:],  # the system prompt is in config
            "turn_starts": [start - 1 for start in rollout.turn_starts]}


# ----- one stage -------------------------------------------------------------------------------
class StageMonitor(TrainerCallback):
    """Trainer callback: logs metrics, validates every `every` steps, keeps the best checkpoint, prints
    a line per step (`step_line`) and stops the stage when the transition rule says so. Validation
    generates as the trainer's rollouts do (`rollout_backend`: vLLM when the trainer uses it), and the
    checkpoints are `trainer.model`'s (with LoRA the PEFT wrapper, so they hold the adapters)."""

    def __init__(self, run: CurriculumRun, index: int, stage: StageConfig, trainer, tokenizer):
        self.run, self.index, self.stage = run, index, stage
        self.trainer, self.tokenizer = trainer, tokenizer
        self.stage_dir = run.stage_dir(index, stage)
        self.history_path = self.stage_dir / "history.json"
        saved = json.loads(self.history_path.read_text()) if self.history_path.is_file() else {}
        self.val_accuracy: list[list[float]] = saved.get("val_accuracy", [])
        self.grad_norm: list[list[float]] = saved.get("grad_norm", [])
        self.best_checkpoint: str | None = saved.get("best_checkpoint")
        self.val_tasks = validation_tasks(stage, run.release)
        self.decision = None
        self._due: int | None = None
        self._clock: tuple[float, int] | None = None  # (time, global step) when this process began training

    def _save_history(self) -> None:
        write_json(self.history_path, {
            "val_accuracy": self.val_accuracy, "grad_norm": self.grad_norm, "best_checkpoint": self.best_checkpoint,
        })

    def _validate(self, step: int) -> dict[str, float]:
        backend = rollout_backend(self.trainer, self.tokenizer, self.stage.generation_batch_size)
        metrics = validate(backend, self.tokenizer, self.stage, self.val_tasks)
        self.run.log(self.stage, step, metrics)
        self._tensorboard(step, metrics)
        # A resumed stage replays the steps after its last checkpoint: their new points replace the old.
        self.val_accuracy = [point for point in self.val_accuracy if point[0] < step]
        best = max((value for _, value in self.val_accuracy), default=-1.0)
        value = metrics[f"val/{self.stage.transition_rule.metric}"]  # what the transition rule reads
        self.val_accuracy.append([step, value])
        if value > best:  # strictly better: ties keep the earlier checkpoint
            target = self.stage_dir / f"best-step-{step}"
            staging = self.stage_dir / f".best-step-{step}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            self.trainer.model.save_pretrained(staging)
            self.tokenizer.save_pretrained(staging)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)
            previous, self.best_checkpoint = self.best_checkpoint, str(target)
            self._save_history()
            if previous and previous != str(target):
                shutil.rmtree(previous, ignore_errors=True)
        else:
            self._save_history()
        return metrics

    def _tensorboard(self, step: int, metrics: dict[str, float]) -> None:
        """Validation curves next to TRL's training curves (TRL only logs what the trainer computes)."""
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(self.stage_dir / "tensorboard" / "validation")) as writer:
            for name, value in metrics.items():
                writer.add_scalar(name, value, step)

    def decide(self, step: int):
        history = StageHistory(
            steps=step, val_accuracy=[tuple(point) for point in self.val_accuracy],
            grad_norm=[tuple(point) for point in self.grad_norm], metric=self.stage.transition_rule.metric,
        )
        self.decision = self.run.decide(self.stage, history)
        return self.decision

    def _seconds_per_step(self, step: int) -> float | None:
        """Wall-clock seconds per step in this process, validations and checkpoints included, so the
        ETA holds."""
        started, first = self._clock
        return (time.monotonic() - started) / (step - first) if step > first else None

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.val_accuracy:  # score the stage's starting checkpoint once, as step 0
            print(step_line(self.stage, 0, self._validate(0)), flush=True)
        self._clock = (time.monotonic(), state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step % self.stage.validation.every == 0 or step >= self.stage.max_steps:
            self._due = step  # validated in on_log, once this step's gradient norm is known

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        step = state.global_step
        self.run.log(self.stage, step, logs)
        norm = logs.get("grad_norm")
        if norm is None:  # the trainer's closing summary (runtime, mean loss), not a step
            return control
        if step > 0:
            self.grad_norm = [point for point in self.grad_norm if point[0] < step] + [[step, float(norm)]]
        if self._due == step:
            self._due = None
            logs.update(self._validate(step))
            if self.decide(step).advance:
                control.should_training_stop = True
        print(step_line(self.stage, step, logs, self._seconds_per_step(step)), flush=True)
        return control


def _refuse_distributed_launch() -> None:
    """The TRL engine generates rollouts with the unwrapped policy, validates and saves in one process:
    under `accelerate launch` or `torchrun` with several processes TRL's sampler would drop the
    stages' partial batches (75 and 100 tasks on 8 processes leave nothing to train on) and every rank
    would validate and save, and FSDP or DeepSpeed would shard the weights generation reads."""
    from accelerate.utils import get_int_from_env, parse_flag_from_env

    processes = get_int_from_env(["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"], 1)
    sharded = [name for flag, name in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed"))
               if parse_flag_from_env(flag)]
    if processes > 1 or sharded:
        launched = f"{processes} processes" if processes > 1 else f"accelerate's {sharded[0]}"
        raise EnvtuneError(f"the TRL engine trains in one process on one device, not with {launched}; "
                           f"run `envtune tune` without a launcher, or use --engine verl for several GPUs or nodes")


def check_training_placement(placement: Placement) -> Placement:
    """`placement` if a single-process transformers trainer can train there, else the flag to change."""
    import torch

    if placement.device not in ("cpu", "cuda:0"):  # the trainer puts a single-process run on cuda:0
        raise EnvtuneError(f"--device {placement.device}: training runs on cpu or cuda:0; "
                           f"to train on another GPU, make it cuda:0 with CUDA_VISIBLE_DEVICES")
    if placement.dtype == torch.float16:
        raise EnvtuneError("--dtype float16: training runs in bfloat16 or float32 (float16 weights would need "
                           "loss scaling); use --dtype bfloat16, float32 or auto")
    return placement


class TrlEngine:
    """Trains each stage with TRL on this machine, placed on one device, in one process. The console
    gets `StageMonitor`'s line per step; `verbose` keeps transformers' progress bar and metric dicts too."""

    name = "trl"

    def __init__(self, placement: Placement | None = None, verbose: bool = False):
        _refuse_distributed_launch()
        self.placement = check_training_placement(placement or resolve_placement())
        self.verbose = verbose

    def run_stage(self, run: CurriculumRun, index: int, stage: StageConfig, start_from: str) -> StageResult:
        from envtune.train.grpo import EpisodeRollouts, make_trainer

        stage_dir = run.stage_dir(index, stage)
        model, tokenizer, peft_config = self.load_policy(start_from, stage)
        tasks = task_index(run.release)
        train_ids = [task.id for task in training_tasks(stage, run.release)]
        rollouts = EpisodeRollouts(
            tasks, tokenizer, stage.episode, SamplingParams(**{**asdict(stage.sampling), "seed": run.config.seed}),
            stage.max_completion_tokens, stage.generation_batch_size,
            on_rollouts=lambda batch: [
                append_jsonl(run.output / "rollouts.jsonl",
                             {"stage": stage.name, "training_step": trainer.state.global_step + 1, **rollout_record(rollout)})
                for rollout in sampled_rollouts(batch, stage.grpo_settings["num_generations"], run.config.sampled_rollouts)
            ],  # a batch is generated for the optimizer step after `global_step`
            replacement_ids=train_ids, max_extra_rollouts=stage.extra_rollout_budget, flat_by_turn=stage.flat_by_turn,
        )
        trainer = make_trainer(model, tokenizer, train_ids, rollouts, self._grpo_args(stage, stage_dir, run.config.seed),
                               peft_config=peft_config, turn_weight=stage.turn_weight if stage.credit == "turn" else None)
        monitor = StageMonitor(run, index, stage, trainer, tokenizer)
        trainer.add_callback(monitor)
        if not self.verbose:
            remove_console_callbacks(trainer)
        checkpoint = last_complete_checkpoint(stage_dir)
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        steps = trainer.state.global_step
        decision = monitor.decision or monitor.decide(steps)
        status(f"{stage.name}: saving the last checkpoint to {stage_dir / 'last'} ...")
        trainer.save_model(str(stage_dir / "last"))
        tokenizer.save_pretrained(stage_dir / "last")
        return StageResult(
            name=stage.name, steps=steps, best_checkpoint=monitor.best_checkpoint,
            last_checkpoint=str(stage_dir / "last"), best_accuracy=decision.best_accuracy,
            best_step=decision.best_step, decision=decision.reason,
        )

    def _grpo_args(self, stage: StageConfig, stage_dir: Path, seed: int):
        """TRL's GRPOConfig for the stage: the settings veRL gets from the same config (see
        `envtune.verl.config.GRPO_TO_VERL`), one generation batch per optimizer step."""
        import torch
        from trl import GRPOConfig

        os.environ["TENSORBOARD_LOGGING_DIR"] = str(stage_dir / "tensorboard")  # where transformers writes events
        options = stage.grpo_settings
        bf16 = bool(options.pop("bf16", False)) and self.placement.dtype == torch.bfloat16
        return GRPOConfig(
            **{
                "save_total_limit": 3, **options,
                "output_dir": str(stage_dir), "max_steps": stage.max_steps, "use_cpu": not self.placement.on_gpu, "bf16": bf16,
                "max_completion_length": stage.max_completion_tokens, "seed": seed,
                "logging_steps": 1,  # the transition rule reads every step's gradient norm
                "report_to": ["tensorboard"],
                "save_strategy": "steps",
                # log-probs are scored at the sampling temperature, as veRL does
                "temperature": stage.sampling.temperature, "top_p": stage.sampling.top_p, "top_k": stage.sampling.top_k,
                "use_bias_correction_kl": False,  # the plain low-variance (k3) KL estimator: veRL's low_var_kl
            }
        )

    def load_policy(self, start_from: str, stage: StageConfig) -> tuple[Any, Any, LoraConfig | None]:
        """The model `stage` trains, its tokenizer, and the LoRA config for TRL to apply (None when the
        stage trains every weight or goes on training the adapter it starts from).

        The weights the optimizer updates are float32 whatever `--dtype` says: AdamW steps at the
        paper's learning rate (1e-6) are below bfloat16's resolution, so bfloat16 weights would
        barely move. With `grpo.bf16`, `--dtype bfloat16` computes under bfloat16 autocast. With
        LoRA the frozen base keeps the placement's dtype and PEFT keeps the adapters in float32.

        A LoRA stage's checkpoints hold its adapter only. The next LoRA stage goes on training that
        adapter (TRL would otherwise put a fresh one in its place), so it must ask for the same LoRA
        settings; a stage that trains every weight starts from the merged model."""
        import torch
        from peft import LoraConfig, PeftConfig, PeftModel

        dtype = self.placement.dtype if stage.lora else torch.float32
        if not (Path(start_from) / "adapter_config.json").is_file():
            model, tokenizer = load_model_and_tokenizer(start_from, dtype=dtype, device=self.placement.device)
            return model, tokenizer, LoraConfig(**stage.lora) if stage.lora else None
        adapter = PeftConfig.from_pretrained(start_from)
        differences = _lora_differences(stage.lora, adapter) if stage.lora else []
        if differences:
            raise EnvtuneError(f"stage {stage.name}: its lora settings differ from those of the adapter it starts from "
                               f"({start_from}) in {differences}; a LoRA stage goes on training the adapter of the "
                               f"stage before, so give both the same lora settings")
        base, tokenizer = load_model_and_tokenizer(adapter.base_model_name_or_path, dtype=dtype, device=self.placement.device)
        model = PeftModel.from_pretrained(base, start_from, is_trainable=bool(stage.lora))
        if not stage.lora:  # PEFT froze the base weights: this stage trains them all
            return model.merge_and_unload().requires_grad_(True), tokenizer, None
        return model, tokenizer, None


# Adapter config fields that record where and how an adapter was saved, not what it is
_LORA_BOOKKEEPING = {"base_model_name_or_path", "revision", "inference_mode", "auto_mapping", "peft_version"}


def _lora_differences(settings: Mapping[str, Any], saved) -> list[str]:
    """The LoRA fields in which `settings` (a stage's `lora`) differ from a saved adapter's config."""
    from peft import LoraConfig

    wanted, had = LoraConfig(**settings).to_dict(), saved.to_dict()
    return sorted(key for key in (set(wanted) | set(had)) - _LORA_BOOKKEEPING if wanted.get(key) != had.get(key))
