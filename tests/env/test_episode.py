"""Episode turn rules, feedback modes and independence."""

import copy
import json
import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from envtune.bfcl.executor import ToolSession
from envtune.bfcl.mutations import mutate_trajectory
from envtune.bfcl.scoring import score_entry
from envtune.env import Episode, EpisodeConfig
from envtune.env.prompts import CALLED_WHEN_ASKING
from envtune.feedback import HINT_PREFIX

ANSWER = "<think>done</think><answer>Done.</answer>"


def call_reply(*calls):
    payload = [{"name": name, "arguments": arguments} for name, arguments in calls]
    return f"<think>act</think><tool_call>{json.dumps(payload)}</tool_call>"


def ground_truth_reply(episode, calls):
    structured = [episode.checker.session.describe(call) for call in calls]
    return call_reply(*[(call.name, call.arguments) for call in structured])


def test_reset_shows_tools_and_the_first_request(tasks):
    task = tasks["multi_turn_miss_func_0"]
    with Episode(task) as episode:
        system, first = episode.reset()
    assert system["role"] == "system" and '"name": "mkdir"' in system["content"]
    assert '"name": "sort"' not in system["content"]  # held out until turn 3
    assert first == {"role": "user", "content": task.turns[0][0]["content"]}


def test_an_answer_closes_the_turn_and_the_next_request_follows(tasks):
    task = tasks["multi_turn_base_0"]
    with Episode(task) as episode:
        episode.reset()
        step = episode.step(ground_truth_reply(episode, task.ground_truth[0]))
        assert not step.done and step.record.turn == 0 and step.messages[0]["content"].startswith("<tool_response>")
        step = episode.step(ANSWER)
        assert step.messages == [{"role": "user", "content": task.turns[1][0]["content"]}]
        assert step.record.turn_successes == (True,) and step.record.turn == 1


def test_standard_feedback_carries_official_results_byte_for_byte(tasks):
    task = tasks["multi_turn_base_0"]
    calls = [("cd", {"folder": "document"}), ("cat", {"file_name": "missing.txt"}), ("mkdir", {"dir_name": "a/b"})]
    with Episode(task) as episode, ToolSession.for_task(task) as reference:
        episode.reset()
        content = episode.step(call_reply(*calls)).messages[0]["content"]
        expected = [reference.execute(f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})") for name, args in calls]
    lines = content.split("\n")[1:4]
    assert lines == [f"[{number}] {name}: {result}" for number, ((name, _), result) in enumerate(zip(calls, expected), 1)]
    assert HINT_PREFIX not in content


def test_augmented_feedback_adds_hints_without_changing_anything_else(tasks):
    task = tasks["multi_turn_base_0"]
    replies = [call_reply(("cd", {"folder": "document/x"}), ("cat", {"file_name": "nope.txt"}), ("cd", {"folder": "document"})), ANSWER]
    runs = {}
    for mode in ("standard", "augmented"):
        with Episode(task, EpisodeConfig(feedback=mode)) as episode:
            episode.reset()
            messages = [episode.step(reply).messages for reply in replies]
            runs[mode] = (messages, episode.checker.session.state(), episode.record)
    standard, augmented = runs["standard"], runs["augmented"]
    assert standard[1] == augmented[1]  # same environment state
    assert standard[2].turn_successes == augmented[2].turn_successes
    standard_lines = standard[0][0][0]["content"].split("\n")
    augmented_lines = [line for line in augmented[0][0][0]["content"].split("\n") if not line.startswith(HINT_PREFIX)]
    assert standard_lines == augmented_lines
    assert augmented[0][0][0]["content"].count(HINT_PREFIX) == 2
    assert [hint.kind.split(".")[0] for hint in augmented[2].hints] == ["file_system", "file_system"]
    assert standard[2].hints == ()


def test_a_format_error_counts_as_a_step_and_runs_nothing(tasks):
    task = tasks["multi_turn_base_0"]
    with Episode(task) as episode:
        episode.reset()
        step = episode.step("I will look at the files now.")
        assert step.messages[0]["content"].startswith("Your last reply could not be read: Text outside the tags")
        assert (step.record.step, step.record.format_violations, step.record.turn) == (1, 1, 0)


def test_the_step_limit_closes_the_turn(tasks):
    task = tasks["multi_turn_base_0"]
    with Episode(task, EpisodeConfig(max_steps_per_turn=2)) as episode:
        episode.reset()
        episode.step(call_reply(("ls", {})))
        step = episode.step(call_reply(("pwd", {})))
        assert step.record.turn == 1 and step.record.turn_successes == (False,)
        assert step.messages[0]["content"].startswith("<tool_response>")  # results of the last step still shown
        assert step.messages[-1] == {"role": "user", "content": task.turns[1][0]["content"]}


