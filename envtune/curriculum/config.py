"""The curriculum as configuration: stages declared in YAML, checked before anything runs.

A config has `defaults` (applied to every stage) and `stages` (each overriding what it needs):

    name: paper
    seed: 0
    defaults:
      episode: {feedback: standard, prompt: basic, protocol: envtune, max_steps_per_turn: 5}
      grpo: {learning_rate: 1.0e-6, beta: 0.1, num_generations: 16, ...}   # TRL GRPOConfig fields
      tasks_per_step: 32                                                    # checked against the grpo geometry
      sampling: {max_new_tokens: 1024, temperature: 1.0}
      max_completion_tokens: 24576
      validation: {split: val, every: 1, max_tasks: null}
      transition: {patience: 5, ...}                                        # TransitionRule fields
      verl: {actor_rollout_ref.rollout.name: sglang}                        # veRL-only keys (--engine verl)
    stages:
      - {name: syntax, split: format, reward: format, max_steps: 100}
      - {name: hints, split: train, categories: [base], reward: progress, episode: {feedback: augmented}}
      - {name: quick, split: train, categories: [base], max_tasks: 8, ...}   # the first 8 base tasks only

A config can start from another: `base: paper` (a preset) or `base: other.yaml` (a file, relative to
the config's directory). The config merges over its base with `_merge`: mappings key by key, lists
replaced, so a `stages` list replaces the base's whole list.

Unknown keys are errors that name the key, the stage and a close match, so a typo never silently
falls back to a default. That holds for `grpo` (TRL's GRPOConfig fields) and `lora` (PEFT's
LoraConfig fields) too, whichever engine runs: checking them needs the `train` extra. A few GRPOConfig
fields are envtune's to set (GRPO_SET_BY_ENVTUNE) and are refused with where to set them instead;
`bf16: true` asks for bfloat16 mixed precision, used when the model is placed in bfloat16 (`--dtype`).

Both engines train with the same settings from one config: the `grpo` fields they share (GRPO_DEFAULTS
where a config is silent) map to veRL keys in `envtune.verl.config`. An optimizer step trains one
generation batch of per_device_train_batch_size x gradient_accumulation_steps completions, whole
groups of num_generations rollouts, so tasks per step is their quotient; a stage may state
`tasks_per_step` and the loader checks it. The learning rate is constant after an optional warmup of
whole steps: veRL builds its schedule over each launch, and a stage is several launches.

Rollouts and validation generate with transformers unless a stage's `grpo` turns on TRL's vLLM
engine (`use_vllm: true`, `vllm_mode: colocate|server`, `vllm_server_base_url`, ...; `envtune tune
--vllm MODE` sets the first two for every stage, `override_vllm`). Those are TRL's settings: veRL
picks its rollout engine in `verl:` (VERL_ROLLOUT_ENGINE).
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from envtune.bfcl.splits import SPLIT_NAMES, split_tasks
from envtune.bfcl.tasks import CATEGORIES, Task
from envtune.curriculum.transition import TransitionRule
from envtune.env.episode import EpisodeConfig
from envtune.env.rewards import REWARDS
from envtune.errors import EnvtuneError
from envtune.rollout import SamplingParams

PRESETS = ("smoke", "paper", "learn")  # configs shipped in envtune/curriculum/presets/


def preset_path(name: str) -> Path:
    return Path(str(resources.files("envtune.curriculum") / "presets" / f"{name}.yaml"))


STAGE_KEYS = {
    "name", "split", "categories", "max_tasks", "reward", "max_steps", "episode", "grpo", "sampling",
    "max_completion_tokens", "validation", "transition", "generation_batch_size", "lora", "verl", "tasks_per_step",
    "credit", "turn_weight", "zero_variance", "max_extra_rollouts",
}
VALIDATION_KEYS = {"split", "every", "max_tasks"}
CREDIT_MODES = ("episode", "turn")  # see envtune.curriculum.credit
TURN_CREDIT_REWARDS = ("progress", "progress_reached")  # rewards made of turn outcomes
ZERO_VARIANCE_MODES = ("keep", "resample")  # groups whose rewards are all equal: train on them, or replace them
# envtune's defaults for the `grpo` fields both engines read: the step geometry, the checkpoint interval
# and the optimizer settings the paper's veRL scripts leave to veRL's defaults (constant learning rate
# without warmup, AdamW weight decay 0.01), so TRL does not fall back to transformers' own (linear decay
# to 0, no weight decay). epsilon_high defaults to epsilon, as in TRL.
GRPO_DEFAULTS = {
    "num_generations": 2, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "save_steps": 5,
    "learning_rate": 1.0e-6, "lr_scheduler_type": "constant", "warmup_steps": 0, "weight_decay": 0.01,
    "beta": 0.0, "epsilon": 0.2, "entropy_coef": 0.0, "max_grad_norm": 1.0,
}
# Learning-rate schedules both engines follow over a stage run as several veRL launches (veRL restores
# the step count on resume but rebuilds a decaying schedule over each launch's horizon).
LR_SCHEDULES = ("constant", "constant_with_warmup")
# GRPOConfig fields the TRL engine sets itself, and where a config says what they would say
GRPO_SET_BY_ENVTUNE = {
    "output_dir": "the stage's directory in the run directory (--output)",
    "max_steps": "set the stage's max_steps",
    "max_completion_length": "set the stage's max_completion_tokens",
    "seed": "set the config's seed",
    "use_cpu": "choose the device with --device",
    "logging_steps": "every step is logged: the transition rule reads every gradient norm",
    "report_to": "training curves go to TensorBoard in the stage's directory",
    "save_strategy": "checkpoints are saved every save_steps",
    "reward_weights": "the stage reward trains; the other episode numbers are only logged",
    "generation_batch_size": "each optimizer step trains its own generation batch of per_device_train_batch_size x "
                             "gradient_accumulation_steps completions, as veRL's one update per batch (state the "
                             "stage's tasks_per_step; the stage key generation_batch_size is how many sequences "
                             "generate at once)",
    "steps_per_generation": "each optimizer step trains its own generation batch (gradient_accumulation_steps)",
    "temperature": "set sampling.temperature: episodes sample with it and both engines score log-probs at it",
    "top_p": "set sampling.top_p",
    "top_k": "set sampling.top_k",
    "use_bias_correction_kl": "the KL loss is the low-variance estimator on both engines (veRL's low_var_kl), "
                              "without TRL's importance-ratio correction",
    "warmup_ratio": "give warmup_steps in optimizer steps (veRL would take a ratio of each launch, not of the stage)",
    "vllm_enable_sleep_mode": "episodes call vLLM round after round, which TRL's sleep mode (vLLM asleep between "
                              "weight syncs) does not allow; lower vllm_gpu_memory_utilization to leave training room",
}
VLLM_MODES = ("colocate", "server")  # TRL's vllm_mode: vLLM in the training process, or a `trl vllm-serve` server
VERL_ROLLOUT_ENGINE = "veRL picks its rollout engine with verl: {actor_rollout_ref.rollout.name: vllm|sglang}"


class ConfigError(EnvtuneError):
    """A curriculum config that cannot run; the message names the stage and the key."""


@dataclass(frozen=True)
class ValidationConfig:
    split: str = "val"
    every: int = 1  # optimizer steps between validations
    max_tasks: int | None = None  # a stratified subset for quick runs; None: the whole split


@dataclass(frozen=True)
class StageConfig:
    name: str
    split: str
    reward: str
    max_steps: int
    categories: tuple[str, ...] = CATEGORIES
    max_tasks: int | None = None  # a stratified subset of the split to train on (quick runs); None: all of it
    episode: EpisodeConfig = EpisodeConfig()
    grpo: Mapping[str, Any] = field(default_factory=dict)
    sampling: SamplingParams = SamplingParams()
    max_completion_tokens: int = 4096
    validation: ValidationConfig = ValidationConfig()
    transition: Mapping[str, Any] = field(default_factory=dict)
    generation_batch_size: int = 16
    lora: Mapping[str, Any] | None = None  # PEFT LoraConfig fields; None trains every weight
    verl: Mapping[str, Any] = field(default_factory=dict)  # extra veRL Hydra overrides (dotted keys); TRL ignores them
    credit: str = "episode"  # episode: GRPO's advantage per episode; turn: per turn (envtune.curriculum.credit)
    turn_weight: float = 0.5  # credit turn: the weight of a turn's own progress against the episode reward
    zero_variance: str = "keep"  # resample: replace groups whose rewards are all equal (train.grpo, verl.sampler)
    max_extra_rollouts: int | None = None  # resample: at most this many more rollouts per step; None: a step's worth

    @property
    def grpo_settings(self) -> dict[str, Any]:
        """The stage's `grpo` fields over envtune's defaults."""
        settings = {**GRPO_DEFAULTS, **self.grpo}
        if settings.get("epsilon_high") is None:
            settings["epsilon_high"] = settings["epsilon"]
        return settings

    @property
    def tasks_per_step(self) -> int:
        """Tasks per optimizer step, each sampled num_generations times (whole groups: checked at load)."""
        grpo = self.grpo_settings
        return grpo["per_device_train_batch_size"] * grpo["gradient_accumulation_steps"] // grpo["num_generations"]

    @property
    def flat_by_turn(self) -> bool:
        """Whether a group counts as flat (no signal, replaced under `zero_variance: resample`) only
        when its turn outcomes are alike too: under turn credit, equal rewards alone still teach."""
        return self.credit == "turn" and self.turn_weight > 0

    @property
    def extra_rollout_budget(self) -> int:
        """Rollouts a step may play to replace groups whose rewards are all equal (0: none)."""
        if self.zero_variance == "keep":
            return 0
        return self.max_extra_rollouts or self.tasks_per_step * self.grpo_settings["num_generations"]

    @property
    def transition_rule(self) -> TransitionRule:
        """When the stage moves on: its `transition` thresholds with its step budget."""
        return TransitionRule.from_dict({**self.transition, "max_steps": self.max_steps})

    @property
    def validation_episode(self) -> EpisodeConfig:
        """Validation plays the stage's episodes with standard feedback, as evaluation does."""
        return EpisodeConfig(**{**asdict(self.episode), "feedback": "standard"})


