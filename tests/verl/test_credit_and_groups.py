"""Turn-level credit and zero-variance groups on veRL, through veRL's own code on CPU: the registered
estimator inside veRL's `compute_advantage`, the v1 trainer scoring trajectories its agent-loop
worker played, and veRL's replay buffer with envtune's bound on its group filter."""

import numpy as np
import pytest
import torch

tq = pytest.importorskip("transfer_queue", reason="veRL's v1 trainer needs TransferQueue: pip install -e '.[verl]'")

import ray
from v1_harness import OracleServer, v1_trainer
from verl.protocol import DataProto
from verl.trainer.ppo.core_algos import get_adv_estimator_fn
from verl.trainer.ppo.ray_trainer import compute_advantage
from verl.trainer.ppo.v1 import PPOTrainerSync, get_trainer_cls
from verl.utils.tensordict_utils import list_of_dict_to_tensordict

from envtune.curriculum.config import parse_config
from envtune.curriculum.run import CurriculumRun
from envtune.curriculum.credit import group_turn_advantages
from envtune.env.oracle import ANSWER
from envtune.errors import EnvtuneError
from envtune.models import tiny_model_path
from envtune.verl.config import compose
from envtune.verl.credit import ESTIMATOR, TRAINER, TrajectoryTurns, TurnCreditTrainer, lend_turns, register
from envtune.verl.engine import VerlEngine
from envtune.verl.sampler import EXTRA_ROLLOUTS, FLAT_GROUPS

pytestmark = pytest.mark.filterwarnings("ignore:'set_vital' is deprecated")  # torchdata's, in veRL's data loader


@pytest.fixture(autouse=True, scope="module")
def registered():
    """What the launch's setup hook does in veRL's processes, done in this one."""
    register()


def stage_config(generations=2, **options):
    return parse_config({
        "name": "options",
        "defaults": {"grpo": {"num_generations": generations, "per_device_train_batch_size": 2 * generations,
                              "save_steps": 3},
                     "sampling": {"max_new_tokens": 512}, "max_completion_tokens": 20_000,
                     "validation": {"split": "val", "every": 1, "max_tasks": 4}},
        "stages": [{"name": "hints", "split": "train", "categories": ["base"], "reward": "progress", "max_steps": 3,
                    **options}],
    })


def batch(rewards, masks, groups):
    """A veRL batch: each row's reward on its last model token, as veRL's agent loop puts it."""
    mask = torch.tensor(masks, dtype=torch.float32)
    scores = torch.zeros_like(mask)
    for row, reward in enumerate(rewards):
        scores[row, int(mask[row].nonzero().max())] = reward
    data = DataProto.from_single_dict({"token_level_rewards": scores, "response_mask": mask})
    data.non_tensor_batch["uid"] = np.array(groups, dtype=object)
    return data


def advantages(data, estimator, weight=0.5, scale=True, turns=None):
    config = {"turn_weight": weight, "norm_adv_by_std_in_grpo": scale}
    with lend_turns(turns or []):
        return compute_advantage(data, adv_estimator=estimator, norm_adv_by_std_in_grpo=scale,
                                 config=config).batch["advantages"]


def test_the_setup_hook_registers_the_estimator_and_the_trainer_in_rays_worker_processes(ray_cluster):
    """veRL looks both up by name in its task runner, a Ray actor: the launch's setup hook must have
    registered them there (veRL's own functions run remotely here, nothing of envtune's is sent)."""
    assert ray.get(ray.remote(num_cpus=0)(get_adv_estimator_fn).remote(ESTIMATOR)).__name__ == "turn_credit_advantage"
    assert ray.get(ray.remote(num_cpus=0)(get_trainer_cls).remote(TRAINER)).__name__ == TurnCreditTrainer.__name__


def test_verl_builds_envtunes_trainer_and_sampler_from_the_launch_as_its_task_runner_does(tmp_path):
    """main_ppo's task runner: get_trainer_cls(trainer.v1.trainer_mode)(config). With both options on,
    that is veRL's sync trainer in every other respect, with envtune's bounded group filter."""
    engine = VerlEngine()
    config = stage_config(credit="turn", zero_variance="resample")
    run = CurriculumRun(config, str(tiny_model_path()), tmp_path, None, engine)
    command, _, _ = engine.launch(run, 0, config.stages[0], str(tiny_model_path()), done=0)
    launch = compose([word for word in command if "=" in word])
    trainer = get_trainer_cls(launch.trainer.v1.trainer_mode)(launch)
    assert isinstance(trainer, TurnCreditTrainer) and isinstance(trainer, PPOTrainerSync)
    assert trainer.trainer_mode == launch.trainer.v1.trainer_mode == "sync"
    buffer = trainer.replay_buffer
    assert type(buffer).__name__ == "BoundedGroupFilter"
    assert (buffer.train_batch_size, buffer.rollouts_per_task, buffer.refill_budget) == (2, 2, 2)  # a step's worth


