"""`envtune sft`: examples are the rollout engine's sequences with the loss where GRPO puts it, recovery
examples never train on the wrong call, evaluation splits are refused, and training resumes."""

import json

import pytest
import torch

from envtune.bfcl.calls import parse_call
from envtune.bfcl.splits import split_tasks
from envtune.cli import main
from envtune.env import Episode, EpisodeConfig
from envtune.env.oracle import oracle_reply
from envtune.env.protocols import parse
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer, RolloutEngine
from envtune.sft.data import IGNORED, build_examples
from envtune.sft.recovery import rehearse


@pytest.fixture(scope="module")
def tiny():
    return load_model_and_tokenizer("tiny")


class OracleReplies:
    """The oracle's replies as a generation backend, written here independently of envtune.sft."""

    def __init__(self, tokenizer, episodes):
        self.renderer, self.episodes = ChatRenderer(tokenizer), episodes
        self.end_token_ids = (tokenizer.eos_token_id,)

    def generate(self, requests, sampling):
        return [self.renderer.encode(oracle_reply(self.episodes[request.episode_index])) + [self.end_token_ids[0]]
                for request in requests]


def spans(flags):
    """(start, end) of each run of true values."""
    found, start = [], None
    for index, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            found.append((start, index))
            start = None
    return found


@pytest.mark.parametrize("protocol, feedback", [("envtune", "augmented"), ("prompt", "standard")])
def test_an_example_is_the_rollout_of_the_oracle_with_labels_on_the_loss_mask(tiny, protocol, feedback):
    _, tokenizer = tiny
    config = EpisodeConfig(protocol=protocol, feedback=feedback)
    tasks = split_tasks("format")[:3]
    built = build_examples(tasks, tokenizer, config, max_completion_tokens=100_000)
    episodes = [Episode(task, config) for task in tasks]
    rollouts = RolloutEngine(OracleReplies(tokenizer, episodes), tokenizer, max_completion_tokens=100_000).run(episodes)
    assert len(built.examples) == 3 and not built.truncated
    for example, rollout in zip(built.examples, rollouts):
        assert example.input_ids == rollout.prompt_ids + rollout.completion_ids
        offset = len(rollout.prompt_ids)
        assert [index for index, label in enumerate(example.labels) if label != IGNORED] == \
            [offset + index for index, mask in enumerate(rollout.loss_mask) if mask]
        assert all(label in (IGNORED, token) for label, token in zip(example.labels, example.input_ids))
        assert example.rollout.reward == rollout.reward == 1.0


@pytest.mark.parametrize("feedback", ["augmented", "standard"])
def test_recovery_examples_train_on_the_correction_not_on_the_mistake(tiny, feedback):
    _, tokenizer = tiny
    config = EpisodeConfig(feedback=feedback)
    tasks = split_tasks("format")[:6]
    built = build_examples(tasks, tokenizer, config, max_completion_tokens=100_000, recovery=1.0, seed=3)
    oracle = {example.rollout.task_id: example for example in built.examples if example.mistake is None}
    recoveries = [example for example in built.examples if example.mistake is not None]
    assert len(recoveries) == 6 and not built.without_mistake
    hinted = 0
    for example in recoveries:
        rollout, mistake = example.rollout, example.mistake
        task = next(task for task in tasks if task.id == rollout.task_id)
        assert rollout.record.turn_successes == oracle[rollout.task_id].rollout.record.turn_successes
        assert rollout.reward == oracle[rollout.task_id].rollout.reward
        offset = len(rollout.prompt_ids)
        replies = [(offset + start, offset + end) for start, end in spans(rollout.loss_mask)]
        untrained = [(start, end) for start, end in replies if all(label == IGNORED for label in example.labels[start:end])]
        assert len(untrained) == 1  # the wrong reply, and only it, has no loss
        start, end = untrained[0]
        wrong = parse("envtune", {"content": tokenizer.decode(example.input_ids[start:end - 1])})
        assert wrong.kind == "calls" and wrong.calls[-1].name == parse_call(mistake.call).name
        following = replies[replies.index((start, end)) + 1]
        answer = tokenizer.decode(example.input_ids[end:following[0]])
        assert rehearse(task, config, mistake).error in answer  # the environment's own error text
        assert ("Hint: " in answer) == any(hint.turn == mistake.turn and hint.step == 1 for hint in rollout.record.hints)
        hinted += "Hint: " in answer
        assert example.labels[following[0]:following[1]] == example.input_ids[following[0]:following[1]]
        corrected = parse("envtune", {"content": tokenizer.decode(example.input_ids[following[0]:following[1] - 1])})
        right = parse_call(task.ground_truth[mistake.turn][mistake.index])
        assert corrected.calls[0].name == right.name
    assert (hinted > 0) == (feedback == "augmented")