@dataclass(frozen=True)
class CurriculumConfig:
    name: str
    stages: tuple[StageConfig, ...]
    seed: int = 0
    # rollouts per generation batch (one batch per optimizer step) the TRL engine writes to
    # rollouts.jsonl for a person to read (`envtune report`), one per task before a second of any
    sampled_rollouts: int = 2
    source: Mapping[str, Any] = field(default_factory=dict)  # the document as loaded, for the run directory
    episode_overrides: Mapping[str, Any] = field(default_factory=dict)  # see `override_episodes`


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: mappings merge key by key, anything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_keys(where: str, given: Mapping[str, Any], allowed: set[str] | frozenset[str], kind: str = "") -> None:
    """Refuse the first unknown key with a close match; `kind` says what the keys are instead of
    listing them all."""
    unknown = sorted(set(given) - allowed, key=str)
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), sorted(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}{hint}; {kind or 'allowed keys: ' + ', '.join(sorted(allowed))}")


@lru_cache(maxsize=None)
def _trainer_fields(section: str) -> frozenset[str]:
    """What `grpo` (TRL's GRPOConfig) or `lora` (PEFT's LoraConfig) may set."""
    try:
        if section == "grpo":
            from trl import GRPOConfig as settings
        else:
            from peft import LoraConfig as settings
    except ImportError as error:
        raise ConfigError(f"checking the {section} keys needs the train extra ({error}): pip install 'envtune[train]'") from None
    return frozenset(setting.name for setting in fields(settings) if setting.init)


