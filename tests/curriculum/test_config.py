"""Curriculum configs load, merge defaults into stages, and reject mistakes by name."""

import sys
from pathlib import Path

import pytest

from envtune.curriculum import config as config_module
from envtune.bfcl.splits import split_tasks
from envtune.curriculum.config import PRESETS, ConfigError, load_config, parse_config, preset_path, training_tasks

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", [*CONFIGS, *map(preset_path, PRESETS)], ids=lambda path: path.stem)
def test_shipped_configs_load(path):
    config = load_config(path)
    assert config.stages and all(stage.max_steps > 0 for stage in config.stages)


def test_resampling_spends_a_steps_worth_of_rollouts_unless_told_otherwise():
    stage = parse_config(base(zero_variance="resample", grpo={"num_generations": 4, "per_device_train_batch_size": 8})).stages[0]
    assert stage.extra_rollout_budget == 8  # 2 tasks x 4 rollouts
    assert parse_config(base(zero_variance="resample", max_extra_rollouts=64)).stages[0].extra_rollout_budget == 64
    assert parse_config(base(max_extra_rollouts=64)).stages[0].extra_rollout_budget == 0  # keep: none


@pytest.mark.parametrize(("name", "option", "values"), [
    ("turn_credit.yaml", "credit", ("episode", "turn")), ("zero_variance.yaml", "zero_variance", ("keep", "resample")),
])
def test_the_ablations_switch_one_option_on_over_the_paper_curriculum(name, option, values):
    from dataclasses import replace

    paper = load_config(preset_path("paper")).stages
    ablation = load_config(Path(__file__).resolve().parents[2] / "configs" / name).stages
    assert [getattr(stage, option) for stage in ablation] == [values[0], values[1], values[1], values[1]]
    assert [replace(stage, **{option: values[0]}) for stage in ablation] == list(paper)


def test_the_paper_curriculum_matches_the_spec():
    stages = load_config(preset_path("paper")).stages
    assert [(s.split, s.reward, s.episode.feedback, s.episode.prompt) for s in stages] == [
        ("format", "format", "standard", "basic"),
        ("train", "progress", "augmented", "basic"),
        ("train", "progress", "augmented", "extended"),
        ("train", "progress", "standard", "extended"),
    ]
    assert stages[1].categories == ("base",)
    assert stages[0].grpo["learning_rate"] == 1e-6 and stages[0].grpo["beta"] == 0.1
    assert (stages[0].grpo["epsilon"], stages[0].grpo["epsilon_high"], stages[0].grpo["num_generations"]) == (0.2, 0.28, 16)


def test_an_ablation_is_the_paper_preset_with_its_own_stages():
    paper = load_config(preset_path("paper"))
    ablation = load_config(Path(__file__).resolve().parents[2] / "configs" / "no_augmentation.yaml")
    assert ablation.name == "no-augmentation" and [stage.name for stage in ablation.stages] == [s.name for s in paper.stages]
    assert [stage.episode.feedback for stage in ablation.stages] == ["standard"] * 4
    for ours, theirs in zip(ablation.stages, paper.stages):
        assert (ours.grpo, ours.sampling, ours.transition, ours.verl) == (theirs.grpo, theirs.sampling, theirs.transition, theirs.verl)
    assert "base" not in ablation.source and ablation.source["defaults"] == paper.source["defaults"]  # self-contained


def test_a_base_merges_under_the_config_and_its_stages_are_replaced(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "name: parent\nseed: 3\ndefaults: {grpo: {learning_rate: 1.0e-5, beta: 0.1}}\n"
        "stages: [{name: a, split: train, reward: progress, max_steps: 2}]\n")
    (tmp_path / "child").mkdir()
    (tmp_path / "child" / "child.yaml").write_text(
        "base: ../parent.yaml\nname: child\ndefaults: {grpo: {beta: 0.2}}\n"
        "stages: [{name: b, split: format, reward: format, max_steps: 1}]\n")
    config = load_config(tmp_path / "child" / "child.yaml")
    assert (config.name, config.seed, [stage.name for stage in config.stages]) == ("child", 3, ["b"])
    assert config.stages[0].grpo == {"learning_rate": 1e-5, "beta": 0.2}
    assert parse_config({"base": "paper", "name": "renamed"}).stages == load_config(preset_path("paper")).stages