@pytest.mark.parametrize("protocol, reply", [("prompt", "I cannot find it."), ("native", {"role": "assistant", "content": "I cannot find it."})])
def test_a_non_call_reply_closes_the_turn(tasks, protocol, reply):
    with Episode(tasks["multi_turn_base_0"], EpisodeConfig(protocol=protocol)) as episode:
        episode.reset()
        assert episode.step(reply).record.turn_successes == (False,)


@pytest.fixture
def at_ask_turn(tasks):
    """An episode of a miss_param task played with the ground truth up to its first ask turn."""
    task = tasks["multi_turn_miss_param_0"]
    turn = task.ground_truth.index(())
    with Episode(task) as episode:
        episode.reset()
        for calls in task.ground_truth[:turn]:
            episode.step(ground_truth_reply(episode, calls))
            episode.step(ANSWER)
        yield episode, turn


def test_an_ask_turn_rewards_an_answer(at_ask_turn):
    episode, turn = at_ask_turn
    step = episode.step("<think>the value is missing</think><answer>Which one do you mean?</answer>")
    assert step.record.turn_successes[turn] is True
    assert CALLED_WHEN_ASKING not in step.messages[0]["content"]


def test_an_ask_turn_call_scores_zero_is_not_run_and_is_warned_about(at_ask_turn):
    episode, turn = at_ask_turn
    before = copy.deepcopy(episode.checker.session.state())
    step = episode.step(ground_truth_reply(episode, episode.task.ground_truth[turn + 1]))
    assert step.record.turn_successes[turn] is False
    assert episode.checker.session.state() == before
    assert step.messages[0]["content"].startswith(CALLED_WHEN_ASKING)


def test_held_out_tools_are_announced_at_their_turn(tasks):
    task = tasks["multi_turn_miss_func_0"]
    (back_at, names), = task.held_out_tools.items()
    config = EpisodeConfig(feedback="augmented", block_held_out_tools=True)
    with Episode(task, config) as episode:
        episode.reset()
        early = episode.step(call_reply(("sort", {"file_name": "final_report.pdf"}))).messages[0]["content"]
        assert "name 'sort' is not defined" in early and "is not available yet" in early
        episode.step(ANSWER)
        while episode.turn < back_at:
            step = episode.step(ANSWER)
        announcement = step.messages[0]["content"]
        assert announcement.startswith("New tools are available") and '"name": "sort"' in announcement
        assert "sort" in [tool["function"]["name"] for tool in episode.tools()]


def test_the_episode_ends_after_the_last_turn(tasks):
    task = tasks["multi_turn_base_0"]
    with Episode(task) as episode:
        episode.reset()
        for _ in range(task.num_turns):
            step = episode.step(ANSWER)
        assert step.done and step.messages == [] and len(step.record.turn_verdicts) == task.num_turns
        with pytest.raises(RuntimeError, match="is done"):
            episode.step(ANSWER)


def test_bad_configs_name_the_value():
    with pytest.raises(ValueError, match="feedback='hints' is not valid; choose from standard, augmented"):
        EpisodeConfig(feedback="hints")
    with pytest.raises(ValueError, match="max_steps_per_turn must be a positive integer, not 0"):
        EpisodeConfig(max_steps_per_turn=0)


def drive(task, trajectory, max_steps=20):
    """Play a decoded trajectory through an episode: each step a reply, then an answer per turn."""
    with Episode(task, EpisodeConfig(max_steps_per_turn=max_steps)) as episode:
        episode.reset()
        for calls_per_step in trajectory:
            for calls in calls_per_step:
                episode.step(ground_truth_reply(episode, calls))
            if not episode.done:
                episode.step(ANSWER)
        return [verdict.passed for verdict in episode.turn_verdicts]