def _check_trainer_settings(where: str, raw: Mapping[str, Any]) -> None:
    """The `grpo` and `lora` keys of a stage (or the defaults), checked at load time whichever engine runs."""
    for section, kind in (("grpo", "grpo takes TRL GRPOConfig fields"), ("lora", "lora takes PEFT LoraConfig fields")):
        settings = raw.get(section) or {}
        if not isinstance(settings, Mapping):
            raise ConfigError(f"{where}: {section} must be a mapping; {kind}")
        reserved = sorted(set(settings) & set(GRPO_SET_BY_ENVTUNE)) if section == "grpo" else []
        if reserved:
            raise ConfigError(f"{where} grpo: {reserved[0]!r} is set by envtune: {GRPO_SET_BY_ENVTUNE[reserved[0]]}")
        if settings:
            _check_keys(f"{where} {section}", settings, _trainer_fields(section), kind)


def _check_step(where: str, stage: StageConfig, stated: Any) -> None:
    """The step geometry holds whole groups of rollouts and gives the tasks per step the config states."""
    grpo = stage.grpo_settings
    for name, least in (("per_device_train_batch_size", 1), ("gradient_accumulation_steps", 1), ("num_generations", 2)):
        if isinstance(grpo[name], bool) or not isinstance(grpo[name], int) or grpo[name] < least:
            raise ConfigError(f"{where} grpo: {name} must be an integer of at least {least}, got {grpo[name]!r}")
    completions = grpo["per_device_train_batch_size"] * grpo["gradient_accumulation_steps"]
    if completions % grpo["num_generations"]:
        raise ConfigError(f"{where}: per_device_train_batch_size x gradient_accumulation_steps ({completions} completions "
                          f"per step) must be a multiple of num_generations ({grpo['num_generations']}): a step trains "
                          "whole groups of rollouts")
    if stated is not None and stated != stage.tasks_per_step:
        raise ConfigError(f"{where}: tasks_per_step is {stated!r}, but per_device_train_batch_size x gradient_accumulation_steps"
                          f" / num_generations = {grpo['per_device_train_batch_size']} x {grpo['gradient_accumulation_steps']}"
                          f" / {grpo['num_generations']} = {stage.tasks_per_step} tasks per step")


