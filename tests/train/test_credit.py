"""The turn-level advantage estimator (`envtune.curriculum.credit`): its formula, its edge cases, and the
turn each completion token is credited to."""

import pytest
import torch

from envtune.curriculum.config import parse_config
from envtune.curriculum.credit import group_turn_advantages, group_without_signal, token_advantages, turn_progress
from envtune.env import Episode, EpisodeConfig
from envtune.env.oracle import calls_reply, oracle_reply
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer, TokenDriver


def episode_advantages(rewards):
    """GRPO's advantage of one group, as TRL computes it (unbiased std, 1e-4)."""
    rewards = torch.tensor(rewards, dtype=torch.float64)
    return ((rewards - rewards.mean()) / (rewards.std() + 1e-4)).tolist()


def test_turn_progress_is_the_share_of_passed_turns_from_each_turn_on():
    assert turn_progress([True, False, True], 3) == [2 / 3, 0.5, 1.0]
    assert turn_progress([True], 3) == [1 / 3, 0.0, 0.0]  # turns never reached fail


@pytest.mark.parametrize("turn_weight", [0.0, 0.3, 1.0])
def test_rollouts_whose_turns_all_share_the_episode_outcome_get_the_episode_advantage(turn_weight):
    successes = [[True] * 4, [False] * 4, [True] * 4, [False] * 4]
    rewards = [1.0, 0.0, 1.0, 0.0]  # the progress reward of each
    advantages = group_turn_advantages(successes, rewards, 4, turn_weight)
    for per_turn, expected in zip(advantages, episode_advantages(rewards)):
        assert per_turn == pytest.approx([expected] * 4)


def test_a_turn_weight_of_zero_is_grpo_whatever_the_turns():
    successes = [[True, False, False], [False, True, True], [True, True, False]]
    rewards = [1 / 3, 2 / 3, 2 / 3]
    for per_turn, expected in zip(group_turn_advantages(successes, rewards, 3, 0.0), episode_advantages(rewards)):
        assert per_turn == pytest.approx([expected] * 3)


def test_each_turn_is_judged_against_the_same_turn_of_the_group():
    # two rollouts, equal episode reward 0.5: GRPO gives both 0, turn credit tells them apart
    successes = [[True, False], [False, True]]
    first, second = group_turn_advantages(successes, [0.5, 0.5], 2, turn_weight=1.0, scale=False)
    # g = [0.5, 0.0] and [0.5, 1.0]: turn 0 ties, turn 1 favours the rollout that passed it
    assert first == pytest.approx([0.0, -0.5]) and second == pytest.approx([0.0, 0.5])
    assert group_turn_advantages([[True, True]] * 3, [1.0] * 3, 2, 0.5) == [[0.0, 0.0]] * 3  # no spread: no signal


@pytest.mark.parametrize(("successes", "rewards", "flat_by_episode", "flat_by_turn"), [
    ([[True, False], [False, True]], [0.5, 0.5], True, False),  # equal rewards, different turns
    ([[True, False], [True]], [0.5, 0.5], True, True),  # an unreached turn fails
    ([[True, True], [True, False]], [1.0, 0.5], False, False),
])
def test_a_group_is_flat_when_all_its_advantages_are_zero(successes, rewards, flat_by_episode, flat_by_turn):
    """What zero_variance: resample replaces: under turn credit, equal rewards are not enough."""
    assert group_without_signal(successes, rewards, 2, by_turn=False) is flat_by_episode
    assert group_without_signal(successes, rewards, 2, by_turn=True) is flat_by_turn
    zero = all(value == 0 for row in group_turn_advantages(successes, rewards, 2, 0.5) for value in row)
    assert zero is flat_by_turn
    stage = {"name": "s", "split": "train", "reward": "progress", "max_steps": 1, "credit": "turn"}
    assert parse_config({"stages": [stage]}).stages[0].flat_by_turn
    assert not parse_config({"stages": [{**stage, "turn_weight": 0}]}).stages[0].flat_by_turn  # rewards alone then


def test_the_weight_must_be_a_share():
    with pytest.raises(ValueError, match="turn_weight must be between 0 and 1, got 1.5"):
        group_turn_advantages([[True]], [1.0], 1, 1.5)


def test_every_model_token_of_a_turn_gets_that_turns_advantage(tasks):
    """A real episode driven token by token: a wrong call, then the oracle, over all 4 turns."""
    tokenizer = load_model_and_tokenizer("tiny")[1]
    task = tasks["multi_turn_base_0"]
    episode = Episode(task, EpisodeConfig(feedback="augmented"))
    renderer = ChatRenderer(tokenizer)
    driver = TokenDriver(episode, renderer.encode(renderer.text(episode.reset(), add_generation_prompt=True)), tokenizer, 100_000)
    reply_tokens = [0] * task.num_turns  # per turn, the tokens of the replies played in it
    first = True
    while not episode.done:
        text = calls_reply(episode, ["cd(folder='nowhere')"]) if first else oracle_reply(episode)
        first = False
        ids = renderer.encode(text) + [tokenizer.eos_token_id]
        reply_tokens[episode.turn] += len(ids)
        answer = driver.add_reply(ids)
        if answer is not None:
            driver.add_environment(renderer.environment_delta(answer.before, answer.messages))
    rollout = driver.rollout()
    assert len(rollout.token_turns) == len(rollout.completion_ids)
    credited = token_advantages([10.0, 20.0, 30.0, 40.0], rollout.token_turns, len(rollout.completion_ids) + 5)
    model_tokens = [(turn, value) for turn, value, mask in zip(rollout.token_turns, credited, rollout.loss_mask) if mask]
    assert all(value == 10.0 * (turn + 1) for turn, value in model_tokens)
    # the model tokens come turn by turn, each turn exactly as long as the replies played in it
    assert [turn for turn, _ in model_tokens] == sorted(turn for turn, _ in model_tokens)
    assert [sum(1 for turn, _ in model_tokens if turn == index) for index in range(task.num_turns)] == reply_tokens
    assert credited[-5:] == [credited[len(rollout.completion_ids) - 1]] * 5  # padding: the last turn's


