"""The veRL agent loop against a fake server manager: token-in/token-out, masks, rewards, extra fields."""

import asyncio
import json
import threading
import time
from importlib import resources

import pytest

import hydra
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import DictConfigWrap
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.workers.rollout.replica import TokenOutput

from envtune.env import Episode, EpisodeConfig
from envtune.env.oracle import ANSWER, oracle_reply
from envtune.models import load_model_and_tokenizer, tiny_model_path
from envtune.verl import agent_loop
from envtune.verl.data import EpisodeSpec, row

LOGPROB = -0.5
TINY = str(tiny_model_path())


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = load_model_and_tokenizer("tiny")
    return model.config.model_type, tokenizer


def render(tokenizer, messages, add_generation_prompt=True):
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True,
                                              return_dict=False))


class ScriptedServer:
    """Stands in for veRL's server manager. It plays a mirror episode with a scripted policy (oracle,
    except a malformed reply on turn 1 and a premature answer on turn 2), checks each prompt it gets
    against the chat template's rendering of the mirror's messages, and returns canonical token ids."""

    def __init__(self, tokenizer, task, config, cut_first_reply=False):
        self.tokenizer, self.eos = tokenizer, tokenizer.eos_token_id
        self.mirror = Episode(task, config)
        self.messages = self.mirror.reset()
        self.cut_first_reply = cut_first_reply
        self.prompts, self.generated, self.max_tokens = [], [], []

    def policy(self) -> str:
        if self.mirror.turn == 1 and self.mirror.step_in_turn == 0:
            return "<tool_call>not json</tool_call>"  # a format violation, answered with an error
        if self.mirror.turn == 2:
            return ANSWER  # answers without the calls the turn needs: the turn fails
        return oracle_reply(self.mirror)

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        self.prompts.append(list(prompt_ids))
        self.max_tokens.append(sampling_params["max_tokens"])
        assert list(prompt_ids) == render(self.tokenizer, self.messages), "prefix differs from the template"
        text = self.policy()
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if not (self.cut_first_reply and not self.generated):
            ids.append(self.eos)
        self.generated.append(ids)
        version = 7 + len(self.generated)  # the weights move on while the episode runs
        reply = {"role": "assistant", "content": text}
        step = self.mirror.step(reply)
        self.messages = [*self.messages, reply, *step.messages]
        return TokenOutput(token_ids=ids, log_probs=[LOGPROB] * len(ids),
                           extra_fields={"global_steps": version, "min_global_steps": version, "max_global_steps": version})


async def play(model_type, tokenizer, server, data_row, response_length=60_000, model=TINY, max_model_len=None):
    """Build the loop the way veRL's worker does (hydra instantiate from our agent_loops.yaml) inside
    the running event loop, and run one row."""
    config = OmegaConf.create({
        "actor_rollout_ref": {"model": {"path": model}, "rollout": {
            "prompt_length": 16_384, "response_length": response_length, "max_model_len": max_model_len}},
        "data": {"apply_chat_template_kwargs": {}},
    })
    entry = OmegaConf.load(str(resources.files("envtune.verl") / "agent_loops.yaml"))[0]
    loop = hydra.utils.instantiate(
        config=entry, trainer_config=DictConfigWrap(config), server_manager=server, tokenizer=tokenizer,
        processor=None, dataset_cls=RLHFDataset, data_config=DictConfigWrap(config.data), hf_model_type=model_type,
    )
    sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
    kwargs = {**data_row, "raw_prompt": data_row["prompt"],
              "interaction_kwargs": data_row["extra_info"]["interaction_kwargs"]}
    return await loop.run(sampling, **kwargs)


def spec_row(tasks, task_id, **config):
    config = EpisodeConfig(**{"feedback": "augmented", **config})
    return row(tasks[task_id], EpisodeSpec(task_id, tasks[task_id].release, config, 1024), 0, "train", "hints")


