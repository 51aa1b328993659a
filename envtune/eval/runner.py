"""Evaluate a policy on BFCL multi-turn with official-parity verdicts, resumably.

Episodes run under BFCL's evaluation rules (`turn_rules="official"`: calls on ask turns run, 20
steps per turn, going past them force-quits the entry) and each entry's verdict is the official
checker's verdict of the calls that ran (`score_entry` on the recorded trajectory), so `rescore`
reproduces it from the saved file alone.

Output directory:

    eval_config.json   what was run (model, release, protocol, feedback, samples, ...)
    results.jsonl      one line per (task, sample): verdict, per-turn verdicts, counters, the decoded
                       trajectory and the full conversation; appended as batches finish
    summary.json       accuracy per category (mean and 95% interval over samples), overall, progress,
                       format-error and tool-error rates, tokens
    bfcl_result.jsonl  the trajectories in BFCL's prompt-mode result format, for the official harness
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from envtune.bfcl.scoring import score_entry
from envtune.bfcl.tasks import CATEGORIES, Task, task_index
from envtune.env.episode import Episode, EpisodeConfig
from envtune.io import append_jsonl, read_jsonl, write_atomically, write_json
from envtune.rollout import GenerationBackend, RolloutEngine, SamplingParams


@dataclass(frozen=True)
class EvalConfig:
    protocol: str = "envtune"  # envtune | prompt | native (native needs an endpoint)
    feedback: str = "standard"
    prompt: str = "extended"
    max_steps_per_turn: int = 20  # the official evaluation's limit
    samples: int = 1
    temperature: float = 0.0  # 0: greedy
    max_new_tokens: int = 1024
    max_completion_tokens: int = 32768
    seed: int = 0
    batch_size: int = 16

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


def _record(
    episode: Episode, sample: int, messages: list[dict], model_tokens: int, total_tokens: int,
    truncated: bool = False, error: str | None = None,
) -> dict[str, Any]:
    """One (task, sample) as a line of results.jsonl."""
    verdict = episode.official_verdict()
    info = episode.info()
    return {
        "id": episode.task.id, "category": episode.task.category, "sample": sample,
        "valid": verdict.valid and error is None, "failing_turn": verdict.failing_turn,
        "error_type": verdict.error_type, "reason": verdict.reason, "request_error": error,
        "turn_successes": info["turn_successes"], "progress": episode.reward("progress"),
        "responses": info["responses"], "format_violations": info["format_violations"],
        "valid_calls": info["valid_calls"], "invalid_calls": info["invalid_calls"],
        "model_tokens": model_tokens, "total_tokens": total_tokens, "truncated": truncated,
        "decoded": episode.scored_trajectory(), "messages": messages,
    }


def play_tokens(episodes: list[Episode], sample: int, *, backend: GenerationBackend, tokenizer, config: EvalConfig) -> list[dict]:
    """A local model, token in / token out through the rollout engine."""
    engine = RolloutEngine(backend, tokenizer, config.sampling(sample), config.max_completion_tokens)
    return [
        _record(episode, sample, rollout.messages, rollout.model_tokens,
                len(rollout.prompt_ids) + len(rollout.completion_ids), rollout.truncated)
        for episode, rollout in zip(episodes, engine.run(episodes))
    ]


def play_chat(episodes: list[Episode], sample: int, *, endpoint, config: EvalConfig) -> list[dict]:
    """A served model, message by message; a failed request ends (and fails) its task only."""
    sampling = {"temperature": config.temperature, "max_tokens": config.max_new_tokens, "seed": config.seed + 1000 * sample}
    conversations = [episode.reset() for episode in episodes]
    usage = [[0, 0] for _ in episodes]
    errors: list[str | None] = [None] * len(episodes)
    while active := [i for i, episode in enumerate(episodes) if not episode.done and errors[i] is None]:
        requests = [(conversations[i], episodes[i].tools() if config.protocol == "native" else None) for i in active]
        for i, result in zip(active, endpoint.complete_many(requests, sampling)):
            usage[i][0] = max(usage[i][0], result.prompt_tokens + result.completion_tokens)
            usage[i][1] += result.completion_tokens
            if result.error is not None:
                errors[i] = result.error
                continue
            conversations[i] = [*conversations[i], result.message, *episodes[i].step(result.message).messages]
    return [
        _record(episode, sample, conversations[i], usage[i][1], usage[i][0], error=errors[i])
        for i, episode in enumerate(episodes)
    ]


def evaluate(
    tasks: Sequence[Task], policy, config: EvalConfig, output: str | Path,
    model: str = "", release: str | None = None, resume: bool = False,
) -> dict[str, Any]:
    """Run every (task, sample) not yet in `output/results.jsonl` and write the summary.

    `policy(episodes, sample) -> records` plays a batch: `functools.partial(play_tokens, backend=...,
    tokenizer=..., config=...)` for a local model, or `partial(play_chat, endpoint=..., config=...)`.
    """
    output = Path(output)
    results_path = output / "results.jsonl"
    if results_path.exists() and not resume:
        raise FileExistsError(f"{results_path} exists; pass --resume to continue that run or choose another --output")
    settings = {"model": model, "release": release, "tasks": [task.id for task in tasks], **asdict(config)}
    config_path = output / "eval_config.json"
    if resume and config_path.is_file():
        previous = json.loads(config_path.read_text(encoding="utf-8"))
        changed = [key for key in settings if key != "tasks" and previous.get(key) != settings[key]]
        if changed:
            raise ValueError(f"--resume with different settings ({', '.join(changed)}) than {config_path}")
    write_json(config_path, settings)
    done = {(record["id"], record["sample"]) for record in read_jsonl(results_path)}
    todo = [(task, sample) for sample in range(config.samples) for task in tasks if (task.id, sample) not in done]
    progress = tqdm(total=len(todo), desc="evaluating", unit="episode", disable=None)
    for start in range(0, len(todo), config.batch_size):
        batch = todo[start:start + config.batch_size]
        for sample in sorted({sample for _, sample in batch}):
            episodes = [Episode(task, config.episode_config()) for task, task_sample in batch if task_sample == sample]
            try:
                for record in policy(episodes, sample):
                    append_jsonl(results_path, record)
            finally:
                for episode in episodes:
                    episode.close()
            progress.update(len(episodes))
    progress.close()
    return summarize_run(output, tasks)


def _interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of a normal-approximation 95% interval over samples (0 for one)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, 1.96 * statistics.stdev(values) / math.sqrt(len(values))


def summarize_run(output: str | Path, tasks: Sequence[Task] | None = None) -> dict[str, Any]:
    """Aggregate `results.jsonl` (the last line per task and sample wins) into `summary.json`."""
    output = Path(output)
    records = {(record["id"], record["sample"]): record for record in read_jsonl(output / "results.jsonl")}
    if tasks is not None:
        wanted = {task.id for task in tasks}
        records = {key: record for key, record in records.items() if key[0] in wanted}
    samples = sorted({sample for _, sample in records})
    per_sample: dict[str, list[float]] = {category: [] for category in CATEGORIES}
    overall = []
    for sample in samples:
        chosen = [record for (_, record_sample), record in records.items() if record_sample == sample]
        accuracies = []
        for category in CATEGORIES:
            scored = [record["valid"] for record in chosen if record["category"] == category]
            if scored:
                per_sample[category].append(sum(scored) / len(scored))
                accuracies.append(per_sample[category][-1])
        overall.append(sum(accuracies) / len(accuracies))
    rows = list(records.values())
    calls = sum(row["valid_calls"] + row["invalid_calls"] for row in rows)
    summary = {
        "entries": len(rows), "samples": len(samples),
        "categories": {
            category: {"accuracy": _interval(values)[0], "interval95": _interval(values)[1],
                       "entries": sum(row["category"] == category for row in rows)}
            for category, values in per_sample.items() if values
        },
        "overall": _interval(overall)[0] if overall else None,
        "overall_interval95": _interval(overall)[1] if overall else None,
        "progress": statistics.fmean(row["progress"] for row in rows) if rows else None,
        "format_error_rate": sum(row["format_violations"] for row in rows) / max(sum(row["responses"] for row in rows), 1),
        "tool_error_rate": sum(row["invalid_calls"] for row in rows) / calls if calls else 0.0,
        "model_tokens": sum(row["model_tokens"] for row in rows),
        "total_tokens": sum(row["total_tokens"] for row in rows),
    }
    write_json(output / "summary.json", summary)
    export_bfcl(output, rows)
    return summary


def export_bfcl(output: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """BFCL's prompt-mode result format: per turn, each step as the text `[call(...), ...]`. The
    official runner decodes such text back into exactly these keyword-argument calls."""
    path = output / "bfcl_result.jsonl"
    lines = [
        json.dumps({"id": row["id"], "result": [[f"[{', '.join(step)}]" for step in turn] for turn in row["decoded"]]})
        for row in rows if row["sample"] == 0
    ]
    write_atomically(path, "\n".join(lines) + ("\n" if lines else ""))
    return path


def rescore(output: str | Path, release: str | None = None) -> list[str]:
    """Score every saved trajectory again; returns the entries whose verdict differs (none expected)."""
    tasks = task_index(release)
    mismatches = []
    for record in read_jsonl(Path(output) / "results.jsonl"):
        verdict = score_entry(tasks[record["id"]], record["decoded"])
        if (verdict.valid, verdict.error_type) != (record["valid"], record["error_type"]):
            mismatches.append(f"{record['id']} sample {record['sample']}: stored {record['valid']}/{record['error_type']}, "
                              f"rescored {verdict.valid}/{verdict.error_type}")
    return mismatches


def summary_table(summary: dict[str, Any]) -> str:
    lines = [f"{'category':<14}{'entries':>8}{'accuracy':>12}"]
    for category in CATEGORIES:
        row = summary["categories"].get(category)
        if row:
            spread = f" ±{100 * row['interval95']:.1f}" if summary["samples"] > 1 else ""
            lines.append(f"{category:<14}{row['entries']:>8}{100 * row['accuracy']:>11.2f}%{spread}")
    if summary["overall"] is not None:
        lines.append(f"{'overall':<14}{'':>8}{100 * summary['overall']:>11.2f}%")
    lines.append(f"progress {summary['progress']:.3f}, format-error rate {summary['format_error_rate']:.3f}, "
                 f"tool-error rate {summary['tool_error_rate']:.3f}, model tokens {summary['model_tokens']}")
    return "\n".join(lines)