def _check_schedule(where: str, grpo: Mapping[str, Any]) -> None:
    """A learning-rate schedule both engines follow the same way over a stage (see LR_SCHEDULES)."""
    schedule, warmup = grpo["lr_scheduler_type"], grpo["warmup_steps"]
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"{where} grpo: lr_scheduler_type {schedule!r} is not one of {', '.join(LR_SCHEDULES)}: the veRL "
                          "engine runs a stage as several launches and veRL rebuilds a decaying schedule over each launch")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ConfigError(f"{where} grpo: warmup_steps must be a whole number of optimizer steps, got {warmup!r} "
                          "(veRL would take a fraction as a ratio of each launch, not of the stage)")
    if warmup and schedule == "constant":
        raise ConfigError(f"{where} grpo: TRL's constant schedule ignores warmup_steps ({warmup}); "
                          "use lr_scheduler_type: constant_with_warmup")


def _stage(index: int, raw: Mapping[str, Any]) -> StageConfig:
    where = f"stage {index + 1} ({raw.get('name', 'unnamed')})"
    _check_keys(where, raw, STAGE_KEYS)
    _check_trainer_settings(where, raw)
    for required in ("name", "split", "reward", "max_steps"):
        if required not in raw:
            raise ConfigError(f"{where}: missing {required!r}")
    if raw["split"] not in SPLIT_NAMES:
        raise ConfigError(f"{where}: split {raw['split']!r} is not one of {', '.join(SPLIT_NAMES)}")
    if raw["reward"] not in REWARDS:
        raise ConfigError(f"{where}: reward {raw['reward']!r} is not one of {', '.join(REWARDS)}")
    categories = tuple(raw.get("categories", CATEGORIES))
    if not categories or any(category not in CATEGORIES for category in categories):
        raise ConfigError(f"{where}: categories must be a non-empty subset of {', '.join(CATEGORIES)}, got {list(categories)}")
    max_tasks = raw.get("max_tasks")
    if max_tasks is not None and (not isinstance(max_tasks, int) or isinstance(max_tasks, bool) or max_tasks < 1):
        raise ConfigError(f"{where}: max_tasks must be a positive integer (or null for the whole split), got {max_tasks!r}")
    if not isinstance(raw["max_steps"], int) or raw["max_steps"] < 1:
        raise ConfigError(f"{where}: max_steps must be a positive integer, got {raw['max_steps']!r}")
    validation = dict(raw.get("validation", {}))
    _check_keys(f"{where} validation", validation, VALIDATION_KEYS)
    try:
        episode = EpisodeConfig(**{**raw.get("episode", {}), "reward": raw["reward"]})
        sampling = SamplingParams(**raw.get("sampling", {}))
        validation_config = ValidationConfig(**validation)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from None
    verl = raw.get("verl", {}) or {}
    if not isinstance(verl, Mapping) or not all(isinstance(key, str) and key for key in verl):
        raise ConfigError(f"{where}: verl must map dotted veRL config keys to values, e.g. "
                          "{actor_rollout_ref.rollout.name: sglang}")
    if validation_config.split not in SPLIT_NAMES:
        raise ConfigError(f"{where}: validation split {validation_config.split!r} is not one of {', '.join(SPLIT_NAMES)}")
    credit, turn_weight = _credit(where, raw)
    zero_variance, max_extra = raw.get("zero_variance", "keep"), raw.get("max_extra_rollouts")
    if zero_variance not in ZERO_VARIANCE_MODES:
        raise ConfigError(f"{where}: zero_variance must be one of {', '.join(ZERO_VARIANCE_MODES)}, got {zero_variance!r}")
    if max_extra is not None and (isinstance(max_extra, bool) or not isinstance(max_extra, int) or max_extra < 1):
        raise ConfigError(f"{where}: max_extra_rollouts must be a positive integer (or null: a step's rollouts), got {max_extra!r}")
    stage = StageConfig(
        name=str(raw["name"]), split=raw["split"], reward=raw["reward"], max_steps=raw["max_steps"],
        categories=categories, max_tasks=max_tasks, episode=episode, grpo=dict(raw.get("grpo") or {}), sampling=sampling,
        max_completion_tokens=int(raw.get("max_completion_tokens", 4096)), validation=validation_config,
        transition=dict(raw.get("transition", {})), generation_batch_size=int(raw.get("generation_batch_size", 16)),
        lora=raw.get("lora"), verl=dict(verl), credit=credit, turn_weight=turn_weight,
        zero_variance=zero_variance, max_extra_rollouts=max_extra,
    )
    try:
        stage.transition_rule  # built when the stage runs: a bad threshold fails now instead
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where} transition: {error}") from None
    _check_step(where, stage, raw.get("tasks_per_step"))
    _check_schedule(where, stage.grpo_settings)
    generations = stage.grpo_settings["num_generations"]
    if stage.zero_variance == "resample" and stage.extra_rollout_budget < generations:
        raise ConfigError(f"{where}: max_extra_rollouts {max_extra} is less than one group ({generations} rollouts, "
                          "grpo.num_generations): no group could ever be replaced")
    return stage


