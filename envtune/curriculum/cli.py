"""`envtune tune`: run the curriculum with TRL on this machine or with veRL on a Ray cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from envtune.cli_options import add_episode_arguments, add_verbose_argument, episode_overrides
from envtune.console import quiet_libraries
from envtune.curriculum.config import (
    PRESETS, VERL_ROLLOUT_ENGINE, VLLM_MODES, CurriculumConfig, load_config, override_episodes, override_vllm, preset_path,
    vllm_stages,
)
from envtune.curriculum.run import CurriculumRun
from envtune.curriculum.table import format_stage_table, read_stage_rows
from envtune.errors import EnvtuneError
from envtune.models import add_placement_arguments, resolve_placement
from envtune.run_files import read_jsonl, write_json


def _trl_engine(args: argparse.Namespace):
    from envtune.train.engine import TrlEngine

    return TrlEngine(resolve_placement(args.device, args.dtype), verbose=args.verbose)


def _verl_engine(args: argparse.Namespace):
    try:
        from envtune.verl.config import Cluster
        from envtune.verl.engine import VerlEngine
    except ImportError as error:
        raise EnvtuneError(f"--engine verl needs the verl extra ({error}): pip install 'envtune[verl]'") from None
    given = {"nodes": args.nodes, "gpus_per_node": args.gpus_per_node}
    cluster = Cluster(**{name: value for name, value in given.items() if value is not None})  # unset: Cluster's defaults
    return VerlEngine(cluster, args.steps_per_launch)


def _check_engine_flags(args: argparse.Namespace) -> None:
    given = {"--nodes": args.nodes, "--gpus-per-node": args.gpus_per_node, "--steps-per-launch": args.steps_per_launch}
    verl_only = [flag for flag, value in given.items() if value is not None] + (["--dry-run"] if args.dry_run else [])
    if args.engine == "trl" and verl_only:
        raise EnvtuneError(f"{verl_only[0]} applies to --engine verl only")
    trl_only = [flag for flag, value in {"--device": args.device, "--dtype": args.dtype}.items() if value != "auto"]
    if args.engine == "verl" and trl_only:
        raise EnvtuneError(f"{trl_only[0]} applies to --engine trl only (veRL places the model on its cluster's GPUs)")
    if args.engine == "verl" and args.vllm:
        raise EnvtuneError(f"--vllm applies to --engine trl only; {VERL_ROLLOUT_ENGINE}")


def _check_vllm(engine: str, config: CurriculumConfig) -> None:
    """Stages that ask for TRL's vLLM rollouts need the TRL engine and vLLM installed: refused here,
    before any stage trains, rather than by veRL's launch or TRL's import deep in a later stage."""
    stages = vllm_stages(config)
    if not stages:
        return
    if engine == "verl":
        raise EnvtuneError(f"stage {stages[0]}: grpo.use_vllm is the TRL engine's setting; {VERL_ROLLOUT_ENGINE}")
    from trl.import_utils import is_vllm_available

    if not is_vllm_available():
        raise EnvtuneError(f"stage {stages[0]} generates with vLLM (--vllm or grpo.use_vllm), which is not installed: "
                           f"install vLLM on a GPU machine (pip install 'trl[vllm]'), or train without --vllm")


def _config(args: argparse.Namespace) -> CurriculumConfig:
    if bool(args.config) == bool(args.preset):
        raise EnvtuneError(f"give either --config FILE or --preset {'|'.join(PRESETS)}")
    config = load_config(args.config or preset_path(args.preset))
    return override_vllm(override_episodes(config, **episode_overrides(args)), args.vllm)


def _print_plan(engine, run: CurriculumRun) -> None:
    """The veRL dry run: each stage's data and first launch."""
    for index, stage in enumerate(engine.plan(run)):
        steps = stage.steps_per_launch
        print(f"# stage {index + 1} ({stage.stage}): the first launch runs {steps} step{'s' * (steps != 1)}; envtune "
              f"relaunches until the transition rule moves on (at most {stage.max_steps} steps)")
        for split, path in stage.data.items():
            print(f"#   {split}: {stage.rows[split]} tasks -> {path}")
        if stage.ignored:
            print(f"# not used by veRL: {', '.join(stage.ignored)}")
        print(stage.command + "\n")
    print(f"# data and rendered configs are in {run.output}/stages/*/; nothing was launched")


