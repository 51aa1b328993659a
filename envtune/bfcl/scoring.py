"""Official-parity BFCL multi-turn scoring: per-turn checks, entry verdicts and aggregation.

The rules (BFCL multi-turn checker): an entry with fewer turns than the ground truth was force-
terminated and fails. Each turn, the model's steps run on the model's instances (state carries
across turns) and the ground-truth calls on separate instances. A turn with empty ground truth is
not checked, though its calls still run. Any other turn fails without a model call, else it must
pass the state check (every public attribute equal) and the response check (the ground-truth
results of the turn are contained, as a multiset, in the model's results of all turns so far).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from envtune.bfcl.calls import DEFAULT_LIMITS, CallLimits, ToolCall
from envtune.bfcl.executor import ToolSession
from envtune.bfcl.tasks import CATEGORIES, Task

Call = str | ToolCall


@dataclass(frozen=True)
class TurnVerdict:
    """The official checks of one turn. `checked` is False for turns with empty ground truth."""

    turn: int
    checked: bool
    passed: bool
    state_ok: bool | None = None
    response_ok: bool | None = None
    reason: str | None = None
    error_type: str | None = None
    state_differences: tuple[str, ...] = ()  # "Class.attribute" that differ from the ground truth
    missing_results: tuple[str, ...] = ()  # ground-truth results the model never produced


@dataclass(frozen=True)
class EntryVerdict:
    id: str
    category: str
    valid: bool
    turns: tuple[TurnVerdict, ...] = ()
    failing_turn: int | None = None
    reason: str | None = None
    error_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["turns"] = [asdict(turn) for turn in self.turns]
        return record


class TurnChecker:
    """Runs one task turn by turn and applies the official per-turn checks.

    Feed each model step with `run_step`, then call `finish_turn` to run the turn's ground truth
    and get its verdict. Episodes use this incrementally; `score_entry` uses it for whole results.
    """

    def __init__(self, task: Task, limits: CallLimits = DEFAULT_LIMITS):
        self.task = task
        self.session = ToolSession.for_task(task, limits)  # the policy's tools: the calls it made run here
        self.ground_truth = ToolSession.for_task(task, limits)
        self.turn = 0
        self.session_results: list[str] = []  # every result of every turn so far
        self._step_sizes: list[int] = []  # calls per step in the current turn

    def run_step(self, calls: Sequence[Call]) -> list[str]:
        """Execute one model step (a list of calls) and return its result strings."""
        results = self.session.execute_all(calls)
        self.session_results.extend(results)
        self._step_sizes.append(len(calls))
        return results

    def finish_turn(self) -> TurnVerdict:
        """Run the current turn's ground truth, check the turn, and move to the next turn."""
        if self.turn >= self.task.num_turns:
            raise IndexError(f"{self.task.id} has {self.task.num_turns} turns; all are finished")
        turn, expected_calls = self.turn, self.task.ground_truth[self.turn]
        expected = self.ground_truth.execute_all(expected_calls)
        made_no_call = not self._step_sizes or self._step_sizes == [0]
        self.turn += 1
        self._step_sizes = []
        if not expected_calls:
            return TurnVerdict(turn, checked=False, passed=True, reason="not checked: empty ground truth")
        if made_no_call:
            return TurnVerdict(
                turn, checked=True, passed=False,
                reason=f"Model response list is empty for turn {turn}",
                error_type="multi_turn:empty_turn_model_response",
            )
        differences = _state_differences(self.session.instances, self.ground_truth.instances)
        if differences:
            class_name = differences[0].split(".", 1)[0]
            return TurnVerdict(
                turn, checked=True, passed=False, state_ok=False,
                reason=f"Model instance for {class_name} does not match the state with ground truth instance.",
                error_type="multi_turn:instance_state_mismatch",
                state_differences=tuple(differences),
            )
        missing = list((Counter(expected) - Counter(self.session_results)).elements())
        if missing:
            return TurnVerdict(
                turn, checked=True, passed=False, state_ok=True, response_ok=False,
                reason=(
                    "Model response execution results so far does not contain all the ground truth "
                    f"response execution results for turn {turn}."
                ),
                error_type="multi_turn:execution_response_mismatch",
                missing_results=tuple(missing),
            )
        return TurnVerdict(turn, checked=True, passed=True, state_ok=True, response_ok=True)

    def close(self) -> None:
        self.session.close()
        self.ground_truth.close()

    def __enter__(self) -> "TurnChecker":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


_MISSING = object()


