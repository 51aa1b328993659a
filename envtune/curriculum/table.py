"""The table `envtune tune` ends with (and prints each stage's row of as the stage ends): per stage,
whether training moved, read back from the run's metrics.jsonl and summary.json so that a resumed run
shows its whole history, not one process's."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from envtune.curriculum.config import CurriculumConfig, StageConfig

REWARD_KEYS = ("reward", "critic/score/mean")  # TRL's logged reward mean, veRL's
GRAD_NORM_KEYS = ("grad_norm", "actor/grad_norm")


@dataclass(frozen=True)
class StageRow:
    name: str
    steps: int
    reward_start: float | None  # mean training reward over the first third of the steps
    reward_end: float | None  # ... and over the last third
    grad_norm: float | None  # mean gradient norm over the stage's steps
    metric: str  # the validation metric the transition rule reads
    val_before: float | None  # at the first validation (the stage's starting point)
    val_after: float | None  # at the last one
    decision: str


def first_value(row: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    """The first of `keys` that `row` holds, as a finite number (the engines name a metric differently)."""
    value = next((row[key] for key in keys if key in row), None)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _by_step(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[float]:
    """One value per step, in step order; a resumed step's later line replaces the earlier one."""
    values = {row["step"]: value for row in rows if (value := first_value(row, keys)) is not None}
    return [values[step] for step in sorted(values)]


def _ends(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    window = max(1, len(values) // 3)
    return statistics.fmean(values[:window]), statistics.fmean(values[-window:])


def stage_row(stage: StageConfig, result: Mapping[str, Any], metrics: Sequence[Mapping[str, Any]]) -> StageRow:
    """One stage's row, from its summary entry (`StageResult.to_json`) and the run's metrics.jsonl."""
    logged = [row for row in metrics if row.get("stage") == stage.name]
    metric = stage.transition_rule.metric
    rewards = _by_step(logged, REWARD_KEYS)
    norms = _by_step(logged, GRAD_NORM_KEYS)
    validations = _by_step(logged, (f"val/{metric}",))
    start, end = _ends(rewards)
    hand_off = "" if result.get("best_step") is None else f", hands on step {result['best_step']}"
    return StageRow(
        name=stage.name, steps=result["steps"], reward_start=start, reward_end=end,
        grad_norm=statistics.fmean(norms) if norms else None, metric=metric,
        val_before=validations[0] if validations else None, val_after=validations[-1] if validations else None,
        decision=result["decision"].split(":", 1)[0] + hand_off,
    )


def read_stage_rows(config: CurriculumConfig, summary: Mapping[str, Any],
               metrics: Sequence[Mapping[str, Any]]) -> list[StageRow]:
    return [stage_row(stage, result, metrics) for stage, result in zip(config.stages, summary["stages"])]


def format_stage_table(rows: Sequence[StageRow], footnote: bool = True) -> str:
    """A plain-text table: one line per stage, the numbers a person checks first (and a footnote on
    how they are taken, which a stage's own row printed as it ends goes without)."""
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    header = ("stage", "steps", "reward start -> end", "grad norm", "validation", "before -> after", "decision")
    lines = [(row.name, str(row.steps), f"{number(row.reward_start)} -> {number(row.reward_end)}",
              number(row.grad_norm), row.metric, f"{number(row.val_before)} -> {number(row.val_after)}", row.decision)
             for row in rows]
    widths = [max(len(cells[column]) for cells in [header, *lines]) for column in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()

    table = [render(header), render(["-" * width for width in widths]), *map(render, lines)]
    if footnote:
        table.append("reward: training reward mean over the first and the last third of the steps; grad norm: mean per step")
    return "\n".join(table)
