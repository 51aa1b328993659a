"""vLLM rollouts through their contract, on CPU: stand-ins for `vllm.LLM` and TRL's `VLLMClient` answer
greedily from the tiny model in vLLM's output shapes, and a stand-in trainer carries TRL's vLLM engine."""

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

from envtune.bfcl.splits import split_tasks
from envtune.bfcl.tasks import task_index
from envtune.cli import main
from envtune.curriculum.config import ConfigError, parse_config, override_vllm
from envtune.env import Episode, EpisodeConfig
from envtune.errors import EnvtuneError
from envtune.models import load_model_and_tokenizer, resolve_placement
from envtune.rollout import GenerationRequest, HFBackend, RolloutEngine, SamplingParams, VLLMBackend
from envtune.rollout.cached import CachedHFBackend
from envtune.rollout.generation import Completion, end_token_ids
from envtune.train.grpo import EpisodeRollouts, rollout_backend


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = load_model_and_tokenizer("tiny")
    return model.eval(), tokenizer


def greedy(model, prompt_ids, max_tokens, stop_token_ids):
    """What vLLM answers at temperature 0: the argmax token each step, up to max_tokens, stopping at (and
    keeping) a stop token, with each token's log-prob."""
    tokens, logprobs, past, ids = [], [], None, torch.tensor([list(prompt_ids)])
    with torch.no_grad():
        while len(tokens) < max_tokens:
            out = model(input_ids=ids, past_key_values=past, use_cache=True)
            past = out.past_key_values
            scores = out.logits[0, -1].float().log_softmax(-1)
            token = int(scores.argmax())
            tokens.append(token)
            logprobs.append(float(scores[token]))
            if token in stop_token_ids:
                break
            ids = torch.tensor([[token]])
    return tokens, logprobs


class StandInSamplingParams:
    """vllm.SamplingParams: keeps what it is given."""

    def __init__(self, **settings):
        self.__dict__.update(settings)


class StandInLLM:
    """vllm.LLM.generate from the tiny model, greedy, answering with RequestOutput-like objects."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.calls.append((prompts, sampling_params))
        outputs = []
        for prompt, params in zip(prompts, sampling_params):
            tokens, logprobs = greedy(self.model, prompt["prompt_token_ids"], params.max_tokens, params.stop_token_ids)
            ranked = [{token: SimpleNamespace(logprob=logprob, rank=1)} for token, logprob in zip(tokens, logprobs)]
            outputs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=tuple(tokens), logprobs=ranked)]))
        return outputs


class StandInClient:
    """TRL's VLLMClient.generate from the tiny model, greedy: one max_tokens per call."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def generate(self, prompts, n=1, temperature=1.0, top_p=1.0, top_k=0, max_tokens=16, logprobs=0,
                 generation_kwargs=None, **rest):
        self.calls.append({"prompts": prompts, "n": n, "temperature": temperature, "max_tokens": max_tokens,
                           "logprobs": logprobs, "generation_kwargs": generation_kwargs, **rest})
        answers = [greedy(self.model, prompt, max_tokens, generation_kwargs["stop_token_ids"]) for prompt in prompts]
        return {"prompt_ids": prompts, "completion_ids": [tokens for tokens, _ in answers],
                "logprobs": [[[logprob] for logprob in logprobs] for _, logprobs in answers]}


@pytest.fixture
def vllm_module(monkeypatch):
    module = ModuleType("vllm")
    module.SamplingParams = StandInSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)


def prompts_of(tokenizer, count=3):
    return [tokenizer(text)["input_ids"] for text in ("Hello there", "List the files", "cd into docs")[:count]]


def model_ends(model, tokenizer):
    return end_token_ids(model.generation_config, tokenizer)


