"""veRL 0.9.1's default trainer (v1) on CPU, through its own code: a local Ray instance, TransferQueue,
the TransferQueue agent-loop worker playing our rows against a fake LLM server, the trainer's replay
buffer and its validation. A session that raises is logged and scored as a failure, which is what the
veRL engine's lost-session check reads. (test_worker.py drives the deprecated v0 worker.)"""

import logging

import pyarrow.parquet as pq
import pytest

tq = pytest.importorskip("transfer_queue", reason="veRL's v1 trainer needs TransferQueue: pip install -e '.[verl]'")

from v1_harness import v1_trainer
from verl.trainer.ppo.v1 import PPOTrainerSync

from envtune.curriculum.config import parse_config
from envtune.env import Episode
from envtune.errors import EnvtuneError
from envtune.verl import agent_loop
from envtune.verl.engine import lost_sessions, validation_accuracy

CONFIG = parse_config({
    "name": "v1",
    "defaults": {"grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "save_steps": 3},
                 "sampling": {"max_new_tokens": 512}, "max_completion_tokens": 20_000,
                 "validation": {"split": "val", "every": 1, "max_tasks": 8}},  # two tasks per category
    "stages": [{"name": "hints", "split": "train", "categories": ["base"], "reward": "progress", "max_steps": 3}],
})
CATEGORIES = {"base", "miss_func", "miss_param", "long_context"}

pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")  # torchdata's, in veRL's data loader


@pytest.fixture(scope="module")
def trainer(ray_cluster, tmp_path_factory, tasks):
    """veRL's sync v1 trainer as `main_ppo` would build it from the engine's launch (see v1_harness)."""
    with v1_trainer(CONFIG, tmp_path_factory.mktemp("run"), tasks, PPOTrainerSync) as ppo:
        yield ppo


def test_v1_trains_on_our_trajectories(trainer):
    """A training batch as v1 samples it from TransferQueue: the episode's reward on its last token,
    the model's tokens masked in, and the weight versions v1's staleness metrics read as integers."""
    trainer.global_steps = 1
    trainer.prepare_step()
    size = trainer.config.data.train_batch_size
    batch, _ = trainer.replay_buffer.sample(global_steps=1, partition_id="train", batch_size=size)
    n = trainer.config.actor_rollout_ref.rollout.n
    assert len(batch.keys) == size * n and all(tag["status"] == "success" for tag in batch.tags)
    assert all(isinstance(tag[name], int) for tag in batch.tags for name in ("min_global_steps", "max_global_steps"))
    data = tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["rm_scores", "response_mask"])
    for scores, mask in zip(data["rm_scores"].unbind(0), data["response_mask"].unbind(0)):
        assert scores[-1].item() == 1.0 and scores.sum().item() == 1.0  # the oracle passes every turn
        assert 0 < mask.sum().item() < len(mask)  # model tokens trained on, environment tokens not
    tq.kv_clear(keys=batch.keys, partition_id="train")


def test_v1_validation_reads_our_numbers_and_scores_a_lost_session_as_zero(trainer, monkeypatch, caplog):
    trainer.global_steps = 0
    clean = trainer._validate()
    assert validation_accuracy(clean) == {"val/accuracy": 1.0, **{f"val/accuracy_{c}": 1.0 for c in CATEGORIES}}
    assert clean["val-aux/bfcl_multi_turn_base/progress/mean@1"] == 1.0  # reward_extra_info, per category
    assert lost_sessions("", {0: clean}, CATEGORIES) == []

    # the environment is broken for one base task (on a real cluster: on the node that plays it)
    broken = next(row for row in pq.read_table(trainer.config.data.val_files).to_pylist()
                  if row["data_source"] == "bfcl_multi_turn_base")["extra_info"]["task_id"]

    class BrokenEpisode(Episode):
        def __init__(self, task, *args, **kwargs):
            if task.id == broken:
                raise EnvtuneError("bfcl-eval 2026.3.23 is not installed here")
            super().__init__(task, *args, **kwargs)

    monkeypatch.setattr(agent_loop, "Episode", BrokenEpisode)
    with caplog.at_level(logging.ERROR, logger="verl"):
        lossy = trainer._validate()
    # veRL goes on without the session and counts it as a failure: the model would look weaker
    assert validation_accuracy(lossy)["val/accuracy_base"] == 0.5
    assert lossy["val-aux/bfcl_multi_turn_base/acc_success_only/mean@1"] == 1.0
    assert lost_sessions(caplog.text, {0: lossy}, CATEGORIES) == [
        "1 session(s) raised in the agent loop (the first: envtune.errors.EnvtuneError: bfcl-eval 2026.3.23 is not "
        "installed here)",
        "validation at step 0 lost sessions of base",
    ]
