"""bench/learning.py without training: each arm's config is the learn preset changed only where its
docstring says, the comparisons are of per-seed differences, --arms is checked, and the summary of
synthetic runs has the documented layout."""

import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from envtune.curriculum.config import load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # the benchmarks import their siblings by name
import learning  # noqa: E402


def changed(arm: str, tmp_path) -> list[dict[str, tuple]]:
    """Per stage, the loaded settings in which the arm's config differs from rl's: {key: (rl, arm)}."""
    rl, other = (load_config(learning.arm_config(tmp_path, name, 3)) for name in ("rl", arm))
    assert (other.name, other.seed) == (rl.name, 3)
    return [{key: (value, asdict(theirs)[key]) for key, value in asdict(ours).items() if asdict(theirs)[key] != value}
            for ours, theirs in zip(rl.stages, other.stages, strict=True)]


def test_control_trains_at_learning_rate_zero(tmp_path):
    stages = changed("control", tmp_path)
    assert [set(stage) for stage in stages] == [{"grpo"}, {"grpo"}]
    assert [stage["grpo"][1]["learning_rate"] for stage in stages] == [0.0, 0.0]


def test_turn_credit_changes_the_progress_stage_only(tmp_path):
    syntax, progress = changed("turn_credit", tmp_path)
    assert syntax == {}
    assert progress == {"credit": ("episode", "turn")}
    assert load_config(learning.arm_config(tmp_path, "turn_credit", 0)).stages[1].turn_weight == 0.5


def test_zero_variance_resamples_within_the_rollouts_of_rl(tmp_path):
    rl = load_config(learning.arm_config(tmp_path, "rl", 0)).stages
    arm = load_config(learning.arm_config(tmp_path, "zero_variance", 0)).stages
    syntax, progress = changed("zero_variance", tmp_path)
    assert syntax == {}  # the format stage stays as in rl
    for stage, ours, theirs in zip([progress], rl[1:], arm[1:], strict=True):
        assert set(stage) == {"zero_variance", "max_extra_rollouts", "max_steps"}
        assert (theirs.zero_variance, theirs.extra_rollout_budget) == ("resample", theirs.grpo_settings["num_generations"])
        per_step = learning.step_rollouts(ours)
        assert theirs.max_steps * (per_step + theirs.max_extra_rollouts) <= ours.max_steps * per_step
        assert (per_step, ours.max_steps, theirs.max_extra_rollouts, theirs.max_steps) == (8, 12, 4, 8)  # as documented


def test_comparison_is_of_per_seed_differences():
    values = {"turn_credit": [2.0, 4.0, 6.0], "rl": [1.0, 2.0, 3.0]}  # differences 1, 2, 3: mean 2, stdev 1
    half = 4.303 / 3 ** 0.5  # Student's t at 2 degrees of freedom
    row = learning.comparison(values, "turn_credit", "rl")
    assert list(row) == ["turn_credit", "rl", "diff", "ci95", "seeds"]
    assert (row["turn_credit"], row["rl"], row["diff"], row["seeds"]) == (4.0, 2.0, 2.0, 3)
    assert row["ci95"] == pytest.approx([2 - half, 2 + half])
    own = learning.comparison(values, "turn_credit", "rl", diff_interval=False)  # values 2, 4, 6: stdev 2
    assert own["ci95"] == pytest.approx([4 - 2 * half, 4 + 2 * half])


@pytest.mark.parametrize("arms, message", [
    ("rl,turn-credit", "unknown arm turn-credit; the arms are rl, control, turn_credit, zero_variance"),
    ("control,zero_variance", "must name rl"),
    ("rl", "at least one other arm"),
])
def test_arms_are_checked(arms, message, capsys):
    with pytest.raises(SystemExit):
        learning.parse_args(["--arms", arms])
    assert message in capsys.readouterr().err


def test_arms_run_in_a_fixed_order():
    assert learning.parse_args([]).arms == learning.ARMS
    assert learning.parse_args(["--arms", "zero_variance, rl"]).arms == ("rl", "zero_variance")


def synthetic_metrics(arm: str, seed: int) -> list[dict]:
    """The metrics.jsonl of a run as the engine writes it: a validation at step 0, every 4 steps and at
    the last, a training row per step (step 2 twice, as a resumed run logs it), the extra rollouts."""
    rows = []
    for stage in learning.parse_config(learning.arm_document(arm, seed)).stages:
        validation = {"val/format_reward": 0.2, "val/progress": 0.0, "val/accuracy": 0.0}
        rows.append({"stage": stage.name, "step": 0, **validation})
        for step in [1, 2, 2, *range(3, stage.max_steps + 1)]:
            extra = 4.0 if stage.zero_variance == "resample" and step % 2 else 0.0
            rows.append({"stage": stage.name, "step": step, "reward": 0.1 * step + 0.01 * seed,
                         learning.EXTRA_ROLLOUTS: extra, "grad_norm": 1.0})
            if step % 4 == 0 or step == stage.max_steps:
                gain = {"rl": 0.2, "control": 0.0, "turn_credit": 0.3, "zero_variance": 0.1}[arm] * (1 + seed)
                rows.append({"stage": stage.name, "step": step, **validation, "val/format_reward": 0.2 + gain,
                             "val/progress": gain / 2})
        rows.append({"stage": stage.name, "step": stage.max_steps, "train_runtime": 1.0})  # the trainer's summary
    return rows


def test_summary_of_synthetic_runs(tmp_path, monkeypatch, capsys):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    monkeypatch.setattr(learning, "run_arm", lambda work, model, arm, seed: (synthetic_metrics(arm, seed), 90.0))
    out = tmp_path / "summary.json"
    monkeypatch.setattr(sys, "argv", ["learning.py", "--seeds", "2", "--warm-start", str(model), "--work",
                                      str(tmp_path / "work"), "--json", str(out)])
    learning.main()
    printed = capsys.readouterr().out
    summary = json.loads(out.read_text())
    assert list(summary) == ["warm_start", "val_format_reward", "val_progress", "train_reward_slope", "turn_credit",
                             "zero_variance", "rollouts_per_stage", "wall_minutes"]
    assert summary["val_format_reward"]["diff"] == pytest.approx(0.3)  # rl's gains 0.2 and 0.4 over the control's 0
    assert summary["turn_credit"]["val_progress"]["diff"] == pytest.approx(0.075)  # (0.05 + 0.1) / 2
    assert summary["turn_credit"]["train_reward_slope"] == {"turn_credit": pytest.approx(0.1), "rl": pytest.approx(0.1),
                                                            "diff": pytest.approx(0.0), "ci95": [pytest.approx(0.0)] * 2,
                                                            "seeds": 2}
    assert summary["rollouts_per_stage"]["rl"] == {"syntax": 96, "progress": 96}
    assert summary["rollouts_per_stage"]["zero_variance"] == {"syntax": 96, "progress": 80}  # 8 x 8 + 4 steps x 4
    assert summary["wall_minutes"] == {arm: 3.0 for arm in learning.ARMS}
    assert "zero_variance against rl:" in printed
    assert "progress: 80 rollouts" in printed