# ----- the backend ----------------------------------------------------------------------------------
def test_colocated_requests_go_as_token_ids_with_their_caps_the_models_end_tokens_and_greedy(tiny, vllm_module):
    model, tokenizer = tiny
    llm = StandInLLM(model)
    backend = VLLMBackend(model_ends(model, tokenizer), llm=llm)
    prompts = prompts_of(tokenizer)
    requests = [GenerationRequest(prompts[0], 0, 3), GenerationRequest(prompts[1], 1), GenerationRequest(prompts[2], 2, 1)]
    completions = backend.generate(requests, SamplingParams(max_new_tokens=5, do_sample=False))
    (sent, params), = llm.calls
    assert sent == [{"prompt_token_ids": prompt} for prompt in prompts]
    assert [settings.max_tokens for settings in params] == [3, 5, 1]
    for settings in params:
        assert settings.stop_token_ids == list(model_ends(model, tokenizer))
        assert settings.temperature == 0.0 and settings.logprobs == 0 and settings.detokenize is False
        assert not hasattr(settings, "seed")
    for completion, prompt, cap in zip(completions, prompts, [3, 5, 1]):
        tokens, logprobs = greedy(model, prompt, cap, model_ends(model, tokenizer))
        assert isinstance(completion, Completion) and list(completion) == tokens
        assert completion.logprobs == pytest.approx(logprobs) and all(value < 0 for value in completion.logprobs)


def test_sampling_settings_and_one_seed_per_request(tiny, vllm_module):
    model, tokenizer = tiny
    llm = StandInLLM(model)
    prompt = prompts_of(tokenizer, 1)[0]
    VLLMBackend(model_ends(model, tokenizer), llm=llm).generate(
        [GenerationRequest(prompt, 0), GenerationRequest(prompt, 1)],  # a GRPO group's identical prompts
        SamplingParams(max_new_tokens=2, temperature=0.7, top_p=0.9, top_k=5, seed=11),
    )
    params = llm.calls[0][1]
    assert [settings.seed for settings in params] == [11, 12]
    assert all((settings.temperature, settings.top_p, settings.top_k) == (0.7, 0.9, 5) for settings in params)


def test_a_reply_stops_at_any_end_token_and_keeps_it(tiny, vllm_module):
    model, tokenizer = tiny
    prompt = prompts_of(tokenizer, 1)[0]
    unstopped, _ = greedy(model, prompt, 6, ())
    other_end = unstopped[2]  # make the third greedy token one of the model's end tokens
    backend = VLLMBackend((tokenizer.eos_token_id, other_end), llm=StandInLLM(model))
    completion = backend.generate([GenerationRequest(prompt, 0)], SamplingParams(max_new_tokens=6, do_sample=False))[0]
    assert list(completion) == unstopped[: unstopped.index(other_end) + 1] and completion[-1] == other_end


def test_the_server_gets_one_call_per_cap_and_the_answers_keep_the_requests_order(tiny):
    model, tokenizer = tiny
    client = StandInClient(model)
    ends = model_ends(model, tokenizer)
    prompts = prompts_of(tokenizer) + [prompts_of(tokenizer)[0]]
    caps = [4, 2, None, 4]
    completions = VLLMBackend(ends, client=client).generate(
        [GenerationRequest(prompt, index, cap) for index, (prompt, cap) in enumerate(zip(prompts, caps))],
        SamplingParams(max_new_tokens=3, do_sample=False, seed=5),
    )
    assert sorted(call["max_tokens"] for call in client.calls) == [2, 3, 4]
    four = next(call for call in client.calls if call["max_tokens"] == 4)
    assert four["prompts"] == [prompts[0], prompts[3]]  # token ids, never text
    for call in client.calls:
        assert call["generation_kwargs"] == {"stop_token_ids": list(ends)}  # and no seed: a group would repeat itself
        assert call["temperature"] == 0.0 and call["logprobs"] == 0 and call["n"] == 1
    for completion, prompt, cap in zip(completions, prompts, [4, 2, 3, 4]):
        tokens, logprobs = greedy(model, prompt, cap, ends)
        assert list(completion) == tokens and completion.logprobs == pytest.approx(logprobs)


def test_a_log_prob_the_server_could_not_compute_stays_not_a_number():
    class Unscored:
        def generate(self, prompts, **settings):
            return {"completion_ids": [[7, 2]], "logprobs": [[[None], [-0.5]]]}

    completion = VLLMBackend((2,), client=Unscored()).generate([GenerationRequest([1], 0)], SamplingParams())[0]
    assert math.isnan(completion.logprobs[0]) and completion.logprobs[1] == -0.5


def test_a_backend_needs_exactly_one_engine_and_the_end_tokens():
    with pytest.raises(EnvtuneError, match="exactly one engine"):
        VLLMBackend((2,))
    with pytest.raises(EnvtuneError, match="exactly one engine"):
        VLLMBackend((2,), llm=object(), client=object())
    with pytest.raises(EnvtuneError, match="end token ids"):
        VLLMBackend((), llm=object())


