"""`envtune sft`: fine-tune a model on the oracle's episodes of a training split."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from envtune.bfcl.release import resolve_release
from envtune.bfcl.splits import SPLIT_NAMES, split_tasks
from envtune.cli_options import EPISODE_FIELDS, add_episode_arguments, add_verbose_argument, episode_overrides
from envtune.cli_values import non_negative_float, positive_float, positive_int
from envtune.console import quiet_libraries
from envtune.env.episode import EpisodeConfig
from envtune.errors import EnvtuneError
from envtune.models import add_placement_arguments, resolve_placement
from envtune.run_files import exclusive_directory, write_json

EVALUATION_SPLITS = ("val", "test", "heldout")

LR_SCHEDULERS = ("linear", "constant", "cosine")  # transformers' names; the ones a warm start needs


def check_split(split: str) -> None:
    """Only training tasks may be learned from: a warm start that saw validation or test tasks would
    inflate every score measured on them."""
    if split in EVALUATION_SPLITS:
        raise EnvtuneError(f"--split {split}: sft learns the ground truth of its tasks, and {split} tasks are for "
                           f"evaluation (val selects checkpoints, heldout = val + test is where results are reported); "
                           f"use --split train or --split format")


def default_output(model: str, split: str) -> Path:
    return Path("runs") / "sft" / f"{Path(model).name or 'model'}-{split}"


def cmd_sft(args: argparse.Namespace) -> int:
    from envtune.sft.data import build_examples
    from envtune.sft.recovery import check_recovery
    from envtune.sft.training import SftSettings, check_settings, load_trainable, record_settings, train
    from envtune.train.engine import check_training_placement

    check_split(args.split)
    if (args.lora_alpha is not None) and args.lora_r is None:
        raise EnvtuneError("--lora-alpha applies with --lora-r only; give --lora-r R to train a LoRA adapter")
    if not args.verbose:
        quiet_libraries()
    placement = check_training_placement(resolve_placement(args.device, args.dtype))
    episode = EpisodeConfig(**episode_overrides(args))
    check_recovery(episode, args.recovery)
    lora = args.lora_r is not None
    settings = SftSettings(
        model=str(args.model), split=args.split, release=resolve_release(args.release).version,
        episode=asdict(episode), max_tasks=args.max_tasks, recovery=args.recovery,
        max_completion_tokens=args.max_completion_tokens, epochs=args.epochs, max_steps=args.max_steps,
        learning_rate=args.learning_rate or (1e-4 if lora else 1e-5), lr_scheduler=args.lr_scheduler,
        batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps, save_steps=args.save_steps, seed=args.seed,
        lora_r=args.lora_r, lora_alpha=(args.lora_alpha or 2 * args.lora_r) if lora else None,
    )
    output = Path(args.output) if args.output else default_output(args.model, args.split)
    with exclusive_directory(output):
        check_settings(output, settings)
        tasks = split_tasks(args.split, settings.release)[:args.max_tasks]
        model, tokenizer = load_trainable(settings, placement)
        built = build_examples(tasks, tokenizer, episode, args.max_completion_tokens, args.recovery, args.seed)
        examples = built.examples
        recovered = sum(example.mistake is not None for example in examples)
        tokens = sum(example.tokens_with_loss for example in examples)
        print(f"envtune sft: {len(examples)} examples ({len(examples) - recovered} oracle, {recovered} recovery) from "
              f"{len(tasks)} {args.split} tasks, {tokens} tokens with loss, model {args.model} on {placement.describe()}, "
              f"output {output}")
        if built.truncated:
            print(f"  {len(built.truncated)} episodes longer than --max-completion-tokens {args.max_completion_tokens} "
                  f"left out (first: {built.truncated[0]})")
        if built.without_mistake:
            print(f"  {len(built.without_mistake)} tasks have no call a recovery mistake applies to "
                  f"(first: {built.without_mistake[0]})")
        record_settings(output, settings)
        result = train(settings, examples, model, tokenizer, output, placement, verbose=args.verbose)
    print(f"trained {result.steps} steps" + (f" (resumed from {result.resumed_from})" if result.resumed_from else "")
          + (f", final loss {result.final_loss:.4f}" if result.final_loss is not None else ""))
    print(f"final model: {result.final} (use it as --model of envtune tune, eval or serve)")
    if args.json:
        write_json(Path(args.json), {
            "examples": len(examples), "oracle_examples": len(examples) - recovered, "recovery_examples": recovered,
            "truncated": len(built.truncated), "tokens_with_loss": tokens, "steps": result.steps,
            "final_train_loss": result.final_loss, "resumed_from": result.resumed_from, "output": str(result.final),
        })
        print(f"summary written to {args.json}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sft", help="supervised warm start: fine-tune on the oracle's episodes of a training split, rendered as RL "
                    "renders them; rerun the same command to resume")
    parser.add_argument("--model", required=True,
                        help="local path or Hugging Face id of a causal LM with a chat template ('tiny': the local test model)")
    parser.add_argument("--split", choices=SPLIT_NAMES, required=True,
                        help="training tasks to learn from: train or format (val, test and heldout are refused: they are "
                             "for evaluation)")
    parser.add_argument("--output", help="output directory (default: runs/sft/<model name>-<split>); an existing one "
                        "made with the same settings is resumed")
    parser.add_argument("--json", metavar="PATH", help="also write a summary as JSON")
    parser.add_argument("--max-tasks", type=positive_int, help="only the first N tasks of the split (quick runs)")
    parser.add_argument("--recovery", type=non_negative_float, default=0.0, metavar="RATE",
                        help="error-recovery examples per task: a seeded wrong call (no loss), the environment's error, "
                             "then the correct call; 0.5 adds one for half the tasks, 2 two per task (default 0)")
    parser.add_argument("--max-completion-tokens", type=positive_int, default=24576,
                        help="token budget of an episode after its prompt; longer episodes are left out (default 24576)")
    episode = parser.add_argument_group("episode settings (as in envtune tune; the oracle speaks envtune or prompt)")
    add_episode_arguments(episode, protocols=("envtune", "prompt"),
                          defaults={field: getattr(EpisodeConfig(), field) for field in EPISODE_FIELDS})
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=positive_float, default=1.0, help="passes over the examples (default 1)")
    training.add_argument("--max-steps", type=positive_int, help="optimizer steps, instead of --epochs")
    training.add_argument("--learning-rate", type=positive_float,
                          help="peak learning rate (default 1e-5; 1e-4 with --lora-r)")
    training.add_argument("--lr-scheduler", choices=LR_SCHEDULERS, default="linear",
                          help="how the learning rate moves over the run, as in transformers: linear decays it to 0, "
                               "constant keeps it, cosine follows half a cosine (default: linear)")
    training.add_argument("--batch-size", type=positive_int, default=1, help="sequences per micro-batch (default 1)")
    training.add_argument("--gradient-accumulation-steps", type=positive_int, default=8,
                          help="micro-batches per optimizer step (default 8)")
    training.add_argument("--save-steps", type=positive_int, default=50, help="steps between checkpoints (default 50)")
    training.add_argument("--seed", type=int, default=0, help="seed of training and of the recovery mistakes (default 0)")
    training.add_argument("--lora-r", type=positive_int, help="train a LoRA adapter of this rank on every linear layer "
                          "(saved merged into the model); default: train every weight")
    training.add_argument("--lora-alpha", type=positive_int, help="LoRA alpha (default 2 x --lora-r)")
    add_placement_arguments(parser)
    add_verbose_argument(parser, quiet="the training progress bar with the latest loss", extra="the trainer's metric dict per step")
    parser.set_defaults(handler=cmd_sft)