@pytest.mark.parametrize("cut_first_reply", [False, True])
def test_multi_turn_episode_tokens_masks_reward_and_extra_fields(tiny, tasks, cut_first_reply):
    model_type, tokenizer = tiny
    data_row = spec_row(tasks, "multi_turn_base_1")
    config = EpisodeSpec.from_kwargs(data_row["extra_info"]["interaction_kwargs"]).episode
    server = ScriptedServer(tokenizer, tasks["multi_turn_base_1"], config, cut_first_reply)
    output = asyncio.run(play(model_type, tokenizer, server, data_row))
    mirror = server.mirror
    assert mirror.done and mirror.task.num_turns >= 3

    # every prompt the server saw was the template's rendering (checked in generate), and the
    # trajectory is the prompt followed by the response
    assert output.prompt_ids == server.prompts[0]
    sequence = output.prompt_ids + output.response_ids
    for prompt in server.prompts:
        assert sequence[: len(prompt)] == prompt
    full = render(tokenizer, server.messages, add_generation_prompt=False)
    assert full[: len(sequence)] == sequence and len(full) - len(sequence) <= 1  # only the final newline

    # mask 1 exactly on the model's tokens, in order; log-probs follow the mask
    model_tokens = [token for token, keep in zip(output.response_ids, output.response_mask) if keep]
    assert model_tokens == [token for reply in server.generated for token in reply]
    assert len(output.response_mask) == len(output.response_ids) == len(output.response_logprobs)
    assert all(lp == (LOGPROB if keep else 0.0) for lp, keep in zip(output.response_logprobs, output.response_mask))
    assert 0 < output.response_mask.count(0) < len(output.response_mask)
    if cut_first_reply:  # the end token that closes the cut reply is the environment's, not the model's
        first = len(server.generated[0])
        assert output.response_ids[first] == tokenizer.eos_token_id and output.response_mask[first] == 0

    # reward and reported numbers are the episode's
    successes = mirror.turn_successes
    assert successes[0] and not successes[2]
    assert output.reward_score == pytest.approx(mirror.reward()) == pytest.approx(sum(successes) / len(successes))
    extra = output.extra_fields
    assert extra["turn_scores"] == [1.0 if passed else 0.0 for passed in successes]
    info = extra["reward_extra_info"]
    assert info["acc"] == 0.0 and info["progress"] == pytest.approx(mirror.reward("progress"))
    assert info["rounds"] == len(server.generated) and info["truncated"] == 0.0
    assert info["format_error_rate"] > 0
    assert extra["tool_call_counts"] == mirror.valid_calls + mirror.invalid_calls
    assert output.num_turns == len(server.messages)
    assert all(cap == 1024 for cap in server.max_tokens)
    # veRL's staleness control reads which weight versions generated the trajectory
    assert (extra["min_global_steps"], extra["max_global_steps"]) == (8, 7 + len(server.generated))


def test_a_passing_episode_scores_one_and_acc_one(tiny, tasks):
    model_type, tokenizer = tiny
    data_row = spec_row(tasks, "multi_turn_base_0", feedback="standard")
    server = ScriptedServer(tokenizer, tasks["multi_turn_base_0"], EpisodeConfig(feedback="standard"))
    server.policy = lambda: oracle_reply(server.mirror)
    output = asyncio.run(play(model_type, tokenizer, server, data_row))
    assert output.reward_score == 1.0 and output.extra_fields["reward_extra_info"]["acc"] == 1.0


def test_the_response_budget_stops_the_episode_and_caps_each_reply(tiny, tasks):
    model_type, tokenizer = tiny
    data_row = spec_row(tasks, "multi_turn_base_1")
    server = ScriptedServer(tokenizer, tasks["multi_turn_base_1"], EpisodeConfig(feedback="augmented"))
    budget = 300
    output = asyncio.run(play(model_type, tokenizer, server, data_row, response_length=budget))
    assert len(output.response_ids) <= budget and len(output.response_mask) == len(output.response_ids)
    assert output.extra_fields["reward_extra_info"]["truncated"] == 1.0
    assert not server.mirror.done or output.reward_score < 1.0
    assert server.max_tokens[0] == min(1024, budget) and all(cap <= budget for cap in server.max_tokens)


@pytest.mark.parametrize("source", ["max_position_embeddings", "max_model_len"])
def test_no_request_asks_for_more_than_the_models_context(tiny, tasks, tmp_path, source):
    """A response budget beyond what the context leaves after the prompt: each reply gets only what is
    left of the context (vLLM refuses a request that fills it, and veRL drops the session), and the
    episode ends truncated there. The context is the model config's, or rollout.max_model_len."""
    model_type, tokenizer = tiny
    data_row = spec_row(tasks, "multi_turn_base_1")
    server = ScriptedServer(tokenizer, tasks["multi_turn_base_1"], EpisodeConfig(feedback="augmented"))
    context = len(render(tokenizer, data_row["prompt"])) + 300
    model, max_model_len = TINY, None
    if source == "max_model_len":
        max_model_len = context
    else:
        model_config = json.loads((tiny_model_path() / "config.json").read_text())
        (tmp_path / "config.json").write_text(json.dumps({**model_config, "max_position_embeddings": context}))
        model = str(tmp_path)
    output = asyncio.run(play(model_type, tokenizer, server, data_row, 60_000, model, max_model_len))
    assert all(len(prompt) + cap <= context for prompt, cap in zip(server.prompts, server.max_tokens))
    assert len(output.prompt_ids) + len(output.response_ids) <= context
    assert output.extra_fields["reward_extra_info"]["truncated"] == 1.0


