"""The curriculum's stage-transition rule (paper Remark 3.1), made concrete.

The paper moves on only when validation accuracy has plateaued AND the gradient norm is stable, and
starts the next stage from the selected checkpoint; it gives no thresholds. This module fixes them
as configurable fields of `TransitionRule`. It is pure: the trainer hands over the stage's history,
gets a `Decision`, and does the checkpoint hand-off itself.

Reproducing a decision by hand. The history holds `steps` (optimizer steps done in this stage,
counted from 0 at its start), validation points (step, accuracy in [0, 1]) and gradient norms
(step, norm), each in increasing step order. A validation at step 0 scores the checkpoint the stage
started from, which is a fair "best so far" for the stage. The validation value is the rule's
`metric`: official task accuracy by default, or progress (both in [0, 1]) or the format reward (in
[0, 2]); below, "accuracy" stands for whichever it is.

1. Best checkpoint. Non-finite accuracies (a failed validation run) are dropped and counted in
   `val_dropped`. The best point is the highest remaining accuracy; a tie goes to the EARLIEST step,
   because a later equal score is no improvement (the plateau test agrees) and the earlier
   checkpoint got there with fewer updates. The trainer must keep a checkpoint at every validated
   step so that `best_step` can be loaded. No finite validation gives `best_step = None`.
2. Accuracy plateau. Needs at least `patience + 1` finite validations: the window is the last
   `patience` of them, the prefix is everything before.
     improvement = max(window accuracy) - max(prefix accuracy)
     slope       = least-squares slope of accuracy against step over the window,
                   sum((x - mean x)(y - mean y)) / sum((x - mean x)^2), per step
   Flat when improvement < min_delta and slope < max_slope (the slope test is skipped when
   `max_slope` is None). The slope test keeps a curve that dipped and is climbing back towards its
   old best from counting as flat. The accuracy may only count as flat once `steps >= min_steps`
   (so min_steps >= max_steps leaves only the budget).
3. Grad-norm stability. Needs at least `grad_window` norms; the window is the last `grad_window`.
   Any non-finite norm in the window means unstable (a NaN/inf gradient is the very instability the
   test guards against, so it is not dropped). Otherwise, with the population standard deviation
   (divide by n):
     CV = std / mean            (0 for an all-zero window: nothing varies)
     stable when CV < max_grad_cv and max <= spike_factor * median
   (the spike test is skipped when `spike_factor` is None).
4. Advance when the accuracy is flat and the grad norm stable ("plateau"), otherwise when
   `steps >= max_steps` ("budget"). `Decision.reason` starts with "plateau", "budget" or "continue"
   and carries the numbers behind both tests; `Decision.stats` holds them for logging.

All thresholds are strict: "below" means <, so min_delta, max_slope and max_grad_cv must be > 0
(and spike_factor > 1). Bad thresholds and malformed histories raise ValueError naming the field
(TypeError for a non-numeric history value).
"""

from __future__ import annotations

import difflib
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

from envtune.errors import EnvtuneError

Point = tuple[int, float]
Stat = int | float | bool | None
# What a stage's validations are judged by, with the largest value each can take: official task
# accuracy, progress (mean turn success) or the format reward (in [0, 2]; a format stage's model cannot
# solve tasks yet, so its accuracy says nothing)
METRIC_MAXIMUM = {"accuracy": 1.0, "progress": 1.0, "format_reward": 2.0}
VALIDATION_METRICS = tuple(METRIC_MAXIMUM)


@dataclass(frozen=True)
class StageHistory:
    """What one stage has produced so far; the constructor checks order and ranges, so that a
    mislogged curve (unsorted, or accuracy in percent) fails loudly instead of deciding wrongly."""

    steps: int
    val_accuracy: Sequence[Point] = ()  # the values of `metric`
    grad_norm: Sequence[Point] = ()
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 0:
            raise EnvtuneError(f"StageHistory.steps must be a non-negative integer, got {self.steps!r}")
        if self.metric not in METRIC_MAXIMUM:
            raise EnvtuneError(f"StageHistory.metric must be one of {', '.join(VALIDATION_METRICS)}, got {self.metric!r}")
        object.__setattr__(self, "val_accuracy",
                           _checked_points("val_accuracy", self.val_accuracy, self.steps, METRIC_MAXIMUM[self.metric]))
        object.__setattr__(self, "grad_norm", _checked_points("grad_norm", self.grad_norm, self.steps, math.inf))


