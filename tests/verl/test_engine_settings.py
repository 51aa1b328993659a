"""One config, one recipe: what TRL's GRPOConfig gets (`TrlEngine._grpo_args`) and what veRL's composed
config gets (`check_overrides` of `stage_overrides`) from the same YAML train the same way."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import Trainer, get_scheduler
from verl.utils.config import omega_conf_to_dataclass
from verl.workers.config.optimizer import build_optimizer
from verl.workers.engine.fsdp.transformer_impl import FSDPEngine

from envtune.curriculum.config import load_config, parse_config, preset_path
from envtune.models import resolve_placement
from envtune.train.engine import TrlEngine
from envtune.verl.config import Cluster, StageRun, check_overrides, stage_overrides

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = [preset_path("paper"), *sorted((ROOT / "configs").glob("*.yaml")), preset_path("smoke")]
# TRL's KL term is k3 (veRL's low_var_kl), times the importance ratio when bias-corrected
TRL_KL = {False: "low_var_kl", True: "low_var_kl x importance ratio"}
TRL_LOSS = {"dapo": "token-mean"}  # both: mean over every completion token of the optimizer step


def lr_by_step(make_scheduler, launches) -> list[float]:
    """The learning rate (relative to the peak) at each step of a stage run as `launches`, the total
    step count of each launch; every launch builds a fresh optimizer and scheduler, then loads the
    last launch's states, as veRL does when it resumes from a checkpoint."""
    rates, states, done = [], None, 0
    for total in launches:
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = make_scheduler(optimizer, total)
        if states is not None:
            optimizer.load_state_dict(states[0])
            scheduler.load_state_dict(states[1])
        for _ in range(total - done):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        states, done = (optimizer.state_dict(), scheduler.state_dict()), total
    return rates


def trl_settings(stage, directory) -> dict:
    args = TrlEngine(resolve_placement("cpu"))._grpo_args(stage, directory, seed=0)
    assert args.steps_per_generation == args.gradient_accumulation_steps  # one generation batch per optimizer step
    optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(args)[1]
    warmup = args.get_warmup_steps(stage.max_steps)
    return {
        "learning rate": optimizer_kwargs["lr"],
        "warmup steps": warmup,
        "learning rate by step": lr_by_step(lambda optimizer, _: get_scheduler(
            args.lr_scheduler_type, optimizer, num_warmup_steps=warmup, num_training_steps=stage.max_steps), [stage.max_steps]),
        "weight decay": args.weight_decay,
        "adam betas": optimizer_kwargs["betas"],
        "clip low, high": (args.epsilon, args.epsilon_high),
        "KL coefficient, estimator": (args.beta, TRL_KL[args.use_bias_correction_kl]),
        "entropy coefficient": args.entropy_coef,
        "max grad norm": args.max_grad_norm,
        "rollouts per task": args.num_generations,
        "tasks per step": args.generation_batch_size // args.num_generations,
        "updates per batch": args.num_iterations,
        "loss aggregation": TRL_LOSS[args.loss_type],
        "advantage scaled by group std": args.scale_rewards == "group",
        "temperature, top_p": (args.temperature, args.top_p),
    }


