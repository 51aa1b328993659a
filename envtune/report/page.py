"""`envtune report`: run and eval directories into one self-contained HTML file.

The page is Plotly's library, the report's own stylesheet and script (`assets/`), and the data as one
JSON document, all inlined: it opens from disk or a mail attachment with no network. The script
draws the figures this module builds and renders every model or environment text as text, never as
markup.
"""

from __future__ import annotations

import datetime
import json
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from envtune import __version__
from envtune.bfcl.tasks import CATEGORIES, Task, task_index
from envtune.errors import EnvtuneError
from envtune.report import MAX_CONVERSATIONS
from envtune.report.conversation import conversation_turns
from envtune.report.figures import accuracy_figure, curriculum_figure, failure_figure
from envtune.report.sources import EvalSource, RunSource, read_source
from envtune.run_files import write_atomically

TABLE_ONE_COLUMNS = (*CATEGORIES, "overall")  # the paper's Table 1: one row per model


def kept_conversations(count: int, limit: int) -> set[int]:
    """The indices of `count` items whose conversations the report keeps: all, or `limit` spread
    evenly from the first to the last (so every stage of a long run keeps some)."""
    if count <= limit:
        return set(range(count))
    if limit == 1:
        return {0}
    return {round(position * (count - 1) / (limit - 1)) for position in range(limit)}


def _left_out(kind: str, count: int, limit: int) -> list[str]:
    if count <= limit:
        return []
    return [f"{kind}: the conversations of {limit} of {count} are kept, spread evenly; the rest are listed without "
            f"one (envtune report --max-conversations to keep more)"]


def _tasks(release: str | None, notes: list[str]) -> dict[str, Task]:
    """The release's tasks (for ground truth), or none with a note when the release is not at hand."""
    try:
        return task_index(release)
    except (EnvtuneError, OSError) as error:
        notes.append(f"ground truth not shown for release {release}: {error}")
        return {}


def _ground_truth(tasks: Mapping[str, Task], task_id: str) -> tuple[tuple[str, ...], ...] | None:
    task = tasks.get(task_id)
    return task.ground_truth if task else None


def _stages(run: RunSource) -> list[dict[str, Any]]:
    """The stages the run reached, each placed on the run's axis of training steps."""
    finished = {stage["name"]: stage for stage in run.stages}
    stages, x0 = [], 0
    for index, stage in enumerate(run.config.stages):
        logged = [line["step"] for line in run.metrics if line.get("stage") == stage.name]
        result = finished.get(stage.name)
        if result is None and not logged:
            break  # not started yet
        steps = result["steps"] if result else max(logged)
        stages.append({
            "index": index, "name": stage.name, "reward": stage.reward, "split": stage.split,
            "categories": list(stage.categories), "feedback": stage.episode.feedback, "metric": stage.transition_rule.metric,
            "max_steps": stage.max_steps, "steps": steps, "x0": x0, "x1": x0 + steps,
            "decision": result["decision"] if result else None, "best_step": result.get("best_step") if result else None,
            "checks": [{"step": check["step"], "advance": check["advance"], "reason": check["reason"], "stats": check.get("stats", {})}
                       for check in run.decisions if check.get("stage") == stage.name],
        })
        x0 += steps
    return stages


def _rollout(index: int, record: Mapping[str, Any], protocol: str, tasks: Mapping[str, Task], keep: bool) -> dict[str, Any]:
    turns = conversation_turns(record, protocol, _ground_truth(tasks, record["task_id"])) if keep else None
    return {
        "index": index, "stage": record.get("stage"), "step": record.get("training_step"), "task": record["task_id"],
        "category": record.get("category", ""), "reward": record.get("reward"), "rewards": record.get("rewards", {}),
        "passed": (record.get("rewards") or {}).get("binary") == 1.0, "turn_successes": record.get("turn_successes", []),
        "num_turns": record.get("num_turns"), "truncated": record.get("truncated", False),
        "hint_kinds": sorted({hint["kind"] for hint in record.get("hints", [])}), "turns": turns,
    }


def run_data(run: RunSource, max_conversations: int = MAX_CONVERSATIONS) -> dict[str, Any]:
    notes = _left_out("sampled rollouts", len(run.rollouts), max_conversations)
    tasks = _tasks(run.release, notes) if run.rollouts else {}
    protocols = {stage.name: stage.episode.protocol for stage in run.config.stages}
    stages = _stages(run)
    if not run.rollouts:
        notes.append("no sampled rollouts in this run directory (the veRL engine keeps its rollouts in its own logs)")
    kept = kept_conversations(len(run.rollouts), max_conversations)
    return {
        "name": run.path.name, "path": str(run.path), "config": run.config.name, "model": run.model, "engine": run.engine,
        "release": run.release, "stages": stages, "figure": curriculum_figure(stages, run.metrics), "notes": notes,
        "rollouts": [_rollout(index, record, protocols.get(record.get("stage"), "envtune"), tasks, index in kept)
                     for index, record in enumerate(run.rollouts)],
    }