def cmd_tune(args: argparse.Namespace) -> int:
    _check_engine_flags(args)
    config = _config(args)
    _check_vllm(args.engine, config)
    if not args.verbose:
        quiet_libraries()
    model = args.model or ("tiny" if args.preset == "smoke" else None)
    if model is None:
        raise EnvtuneError("--model is required: a local path or a Hugging Face model id ('tiny' for the local test model, 'tiny-128x4' for a larger one)")
    if args.engine == "verl":
        engine, placed = _verl_engine(args), ""
        from envtune.models import local_model_path

        model = str(local_model_path(model, release=args.release))  # veRL loads a tiny model from its directory
    else:
        engine = _trl_engine(args)
        placed = f" on {engine.placement.describe()}"
    output = Path(args.output or Path("runs") / config.name)
    run = CurriculumRun(config, model, output, args.release, engine)
    if args.dry_run:
        _print_plan(engine, run)
        return 0
    print(f"envtune tune: config {config.name} ({len(config.stages)} stages), model {model}{placed}, engine {args.engine}, "
          f"run directory {output}")
    summary = run.run()
    print("\n" + format_stage_table(read_stage_rows(config, summary, read_jsonl(output / "metrics.jsonl"))) + "\n")
    print(f"final checkpoint: {summary['final_checkpoint']}")
    written = ("rollouts.jsonl, summary.json, stages/*/ (checkpoints, best-step-*, tensorboard)" if args.engine == "trl"
               else "summary.json, stages/*/ (data, veRL logs and config, checkpoints, selected/, tensorboard)")
    print(f"run directory {output}: config.yaml, state.json, metrics.jsonl, decisions.jsonl, {written}")
    if args.json:
        write_json(Path(args.json), summary)
        print(f"summary written to {args.json}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("tune", help="run the curriculum (GRPO through TRL, or veRL on a cluster); rerun the same command to resume")
    parser.add_argument("--config", help="curriculum YAML, e.g. configs/no_augmentation.yaml")
    parser.add_argument("--preset", choices=PRESETS, help="a packaged config: 'smoke' runs all stages briefly on CPU with the tiny model; 'learn' "
                        "learns visibly on CPU from a warm start (see bench/learning.py); "
                        "'paper' is the paper's curriculum")
    parser.add_argument("--model", help="local path or Hugging Face id of a causal LM with a chat template ('tiny' or 'tiny-HIDDENxLAYERS': a local test model)")
    parser.add_argument("--output", help="run directory (default: runs/<config name>); an existing one is resumed")
    parser.add_argument("--json", metavar="PATH", help="also write the summary as JSON")
    parser.add_argument("--engine", choices=("trl", "verl"), default="trl",
                        help="trl: this machine (default); verl: a Ray cluster through verl.trainer.main_ppo")
    episode = parser.add_argument_group("episode settings of every stage (validation always plays with standard feedback)")
    add_episode_arguments(episode, protocols=("envtune", "prompt"), defaults=None)
    add_placement_arguments(parser)
    add_verbose_argument(parser, quiet="a line per training step, and each stage's row of the table as it ends",
                         extra="TRL's metric dict per step and its progress bar")
    parser.add_argument("--vllm", choices=VLLM_MODES,
                        help="TRL engine: every stage's rollouts and validation episodes generate with vLLM (grpo.use_vllm), "
                             "colocate: in this process on the training GPU; server: a `trl vllm-serve` server (TRL looks for it at "
                             "grpo.vllm_server_base_url, default port 8000 here); needs vLLM, on a GPU machine")
    verl = parser.add_argument_group("veRL engine")
    verl.add_argument("--nodes", type=int, help="machines in the Ray cluster (default 1)")
    verl.add_argument("--gpus-per-node", type=int, help="GPUs per machine (default 8)")
    verl.add_argument("--steps-per-launch", type=int,
                      help="steps per veRL launch; the transition rule is checked between launches (default: save_steps)")
    verl.add_argument("--dry-run", action="store_true",
                      help="write each stage's data and print where it is and each stage's veRL command, without launching")
    parser.set_defaults(handler=cmd_tune)