def verl_settings(stage, launch_steps: int) -> dict:
    def overrides(total):
        run = StageRun(model="model", train_file=Path("/data/train.parquet"), val_file=Path("/data/val.parquet"),
                       train_tasks=400, checkpoint_dir=Path("/ckpt"), experiment="e", total_steps=total)
        return stage_overrides(stage, run, Cluster())[0]

    config = check_overrides(stage, overrides(launch_steps))
    actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    optim = omega_conf_to_dataclass(actor.optim)

    def scheduler(optimizer, total):  # as veRL's FSDP engine builds it, over the launch's horizon
        optim.total_training_steps = total  # what veRL's trainer sets from trainer.total_training_steps
        return FSDPEngine._build_lr_scheduler(SimpleNamespace(optimizer_config=optim, rank=1), optimizer)

    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], optim)
    assert actor.ppo_mini_batch_size == config.data.train_batch_size  # one update per batch
    launches = list(range(launch_steps, stage.max_steps, launch_steps)) + [stage.max_steps]
    return {
        "learning rate": optimizer.defaults["lr"],
        "warmup steps": optim.lr_warmup_steps if optim.lr_warmup_steps > 0 else int(optim.lr_warmup_steps_ratio * launch_steps),
        "learning rate by step": lr_by_step(scheduler, launches),
        "weight decay": optimizer.defaults["weight_decay"],
        "adam betas": tuple(optimizer.defaults["betas"]),
        "clip low, high": (actor.clip_ratio_low, actor.clip_ratio_high),
        "KL coefficient, estimator": (actor.kl_loss_coef if actor.use_kl_loss else 0.0, actor.kl_loss_type),
        "entropy coefficient": actor.entropy_coeff,
        "max grad norm": optim.clip_grad,
        "rollouts per task": rollout.n,
        "tasks per step": config.data.train_batch_size,
        "updates per batch": actor.ppo_epochs,
        "loss aggregation": actor.loss_agg_mode,
        "advantage scaled by group std": config.algorithm.norm_adv_by_std_in_grpo,
        "temperature, top_p": (rollout.temperature, rollout.top_p),
    }


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path))  # _grpo_args points it at the stage; undone after
    return tmp_path


def test_the_paper_settings_are_the_same_on_both_engines(stage_dir):
    paper = {
        "learning rate": 1e-6, "warmup steps": 0, "weight decay": 0.01, "adam betas": (0.9, 0.999),
        "clip low, high": (0.2, 0.28), "KL coefficient, estimator": (0.1, "low_var_kl"), "entropy coefficient": 0.001,
        "max grad norm": 1.0, "rollouts per task": 16, "updates per batch": 1, "loss aggregation": "token-mean",
        "advantage scaled by group std": True, "temperature, top_p": (1.0, 1.0),
    }
    for stage, tasks in zip(load_config(preset_path("paper")).stages, (16, 32, 32, 32)):
        trl, verl = trl_settings(stage, stage_dir), verl_settings(stage, launch_steps=5)
        assert trl == verl, stage.name
        assert trl["learning rate by step"] == [1.0] * stage.max_steps  # constant, no warmup, no decay
        assert {name: trl[name] for name in paper} == paper and trl["tasks per step"] == tasks


def test_trl_trains_a_paper_step_one_sequence_at_a_time(stage_dir):
    """A micro-batch of one, accumulated over the step's completions, which one generation batch holds."""
    for stage, completions in zip(load_config(preset_path("paper")).stages, (256, 512, 512, 512)):
        args = TrlEngine(resolve_placement("cpu"))._grpo_args(stage, stage_dir, seed=0)
        assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (1, completions)
        assert (args.generation_batch_size, args.steps_per_generation) == (completions, completions)
        assert args.generation_batch_size % args.num_generations == 0


@pytest.mark.parametrize("path", CONFIGS[1:], ids=lambda path: path.stem)
def test_every_shipped_config_renders_the_same_settings_for_both_engines(path, stage_dir):
    for stage in load_config(path).stages:
        assert trl_settings(stage, stage_dir) == verl_settings(stage, launch_steps=2), (path.stem, stage.name)


def test_a_warmup_runs_once_over_a_stage_of_several_veRL_launches(stage_dir):
    stage = parse_config({"defaults": {"grpo": {"lr_scheduler_type": "constant_with_warmup", "warmup_steps": 4,
                                                "learning_rate": 3e-6, "weight_decay": 0.0, "epsilon": 0.3}},
                          "stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 9}]}).stages[0]
    trl, verl = trl_settings(stage, stage_dir), verl_settings(stage, launch_steps=2)
    assert trl == verl
    assert trl["learning rate by step"] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert trl["clip low, high"] == (0.3, 0.3)  # epsilon_high follows epsilon on both engines
    assert (trl["learning rate"], trl["weight decay"]) == (3e-6, 0.0)


def test_sampling_settings_reach_both_engines(stage_dir):
    stage = load_config(preset_path("paper")).stages[1]
    stage = replace(stage, sampling=replace(stage.sampling, temperature=0.7, top_p=0.9))
    assert trl_settings(stage, stage_dir)["temperature, top_p"] == verl_settings(stage, 5)["temperature, top_p"] == (0.7, 0.9)
