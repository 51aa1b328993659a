"""The stage-transition rule on synthetic curves, its hand-checkable statistics, and its config errors."""

import math
import re
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envtune.curriculum.transition import Decision, StageHistory, TransitionRule

RULE = TransitionRule()  # max_steps 200, min_steps 20, patience 5, grad_window 10
STABLE = [1.0, 1.05, 0.95, 1.02, 0.98] * 2  # CV ~0.035
NOISY = [0.2, 2.0, 0.3, 1.8, 0.5, 1.6, 0.2, 2.2, 0.4, 1.9]  # CV ~0.7
FLAT = [0.20, 0.30, 0.41, 0.41, 0.40, 0.41, 0.39, 0.41, 0.40]


def curve(accuracies, grads, *, steps=None, every=10):
    """Validations every `every` steps from step 0; grad norms on the last len(grads) steps."""
    val = [(index * every, accuracy) for index, accuracy in enumerate(accuracies)]
    steps = (val[-1][0] if val else len(grads)) if steps is None else steps
    return StageHistory(steps, val, [(steps - len(grads) + 1 + index, g) for index, g in enumerate(grads)])


def test_rising_accuracy_does_not_advance():
    decision = RULE.decide(curve([0.1 + 0.05 * i for i in range(10)], STABLE))
    assert not decision.advance
    assert decision.reason.startswith("continue: accuracy improving")
    assert decision.best_step == 90 and decision.best_accuracy == pytest.approx(0.55)


def test_flat_accuracy_with_stable_grad_norm_advances_from_the_best_checkpoint():
    decision = RULE.decide(curve(FLAT, STABLE))
    assert decision.advance
    assert decision.reason.startswith(
        "plateau: accuracy flat, best 0.410 at step 20, +0.000 over the last 5 validations (min_delta 0.005)")
    assert "grad norm stable, CV 0.03 over the last 10 norms (max 0.3)" in decision.reason
    assert (decision.best_step, decision.best_accuracy) == (20, 0.41)
    assert decision.stats["plateau"] and decision.stats["grad_stable"] and not decision.stats["budget_used"]


def test_flat_accuracy_with_a_noisy_grad_norm_does_not_advance():
    decision = RULE.decide(curve(FLAT, NOISY))
    assert not decision.advance
    assert decision.stats["plateau"] and decision.stats["grad_cv"] > 0.3
    assert "grad norm unstable, CV 0.7" in decision.reason


def test_a_single_spike_blocks_the_advance_unless_the_spike_test_is_off():
    spiky = curve(FLAT, [1.0] * 9 + [3.5])
    lenient = TransitionRule(max_grad_cv=1.0)  # isolate the spike test from the CV test
    assert not lenient.decide(spiky).advance
    assert "max 3.5 > 3x median 1" in lenient.decide(spiky).reason
    assert TransitionRule(max_grad_cv=1.0, spike_factor=None).decide(spiky).advance


def test_a_non_finite_grad_norm_in_the_window_is_instability():
    decision = RULE.decide(curve(FLAT, STABLE[:-1] + [math.nan]))
    assert not decision.advance
    assert "non-finite at step(s) 80" in decision.reason
    assert decision.stats["grad_nonfinite"] == 1 and decision.stats["grad_cv"] is None
    assert RULE.decide(curve(FLAT, [math.inf] + STABLE)).advance  # outside the window: forgotten


def test_an_exhausted_budget_advances_with_reason_budget():
    decision = RULE.decide(curve([0.1 + 0.05 * i for i in range(10)], NOISY, steps=200))
    assert decision.advance
    assert decision.reason.startswith("budget (200/200 steps used): accuracy improving")
    assert decision.best_step == 90 and decision.stats["budget_used"]


def test_an_exhausted_budget_without_any_validation_has_no_best_checkpoint():
    decision = RULE.decide(StageHistory(200, [(100, math.nan)], []))
    assert decision.advance and decision.reason.startswith("budget")
    assert decision.best_step is None and decision.best_accuracy is None
    assert "no finite validation yet" in decision.reason


def test_a_plateau_within_budget_is_reported_as_plateau():
    assert RULE.decide(curve(FLAT, STABLE, steps=200)).reason.startswith("plateau")


@pytest.mark.parametrize("history, why", [
    (curve(FLAT[:5], STABLE), "5 finite validations (need patience 5 + 1)"),
    (curve(FLAT, STABLE[:4]), "grad norm undecided, 4 norms logged (need 10)"),
    (curve(FLAT, STABLE, every=2), "accuracy undecided before min_steps (16/20)"),
])
def test_too_short_histories_do_not_advance(history, why):
    decision = RULE.decide(history)
    assert not decision.advance and decision.reason.startswith("continue") and why in decision.reason


