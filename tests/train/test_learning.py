"""The trainer learns what its reward asks for: a few GRPO steps raise the probability of the rewarded
reply, and the same run at learning rate 0 (the control) leaves it where it was."""

import pytest
import torch
from trl import GRPOConfig

from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer, GenerationRequest, SamplingParams
from envtune.rollout.cached import CachedHFBackend
from envtune.train.grpo import LOGGED_FIELDS, make_trainer

TASKS = ["multi_turn_base_1", "multi_turn_base_2"]  # the dataset's rows; every row plays the same one-step task


class OneTokenTask:
    """A one-step task the random tiny model can learn: after a fixed request the policy writes one of
    its two likeliest tokens (sampled by the rollout backend with top-k 2 from the policy being
    trained) and earns 1 for the `rewarded` one, its second choice, 0 for the other."""

    def __init__(self, prompt_ids: list[int], rewarded: int):
        self.prompt_ids, self.rewarded = prompt_ids, rewarded

    def __call__(self, prompts, trainer):
        backend = CachedHFBackend(trainer.model, trainer.processing_class)
        requests = [GenerationRequest(self.prompt_ids, index, 1) for index in range(len(prompts))]
        sampling = SamplingParams(max_new_tokens=1, top_k=2, seed=trainer.state.global_step)
        replies = backend.generate(requests, sampling)
        rewards = [float(reply == [self.rewarded]) for reply in replies]
        return {
            "prompt_ids": [self.prompt_ids] * len(prompts), "completion_ids": replies,
            "env_mask": [[1]] * len(prompts), "logprobs": None, "episode_reward": rewards,
            **{name: [0.0] * len(prompts) for name in LOGGED_FIELDS if name != "episode_reward"},
        }


def next_token_logits(model, prompt_ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([prompt_ids])).logits[0, -1].float()


def train(tmp_path, learning_rate: float) -> tuple[float, float]:
    """The policy's preference for the rewarded token over the other, P(rewarded) / P(either), before
    and after four GRPO steps of 8 rollouts each."""
    model, tokenizer = load_model_and_tokenizer("tiny")
    renderer = ChatRenderer(tokenizer)
    prompt_ids = renderer.encode(renderer.text([{"role": "user", "content": "List the files here."}], True))
    first, rewarded = next_token_logits(model, prompt_ids).topk(2).indices.tolist()

    def preference() -> float:
        both = torch.softmax(next_token_logits(model, prompt_ids)[[rewarded, first]], dim=-1)
        return float(both[0])

    before = preference()
    args = GRPOConfig(
        output_dir=str(tmp_path / f"lr-{learning_rate}"), use_cpu=True, bf16=False, per_device_train_batch_size=8,
        num_generations=8, max_completion_length=1, max_steps=4, learning_rate=learning_rate, logging_steps=1,
        report_to=[], beta=0.0, save_strategy="no", seed=0, disable_tqdm=True,
    )
    make_trainer(model, tokenizer, TASKS, OneTokenTask(prompt_ids, rewarded), args).train()
    model.eval()
    return before, preference()


def test_grpo_raises_the_probability_of_the_rewarded_reply_and_the_control_does_not(tmp_path):
    rl_before, rl_after = train(tmp_path, learning_rate=1e-2)
    control_before, control_after = train(tmp_path, learning_rate=0.0)
    assert rl_before == control_before  # the same start
    assert control_after == pytest.approx(control_before, abs=1e-6)
    assert rl_before < 0.5 and rl_after > 0.6, (rl_before, rl_after)  # from second choice to first
