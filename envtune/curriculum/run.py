"""A curriculum run: the stages one after another in one run directory that a person can read and a
killed run can resume from. Training a stage is an engine's job (`StageEngine`): TRL on one machine
(`envtune.train.engine`), veRL on a cluster (`envtune.verl.engine`).

Run directory (each engine adds its own files, see its module):

    config.yaml          the resolved config, with the model, the engine and the BFCL release
    state.json           which stages are done and where each one's checkpoints are
    metrics.jsonl        every logged training step and validation, tagged with the stage
    decisions.jsonl      every transition check, with the numbers behind it
    stages/NN-name/      one stage's engine output: checkpoints, TensorBoard events, logs
    summary.json         per stage: steps, best validation, decision; written at the end

Files are written atomically (write to a temporary file, then rename), so a `kill -9` at any moment
leaves either the old or the new version. Running the same command again skips finished stages and
the engine resumes the current one from its last complete checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol

from envtune.bfcl.release import resolve_release
from envtune.curriculum.config import CurriculumConfig, StageConfig
from envtune.curriculum.table import format_stage_table, stage_row
from envtune.curriculum.transition import Decision, StageHistory
from envtune.errors import EnvtuneError
from envtune.run_files import append_jsonl, exclusive_directory, read_jsonl, write_atomically, write_json


@dataclass(frozen=True)
class StageResult:
    """A finished stage, as state.json and summary.json record it."""

    name: str
    steps: int
    best_checkpoint: str | None  # None when no validation beat the stage's starting point
    last_checkpoint: str | None
    best_accuracy: float | None
    best_step: int | None
    decision: str  # the transition rule's reason for moving on
    handed_off_step: int | None = None  # veRL: the step of the checkpoint merged for the next stage

    @property
    def hand_off(self) -> str | None:
        """What the next stage starts from: the best checkpoint, else the last."""
        return self.best_checkpoint or self.last_checkpoint

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        if self.handed_off_step is None:  # TRL runs have never written the key
            del record["handed_off_step"]
        return record


class StageEngine(Protocol):
    """Trains the stages; the run does everything around them."""

    name: str  # recorded in the run directory, which stays with the engine that started it

    def run_stage(self, run: CurriculumRun, index: int, stage: StageConfig, start_from: str) -> StageResult:
        """Train `stage` from the model or checkpoint `start_from`, resuming from the last checkpoint
        in `run.stage_dir(index, stage)` if there is one, until `run.decide` moves on."""


class CurriculumRun:
    """The whole curriculum in one run directory, resumable, its stages trained by `engine`."""

    def __init__(self, config: CurriculumConfig, model: str, output: str | Path, release: str | None,
                 engine: StageEngine):
        self.config = config
        self.model_source = str(model)
        self.output = Path(output).resolve()  # absolute: veRL's workers and later commands read these paths
        self.release = resolve_release(release).version
        self.engine = engine
        self.state_path = self.output / "state.json"

    def stage_dir(self, index: int, stage: StageConfig) -> Path:
        return self.output / "stages" / f"{index + 1:02d}-{stage.name}"

    def log(self, stage: StageConfig, step: int, metrics: dict[str, Any]) -> None:
        append_jsonl(self.output / "metrics.jsonl", {"stage": stage.name, "step": step, **metrics})

    def log_decision(self, stage: StageConfig, step: int, decision: Decision) -> None:
        record = {"stage": stage.name, "step": step, "advance": decision.advance, "reason": decision.reason,
                  "best_step": decision.best_step, "best_accuracy": decision.best_accuracy, "stats": decision.stats}
        append_jsonl(self.output / "decisions.jsonl", record)

    def decide(self, stage: StageConfig, history: StageHistory) -> Decision:
        """The stage's transition rule on its history so far, logged to decisions.jsonl."""
        decision = stage.transition_rule.decide(history)
        self.log_decision(stage, history.steps, decision)
        return decision

    def _new_state(self) -> dict[str, Any]:
        state = {"config_name": self.config.name, "model": self.model_source, "engine": self.engine.name}
        if self.config.episode_overrides:
            state["episode_overrides"] = dict(self.config.episode_overrides)
        return {**state, "release": self.release, "stages": []}

    def _state(self) -> dict[str, Any]:
        """The run so far; a directory holding another run (config, model, engine or episode
        overrides) is refused before anything is written into it."""
        new = self._new_state()
        if not self.state_path.is_file():
            return new
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        if _identity(state) != _identity(new):
            raise EnvtuneError(f"{self.output} holds a run of {_describe(state)}; use another --output for {_describe(new)}")
        return state

    def _write_config(self) -> None:
        import yaml

        document = {**self.config.source, "model": self.model_source, "engine": self.engine.name,
                    "bfcl_release": self.release}
        if self.config.episode_overrides:
            document["episode_overrides"] = dict(self.config.episode_overrides)
        write_atomically(self.output / "config.yaml", yaml.safe_dump(document, sort_keys=False))

    def _print_stage_row(self, stage: StageConfig, result: StageResult) -> None:
        """The stage's row of the table the run ends with, as soon as the stage is done."""
        row = stage_row(stage, result.to_json(), read_jsonl(self.output / "metrics.jsonl"))
        print("\n" + format_stage_table([row], footnote=False) + "\n", flush=True)

    def run(self) -> dict[str, Any]:
        """Run every stage not yet finished; returns the summary. One process at a time holds the
        run directory: a second `tune` on it is refused while the first lives."""
        state = self._state()
        with exclusive_directory(self.output):
            self._write_config()
            start_from = self.model_source
            for index, stage in enumerate(self.config.stages):
                done = next((StageResult(**entry) for entry in state["stages"] if entry["name"] == stage.name), None)
                if done is None:
                    done = self.engine.run_stage(self, index, stage, start_from)
                    state["stages"].append(done.to_json())
                    write_json(self.state_path, state)
                    self._print_stage_row(stage, done)
                start_from = done.hand_off or start_from
            summary = {"config": self.config.name, "model": self.model_source, "engine": self.engine.name,
                       "release": self.release, "final_checkpoint": start_from, "stages": state["stages"]}
            write_json(self.output / "summary.json", summary)
        return summary


def _identity(state: Mapping[str, Any]) -> tuple:
    """What makes two runs the same run (directories from before veRL and overrides: TRL, none)."""
    return (state.get("config_name"), state.get("model"), state.get("engine", "trl"), state.get("episode_overrides", {}))


def _describe(state: Mapping[str, Any]) -> str:
    config, model, engine, overrides = _identity(state)
    text = f"config {config!r} with model {model!r} on engine {engine}"
    if overrides:
        text += " and episode overrides " + ", ".join(f"{name}={value}" for name, value in overrides.items())
    return text