def _credit(where: str, raw: Mapping[str, Any]) -> tuple[str, float]:
    """The stage's credit mode and turn weight, checked: turn credit compares turn outcomes, so it
    needs a reward made of them, and normalizes within groups."""
    credit = raw.get("credit", "episode")
    if credit not in CREDIT_MODES:
        raise ConfigError(f"{where}: credit must be one of {', '.join(CREDIT_MODES)}, got {credit!r}")
    weight = raw.get("turn_weight", StageConfig.turn_weight)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise ConfigError(f"{where}: turn_weight must be a number from 0 to 1, got {weight!r}")
    if credit == "turn" and raw["reward"] not in TURN_CREDIT_REWARDS:
        raise ConfigError(f"{where}: credit: turn compares turn outcomes, so it needs reward "
                          f"{' or '.join(TURN_CREDIT_REWARDS)}, not {raw['reward']!r}")
    if credit == "turn" and (raw.get("grpo") or {}).get("scale_rewards") == "batch":
        raise ConfigError(f"{where}: credit: turn normalizes each turn within its group; use grpo.scale_rewards group or none")
    return credit, float(weight)


def _stratified(tasks: Sequence[Task], categories: Sequence[str], max_tasks: int | None) -> list[Task]:
    """The tasks of `categories`, or the first ceil(max_tasks / len(categories)) of each category when
    `max_tasks` caps them: a small subset still covers every category, at least one task each."""
    if max_tasks is None:
        return [task for task in tasks if task.category in categories]
    per_category = max(1, math.ceil(max_tasks / len(categories)))
    return [task for category in categories for task in [t for t in tasks if t.category == category][:per_category]]


def training_tasks(stage: StageConfig, release: str | None) -> list[Task]:
    """The tasks a stage trains on: its split's tasks of its categories, capped by `max_tasks`."""
    return _stratified(split_tasks(stage.split, release), stage.categories, stage.max_tasks)


def validation_tasks(stage: StageConfig, release: str | None) -> list[Task]:
    """The stage's validation split, or a stratified subset of `max_tasks` (same count per category)."""
    return _stratified(split_tasks(stage.validation.split, release), CATEGORIES, stage.validation.max_tasks)


