"""`envtune verl data`: the parquet files veRL trains on, for one stage of a curriculum."""

from __future__ import annotations

import argparse
from pathlib import Path

from envtune.bfcl.release import RELEASES
from envtune.train.cli import PRESETS, preset_path
from envtune.errors import EnvtuneError


def stage_of(config, key: str):
    """A stage by its 1-based number or its name."""
    names = [stage.name for stage in config.stages]
    if key.isdigit() and 1 <= int(key) <= len(names):
        return config.stages[int(key) - 1]
    if key in names:
        return config.stages[names.index(key)]
    raise EnvtuneError(f"stage {key!r} is not in config {config.name}; give 1-{len(names)} or one of {', '.join(names)}")


def cmd_data(args: argparse.Namespace) -> int:
    from envtune.train.config import load_config
    from envtune.verl.data import build_stage_data

    config = load_config(args.config or preset_path(args.preset))
    stage = stage_of(config, args.stage)
    paths = build_stage_data(stage, args.output, args.release)
    import pyarrow.parquet as pq

    for name, path in paths.items():
        print(f"{name}: {pq.read_metadata(path).num_rows} tasks -> {path}")
    print(f"stage {stage.name}: split {stage.split} ({', '.join(stage.categories)}), reward {stage.reward}, "
          f"feedback {stage.episode.feedback}; validation: {stage.validation.split} with standard feedback")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("verl", help="veRL helpers: training data for a stage")
    sub = parser.add_subparsers(dest="verl_command", metavar="COMMAND", required=True)
    data = sub.add_parser("data", help="write a stage's train.parquet and val.parquet for veRL")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--config", help="curriculum YAML")
    source.add_argument("--preset", choices=PRESETS, default="paper", help="an embedded curriculum (default: paper)")
    data.add_argument("--stage", required=True, help="stage number (1-based) or name")
    data.add_argument("--output", type=Path, required=True, help="directory for train.parquet and val.parquet")
    data.add_argument("--release", choices=sorted(RELEASES), default=None, help="pinned bfcl-eval release")
    data.set_defaults(handler=cmd_data)