def test_episodes_through_vllm_play_as_through_transformers_with_log_probs(tiny, vllm_module):
    model, tokenizer = tiny
    sampling = SamplingParams(max_new_tokens=8, do_sample=False)

    def play(backend):
        episodes = [Episode(task, EpisodeConfig(max_steps_per_turn=2)) for task in split_tasks("format")[:3]]
        return RolloutEngine(backend, tokenizer, sampling, max_completion_tokens=60).run(episodes)

    through_vllm = play(VLLMBackend(model_ends(model, tokenizer), llm=StandInLLM(model)))
    through_hf = play(HFBackend(model, tokenizer, batch_size=1))
    assert [rollout.completion_ids for rollout in through_vllm] == [rollout.completion_ids for rollout in through_hf]
    assert all(rollout.logprobs is None for rollout in through_hf)
    for rollout in through_vllm:
        assert len(rollout.logprobs) == len(rollout.completion_ids) and 0 in rollout.loss_mask
        assert all(value == 0.0 for value, mask in zip(rollout.logprobs, rollout.loss_mask) if not mask)
        assert all(value < 0 for value, mask in zip(rollout.logprobs, rollout.loss_mask) if mask)


# ----- the trainer's backend ------------------------------------------------------------------------
class StandInGeneration:
    """TRL's VLLMGeneration: the engine of its mode, and weight syncs counted."""

    def __init__(self, mode, model):
        self.mode, self.syncs = mode, 0
        self.llm, self.vllm_client = StandInLLM(model), StandInClient(model)

    def sync_weights(self):
        self.syncs += 1


def trainer_with(model, mode=None, step=0):
    """A GRPOTrainer as rollouts and validation read it; `mode` None: without vLLM."""
    trainer = SimpleNamespace(model=model, use_vllm=mode is not None, state=SimpleNamespace(global_step=step),
                              args=SimpleNamespace(gradient_accumulation_steps=1))
    if mode is not None:
        trainer.vllm_generation, trainer._last_loaded_step = StandInGeneration(mode, model), -1  # as TRL starts
    return trainer


def test_the_trainer_picks_vllm_when_it_uses_it_and_syncs_stale_weights_once_per_step(tiny):
    model, tokenizer = tiny
    assert isinstance(rollout_backend(trainer_with(model), tokenizer, 4), CachedHFBackend)  # transformers, caching
    served = trainer_with(model, "server")
    backend = rollout_backend(served, tokenizer, 4)
    assert backend.client is served.vllm_generation.vllm_client and backend.llm is None
    colocated = trainer_with(model, "colocate")
    backend = rollout_backend(colocated, tokenizer, 4)
    assert backend.llm is colocated.vllm_generation.llm and backend.end_token_ids == model_ends(model, tokenizer)
    generation = colocated.vllm_generation
    assert generation.syncs == 1 and colocated._last_loaded_step == 0  # TRL sees step 0 loaded and skips its sync
    rollout_backend(colocated, tokenizer, 4)
    assert generation.syncs == 1
    colocated.state.global_step = 1  # after an optimizer step the weights are stale again
    rollout_backend(colocated, tokenizer, 4)
    rollout_backend(colocated, tokenizer, 4)
    assert generation.syncs == 2 and colocated._last_loaded_step == 1


@pytest.mark.parametrize("mode", ["colocate", "server"])
def test_episode_rollouts_return_the_samplers_log_probs_aligned_with_the_completions(tiny, vllm_module, mode):
    model, tokenizer = tiny
    rollouts = EpisodeRollouts(task_index(), tokenizer, EpisodeConfig(max_steps_per_turn=2),
                               SamplingParams(max_new_tokens=8, seed=3), max_completion_tokens=60)
    prompts = [task.id for task in split_tasks("format")[:2]]
    output = rollouts(prompts, trainer_with(model, mode))
    assert len(output["logprobs"]) == len(prompts)
    for logprobs, completion, mask in zip(output["logprobs"], output["completion_ids"], output["env_mask"]):
        assert len(logprobs) == len(completion) == len(mask) and 0 in mask
        assert all(value == 0.0 for value, masked in zip(logprobs, mask) if not masked)
        assert all(value < 0 for value, masked in zip(logprobs, mask) if masked)
    assert rollouts(prompts, trainer_with(model))["logprobs"] is None  # transformers reports none


