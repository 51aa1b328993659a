"""The veRL side of a stage: parquet rows that veRL's dataset loads, and overrides veRL's config accepts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from verl.utils.dataset.rl_dataset import RLHFDataset

from envtune.bfcl.splits import split_tasks
from envtune.curriculum.config import ConfigError, load_config, parse_config, preset_path
from envtune.curriculum.run import CurriculumRun
from envtune.env import Episode
from envtune.models import load_model_and_tokenizer, tiny_model_path
from envtune.verl.config import Cluster, StageRun, check_overrides, compose, hydra_value, stage_overrides
from envtune.verl.data import AGENT_NAME, EpisodeSpec, build_stage_data
from envtune.verl.engine import VerlEngine

PAPER = load_config(preset_path("paper"))


@pytest.fixture(scope="module")
def tokenizer():
    return load_model_and_tokenizer("tiny")[1]


@pytest.fixture(scope="module")
def hints_data(tmp_path_factory):
    """Stage 2 of the paper: the 100 base training tasks, augmented feedback; validation split."""
    return build_stage_data(PAPER.stages[1], tmp_path_factory.mktemp("hints"))


def stage_run(paths, model="Qwen/Qwen2.5-7B-Instruct", tasks=100, **changes):
    return StageRun(model=model, train_file=paths["train"], val_file=paths["val"], train_tasks=tasks,
                    checkpoint_dir=Path("/runs/ckpt"), experiment="paper-02-hints", total_steps=5, **changes)


def test_rows_load_with_verls_dataset_and_carry_the_episode(hints_data, tokenizer):
    data_config = compose([f"data.train_files={hints_data['train']}", f"data.val_files={hints_data['val']}",
                           "data.max_prompt_length=100000", "data.filter_overlong_prompts_workers=1"]).data
    train = RLHFDataset(str(hints_data["train"]), tokenizer, data_config)
    expected = [task for task in split_tasks("train") if task.category == "base"]
    assert len(train) == len(expected) == 100
    for index in (0, 57):
        item = train[index]
        spec = EpisodeSpec.from_kwargs(item["interaction_kwargs"])
        task = expected[index]
        assert spec.task_id == task.id and item["extra_info"]["index"] == index
        assert spec.episode.feedback == "augmented" and spec.episode.reward == "progress"
        assert spec.max_reply_tokens == PAPER.stages[1].sampling.max_new_tokens
        assert item["agent_name"] == AGENT_NAME and item["data_source"] == "bfcl_multi_turn_base"
        with Episode(task, spec.episode) as episode:
            assert [dict(message) for message in item["raw_prompt"]] == episode.reset()
    val = RLHFDataset(str(hints_data["val"]), tokenizer, data_config)
    assert len(val) == 100 and {val[i]["data_source"] for i in range(len(val))} == {
        f"bfcl_multi_turn_{category}" for category in ("base", "miss_func", "miss_param", "long_context")}
    assert all(EpisodeSpec.from_kwargs(val[i]["interaction_kwargs"]).episode.feedback == "standard" for i in range(0, 100, 9))


def test_paper_hyperparameters_map_to_verl_keys_that_veRL_accepts(hints_data):
    overrides, ignored = stage_overrides(PAPER.stages[1], stage_run(hints_data), Cluster(nodes=2, gpus_per_node=8))
    config = check_overrides(PAPER.stages[1], overrides)  # Hydra refuses unknown keys; veRL validates
    actor, rollout = config.actor_rollout_ref.actor, config.actor_rollout_ref.rollout
    assert config.algorithm.adv_estimator == "grpo"
    assert actor.optim.lr == 1e-6 and actor.use_kl_loss and actor.kl_loss_coef == 0.1 and actor.kl_loss_type == "low_var_kl"
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.optim.clip_grad) == (0.2, 0.28, 1.0)
    assert actor.entropy_coeff == 0.001  # grpo.entropy_coef
    assert rollout.n == 16 and config.data.train_batch_size == 32 and actor.ppo_mini_batch_size == 32
    assert rollout.response_length == 24576 and rollout.prompt_length == 8192
    assert rollout.agent.agent_loop_config_path.endswith("envtune/verl/agent_loops.yaml")
    assert Path(rollout.agent.agent_loop_config_path).is_file()
    assert (config.trainer.nnodes, config.trainer.n_gpus_per_node) == (2, 8)
    assert config.trainer.save_freq == 5 and config.trainer.test_freq == 1 and config.trainer.total_training_steps == 5
    assert list(config.trainer.logger) == ["console", "file", "tensorboard"]
    assert ignored == ["bf16"]
    stage1 = stage_overrides(PAPER.stages[0], stage_run(hints_data, tasks=75), Cluster())[0]
    assert "data.train_batch_size=16" in stage1 and "data.max_response_length=10240" in stage1


def test_the_epoch_count_never_ends_a_launch_before_its_steps(hints_data):
    """veRL's length filter can drop rows after we count them; its loop stops after total_epochs epochs
    of what is left, so the epoch count must never be what ends the launch."""
    config = compose(stage_overrides(PAPER.stages[1], stage_run(hints_data), Cluster())[0])
    batch, steps = config.data.train_batch_size, config.trainer.total_training_steps
    for kept in range(batch, 101):  # every number of rows the filter can leave a full batch in
        assert config.trainer.total_epochs * (kept // batch) >= steps, kept


def test_the_response_budget_leaves_the_prompt_room_in_the_models_context(hints_data, tmp_path, capsys):
    """The tiny tokenizer needs a prompt budget above 8192; with the paper's 24,576-token responses that
    would pass the model's 32,768-token context, so the response budget gives way (and the user is told)."""
    engine = VerlEngine()
    run = CurriculumRun(PAPER, str(tiny_model_path()), tmp_path / "run", None, engine)
    command = engine.launch(run, 1, PAPER.stages[1], str(tiny_model_path()), done=0)[0]
    settings = dict(word.split("=", 1) for word in command if "=" in word)
    prompt, response = int(settings["data.max_prompt_length"]), int(settings["data.max_response_length"])
    assert prompt > 8192 and prompt + response == 32768
    assert int(settings["actor_rollout_ref.actor.ppo_max_token_len_per_gpu"]) == 32768
    assert f"responses get {response} tokens, not 24576" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="leaves no room in the model's context"):
        stage_overrides(PAPER.stages[1], stage_run(hints_data, context_tokens=8192), Cluster())