def test_turn_verdicts_equal_the_official_per_turn_checks(tasks):
    """Mutated trajectories through the episode give the per-turn verdicts of `score_entry`."""
    compared = 0
    for index, task in enumerate(list(tasks.values())[::8]):
        kind, trajectory = mutate_trajectory(task, random.Random(index))
        if len(trajectory) != task.num_turns or any(steps and not truth for steps, truth in zip(trajectory, task.ground_truth)):
            continue  # force-terminated, or calls where the episode allows none
        with ToolSession.for_task(task) as session:
            bound = [[[session.describe(call).to_python() for call in step] for step in turn] for turn in trajectory]
        official = score_entry(task, bound, all_turns=True)
        expected = [verdict.passed for verdict in official.turns]
        ask_turns = [not truth for truth in task.ground_truth]
        got = drive(task, trajectory)
        assert [g for g, ask in zip(got, ask_turns) if not ask] == [e for e, ask in zip(expected, ask_turns) if not ask], (task.id, kind)
        compared += 1
    assert compared > 40


def test_episodes_run_concurrently_without_sharing_state(tasks):
    chosen = [tasks[f"multi_turn_base_{index}"] for index in range(12)]

    def oracle(task):
        with Episode(task, EpisodeConfig(feedback="augmented")) as episode:
            episode.reset()
            for calls in task.ground_truth:
                if calls:
                    episode.step(ground_truth_reply(episode, calls))
                episode.step(ANSWER)
            return task.id, episode.reward(), episode.checker.session.state()

    sequential = [oracle(task) for task in chosen]
    with ThreadPoolExecutor(max_workers=6) as pool:
        concurrent = list(pool.map(oracle, chosen * 2))
    assert all(reward == 1.0 for _, reward, _ in concurrent)
    assert concurrent[: len(chosen)] == sequential and concurrent[len(chosen):] == sequential


def test_prompt_variants_differ_by_the_two_rules_for_missing_information(tasks):
    task = tasks["multi_turn_base_0"]
    prompts_by_variant = {}
    for variant in ("basic", "extended"):
        with Episode(task, EpisodeConfig(prompt=variant)) as episode:
            prompts_by_variant[variant] = episode.reset()[0]["content"]
    extra = prompts_by_variant["extended"].replace(prompts_by_variant["basic"], "")
    assert "look for a tool that can find it" in extra and "do not invent a call" in extra
    assert prompts_by_variant["extended"].startswith(prompts_by_variant["basic"])


def test_the_compact_prompt_lists_every_tool_with_its_arguments_in_one_line(tasks):
    task = tasks["multi_turn_miss_func_0"]
    with Episode(task, EpisodeConfig(prompt="compact")) as compact, Episode(task) as basic:
        short, full = compact.reset()[0]["content"], basic.reset()[0]["content"]
        lines = short.split("Tools you can call:\n")[1].split("\n\nRules:")[0].splitlines()
        docs = compact.tool_docs()
        assert [line.split("(")[0] for line in lines] == [doc["name"] for doc in docs]
        for line, doc in zip(lines, docs):
            required = doc["parameters"].get("required", [])
            for name, spec in doc["parameters"]["properties"].items():
                assert f"{name}{'' if name in required else '?'}: {spec['type']}" in line
        assert "This tool belongs to" not in short and len(short) * 3 < len(full)
        assert short.split("Rules:")[1] == full.split("Rules:")[1]  # the basic rules
        (back_at, names), = task.held_out_tools.items()
        while compact.turn < back_at:
            step = compact.step(ANSWER)
        assert any(line.startswith(f"{name}(") for name in names for line in step.messages[0]["content"].splitlines())


def official(**overrides):
    return EpisodeConfig(**{"turn_rules": "official", "max_steps_per_turn": 20, **overrides})


def test_under_official_rules_the_oracle_passes_every_entry(tasks):
    from envtune.env.oracle import oracle_reply

    failures = []
    for task in list(tasks.values())[::5]:
        with Episode(task, official()) as episode:
            episode.reset()
            while not episode.done:
                episode.step(oracle_reply(episode))
            if not episode.official_verdict().valid:
                failures.append(task.id)
    assert failures == []


def test_under_official_rules_ask_turn_calls_run_and_the_step_limit_force_quits(tasks):
    task = tasks["multi_turn_miss_param_0"]
    turn = task.ground_truth.index(())
    with Episode(task, official(max_steps_per_turn=2)) as episode:
        episode.reset()
        for calls in task.ground_truth[:turn]:
            episode.step(ground_truth_reply(episode, calls))
            episode.step(ANSWER)
        before = copy.deepcopy(episode.checker.session.state())
        episode.step(call_reply(("mkdir", {"dir_name": "made_when_asked"})) if "GorillaFileSystem" in task.involved_classes
                     else ground_truth_reply(episode, task.ground_truth[turn + 1]))
        assert episode.checker.session.state() != before  # ran, as the official checker runs it
        step = episode.step(call_reply(("ls", {})))  # the second executed call step: at the limit
        assert not step.done and not episode.force_quit
        step = episode.step(call_reply(("ls", {})))  # the third goes past it: the entry is force-quit
        assert step.done and episode.force_quit and step.closed_turn.turn == turn and step.request == []
        assert len(episode.scored_trajectory()) == turn + 1 < task.num_turns  # the quitting turn is kept
        verdict = episode.official_verdict()
        assert not verdict.valid and verdict.error_type == "multi_turn:force_terminated"


