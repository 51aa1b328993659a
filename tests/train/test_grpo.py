"""Real GRPO steps through TRL with the tiny model: weights move, environment tokens get no loss."""

import pytest
import torch

from envtune.bfcl.tasks import task_index
from envtune.env import EpisodeConfig
from envtune.env.oracle import ANSWER, oracle_reply
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer, HFBackend, SamplingParams
from envtune.train.grpo import EPISODE_FIELDS, LOGGED_FIELDS, EpisodeRollouts, make_trainer


def grpo_args(tmp_path, **overrides):
    from trl import GRPOConfig

    settings = dict(
        output_dir=str(tmp_path / "out"), use_cpu=True, bf16=False, per_device_train_batch_size=4,
        num_generations=2, max_completion_length=64, max_steps=1, learning_rate=1e-2, logging_steps=1,
        report_to=[], beta=0.1, epsilon=0.2, epsilon_high=0.28, save_strategy="no", seed=0, disable_tqdm=True,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def snapshot(model):
    return {name: parameter.detach().clone() for name, parameter in model.named_parameters()}


class HalfOracle:
    """Even episodes get the ground-truth oracle's reply, odd ones the model's own generation, so a
    random model's batch still has rewards that differ (GRPO learns nothing from equal rewards)."""

    def __init__(self, model, tokenizer, batch_size, rollouts_ref):
        self.model_backend = HFBackend(model, tokenizer, batch_size)
        self.renderer = ChatRenderer(tokenizer)
        self.eos_token_id = tokenizer.eos_token_id
        self.end_token_ids = (tokenizer.eos_token_id,)
        self.rollouts_ref = rollouts_ref

    def generate(self, requests, sampling):
        generated = iter(self.model_backend.generate([r for r in requests if r.episode_index % 2], sampling))
        episodes = self.rollouts_ref[0].episodes
        return [
            next(generated) if request.episode_index % 2
            else self.renderer.encode(oracle_reply(episodes[request.episode_index])) + [self.eos_token_id]
            for request in requests
        ]


def test_grpo_steps_on_episodes_change_the_weights(tmp_path):
    model, tokenizer = load_model_and_tokenizer("tiny")
    tasks = task_index()
    logged, reference = [], []
    rollouts = EpisodeRollouts(
        tasks, tokenizer, EpisodeConfig(max_steps_per_turn=2, reward="format"),
        SamplingParams(max_new_tokens=12, seed=0), max_completion_tokens=200, on_rollouts=logged.append,
        backend_factory=lambda model, tokenizer, size: HalfOracle(model, tokenizer, size, reference),
    )
    reference.append(rollouts)
    before = snapshot(model)
    trainer = make_trainer(model, tokenizer, ["multi_turn_base_1", "multi_turn_miss_param_3"], rollouts, grpo_args(tmp_path))
    trainer.train()
    assert any(not torch.equal(parameter, before[name]) for name, parameter in model.named_parameters())
    assert len(logged) == 1 and len(logged[0]) == 4  # 2 tasks x 2 generations
    assert all(len(rollout.loss_mask) == len(rollout.completion_ids) <= 200 for rollout in logged[0])
    assert [rollout.reward > 0 for rollout in logged[0]] == [True, False, True, False]
    history = trainer.state.log_history[0]
    assert "grad_norm" in history and "kl" in history and "entropy" in history
    for name in ("progress", "format_reward", "format_error_rate", "tool_calls", "hints", "rounds", "model_tokens"):
        assert f"rewards/{name}/mean" in history
    assert history["reward"] == history["rewards/episode_reward/mean"]  # only the stage reward trains


class SyntheticRollouts:
    """Short fixed sequences: model tokens first, then trailing environment tokens."""

    def __init__(self, tail, tail_mask):
        self.tail, self.tail_mask = tail, tail_mask

    def __call__(self, prompts, trainer):
        count = len(prompts)
        model_part = [[5, 6, 7, 8], [9, 10, 11, 12]] * (count // 2)
        return {
            "prompt_ids": [[1, 2, 3]] * count,
            "completion_ids": [ids + self.tail for ids in model_part],
            "env_mask": [[1] * 4 + [self.tail_mask] * len(self.tail)] * count,
            "logprobs": None,
            "episode_reward": [1.0, 0.0] * (count // 2),
            **{name: [0.0] * count for name in LOGGED_FIELDS if name != "episode_reward"},
        }


def weights_after_one_step(tmp_path, tail, tail_mask):
    model, tokenizer = load_model_and_tokenizer("tiny")
    trainer = make_trainer(model, tokenizer, ["multi_turn_base_1", "multi_turn_base_2"], SyntheticRollouts(tail, tail_mask), grpo_args(tmp_path))
    trainer.train()
    return snapshot(model)


def same(first, second):
    return all(torch.equal(first[name], second[name]) for name in first)


def test_environment_tokens_carry_no_loss(tmp_path):
    masked_a = weights_after_one_step(tmp_path, tail=[20, 21, 22], tail_mask=0)
    masked_b = weights_after_one_step(tmp_path, tail=[300, 301, 302], tail_mask=0)
    assert same(masked_a, masked_b)  # what the environment said after the model's tokens changes nothing
    unmasked_a = weights_after_one_step(tmp_path, tail=[20, 21, 22], tail_mask=1)
    unmasked_b = weights_after_one_step(tmp_path, tail=[300, 301, 302], tail_mask=1)
    assert not same(unmasked_a, unmasked_b)  # the control: as model tokens they would be trained on


def test_every_episode_number_reaches_the_reward_functions():
    from envtune.env.record import EpisodeRecord, HintUse
    from envtune.rollout import Rollout
    from envtune.train.grpo import episode_numbers

    record = EpisodeRecord(num_turns=2, turn_successes=(True, False), responses=4, format_violations=1, valid_calls=2,
                           invalid_calls=1, hints=(HintUse(0, 1, "x"),))
    numbers = episode_numbers(Rollout("multi_turn_base_0", [1], [2, 3], [1, 0], None, [], record, reward=0.25))
    assert set(numbers) == set(EPISODE_FIELDS)
    assert numbers["format_error_rate"] == 0.25 and numbers["turn_success_rate"] == 0.5 and numbers["tool_calls"] == 3.0


def test_lora_trains_adapters_only(tmp_path):
    from peft import LoraConfig

    model, tokenizer = load_model_and_tokenizer("tiny")
    base = snapshot(model)
    trainer = make_trainer(
        model, tokenizer, ["multi_turn_base_1", "multi_turn_base_2"], SyntheticRollouts([20], 0), grpo_args(tmp_path),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    trainer.train()
    adapters = {name: parameter for name, parameter in trainer.model.named_parameters() if "lora_" in name}
    assert adapters and all(parameter.requires_grad for parameter in adapters.values())
    frozen = {name.replace("base_model.model.", "").replace(".base_layer", ""): parameter
              for name, parameter in trainer.model.named_parameters() if "lora_" not in name}
    compared = [name for name in frozen if name in base]
    assert len(compared) == len(base)  # every base weight found under its PEFT name, and unchanged
    assert all(torch.equal(frozen[name], base[name]) for name in compared)
    assert any(not torch.all(parameter == 0) for name, parameter in adapters.items() if "lora_B" in name)


class SeedRecorder:
    """Ends every reply at once and records the seed each generation round gets."""

    def __init__(self, tokenizer):
        self.end_token_ids = (tokenizer.eos_token_id,)
        self.seeds = []

    def generate(self, requests, sampling):
        self.seeds.append(sampling.seed)
        return [list(self.end_token_ids) for _ in requests]


def test_a_resumed_stage_samples_on_with_new_seeds():
    from types import SimpleNamespace

    _, tokenizer = load_model_and_tokenizer("tiny")
    recorder = SeedRecorder(tokenizer)

    def first_seed(rollouts, step):
        """The seed of the first generation round of one batch, at `step`, with 2 accumulation steps."""
        recorder.seeds.clear()
        trainer = SimpleNamespace(model=None, state=SimpleNamespace(global_step=step),
                                  args=SimpleNamespace(gradient_accumulation_steps=2))
        rollouts(["multi_turn_base_0"] * 2, trainer)
        return recorder.seeds[0]

    def new_rollouts():
        return EpisodeRollouts(task_index(), tokenizer, EpisodeConfig(max_steps_per_turn=1), SamplingParams(seed=7),
                               max_completion_tokens=40, backend_factory=lambda *args: recorder)

    first_run = new_rollouts()
    seeds = [first_seed(first_run, step) for step in (0, 0, 1, 1)]  # two generation batches per optimizer step
    assert len(set(seeds)) == 4
    resumed = new_rollouts()  # a new process, resuming from the checkpoint of step 1
    assert [first_seed(resumed, 1), first_seed(resumed, 1)] == seeds[2:]


class ByTask:
    """The oracle's reply for even episodes of the `varied` tasks, nonsense for every other episode:
    a group of any other task scores alike (all 0), one of a varied task does not."""

    def __init__(self, tokenizer, rollouts_ref, varied):
        self.renderer = ChatRenderer(tokenizer)
        self.eos_token_id = tokenizer.eos_token_id
        self.end_token_ids = (tokenizer.eos_token_id,)
        self.rollouts_ref, self.varied = rollouts_ref, varied

    def generate(self, requests, sampling):
        episodes = self.rollouts_ref[0].episodes
        return [
            self.renderer.encode(oracle_reply(episodes[request.episode_index])
                                 if episodes[request.episode_index].task.id in self.varied and request.episode_index % 2 == 0
                                 else "nonsense") + [self.eos_token_id]
            for request in requests
        ]


def play_batch(max_extra_rollouts, replacements=("multi_turn_base_1", "multi_turn_base_3", "multi_turn_base_5")):
    from types import SimpleNamespace

    _, tokenizer = load_model_and_tokenizer("tiny")
    reference = []
    rollouts = EpisodeRollouts(
        task_index(), tokenizer, EpisodeConfig(max_steps_per_turn=1, reward="format"), SamplingParams(max_new_tokens=8, seed=0),
        max_completion_tokens=400, replacement_ids=replacements, max_extra_rollouts=max_extra_rollouts,
        backend_factory=lambda model, tokenizer, size: ByTask(tokenizer, reference, {"multi_turn_base_0", "multi_turn_base_5"}),
    )
    reference.append(rollouts)
    trainer = SimpleNamespace(model=None, state=SimpleNamespace(global_step=0), args=SimpleNamespace(gradient_accumulation_steps=1))
    output = rollouts(["multi_turn_base_0"] * 2 + ["multi_turn_base_1"] * 2, trainer)
    return output, [rollout.task_id for rollout in rollouts.last_batch]


def test_a_group_whose_rewards_are_all_equal_is_replaced_by_one_that_teaches():
    output, played = play_batch(max_extra_rollouts=8)
    # base_1 scored alike; base_1 is in the batch already, base_3 scored alike too, base_5 did not
    assert played == ["multi_turn_base_0"] * 2 + ["multi_turn_base_5"] * 2
    assert output["flat_groups"] == [0.5] * 4 and output["extra_rollouts"] == [4.0] * 4
    assert output["episode_reward"][2] > output["episode_reward"][3]
    kept, _ = play_batch(max_extra_rollouts=0)
    assert output["prompt_ids"][:2] == kept["prompt_ids"][:2] and output["prompt_ids"][2] != kept["prompt_ids"][2]


def test_replacements_stop_at_the_extra_rollout_budget():
    output, played = play_batch(max_extra_rollouts=3)  # one more group of 2, not two
    assert played == ["multi_turn_base_0"] * 2 + ["multi_turn_base_1"] * 2  # base_3 scored alike: the group stays
    assert output["extra_rollouts"] == [2.0] * 4 and output["flat_groups"] == [0.5] * 4
    output, played = play_batch(max_extra_rollouts=0)
    assert output["extra_rollouts"] == [0.0] * 4 and played[2:] == ["multi_turn_base_1"] * 2


def test_groups_are_runs_of_one_task():
    from envtune.train.grpo import groups

    assert groups(["a", "a", "b", "b", "b", "a"]) == [range(0, 2), range(2, 5), range(5, 6)]


class FailsTurn:
    """The oracle's replies, except that episode i answers turn FAILED[i % 2] at once (no calls):
    on multi_turn_base_8 both then pass 3 of 4 turns, but not the same ones."""

    FAILED = (1, 3)

    def __init__(self, tokenizer, rollouts_ref):
        self.renderer = ChatRenderer(tokenizer)
        self.eos_token_id = tokenizer.eos_token_id
        self.end_token_ids = (tokenizer.eos_token_id,)
        self.rollouts_ref = rollouts_ref

    def generate(self, requests, sampling):
        episodes = self.rollouts_ref[0].episodes
        replies = []
        for request in requests:
            episode = episodes[request.episode_index]
            failing = episode.turn == self.FAILED[request.episode_index % 2]
            replies.append(self.renderer.encode(ANSWER if failing else oracle_reply(episode)) + [self.eos_token_id])
        return replies


@pytest.mark.parametrize("flat_by_turn", [False, True])
def test_under_turn_credit_equal_rewards_with_different_turns_are_not_flat(flat_by_turn):
    from types import SimpleNamespace

    _, tokenizer = load_model_and_tokenizer("tiny")
    reference = []
    rollouts = EpisodeRollouts(
        task_index(), tokenizer, EpisodeConfig(reward="progress"), SamplingParams(max_new_tokens=8, seed=0),
        max_completion_tokens=4000, replacement_ids=("multi_turn_base_1",), max_extra_rollouts=2,
        flat_by_turn=flat_by_turn, backend_factory=lambda model, tokenizer, size: FailsTurn(tokenizer, reference),
    )
    reference.append(rollouts)
    trainer = SimpleNamespace(model=None, state=SimpleNamespace(global_step=0), args=SimpleNamespace(gradient_accumulation_steps=1))
    output = rollouts(["multi_turn_base_8"] * 2, trainer)
    played = [rollout.task_id for rollout in rollouts.last_batch]
    if flat_by_turn:  # its turns teach: the group stays
        first, second = (rollout.record.turn_successes for rollout in rollouts.last_batch)
        assert played == ["multi_turn_base_8"] * 2 and output["episode_reward"] == [0.75, 0.75] and first != second
        assert output["flat_groups"] == [0.0] * 2 and output["extra_rollouts"] == [0.0] * 2
    else:  # by rewards alone it is flat, and base_1's group, which scores unequally, replaces it
        assert played == ["multi_turn_base_1"] * 2 and len(set(output["episode_reward"])) == 2
        assert output["flat_groups"] == [1.0] * 2 and output["extra_rollouts"] == [2.0] * 2