def _read_document(path: Path, chain: tuple[Path, ...] = ()) -> Any:
    """A YAML config file, merged over its base; `chain` holds the files that based on it."""
    import yaml

    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    return _with_base(document, path.parent, (*chain, path.resolve()))


def _with_base(document: Any, directory: Path, chain: tuple[Path, ...] = ()) -> Any:
    """The document merged over its `base` (a preset name or a file relative to `directory`)."""
    if not isinstance(document, Mapping) or "base" not in document:
        return document
    base = str(document["base"])
    path = (preset_path(base) if base in PRESETS else directory / base).resolve()
    if path in chain:
        raise ConfigError(f"config base {base!r}: {path} is already a base of this config (a loop)")
    parent = _read_document(path, chain)
    if not isinstance(parent, Mapping):
        raise ConfigError(f"config base {base!r}: {path} is not a curriculum config")
    return _merge(parent, {key: value for key, value in document.items() if key != "base"})


def parse_config(document: Mapping[str, Any], directory: str | Path = ".") -> CurriculumConfig:
    """Build and check a curriculum from a loaded YAML document (a `base` file is looked up in
    `directory`)."""
    document = _with_base(document, Path(directory))
    if not isinstance(document, Mapping):
        raise ConfigError("a curriculum config is a mapping with 'name', 'defaults' and 'stages'")
    _check_keys("config", document, {"name", "seed", "sampled_rollouts", "defaults", "stages"})
    sampled = document.get("sampled_rollouts", CurriculumConfig.sampled_rollouts)
    if isinstance(sampled, bool) or not isinstance(sampled, int) or sampled < 0:
        raise ConfigError(f"config: sampled_rollouts is the number of rollouts per step written to rollouts.jsonl, "
                          f"an integer of 0 or more; got {sampled!r}")
    defaults = document.get("defaults", {}) or {}
    _check_keys("defaults", defaults, STAGE_KEYS - {"name"})
    _check_trainer_settings("defaults", defaults)
    stages = document.get("stages")
    if not stages or not isinstance(stages, list):
        raise ConfigError("config: 'stages' must be a non-empty list")
    names = [stage.get("name") for stage in stages if isinstance(stage, Mapping)]
    if len(set(names)) != len(names):
        raise ConfigError(f"config: stage names must be unique, got {names}")
    return CurriculumConfig(
        name=str(document.get("name", "curriculum")),
        stages=tuple(_stage(index, _merge(defaults, stage)) for index, stage in enumerate(stages)),
        seed=int(document.get("seed", 0)),
        sampled_rollouts=sampled,
        source=copy.deepcopy(dict(document)),
    )


def override_episodes(config: CurriculumConfig, **settings: Any) -> CurriculumConfig:
    """The config with episode settings (EpisodeConfig fields; None: as configured) replaced in every
    stage. Validation still plays with standard feedback."""
    given = {name: value for name, value in settings.items() if value is not None}
    if not given:
        return config
    try:
        stages = tuple(replace(stage, episode=replace(stage.episode, **given)) for stage in config.stages)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"episode settings {given}: {error}") from None
    return replace(config, stages=stages, episode_overrides={**config.episode_overrides, **given})


def override_vllm(config: CurriculumConfig, mode: str | None) -> CurriculumConfig:
    """The config with every stage generating through TRL's vLLM engine in `mode` (GRPOConfig's
    use_vllm and vllm_mode; None: as configured). Other vllm_* settings stay the stages' own."""
    if mode is None:
        return config
    if mode not in VLLM_MODES:
        raise ConfigError(f"vLLM mode {mode!r}: use one of {', '.join(VLLM_MODES)}")
    stages = tuple(replace(stage, grpo={**stage.grpo, "use_vllm": True, "vllm_mode": mode}) for stage in config.stages)
    return replace(config, stages=stages)


def vllm_stages(config: CurriculumConfig) -> list[str]:
    """The names of the stages that ask TRL for vLLM rollouts (grpo.use_vllm)."""
    return [stage.name for stage in config.stages if stage.grpo.get("use_vllm")]


def load_config(path: str | Path) -> CurriculumConfig:
    return parse_config(_read_document(Path(path)))
