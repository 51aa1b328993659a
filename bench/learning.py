"""Does the RL path learn, and what do turn credit and resampling flat groups change? The `learn`
preset (the `rl` arm) against three arms, each compared with rl:

- `control`: the same run at learning rate 0, which never changes its weights;
- `turn_credit`: `credit: turn` (turn_weight at its default, 0.5) in the progress stage; the syntax
  stage's reward is format, which turn credit refuses, so it stays as in rl;
- `zero_variance`: `zero_variance: resample` in the progress stage (as `configs/zero_variance.yaml`
  has it in the paper's progress stages), on rl's budget of rollouts: the stage may play at most the
  rollouts rl's does (max_steps x tasks_per_step x num_generations), so it gets one group of extra
  rollouts per step (max_extra_rollouts = num_generations) and max_steps = that budget // (rollouts
  per step + max_extra_rollouts): in the learn preset, 8 steps of at most 8 + 4 rollouts against rl's
  12 steps of 8, 96 in all. Its training reward is that of the groups that trained (flat ones
  replaced) over fewer steps, so its `train_reward_slope` is not like for like. (The syntax stage
  stays as in rl: its format rewards seldom tie, and a trial run with resampling there replaced no
  group, so the budget rule would only have cut its steps.)

Both new arms leave the syntax stage as rl has it, so their `val_format_reward` differs from rl's only
as far as two runs of the same stage do. A stage validates every `validation.every` steps and on its
last step, so its final validation is that of its last step.

Every arm starts from the same warm start (`envtune sft` on the oracle episodes of the `format`
split with the compact prompt; `make demo` builds a cheaper one without the longest episodes; built
once into `--work` unless `--warm-start` names one) and runs with the same seeds and validation (the
`val` split, never trained on). For each seed the benchmark reads the runs' `metrics.jsonl` and
reports, per arm:

- per stage, the rollouts played: a step's batch, plus those played to replace flat groups (logged
  per step as `rewards/extra_rollouts/mean`), so the zero_variance arm's budget shows;
- the training reward mean at each step (TRL's `reward`, the stage reward of the step's rollouts);
- at each validation: the format reward, progress and accuracy of greedy episodes.

Then, over seeds, for each comparison: the final validation format reward of the format stage
(`val_format_reward`), the final validation progress of the progress stage (`val_progress`) and the
least-squares slope of the training reward per step of the progress stage (`train_reward_slope`):
each arm's mean, the mean of the per-seed differences (the arm minus rl; rl minus the control) and a
95% interval of those differences (Student's t), except that against the control the slope's interval
is the rl arm's own (the control's weights never change). Last, each arm's wall time: every
`envtune tune` is timed and the time kept in its run directory (`wall_seconds.json`), so a rerun that
reuses a finished run still reports it (a resumed run counts its last process only).

`--json PATH` writes {"warm_start": {...}, "val_format_reward", "val_progress", "train_reward_slope"
(rl against control, each {"rl", "control", "diff", "ci95": [low, high], "seeds"}), "turn_credit" and
"zero_variance" (each holding the same three keys, each {"<arm>", "rl", "diff", "ci95", "seeds"}),
"rollouts_per_stage": {arm: {stage: mean over seeds}}, "wall_minutes": {arm: minutes, all its runs}},
each comparison present when its arm ran.

    python bench/learning.py --json runs/learning.json        # 4 arms x 4 seeds: 50 to 60 minutes on 2 cores
    python bench/learning.py --arms rl,control                # the first question only: 8 runs of 3 to 4 minutes

Each run is `envtune tune` in a child process, as a user runs it; a rerun reuses the warm start and
finished runs and resumes unfinished ones (`--work` keeps them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from common import command_line
from envtune.curriculum.config import TURN_CREDIT_REWARDS, StageConfig, load_config, parse_config, preset_path
from envtune.curriculum.transition import least_squares_slope
from envtune.run_files import read_jsonl, write_json

ARMS = ("rl", "control", "turn_credit", "zero_variance")
# What each arm but rl compares, as (arm, baseline), the difference arm minus baseline: rl against the control,
# the others against rl
COMPARED = {"control": ("rl", "control"), "turn_credit": ("turn_credit", "rl"), "zero_variance": ("zero_variance", "rl")}
NOTES = {
    "control": "val_format_reward and val_progress: final validation, rl minus control, interval of the difference "
               "over seeds; train_reward_slope: reward per step of the progress stage, interval of the rl arm's slope",
    "turn_credit": "turn_credit minus rl seed by seed, interval of the differences over seeds",
    "zero_variance": "zero_variance minus rl seed by seed, interval of the differences over seeds; its "
                     "train_reward_slope is not like for like (the reward of the groups that trained, over fewer steps)",
}
FINALS = ("val_format_reward", "val_progress", "train_reward_slope")
EXTRA_ROLLOUTS = "rewards/extra_rollouts/mean"  # TRL's log of envtune.train.grpo's extra_rollouts field
WARM_START = [
    "--model", "tiny-128x4", "--prompt", "compact", "--max-steps", "600", "--learning-rate", "3e-3",
    "--gradient-accumulation-steps", "1", "--save-steps", "200", "--split", "format",
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per arm (default: 4)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated arms, rl among them (default: all, "
                        f"{','.join(ARMS)})")
    parser.add_argument("--work", type=Path, default=Path("runs/learning"), help="warm start and runs (default: runs/learning)")
    parser.add_argument("--warm-start", type=Path, help="the model every arm starts from (default: build one into "
                        "--work, once)")
    parser.add_argument("--json", metavar="PATH", help="write the headline comparisons as JSON")
    args = parser.parse_args(argv)
    if args.seeds < 2:
        parser.error("--seeds must be at least 2 (the interval is over seeds)")
    chosen = {name.strip() for name in args.arms.split(",")} - {""}
    unknown = sorted(chosen - set(ARMS))
    if unknown:
        parser.error(f"--arms: unknown arm {', '.join(unknown)}; the arms are {', '.join(ARMS)}")
    if "rl" not in chosen or len(chosen) < 2:
        parser.error("--arms must name rl and at least one other arm: every comparison is against rl")
    args.arms = tuple(arm for arm in ARMS if arm in chosen)
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


def step_rollouts(stage: StageConfig) -> int:
    """Rollouts of one optimizer step before any replacement: tasks_per_step groups of num_generations."""
    return stage.tasks_per_step * stage.grpo_settings["num_generations"]


def stage_changes(arm: str, raw: Mapping[str, Any], stage: StageConfig) -> dict[str, Any]:
    """The keys an arm sets in one stage of the learn preset (`raw` as written, `stage` as loaded)."""
    if arm == "control":
        return {"grpo": {**raw.get("grpo", {}), "learning_rate": 0.0}}
    if arm == "turn_credit" and stage.reward in TURN_CREDIT_REWARDS:
        return {"credit": "turn"}
    if arm == "zero_variance" and stage.reward in TURN_CREDIT_REWARDS:  # at most one group more per step, on rl's budget
        extra = stage.grpo_settings["num_generations"]
        budget = stage.max_steps * step_rollouts(stage)
        return {"zero_variance": "resample", "max_extra_rollouts": extra,
                "max_steps": budget // (step_rollouts(stage) + extra)}
    return {}


def arm_document(arm: str, seed: int) -> dict[str, Any]:
    """The learn preset with this seed, changed as the arm says (see the module docstring)."""
    document = yaml.safe_load(preset_path("learn").read_text())
    document["seed"] = seed
    for raw, stage in zip(document["stages"], load_config(preset_path("learn")).stages):
        raw.update(stage_changes(arm, raw, stage))
    return document


def arm_config(work: Path, arm: str, seed: int) -> Path:
    path = work / f"{arm}-seed{seed}.yaml"
    path.write_text(yaml.safe_dump(arm_document(arm, seed), sort_keys=False))
    return path


def run_arm(work: Path, model: Path, arm: str, seed: int) -> tuple[list[dict[str, Any]], float | None]:
    """A run's metrics and the wall-clock seconds of its `envtune tune` (None for a run finished
    before runs were timed); a finished run is reused."""
    output = work / f"{arm}-seed{seed}"
    timing = output / "wall_seconds.json"
    if not (output / "summary.json").is_file():
        start = time.perf_counter()
        envtune("tune", "--config", str(arm_config(work, arm, seed)), "--model", str(model), "--output", str(output))
        write_json(timing, {"seconds": time.perf_counter() - start})
    seconds = json.loads(timing.read_text())["seconds"] if timing.is_file() else None
    return read_jsonl(output / "metrics.jsonl"), seconds


def curves(metrics: list[dict[str, Any]], stage: str) -> dict[str, list[tuple[int, float]]]:
    """Per step of one stage: the training reward, the rollouts played, and the validation numbers
    where it validated."""
    rows = [row for row in metrics if row["stage"] == stage]
    named = {"reward": "reward", EXTRA_ROLLOUTS: "extra_rollouts", "val/format_reward": "val_format_reward",
             "val/progress": "val_progress", "val/accuracy": "val_accuracy"}
    found: dict[str, dict[int, float]] = {name: {} for name in named.values()}
    for row in rows:
        for key, name in named.items():
            if key in row:
                found[name][row["step"]] = float(row[key])  # a resumed step's later line wins
    return {name: sorted(points.items()) for name, points in found.items()}


def rollouts_played(curve: Mapping[str, list[tuple[int, float]]], stage: StageConfig) -> int:
    """The rollouts a stage played: each training step's batch, plus the extra ones it logged (runs
    from before they were logged played none)."""
    extra = dict(curve["extra_rollouts"])
    return round(sum(step_rollouts(stage) + extra.get(step, 0.0) for step, _ in curve["reward"]))


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


def comparison(values: Mapping[str, Sequence[float]], arm: str, baseline: str, diff_interval: bool = True) -> dict[str, Any]:
    """Two arms' per-seed values (seed i at index i in both): their means, the mean of `arm` minus
    `baseline` seed by seed, and the interval of those differences, or of `arm`'s own values."""
    differences = [a - b for a, b in zip(values[arm], values[baseline], strict=True)]
    low, high = interval(differences if diff_interval else values[arm])
    return {arm: statistics.fmean(values[arm]), baseline: statistics.fmean(values[baseline]),
            "diff": statistics.fmean(differences), "ci95": [low, high], "seeds": len(differences)}