def _checked_points(name: str, points: Sequence[Point], steps: int, upper: float) -> tuple[Point, ...]:
    """(step, value) pairs as a tuple; steps strictly increasing within [0, steps], finite values in
    [0, upper]. Non-finite values pass: what they mean is the rule's business."""
    checked: list[Point] = []
    for index, (step, value) in enumerate(points):
        where = f"StageHistory.{name}[{index}] = ({step!r}, {value!r})"
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= steps:
            raise EnvtuneError(f"{where}: the step must be an integer in [0, steps={steps}]")
        if checked and step <= checked[-1][0]:
            raise EnvtuneError(f"{where}: steps must be strictly increasing (previous step {checked[-1][0]})")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where}: the value must be a number")
        if math.isfinite(value) and not 0.0 <= value <= upper:
            raise EnvtuneError(f"{where}: a finite value must lie in [0, {upper}]")
        checked.append((step, float(value)))
    return tuple(checked)


@dataclass(frozen=True)
class Decision:
    """The rule's verdict. On advance the next stage starts from `best_step`'s checkpoint (the last
    checkpoint when `best_step` is None, i.e. no validation succeeded)."""

    advance: bool
    reason: str
    best_step: int | None
    best_accuracy: float | None
    stats: dict[str, Stat]


@dataclass(frozen=True)
class _Check:
    """One half of the rule: whether it holds, a phrase explaining it, and its numbers."""

    holds: bool
    text: str
    stats: dict[str, Stat]


