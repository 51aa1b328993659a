"""The TRL engine's stage set-up: one process, float32 master weights, LoRA adapters handed from stage to stage."""

import json
from dataclasses import dataclass

import pytest
import torch

from envtune.cli import main
from envtune.curriculum.config import parse_config
from envtune.curriculum.run import CurriculumRun
from envtune.errors import EnvtuneError
from envtune.models import resolve_placement
from envtune.train import engine
from envtune.train.engine import TrlEngine
from envtune.train.grpo import LOGGED_FIELDS


@pytest.mark.parametrize("variable, value, named", [
    ("WORLD_SIZE", "8", "8 processes"),
    ("ACCELERATE_USE_FSDP", "true", "FSDP"),
    ("ACCELERATE_USE_DEEPSPEED", "true", "DeepSpeed"),
])
def test_several_processes_or_a_sharded_model_are_refused(monkeypatch, capsys, tmp_path, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(EnvtuneError, match=f"{named}.*--engine verl"):
        TrlEngine(resolve_placement("cpu"))
    assert main(["tune", "--preset", "smoke", "--output", str(tmp_path / "run")]) == 2
    assert "--engine verl" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def stage_with(**fields):
    return parse_config({"name": "t", "stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 1,
                                                  **fields}]}).stages[0]


def test_log_probs_are_taken_at_the_sampling_temperature(tmp_path, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path))  # set by _grpo_args; restored after the test
    trl = TrlEngine(resolve_placement("cpu"))
    assert trl._grpo_args(stage_with(sampling={"temperature": 0.7}), tmp_path, 0).temperature == 0.7
    with pytest.raises(EnvtuneError, match="set sampling.temperature"):  # one temperature, set in one place
        stage_with(sampling={"temperature": 0.7}, grpo={"temperature": 0.5})


# ----- whole stages, with fixed rollouts and a recording validation --------------------------------
class FixedRollouts:
    """Stands in for the episodes: two short completions per task pair, one rewarded, so every step
    has an advantage to learn from."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, prompts, trainer):
        count = len(prompts)
        return {
            "prompt_ids": [[1, 2, 3]] * count,
            "completion_ids": [[5, 6, 7, 8], [9, 10, 11, 12]] * (count // 2),
            "env_mask": [[1] * 4] * count,
            "logprobs": None,
            **{name: [1.0, 0.0] * (count // 2) if name == "episode_reward" else [0.0] * count for name in LOGGED_FIELDS},
        }


@dataclass
class Seen:
    """What one validation saw: the stage, a copy of the weights and the model's logits on fixed input."""

    stage: str
    model: object
    weights: dict
    logits: torch.Tensor


def fake_episodes(tmp_path, monkeypatch):
    """Fixed rollouts and a recording validation in the TRL engine; returns what each validation saw
    and the trainers."""
    from envtune.train import grpo

    seen, trainers, make_trainer = [], [], grpo.make_trainer

    def validate(backend, tokenizer, stage, tasks):
        model = backend.model  # the trainer's policy: without vLLM, validation generates with it
        was_training = model.training
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([[1, 2, 3, 40, 41, 42]])).logits.float()
        model.train(was_training)
        weights = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
        seen.append(Seen(stage.name, model, weights, logits))
        # every validation has the best accuracy so far, and the worst format reward
        return {"val/accuracy": 0.1 * len(seen), "val/format_reward": 2.0 - 0.1 * len(seen)}  # in [0, 2]

    def keep(*args, **kwargs):
        trainers.append(make_trainer(*args, **kwargs))
        return trainers[-1]

    monkeypatch.setattr(grpo, "EpisodeRollouts", FixedRollouts)
    monkeypatch.setattr(grpo, "make_trainer", keep)
    monkeypatch.setattr(engine, "validate", validate)
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path))  # set by _grpo_args; restored after the test
    return seen, trainers


def run_stages(tmp_path, monkeypatch, stages, placement=None, verbose=False):
    """Run `stages` through the TRL engine; returns what each validation saw, the trainers and the run."""
    seen, trainers = fake_episodes(tmp_path, monkeypatch)
    config = parse_config({"name": "t", "defaults": {"validation": {"max_tasks": 1}}, "stages": stages})
    engine = TrlEngine(placement or resolve_placement("cpu"), verbose=verbose)
    return seen, trainers, CurriculumRun(config, "tiny", tmp_path / "run", None, engine)


def test_full_fine_tuning_in_bfloat16_keeps_float32_master_weights(tmp_path, monkeypatch):
    stage = {"name": "s", "split": "format", "reward": "format", "max_steps": 1,
             "grpo": {"learning_rate": 1.0e-6, "bf16": True}}
    seen, trainers, run = run_stages(tmp_path, monkeypatch, [stage], resolve_placement("cpu", "bfloat16"))
    run.run()
    trainer = trainers[0]
    assert trainer.args.bf16  # computed in bfloat16 autocast ...
    assert {parameter.dtype for group in trainer.optimizer.param_groups for parameter in group["params"]} == {torch.float32}
    before, after = seen[0].weights, seen[1].weights  # ... and one step at lr 1e-6 moves nearly every weight
    moved = sum(int((after[name] != before[name]).sum()) for name in before)
    assert moved / sum(weights.numel() for weights in before.values()) > 0.9