def test_ties_go_to_the_earliest_step():
    decision = RULE.decide(StageHistory(40, [(0, 0.3), (10, 0.5), (20, 0.2), (30, 0.5), (40, 0.5)]))
    assert (decision.best_step, decision.best_accuracy) == (10, 0.5)


def test_nan_validations_are_dropped_and_counted():
    val = [(step, accuracy) for step, accuracy in zip(range(0, 90, 10), FLAT)]
    val.insert(3, (25, math.nan))
    decision = RULE.decide(StageHistory(80, val, curve(FLAT, STABLE).grad_norm))
    assert decision.advance and decision.best_step == 20
    assert decision.stats["val_points"] == 9 and decision.stats["val_dropped"] == 1
    five_finite = StageHistory(80, [(0, math.nan)] + [(10 * i, 0.4) for i in range(1, 6)],
                               [(step, 1.0) for step in range(71, 81)])
    assert "5 finite validations" in RULE.decide(five_finite).reason


def test_a_recovery_below_the_old_best_is_not_a_plateau_while_the_slope_is_steep():
    recovering = curve([0.50, 0.30, 0.35, 0.40, 0.45, 0.49], STABLE)
    decision = RULE.decide(recovering)
    assert not decision.advance and decision.stats["improvement"] < 0
    assert decision.stats["slope"] == pytest.approx(0.0048)
    assert TransitionRule(max_slope=None).decide(recovering).advance


def test_the_statistics_match_a_hand_computation():
    grads = [1.0, 1.2, 0.8, 1.0, 1.0, 1.1, 0.9, 1.0, 1.3, 0.7]
    decision = RULE.decide(curve([0.30, 0.40, 0.42, 0.41, 0.40, 0.43, 0.42], grads))
    window = [(20, 0.42), (30, 0.41), (40, 0.40), (50, 0.43), (60, 0.42)]
    x_mean, y_mean = 40, statistics.fmean(a for _, a in window)
    slope = sum((x - x_mean) * (y - y_mean) for x, y in window) / sum((x - x_mean) ** 2 for x, _ in window)
    assert decision.stats["window_best"] == 0.43 and decision.stats["prior_best"] == 0.40
    assert decision.stats["improvement"] == pytest.approx(0.03)
    assert decision.stats["slope"] == pytest.approx(slope)
    assert decision.stats["grad_cv"] == pytest.approx(statistics.pstdev(grads) / statistics.fmean(grads))
    assert decision.stats["grad_median"] == 1.0 and decision.stats["grad_max"] == 1.3
    assert not decision.advance  # +0.030 >= min_delta 0.005


def test_an_all_zero_grad_norm_window_is_stable():
    decision = RULE.decide(curve(FLAT, [0.0] * 10))
    assert decision.stats["grad_cv"] == 0.0 and decision.advance


@pytest.mark.parametrize("field, value", [
    ("max_steps", 0), ("min_steps", -1), ("patience", 1), ("grad_window", 1), ("patience", 2.5), ("max_steps", True),
    ("min_delta", 0.0), ("min_delta", math.nan), ("max_slope", -0.1), ("max_grad_cv", math.inf), ("max_grad_cv", "0.3"),
    ("spike_factor", 1.0), ("min_delta", None),
])
def test_bad_thresholds_are_rejected_by_name(field, value):
    with pytest.raises(ValueError, match=rf"TransitionRule\.{field} must be .*got {re.escape(repr(value))}"):
        TransitionRule(**{field: value})


def test_min_steps_beyond_the_budget_makes_a_budget_only_stage():
    rule = TransitionRule(max_steps=5, patience=2, grad_window=2)  # the default min_steps 20 is never reached
    flat = [(step, 0.4) for step in range(5)]
    assert not rule.decide(StageHistory(4, flat, [(3, 1.0), (4, 1.0)])).advance
    assert rule.decide(StageHistory(5, flat, [(4, 1.0), (5, 1.0)])).reason.startswith("budget")


def test_from_dict_reads_a_yaml_mapping():
    rule = TransitionRule.from_dict({"max_steps": 120, "min_delta": 0.01, "max_grad_cv": 1, "spike_factor": None})
    assert rule == TransitionRule(max_steps=120, min_delta=0.01, max_grad_cv=1, spike_factor=None)
    assert TransitionRule.from_dict({}) == RULE


