"""The turn-level advantage estimator (`envtune.train.credit`): its formula, its edge cases, and the
turn each completion token is credited to."""

import pytest
import torch

from envtune.env import Episode, EpisodeConfig
from envtune.env.oracle import calls_reply, oracle_reply
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer, TokenDriver
from envtune.train.credit import group_turn_advantages, token_advantages, turn_progress


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