def constructed(task_id, successes, num_turns, reward, token_turns):
    from envtune.env.record import EpisodeRecord
    from envtune.rollout import Rollout

    record = EpisodeRecord(num_turns=num_turns, turn_successes=tuple(successes))
    return Rollout(task_id, [1], [5] * len(token_turns), [1] * len(token_turns), None, [], record, reward, (), tuple(token_turns))


def test_a_batch_is_credited_group_by_group_and_token_by_token():
    from envtune.curriculum.credit import batch_token_advantages

    batch = [  # two tasks, two rollouts each, laid out task by task as TRL does
        constructed("a", [True, False], 2, 0.5, [0, 0, 1]), constructed("a", [False, True], 2, 0.5, [0, 1, 1]),
        constructed("b", [True], 1, 1.0, [0, 0]), constructed("b", [False], 1, 0.0, [0]),
    ]
    rows = batch_token_advantages(batch, generations=2, turn_weight=1.0, scale=False, length=4)
    assert rows[0] == pytest.approx([0.0, 0.0, -0.5, -0.5]) and rows[1] == pytest.approx([0.0, 0.5, 0.5, 0.5])
    assert rows[2] == pytest.approx([0.5] * 4) and rows[3] == pytest.approx([-0.5] * 4)


def one_step(tmp_path, turn_weight, budget):
    """One GRPO step on 2 base tasks x 2 rollouts: even rollouts play the oracle, odd ones the random
    model. Returns the weights after it, the rollouts and the advantages the loss got."""
    from test_grpo import HalfOracle, grpo_args, snapshot

    from envtune.bfcl.tasks import task_index
    from envtune.rollout import SamplingParams
    from envtune.train.grpo import EpisodeRollouts, make_trainer

    model, tokenizer = load_model_and_tokenizer("tiny")
    reference, logged, advantages = [], [], []
    rollouts = EpisodeRollouts(
        task_index(), tokenizer, EpisodeConfig(max_steps_per_turn=1, reward="progress"),
        SamplingParams(max_new_tokens=8, seed=0), max_completion_tokens=budget, on_rollouts=logged.append,
        backend_factory=lambda model, tokenizer, size: HalfOracle(model, tokenizer, size, reference),
    )
    reference.append(rollouts)
    trainer = make_trainer(model, tokenizer, ["multi_turn_base_1", "multi_turn_base_2"], rollouts,
                           grpo_args(tmp_path / f"{turn_weight}-{budget}", max_completion_length=budget), turn_weight=turn_weight)
    scored = trainer._generate_and_score_completions
    trainer._generate_and_score_completions = lambda inputs: advantages.append(scored(inputs)) or advantages[-1]
    trainer.train()
    return snapshot(model), logged[0], advantages[0]["advantages"]


def test_turn_credit_trains_as_grpo_when_every_turn_has_its_episodes_outcome(tmp_path):
    episode_weights, rollouts, episode_advantage = one_step(tmp_path, None, budget=3000)
    premise = [(set(rollout.record.turn_successes), len(rollout.record.turn_successes) == rollout.record.num_turns,
                rollout.reward) for rollout in rollouts]
    assert premise == [({True}, True, 1.0), ({False}, True, 0.0)] * 2  # every turn played, with its episode's outcome
    turn_weights, _, turn_advantage = one_step(tmp_path, 0.7, budget=3000)
    assert turn_advantage.dim() == 2 and episode_advantage.dim() == 1
    assert torch.allclose(turn_advantage, episode_advantage.unsqueeze(1).expand_as(turn_advantage), atol=1e-5)
    assert all(torch.allclose(turn_weights[name], episode_weights[name], atol=1e-6) for name in episode_weights)


def test_the_loss_gets_each_tokens_turn_advantage(tmp_path):
    """A budget that cuts the oracle off after its first turns: its later turns fail, so its tokens'
    advantages differ from turn to turn, exactly as the estimator says."""
    from envtune.curriculum.credit import batch_token_advantages

    _, rollouts, advantage = one_step(tmp_path, 1.0, budget=400)
    assert 0 < sum(rollouts[0].record.turn_successes) < rollouts[0].record.num_turns  # the oracle passed some turns, not all
    expected = batch_token_advantages(rollouts, 2, 1.0, scale=True, length=advantage.shape[1])
    assert torch.allclose(advantage, torch.tensor(expected), atol=1e-6)
    first = [value for value, mask in zip(advantage[0].tolist(), rollouts[0].loss_mask) if mask]
    assert len(set(round(value, 6) for value in first)) > 1  # one rollout, several advantages
