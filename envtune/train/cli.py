"""`envtune tune`: run the Environment Tuning curriculum on one machine."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from envtune.bfcl.release import RELEASES

PRESETS = ("smoke",)


def preset_path(name: str) -> Path:
    return Path(str(resources.files("envtune.train") / "presets" / f"{name}.yaml"))


def cmd_tune(args: argparse.Namespace) -> int:
    from envtune.train.config import load_config
    from envtune.train.curriculum import CurriculumRun

    if bool(args.config) == bool(args.preset):
        raise ValueError("give either --config FILE (with --model) or --preset smoke")
    config = load_config(args.config or preset_path(args.preset))
    model = args.model or ("tiny" if args.preset else None)
    if model is None:
        raise ValueError("--model is required with --config: a local path or a Hugging Face model id ('tiny' for the local test model)")
    output = Path(args.output or Path("runs") / config.name)
    print(f"envtune tune: config {config.name} ({len(config.stages)} stages), model {model}, run directory {output}")
    summary = CurriculumRun(config, model, output, args.release).run()
    for stage in summary["stages"]:
        print(f"  {stage['name']:<10} {stage['steps']:>4} steps  best val accuracy {stage['best_accuracy']}  -> {stage['decision'][:90]}")
    print(f"final checkpoint: {summary['final_checkpoint']}")
    print(f"run directory {output}: config.yaml, state.json, metrics.jsonl, decisions.jsonl, rollouts.jsonl, "
          f"summary.json, stages/*/ (checkpoints, best-step-*, tensorboard)")
    if args.json:
        print(json.dumps(summary, indent=1))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tune", help="run the curriculum (GRPO through TRL); rerun the same command to resume")
    parser.add_argument("--config", help="curriculum YAML, e.g. configs/paper.yaml")
    parser.add_argument("--preset", choices=PRESETS, help="an embedded config: 'smoke' runs all stages briefly on CPU with the tiny model")
    parser.add_argument("--model", help="local path or Hugging Face id of a causal LM with a chat template ('tiny': the local test model)")
    parser.add_argument("--output", help="run directory (default: runs/<config name>); an existing one is resumed")
    parser.add_argument("--release", choices=sorted(RELEASES), default=None, help="pinned bfcl-eval release")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    parser.set_defaults(handler=cmd_tune)