def test_a_slow_environment_step_does_not_hold_up_the_event_loop(tiny, tasks, monkeypatch):
    """veRL runs every trajectory of a worker on one event loop: building and stepping an episode run
    in its executor, so a slow step (a long tool call, a long scenario) stalls only its own trajectory."""
    model_type, tokenizer = tiny
    slow_steps = []

    class SlowEpisode(Episode):
        def step(self, message):
            if not slow_steps:
                slow_steps.append(threading.current_thread())
                time.sleep(0.5)
            return super().step(message)

    monkeypatch.setattr(agent_loop, "Episode", SlowEpisode)
    data_row = spec_row(tasks, "multi_turn_base_0", feedback="standard")
    server = ScriptedServer(tokenizer, tasks["multi_turn_base_0"], EpisodeConfig(feedback="standard"))
    server.policy = lambda: oracle_reply(server.mirror)

    async def play_and_tick():
        ticks = [time.perf_counter()]
        playing = asyncio.ensure_future(play(model_type, tokenizer, server, data_row))
        while not playing.done():
            await asyncio.sleep(0.01)
            ticks.append(time.perf_counter())
        return await playing, max(later - earlier for earlier, later in zip(ticks, ticks[1:]))

    output, longest_gap = asyncio.run(play_and_tick())
    assert output.reward_score == 1.0 and slow_steps and slow_steps[0] is not threading.main_thread()
    assert longest_gap < 0.25  # the loop went on while the step slept for 0.5 s


def test_rows_from_another_version_are_refused_with_the_fix(tiny, tasks):
    model_type, tokenizer = tiny
    data_row = spec_row(tasks, "multi_turn_base_0")
    data_row["prompt"] = [{"role": "system", "content": "stale"}, *data_row["prompt"][1:]]
    server = ScriptedServer(tokenizer, tasks["multi_turn_base_0"], EpisodeConfig(feedback="augmented"))
    with pytest.raises(ValueError, match="envtune tune --engine verl --dry-run"):
        asyncio.run(play(model_type, tokenizer, server, data_row))
    broken = spec_row(tasks, "multi_turn_base_0")
    del broken["extra_info"]["interaction_kwargs"]["feedback"]
    with pytest.raises(ValueError, match="lack feedback"):
        asyncio.run(play(model_type, tokenizer, server, broken))


def test_a_reply_ended_by_another_end_token_of_the_model_is_played(tiny, tasks, tmp_path):
    """vLLM stops at every end token the model's generation config declares (an instruct model's
    <|endoftext|> besides the chat template's end token): such a reply is an ended reply, played."""
    import shutil

    from transformers import GenerationConfig

    model_type, tokenizer = tiny
    other_end = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model = tmp_path / "model"
    shutil.copytree(TINY, model)
    GenerationConfig(eos_token_id=[tokenizer.eos_token_id, other_end]).save_pretrained(model)
    data_row = spec_row(tasks, "multi_turn_base_0", feedback="standard")
    server = ScriptedServer(tokenizer, tasks["multi_turn_base_0"], EpisodeConfig(feedback="standard"))
    server.policy = lambda: oracle_reply(server.mirror)
    generate = server.generate

    async def ending_with_the_other_token(request_id, *, prompt_ids, **kwargs):
        # the sequence keeps each reply's own end token before the template's: without them it is the
        # template's rendering, which the server checks
        output = await generate(request_id, prompt_ids=[token for token in prompt_ids if token != other_end], **kwargs)
        return TokenOutput(token_ids=[*output.token_ids[:-1], other_end], log_probs=output.log_probs,
                           extra_fields=output.extra_fields)

    server.generate = ending_with_the_other_token
    agent_loop._model_limits.cache_clear()
    output = asyncio.run(play(model_type, tokenizer, server, data_row, model=str(model)))
    assert output.reward_score == 1.0 and output.extra_fields["reward_extra_info"]["format_error_rate"] == 0.0
    assert output.response_ids.count(other_end) == len(server.generated)  # kept as generated, with loss
