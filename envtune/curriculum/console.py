"""The line `envtune tune` prints per training step, the same for both engines: what a person watches
while a stage trains. The run's metrics.jsonl and TensorBoard keep every number; this is the glance.

    syntax      step 3/8  reward 0.308  format_reward 0.600  val format_reward 0.400  grad 0.361     kl 0.00213   14.2 s/step  ETA 1m11s
"""

from __future__ import annotations

from typing import Any, Mapping

from envtune.curriculum.config import StageConfig
from envtune.curriculum.table import GRAD_NORM_KEYS, REWARD_KEYS, first_value

KL_KEYS = ("kl", "actor/kl_loss")  # TRL's KL to the reference model, veRL's KL loss
STEP_TIME_KEYS = ("step_time", "timing_s/step")  # TRL's (rollouts and update), veRL's (the whole step)
# The episode number (`EpisodeRecord.metrics`) each stage reward is about, which TRL logs as
# `rewards/<name>/mean`: `mixed` is mostly progress, `progress_reached` a progress too.
REWARD_COMPONENTS = {"format": "format_reward", "progress": "progress", "progress_reached": "progress",
                     "binary": "acc", "mixed": "progress"}
NAME_WIDTH = 10


def _fixed(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _short(value: float | None) -> str:
    """Three significant digits, padded to one width (gradient norms and KL span many magnitudes)."""
    return ("-" if value is None else f"{value:.3g}").ljust(8)


def duration(seconds: float) -> str:
    """`45s`, `1m11s`, `2h05m`: as long as an ETA needs to be."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def step_line(stage: StageConfig, step: int, row: Mapping[str, Any], seconds_per_step: float | None = None) -> str:
    """One step of `stage` from its metrics row (TRL's or veRL's names): reward mean, the stage's
    reward component, the transition metric when the step validated, grad norm, KL, seconds per step
    (the caller's wall-clock measure, else the row's own) and the time left if the stage runs to
    `max_steps`. Step 0 is the starting checkpoint's validation. A value the row lacks shows as `-`;
    a step that did not validate leaves the validation column blank, so that the columns line up."""
    metric = stage.transition_rule.metric
    validated = first_value(row, (f"val/{metric}",))
    validation = f"val {metric} {_fixed(validated)}" if validated is not None else " " * len(f"val {metric} 0.000")
    width = len(str(stage.max_steps))
    position = f"step {step:>{width}}/{stage.max_steps}"
    if step == 0:
        return "  ".join((f"{stage.name:<{NAME_WIDTH}}", "start".ljust(len(position)), validation)).rstrip()
    component = REWARD_COMPONENTS[stage.reward]
    seconds = seconds_per_step if seconds_per_step is not None else first_value(row, STEP_TIME_KEYS)
    timing = "" if seconds is None else f"{seconds:.1f} s/step  ETA {duration((stage.max_steps - step) * seconds)}"
    return "  ".join((
        f"{stage.name:<{NAME_WIDTH}}", position,
        f"reward {_fixed(first_value(row, REWARD_KEYS))}",
        f"{component} {_fixed(first_value(row, (f'rewards/{component}/mean',)))}",
        validation,
        f"grad {_short(first_value(row, GRAD_NORM_KEYS))}",
        f"kl {_short(first_value(row, KL_KEYS))}",
        timing,
    )).rstrip()