def _state_differences(model_instances: dict[str, Any], truth_instances: dict[str, Any]) -> list[str]:
    """Public attributes that differ, class by class in ground-truth order (the first class decides the reason)."""
    differences = []
    for class_name, truth in truth_instances.items():
        model = model_instances[class_name]
        for attribute, expected in vars(truth).items():
            if attribute.startswith("_"):
                continue
            if getattr(model, attribute, _MISSING) != expected:
                differences.append(f"{class_name}.{attribute}")
        if differences:
            break
    return differences


def score_entry(
    task: Task,
    decoded: Sequence[Sequence[Sequence[Call]]],
    *,
    all_turns: bool = False,
    limits: CallLimits = DEFAULT_LIMITS,
) -> EntryVerdict:
    """Score one entry given as turn -> step -> calls (what the official checker consumes).

    Stops at the first failing turn like the official checker unless `all_turns` is set, in which
    case every turn gets a verdict (the entry verdict is the same).
    """
    if len(decoded) != task.num_turns:
        return EntryVerdict(
            task.id, task.category, valid=False,
            reason=(
                "Model was force-terminated during inference phase. The length of the model result "
                f"turns ({len(decoded)}) does not match the length of the ground truth turns ({task.num_turns})."
            ),
            error_type="multi_turn:force_terminated",
        )
    verdicts: list[TurnVerdict] = []
    with TurnChecker(task, limits) as checker:
        for steps in decoded:
            for step in steps:
                checker.run_step(step)
            verdicts.append(checker.finish_turn())
            if not verdicts[-1].passed and not all_turns:
                break
    failed = next((verdict for verdict in verdicts if not verdict.passed), None)
    if failed is None:
        return EntryVerdict(task.id, task.category, valid=True, turns=tuple(verdicts))
    return EntryVerdict(
        task.id, task.category, valid=False, turns=tuple(verdicts),
        failing_turn=failed.turn, reason=failed.reason, error_type=failed.error_type,
    )


def category_mean(accuracies: Mapping[str, float]) -> float | None:
    """The leaderboard's overall figure: the unweighted mean of the per-category accuracies, so a
    category with fewer entries weighs as much as the others (None when no category was scored)."""
    return sum(accuracies.values()) / len(accuracies) if accuracies else None


@dataclass
class CategoryScore:
    category: str
    passed: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float | None:
        return self.passed / self.total if self.total else None


@dataclass
class ScoreReport:
    """Accuracy per category and overall = unweighted mean over the four categories."""

    categories: dict[str, CategoryScore] = field(default_factory=dict)

    @property
    def overall(self) -> float | None:
        """Mean of the category accuracies; None unless all four categories were scored."""
        accuracies = {name: self.categories[name].accuracy for name in CATEGORIES}
        if any(accuracy is None for accuracy in accuracies.values()):
            return None
        return category_mean(accuracies)

    @property
    def mean_of_scored(self) -> float | None:
        """Mean over the categories that have entries (for partial runs such as one split)."""
        return category_mean({name: score.accuracy for name, score in self.categories.items() if score.total})

    def to_json(self) -> dict[str, Any]:
        return {
            "categories": {
                name: {"passed": score.passed, "total": score.total, "accuracy": score.accuracy}
                for name, score in self.categories.items()
            },
            "overall": self.overall,
            "mean_of_scored_categories": self.mean_of_scored,
        }

    def table(self) -> str:
        """A plain-text table a person can read (and paste next to the leaderboard)."""
        lines = [f"{'category':<14}{'passed':>8}{'total':>8}{'accuracy':>11}"]
        for name in CATEGORIES:
            score = self.categories[name]
            accuracy = "n/a" if score.accuracy is None else f"{100 * score.accuracy:.2f}%"
            lines.append(f"{name:<14}{score.passed:>8}{score.total:>8}{accuracy:>11}")
        if self.overall is not None:
            lines.append(f"{'overall':<14}{'':>16}{100 * self.overall:>10.2f}%")
        elif self.mean_of_scored is not None:
            scored = sum(1 for score in self.categories.values() if score.total)
            lines.append(f"{'overall':<14}{'':>16}{'n/a':>11}  (mean of the {scored} scored categories: "
                         f"{100 * self.mean_of_scored:.2f}%)")
        return "\n".join(lines)


def summarize(verdicts: Iterable[EntryVerdict]) -> ScoreReport:
    report = ScoreReport({name: CategoryScore(name) for name in CATEGORIES})
    for verdict in verdicts:
        score = report.categories[verdict.category]
        score.total += 1
        score.passed += int(verdict.valid)
    return report