def test_base_mistakes_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="is already a base of this config"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="config file not found: .*absent.yaml"):
        parse_config({"base": "absent.yaml"}, tmp_path)
    (tmp_path / "list.yaml").write_text("[1, 2]\n")
    with pytest.raises(ConfigError, match="list.yaml is not a curriculum config"):
        parse_config({"base": "list.yaml"}, tmp_path)


def base(**stage):
    return {"name": "t", "stages": [{"name": "one", "split": "train", "reward": "progress", "max_steps": 3, **stage}]}


def test_defaults_merge_into_stages():
    document = base(episode={"feedback": "augmented"})
    document["defaults"] = {"episode": {"prompt": "extended", "feedback": "standard"}, "grpo": {"beta": 0.1}}
    stage = parse_config(document).stages[0]
    assert (stage.episode.feedback, stage.episode.prompt, stage.grpo["beta"]) == ("augmented", "extended", 0.1)


def test_a_stage_trains_on_its_categories_or_a_stratified_subset_of_them():
    whole = training_tasks(parse_config(base(categories=["base"])).stages[0], None)
    assert [task.id for task in whole] == [task.id for task in split_tasks("train") if task.category == "base"]
    subset = training_tasks(parse_config(base(categories=["miss_func", "miss_param"], max_tasks=4)).stages[0], None)
    assert [task.category for task in subset] == ["miss_func", "miss_func", "miss_param", "miss_param"]
    assert {task.id for task in subset} < {task.id for task in split_tasks("train")}


@pytest.mark.parametrize(
    "document, message",
    [
        (base(lr=1), "stage 1 (one): unknown key 'lr'"),
        (base(split="dev"), "split 'dev' is not one of"),
        (base(reward="dense"), "reward 'dense' is not one of"),
        (base(max_steps=0), "max_steps must be a positive integer"),
        (base(categories=["misc"]), "categories must be a non-empty subset"),
        (base(max_tasks=0), "max_tasks must be a positive integer (or null for the whole split), got 0"),
        (base(episode={"feedback": "loud"}), "feedback='loud' is not valid"),
        (base(validation={"often": 2}), "validation: unknown key 'often'"),
        (base(transition={"patiance": 3}), "transition: unknown transition-rule key(s): 'patiance'"),
        ({"name": "t", "stages": []}, "'stages' must be a non-empty list"),
        ({"name": "t", "stage": []}, "config: unknown key 'stage'"),
        (base(credit="turns"), "credit must be one of episode, turn, got 'turns'"),
        (base(credit="turn", turn_weight=2), "turn_weight must be a number from 0 to 1, got 2"),
        (base(credit="turn", reward="format"), "credit: turn compares turn outcomes, so it needs reward progress or progress_reached, not 'format'"),
        (base(credit="turn", grpo={"scale_rewards": "batch"}), "use grpo.scale_rewards group or none"),
        (base(zero_variance="drop"), "zero_variance must be one of keep, resample, got 'drop'"),
        (base(zero_variance="resample", max_extra_rollouts=0), "max_extra_rollouts must be a positive integer"),
        (base(zero_variance="resample", max_extra_rollouts=3, grpo={"num_generations": 4}),
         "max_extra_rollouts 3 is less than one group (4 rollouts, grpo.num_generations)"),
        ({**base(), "sampled_rollouts": -1}, "sampled_rollouts is the number of rollouts per step written to rollouts.jsonl"),
        ({**base(), "sampled_rollouts": "all"}, "an integer of 0 or more; got 'all'"),
    ],
)
def test_mistakes_are_named(document, message):
    with pytest.raises(ConfigError, match=None) as error:
        parse_config(document)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "document, message",
    [
        (base(grpo={"learning_rte": 1e-6}),
         "stage 1 (one) grpo: unknown key 'learning_rte' (did you mean 'learning_rate'?); grpo takes TRL GRPOConfig fields"),
        (base(lora={"r": 8, "lora_alpah": 16}),
         "stage 1 (one) lora: unknown key 'lora_alpah' (did you mean 'lora_alpha'?); lora takes PEFT LoraConfig fields"),
        ({**base(), "defaults": {"grpo": {"betta": 0.1}}}, "defaults grpo: unknown key 'betta' (did you mean 'beta'?)"),
        (base(grpo={"max_steps": 10}), "stage 1 (one) grpo: 'max_steps' is set by envtune: set the stage's max_steps"),
        (base(grpo={"seed": 1}), "'seed' is set by envtune: set the config's seed"),
        (base(grpo={"use_cpu": True}), "'use_cpu' is set by envtune: choose the device with --device"),
        (base(grpo=[0.1]), "stage 1 (one): grpo must be a mapping"),
    ],
)
def test_grpo_and_lora_keys_are_checked_when_the_config_loads(document, message):
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert message in str(error.value)