@pytest.mark.parametrize("scale", [True, False])
def test_turn_credit_is_verls_grpo_when_every_turn_has_its_episodes_outcome(scale):
    masks = [[1, 1, 0, 1, 1, 0], [1, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 1], [1, 1, 0, 1, 0, 0], [1, 0, 1, 0, 0, 0]]
    groups = ["a", "a", "a", "b", "b"]
    offsets = [(0, 3), (0, 2), (0, 3), (0, 3), (0, 2)]
    # every rollout passes all of its task's turns or none: its turns have its episode's outcome
    all_or_none = [TrajectoryTurns((passed,) * 2, offset, 2) for passed, offset in zip((1, 0, 1, 0, 0), offsets)]
    data = batch([1.0, 0.0, 1.0, 0.0, 0.0], masks, groups)
    grpo = advantages(data, "grpo", scale=scale)
    assert torch.allclose(advantages(data, ESTIMATOR, scale=scale, turns=all_or_none), grpo, atol=1e-6)
    assert grpo.abs().sum() > 0
    # turn weight 0: only the episode reward counts, whatever the turns did
    mixed = [TrajectoryTurns(successes, offset, 2) for successes, offset in
             zip(((1, 0), (0, 1), (1,), (0, 0), (1, 1)), offsets)]
    data = batch([0.5, 0.5, 0.25, 0.0, 1.0], masks, groups)
    assert torch.allclose(advantages(data, ESTIMATOR, weight=0.0, scale=scale, turns=mixed),
                          advantages(data, "grpo", scale=scale), atol=1e-6)


def test_each_model_token_gets_its_turns_advantage_and_environment_tokens_none():
    # three rollouts of a 2-turn task; the first turn's reply spans positions 0-2, then 2 environment
    # tokens, the second turn from position 5 on (the third rollout never reached it)
    masks = [[1, 1, 1, 0, 0, 1, 1, 0], [1, 1, 1, 0, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0, 0]]
    turns = [TrajectoryTurns((True, True), (0, 5), 2), TrajectoryTurns((True, False), (0, 5), 2),
             TrajectoryTurns((False,), (0,), 2)]
    rewards = [1.0, 0.5, 0.0]
    result = advantages(batch(rewards, masks, ["t"] * 3), ESTIMATOR, weight=0.5, turns=turns)
    # u = 0.5 g + 0.5 R; g per turn: [1, 1], [0.5, 0], [0, 0]
    u = np.array([[1.0, 1.0], [0.5, 0.25], [0.0, 0.0]])
    expected = (u - u.mean(0)) / (u.std(0, ddof=1) + 1e-6)
    for row in range(3):
        for position, masked in enumerate(masks[row]):
            turn = 0 if position < 5 else 1
            assert result[row, position].item() == pytest.approx(expected[row, turn] * masked, abs=1e-5)
    assert expected[0, 1] != expected[0, 0]  # the turns of one rollout differ
    with pytest.raises(EnvtuneError, match="trainer.v1.trainer_mode=envtune_turn_credit"):
        get_adv_estimator_fn(ESTIMATOR)(torch.zeros(1, 2), torch.ones(1, 2), np.array(["t"]))


class TrajectoryKFailsTurnK(OracleServer):
    """Plays the ground truth, except that the k-th trajectory of each task (from 0) answers turn k at
    once (without its calls) for k > 0, so it fails that turn and goes on with the next."""

    def reply(self, mirror, request_id):
        same_task = [rid for rid, other in self.mirrors.items() if other.task.id == mirror.task.id]
        if 0 < same_task.index(request_id) == mirror.turn:
            return ANSWER
        return super().reply(mirror, request_id)


def test_verls_trainer_scores_each_played_turn_with_its_own_advantage(ray_cluster, tmp_path, tasks):
    """The v1 trainer samples what veRL's agent-loop worker played and computes the advantages with
    the registered estimator: the tokens of each reply get the advantage of the turn the server saw
    it play, from the turn outcomes of the mirror episodes."""
    with v1_trainer(stage_config(3, credit="turn", turn_weight=0.5), tmp_path, tasks, get_trainer_cls(TRAINER),
                    TrajectoryKFailsTurnK) as trainer:
        trainer.global_steps = 1
        trainer.prepare_step()
        size = trainer.config.data.train_batch_size
        sampled, _ = trainer.replay_buffer.sample(global_steps=1, partition_id="train", batch_size=size)
        stored = tq.kv_batch_get(keys=sampled.keys, partition_id="train", select_fields=["rollout_log_probs"])
        tq.kv_batch_put(keys=sampled.keys, partition_id="train",  # bypass mode: the rollout's own log-probs
                        fields=stored.rename_key_("rollout_log_probs", "old_log_probs"))
        trainer._compute_advantage(sampled, metrics={})
        data = tq.kv_batch_get(keys=sampled.keys, partition_id="train",
                               select_fields=["advantages", "response_mask", "rm_scores", "uid"])
        server = trainer.server
    # each trajectory, matched to the server's mirror by its replies' lengths
    played = {tuple(length for _, length in replies): request for request, replies in server.replies.items()}
    rows = []
    for row, mask in enumerate(data["response_mask"].unbind(0)):
        segments = [len(run) for run in np.split(mask.numpy(), np.flatnonzero(np.diff(mask.numpy())) + 1) if run[0] == 1]
        rows.append((row, played[tuple(segments)]))
    groups = {}
    for row, request in rows:
        groups.setdefault(data["uid"][row], []).append((row, request))
    assert len(groups) == size and all(len(members) == 3 for members in groups.values())
    differing = 0
    for members in groups.values():
        mirrors = [server.mirrors[request] for _, request in members]
        rewards = [data["rm_scores"][row].sum().item() for row, _ in members]
        assert rewards == pytest.approx([mirror.record.reward("progress") for mirror in mirrors])
        expected = group_turn_advantages([mirror.record.turn_successes for mirror in mirrors], rewards,
                                         mirrors[0].record.num_turns, 0.5, epsilon=1e-6)
        for (row, request), per_turn in zip(members, expected):
            values, mask = data["advantages"][row], data["response_mask"][row]
            starts = np.flatnonzero(np.diff(np.concatenate([[0], mask.numpy()])) == 1)
            for (turn, length), start in zip(server.replies[request], starts):
                assert values[start:start + length].tolist() == pytest.approx([per_turn[turn]] * length, abs=1e-5)
            assert (values[mask == 0] == 0).all()
            turn_values = {round(values[start].item(), 5) for start in starts}
            differing += len(turn_values) > 1
    assert differing >= size  # in every group some rollout's turns got different advantages
    tq.kv_clear(keys=sampled.keys, partition_id="train")