@pytest.mark.parametrize("split", ["val", "test", "heldout"])
def test_evaluation_splits_are_refused(tmp_path, capsys, split):
    output = tmp_path / "run"
    assert main(["sft", "--model", "tiny", "--split", split, "--output", str(output)]) == 2
    error = capsys.readouterr().err
    assert f"--split {split}" in error and "evaluation" in error and "use --split train or --split format" in error
    assert not output.exists()


def test_recovery_needs_room_for_the_correction_in_the_turn(tmp_path, capsys):
    output = tmp_path / "run"
    assert main(["sft", "--model", "tiny", "--split", "format", "--recovery", "1", "--max-steps-per-turn", "1",
                 "--output", str(output)]) == 2
    assert "--recovery needs --max-steps-per-turn of at least 2" in capsys.readouterr().err
    assert not output.exists()


def mean_loss(model, examples):
    with torch.no_grad():
        return sum(model(input_ids=torch.tensor([example.input_ids]), labels=torch.tensor([example.labels])).loss.item()
                   for example in examples) / len(examples)


def sft(output, *extra):
    return main(["sft", "--model", "tiny", "--split", "format", "--output", str(output),
                 "--gradient-accumulation-steps", "1", "--save-steps", "1", "--learning-rate", "1e-2", *extra])


def test_training_lowers_the_loss_writes_a_checkpoint_and_resumes(tmp_path, tiny, capsys):
    base, tokenizer = tiny
    output = tmp_path / "run"
    assert sft(output, "--max-tasks", "2", "--max-steps", "3", "--json", str(tmp_path / "first.json")) == 0
    console = capsys.readouterr()
    assert ", loss " in console.err and "{'loss':" not in console.out + console.err  # the bar shows the loss, no dicts
    first = json.loads((tmp_path / "first.json").read_text())
    assert first["steps"] == 3 and first["resumed_from"] is None and first["output"] == str(output / "final")
    trained, _ = load_model_and_tokenizer(output / "final")
    examples = build_examples(split_tasks("format")[:2], tokenizer, EpisodeConfig(), 24576).examples
    assert first["examples"] == 2 and first["tokens_with_loss"] == sum(example.tokens_with_loss for example in examples)
    assert mean_loss(trained, examples) < mean_loss(base, examples) - 0.5

    # a kill while checkpoint-3 was being written: the same command goes on from checkpoint-2
    (output / "checkpoint-3" / "trainer_state.json").unlink()
    assert sft(output, "--max-tasks", "2", "--max-steps", "3", "--json", str(tmp_path / "second.json")) == 0
    second = json.loads((tmp_path / "second.json").read_text())
    assert second["steps"] == 3 and second["resumed_from"] == str(output / "checkpoint-2")
    history = json.loads((output / "checkpoint-3" / "trainer_state.json").read_text())["log_history"]
    assert [entry["step"] for entry in history if "loss" in entry] == [1, 2, 3]
    resumed, _ = load_model_and_tokenizer(output / "final")
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(trained.parameters(), resumed.parameters()))

    capsys.readouterr()
    assert sft(output, "--max-tasks", "2", "--max-steps", "4") == 2
    assert "holds an sft run with other settings: max_steps 3 (now 4)" in capsys.readouterr().err


def test_the_learning_rate_follows_the_chosen_schedule(tmp_path, tiny):
    def rates(schedule):
        assert sft(tmp_path / schedule, "--max-tasks", "1", "--max-steps", "2", "--lr-scheduler", schedule) == 0
        state = json.loads((tmp_path / schedule / "checkpoint-2" / "trainer_state.json").read_text())
        return [entry["learning_rate"] for entry in state["log_history"] if "loss" in entry]

    assert rates("constant") == [1e-2, 1e-2]
    linear = rates("linear")
    assert 1e-2 >= linear[0] > linear[1]


def test_lora_output_is_a_merged_plain_checkpoint(tmp_path, tiny):
    base, _ = tiny
    output = tmp_path / "lora"
    assert sft(output, "--max-tasks", "1", "--max-steps", "1", "--lora-r", "4") == 0
    final = output / "final"
    assert (final / "config.json").is_file() and not (final / "adapter_config.json").exists()
    merged, _ = load_model_and_tokenizer(final)
    assert type(merged) is type(base)
    changed = [name for (name, a), b in zip(base.named_parameters(), merged.parameters()) if not torch.equal(a, b)]
    assert changed and all("proj" in name for name in changed)  # only the linear layers LoRA adapted
