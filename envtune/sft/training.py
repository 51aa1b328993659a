"""Supervised fine-tuning with transformers' `Trainer` on pre-tokenized examples, resumable.

Output directory:

    settings.json     what the run was started with; a rerun with other settings is refused
    checkpoint-N/     the trainer's checkpoints (with LoRA: the adapter); a rerun resumes from the last complete one
    final/            the trained model and tokenizer, a plain Hugging Face checkpoint (LoRA merged in)
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from transformers import ProgressCallback

from envtune.errors import EnvtuneError
from envtune.models import Placement, load_model_and_tokenizer
from envtune.run_files import write_json
from envtune.sft.data import IGNORED, Example
from envtune.train.engine import last_complete_checkpoint, remove_console_callbacks

SETTINGS_FILE = "settings.json"
FINAL = "final"


@dataclass(frozen=True)
class SftSettings:
    """Everything that decides what a run trains on and how: the identity of an output directory."""

    model: str
    split: str
    release: str
    episode: dict[str, Any]  # EpisodeConfig fields
    max_tasks: int | None
    recovery: float
    max_completion_tokens: int
    epochs: float
    max_steps: int | None  # None: `epochs` decides
    learning_rate: float
    lr_scheduler: str  # a transformers scheduler name: linear, constant, cosine, ...
    batch_size: int
    gradient_accumulation_steps: int
    save_steps: int
    seed: int
    lora_r: int | None  # None: every weight trains
    lora_alpha: int | None


def _as_stored(settings: SftSettings) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(settings)))  # as JSON reads them back: tuples become lists


def check_settings(output: Path, settings: SftSettings) -> None:
    """Refuse `output` if it holds a run started with other settings."""
    path = output / SETTINGS_FILE
    if not path.is_file():
        return
    stored, wanted = json.loads(path.read_text(encoding="utf-8")), _as_stored(settings)
    differences = sorted(name for name in set(stored) | set(wanted) if stored.get(name) != wanted.get(name))
    if differences:
        shown = ", ".join(f"{name} {stored.get(name)!r} (now {wanted.get(name)!r})" for name in differences)
        raise EnvtuneError(f"{output} holds an sft run with other settings: {shown}; rerun it with the same "
                           f"settings to resume, or choose another --output")


def record_settings(output: Path, settings: SftSettings) -> None:
    """Tie `output` to `settings`, once the model loaded and the examples were built."""
    write_json(output / SETTINGS_FILE, _as_stored(settings))


def load_trainable(settings: SftSettings, placement: Placement):
    """The model to train and its tokenizer. Trained weights are float32 whatever the placement's
    dtype (as in `envtune tune`); with LoRA the frozen base keeps the placement's dtype and the
    adapters (all linear layers) train in float32."""
    import torch

    if settings.lora_r is None:
        return load_model_and_tokenizer(settings.model, dtype=torch.float32, device=placement.device)
    from peft import LoraConfig, get_peft_model

    model, tokenizer = load_model_and_tokenizer(settings.model, placement=placement)
    config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, target_modules="all-linear",
                        lora_dropout=0.0, task_type="CAUSAL_LM")
    return get_peft_model(model, config), tokenizer


def training_arguments(settings: SftSettings, output: Path, placement: Placement):
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output), num_train_epochs=settings.epochs, max_steps=settings.max_steps or -1,
        learning_rate=settings.learning_rate, lr_scheduler_type=settings.lr_scheduler,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps, seed=settings.seed, data_seed=settings.seed,
        save_strategy="steps", save_steps=settings.save_steps, save_total_limit=2, logging_steps=1, report_to=[],
        use_cpu=not placement.on_gpu, bf16=placement.on_gpu and placement.dtype == torch.bfloat16,
    )


class LossBar(ProgressCallback):
    """transformers' training progress bar with the latest loss beside it, instead of a metric dict
    written under it every step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.training_bar is not None and "loss" in (logs or {}):
            self.training_bar.set_postfix_str(f"loss {logs['loss']:.4f}")


@dataclass(frozen=True)
class SftResult:
    steps: int
    final_loss: float | None  # the loss of the last logged step
    resumed_from: str | None
    final: Path


def train(settings: SftSettings, examples: Sequence[Example], model, tokenizer, output: Path,
          placement: Placement, verbose: bool = False) -> SftResult:
    """Train on `examples` (resuming from the last complete checkpoint in `output`) and write
    `output/final/`. The caller holds `output` and has recorded the settings there. The console gets
    a progress bar with the loss (`LossBar`); `verbose` keeps transformers' metric dict per step."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerState
    from transformers.trainer import TRAINER_STATE_NAME

    if not examples:
        raise EnvtuneError(f"no examples to train on from split {settings.split!r}; raise --max-completion-tokens "
                           f"(episodes longer than {settings.max_completion_tokens} tokens are left out) or --max-tasks")
    dataset = Dataset.from_dict({
        "input_ids": [example.input_ids for example in examples],
        "attention_mask": [[1] * len(example.input_ids) for example in examples],
        "labels": [example.labels for example in examples],
    })
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORED)
    trainer = Trainer(model=model, args=training_arguments(settings, output, placement), train_dataset=dataset,
                      data_collator=collator)
    if not verbose:
        remove_console_callbacks(trainer)
        trainer.add_callback(LossBar)
    checkpoint = last_complete_checkpoint(output)
    state = TrainerState.load_from_json(str(checkpoint / TRAINER_STATE_NAME)) if checkpoint else None
    if state is not None and state.global_step >= state.max_steps:
        # The run had finished (the last step is always checkpointed); resumed there, transformers
        # would train one step more, so its weights are loaded instead.
        trainer._load_from_checkpoint(str(checkpoint))
    else:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        state = trainer.state
    final = save_final(trainer.model, tokenizer, output)
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    return SftResult(state.global_step, losses[-1] if losses else None, str(checkpoint) if checkpoint else None, final)


def save_final(model, tokenizer, output: Path) -> Path:
    """The model (LoRA merged into its base) and tokenizer in `output/final`, written to a staging
    directory first, so `final/` is always a whole checkpoint."""
    target, staging = output / FINAL, output / f".{FINAL}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    if hasattr(model, "merge_and_unload"):  # a PEFT model: a plain checkpoint, not an adapter
        model = model.merge_and_unload()
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target
