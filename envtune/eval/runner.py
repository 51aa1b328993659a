"""Evaluate a policy on BFCL multi-turn with official-parity verdicts, resumably.

Episodes run under BFCL's inference loop (`turn_rules="official"`: calls on ask turns run, a reply
without executable calls ends the turn, and the 21st executed call step of a turn force-quits the
entry after that turn) and each entry's verdict is the official checker's verdict of the calls that
ran (`score_entry` on the recorded trajectory), so `rescore` reproduces it from the saved file alone.

Output directory:

    eval_config.json   what was run (model, release, protocol, feedback, samples, ...)
    results.jsonl      one line per (task, sample): verdict, per-turn verdicts, counters, the decoded
                       trajectory, the full conversation and any request error; appended as
                       episodes finish (the last line per task and sample counts)
    summary.json       accuracy per category (mean and 95% interval over samples) with request
                       errors counted as failures and over the completed tasks only, overall,
                       progress, format-error and tool-error rates, tokens
    bfcl_result.jsonl  the trajectories in BFCL's prompt-mode result format, for the official harness
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from tqdm import tqdm

from envtune.bfcl.scoring import category_mean, score_entry
from envtune.bfcl.tasks import CATEGORIES, Task, task_index
from envtune.env.episode import Episode, EpisodeConfig
from envtune.env.record import EpisodeRecord
from envtune.errors import EnvtuneError
from envtune.run_files import append_jsonl, exclusive_directory, read_jsonl, trim_cut_line, write_atomically, write_json
from envtune.rollout import SamplingParams

RESULTS = "results.jsonl"

# A player plays (task, sample) pairs and yields one results.jsonl record per pair as it finishes
# (`envtune.eval.players`: a local model token in/out, or an endpoint message by message).
Player = Callable[[Sequence[tuple[Task, int]]], Iterator[dict[str, Any]]]


@dataclass(frozen=True)
class EvalConfig:
    protocol: str = "envtune"  # envtune | prompt | native (native needs an endpoint)
    feedback: str = "standard"
    prompt: str = "extended"
    max_steps_per_turn: int = 20  # BFCL's MAXIMUM_STEP_LIMIT: executed call steps a turn may take
    samples: int = 1
    temperature: float = 0.0  # 0: greedy
    max_new_tokens: int = 1024
    max_completion_tokens: int = 32768
    seed: int = 0
    batch_size: int = 16

    def __post_init__(self):
        self.episode_config()  # bad episode settings are refused here, before any model loads

    def episode_config(self) -> EpisodeConfig:
        return EpisodeConfig(
            feedback=self.feedback, prompt=self.prompt, protocol=self.protocol,
            max_steps_per_turn=self.max_steps_per_turn, reward="progress", turn_rules="official",
        )

    def sampling(self, sample: int) -> SamplingParams:
        greedy = self.temperature == 0
        return SamplingParams(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature or 1.0, do_sample=not greedy,
            seed=self.seed + 1000 * sample,
        )


def episode_record(episode: Episode, record: EpisodeRecord, sample: int, messages: list[dict],
                   turn_starts: Sequence[int], error: str | None = None) -> dict[str, Any]:
    """One (task, sample) as a line of results.jsonl: the official verdict of the calls that ran, the
    episode record, the decoded trajectory and the conversation (`turn_starts`: the index in
    `messages` where each played turn's request begins)."""
    verdict = episode.official_verdict()
    fields = record.to_json()
    del fields["task_id"]  # BFCL's key for it is "id"
    return {
        "id": episode.task.id, "sample": sample,
        "valid": verdict.valid and error is None, "failing_turn": verdict.failing_turn,
        "error_type": verdict.error_type, "reason": verdict.reason, "request_error": error,
        "progress": record.reward("progress"), **fields,
        "decoded": episode.scored_trajectory(), "messages": messages, "turn_starts": list(turn_starts),
    }


@dataclass
class RunningScore:
    """What the progress bar shows beside it as episodes finish: the share that passed so far, and the
    request errors, if any (counted as failures, as in the table)."""

    finished: int = 0
    valid: int = 0
    request_errors: int = 0

    def add(self, record: dict[str, Any]) -> None:
        self.finished += 1
        self.valid += bool(record["valid"])
        self.request_errors += record["request_error"] is not None

    def describe(self) -> str:
        accuracy = f"accuracy {self.valid / self.finished:.1%}" if self.finished else "accuracy -"
        errors = self.request_errors
        return accuracy + (f", {errors} request error{'s' * (errors != 1)}" if errors else "")


def evaluate(
    tasks: Sequence[Task], player: Player, config: EvalConfig, output: str | Path,
    model: str = "", release: str | None = None, resume: bool = False,
) -> dict[str, Any]:
    """Play every (task, sample) that `output/results.jsonl` does not hold a finished record of
    (with `resume`, those that ended on a request error are played again) and write the summary."""
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise EnvtuneError(f"--output {output} is a file; give a directory for the results")
    results_path = output / RESULTS
    with exclusive_directory(output):
        if results_path.exists() and not resume:
            raise FileExistsError(f"{results_path} exists; pass --resume to continue that run or choose another --output")
        settings = {"model": model, "release": release, "tasks": [task.id for task in tasks], **asdict(config)}
        config_path = output / "eval_config.json"
        if resume and config_path.is_file():
            previous = json.loads(config_path.read_text(encoding="utf-8"))
            changed = [key for key in settings if key != "tasks" and previous.get(key) != settings[key]]
            if changed:
                raise EnvtuneError(f"--resume with different settings ({', '.join(changed)}) than {config_path}")
        cut = trim_cut_line(results_path)
        if cut:
            print(f"envtune eval: removed the last line of {results_path} ({cut} bytes), cut short by an interrupted run; "
                  "its task runs again", file=sys.stderr)
        write_json(config_path, settings)
        finished = {(record["id"], record["sample"]) for record in latest_records(read_jsonl(results_path)).values()
                    if record.get("request_error") is None}
        todo = [(task, sample) for sample in range(config.samples) for task in tasks if (task.id, sample) not in finished]
        score = RunningScore()
        with tqdm(total=len(todo), desc="evaluating", unit="episode", disable=None) as progress:
            for record in player(todo):
                append_jsonl(results_path, record)
                score.add(record)
                progress.set_postfix_str(score.describe(), refresh=False)
                progress.update(1)
        return summarize_run(output, tasks)


def latest_records(records: Iterable[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """The last record of each (task, sample): a rerun after a request error replaces the first."""
    return {(record["id"], record["sample"]): record for record in records}


def _interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of a normal-approximation 95% interval over samples (0 for one)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, 1.96 * statistics.stdev(values) / math.sqrt(len(values))


def _category_accuracies(records: Sequence[dict[str, Any]], completed_only: bool) -> dict[str, float]:
    """Per category, the share of valid entries (over the completed ones with `completed_only`)."""
    accuracies = {}
    for category in CATEGORIES:
        scored = [record["valid"] for record in records if record["category"] == category
                  and not (completed_only and record["request_error"] is not None)]
        if scored:
            accuracies[category] = sum(scored) / len(scored)
    return accuracies


def summarize(records: Iterable[dict[str, Any]], tasks: Sequence[Task] | None = None) -> dict[str, Any]:
    """Accuracy per category and overall (the unweighted mean of the categories, as the leaderboard),
    both with request errors counted as failures and over the completed tasks only."""
    latest = latest_records(records)
    if tasks is not None:
        wanted = {task.id for task in tasks}
        latest = {key: record for key, record in latest.items() if key[0] in wanted}
    rows = list(latest.values())
    samples = sorted({sample for _, sample in latest})
    per_sample = {
        completed_only: [_category_accuracies([row for row in rows if row["sample"] == sample], completed_only) for sample in samples]
        for completed_only in (False, True)
    }

    def spread(completed_only: bool, category: str | None) -> tuple[float, float] | tuple[None, None]:
        values = [(accuracies[category] if category else category_mean(accuracies))
                  for accuracies in per_sample[completed_only] if (category in accuracies if category else accuracies)]
        return _interval(values) if values else (None, None)

    calls = sum(row["valid_calls"] + row["invalid_calls"] for row in rows)
    categories = {}
    for category in CATEGORIES:
        entries = [row for row in rows if row["category"] == category]
        if entries:
            accuracy, interval = spread(False, category)
            categories[category] = {
                "accuracy": accuracy, "interval95": interval, "entries": len(entries),
                "request_errors": sum(row["request_error"] is not None for row in entries),
                "accuracy_completed": spread(True, category)[0],
            }
    overall, overall_interval = spread(False, None)
    return {
        "entries": len(rows), "samples": len(samples),
        "request_errors": sum(row["request_error"] is not None for row in rows),
        "categories": categories,
        "overall": overall, "overall_interval95": overall_interval, "overall_completed": spread(True, None)[0],
        "progress": statistics.fmean(row["progress"] for row in rows) if rows else None,
        "format_error_rate": sum(row["format_violations"] for row in rows) / max(sum(row["responses"] for row in rows), 1),
        "tool_error_rate": sum(row["invalid_calls"] for row in rows) / calls if calls else 0.0,
        "force_quits": sum(bool(row.get("force_quit")) for row in rows),
        "model_tokens": sum(row["model_tokens"] for row in rows),
        "total_tokens": sum(row["total_tokens"] for row in rows),
    }


def write_run_files(output: Path, records: Sequence[dict[str, Any]], summary: dict[str, Any]) -> None:
    write_json(output / "summary.json", summary)
    export_bfcl(output, latest_records(records).values())


def summarize_run(output: str | Path, tasks: Sequence[Task] | None = None) -> dict[str, Any]:
    """Aggregate `results.jsonl` into `summary.json` (and the official-format export)."""
    output = Path(output)
    records = read_jsonl(output / RESULTS)
    summary = summarize(records, tasks)
    write_run_files(output, records, summary)
    return summary


def export_bfcl(output: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """BFCL's prompt-mode result format: per turn, each step as the text `[call(...), ...]`. The
    official runner decodes such text back into exactly these keyword-argument calls."""
    path = output / "bfcl_result.jsonl"
    lines = [
        json.dumps({"id": row["id"], "result": [[f"[{', '.join(step)}]" for step in turn] for turn in row["decoded"]]})
        for row in rows if row["sample"] == 0
    ]
    write_atomically(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def rescore(output: str | Path, release: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Score every saved trajectory again. Returns the records with the rescored verdicts and the
    entries whose verdict differs from the stored one (none expected). Writes nothing."""
    output = Path(output)
    results_path = output / RESULTS
    if not results_path.is_file():
        raise EnvtuneError(f"--rescore {output}: not an eval directory (no {RESULTS} in it)")
    tasks = task_index(release)
    rescored, mismatches = [], []
    for record in read_jsonl(results_path):
        if record.get("id") not in tasks:
            raise EnvtuneError(f"--rescore {output}: task {record.get('id')!r} is not in this release; pass the run's --release")
        verdict = score_entry(tasks[record["id"]], record["decoded"])
        valid = verdict.valid and record.get("request_error") is None
        if (valid, verdict.error_type) != (record["valid"], record["error_type"]):
            mismatches.append(f"{record['id']} sample {record['sample']}: stored {record['valid']}/{record['error_type']}, "
                              f"rescored {valid}/{verdict.error_type}")
        rescored.append({**record, "valid": valid, "failing_turn": verdict.failing_turn,
                         "error_type": verdict.error_type, "reason": verdict.reason})
    return rescored, mismatches


def write_rescored(output: str | Path, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Replace the run's verdicts with rescored ones (`--rescore DIR --write`)."""
    output = Path(output)
    with exclusive_directory(output, flag="--rescore"):
        write_atomically(output / RESULTS, "".join(json.dumps(record, default=str) + "\n" for record in records))
        summary = summarize(records)
        write_run_files(output, records, summary)
    return summary


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def summary_table(summary: dict[str, Any]) -> str:
    """Accuracy per category: request errors counted as failures (as the leaderboard would) and over
    the completed tasks only."""
    lines = [f"{'category':<14}{'entries':>8}{'errors':>8}{'accuracy':>12}{'completed':>12}"]
    for category in CATEGORIES:
        row = summary["categories"].get(category)
        if row:
            spread = f" ±{100 * row['interval95']:.1f}" if summary["samples"] > 1 else ""
            lines.append(f"{category:<14}{row['entries']:>8}{row['request_errors']:>8}{_percent(row['accuracy']):>12}"
                         f"{_percent(row['accuracy_completed']):>12}{spread}")
    if summary["overall"] is not None:
        lines.append(f"{'overall':<14}{'':>8}{'':>8}{_percent(summary['overall']):>12}{_percent(summary['overall_completed']):>12}")
    progress = "-" if summary["progress"] is None else f"{summary['progress']:.3f}"
    lines.append(f"progress {progress}, format-error rate {summary['format_error_rate']:.3f}, "
                 f"tool-error rate {summary['tool_error_rate']:.3f}, force-quits {summary['force_quits']}, "
                 f"model tokens {summary['model_tokens']}")
    return "\n".join(lines)
