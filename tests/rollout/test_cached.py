"""The cached backend: each round runs only its new tokens, a group's prompt is prefilled once, and the
tokens are the ones the plain backend generates from the whole sequence."""

import pytest
import torch

from envtune.bfcl.splits import split_tasks
from envtune.env import Episode, EpisodeConfig
from envtune.errors import EnvtuneError
from envtune.models import load_model_and_tokenizer
from envtune.rollout import GenerationRequest, HFBackend, RolloutEngine, SamplingParams
from envtune.rollout.cached import CachedHFBackend, hf_backend

GREEDY = SamplingParams(max_new_tokens=6, do_sample=False)


@pytest.fixture(scope="module")
def tiny():
    return load_model_and_tokenizer("tiny")


class TokenCounter:
    """Counts the tokens the model runs (query positions, padding and holes included)."""

    def __init__(self, model):
        self.tokens = 0
        self.handle = model.register_forward_pre_hook(self.count, with_kwargs=True)

    def count(self, module, args, kwargs):
        self.tokens += kwargs["input_ids"].numel()

    def take(self) -> int:
        tokens, self.tokens = self.tokens, 0
        return tokens


def requests(*prompts, cap=None):
    return [GenerationRequest(prompt, index, cap) for index, prompt in enumerate(prompts)]


def test_rounds_run_only_new_tokens_and_match_the_plain_backend(tiny):
    model, tokenizer = tiny
    cached, plain = CachedHFBackend(model, tokenizer), HFBackend(model, tokenizer, batch_size=1)
    counter = TokenCounter(model)
    try:
        shared = list(range(100, 160))
        group, other = shared + [7, 8, 9], shared + [11, 12]
        first = requests(group, group, other, cap=1)  # a group of two rollouts, and a prompt sharing 60 tokens
        replies = cached.generate(first, GREEDY)
        # one prefill per distinct prompt, the second from the 60 tokens it shares with the first
        assert counter.take() == len(group) + (len(other) - len(shared))
        assert replies == plain.generate(first, GREEDY)
        counter.take()

        # the next round: each sequence grows by its reply and an environment message of its own length
        second = [GenerationRequest(request.prompt_ids + reply + answer, request.episode_index, 4)
                  for request, reply, answer in zip(first, replies, ([20, 21], [22, 23, 24, 25], [26]))]
        replies = cached.generate(second, GREEDY)
        widest_new = 1 + 4  # the last reply token, which was not run, and the longest message
        decode_steps = 4 - 1  # the last token of a reply is not run either
        assert counter.take() == 3 * widest_new + 3 * decode_steps
        assert replies == plain.generate(second, GREEDY)
    finally:
        counter.handle.remove()


def test_episodes_that_stop_asking_are_dropped_and_release_frees_all(tiny):
    model, tokenizer = tiny
    cached = CachedHFBackend(model, tokenizer, batch_size=2)  # three episodes: two cohorts
    first = requests([1, 30, 31], [1, 40], [1, 50, 51, 52], cap=2)
    replies = cached.generate(first, GREEDY)
    assert cached.live_episodes == 3
    still = [GenerationRequest(first[1].prompt_ids + replies[1] + [5], 1, 2)]
    assert cached.generate(still, GREEDY) == HFBackend(model, tokenizer).generate(still, GREEDY)
    assert cached.live_episodes == 1
    cached.release()
    assert cached.live_episodes == 0


def test_a_request_that_does_not_extend_its_episode_starts_over(tiny):
    model, tokenizer = tiny
    cached, plain = CachedHFBackend(model, tokenizer), HFBackend(model, tokenizer)
    cached.generate(requests([1, 30, 31, 32], cap=3), GREEDY)
    rewritten = requests([1, 30, 99, 98, 97], cap=3)  # the same episode index, a different history
    assert cached.generate(rewritten, GREEDY) == plain.generate(rewritten, GREEDY)
    assert cached.live_episodes == 1


def test_greedy_episodes_give_the_tokens_of_todays_engine(tiny):
    model, tokenizer = tiny
    tasks = split_tasks("format")[:3]

    def play(backend):
        episodes = [Episode(task, EpisodeConfig()) for task in tasks for _ in range(2)]  # groups of two
        rollouts = RolloutEngine(backend, tokenizer, SamplingParams(max_new_tokens=12, do_sample=False), 120).run(episodes)
        for episode in episodes:
            episode.close()
        return rollouts

    cached = CachedHFBackend(model, tokenizer)
    new, old = play(cached), play(HFBackend(model, tokenizer, batch_size=1))
    assert [rollout.completion_ids for rollout in new] == [rollout.completion_ids for rollout in old]
    assert [rollout.loss_mask for rollout in new] == [rollout.loss_mask for rollout in old]
    assert sum(map(sum, (rollout.loss_mask for rollout in new))) > 3 * 2 * 12  # several rounds were played
    assert cached.live_episodes == 0  # the engine released the caches


def test_sampling_follows_the_call_settings_only(tiny):
    model, tokenizer = tiny
    cached = CachedHFBackend(model, tokenizer)
    prompts = requests([1, 40, 41, 42], [1, 50, 51], cap=16)

    def sample(**settings):
        cached.release()
        return cached.generate(prompts, SamplingParams(max_new_tokens=16, **settings))

    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    seeded = sample(seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the trainer's random state is left alone
    assert sample(seed=3) == seeded and sample(seed=4) != seeded
    greedy = sample(do_sample=False)
    assert sample(seed=5, top_k=1) == greedy  # transformers' top-k warper applies
    model.generation_config.update(repetition_penalty=3.0, no_repeat_ngram_size=1, top_k=2, min_p=0.3)
    try:
        assert sample(do_sample=False) == greedy  # the model's own generation settings change nothing
    finally:
        model.generation_config.update(repetition_penalty=None, no_repeat_ngram_size=None, top_k=None, min_p=None)


def test_models_with_sliding_window_layers_get_the_plain_backend(tiny):
    _, tokenizer = tiny
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, use_sliding_window=True, sliding_window=16,
                         max_window_layers=0, layer_types=["sliding_attention", "full_attention"])
    model = Qwen2ForCausalLM(config)
    with pytest.raises(EnvtuneError, match="sliding window"):
        CachedHFBackend(model, tokenizer)
    assert isinstance(hf_backend(model, tokenizer), HFBackend)
    assert isinstance(hf_backend(*tiny), CachedHFBackend)