def test_validation_generates_through_vllm_with_this_steps_weights(tiny, tmp_path, monkeypatch):
    from envtune.curriculum.run import CurriculumRun
    from envtune.train import engine

    model, tokenizer = tiny
    config = parse_config({"name": "t", "stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 9}]})
    run = CurriculumRun(config, "tiny", tmp_path, None, engine.TrlEngine(resolve_placement("cpu")))
    trainer = trainer_with(SimpleNamespace(generation_config=model.generation_config,
                                           save_pretrained=lambda path: Path(path).mkdir(parents=True)), "colocate")
    seen = []

    def validate(backend, tokenizer, stage, tasks):
        seen.append((backend, trainer.vllm_generation.syncs))
        return {"val/accuracy": 0.1 * len(seen)}

    monkeypatch.setattr(engine, "validate", validate)
    monitor = engine.StageMonitor(run, 0, config.stages[0], trainer, tokenizer)
    monitor.on_train_begin(None, trainer.state, None)  # step 0, before TRL's first sync
    assert seen[0][0].llm is trainer.vllm_generation.llm and seen[0][1] == 1
    trainer.state.global_step = 1
    monitor._validate(1)
    assert [syncs for _, syncs in seen] == [1, 2] and trainer._last_loaded_step == 1  # TRL's next batch skips its sync


# ----- choosing vLLM: config, command line, engines -------------------------------------------------
def smoke_stage_grpo(tmp_path, monkeypatch, config):
    from envtune.train.engine import TrlEngine

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path))  # set by _grpo_args; restored after the test
    return TrlEngine(resolve_placement("cpu"))._grpo_args(config.stages[0], tmp_path, 0)


def test_the_vllm_override_reaches_trls_config_for_every_stage(tmp_path, monkeypatch):
    from envtune.curriculum.config import load_config, preset_path

    smoke = load_config(preset_path("smoke"))
    assert not smoke_stage_grpo(tmp_path, monkeypatch, smoke).use_vllm
    served = override_vllm(smoke, "server")
    assert all(stage.grpo["use_vllm"] and stage.grpo["vllm_mode"] == "server" for stage in served.stages)
    args = smoke_stage_grpo(tmp_path, monkeypatch, served)
    assert args.use_vllm and args.vllm_mode == "server"
    configured = parse_config({"name": "t", "stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 1,
                                                        "grpo": {"use_vllm": True, "vllm_gpu_memory_utilization": 0.3}}]})
    args = smoke_stage_grpo(tmp_path, monkeypatch, override_vllm(configured, "colocate"))
    assert (args.use_vllm, args.vllm_mode, args.vllm_gpu_memory_utilization) == (True, "colocate", 0.3)
    with pytest.raises(ConfigError, match="'remote'"):
        override_vllm(smoke, "remote")


def test_sleep_mode_is_refused():
    with pytest.raises(ConfigError, match="vllm_enable_sleep_mode"):
        parse_config({"name": "t", "stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 1,
                                               "grpo": {"vllm_enable_sleep_mode": True}}]})


def test_vllm_is_refused_with_the_verl_engine_and_without_vllm(tmp_path, monkeypatch, capsys):
    import_utils = importlib.import_module("trl.import_utils")  # trl's lazy module has no attribute for it
    assert main(["tune", "--preset", "smoke", "--engine", "verl", "--vllm", "colocate", "--output", str(tmp_path / "a")]) == 2
    assert "--vllm applies to --engine trl only" in capsys.readouterr().err
    config = tmp_path / "vllm.yaml"
    config.write_text("base: smoke\ndefaults:\n  grpo: {use_vllm: true}\n")
    assert main(["tune", "--config", str(config), "--engine", "verl", "--output", str(tmp_path / "b")]) == 2
    assert "actor_rollout_ref.rollout.name: vllm|sglang" in capsys.readouterr().err
    monkeypatch.setattr(import_utils, "is_vllm_available", lambda *args: False)
    assert main(["tune", "--preset", "smoke", "--vllm", "server", "--output", str(tmp_path / "c")]) == 2
    assert "install vLLM on a GPU machine" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")