def test_the_chunked_entropy_switches_the_readme_names_reach_verls_fsdp_engine(hints_data):
    chunked = parse_config({"stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 3,
                                        "grpo": {"entropy_coef": 0.001}, "verl": {
        "actor_rollout_ref.actor.entropy_from_logits_with_chunking": True,
        "actor_rollout_ref.actor.entropy_checkpointing": True}}]})
    overrides, _ = stage_overrides(chunked.stages[0], stage_run(hints_data), Cluster())
    engine = check_overrides(chunked.stages[0], overrides).actor_rollout_ref.actor.fsdp_config
    assert engine.entropy_from_logits_with_chunking and engine.entropy_checkpointing
    assert engine.entropy_from_logits_chunk_size == 2048


def test_every_key_we_set_exists_in_verls_config(hints_data):
    from omegaconf import OmegaConf

    overrides, _ = stage_overrides(PAPER.stages[2], stage_run(hints_data, tasks=400), Cluster())
    config = compose(overrides)
    for override in overrides:
        key = override.split("=", 1)[0]
        assert OmegaConf.select(config, key, throw_on_missing=False) is not None, key


def test_bad_settings_are_refused_with_the_key_named(hints_data):
    typo = parse_config({"stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 3,
                                     "verl": {"actor_rollout_ref.actor.entropy_coef": 0.001}}]})
    overrides, _ = stage_overrides(typo.stages[0], stage_run(hints_data), Cluster())
    with pytest.raises(ConfigError, match="entropy_coef"):
        check_overrides(typo.stages[0], overrides)
    too_big = parse_config({"stages": [{"name": "s", "split": "format", "reward": "format", "max_steps": 3,
                                        "grpo": {"num_generations": 16, "per_device_train_batch_size": 128,
                                                 "gradient_accumulation_steps": 16}}]})
    with pytest.raises(ConfigError, match="only 75 training tasks"):
        stage_overrides(too_big.stages[0], stage_run(hints_data, tasks=75), Cluster())
    with pytest.raises(ConfigError, match="multiple of num_generations"):  # refused when the config loads
        parse_config({"stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 3,
                                  "grpo": {"num_generations": 3, "per_device_train_batch_size": 4}}]})
    gpus = stage_overrides(PAPER.stages[1], stage_run(hints_data), Cluster(nodes=1, gpus_per_node=7))[0]
    with pytest.raises(ConfigError, match="divisible"):  # 32 x 16 samples over 7 GPUs: veRL's own check
        check_overrides(PAPER.stages[1], [*gpus, "actor_rollout_ref.actor.use_dynamic_bsz=false"])
    with pytest.raises(ConfigError, match="nodes"):
        Cluster(nodes=0)
    with pytest.raises(ConfigError, match="verl must map"):
        parse_config({"stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 3, "verl": [1]}]})


def test_a_verl_key_for_a_shared_setting_names_the_setting_to_use(hints_data):
    """Settings both engines share are set once, engine-neutrally; the `verl:` section cannot fork them."""
    for key, instead in (("actor_rollout_ref.actor.entropy_coeff", "grpo.entropy_coef"),
                         ("actor_rollout_ref.actor.optim.lr_scheduler_type", "grpo.lr_scheduler_type"),
                         ("actor_rollout_ref.actor.kl_loss_type", "grpo.beta"),
                         ("actor_rollout_ref.rollout.temperature", "sampling.temperature")):
        config = parse_config({"stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 3,
                                           "verl": {key: 0.5}}]})
        with pytest.raises(ConfigError, match=f"stage s verl: {key} carries a setting both engines share; set {instead}"):
            stage_overrides(config.stages[0], stage_run(hints_data), Cluster())


