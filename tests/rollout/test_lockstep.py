"""Token-in/token-out rollouts: every prefix is the chat template's rendering, masks mark the model."""

import pytest

from envtune.bfcl.splits import split_tasks
from envtune.env import Episode, EpisodeConfig
from envtune.env.oracle import oracle_reply
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer, HFBackend, RolloutEngine, SamplingParams


@pytest.fixture(scope="module")
def tiny():
    return load_model_and_tokenizer("tiny")


class OracleBackend:
    """Answers each episode with the ground-truth oracle's reply, tokenized canonically."""

    def __init__(self, tokenizer, episodes, cut_after: int | None = None, end_token: int | None = None):
        self.renderer = ChatRenderer(tokenizer)
        self.eos_token_id = tokenizer.eos_token_id if end_token is None else end_token  # what ends its replies
        self.end_token_ids = tuple(dict.fromkeys([tokenizer.eos_token_id, self.eos_token_id]))
        self.episodes = episodes
        self.cut_after = cut_after
        self.replies: dict[int, list[list[int]]] = {}

    def generate(self, requests, sampling):
        completions = []
        for request in requests:
            ids = self.renderer.encode(oracle_reply(self.episodes[request.episode_index])) + [self.eos_token_id]
            if self.cut_after is not None:
                ids = ids[: self.cut_after]
            self.replies.setdefault(request.episode_index, []).append(ids)
            completions.append(ids)
        return completions


def episodes_for(split="format", count=6, **config):
    return [Episode(task, EpisodeConfig(**config)) for task in split_tasks(split)[:count]]


@pytest.mark.parametrize("protocol", ["envtune", "prompt"])
def test_every_sequence_is_the_template_rendering_of_its_messages(tiny, protocol):
    _, tokenizer = tiny
    episodes = episodes_for(protocol=protocol)
    backend = OracleBackend(tokenizer, episodes)
    rollouts = RolloutEngine(backend, tokenizer, max_completion_tokens=100_000).run(episodes)
    renderer = ChatRenderer(tokenizer)
    for index, rollout in enumerate(rollouts):
        assert not rollout.truncated
        rendered = renderer.encode(renderer.text(rollout.messages, add_generation_prompt=False))
        tail = renderer.encode(renderer.text(rollout.messages, add_generation_prompt=False).rsplit(renderer.eos_text, 1)[1])
        assert rollout.prompt_ids + rollout.completion_ids + tail == rendered
        # every assistant header closes a prefix that renders the same way
        for cut, message in enumerate(rollout.messages):
            if message["role"] == "assistant":
                prefix = renderer.encode(renderer.text(rollout.messages[:cut], add_generation_prompt=True))
                assert (rollout.prompt_ids + rollout.completion_ids)[: len(prefix)] == prefix
        model_tokens = [token for token, mask in zip(rollout.completion_ids, rollout.loss_mask) if mask]
        assert model_tokens == [token for reply in backend.replies[index] for token in reply]


def test_oracle_rollouts_reach_full_progress(tiny):
    _, tokenizer = tiny
    episodes = episodes_for(count=4, feedback="augmented")
    rollouts = RolloutEngine(OracleBackend(tokenizer, episodes), tokenizer, max_completion_tokens=100_000).run(episodes)
    assert [rollout.reward for rollout in rollouts] == [1.0] * 4


def test_replies_may_end_with_any_end_token_of_the_backend(tiny):
    _, tokenizer = tiny
    other = tokenizer.pad_token_id
    episodes = episodes_for(count=2, feedback="augmented")
    rollouts = RolloutEngine(OracleBackend(tokenizer, episodes, end_token=other), tokenizer, max_completion_tokens=100_000).run(episodes)
    assert [rollout.reward for rollout in rollouts] == [1.0, 1.0]
    for rollout in rollouts:
        ends = [index for index, token in enumerate(rollout.completion_ids) if token == other]
        assert len(ends) == rollout.record.responses  # each closed by the template's end token, without loss
        assert all(rollout.completion_ids[end + 1] == tokenizer.eos_token_id and rollout.loss_mask[end:end + 2] == [1, 0]
                   for end in ends)


def test_the_completion_budget_truncates_cleanly(tiny):
    _, tokenizer = tiny
    episodes = episodes_for(count=3)
    rollouts = RolloutEngine(OracleBackend(tokenizer, episodes), tokenizer, max_completion_tokens=150).run(episodes)
    for rollout, episode in zip(rollouts, episodes):
        assert rollout.truncated and len(rollout.completion_ids) == 150 == len(rollout.loss_mask)
        assert 0.0 <= rollout.reward < 1.0
        assert list(rollout.record.turn_successes) == episode.turn_successes  # scored on the turns reached


def test_a_reply_cut_by_max_new_tokens_is_closed_by_the_environment(tiny):
    _, tokenizer = tiny
    episodes = episodes_for(count=2, max_steps_per_turn=2)
    backend = OracleBackend(tokenizer, episodes, cut_after=5)
    rollouts = RolloutEngine(backend, tokenizer, max_completion_tokens=2_000).run(episodes)
    for rollout in rollouts:
        first_cut = rollout.completion_ids[:6]
        assert rollout.loss_mask[:6] == [1] * 5 + [0] and first_cut[5] == tokenizer.eos_token_id
        assert rollout.record.format_violations >= 1


def test_the_tiny_model_generates_batched_rollouts(tiny):
    model, tokenizer = tiny
    episodes = episodes_for(count=3, max_steps_per_turn=1)
    engine = RolloutEngine(HFBackend(model, tokenizer, batch_size=3), tokenizer,
                           SamplingParams(max_new_tokens=16, seed=0), max_completion_tokens=120)
    rollouts = engine.run(episodes)
    for rollout in rollouts:
        assert len(rollout.completion_ids) == len(rollout.loss_mask) <= 120
        assert rollout.model_tokens > 0 and rollout.messages[0]["role"] == "system"