@dataclass(frozen=True)
class TransitionRule:
    """Thresholds of the stage-transition rule (see the module docstring for the statistics).

    Defaults assume accuracy as a fraction, a validation every ~10 steps and a gradient norm logged
    every step; set them per stage in the run config.
    """

    max_steps: int = 200          # step budget of the stage: advance when it is used up
    min_steps: int = 20           # no plateau decision before this; >= max_steps makes a budget-only stage
    patience: int = 5             # validations in the plateau window
    min_delta: float = 0.005      # an improvement below this over the window is no improvement
    max_slope: float | None = 0.001   # accuracy per step; None skips the slope test
    grad_window: int = 10         # gradient norms in the stability window
    max_grad_cv: float = 0.3      # coefficient of variation (std / mean) of the window
    spike_factor: float | None = 3.0  # max norm allowed as a multiple of the median; None skips
    metric: str = "accuracy"      # the validation number the plateau and the best checkpoint read

    def __post_init__(self) -> None:
        if self.metric not in VALIDATION_METRICS:
            raise EnvtuneError(f"TransitionRule.metric must be one of {', '.join(VALIDATION_METRICS)}, got {self.metric!r}")
        _require_int("max_steps", self.max_steps, 1)
        _require_int("min_steps", self.min_steps, 0)
        _require_int("patience", self.patience, 2)
        _require_int("grad_window", self.grad_window, 2)
        _require_number("min_delta", self.min_delta, above=0.0)
        _require_number("max_slope", self.max_slope, above=0.0, optional=True)
        _require_number("max_grad_cv", self.max_grad_cv, above=0.0)
        _require_number("spike_factor", self.spike_factor, above=1.0, optional=True)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, object]) -> TransitionRule:
        """Build from a config mapping (e.g. YAML); a misspelt key is an error, not a silent default."""
        known = [f.name for f in fields(cls)]
        unknown = [key for key in mapping if key not in known]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), known, n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise EnvtuneError(f"unknown transition-rule key(s): {', '.join(hints)}; known keys: {', '.join(known)}")
        return cls(**mapping)

    def decide(self, history: StageHistory) -> Decision:
        """Advance on a plateau with a stable gradient norm, or when the step budget is used up."""
        if history.metric != self.metric:
            raise EnvtuneError(f"the rule reads validation {self.metric}, but the history holds {history.metric}")
        valid = [(step, accuracy) for step, accuracy in history.val_accuracy if math.isfinite(accuracy)]
        best = max(valid, key=lambda point: (point[1], -point[0]), default=None)  # earliest on ties
        accuracy = self._accuracy_check(history.steps, valid, best)
        grad = self._grad_check(history.grad_norm)
        budget_used = history.steps >= self.max_steps

        if accuracy.holds and grad.holds:
            head = "plateau"
        elif budget_used:
            head = f"budget ({history.steps}/{self.max_steps} steps used)"
        else:
            head = "continue"
        stats: dict[str, Stat] = {
            "steps": history.steps,
            "max_steps": self.max_steps,
            "budget_used": budget_used,
            "val_points": len(valid),
            "val_dropped": len(history.val_accuracy) - len(valid),
            **accuracy.stats,
            **grad.stats,
        }
        return Decision(
            advance=(accuracy.holds and grad.holds) or budget_used,
            reason=f"{head}: {accuracy.text}; {grad.text}",
            best_step=None if best is None else best[0],
            best_accuracy=None if best is None else best[1],
            stats=stats,
        )

    def _accuracy_check(self, steps: int, valid: list[Point], best: Point | None) -> _Check:
        """Step 2 of the module docstring; the numbers are computed as soon as there are enough
        validations (so they can be logged), the verdict only from `min_steps` on."""
        best_text = "no finite validation yet" if best is None else f"best {best[1]:.3f} at step {best[0]}"
        metric = self.metric
        stats: dict[str, Stat] = {"window_best": None, "prior_best": None, "improvement": None, "slope": None,
                                  "plateau": False}
        if len(valid) < self.patience + 1:
            return _Check(False, f"{metric} undecided, {best_text}, {len(valid)} finite validations "
                                 f"(need patience {self.patience} + 1)", stats)
        window, prior = valid[-self.patience:], valid[:-self.patience]
        window_best = max(accuracy for _, accuracy in window)
        prior_best = max(accuracy for _, accuracy in prior)
        improvement = window_best - prior_best
        slope = least_squares_slope(window)
        flat = improvement < self.min_delta and (self.max_slope is None or slope < self.max_slope)
        slope_limit = "" if self.max_slope is None else f" (max {self.max_slope:g})"
        numbers = (f"{best_text}, {improvement:+.3f} over the last {self.patience} validations "
                   f"(min_delta {self.min_delta:g}), slope {slope:+.5f}/step{slope_limit}")
        if steps < self.min_steps:
            verdict = f"undecided before min_steps ({steps}/{self.min_steps})"
        else:
            verdict = "flat" if flat else "improving"
        holds = flat and steps >= self.min_steps
        stats.update(window_best=window_best, prior_best=prior_best, improvement=improvement, slope=slope,
                     plateau=holds)
        return _Check(holds, f"{metric} {verdict}, {numbers}", stats)

    def _grad_check(self, norms: Sequence[Point]) -> _Check:
        """Step 3 of the module docstring."""
        window = norms[-self.grad_window:]
        nonfinite = [step for step, norm in window if not math.isfinite(norm)]
        stats: dict[str, Stat] = {"grad_points": len(norms), "grad_nonfinite": len(nonfinite), "grad_mean": None,
                                  "grad_cv": None, "grad_median": None, "grad_max": None, "grad_stable": False}
        if len(window) < self.grad_window:
            return _Check(False, f"grad norm undecided, {len(norms)} norms logged (need {self.grad_window})", stats)
        if nonfinite:
            steps = ", ".join(str(step) for step in nonfinite)
            return _Check(False, f"grad norm unstable, non-finite at step(s) {steps} "
                                 f"in the last {self.grad_window} norms", stats)
        values = [norm for _, norm in window]
        mean = statistics.fmean(values)
        cv = statistics.pstdev(values) / mean if mean > 0 else 0.0
        median, peak = statistics.median(values), max(values)
        no_spike = self.spike_factor is None or peak <= self.spike_factor * median
        stable = cv < self.max_grad_cv and no_spike
        spike_text = "" if self.spike_factor is None else (
            f", max {peak:.3g} {'<=' if no_spike else '>'} {self.spike_factor:g}x median {median:.3g}")
        stats.update(grad_mean=mean, grad_cv=cv, grad_median=median, grad_max=peak, grad_stable=stable)
        return _Check(stable, f"grad norm {'stable' if stable else 'unstable'}, CV {cv:.2f} over the last "
                              f"{self.grad_window} norms (max {self.max_grad_cv:g}){spike_text}", stats)


def least_squares_slope(points: Sequence[Point]) -> float:
    """Slope of the least-squares line through (step, value); steps are distinct, so it is defined."""
    xs = [float(step) for step, _ in points]
    ys = [value for _, value in points]
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(ys)
    covariance = sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys))
    return covariance / sum((x - x_mean) ** 2 for x in xs)


def _require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EnvtuneError(f"TransitionRule.{name} must be an integer >= {minimum}, got {value!r}")


def _require_number(name: str, value: object, *, above: float, optional: bool = False) -> None:
    if optional and value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
            or value <= above):
        allowed = f"a finite number > {above:g}" + (" or None" if optional else "")
        raise EnvtuneError(f"TransitionRule.{name} must be {allowed}, got {value!r}")