def print_comparison(rows: Mapping[str, Mapping[str, Any]], values: Mapping[str, Mapping[str, list[float]]],
                     arm: str, baseline: str) -> None:
    """One comparison as a table: the means, the mean difference, its interval and every seed's pair."""
    print(f"\n{arm} against {baseline}:")
    print(f"{'metric':<20}{arm:>14}{baseline:>9}{'diff':>9}  95% interval      (per seed {arm} / {baseline})")
    for name, row in rows.items():
        seeds = ", ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(values[name][arm], values[name][baseline]))
        print(f"{name:<20}{row[arm]:>14.3f}{row[baseline]:>9.3f}{row['diff']:>9.3f}  "
              f"[{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]  ({seeds})")


def main() -> None:
    args = parse_args()
    print(command_line())
    stages = {arm: parse_config(arm_document(arm, 0)).stages for arm in args.arms}
    format_stage, progress_stage = stages["rl"][0].name, stages["rl"][-1].name
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    model = args.warm_start or warm_start(work)
    results = {(arm, seed): run_arm(work, model, arm, seed) for seed in range(args.seeds) for arm in args.arms}
    minutes = (time.perf_counter() - start) / 60

    finals = {name: {arm: [] for arm in args.arms} for name in FINALS}
    rollouts: dict[str, dict[str, list[int]]] = {arm: {stage.name: [] for stage in stages[arm]} for arm in args.arms}
    for seed in range(args.seeds):
        for arm in args.arms:
            metrics = results[arm, seed][0]
            first, last = curves(metrics, format_stage), curves(metrics, progress_stage)
            finals["val_format_reward"][arm].append(first["val_format_reward"][-1][1])
            finals["val_progress"][arm].append(last["val_progress"][-1][1])
            finals["train_reward_slope"][arm].append(least_squares_slope(last["reward"]))
            print(f"\nseed {seed}, {arm}:")
            for stage, curve in zip(stages[arm], (first, last)):
                played = rollouts_played(curve, stage)
                rollouts[arm][stage.name].append(played)
                rewards = " ".join(f"{value:.2f}" for _, value in curve["reward"])
                print(f"  {stage.name}: {played} rollouts, training reward per step {rewards}")
                for step, value in curve["val_format_reward"]:
                    progress, accuracy = dict(curve["val_progress"])[step], dict(curve["val_accuracy"])[step]
                    print(f"    validation at step {step}: format reward {value:.3f}, progress {progress:.3f}, "
                          f"accuracy {accuracy:.3f}")

    before = {name: curves(results["rl", 0][0], format_stage)[name][0][1]
              for name in ("val_format_reward", "val_progress", "val_accuracy")}
    print(f"\nwarm start (every run's first validation): format reward {before['val_format_reward']:.3f}, "
          f"progress {before['val_progress']:.3f}, accuracy {before['val_accuracy']:.3f}")
    summary: dict[str, Any] = {"warm_start": before}
    for other in (arm for arm in args.arms if arm != "rl"):
        arm, baseline = COMPARED[other]
        rows = {name: comparison(finals[name], arm, baseline,
                                 diff_interval=not (name == "train_reward_slope" and baseline == "control"))
                for name in FINALS}
        summary.update(rows if other == "control" else {other: rows})
        print_comparison(rows, finals, arm, baseline)
        print(NOTES[other])

    summary["rollouts_per_stage"] = {arm: {stage: statistics.fmean(counts) for stage, counts in played.items()}
                                     for arm, played in rollouts.items()}
    summary["wall_minutes"] = {}
    print(f"\n{'arm':<15}{'minutes per run':>16}{'in all':>8}   rollouts per stage: mean over seeds (most)")
    for arm in args.arms:
        timed = [seconds / 60 for (name, _), (_, seconds) in results.items() if name == arm and seconds is not None]
        summary["wall_minutes"][arm] = sum(timed)
        per_run = f"{statistics.fmean(timed):>16.1f}" if timed else f"{'-':>16}"
        played = ", ".join(f"{stage} {statistics.fmean(counts):.1f} ({max(counts)})"
                           for stage, counts in rollouts[arm].items())
        untimed = args.seeds - len(timed)
        note = f"   ({untimed} of its runs finished before runs were timed)" if untimed else ""
        print(f"{arm:<15}{per_run}{sum(timed):>8.1f}   {played}{note}")
    print(f"wall time {minutes:.1f} minutes (warm start and {len(args.arms) * args.seeds} runs; reused ones cost nothing)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"summary written to {args.json}")


if __name__ == "__main__":
    main()