def test_trls_vllm_rollouts_are_refused_and_other_vllm_settings_reported_unused(hints_data):
    """veRL picks its rollout engine in `verl:`; TRL's vLLM settings never pass silently."""
    def stage(**grpo):
        return parse_config({"stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 3,
                                         "grpo": grpo}]}).stages[0]

    with pytest.raises(ConfigError, match=r"stage s: grpo.use_vllm .*{actor_rollout_ref.rollout.name: vllm\|sglang"):
        stage_overrides(stage(use_vllm=True, vllm_mode="colocate"), stage_run(hints_data), Cluster())
    _, ignored = stage_overrides(stage(vllm_gpu_memory_utilization=0.3), stage_run(hints_data), Cluster())
    assert "vllm_gpu_memory_utilization" in ignored


def test_stage_one_of_the_paper_renders_16_tasks_of_16_rollouts(hints_data):
    overrides, ignored = stage_overrides(PAPER.stages[0], stage_run(hints_data, tasks=75), Cluster())
    config = check_overrides(PAPER.stages[0], overrides)
    assert (config.data.train_batch_size, config.actor_rollout_ref.actor.ppo_mini_batch_size) == (16, 16)
    assert config.actor_rollout_ref.rollout.n == 16 and ignored == ["bf16"]


def test_hydra_values_are_quoted_when_needed():
    assert hydra_value("/runs/a b/model") == "'/runs/a b/model'"
    assert hydra_value("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert hydra_value("it's") == "'it\\'s'"
    assert (hydra_value(True), hydra_value(None), hydra_value(1e-6), hydra_value(["a", 2])) == ("true", "null", "1e-06", "[a,2]")


def test_dry_run_prints_a_complete_command_for_every_stage(tmp_path):
    run = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "envtune", "tune", "--engine", "verl", "--preset", "paper",
         "--model", "Qwen/Qwen2.5-7B-Instruct", "--nodes", "2", "--gpus-per-node", "8", "--dry-run",
         "--output", str(run)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    # the model is not reachable here: the prompt budget stays at 8192 and the user is told
    assert "cannot load the tokenizer of Qwen/Qwen2.5-7B-Instruct" in result.stderr and "data.max_prompt_length=8192" in result.stdout
    commands = [block for block in result.stdout.split("\n\n") if "verl.trainer.main_ppo" in block]
    assert len(commands) == 4
    for index, (block, name) in enumerate(zip(commands, ("syntax", "hints", "hard", "alignment"))):
        assert f"stage {index + 1} ({name})" in block
        assert f"VERL_FILE_LOGGER_PATH={run}/stages/0{index + 1}-{name}/logs/launch-001.jsonl" in block
        assert f"data.train_files={run}/stages/0{index + 1}-{name}/data/train.parquet" in block
        assert f"train: {(75, 100, 400, 400)[index]} tasks -> {run}/stages/0{index + 1}-{name}/data/train.parquet" in block
        assert f"val: 100 tasks -> {run}/stages/0{index + 1}-{name}/data/val.parquet" in block
        assert (run / "stages" / f"0{index + 1}-{name}" / "data" / "val.parquet").is_file()
        model = "Qwen/Qwen2.5-7B-Instruct" if index == 0 else f"{run}/stages/0{index}-{('syntax', 'hints', 'hard')[index - 1]}/selected"
        assert f"actor_rollout_ref.model.path={model}" in block
        assert "trainer.nnodes=2" in block and "trainer.n_gpus_per_node=8" in block
        assert f"actor_rollout_ref.rollout.agent.agent_loop_config_path={run}/agent_loops.yaml" in block
    assert not (run / "state.json").exists()  # nothing ran
    assert "EpisodeAgentLoop" in (run / "agent_loops.yaml").read_text()
    # the printed command parses back into the overrides veRL would get
    engine = VerlEngine()
    first = engine.launch(CurriculumRun(PAPER, str(tiny_model_path()), tmp_path / "again", None, engine), 0, PAPER.stages[0], "m", 0)[0]
    assert first[0] == sys.executable and first[1:3] == ["-m", "verl.trainer.main_ppo"]


def test_engine_flags_need_the_verl_engine(capsys):
    from envtune.cli import main

    assert main(["tune", "--preset", "smoke", "--nodes", "2"]) == 2
    assert "--nodes applies to --engine verl only" in capsys.readouterr().err
    assert main(["tune", "--preset", "smoke", "--steps-per-launch", "0"]) == 2
    assert "--steps-per-launch applies to --engine verl only" in capsys.readouterr().err
    assert main(["tune", "--engine", "verl", "--preset", "smoke", "--nodes", "0", "--dry-run"]) == 2
    assert "nodes must be a positive integer, got 0" in capsys.readouterr().err


def test_dry_run_says_where_each_stages_data_is(tmp_path, capsys):
    from envtune.cli import main

    run = tmp_path / "run"
    assert main(["tune", "--engine", "verl", "--preset", "smoke", "--dry-run", "--output", str(run)]) == 0
    out = capsys.readouterr().out
    # the smoke preset's stages train on subsets: 2 base tasks, then 8 missing-function and -parameter ones
    assert f"train: 2 tasks -> {run / 'stages' / '01-syntax' / 'data' / 'train.parquet'}" in out
    hints = out[out.index("stage 2 (hints)"):out.index("stage 3 (hard)")]
    assert f"train: 8 tasks -> {run / 'stages' / '02-hints' / 'data' / 'train.parquet'}" in hints
    assert "val: 4 tasks" in hints  # the smoke preset validates on 4 tasks


def test_the_same_yaml_runs_turn_credit_and_zero_variance_on_verl(tmp_path, capsys):
    """`credit: turn` and `zero_variance: resample` render to envtune's estimator, trainer and bounded
    group filter, in overrides veRL accepts (the dry run composes and checks them)."""
    from envtune.cli import main

    config = tmp_path / "options.yaml"
    config.write_text("name: options\nstages:\n  - {name: s, split: train, categories: [base], reward: progress, "
                      "max_steps: 1, credit: turn, turn_weight: 0.25, zero_variance: resample, max_extra_rollouts: 32}\n")
    assert main(["tune", "--engine", "verl", "--config", str(config), "--model", "tiny", "--dry-run",
                 "--output", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    for override in ("algorithm.adv_estimator=envtune_turn_credit", "+algorithm.turn_weight=0.25",
                     "trainer.v1.trainer_mode=envtune_turn_credit",
                     "++ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=envtune.verl.credit.register",
                     "algorithm.filter_groups.enable=true", "trainer.v1.sampler.custom_sampler.name=BoundedGroupFilter",
                     "+trainer.v1.sampler.sampler_kwargs.max_extra_rollouts=32"):
        assert f"    {override}" in out.replace(" \\\n", "\n"), override


def test_a_verl_key_that_an_option_sets_is_refused_by_name(hints_data):
    stage = parse_config({"stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 3,
                                      "credit": "turn", "verl": {"algorithm.adv_estimator": "rloo"}}]}).stages[0]
    with pytest.raises(ConfigError, match="stage s verl: algorithm.adv_estimator is set by credit: turn; leave it out"):
        stage_overrides(stage, stage_run(hints_data), Cluster())
    both = parse_config({"stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 3, "credit": "turn",
                                     "zero_variance": "resample", "verl": {"trainer.use_v1": False}}]}).stages[0]
    with pytest.raises(ConfigError, match="trainer.use_v1 is set by credit: turn and zero_variance: resample"):
        stage_overrides(both, stage_run(hints_data), Cluster())
