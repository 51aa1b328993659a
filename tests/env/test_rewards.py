"""Reward formulas of the paper (format, progress, binary, mixed), with property tests for bounds and monotonicity."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envtune.env.record import EpisodeRecord
from envtune.env.rewards import binary_reward, format_reward, mixed_reward, progress_reward, reward


@st.composite
def records(draw):
    num_turns = draw(st.integers(1, 8))
    successes = tuple(draw(st.lists(st.booleans(), max_size=num_turns)))
    responses = draw(st.integers(0, 30))
    return EpisodeRecord(
        num_turns=num_turns, turn_successes=successes, responses=responses,
        format_violations=draw(st.integers(0, responses)),
        valid_calls=draw(st.integers(0, 20)), invalid_calls=draw(st.integers(0, 20)),
    )


def test_the_formulas_on_an_example():
    record = EpisodeRecord(num_turns=4, turn_successes=(True, False, True), responses=5, format_violations=1, valid_calls=3, invalid_calls=1)
    assert format_reward(record) == pytest.approx(4 / 5 + 3 / 4)
    assert progress_reward(record) == pytest.approx(2 / 4)
    assert progress_reward(record, over="reached") == pytest.approx(2 / 3)
    assert binary_reward(record) == 0.0
    assert mixed_reward(record) == pytest.approx(0.9 * 0.5 + 0.1 * (4 / 5 + 3 / 4))
    assert reward("progress_reached", record) == pytest.approx(2 / 3)


def test_no_call_means_no_format_reward():
    assert format_reward(EpisodeRecord(num_turns=1, turn_successes=(True,), responses=3)) == 0.0


def test_binary_needs_every_turn():
    assert binary_reward(EpisodeRecord(num_turns=2, turn_successes=(True, True))) == 1.0
    assert binary_reward(EpisodeRecord(num_turns=2, turn_successes=(True,))) == 0.0


@given(records())
def test_bounds(record):
    assert 0.0 <= format_reward(record) <= 2.0
    assert 0.0 <= progress_reward(record) <= progress_reward(record, over="reached") <= 1.0
    assert binary_reward(record) in (0.0, 1.0)
    assert 0.0 <= mixed_reward(record) <= 1.1
    assert binary_reward(record) <= progress_reward(record)


@given(records(), st.data())
def test_progress_grows_with_each_turn_success(record, data):
    failed = [index for index, success in enumerate(record.turn_successes) if not success]
    if not failed:
        return
    index = data.draw(st.sampled_from(failed))
    better = EpisodeRecord(**{**vars(record), "turn_successes": record.turn_successes[:index] + (True,) + record.turn_successes[index + 1:]})
    assert progress_reward(better) > progress_reward(record)
    assert mixed_reward(better) > mixed_reward(record)


@given(records())
def test_fewer_format_violations_never_lower_the_format_reward(record):
    if record.format_violations == 0:
        return
    cleaner = EpisodeRecord(**{**vars(record), "format_violations": record.format_violations - 1})
    assert format_reward(cleaner) >= format_reward(record)


def test_unknown_reward_names_the_choices():
    with pytest.raises(ValueError, match="unknown reward 'dense'; choose from format, progress"):
        reward("dense", EpisodeRecord(num_turns=1, turn_successes=()))
