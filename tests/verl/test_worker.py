"""End to end on CPU through veRL's own code: the veRL engine's rendered config, veRL's dataset and its
`AgentLoopWorker` (with a fake LLM server) play our rows, and veRL's validation metric names are the
ones the engine reads the transition rule's accuracy from. This is the deprecated v0 path (the v1
worker shares `AgentLoopWorker`'s agent-loop code); test_v1.py runs the trainer 0.9.1 runs by default."""

import asyncio

import numpy as np
import pytest
from verl.experimental.agent_loop.agent_loop import AgentLoopWorker
from verl.protocol import DataProto
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
from verl.workers.rollout.replica import TokenOutput

from envtune.curriculum.config import parse_config
from envtune.curriculum.run import CurriculumRun
from envtune.env.oracle import ANSWER
from envtune.models import tiny_model_path
from envtune.verl.config import compose
from envtune.verl.engine import VerlEngine, validation_accuracy, validation_metric, validation_record

CONFIG = parse_config({
    "name": "worker",
    "defaults": {"grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "save_steps": 3},
                 "sampling": {"max_new_tokens": 64}, "max_completion_tokens": 2048},
    "stages": [{"name": "hints", "split": "train", "categories": ["base"], "reward": "progress", "max_steps": 3,
                "episode": {"feedback": "augmented"}}],
})


class AnsweringServer:
    """A fake LLM server that answers every request at once: no tool calls, so only turns whose
    ground truth is empty can pass."""

    def __init__(self, tokenizer):
        self.ids = tokenizer.encode(ANSWER, add_special_tokens=False) + [tokenizer.eos_token_id]
        self.requests = 0

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        self.requests += 1
        return TokenOutput(token_ids=list(self.ids), log_probs=[-0.25] * len(self.ids))


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    engine = VerlEngine()
    run = CurriculumRun(CONFIG, str(tiny_model_path()), tmp_path_factory.mktemp("run"), None, engine)
    command, _, _ = engine.launch(run, 0, CONFIG.stages[0], str(tiny_model_path()), done=0)
    return compose([word for word in command if "=" in word])


def test_verls_worker_plays_every_row_and_reports_our_numbers(launch):
    async def play():
        worker = AgentLoopWorker(launch, llm_client=None)
        worker.llm_client = AnsweringServer(worker.tokenizer)
        dataset = RLHFDataset(launch.data.train_files, worker.tokenizer, launch.data)
        assert len(dataset) == 100  # the prompt budget fits every row: veRL's length filter drops none
        batch = DataProto.from_single_dict(collate_fn([dataset[index] for index in range(4)]))
        return worker, await worker.generate_sequences(batch)

    worker, output = asyncio.run(play())
    tensors, extra = output.batch, output.non_tensor_batch
    response_length = launch.actor_rollout_ref.rollout.response_length
    assert tensors["responses"].shape == (4, response_length)
    # the reward sits on each trajectory's last response token, as veRL's GRPO expects
    last = tensors["attention_mask"][:, -response_length:].sum(-1) - 1
    assert tensors["rm_scores"].sum(-1).tolist() == [tensors["rm_scores"][row, last[row]].item() for row in range(4)]
    assert set(output.meta_info["reward_extra_keys"]) >= {"acc", "progress", "format_reward", "hints", "truncated"}
    assert np.allclose(extra["progress"], tensors["rm_scores"].sum(-1).numpy())
    assert all(len(scores) >= 1 for scores in extra["turn_scores"]) and list(extra["tool_call_counts"]) == [0] * 4
    # masked tokens are the answers the server gave; log-probs come along for the model's tokens only
    answers = tensors["response_mask"].sum(-1).tolist()
    assert answers == [len(worker.llm_client.ids) * turns for turns in extra["rounds"]]
    assert (tensors["rollout_log_probs"][tensors["response_mask"] == 1] == -0.25).all()


def test_verls_validation_metric_names_are_what_the_engine_reads():
    sources = np.array(["bfcl_multi_turn_base", "bfcl_multi_turn_base", "bfcl_multi_turn_miss_func"])
    metrics = RayPPOTrainer._val_metrics_update(
        None, sources, ["a", "b", "c"], {"reward": [1.0, 0.5, 0.5], "acc": [1.0, 0.0, 0.0], "progress": [1, 0.5, 0.5]}, [],
    )
    assert validation_accuracy(metrics) == {
        "val/accuracy": 0.25, "val/accuracy_base": 0.5, "val/accuracy_miss_func": 0.0,
    }


def test_a_stage_can_be_judged_by_the_progress_or_format_reward_verl_logs_per_category():
    sources = np.array(["bfcl_multi_turn_base", "bfcl_multi_turn_base", "bfcl_multi_turn_miss_func"])
    metrics = RayPPOTrainer._val_metrics_update(
        None, sources, ["a", "b", "c"],
        {"reward": [1.0, 0.5, 0.5], "acc": [1.0, 0.0, 0.0], "progress": [1.0, 0.5, 0.0], "format_reward": [1.0, 1.0, 0.5]}, [],
    )
    assert validation_metric(metrics, "accuracy") == 0.25
    assert validation_metric(metrics, "progress") == pytest.approx((0.75 + 0.0) / 2)  # the mean over categories
    assert validation_metric(metrics, "format_reward") == pytest.approx((1.0 + 0.5) / 2)
    assert validation_metric({"actor/grad_norm": 1.0}, "progress") is None  # a step without validation
    # the run's metrics.jsonl holds the metric under the TRL engine's name, which tune's stage table reads
    assert validation_record(metrics, "progress") == {
        "val/accuracy": 0.25, "val/accuracy_base": 0.5, "val/accuracy_miss_func": 0.0,
        "val/progress": pytest.approx(0.375)}
    assert validation_record({"actor/grad_norm": 1.0}, "format_reward") == {}
