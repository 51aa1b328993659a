"""veRL 0.9.1's default (v1) trainer on CPU, as far as rollouts, advantages and validation go: a
fake LLM server that plays the ground truth, and the trainer built from the veRL engine's launch with
its agent-loop worker in this process (tests that use it need the `ray_cluster` fixture)."""

import asyncio
import threading
from contextlib import contextmanager
from types import SimpleNamespace

import pyarrow.parquet as pq
from torchdata.stateful_dataloader import StatefulDataLoader
from verl.trainer.ppo.v1.agent_loop_tq import AgentLoopWorkerTQ
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
from verl.workers.rollout.replica import TokenOutput

from envtune.curriculum.run import CurriculumRun
from envtune.env import Episode
from envtune.env.oracle import oracle_reply
from envtune.models import tiny_model_path
from envtune.verl.config import compose
from envtune.verl.data import EpisodeSpec
from envtune.verl.engine import VerlEngine


class OracleServer:
    """A fake LLM server that plays the ground truth of each trajectory: it knows the task from the
    opening prompt and keeps a mirror episode per request id (the agent loop's sticky id). `replies`
    keeps, per request id, the turn each reply played and its tokens."""

    def __init__(self, tokenizer, rows, tasks):
        self.tokenizer = tokenizer
        self.openings, self.mirrors, self.replies = {}, {}, {}
        for row in rows:
            spec = EpisodeSpec.from_kwargs(row["extra_info"]["interaction_kwargs"])
            task = tasks[spec.task_id]
            with Episode(task, spec.episode) as episode:
                messages = episode.reset()
            opening = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                    return_dict=False)
            self.openings[tuple(opening)] = (task, spec.episode)

    def reply(self, mirror: Episode, request_id: str) -> str:
        return oracle_reply(mirror)

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs):
        if request_id not in self.mirrors:
            self.mirrors[request_id] = Episode(*self.openings[tuple(prompt_ids)])
            self.mirrors[request_id].reset()
            self.replies[request_id] = []
        mirror = self.mirrors[request_id]
        text = self.reply(mirror, request_id)
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        self.replies[request_id].append((mirror.turn, len(ids)))
        mirror.step({"role": "assistant", "content": text})
        version = {"global_steps": 1, "min_global_steps": 1, "max_global_steps": 1}
        return TokenOutput(token_ids=ids, log_probs=[-0.1] * len(ids), extra_fields=version)


@contextmanager
def v1_trainer(config, output, tasks, trainer_class, server_class=OracleServer):
    """`trainer_class` (veRL's PPOTrainerSync or a subclass) built from the engine's launch of the
    config's first stage, its replay buffer as veRL builds it, its rollouts played by `server_class`."""
    engine = VerlEngine()
    run = CurriculumRun(config, str(tiny_model_path()), output, None, engine)
    command, _, _ = engine.launch(run, 0, config.stages[0], str(tiny_model_path()), done=0)
    launch = compose([word for word in command if "=" in word])
    launch.trainer.v1.trainer_mode = "sync"  # what a registered envtune trainer sets as it starts
    worker = AgentLoopWorkerTQ.__ray_actor_class__(launch, llm_client=None)
    rows = [row for path in (launch.data.train_files, launch.data.val_files) for row in pq.read_table(path).to_pylist()]
    worker.llm_client = server_class(worker.tokenizer, rows, tasks)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    def generate_sequences(batch):
        asyncio.run_coroutine_threadsafe(worker.generate_sequences(batch), loop).result()

    ppo = object.__new__(trainer_class)
    ppo.config, ppo.trainer_mode, ppo.global_steps, ppo.tokenizer = launch, "sync", 0, worker.tokenizer
    ppo.agent_loop_manager = SimpleNamespace(generate_sequences=generate_sequences)
    ppo.reward_loop_manager = SimpleNamespace(reward_loop_worker_handles=[])  # the agent loop scores: no reward workers
    datasets = {split: RLHFDataset(path, worker.tokenizer, launch.data)
                for split, path in (("train", launch.data.train_files), ("val", launch.data.val_files))}
    # veRL fetches one task at a time when its group filter refills (trainer._init_dataloader)
    fetch = 1 if launch.algorithm.filter_groups.enable else launch.data.train_batch_size
    launch.data.gen_batch_size = fetch
    ppo.train_dataloader = StatefulDataLoader(datasets["train"], batch_size=fetch, shuffle=False, drop_last=True,
                                              collate_fn=collate_fn)
    ppo.train_dataloader_it = None
    ppo.val_dataloader = StatefulDataLoader(datasets["val"], batch_size=len(datasets["val"]), shuffle=False,
                                            collate_fn=collate_fn)
    ppo.replay_buffer = ppo._build_replay_buffer()
    ppo.replay_buffer.poll_interval = 0.1
    ppo.server = worker.llm_client
    try:
        yield ppo
    finally:
        loop.call_soon_threadsafe(loop.stop)
