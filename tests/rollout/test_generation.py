"""HFBackend samples with the stage's settings only, stops at every end token of the model and leaves the
trainer's random state alone."""

import pytest
import torch

from envtune.models import load_model_and_tokenizer
from envtune.rollout import GenerationRequest, HFBackend, SamplingParams

PROMPTS = [[1, 40, 41, 42, 43], [1, 50, 51]]


@pytest.fixture
def tiny():
    return load_model_and_tokenizer("tiny")


def generate(backend, **sampling):
    requests = [GenerationRequest(prompt, index) for index, prompt in enumerate(PROMPTS)]
    return backend.generate(requests, SamplingParams(max_new_tokens=24, **sampling))


@pytest.mark.parametrize("sampling", [{"do_sample": False}, {"seed": 3, "temperature": 0.2}],
                         ids=["greedy", "sampled"])
def test_the_models_own_generation_settings_change_nothing(tiny, sampling):
    model, tokenizer = tiny
    plain = generate(HFBackend(model, tokenizer), **sampling)
    # what an instruct model ships in its generation_config.json
    model.generation_config.update(repetition_penalty=3.0, no_repeat_ngram_size=1, top_k=2, min_p=0.3)
    assert generate(HFBackend(model, tokenizer), **sampling) == plain


def test_generation_stops_at_every_end_token_of_the_model(tiny):
    model, tokenizer = tiny
    unstopped = generate(HFBackend(model, tokenizer), do_sample=False)[0]
    stop = next(token for token in unstopped[2:] if token != tokenizer.eos_token_id)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, stop]
    backend = HFBackend(model, tokenizer)
    assert backend.end_token_ids == (tokenizer.eos_token_id, stop)  # the tokenizer's (the template's) first
    assert generate(backend, do_sample=False)[0] == unstopped[: unstopped.index(stop) + 1]


def test_seeded_sampling_leaves_the_trainers_random_state_alone(tiny):
    backend = HFBackend(*tiny)
    torch.manual_seed(11)
    state = torch.get_rng_state()
    first = generate(backend, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert generate(backend, seed=5) == first and generate(backend, seed=6) != first
