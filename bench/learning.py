"""Does the RL path learn? The `learn` preset against a control that is the same run at learning rate 0.

Both arms start from the same warm start (`envtune sft` on the oracle episodes of the `format` split
with the compact prompt; `make demo` builds a cheaper one without the longest episodes; built once
into `--work` unless `--warm-start` names one), run the same stages with the same seeds, rollouts and validation (the `val` split, never
trained on); the control only never changes its weights. For each seed the benchmark reads the
runs' `metrics.jsonl` and reports, per arm:

- the training reward mean at each step (TRL's `reward`, the stage reward of the step's rollouts);
- at each validation: the format reward, progress and accuracy of greedy episodes.

Then, over seeds: the final validation format reward of the format stage (`val_format_reward`) and
the final validation progress of the progress stage (`val_progress`), RL minus control, with a 95%
interval (Student's t over the per-seed differences); and the least-squares slope of the training
reward per step of the progress stage (`train_reward_slope`, where the interval is the RL arm's).
`--json PATH` writes, for each of the three, {"rl", "control", "diff", "ci95": [low, high], "seeds"}.

    python bench/learning.py --json runs/learning.json        # 4 seeds, some 25 minutes on 2 cores

Each run is `envtune tune` in a child process, as a user runs it; a rerun reuses the warm start and
resumes unfinished runs (`--work` keeps them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from common import command_line
from envtune.curriculum.config import load_config, preset_path
from envtune.curriculum.transition import least_squares_slope
from envtune.run_files import read_jsonl

ARMS = ("rl", "control")
WARM_START = [
    "--model", "tiny-128x4", "--prompt", "compact", "--max-steps", "600", "--learning-rate", "3e-3",
    "--gradient-accumulation-steps", "1", "--save-steps", "200", "--split", "format",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per arm (default: 4)")
    parser.add_argument("--work", type=Path, default=Path("runs/learning"), help="warm start and runs (default: runs/learning)")
    parser.add_argument("--warm-start", type=Path, help="the model both arms start from (default: build one into "
                        "--work, once)")
    parser.add_argument("--json", metavar="PATH", help="write the three headline comparisons as JSON")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (the interval is over seeds)")
    if args.warm_start and not (args.warm_start / "config.json").is_file():
        parser.error(f"--warm-start {args.warm_start}: no model there (a local directory with config.json, such as "
                     "runs/warm-start/final after make demo)")
    return args


def envtune(*arguments: str) -> None:
    """An envtune command in a child process, its output where the user sees it."""
    subprocess.run([sys.executable, "-m", "envtune", *arguments], check=True)


def warm_start(work: Path) -> Path:
    output = work / "warm-start"
    if not (output / "final" / "config.json").is_file():
        envtune("sft", *WARM_START, "--output", str(output))
    return output / "final"


def arm_config(work: Path, arm: str, seed: int) -> Path:
    """The learn preset with this seed; the control trains every stage at learning rate 0."""
    document = yaml.safe_load(preset_path("learn").read_text())
    document["seed"] = seed
    if arm == "control":
        for stage in document["stages"]:
            stage["grpo"] = {**stage.get("grpo", {}), "learning_rate": 0.0}
    path = work / f"{arm}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_arm(work: Path, model: Path, arm: str, seed: int) -> list[dict[str, Any]]:
    output = work / f"{arm}-seed{seed}"
    if not (output / "summary.json").is_file():
        envtune("tune", "--config", str(arm_config(work, arm, seed)), "--model", str(model), "--output", str(output))
    return read_jsonl(output / "metrics.jsonl")


def curves(metrics: list[dict[str, Any]], stage: str) -> dict[str, list[tuple[int, float]]]:
    """Per step of one stage: the training reward, and the validation numbers where it validated."""
    rows = [row for row in metrics if row["stage"] == stage]
    named = {"reward": "reward", "val/format_reward": "val_format_reward", "val/progress": "val_progress",
             "val/accuracy": "val_accuracy"}
    found: dict[str, dict[int, float]] = {name: {} for name in named.values()}
    for row in rows:
        for key, name in named.items():
            if key in row:
                found[name][row["step"]] = float(row[key])  # a resumed step's later line wins
    return {name: sorted(points.items()) for name, points in found.items()}


# Two-sided 95% quantiles of Student's t by degrees of freedom (tables of the distribution); the normal's beyond
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         15: 2.131, 20: 2.086, 30: 2.042}


def interval(values: Sequence[float]) -> tuple[float, float]:
    """The 95% Student-t interval of the mean (for degrees of freedom between the table's, the next
    smaller one's quantile: a wider interval, never a narrower one)."""
    mean, freedom = statistics.fmean(values), len(values) - 1
    quantile = T_975[max(df for df in T_975 if df <= freedom)] if freedom <= 30 else 1.96
    half = quantile * statistics.stdev(values) / len(values) ** 0.5
    return mean - half, mean + half


def comparison(rl: Sequence[float], control: Sequence[float], diff_interval: bool = True) -> dict[str, Any]:
    differences = [a - b for a, b in zip(rl, control)]
    low, high = interval(differences if diff_interval else rl)
    return {"rl": statistics.fmean(rl), "control": statistics.fmean(control), "diff": statistics.fmean(differences),
            "ci95": [low, high], "seeds": len(rl)}


def main() -> None:
    args = parse_args()
    print(command_line())
    stages = [stage.name for stage in load_config(preset_path("learn")).stages]
    format_stage, progress_stage = stages[0], stages[-1]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = args.warm_start or warm_start(work)
    results = {(arm, seed): run_arm(work, model, arm, seed) for seed in range(args.seeds) for arm in ARMS}
    minutes = (time.perf_counter() - start) / 60

    finals: dict[str, dict[str, list[float]]] = {name: {arm: [] for arm in ARMS}
                                                for name in ("val_format_reward", "val_progress", "train_reward_slope")}
    for seed in range(args.seeds):
        for arm in ARMS:
            first, last = curves(results[arm, seed], format_stage), curves(results[arm, seed], progress_stage)
            finals["val_format_reward"][arm].append(first["val_format_reward"][-1][1])
            finals["val_progress"][arm].append(last["val_progress"][-1][1])
            finals["train_reward_slope"][arm].append(least_squares_slope(last["reward"]))
            print(f"\nseed {seed}, {arm}:")
            for stage, curve in ((format_stage, first), (progress_stage, last)):
                rewards = " ".join(f"{value:.2f}" for _, value in curve["reward"])
                print(f"  {stage}: training reward per step {rewards}")
                for step, value in curve["val_format_reward"]:
                    progress, accuracy = dict(curve["val_progress"])[step], dict(curve["val_accuracy"])[step]
                    print(f"    validation at step {step}: format reward {value:.3f}, progress {progress:.3f}, "
                          f"accuracy {accuracy:.3f}")

    before = {name: curves(results["control", 0], format_stage)[name][0][1]
              for name in ("val_format_reward", "val_progress", "val_accuracy")}
    print(f"\nwarm start (every run's first validation): format reward {before['val_format_reward']:.3f}, "
          f"progress {before['val_progress']:.3f}, accuracy {before['val_accuracy']:.3f}")
    summary = {
        "warm_start": before,
        "val_format_reward": comparison(finals["val_format_reward"]["rl"], finals["val_format_reward"]["control"]),
        "val_progress": comparison(finals["val_progress"]["rl"], finals["val_progress"]["control"]),
        "train_reward_slope": comparison(finals["train_reward_slope"]["rl"], finals["train_reward_slope"]["control"],
                                         diff_interval=False),
    }
    print(f"\n{'metric':<20}{'rl':>9}{'control':>9}{'diff':>9}  95% interval   (per seed rl / control)")
    for name in finals:
        row = summary[name]
        seeds = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(finals[name]["rl"], finals[name]["control"]))
        print(f"{name:<20}{row['rl']:>9.3f}{row['control']:>9.3f}{row['diff']:>9.3f}  "
              f"[{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]  ({seeds})")
    print("val_format_reward and val_progress: final validation, RL minus control, interval of the difference over "
          f"seeds; train_reward_slope: reward per step of the {progress_stage} stage, interval of the RL arm's slope")
    print(f"wall time {minutes:.1f} minutes (warm start and {2 * args.seeds} runs; reused ones cost nothing)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"summary written to {args.json}")


if __name__ == "__main__":
    main()
