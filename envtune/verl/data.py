"""The parquet files veRL trains on, one pair per curriculum stage, built from our split manifests.

Each row is one task. veRL's `RLHFDataset` reads `prompt` (the episode's opening messages, used for
its length filter and as `raw_prompt`), `data_source` (validation metrics are grouped by it, so it
names the BFCL category), `agent_name` (which agent loop plays the row) and `extra_info`, whose
`interaction_kwargs` reach the agent loop: the task id, the BFCL release and the episode settings of
the stage. The reward is computed by the agent loop, so `reward_model` only names the task.

    build_stage_data(load_config(preset_path("paper")).stages[1], "data/hints")
    -> data/hints/train.parquet (100 base tasks), data/hints/val.parquet (the validation split)

`envtune tune --engine verl --dry-run` writes every stage's files into the run directory.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from envtune.bfcl.release import resolve_release
from envtune.bfcl.tasks import Task
from envtune.curriculum.config import StageConfig, training_tasks, validation_tasks
from envtune.env.episode import Episode, EpisodeConfig
from envtune.errors import EnvtuneError

AGENT_NAME = "envtune_episode"  # the name our agent loop is registered under
DATA_SOURCE_PREFIX = "bfcl_multi_turn_"
# what to do about rows an older envtune wrote (a run directory reuses its data files)
REBUILD = "rebuild the data: delete the stage's data/ directory; `envtune tune --engine verl --dry-run` writes it again"


@dataclass(frozen=True)
class EpisodeSpec:
    """Everything the agent loop needs to replay a row as an episode (the row's interaction_kwargs)."""

    task_id: str
    release: str
    episode: EpisodeConfig
    max_reply_tokens: int  # generation cap of one reply; the stage's response budget caps the episode

    def to_kwargs(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "release": self.release, "max_reply_tokens": self.max_reply_tokens,
                **asdict(self.episode)}

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> "EpisodeSpec":
        """Parse a row's interaction_kwargs; a row from another tool or an older builder gets an error
        that says how to rebuild the data."""
        names = {field.name for field in fields(EpisodeConfig)}
        missing = sorted({"task_id", "release", "max_reply_tokens", *names} - set(kwargs))
        if missing:
            raise EnvtuneError(f"row interaction_kwargs lack {', '.join(missing)}: {REBUILD}")
        config = EpisodeConfig(**{name: _plain(kwargs[name]) for name in names})
        return cls(str(kwargs["task_id"]), str(kwargs["release"]), config, int(kwargs["max_reply_tokens"]))


def _plain(value: Any) -> Any:
    """numpy scalars (parquet round trips) as Python values, so dataclass checks see int and str."""
    return value.item() if hasattr(value, "item") else value


def row(task: Task, spec: EpisodeSpec, index: int, split: str, stage: str) -> dict[str, Any]:
    with Episode(task, spec.episode) as episode:
        prompt = episode.reset()
    return {
        "data_source": DATA_SOURCE_PREFIX + task.category,
        "agent_name": AGENT_NAME,
        "prompt": prompt,
        "ability": "tool_use",
        "reward_model": {"style": "envtune", "ground_truth": task.id},
        "extra_info": {"index": index, "task_id": task.id, "split": split, "stage": stage,
                       "interaction_kwargs": spec.to_kwargs()},
    }


def stage_rows(stage: StageConfig, release: str | None = None) -> tuple[list[dict], list[dict]]:
    """(train rows, validation rows) of one stage."""
    version = resolve_release(release).version
    train_tasks = training_tasks(stage, version)
    train_spec = {"release": version, "episode": stage.episode, "max_reply_tokens": stage.sampling.max_new_tokens}
    val_spec = {**train_spec, "episode": stage.validation_episode}
    train = [row(task, EpisodeSpec(task.id, **train_spec), index, stage.split, stage.name)
             for index, task in enumerate(train_tasks)]
    val = [row(task, EpisodeSpec(task.id, **val_spec), index, stage.validation.split, stage.name)
           for index, task in enumerate(validation_tasks(stage, version))]
    return train, val


def write_parquet(path: Path, rows: list[dict]) -> None:
    """Write atomically: a killed build leaves no half file for veRL to read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows), staging)
    os.replace(staging, path)


def build_stage_data(stage: StageConfig, output: str | Path, release: str | None = None) -> dict[str, Path]:
    """Write `train.parquet` and `val.parquet` for one stage into `output`; returns their paths."""
    output = Path(output)
    train, val = stage_rows(stage, release)
    paths = {"train": output / "train.parquet", "val": output / "val.parquet"}
    write_parquet(paths["train"], train)
    write_parquet(paths["val"], val)
    return paths


def prompt_lengths(tokenizer, files: list[Path]) -> list[int]:
    """Tokens of every row's opening prompt under the tokenizer's chat template (with the assistant
    header), the length veRL's prompt filter and agent loop see."""
    import pyarrow.parquet as pq

    lengths = []
    for path in files:
        for messages in pq.read_table(path, columns=["prompt"]).column("prompt").to_pylist():
            rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
            lengths.append(len(rendered))
    return lengths