def test_verls_group_filter_replaces_flat_groups_within_the_extra_rollout_budget(ray_cluster, tmp_path, tasks):
    """The oracle passes every turn, so every group is flat: veRL's filter would refill without end;
    envtune's bound lets it replace one group (2 rollouts) and trains the rest as played."""
    config = stage_config(zero_variance="resample", max_extra_rollouts=2)
    with v1_trainer(config, tmp_path, tasks, PPOTrainerSync) as trainer:
        assert type(trainer.replay_buffer).__name__ == "BoundedGroupFilter"
        size = trainer.config.data.train_batch_size
        n = trainer.config.actor_rollout_ref.rollout.n
        for step in (1, 2):  # the budget is per step
            trainer.global_steps = step
            trainer.prepare_step()
            sampled, metrics = trainer.replay_buffer.sample(global_steps=step, partition_id="train", batch_size=size)
            assert len(sampled.keys) == size * n
            assert metrics["training/filter_groups/evicted_samples"] == 1
            assert metrics[EXTRA_ROLLOUTS] == 2.0 and metrics[FLAT_GROUPS] == 1.0
            tq.kv_clear(keys=sampled.keys, partition_id="train")


def test_groups_that_differ_are_never_replaced(ray_cluster, tmp_path, tasks):
    config = stage_config(zero_variance="resample")
    with v1_trainer(config, tmp_path, tasks, PPOTrainerSync, TrajectoryKFailsTurnK) as trainer:
        trainer.global_steps = 1
        trainer.prepare_step()
        size = trainer.config.data.train_batch_size
        sampled, metrics = trainer.replay_buffer.sample(global_steps=1, partition_id="train", batch_size=size)
        assert metrics[EXTRA_ROLLOUTS] == 0.0 and metrics[FLAT_GROUPS] == 0.0
        assert "training/filter_groups/evicted_samples" not in metrics
        tq.kv_clear(keys=sampled.keys, partition_id="train")


def test_under_turn_credit_a_group_with_equal_rewards_but_different_turns_is_not_replaced(ray_cluster, tmp_path, tasks):
    """Two finished groups in TransferQueue, as veRL's agent-loop worker leaves them: both score 0.5
    in every trajectory, but only one passed the same turns in all; only that one gives no signal."""
    config = stage_config(credit="turn", zero_variance="resample")
    with v1_trainer(config, tmp_path, tasks, get_trainer_cls(TRAINER)) as trainer:
        buffer = trainer.replay_buffer
        assert buffer.flat_by_turn
        for uid, turns in (("alike", [[1.0, 0.0], [1.0, 0.0]]), ("different", [[1.0, 0.0], [0.0, 1.0]])):
            tq.kv_batch_put(keys=[uid], partition_id="train", tags=[{"is_prompt": True, "status": "finished",
                                                                        "global_steps": 1}])
            fields = [{"rm_scores": torch.tensor([0.0, 0.5]), "extra_fields": {"turn_scores": scores, "turn_offsets": [0, 1],
                                                                               "task_turns": 2}} for scores in turns]
            tq.kv_batch_put(keys=[f"{uid}_{session}_0" for session in range(2)], partition_id="train",
                            fields=list_of_dict_to_tensordict(fields), tags=[{"status": "success"}] * 2)
        buffer._sync_metadata_from_transfer_queue()
        _, evicted, _, counts = buffer._terminal_eviction_reasons(1, "train")
        assert evicted == {"alike"} and counts == {0.5: 1}
        tq.kv_clear(keys=["alike", "different", *(f"{uid}_{s}_0" for uid in ("alike", "different") for s in range(2))],
                    partition_id="train")
