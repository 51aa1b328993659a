"""The episode driver's rules at the budget's edges: caps, cut replies, log-probs, junction edits."""

import pytest

from envtune.env import Episode, EpisodeConfig
from envtune.env.oracle import oracle_reply
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatDriver, ChatRenderer, TokenDriver


@pytest.fixture(scope="module")
def tokenizer():
    return load_model_and_tokenizer("tiny")[1]


def driver_for(tasks, tokenizer, budget, task_id="multi_turn_base_0", end_token_ids=(), **config):
    episode = Episode(tasks[task_id], EpisodeConfig(**config))
    renderer = ChatRenderer(tokenizer)
    prompt = renderer.encode(renderer.text(episode.reset(), add_generation_prompt=True))
    return TokenDriver(episode, prompt, tokenizer, budget, end_token_ids), renderer


def oracle_ids(driver, renderer, tokenizer):
    return renderer.encode(oracle_reply(driver.episode)) + [tokenizer.eos_token_id]


def test_each_reply_is_capped_by_what_is_left_of_the_budget(tasks, tokenizer):
    driver, renderer = driver_for(tasks, tokenizer, budget=40)
    assert driver.reply_limit(1024) == 40 and driver.reply_limit(16) == 16
    ids = oracle_ids(driver, renderer, tokenizer)[:30]  # a reply cut by its cap, then closed
    answer = driver.add_reply(ids)
    assert answer is not None and driver.episode.format_violations == 1  # played: a malformed reply
    rollout = driver.rollout()
    assert rollout.loss_mask == [1] * 30 + [0] and rollout.completion_ids[30] == tokenizer.eos_token_id
    assert driver.reply_limit(1024) == 40 - 31


def test_a_reply_ended_by_another_end_token_is_played_and_closed_without_loss(tasks, tokenizer):
    other = tokenizer.pad_token_id  # <|endoftext|>, which instruct models declare as an end token too
    driver, renderer = driver_for(tasks, tokenizer, budget=10_000, end_token_ids=[tokenizer.eos_token_id, other])
    text = oracle_reply(driver.episode)
    reply = renderer.encode(text) + [other]
    answer = driver.add_reply(reply)
    assert answer is not None and answer.before[-1]["content"] == text and driver.episode.format_violations == 0
    rollout = driver.rollout()  # the model's tokens as generated, then the template's end token, as after a cut
    assert rollout.completion_ids == reply + [tokenizer.eos_token_id] and rollout.loss_mask == [1] * len(reply) + [0]


def test_a_reply_that_does_not_fit_is_cut_and_not_played(tasks, tokenizer):
    driver, renderer = driver_for(tasks, tokenizer, budget=10)
    assert driver.add_reply(oracle_ids(driver, renderer, tokenizer)) is None
    rollout = driver.rollout()
    assert driver.done and rollout.truncated and len(rollout.completion_ids) == 10 == sum(rollout.loss_mask)
    assert rollout.record.responses == 0 and rollout.record.truncated and rollout.reward == 0.0
    assert driver.reply_limit(1024) == 0  # nothing left: no further request


def test_environment_tokens_that_do_not_fit_are_cut_at_the_budget(tasks, tokenizer):
    driver, renderer = driver_for(tasks, tokenizer, budget=10_000)
    reply = oracle_ids(driver, renderer, tokenizer)
    answer = driver.add_reply(reply)
    environment = renderer.environment_delta(answer.before, answer.messages)
    driver.budget = len(reply) + len(environment) - 3
    driver.add_environment(environment)
    rollout = driver.rollout()
    assert driver.done and rollout.truncated
    assert rollout.completion_ids == reply + environment[:-3] and rollout.loss_mask == [1] * len(reply) + [0] * (len(environment) - 3)