LORA = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}


def lora_stages(second_lora):
    return [
        {"name": "first", "split": "format", "reward": "format", "max_steps": 1, "lora": LORA,
         "grpo": {"learning_rate": 1.0e-2}},
        {"name": "second", "split": "format", "reward": "format", "max_steps": 1, "lora": second_lora},
    ]


@pytest.mark.parametrize("second_lora", [LORA, None], ids=["lora", "every-weight"])
def test_the_next_stage_starts_from_the_best_lora_checkpoint(tmp_path, monkeypatch, second_lora):
    from peft import PeftModel

    seen, trainers, run = run_stages(tmp_path, monkeypatch, lora_stages(second_lora))
    summary = run.run()
    assert summary["stages"][0]["best_step"] == 1
    start, best, first = seen[2], seen[1], seen[0]
    assert [start.stage, best.stage] == ["second", "first"]
    assert not torch.allclose(best.logits, first.logits, atol=1e-4)  # the first stage's step changed the model
    assert torch.allclose(start.logits, best.logits, atol=1e-5)  # the second stage starts where the best was
    trainable = {name for name, parameter in start.model.named_parameters() if parameter.requires_grad}
    if second_lora:  # the adapter goes on training, the base stays frozen
        assert isinstance(start.model, PeftModel) and trainable
        assert all("lora_" in name and ".default." in name for name in trainable)
    else:  # the merged model, every weight trained in float32
        assert not isinstance(start.model, PeftModel) and not any("lora_" in name for name in start.weights)
        assert trainable == set(start.weights)
        assert {parameter.dtype for parameter in start.model.parameters()} == {torch.float32}


def test_a_lora_stage_after_another_takes_its_settings(tmp_path, monkeypatch):
    seen, trainers, run = run_stages(tmp_path, monkeypatch, lora_stages({**LORA, "r": 8}))
    with pytest.raises(EnvtuneError, match=r"stage second: .*lora settings differ .*\['r'\]"):
        run.run()


def test_a_stage_judged_by_its_format_reward_keeps_the_checkpoint_that_metric_prefers(tmp_path, monkeypatch, capsys):
    stage = {"name": "s", "split": "format", "reward": "format", "max_steps": 2, "transition": {"metric": "format_reward"}}
    _, _, run = run_stages(tmp_path, monkeypatch, [stage], verbose=True)
    result = run.run()["stages"][0]
    assert (result["best_step"], result["best_accuracy"]) == (0, pytest.approx(1.9))  # not the best accuracy's step 2
    assert "format_reward" in result["decision"]
    assert "{'loss':" in capsys.readouterr().out  # verbose: transformers' metric dicts too


def test_tune_prints_a_line_per_step_and_the_stage_row_without_the_libraries_output(tmp_path, monkeypatch, capsys):
    fake_episodes(tmp_path, monkeypatch)
    config = tmp_path / "one.yaml"
    config.write_text(json.dumps({"name": "one", "defaults": {"validation": {"max_tasks": 1, "every": 2}}, "stages": [
        {"name": "syntax", "split": "format", "reward": "format", "max_steps": 2, "transition": {"metric": "format_reward"}},
    ]}))
    assert main(["tune", "--config", str(config), "--model", "tiny", "--device", "cpu", "--output", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    start, first, second = [line for line in out.splitlines() if line.split()[:2] in (["syntax", "start"], ["syntax", "step"])]
    assert start.split() == ["syntax", "start", "val", "format_reward", "1.900"]  # the starting checkpoint's validation
    assert first.split()[:7] == ["syntax", "step", "1/2", "reward", "0.500", "format_reward", "0.000"]
    assert "val " not in first and "val format_reward 1.800" in second  # the validated step shows the metric
    assert all(word in first for word in ("grad", "kl", "s/step", "ETA"))
    assert out.count("reward start -> end") == 2  # the stage's row as it ends, then the whole table
    assert "{'loss':" not in out + err and "Loading weights" not in err and "Writing model shards" not in err
    assert "loading model tiny on cpu (float32) ..." in err


def test_the_sampled_rollouts_take_one_of_each_task_before_a_second():
    from envtune.train.engine import sampled_rollouts

    batch = ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"]  # TRL's layout: 2 tasks x 4 generations
    assert sampled_rollouts(batch, 4, 2) == ["a0", "b0"]
    assert sampled_rollouts(batch, 4, 3) == ["a0", "b0", "a1"]
    assert sampled_rollouts(batch, 4, 0) == [] and sorted(sampled_rollouts(batch, 4, 20)) == batch
