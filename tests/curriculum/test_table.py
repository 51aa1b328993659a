"""The table `envtune tune` ends with reads a run's own files back, so a user sees per stage whether
the reward moved, whether gradients flowed, and what validation said before and after."""

import pytest

from envtune.curriculum.config import parse_config
from envtune.curriculum.table import format_stage_table, read_stage_rows

CONFIG = parse_config({"name": "t", "stages": [
    {"name": "syntax", "split": "format", "reward": "format", "max_steps": 6, "transition": {"metric": "format_reward"}},
    {"name": "hints", "split": "train", "reward": "progress", "max_steps": 2},
]})
SUMMARY = {"stages": [
    {"name": "syntax", "steps": 6, "best_step": 6, "decision": "budget (6/6 steps used): format_reward undecided; ..."},
    {"name": "hints", "steps": 2, "best_step": None, "decision": "budget (2/2 steps used): accuracy undecided; ..."},
]}


def trl_metrics():
    rows = [{"stage": "syntax", "step": 0, "val/format_reward": 0.2, "val/accuracy": 0.0}]
    rows += [{"stage": "syntax", "step": step, "reward": step / 10, "grad_norm": 1.0} for step in range(1, 7)]
    rows.append({"stage": "syntax", "step": 6, "reward": 0.9, "grad_norm": 1.0})  # the step again, after a resume
    rows.append({"stage": "syntax", "step": 6, "val/format_reward": 0.7, "val/accuracy": 0.0})
    rows += [{"stage": "hints", "step": step, "reward": 0.0, "grad_norm": 0.0} for step in (1, 2)]
    return rows


def test_each_stage_shows_its_reward_ends_gradient_validation_and_decision():
    syntax, hints = read_stage_rows(CONFIG, SUMMARY, trl_metrics())
    assert syntax.steps == 6  # rewards: the first and the last third of 6 steps
    assert (syntax.reward_start, syntax.reward_end) == (pytest.approx(0.15), pytest.approx(0.7))
    assert (syntax.grad_norm, syntax.metric, syntax.val_before, syntax.val_after) == (1.0, "format_reward", 0.2, 0.7)
    assert syntax.decision == "budget (6/6 steps used), hands on step 6"
    assert (hints.reward_start, hints.reward_end, hints.grad_norm) == (0.0, 0.0, 0.0)
    assert (hints.metric, hints.val_before, hints.val_after) == ("accuracy", None, None)  # never validated
    assert hints.decision == "budget (2/2 steps used)"

    lines = format_stage_table([syntax, hints]).splitlines()
    assert lines[0].split()[:3] == ["stage", "steps", "reward"]
    assert "0.150 -> 0.700" in lines[2] and "0.200 -> 0.700" in lines[2] and "hands on step 6" in lines[2]
    assert "- -> -" in lines[3]


def test_verl_metric_names_are_read_too():
    metrics = [{"stage": "syntax", "step": step, "critic/score/mean": 0.5, "actor/grad_norm": 2.0} for step in (1, 2, 3)]
    syntax, _ = read_stage_rows(CONFIG, SUMMARY, metrics)
    assert (syntax.reward_start, syntax.reward_end, syntax.grad_norm) == (0.5, 0.5, 2.0)
