"""veRL 0.9.1's default trainer (v1) on CPU, through its own code: a local Ray instance, TransferQueue,
the TransferQueue agent-loop worker playing our rows against a fake LLM server, the trainer's replay
buffer and its validation. A session that raises is logged and scored as a failure, which is what the
veRL engine's lost-session check reads. (test_worker.py drives the deprecated v0 worker.)"""

import asyncio
import logging
import threading
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

tq = pytest.importorskip("transfer_queue", reason="veRL's v1 trainer needs TransferQueue: pip install -e '.[verl]'")

import ray
from omegaconf import OmegaConf
from torchdata.stateful_dataloader import StatefulDataLoader
from verl.trainer.ppo.v1 import PPOTrainerSync
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
from verl.workers.rollout.replica import TokenOutput

from envtune.curriculum.config import parse_config
from envtune.curriculum.run import CurriculumRun
from envtune.env import Episode
from envtune.env.oracle import oracle_reply
from envtune.errors import EnvtuneError
from envtune.models import tiny_model_path
from envtune.verl import agent_loop
from envtune.verl.config import compose
from envtune.verl.data import EpisodeSpec
from envtune.verl.engine import VerlEngine, lost_sessions, validation_accuracy

CONFIG = parse_config({
    "name": "v1",
    "defaults": {"grpo": {"num_generations": 2, "per_device_train_batch_size": 4, "save_steps": 3},
                 "sampling": {"max_new_tokens": 512}, "max_completion_tokens": 20_000,
                 "validation": {"split": "val", "every": 1, "max_tasks": 8}},  # two tasks per category
    "stages": [{"name": "hints", "split": "train", "categories": ["base"], "reward": "progress", "max_steps": 3}],
})
CATEGORIES = {"base", "miss_func", "miss_param", "long_context"}


class OracleServer:
    """A fake LLM server that plays the ground truth of each trajectory: it knows the task from the
    opening prompt and keeps a mirror episode per request id (the agent loop's sticky id)."""

    def __init__(self, tokenizer, rows, tasks):
        self.tokenizer = tokenizer
        self.openings, self.mirrors = {}, {}
        for row in rows:
            spec = EpisodeSpec.from_kwargs(row["extra_info"]["interaction_kwargs"])
            task = tasks[spec.task_id]
            with Episode(task, spec.episode) as episode:
                messages = episode.reset()
            opening = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=False)
            self.openings[tuple(opening)] = (task, spec.episode)

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        if request_id not in self.mirrors:
            self.mirrors[request_id] = Episode(*self.openings[tuple(prompt_ids)])
            self.mirrors[request_id].reset()
        mirror = self.mirrors[request_id]
        text = oracle_reply(mirror)
        mirror.step({"role": "assistant", "content": text})
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        version = {"global_steps": 1, "min_global_steps": 1, "max_global_steps": 1}
        return TokenOutput(token_ids=ids, log_probs=[-0.1] * len(ids), extra_fields=version)


pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")  # torchdata's, in veRL's data loader


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        yield
        tq.close()
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def trainer(ray_cluster, tmp_path_factory, tasks):
    """veRL's sync v1 trainer as far as rollouts and validation go, with its agent-loop worker in this
    process on an event loop of its own (a Ray actor has one), as `main_ppo` would build them from the
    engine's launch."""
    engine = VerlEngine()
    run = CurriculumRun(CONFIG, str(tiny_model_path()), tmp_path_factory.mktemp("run"), None, engine)
    command, _, _ = engine.launch(run, 0, CONFIG.stages[0], str(tiny_model_path()), done=0)
    config = compose([word for word in command if "=" in word])
    worker = AgentLoopWorkerTQ.__ray_actor_class__(config, llm_client=None)
    rows = [row for path in (config.data.train_files, config.data.val_files) for row in pq.read_table(path).to_pylist()]
    worker.llm_client = OracleServer(worker.tokenizer, rows, tasks)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def generate_sequences(batch):
        asyncio.run_coroutine_threadsafe(worker.generate_sequences(batch), loop).result()

    ppo = object.__new__(PPOTrainerSync)
    ppo.config, ppo.trainer_mode, ppo.global_steps, ppo.tokenizer = config, "sync", 0, worker.tokenizer
    ppo.agent_loop_manager = SimpleNamespace(generate_sequences=generate_sequences)
    ppo.reward_loop_manager = SimpleNamespace(reward_loop_worker_handles=[])  # the agent loop scores: no reward workers
    datasets = {split: RLHFDataset(path, worker.tokenizer, config.data)
                for split, path in (("train", config.data.train_files), ("val", config.data.val_files))}
    ppo.train_dataloader = StatefulDataLoader(datasets["train"], batch_size=config.data.train_batch_size,
                                              shuffle=False, drop_last=True, collate_fn=collate_fn)
    ppo.train_dataloader_it = None
    ppo.val_dataloader = StatefulDataLoader(datasets["val"], batch_size=len(datasets["val"]), shuffle=False,
                                            collate_fn=collate_fn)
    ppo.replay_buffer = ppo._build_replay_buffer()
    ppo.replay_buffer.poll_interval = 0.1
    yield ppo
    loop.call_soon_threadsafe(loop.stop)


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