def test_under_official_rules_a_reply_without_calls_ends_the_turn_and_only_call_steps_count(tasks):
    task = tasks["multi_turn_base_0"]
    with Episode(task, official(max_steps_per_turn=2)) as episode:
        episode.reset()
        step = episode.step("<think>x</think>")  # does not follow the protocol: ends the turn, as BFCL's undecodable reply
        assert step.closed_turn is not None and episode.turn == 1 and step.feedback == []
        for _ in range(2):
            assert not episode.step(call_reply(("ls", {}))).done
        step = episode.step(ANSWER)  # two executed steps are within the limit
        assert step.closed_turn.turn == 1 and not episode.force_quit


def test_a_force_quit_on_the_last_turn_keeps_every_turn_and_is_scored_normally(tasks):
    task = tasks["multi_turn_base_0"]
    with Episode(task, official(max_steps_per_turn=3)) as episode:
        episode.reset()
        for calls in task.ground_truth[:-1]:
            episode.step(ground_truth_reply(episode, calls))
            episode.step(ANSWER)
        episode.step(ground_truth_reply(episode, task.ground_truth[-1]))
        for _ in range(3):  # idle calls that change nothing, up to one past the limit
            step = episode.step(call_reply(("pwd", {})))
        assert step.done and episode.force_quit and len(episode.trajectory[-1]) == 4
        assert len(episode.scored_trajectory()) == task.num_turns
        assert episode.official_verdict().valid


def test_official_verdicts_equal_scoring_the_trajectory(tasks):
    """Mutated trajectories played under official rules get score_entry's verdict of the same calls."""
    compared = 0
    for index, task in enumerate(list(tasks.values())[3::8]):
        kind, trajectory = mutate_trajectory(task, random.Random(1000 + index))
        if len(trajectory) != task.num_turns:
            continue
        # a reply holds at least one call, and the official runner drops empty steps as well
        trajectory = [[step for step in turn if step] for turn in trajectory]
        with Episode(task, official()) as episode:
            episode.reset()
            for calls_per_step in trajectory:
                for calls in calls_per_step:
                    episode.step(ground_truth_reply(episode, calls))
                episode.step(ANSWER)
            mine = episode.official_verdict()
            with ToolSession.for_task(task) as session:
                bound = [[[session.describe(call).to_python() for call in step] for step in turn] for turn in trajectory]
            assert (mine.valid, mine.error_type) == (score_entry(task, bound).valid, score_entry(task, bound).error_type), (task.id, kind)
            compared += 1
    assert compared > 40


def test_the_bfcl_prompt_is_the_official_prompt_mode_text(tasks):
    task = tasks["multi_turn_miss_func_0"]
    config = official(protocol="prompt", prompt="bfcl", block_held_out_tools=True)
    with Episode(task, config) as episode:
        system = episode.reset()[0]["content"]
        assert system.startswith("You are an expert in composing functions.")
        assert json.dumps(task.tool_docs(0), indent=4) in system  # the docs as the 2026 release prints them
        while episode.turn < 3:
            step = episode.step("I cannot do that.")
        announcement = step.messages[-1]["content"]
        assert announcement == f"{task.tool_docs(3)[-1:]}\nI have updated some more functions you can choose from. What about now?"
    with pytest.raises(ValueError, match="use it with protocol='prompt'"):
        EpisodeConfig(prompt="bfcl")


def test_the_bfcl_prompt_of_the_june_2025_release():
    import subprocess
    import sys

    script = (
        "from envtune.bfcl.official_prompts import system_prompt\n"
        "from envtune.bfcl.tasks import task_index\n"
        "docs = task_index()['multi_turn_base_0'].tool_docs(0)\n"
        "text = system_prompt(docs)\n"
        "print(text.startswith('You are an expert in composing functions. You are given'), str(docs) in text)\n"
    )
    env = {**__import__("os").environ, "ENVTUNE_BFCL_RELEASE": "2025.6.8"}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert run.stdout.split() == ["True", "True"]  # one template, docs filled in as Python prints the list
