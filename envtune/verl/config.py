"""A curriculum stage as a veRL run: Hydra overrides of `verl.trainer.main_ppo`, checked by veRL.

The curriculum YAML is engine-neutral: `grpo` holds TRL GRPOConfig names, which map to veRL keys
here (GRPO_TO_VERL), so both engines train with the same settings; the stage's tasks per step become
`data.train_batch_size`; anything veRL-specific goes in a stage's (or the defaults') `verl:` mapping of
dotted keys, applied last. It may not set a key a shared setting maps to (SHARED_VERL_KEYS):

    defaults:
      verl: {actor_rollout_ref.rollout.name: sglang}

`check_overrides` composes the overrides with veRL's own Hydra config (a key that does not exist
is refused there) and runs veRL's `validate_config`, so a typo fails before a cluster job starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

from envtune.curriculum.config import VERL_ROLLOUT_ENGINE, ConfigError, StageConfig
from envtune.verl.data import AGENT_NAME

TRAINER_MODULE = "verl.trainer.main_ppo"
MAX_PROMPT_TOKENS = 8192  # the paper's prompt budget; raised to the longest opening prompt when that is longer

# TRL GRPOConfig field -> the veRL key with the same meaning (every one is rendered, from the stage's
# settings over envtune's GRPO_DEFAULTS).
GRPO_TO_VERL = {
    "learning_rate": "actor_rollout_ref.actor.optim.lr",
    "lr_scheduler_type": "actor_rollout_ref.actor.optim.lr_scheduler_type",
    "warmup_steps": "actor_rollout_ref.actor.optim.lr_warmup_steps",
    "weight_decay": "actor_rollout_ref.actor.optim.weight_decay",
    "beta": "actor_rollout_ref.actor.kl_loss_coef",
    "epsilon": "actor_rollout_ref.actor.clip_ratio_low",
    "epsilon_high": "actor_rollout_ref.actor.clip_ratio_high",
    "entropy_coef": "actor_rollout_ref.actor.entropy_coeff",
    "max_grad_norm": "actor_rollout_ref.actor.optim.clip_grad",
    "num_generations": "actor_rollout_ref.rollout.n",
    "save_steps": "trainer.save_freq",
}
# TRL values veRL spells differently: veRL's constant schedule warms up over lr_warmup_steps.
VERL_VALUES = {"lr_scheduler_type": {"constant_with_warmup": "constant"}}
# Keys Megatron's optimizer config (`model_engine: megatron`) spells differently from FSDP's.
MEGATRON_KEYS = {"actor_rollout_ref.actor.optim.lr_scheduler_type": "actor_rollout_ref.actor.optim.lr_decay_style"}
# veRL keys that carry a setting both engines share, and where a config sets it instead of `verl:`.
SHARED_VERL_KEYS = {
    **{key: f"grpo.{field}" for field, key in GRPO_TO_VERL.items()},
    "actor_rollout_ref.actor.use_kl_loss": "grpo.beta",
    "actor_rollout_ref.actor.kl_loss_type": "grpo.beta (the KL loss is the low-variance estimator on both engines)",
    "actor_rollout_ref.rollout.temperature": "sampling.temperature",
    "actor_rollout_ref.rollout.top_p": "sampling.top_p",
    "actor_rollout_ref.rollout.top_k": "sampling.top_k",
    "data.train_batch_size": "grpo.gradient_accumulation_steps (tasks per step)",
    "actor_rollout_ref.actor.ppo_mini_batch_size": "grpo.gradient_accumulation_steps (tasks per step)",
}
# Turned into tasks per step (data.train_batch_size) together with num_generations.
BATCH_FIELDS = ("per_device_train_batch_size", "gradient_accumulation_steps")
LORA_TO_VERL = {
    "r": "actor_rollout_ref.model.lora_rank",
    "lora_alpha": "actor_rollout_ref.model.lora_alpha",
    "target_modules": "actor_rollout_ref.model.target_modules",
}


@dataclass(frozen=True)
class Cluster:
    nodes: int = 1
    gpus_per_node: int = 8

    def __post_init__(self):
        for name in ("nodes", "gpus_per_node"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class StageRun:
    """What one veRL launch of a stage needs besides the stage config."""

    model: str
    train_file: Path
    val_file: Path
    train_tasks: int
    checkpoint_dir: Path
    experiment: str
    total_steps: int
    max_prompt_tokens: int = MAX_PROMPT_TOKENS
    agent_loops: str = ""  # the agent-loop registry file veRL's workers read; default: the packaged one
    val_before_train: bool = True
    seed: int = 0
    context_tokens: int | None = None  # the model's context (max_position_embeddings); None: unknown here
    # variables veRL's Ray workers need (its metrics paths): workers on a cluster joined with `ray start`
    # get the environment of `ray start`, not the launcher's, so they travel in Ray's runtime env
    worker_env: Mapping[str, str] = dataclasses.field(default_factory=dict)


@lru_cache(maxsize=None)
def model_context(model: str) -> int | None:
    """The model's context in tokens (`max_position_embeddings` of its config, as vLLM takes it), or
    None when its config cannot be loaded here."""
    from transformers import AutoConfig
    from verl.workers.rollout.utils import get_max_position_embeddings

    try:
        return get_max_position_embeddings(AutoConfig.from_pretrained(model))
    except (OSError, ValueError):
        return None


def response_budget(stage: StageConfig, max_prompt: int, context: int | None) -> int:
    """The stage's response budget, cut to what the context leaves after the prompt budget: a longer
    episode would fail inside the rollout server, and veRL would drop it as a failed session."""
    if context is None:
        return stage.max_completion_tokens
    if context <= max_prompt:
        raise ConfigError(f"stage {stage.name}: the prompt budget ({max_prompt} tokens) leaves no room in the "
                          f"model's context ({context} tokens)")
    return min(stage.max_completion_tokens, context - max_prompt)


def agent_loop_config_path() -> str:
    return str(resources.files("envtune.verl") / "agent_loops.yaml")


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar: quoted when it is not a plain word, number or path."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    text = str(value)
    if re.fullmatch(r"[\w./@:+-]+", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stage_overrides(stage: StageConfig, run: StageRun, cluster: Cluster) -> tuple[list[str], list[str]]:
    """(Hydra overrides for `main_ppo`, curriculum fields veRL has no use for, to report)."""
    shared = sorted(set(stage.verl) & set(SHARED_VERL_KEYS))
    if shared:
        raise ConfigError(f"stage {stage.name} verl: {shared[0]} carries a setting both engines share; "
                          f"set {SHARED_VERL_KEYS[shared[0]]} instead")
    if stage.grpo.get("use_vllm"):  # TRL's vLLM rollouts; other vllm_* keys are reported as unused below
        raise ConfigError(f"stage {stage.name}: grpo.use_vllm is the TRL engine's setting; {VERL_ROLLOUT_ENGINE}")
    grpo = stage.grpo_settings
    batch = stage.tasks_per_step  # veRL counts tasks per step, each sampled rollout.n times
    if batch > run.train_tasks:
        raise ConfigError(f"stage {stage.name}: {batch} tasks per step but the stage has only {run.train_tasks} "
                          "training tasks; lower per_device_train_batch_size x gradient_accumulation_steps")
    max_prompt = int(stage.verl.get("data.max_prompt_length", run.max_prompt_tokens))
    context = stage.verl.get("actor_rollout_ref.rollout.max_model_len") or run.context_tokens
    max_response = response_budget(stage, max_prompt, None if context is None else int(context))
    settings: dict[str, Any] = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": False,
        "critic.enable": False,  # GRPO needs no value model
        "data.train_files": str(run.train_file),
        "data.val_files": str(run.val_file),
        "data.train_batch_size": batch,
        "data.max_prompt_length": max_prompt,
        "data.max_response_length": max_response,
        "data.filter_overlong_prompts": True,
        "data.truncation": "error",
        "data.seed": run.seed,
        "actor_rollout_ref.model.path": run.model,
        "actor_rollout_ref.model.use_remove_padding": True,
        "actor_rollout_ref.model.enable_gradient_checkpointing": True,
        "actor_rollout_ref.actor.use_kl_loss": float(grpo["beta"]) > 0,
        "actor_rollout_ref.actor.kl_loss_type": "low_var_kl",
        "actor_rollout_ref.actor.ppo_mini_batch_size": batch,  # one update per batch: on-policy, as TRL
        "actor_rollout_ref.actor.use_dynamic_bsz": True,
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": max_prompt + max_response,
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.temperature": stage.sampling.temperature,
        "actor_rollout_ref.rollout.top_p": stage.sampling.top_p,
        "actor_rollout_ref.rollout.top_k": stage.sampling.top_k or -1,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": run.agent_loops or agent_loop_config_path(),
        "actor_rollout_ref.rollout.agent.default_agent_loop": AGENT_NAME,
        "trainer.nnodes": cluster.nodes,
        "trainer.n_gpus_per_node": cluster.gpus_per_node,
        "trainer.project_name": "envtune",
        "trainer.experiment_name": run.experiment,
        "trainer.logger": ["console", "file", "tensorboard"],
        "trainer.default_local_dir": str(run.checkpoint_dir),
        "trainer.resume_mode": "auto",
        "trainer.total_training_steps": run.total_steps,
        # veRL's length filter may leave fewer rows than we counted and so fewer steps per epoch: with
        # at least one step per epoch, this many epochs never end the launch before total_training_steps
        "trainer.total_epochs": run.total_steps,
        "trainer.test_freq": stage.validation.every,
        "trainer.val_before_train": run.val_before_train,
    }
    megatron = stage.verl.get("model_engine") == "megatron"
    for field, key in GRPO_TO_VERL.items():
        key = MEGATRON_KEYS.get(key, key) if megatron else key
        settings[key] = VERL_VALUES.get(field, {}).get(grpo[field], grpo[field])
    ignored = sorted(set(stage.grpo) - set(GRPO_TO_VERL) - set(BATCH_FIELDS))
    for field, value in (stage.lora or {}).items():
        if field in LORA_TO_VERL:
            settings[LORA_TO_VERL[field]] = value
        else:
            ignored.append(f"lora.{field}")
    for name, value in run.worker_env.items():
        settings[f"++ray_kwargs.ray_init.runtime_env.env_vars.{name}"] = value
    settings.update(option_settings(stage))
    settings.update(stage.verl)
    return [f"{key}={hydra_value(value)}" for key, value in settings.items()], ignored


def option_settings(stage: StageConfig) -> dict[str, Any]:
    """What the stage's `credit: turn` and `zero_variance: resample` set in veRL (envtune.verl.credit,
    envtune.verl.sampler). Both need veRL's sync v1 trainer, so its `verl:` keys may not change that."""
    from envtune.verl.credit import ESTIMATOR, SETUP_HOOK, TRAINER
    from envtune.verl.sampler import MODULE

    settings: dict[str, Any] = {}
    if stage.credit == "turn":
        settings.update({
            "algorithm.adv_estimator": ESTIMATOR,
            "+algorithm.turn_weight": stage.turn_weight,
            "trainer.v1.trainer_mode": TRAINER,
            # veRL's task runner is a Ray actor: the hook registers the estimator and trainer in its process
            "++ray_kwargs.ray_init.runtime_env.worker_process_setup_hook": SETUP_HOOK,
        })
    if stage.zero_variance == "resample":
        settings.update({
            "algorithm.filter_groups.enable": True,  # veRL then feeds refills one task at a time
            "algorithm.filter_groups.metric": "reward",
            "trainer.v1.sampler.custom_sampler.path": MODULE,
            "trainer.v1.sampler.custom_sampler.name": "BoundedGroupFilter",
            "+trainer.v1.sampler.sampler_kwargs.tasks_per_step": stage.tasks_per_step,
            "+trainer.v1.sampler.sampler_kwargs.rollouts_per_task": stage.grpo_settings["num_generations"],
            "+trainer.v1.sampler.sampler_kwargs.max_extra_rollouts": stage.extra_rollout_budget,
            "+trainer.v1.sampler.sampler_kwargs.flat_by_turn": stage.flat_by_turn,
        })
        settings.setdefault("trainer.v1.trainer_mode", "sync")
    if settings:
        settings["trainer.use_v1"] = True
    options = [option for option, on in (("credit: turn", stage.credit == "turn"),
                                         ("zero_variance: resample", stage.zero_variance == "resample")) if on]
    for key in sorted(set(stage.verl) & {key.lstrip("+") for key in settings}):
        raise ConfigError(f"stage {stage.name} verl: {key} is set by {' and '.join(options)}; leave it out of verl:")
    return settings


def compose(overrides: Sequence[str]):
    """veRL's trainer config with the overrides applied, as `main_ppo` would see it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    import verl.trainer.config

    config_dir = str(Path(verl.trainer.config.__file__).parent)
    try:
        with initialize_config_dir(config_dir=config_dir, version_base=None):
            return hydra_compose(config_name="ppo_trainer", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(f"veRL refuses the stage config: {error}".strip()) from None


def check_overrides(stage: StageConfig, overrides: Sequence[str]):
    """Compose with veRL's Hydra config and run veRL's own validation; returns the composed config."""
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    config = compose(overrides)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # veRL prints a line on success
            validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
    except (AssertionError, ValueError) as error:
        raise ConfigError(f"stage {stage.name}: veRL's config check failed: {error}") from None
    return config


def command_line(command: Sequence[str], env: Mapping[str, str]) -> str:
    """The launch as a shell command a person can copy: environment, program, one override per line."""
    program = [f"{name}={shlex.quote(value)}" for name, value in env.items()]
    program += [shlex.quote(word) for word in command if "=" not in word]
    overrides = [shlex.quote(word) for word in command if "=" in word]
    return " \\\n    ".join([" ".join(program), *overrides])
