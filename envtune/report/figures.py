"""The report's plots, built with Plotly and handed to the page as figure JSON (the page draws them
with the Plotly library it inlines, so the file needs no network)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Mapping, Sequence

from envtune.bfcl.tasks import CATEGORIES
from envtune.curriculum.console import KL_KEYS
from envtune.curriculum.table import GRAD_NORM_KEYS, REWARD_KEYS, first_value

# One row of the curriculum figure per group; each curve reads the first of its keys a row has
# (TRL's names, then veRL's).
CURRICULUM_ROWS: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    ("training reward and its components", (
        ("reward", REWARD_KEYS),
        ("format", ("rewards/format_reward/mean",)),
        ("progress", ("rewards/progress/mean",)),
        ("turn success", ("rewards/turn_success_rate/mean",)),
        ("accuracy", ("rewards/acc/mean",)),
    )),
    ("per episode", (
        ("format-error rate", ("rewards/format_error_rate/mean",)),
        ("hints", ("rewards/hints/mean",)),
        ("tool calls", ("rewards/tool_calls/mean",)),
        ("rounds", ("rewards/rounds/mean",)),
        ("equal-reward groups, as played", ("rewards/flat_groups/mean",)),
        ("equal-reward groups, trained", ("frac_reward_zero_std",)),
        ("extra rollouts", ("rewards/extra_rollouts/mean",)),
    )),
    ("model tokens per episode", (("model tokens", ("rewards/model_tokens/mean",)),)),
    ("optimizer", (("grad norm", GRAD_NORM_KEYS), ("KL", KL_KEYS))),
    ("entropy", (("entropy", ("entropy", "actor/entropy")),)),
    ("validation", (
        *((f"accuracy {category}", (f"val/accuracy_{category}",)) for category in CATEGORIES),
        ("accuracy", ("val/accuracy",)),
        ("progress", ("val/progress",)),
        ("format reward", ("val/format_reward",)),
    )),
)


def _as_json(figure) -> dict[str, Any]:
    return json.loads(figure.to_json())  # Plotly's encoder: plain JSON the page passes to Plotly.newPlot


def curriculum_figure(stages: Sequence[Mapping[str, Any]], metrics: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Every stage on one axis of training steps: each logged curve, the stage boundaries, and at each
    boundary a marker whose hover text is the transition decision. `stages` carry `name`, `x0` (the
    run step the stage starts at) and `decision`."""
    from plotly.subplots import make_subplots

    offsets = {stage["name"]: stage["x0"] for stage in stages}
    figure = make_subplots(rows=len(CURRICULUM_ROWS), cols=1, shared_xaxes=True, vertical_spacing=0.035,
                           subplot_titles=[title for title, _ in CURRICULUM_ROWS])
    for row, (_, curves) in enumerate(CURRICULUM_ROWS, 1):
        for label, keys in curves:
            points = {}  # run step -> value; a resumed step's later line replaces the earlier one
            for line in metrics:
                value = first_value(line, keys)
                if value is not None and line.get("stage") in offsets:
                    points[offsets[line["stage"]] + line["step"]] = (value, line["stage"], line["step"])
            if not points:
                continue
            steps = sorted(points)
            figure.add_scatter(
                x=steps, y=[points[step][0] for step in steps], name=label, legendgroup=f"row{row}", mode="lines+markers",
                customdata=[[points[step][1], points[step][2]] for step in steps],
                hovertemplate=f"{label}: %{{y:.4g}}<br>stage %{{customdata[0]}}, step %{{customdata[1]}}<extra></extra>",
                row=row, col=1,
            )
    for stage in stages:
        figure.add_vline(x=stage["x0"], line_dash="dot", line_color="#888")
        figure.add_annotation(x=stage["x0"], y=1.0, yref="paper", yanchor="bottom", yshift=22, xanchor="left",
                              showarrow=False, text=f"<b>{stage['name']}</b>", font={"size": 12})
    ended = [stage for stage in stages if stage.get("decision")]
    if ended:
        figure.add_scatter(
            x=[stage["x1"] for stage in ended], y=[0] * len(ended), mode="markers", name="transition decision",
            marker={"symbol": "diamond", "size": 11, "color": "#d62728"},
            hovertext=[_wrap(f"{stage['name']}: {stage['decision']}") for stage in ended], hoverinfo="text",
            row=len(CURRICULUM_ROWS), col=1,
        )
    figure.update_layout(height=190 * len(CURRICULUM_ROWS), margin={"l": 60, "r": 20, "t": 70, "b": 40},
                         hovermode="closest", legend={"groupclick": "toggleitem"}, template="plotly_white")
    figure.update_xaxes(title_text="training step (all stages)", row=len(CURRICULUM_ROWS), col=1)
    return _as_json(figure)


def _wrap(text: str, width: int = 90) -> str:
    """Hover text broken into lines (Plotly does not wrap it)."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def accuracy_figure(evals: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Accuracy per category and overall with 95% intervals, one bar per evaluation (name, summary)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    columns = [*CATEGORIES, "overall"]
    for name, summary in evals:
        cells = [_accuracy_cell(summary, column) for column in columns]
        figure.add_bar(name=name, x=columns, y=[cell[0] for cell in cells],
                       error_y={"type": "data", "array": [cell[1] for cell in cells], "visible": True},
                       hovertemplate="%{x}: %{y:.3f} ± %{error_y.array:.3f}<extra>" + name + "</extra>")
    figure.update_layout(barmode="group", height=360, yaxis={"title": "accuracy", "range": [0, 1]},
                         margin={"l": 60, "r": 20, "t": 30, "b": 40}, template="plotly_white")
    return _as_json(figure)


def _accuracy_cell(summary: Mapping[str, Any], column: str) -> tuple[float | None, float]:
    """(accuracy, 95% half-width) of one category, or of the overall mean."""
    if column == "overall":
        return summary.get("overall"), summary.get("overall_interval95") or 0.0
    category = summary.get("categories", {}).get(column)
    return (category["accuracy"], category["interval95"] or 0.0) if category else (None, 0.0)


def failure_figure(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Where failing entries failed: the histogram of failing turns and the one of error types."""
    from plotly.subplots import make_subplots

    failed = [record for record in records if not record.get("valid")]
    turns = Counter("request error" if record.get("request_error") else
                    ("whole entry" if record.get("failing_turn") is None else f"turn {record['failing_turn']}") for record in failed)
    errors = Counter(record.get("error_type") or ("request error" if record.get("request_error") else "unknown")
                     for record in failed)
    figure = make_subplots(rows=1, cols=2, subplot_titles=["failing turn", "error type"])
    ordered_turns = sorted(turns, key=lambda label: (not label.startswith("turn"), len(label), label))
    figure.add_bar(x=ordered_turns, y=[turns[label] for label in ordered_turns], name="failing turn", row=1, col=1)
    ordered_errors = [label for label, _ in errors.most_common()]
    figure.add_bar(x=ordered_errors, y=[errors[label] for label in ordered_errors], name="error type", row=1, col=2)
    figure.update_layout(height=340, showlegend=False, margin={"l": 50, "r": 20, "t": 40, "b": 110}, template="plotly_white")
    figure.update_yaxes(title_text="failed entries", row=1, col=1)
    return _as_json(figure)
