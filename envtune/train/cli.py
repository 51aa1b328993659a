"""`envtune tune`: run the Environment Tuning curriculum on one machine."""

from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

from envtune.bfcl.release import RELEASES
from envtune.models import add_placement_arguments, resolve_placement
from envtune.errors import EnvtuneError

PRESETS = ("smoke", "paper")  # embedded configs; configs/paper.yaml is the paper preset


def preset_path(name: str) -> Path:
    return Path(str(resources.files("envtune.train") / "presets" / f"{name}.yaml"))


def _verl_run(config, model: str, output: Path, args: argparse.Namespace):
    try:
        from envtune.verl.config import Cluster
        from envtune.verl.launch import VerlCurriculumRun
    except ImportError as error:
        raise EnvtuneError(f"--engine verl needs the verl extra ({error}): pip install 'envtune[verl]'") from None
    if model == "tiny":  # veRL loads models from disk: the local test model's directory
        from envtune.models import tiny_model_path

        model = str(tiny_model_path(release=args.release))
    given = {"nodes": args.nodes, "gpus_per_node": args.gpus_per_node}
    cluster = Cluster(**{name: value for name, value in given.items() if value is not None})  # unset: Cluster's defaults
    return VerlCurriculumRun(config, model, output, args.release, cluster, args.steps_per_launch)


def cmd_tune(args: argparse.Namespace) -> int:
    from envtune.train.config import load_config
    from envtune.train.curriculum import CurriculumRun

    if bool(args.config) == bool(args.preset):
        raise EnvtuneError("give either --config FILE or --preset smoke|paper")
    given = {"--nodes": args.nodes, "--gpus-per-node": args.gpus_per_node, "--steps-per-launch": args.steps_per_launch}
    verl_only = [flag for flag, value in given.items() if value is not None] + (["--dry-run"] if args.dry_run else [])
    if args.engine == "trl" and verl_only:
        raise EnvtuneError(f"{verl_only[0]} applies to --engine verl only")
    trl_only = [flag for flag, value in {"--device": args.device, "--dtype": args.dtype}.items() if value != "auto"]
    if args.engine == "verl" and trl_only:
        raise EnvtuneError(f"{trl_only[0]} applies to --engine trl only (veRL places the model on its cluster's GPUs)")
    config = load_config(args.config or preset_path(args.preset))
    model = args.model or ("tiny" if args.preset == "smoke" else None)
    if model is None:
        raise EnvtuneError("--model is required: a local path or a Hugging Face model id ('tiny' for the local test model)")
    output = Path(args.output or Path("runs") / config.name)
    if args.engine == "verl":
        run = _verl_run(config, model, output, args)
    else:
        run = CurriculumRun(config, model, output, args.release, resolve_placement(args.device, args.dtype))
    if args.dry_run:
        for index, launch in enumerate(run.plan()):
            steps = launch["steps_per_launch"]
            print(f"# stage {index + 1} ({launch['stage']}): the first launch runs {steps} step{'s' * (steps != 1)}; envtune "
                  f"relaunches until the transition rule moves on (at most {launch['max_steps']} steps)")
            if launch["ignored"]:
                print(f"# not used by veRL: {', '.join(launch['ignored'])}")
            print(launch["command"] + "\n")
        print(f"# data and rendered configs are in {output}/stages/*/; nothing was launched")
        return 0
    placed = f" on {run.placement.describe()}" if args.engine == "trl" else ""
    print(f"envtune tune: config {config.name} ({len(config.stages)} stages), model {model}{placed}, engine {args.engine}, "
          f"run directory {output}")
    summary = run.run()
    for stage in summary["stages"]:
        print(f"  {stage['name']:<10} {stage['steps']:>4} steps  best val accuracy {stage['best_accuracy']}  -> {stage['decision'][:90]}")
    print(f"final checkpoint: {summary['final_checkpoint']}")
    written = ("rollouts.jsonl, summary.json, stages/*/ (checkpoints, best-step-*, tensorboard)" if args.engine == "trl"
               else "summary.json, stages/*/ (data, veRL logs and config, checkpoints, selected/, tensorboard)")
    print(f"run directory {output}: config.yaml, state.json, metrics.jsonl, decisions.jsonl, {written}")
    if args.json:
        print(json.dumps(summary, indent=1))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tune", help="run the curriculum (GRPO through TRL, or veRL on a cluster); rerun the same command to resume")
    parser.add_argument("--config", help="curriculum YAML, e.g. configs/paper.yaml")
    parser.add_argument("--preset", choices=PRESETS, help="an embedded config: 'smoke' runs all stages briefly on CPU with the tiny model; "
                        "'paper' is the paper's curriculum (configs/paper.yaml)")
    parser.add_argument("--model", help="local path or Hugging Face id of a causal LM with a chat template ('tiny': the local test model)")
    parser.add_argument("--output", help="run directory (default: runs/<config name>); an existing one is resumed")
    parser.add_argument("--release", choices=sorted(RELEASES), default=None, help="pinned bfcl-eval release")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    parser.add_argument("--engine", choices=("trl", "verl"), default="trl",
                        help="trl: this machine (default); verl: a Ray cluster through verl.trainer.main_ppo")
    add_placement_arguments(parser)
    verl = parser.add_argument_group("veRL engine")
    verl.add_argument("--nodes", type=int, help="machines in the Ray cluster (default 1)")
    verl.add_argument("--gpus-per-node", type=int, help="GPUs per machine (default 8)")
    verl.add_argument("--steps-per-launch", type=int,
                      help="steps per veRL launch; the transition rule is checked between launches (default: save_steps)")
    verl.add_argument("--dry-run", action="store_true", help="write the data and print each stage's veRL command without launching")
    parser.set_defaults(handler=cmd_tune)