def test_from_dict_rejects_unknown_keys():
    message = (r"unknown transition-rule key\(s\): 'patiance' \(did you mean 'patience'\?\), 'foo'; "
               r"known keys: max_steps, min_steps")
    with pytest.raises(ValueError, match=message):
        TransitionRule.from_dict({"patiance": 3, "foo": 1, "max_steps": 10})


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": -1}, "StageHistory.steps must be a non-negative integer"),
    ({"steps": 10, "val_accuracy": [(5, 0.4), (5, 0.5)]},
     r"val_accuracy\[1\] = \(5, 0.5\): steps must be strictly increasing \(previous step 5\)"),
    ({"steps": 10, "val_accuracy": [(11, 0.4)]}, r"step must be an integer in \[0, steps=10\]"),
    ({"steps": 10, "val_accuracy": [(5, 41.0)]}, r"a finite value must lie in \[0, 1.0\]"),
    ({"steps": 10, "grad_norm": [(5, -1.0)]}, r"grad_norm\[0\] = \(5, -1.0\): a finite value must lie in \[0, inf\]"),
])
def test_malformed_histories_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StageHistory(**kwargs)


def test_a_non_numeric_value_is_a_type_error():
    with pytest.raises(TypeError, match=r"grad_norm\[0\] = \(5, None\): the value must be a number"):
        StageHistory(10, grad_norm=[(5, None)])


@st.composite
def rules(draw):
    max_steps = draw(st.integers(1, 300))
    return TransitionRule(
        max_steps=max_steps, min_steps=draw(st.integers(0, 150)), patience=draw(st.integers(2, 6)),
        min_delta=draw(st.sampled_from([0.001, 0.005, 0.05])), max_slope=draw(st.sampled_from([None, 0.001, 0.1])),
        grad_window=draw(st.integers(2, 8)), max_grad_cv=draw(st.sampled_from([0.1, 0.3, 2.0])),
        spike_factor=draw(st.sampled_from([None, 3.0])),
    )


@st.composite
def histories(draw):
    """Half of them calm (flat accuracy, steady grad norm) so that every verdict comes up."""
    steps = draw(st.integers(0, 150))
    if draw(st.booleans()):
        value, norm = st.sampled_from([0.4, 0.401]), st.floats(0.95, 1.05)
    else:
        value = st.one_of(st.floats(0, 1), st.just(math.nan))
        norm = st.one_of(st.floats(0, 10), st.just(math.inf), st.just(math.nan))
    val_steps = sorted(draw(st.sets(st.integers(0, steps), max_size=20)))
    grad_steps = sorted(draw(st.sets(st.integers(0, steps), max_size=20)))
    return StageHistory(steps, [(s, draw(value)) for s in val_steps], [(s, draw(norm)) for s in grad_steps])


@given(rules(), histories())
def test_no_advance_before_min_steps_unless_the_budget_is_used(rule, history):
    decision = rule.decide(history)
    if history.steps < min(rule.min_steps, rule.max_steps):
        assert not decision.advance
    if history.steps >= rule.max_steps:
        assert decision.advance
    if decision.advance and history.steps < rule.max_steps:
        assert decision.reason.startswith("plateau") and decision.stats["plateau"] and decision.stats["grad_stable"]


@given(rules(), histories())
def test_the_best_checkpoint_is_the_earliest_maximum_of_the_finite_history(rule, history):
    decision = rule.decide(history)
    finite = [(step, accuracy) for step, accuracy in history.val_accuracy if math.isfinite(accuracy)]
    assert isinstance(decision, Decision)
    if not finite:
        assert decision.best_step is None and decision.best_accuracy is None
        return
    assert decision.best_accuracy == max(accuracy for _, accuracy in finite)
    assert decision.best_step == min(step for step, accuracy in finite if accuracy == decision.best_accuracy)


@given(rules(), histories())
def test_the_logged_statistics_always_have_the_same_keys(rule, history):
    assert set(rule.decide(history).stats) == set(RULE.decide(StageHistory(0)).stats)


def test_the_rule_names_the_metric_it_reads_and_refuses_an_unknown_one():
    points = {"val_accuracy": [(0, 0.0), (1, 1.5)], "grad_norm": [(1, 1.0), (2, 1.0)]}
    history = StageHistory(steps=3, metric="format_reward", **points)  # the format reward lies in [0, 2]
    decision = TransitionRule(max_steps=3, metric="format_reward").decide(history)
    assert "format_reward undecided, best 1.500 at step 1" in decision.reason
    with pytest.raises(ValueError, match=r"must lie in \[0, 1.0\]"):
        StageHistory(steps=3, metric="progress", **points)
    with pytest.raises(ValueError, match="reads validation accuracy, but the history holds format_reward"):
        TransitionRule(max_steps=3).decide(history)
    with pytest.raises(ValueError, match="metric must be one of accuracy, progress, format_reward, got 'bleu'"):
        TransitionRule(metric="bleu")
