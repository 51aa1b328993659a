"""Per-turn checks and entry verdicts follow the official multi-turn rules."""

import pytest

from envtune.bfcl.scoring import TurnChecker, score_entry, summarize


def ground_truth(task):
    return [[list(turn)] for turn in task.ground_truth]


def test_every_ground_truth_entry_passes(tasks):
    failures = [task.id for task in tasks.values() if not score_entry(task, ground_truth(task)).valid]
    assert failures == []
    assert len(tasks) == 800


def test_fewer_turns_means_force_terminated(tasks):
    task = tasks["multi_turn_base_0"]
    verdict = score_entry(task, ground_truth(task)[:-1])
    assert not verdict.valid
    assert verdict.error_type == "multi_turn:force_terminated"


@pytest.mark.parametrize("empty_turn", [[], [[]]])
def test_a_turn_without_calls_fails_when_ground_truth_has_calls(tasks, empty_turn):
    task = tasks["multi_turn_base_0"]
    decoded = ground_truth(task)
    decoded[1] = empty_turn
    verdict = score_entry(task, decoded)
    assert (verdict.valid, verdict.failing_turn) == (False, 1)
    assert verdict.error_type == "multi_turn:empty_turn_model_response"


def test_wrong_state_fails_the_state_check(tasks):
    task = tasks["multi_turn_miss_func_0"]
    decoded = ground_truth(task)
    decoded[0] = [["cd(folder='document')", "mkdir(dir_name='tmp')", "mv(source='final_report.pdf', destination='tmp')"]]
    verdict = score_entry(task, decoded)
    assert verdict.error_type == "multi_turn:instance_state_mismatch"
    assert verdict.turns[0].state_differences == ("GorillaFileSystem.root",)


def test_missing_read_result_fails_the_response_check(tasks):
    task = tasks["multi_turn_miss_func_0"]
    decoded = ground_truth(task)
    decoded[1] = [["cd(folder='temp')"]]  # skips the grep whose output the user asked for
    verdict = score_entry(task, decoded)
    assert verdict.error_type == "multi_turn:execution_response_mismatch"
    assert verdict.failing_turn == 1
    assert verdict.turns[1].state_ok and not verdict.turns[1].response_ok
    assert len(verdict.turns[1].missing_results) == 1


def test_earlier_results_count_for_later_turns(tasks):
    task = tasks["multi_turn_miss_func_0"]
    decoded = ground_truth(task)
    decoded[0] = [decoded[0][0] + ["cd(folder='temp')", "grep(file_name='final_report.pdf', pattern='budget analysis')", "cd(folder='..')"]]
    assert score_entry(task, decoded).valid


def test_calls_in_unchecked_turns_still_change_state(tasks):
    task = tasks["multi_turn_miss_func_0"]
    assert task.ground_truth[2] == ()
    decoded = ground_truth(task)
    decoded[2] = [["mkdir(dir_name='surprise')"]]
    verdict = score_entry(task, decoded, all_turns=True)
    assert verdict.turns[2].checked is False and verdict.turns[2].passed
    assert verdict.failing_turn == 3
    assert not any(turn.passed for turn in verdict.turns[3:])


def test_incremental_checker_matches_whole_entry_scoring(tasks):
    task = tasks["multi_turn_long_context_3"]
    with TurnChecker(task) as checker:
        verdicts = []
        for calls in task.ground_truth:
            for call in calls:  # one call per step
                checker.run_step([call])
            verdicts.append(checker.finish_turn())
        with pytest.raises(IndexError):
            checker.finish_turn()
    assert [verdict.passed for verdict in verdicts] == [True] * task.num_turns
    assert checker.session_results and len(checker.session_results) == sum(map(len, task.ground_truth))


def test_overall_is_the_unweighted_mean_of_the_four_categories(tasks):
    chosen = [tasks[f"multi_turn_{category}_{index}"] for category in ("base", "miss_func", "miss_param", "long_context") for index in range(2)]
    chosen.append(tasks["multi_turn_base_2"])
    verdicts = [score_entry(task, ground_truth(task)) for task in chosen]
    verdicts[0] = score_entry(chosen[0], [])  # force-terminated
    report = summarize(verdicts)
    assert report.categories["base"].accuracy == pytest.approx(2 / 3)
    assert report.overall == pytest.approx((2 / 3 + 1 + 1 + 1) / 4)
    partial = summarize(verdicts[:2])
    assert partial.overall is None and partial.mean_of_scored == pytest.approx(0.5)
    assert "n/a" in partial.table()
