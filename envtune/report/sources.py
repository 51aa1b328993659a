"""What a report reads: a `tune` run directory or an `eval` directory, loaded into plain data.

A run directory is known by its `state.json` and `metrics.jsonl` (see `envtune.curriculum.run`), an
eval directory by its `eval_config.json` and `results.jsonl` (see `envtune.eval.runner`). A run still
in progress and an eval cut short are read as far as they got.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envtune.curriculum.config import CurriculumConfig, override_episodes, parse_config
from envtune.errors import EnvtuneError
from envtune.eval.runner import RESULTS, latest_records, summarize
from envtune.run_files import read_jsonl

# Keys `CurriculumRun` adds to the config it writes into the run directory
_RUN_KEYS = ("model", "engine", "bfcl_release", "episode_overrides")


@dataclass(frozen=True)
class RunSource:
    """A curriculum run: its config, every logged step and check, the finished stages, the rollouts."""

    path: Path
    config: CurriculumConfig
    model: str
    engine: str
    release: str | None
    metrics: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    stages: list[dict[str, Any]]  # finished stages as state.json records them
    rollouts: list[dict[str, Any]]


@dataclass(frozen=True)
class EvalSource:
    """An evaluation: what was run, its summary, and the last record of each (task, sample)."""

    path: Path
    settings: dict[str, Any]
    summary: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def model(self) -> str:
        return str(self.settings.get("model") or self.path.name)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise EnvtuneError(f"{path} is not valid JSON ({error}); was it cut short?") from None


def read_run(path: Path) -> RunSource:
    import yaml

    document = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        raise EnvtuneError(f"{path / 'config.yaml'} does not hold a curriculum config")
    extras = {key: document.pop(key, None) for key in _RUN_KEYS}
    config = override_episodes(parse_config(document, path), **(extras["episode_overrides"] or {}))
    state = _read_json(path / "state.json")
    return RunSource(
        path=path, config=config, model=str(extras["model"] or state.get("model", "")),
        engine=str(extras["engine"] or state.get("engine", "trl")), release=extras["bfcl_release"] or state.get("release"),
        metrics=read_jsonl(path / "metrics.jsonl"), decisions=read_jsonl(path / "decisions.jsonl"),
        stages=list(state.get("stages", [])), rollouts=read_jsonl(path / "rollouts.jsonl"),
    )


def read_eval(path: Path) -> EvalSource:
    settings = _read_json(path / "eval_config.json")
    records = list(latest_records(read_jsonl(path / RESULTS)).values())
    summary_path = path / "summary.json"
    summary = _read_json(summary_path) if summary_path.is_file() else summarize(records)
    return EvalSource(path=path, settings=settings, summary=summary, records=records)


def read_source(path: str | Path) -> RunSource | EvalSource:
    """The run or eval directory at `path`, or an error that says what such a directory holds."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give a run directory of `envtune tune` or an output of `envtune eval`")
    if (path / "state.json").is_file() and (path / "config.yaml").is_file():
        return read_run(path)
    if (path / "eval_config.json").is_file():
        return read_eval(path)
    raise EnvtuneError(f"{path} is neither a run directory of `envtune tune` (config.yaml, state.json, metrics.jsonl) "
                       f"nor an output of `envtune eval` (eval_config.json, results.jsonl)")