def test_trainer_settings_that_exist_load():
    stage = parse_config(base(grpo={"bf16": True, "save_total_limit": 2}, lora={"r": 8, "lora_alpha": 16})).stages[0]
    assert stage.grpo == {"bf16": True, "save_total_limit": 2} and stage.lora == {"r": 8, "lora_alpha": 16}


def test_checking_grpo_keys_without_trl_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # makes `from trl import ...` fail
    config_module._trainer_fields.cache_clear()
    try:
        with pytest.raises(ConfigError, match=r"checking the grpo keys needs the train extra .*pip install 'envtune\[train\]'"):
            parse_config(base(grpo={"beta": 0.1}))
    finally:
        config_module._trainer_fields.cache_clear()


def test_a_missing_or_broken_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("stages: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


@pytest.mark.parametrize("path", [preset_path("paper"), *CONFIGS], ids=lambda path: path.stem)
def test_paper_steps_train_whole_groups_one_sequence_at_a_time(path):
    """32 tasks x 16 rollouts per optimizer step (16 tasks in stage 1), one sequence per forward and backward."""
    stages = load_config(path).stages
    tasks = (16, 32, 32, 32) if len(stages) == 4 else (32,)
    assert [stage.tasks_per_step for stage in stages] == list(tasks)
    for stage in stages:
        grpo = stage.grpo_settings
        assert (grpo["per_device_train_batch_size"], grpo["num_generations"]) == (1, 16)
        assert grpo["gradient_accumulation_steps"] == stage.tasks_per_step * 16


def test_tasks_per_step_is_the_completions_per_step_over_the_rollouts_per_task():
    stage = parse_config(base(tasks_per_step=6, grpo={"num_generations": 4, "per_device_train_batch_size": 2,
                                                      "gradient_accumulation_steps": 12})).stages[0]
    assert stage.tasks_per_step == 6
    assert parse_config(base()).stages[0].tasks_per_step == 2  # envtune's defaults: 4 completions, 2 per task


@pytest.mark.parametrize(
    "document, message",
    [
        (base(grpo={"num_generations": 16, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 24}),
         "stage 1 (one): per_device_train_batch_size x gradient_accumulation_steps (24 completions per step) must be a "
         "multiple of num_generations (16): a step trains whole groups of rollouts"),
        (base(tasks_per_step=32, grpo={"num_generations": 16, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 32}),
         "stage 1 (one): tasks_per_step is 32, but per_device_train_batch_size x gradient_accumulation_steps / "
         "num_generations = 1 x 32 / 16 = 2 tasks per step"),
        (base(grpo={"num_generations": 1}), "stage 1 (one) grpo: num_generations must be an integer of at least 2, got 1"),
        (base(grpo={"gradient_accumulation_steps": 0}), "gradient_accumulation_steps must be an integer of at least 1, got 0"),
        (base(grpo={"generation_batch_size": 512}), "'generation_batch_size' is set by envtune: each optimizer step trains "
                                                    "its own generation batch"),
        (base(grpo={"steps_per_generation": 4}), "'steps_per_generation' is set by envtune"),
    ],
)
def test_the_step_geometry_is_checked_when_the_config_loads(document, message):
    with pytest.raises(ConfigError) as error:
        parse_config(document)
    assert message in str(error.value)


def test_a_stage_override_of_the_batch_must_restate_its_tasks_per_step():
    document = {"base": "paper", "stages": [{"name": "syntax", "split": "format", "reward": "format", "max_steps": 9,
                                             "grpo": {"gradient_accumulation_steps": 256}}]}
    with pytest.raises(ConfigError, match=r"tasks_per_step is 32, but .* = 1 x 256 / 16 = 16 tasks per step"):
        parse_config(document)


def test_settings_both_engines_share_default_to_the_papers_veRL_defaults():
    """A config that says nothing about the optimizer gets the same settings on TRL as on veRL."""
    grpo = parse_config(base(grpo={"epsilon": 0.3})).stages[0].grpo_settings
    assert (grpo["lr_scheduler_type"], grpo["warmup_steps"], grpo["weight_decay"]) == ("constant", 0, 0.01)
    assert (grpo["learning_rate"], grpo["beta"], grpo["entropy_coef"], grpo["max_grad_norm"]) == (1e-6, 0.0, 0.0, 1.0)
    assert (grpo["epsilon"], grpo["epsilon_high"]) == (0.3, 0.3)  # as TRL: the upper clip follows the lower


def test_the_paper_preset_states_its_settings_in_grpo():
    stage = load_config(preset_path("paper")).stages[2]
    assert {name: stage.grpo[name] for name in ("lr_scheduler_type", "warmup_steps", "weight_decay", "entropy_coef")} == {
        "lr_scheduler_type": "constant", "warmup_steps": 0, "weight_decay": 0.01, "entropy_coef": 0.001}
    assert stage.verl == {}  # nothing veRL-only


@pytest.mark.parametrize(
    "grpo, message",
    [
        ({"lr_scheduler_type": "linear"}, "stage 1 (one) grpo: lr_scheduler_type 'linear' is not one of constant, "
                                          "constant_with_warmup: the veRL engine runs a stage as several launches"),
        ({"lr_scheduler_type": "cosine", "warmup_steps": 2}, "lr_scheduler_type 'cosine' is not one of"),
        ({"lr_scheduler_type": "constant_with_warmup", "warmup_steps": 0.1},
         "warmup_steps must be a whole number of optimizer steps, got 0.1"),
        ({"warmup_steps": 5}, "TRL's constant schedule ignores warmup_steps (5); use lr_scheduler_type: constant_with_warmup"),
        ({"warmup_ratio": 0.1}, "'warmup_ratio' is set by envtune: give warmup_steps in optimizer steps"),
        ({"temperature": 0.7}, "'temperature' is set by envtune: set sampling.temperature"),
        ({"top_p": 0.9}, "'top_p' is set by envtune: set sampling.top_p"),
        ({"use_bias_correction_kl": True}, "the KL loss is the low-variance estimator on both engines"),
    ],
)
def test_settings_one_engine_would_apply_differently_are_refused(grpo, message):
    with pytest.raises(ConfigError) as error:
        parse_config(base(grpo=grpo))
    assert message in str(error.value)


def test_a_warmup_of_whole_steps_loads():
    stage = parse_config(base(grpo={"lr_scheduler_type": "constant_with_warmup", "warmup_steps": 10})).stages[0]
    assert (stage.grpo_settings["lr_scheduler_type"], stage.grpo_settings["warmup_steps"]) == ("constant_with_warmup", 10)