def test_the_models_context_caps_each_reply_and_the_whole_sequence(tasks, tokenizer):
    """A budget larger than what the context leaves after the prompt: replies get only the rest of
    the context, environment tokens are cut at it, and the episode ends truncated there."""
    driver, renderer = driver_for(tasks, tokenizer, budget=10_000)
    reply = oracle_ids(driver, renderer, tokenizer)
    context = len(driver.prompt_ids) + len(reply) + 5  # room for the first reply, not for the answer to it
    capped = TokenDriver(driver.episode, driver.prompt_ids, tokenizer, 10_000, context_tokens=context)
    assert capped.reply_limit(1024) == len(reply) + 5
    answer = capped.add_reply(reply)
    assert answer is not None and capped.reply_limit(1024) == 5
    capped.add_environment(renderer.environment_delta(answer.before, answer.messages))
    assert len(capped.token_ids) == context and capped.reply_limit(1024) == 0
    assert capped.done and capped.rollout().truncated


def test_log_probs_follow_the_mask_and_vanish_when_a_reply_has_none(tasks, tokenizer):
    driver, renderer = driver_for(tasks, tokenizer, budget=10_000, task_id="multi_turn_base_1")
    reply = oracle_ids(driver, renderer, tokenizer)
    answer = driver.add_reply(reply, logprobs=[-0.5] * len(reply))
    driver.add_environment(renderer.environment_delta(answer.before, answer.messages))
    rollout = driver.rollout()
    assert rollout.logprobs == [-0.5 if keep else 0.0 for keep in rollout.loss_mask]
    driver.add_reply(oracle_ids(driver, renderer, tokenizer))  # a generator that reports none
    assert driver.rollout().logprobs is None


def test_a_template_edit_at_the_junction_replaces_trailing_tokens(tasks, tokenizer):
    driver, renderer = driver_for(tasks, tokenizer, budget=10_000)
    reply = oracle_ids(driver, renderer, tokenizer)
    driver.add_reply(reply, logprobs=[-1.0] * len(reply))
    driver.add_environment([7, 8, 9], replaced=1)  # the end token rewritten by the environment's tokens
    rollout = driver.rollout()
    assert rollout.completion_ids == reply[:-1] + [7, 8, 9] and rollout.loss_mask == [1] * (len(reply) - 1) + [0] * 3
    assert rollout.logprobs == [-1.0] * (len(reply) - 1) + [0.0] * 3


def test_native_replies_need_an_endpoint(tasks, tokenizer):
    episode = Episode(tasks["multi_turn_base_0"], EpisodeConfig(protocol="native"))
    with pytest.raises(ValueError, match="native"):
        TokenDriver(episode, [1, 2], tokenizer, 100)


def test_the_chat_driver_counts_what_the_endpoint_reports(tasks):
    driver = ChatDriver(Episode(tasks["multi_turn_base_0"], EpisodeConfig()))
    driver.count_tokens(prompt_tokens=500, completion_tokens=20)
    driver.count_tokens(prompt_tokens=700, completion_tokens=30)
    step = driver.reply({"role": "assistant", "content": oracle_reply(driver.episode)})
    assert driver.messages[-len(step.messages):] == step.messages and driver.messages[-len(step.messages) - 1]["role"] == "assistant"
    record = driver.record()
    assert (record.model_tokens, record.total_tokens, record.responses, record.truncated) == (50, 730, 1, False)


@pytest.mark.parametrize("task_id", ["multi_turn_base_0", "multi_turn_miss_func_0"])
def test_turn_starts_point_at_each_turns_request(tasks, task_id):
    task = tasks[task_id]
    driver = ChatDriver(Episode(task, EpisodeConfig()))
    while not driver.done:
        driver.reply({"role": "assistant", "content": oracle_reply(driver.episode)})
    assert len(driver.turn_starts) == task.num_turns
    for turn, start in enumerate(driver.turn_starts):
        assert driver.messages[start]["role"] == "user" and driver.messages[start - 1]["role"] in ("system", "assistant")
        if task.turns[turn]:  # a held-out tool's turn shows the new tools instead of a request
            assert driver.messages[start]["content"].endswith(task.turns[turn][0]["content"])
