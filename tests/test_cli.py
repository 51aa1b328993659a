"""The `envtune bfcl` commands: verify, score with clear errors on bad lines, splits, task; `--help` on every command."""

import argparse
import json

import pytest

from envtune.cli import build_parser, main
from envtune.cli_options import add_episode_arguments, episode_overrides
from envtune.env import EpisodeConfig


def write_lines(path, *records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_verify_prints_the_count(capsys):
    assert main(["bfcl", "verify"]) == 0
    assert "800/800 ground-truth entries pass" in capsys.readouterr().out


def test_score_prints_a_table_and_writes_verdicts(tmp_path, capsys, tasks):
    task = tasks["multi_turn_base_0"]
    decoded = [[list(turn)] for turn in task.ground_truth]
    broken = [["[" + ", ".join(turn) + "]"] for turn in tasks["multi_turn_miss_param_3"].ground_truth]
    broken[0] = ["I am not sure what to do."]
    results = write_lines(
        tmp_path / "results.jsonl",
        {"id": task.id, "decoded": decoded},
        {"id": "multi_turn_miss_param_3", "result": broken},
    )
    out_path = tmp_path / "out" / "verdicts.json"
    assert main(["bfcl", "score", str(results), "--json", str(out_path)]) == 0
    out = capsys.readouterr().out
    assert "base                 1       1    100.00%" in out
    assert "miss_param           0       1      0.00%" in out
    document = json.loads(out_path.read_text())
    entries = {entry["id"]: entry for entry in document["entries"]}
    assert entries[task.id]["valid"] is True
    assert entries["multi_turn_miss_param_3"] == {
        "id": "multi_turn_miss_param_3", "category": "miss_param", "valid": False, "failing_turn": 0,
        "error_type": "multi_turn:empty_turn_model_response",
        "reason": "Model response list is empty for turn 0",
    }


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"id": "multi_turn_base_0", "decoded": [[[]]]', ], "results.jsonl:1: invalid JSON"),
        ([{"id": "multi_turn_base_0", "decoded": []}, {"id": "nope", "decoded": []}], "results.jsonl:2: unknown task id 'nope'"),
        ([{"id": "multi_turn_base_0"}], "give exactly one of 'decoded' or 'result'"),
        ([{"id": "multi_turn_base_0", "decoded": [], "result": []}], "give exactly one of"),
        ([{"id": "multi_turn_base_0", "decoded": [["ls()"]]}], "'decoded' must be a list (turns) of lists (steps)"),
        ([{"id": "multi_turn_base_0", "result": [[1]]}], "'result' must be a list (turns)"),
        ([{"decoded": []}], "missing or non-string 'id'"),
        ([[1, 2]], "expected a JSON object"),
        ([{"id": "multi_turn_base_0", "decoded": []}, "", {"id": "multi_turn_base_0", "decoded": []}], "results.jsonl:3: id multi_turn_base_0 already appeared on line 1"),
        ([""], "no entries"),
    ],
)
def test_bad_lines_are_named(tmp_path, capsys, lines, message):
    results = write_lines(tmp_path / "results.jsonl", *lines)
    assert main(["bfcl", "score", str(results)]) == 2
    assert message in capsys.readouterr().err


def test_missing_file_is_a_clear_error(tmp_path, capsys):
    assert main(["bfcl", "score", str(tmp_path / "absent.jsonl")]) == 2
    assert "results file not found" in capsys.readouterr().err


def test_splits_check(capsys):
    assert main(["bfcl", "splits", "--check"]) == 0
    out = capsys.readouterr().out
    assert "heldout   400 tasks  (base 100, miss_func 100, miss_param 100, long_context 100)" in out


def test_task_shows_turns_and_tools(capsys):
    assert main(["bfcl", "task", "multi_turn_miss_func_0"]) == 0
    assert "held-out tools: turn 3: sort" in capsys.readouterr().out
    assert main(["bfcl", "task", "multi_turn_miss_func_0", "--tools", "--openai"]) == 0
    tools = json.loads(capsys.readouterr().out)
    assert "sort" not in {tool["function"]["name"] for tool in tools}
    assert main(["bfcl", "task", "multi_turn_nothing_1"]) == 2


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every command and subcommand under `parser`, found through its subparsers, as argv prefixes."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from command_paths(subparser, (*path, name))


COMMANDS = list(command_paths(build_parser()))


@pytest.mark.parametrize("path", COMMANDS, ids=lambda path: " ".join(path) or "envtune")
def test_every_command_has_help(capsys, path):
    with pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith(" ".join(("usage: envtune", *path)))


def test_the_walk_reaches_nested_commands():
    assert {(), ("bfcl",), ("bfcl", "score"), ("bfcl", "fetch"), ("feedback", "coverage"), ("play",), ("serve",)} <= set(COMMANDS)


def episode_parser(defaults):
    parser = argparse.ArgumentParser()
    add_episode_arguments(parser, protocols=("envtune", "prompt"), defaults=defaults)
    return parser


def test_episode_options_without_defaults_give_only_what_was_typed():
    parser = episode_parser(None)
    assert episode_overrides(parser.parse_args([])) == {}
    args = parser.parse_args(["--feedback", "augmented", "--max-steps-per-turn", "3", "--release", "2025.6.8"])
    assert episode_overrides(args) == {"feedback": "augmented", "max_steps_per_turn": 3}  # --release is apart
    assert args.release == "2025.6.8"
    assert "(default: the config's value)" in parser.format_help()


def test_episode_options_with_defaults_make_an_episode_config():
    defaults = {"feedback": "standard", "protocol": "envtune", "prompt": "basic", "max_steps_per_turn": 5}
    args = episode_parser(defaults).parse_args(["--protocol", "prompt", "--prompt", "bfcl"])
    assert EpisodeConfig(**episode_overrides(args)) == EpisodeConfig(protocol="prompt", prompt="bfcl")


@pytest.mark.parametrize("argv, message", [
    (["--max-steps-per-turn", "0"], "argument --max-steps-per-turn: expected a positive integer, got '0'"),
    (["--protocol", "native"], "argument --protocol: invalid choice: 'native'"),
])
def test_episode_options_refuse_bad_values(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        episode_parser(None).parse_args(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["play multi_turn_base_0", "replay", "eval"])
def test_play_replay_and_eval_share_the_episode_options(command):
    args = build_parser().parse_args([*command.split(), "--feedback", "augmented", "--protocol", "prompt",
                                      "--prompt", "bfcl", "--max-steps-per-turn", "7", "--release", "2025.6.8"])
    assert episode_overrides(args) == {"feedback": "augmented", "protocol": "prompt", "prompt": "bfcl", "max_steps_per_turn": 7}
    assert args.release == "2025.6.8"