def eval_data(evaluation: EvalSource, max_conversations: int = MAX_CONVERSATIONS) -> dict[str, Any]:
    notes = _left_out("tasks", len(evaluation.records), max_conversations)
    settings = evaluation.settings
    tasks = _tasks(settings.get("release"), notes)
    protocol = settings.get("protocol", "envtune")
    records = []
    ordered = sorted(evaluation.records, key=lambda record: (record["category"], record["id"], record["sample"]))
    kept = kept_conversations(len(ordered), max_conversations)
    for index, record in enumerate(ordered):
        records.append({
            "id": record["id"], "sample": record["sample"], "category": record["category"], "valid": record["valid"],
            "failing_turn": record.get("failing_turn"), "error_type": record.get("error_type"), "reason": record.get("reason"),
            "request_error": record.get("request_error"), "progress": record.get("progress"),
            "turns": conversation_turns(record, protocol, _ground_truth(tasks, record["id"])) if index in kept else None,
        })
    return {
        "name": evaluation.path.name, "path": str(evaluation.path), "model": evaluation.model, "settings": settings,
        "summary": evaluation.summary, "figure": failure_figure(evaluation.records), "records": records, "notes": notes,
    }


def table_one(evaluations: Sequence[EvalSource]) -> dict[str, Any]:
    """Accuracy per category and overall with 95% half-widths: one row per evaluation."""
    rows = []
    for evaluation in evaluations:
        summary, cells = evaluation.summary, {}
        for category in CATEGORIES:
            scored = summary.get("categories", {}).get(category)
            cells[category] = {"accuracy": scored["accuracy"], "interval95": scored["interval95"]} if scored else None
        cells["overall"] = {"accuracy": summary.get("overall"), "interval95": summary.get("overall_interval95")}
        rows.append({"model": evaluation.model, "name": evaluation.path.name, "samples": summary.get("samples"),
                     "entries": summary.get("entries"), "cells": cells})
    figure = accuracy_figure([(f"{evaluation.model} ({evaluation.path.name})", evaluation.summary) for evaluation in evaluations])
    return {"columns": list(TABLE_ONE_COLUMNS), "rows": rows, "figure": figure}


def report_data(sources: Sequence[RunSource | EvalSource], max_conversations: int = MAX_CONVERSATIONS) -> dict[str, Any]:
    runs = [source for source in sources if isinstance(source, RunSource)]
    evaluations = [source for source in sources if isinstance(source, EvalSource)]
    return {
        "generated": datetime.datetime.now().isoformat(timespec="seconds"), "version": __version__,
        "runs": [run_data(run, max_conversations) for run in runs],
        "evals": [eval_data(evaluation, max_conversations) for evaluation in evaluations],
        "table_one": table_one(evaluations) if evaluations else None,
    }


def _script_json(data: Any) -> str:
    """JSON that cannot end the <script> element it sits in."""
    return json.dumps(data, ensure_ascii=False).replace("<", "\\u003c")


def render(data: Mapping[str, Any]) -> str:
    from plotly.offline import get_plotlyjs

    assets = resources.files("envtune.report") / "assets"
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">', "<title>envtune report</title>",
        f"<style>{(assets / 'report.css').read_text(encoding='utf-8')}</style>",
        f"<script>{get_plotlyjs()}</script>", "</head>", "<body>",
        f'<script type="application/json" id="report-data">{_script_json(data)}</script>',
        f"<script>{(assets / 'report.js').read_text(encoding='utf-8')}</script>", "</body>", "</html>",
    ])


def write_report(paths: Sequence[str | Path], output: str | Path, max_conversations: int = MAX_CONVERSATIONS) -> Path:
    """Read every directory in `paths` and write the report to `output` (atomically), with the
    conversations of at most `max_conversations` rollouts or tasks per directory."""
    if not paths:
        raise EnvtuneError("give at least one run directory (envtune tune --output) or eval directory (envtune eval --output)")
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise EnvtuneError("envtune report draws its plots with Plotly: pip install 'envtune[report]'") from None
    sources = [read_source(path) for path in paths]
    html = render(report_data(sources, max_conversations))
    output = Path(output)
    if output.is_dir():
        raise EnvtuneError(f"--output {output} is a directory; give a file name such as {output / 'report.html'}")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(output, html)
    return output
