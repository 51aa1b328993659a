"""Deterministic, stratified splits of the 800 multi-turn tasks, shipped as id manifests.

Per category (200 tasks each) a seeded shuffle gives 100 `train`, 25 `val` and 75 `test` tasks, so
every split holds the four categories in equal shares. `heldout` = val + test: the 400 held-out tasks
on which the paper reports. `format` = 75 train tasks for curriculum stage 1 (syntax), drawn by a
second seeded shuffle of train: 19 base, 19 miss_func, 19 miss_param and 18 long_context. Stage 1
only teaches the response format and well-formed calls, so it needs few tasks, but drawing them from
every category shows the model all eight tool domains, the held-out-tool announcements and long
tool outputs before stage 2 narrows to `base`.
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable

from envtune.bfcl.tasks import CATEGORIES, Task, category_of, task_index
from envtune.errors import EnvtuneError

SEED = 2510
TRAIN_PER_CATEGORY = 100
VAL_PER_CATEGORY = 25
FORMAT_PER_CATEGORY = {"base": 19, "miss_func": 19, "miss_param": 19, "long_context": 18}
SPLIT_NAMES = ("train", "val", "test", "heldout", "format")
ALL = "all"  # not a split: every task, for commands that take a split or the whole benchmark
MANIFEST = "splits.json"


def _numeric_order(task_id: str) -> tuple[int, int]:
    return CATEGORIES.index(category_of(task_id)), int(task_id.rsplit("_", 1)[1])


def generate_splits(task_ids: Iterable[str], seed: int = SEED) -> dict[str, list[str]]:
    """Build every split from the full list of task ids; the same ids and seed give the same splits."""
    by_category: dict[str, list[str]] = {category: [] for category in CATEGORIES}
    for task_id in task_ids:
        by_category[category_of(task_id)].append(task_id)
    splits: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    for category, ids in by_category.items():
        ids = sorted(ids, key=_numeric_order)
        random.Random(f"envtune-splits:{seed}:{category}").shuffle(ids)
        train = ids[:TRAIN_PER_CATEGORY]
        splits["train"] += train
        splits["val"] += ids[TRAIN_PER_CATEGORY:TRAIN_PER_CATEGORY + VAL_PER_CATEGORY]
        splits["test"] += ids[TRAIN_PER_CATEGORY + VAL_PER_CATEGORY:]
        shuffled_train = list(train)
        random.Random(f"envtune-format:{seed}:{category}").shuffle(shuffled_train)
        splits["format"] += shuffled_train[:FORMAT_PER_CATEGORY[category]]
    splits["heldout"] = splits["val"] + splits["test"]
    return {name: sorted(ids, key=_numeric_order) for name, ids in splits.items()}


def manifest_path() -> Path:
    return Path(str(resources.files("envtune.bfcl").joinpath(MANIFEST)))


@lru_cache(maxsize=None)
def _manifest() -> dict:
    with manifest_path().open(encoding="utf-8") as handle:
        return json.load(handle)


def split_ids(name: str) -> list[str]:
    """Task ids of a shipped split."""
    splits = _manifest()["splits"]
    if name not in splits:
        raise EnvtuneError(f"unknown split {name!r}; choose from {', '.join(SPLIT_NAMES)}")
    return list(splits[name])


def split_tasks(name: str, release: str | None = None) -> list[Task]:
    """The tasks of a shipped split in manifest order, or every task for `all`."""
    tasks = task_index(release)
    if name == ALL:
        return list(tasks.values())
    return [tasks[task_id] for task_id in split_ids(name)]


def write_manifest(splits: dict[str, list[str]], seed: int = SEED, path: Path | None = None) -> Path:
    path = path or manifest_path()
    document = {"seed": seed, "sizes": {name: len(ids) for name, ids in splits.items()}, "splits": splits}
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    _manifest.cache_clear()
    return path


def check_manifest(task_ids: Iterable[str]) -> list[str]:
    """Problems with the shipped manifest: it must equal a fresh generation and keep the invariants."""
    manifest = _manifest()
    task_ids = list(task_ids)
    problems = []
    expected = generate_splits(task_ids, manifest["seed"])
    for name in SPLIT_NAMES:
        if manifest["splits"].get(name) != expected[name]:
            problems.append(f"split {name!r} differs from the one generated with seed {manifest['seed']}")
    splits = {name: set(ids) for name, ids in manifest["splits"].items()}
    if splits["train"] & splits["heldout"]:
        problems.append("train and heldout overlap")
    if splits["val"] & splits["test"]:
        problems.append("val and test overlap")
    if splits["heldout"] != splits["val"] | splits["test"]:
        problems.append("heldout is not val + test")
    if splits["train"] | splits["heldout"] != set(task_ids):
        problems.append("train + heldout do not cover every task")
    if not splits["format"] <= splits["train"]:
        problems.append("format holds tasks outside train")
    sizes = {"train": 400, "val": 100, "test": 300, "heldout": 400, "format": 75}
    for name, size in sizes.items():
        if len(manifest["splits"][name]) != size:
            problems.append(f"split {name!r} has {len(manifest['splits'][name])} tasks, expected {size}")
    return problems
