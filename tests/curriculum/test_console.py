"""The line `envtune tune` prints per step reads both engines' metric names, shows the stage's own
reward component and validation metric, and keeps its columns when values are missing."""

from envtune.curriculum.config import parse_config
from envtune.curriculum.console import REWARD_COMPONENTS, duration, step_line
from envtune.env.record import METRIC_NAMES
from envtune.env.rewards import REWARDS

SYNTAX, HINTS = parse_config({"name": "t", "stages": [
    {"name": "syntax", "split": "format", "reward": "format", "max_steps": 8, "transition": {"metric": "format_reward"}},
    {"name": "hints", "split": "train", "reward": "progress", "max_steps": 120, "transition": {"metric": "progress"}},
]}).stages


def test_a_trl_row_shows_the_reward_its_component_validation_gradient_kl_and_time_left():
    row = {"reward": 0.3081, "rewards/format_reward/mean": 0.6, "rewards/progress/mean": 0.1, "grad_norm": 0.3612,
           "kl": 0.00213, "step_time": 3.0, "val/format_reward": 0.4, "val/accuracy": 0.0, "loss": 0.01}
    assert step_line(SYNTAX, 3, row, seconds_per_step=14.2) == (
        "syntax      step 3/8  reward 0.308  format_reward 0.600  val format_reward 0.400  grad 0.361     "
        "kl 0.00213   14.2 s/step  ETA 1m11s")
    assert "3.0 s/step  ETA 15s" in step_line(SYNTAX, 3, row)  # without a measure of its own: TRL's step time


def test_a_verl_row_reads_verls_names():
    row = {"critic/score/mean": 0.25, "actor/grad_norm": 1.5, "actor/kl_loss": 0.002, "timing_s/step": 42.0,
           "val/progress": 0.125}
    line = step_line(HINTS, 40, row)
    assert line.split()[:5] == ["hints", "step", "40/120", "reward", "0.250"]
    assert "progress -  val progress 0.125  grad 1.5 " in line  # veRL logs no training progress per step
    assert "kl 0.002 " in line and line.endswith("42.0 s/step  ETA 56m00s")


def test_missing_values_show_as_dashes_and_a_step_without_validation_keeps_the_columns():
    assert step_line(SYNTAX, 1, {}) == "syntax      step 1/8  reward -  format_reward -" + " " * 27 + "grad -         kl -"
    validated = step_line(SYNTAX, 2, {"reward": 0.5, "grad_norm": 1.0, "kl": 0.1, "val/format_reward": 0.25})
    plain = step_line(SYNTAX, 1, {"reward": 0.5, "grad_norm": 1.0, "kl": 0.1})
    assert plain.index("grad") == validated.index("grad")


def test_step_0_is_the_starting_checkpoints_validation():
    assert step_line(SYNTAX, 0, {"val/format_reward": 0.15, "val/accuracy": 0.0}) == \
        "syntax      start     val format_reward 0.150"


def test_durations_read_at_a_glance():
    assert [duration(seconds) for seconds in (0.4, 45, 71, 3599, 7500, -3)] == ["0s", "45s", "1m11s", "59m59s", "2h05m", "0s"]


def test_every_stage_reward_has_a_component_the_episodes_log():
    assert set(REWARD_COMPONENTS) == set(REWARDS) and set(REWARD_COMPONENTS.values()) <= set(METRIC_NAMES)
