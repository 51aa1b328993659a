"""Tasks load into typed objects; tool schemas follow the turns; splits are deterministic."""

from collections import Counter

import pytest

from envtune.bfcl.splits import SPLIT_NAMES, check_manifest, generate_splits, split_ids, split_tasks
from envtune.bfcl.tasks import CATEGORIES, category_of, load_tasks


def test_four_categories_of_two_hundred(tasks):
    assert Counter(task.category for task in tasks.values()) == {category: 200 for category in CATEGORIES}
    for task in tasks.values():
        assert len(task.turns) == task.num_turns == len(task.ground_truth)
        assert task.long_context == (task.category == "long_context")
        assert category_of(task.id) == task.category


def test_held_out_tools_appear_only_from_their_turn(tasks):
    held_out = [task for task in tasks.values() if task.held_out_tools]
    assert {task.category for task in held_out} == {"miss_func"}
    for task in held_out:
        for turn, names in task.held_out_tools.items():
            assert task.turns[turn] == ()  # the turn where they come back has no user message
            before = {doc["name"] for doc in task.tool_docs(turn - 1)}
            after = {doc["name"] for doc in task.tool_docs(turn)}
            assert set(names) <= after and not set(names) & before


def test_openai_tools_are_valid_function_tools(tasks):
    task = tasks["multi_turn_base_0"]
    tools = task.openai_tools()
    assert len(tools) == len(task.tool_docs())
    for tool in tools:
        assert tool["type"] == "function"
        parameters = tool["function"]["parameters"]
        assert parameters["type"] == "object"
        for schema in parameters["properties"].values():
            assert schema["type"] in {"string", "integer", "number", "boolean", "array", "object"}
            if schema["type"] == "array" and "items" in schema:
                assert schema["items"]["type"] in {"string", "integer", "number", "boolean", "array", "object"}


def test_tool_docs_match_the_backend_methods(tasks):
    from envtune.bfcl.executor import ToolSession

    for task in list(tasks.values())[::25]:
        with ToolSession.for_task(task) as session:
            assert {doc["name"] for doc in task.tool_docs(task.num_turns)} == set(session.tool_names)


def test_tool_docs_are_copies(tasks):
    task = tasks["multi_turn_base_0"]
    task.tool_docs()[0]["name"] = "changed"
    assert task.tool_docs()[0]["name"] != "changed"


def test_unknown_category_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown BFCL category 'misc'"):
        load_tasks(["misc"])


def test_shipped_splits_regenerate_from_the_seed(tasks):
    assert check_manifest(tasks) == []
    assert generate_splits(list(tasks)[::-1]) == {name: split_ids(name) for name in SPLIT_NAMES}


def test_split_sizes_and_strata():
    sizes = {"train": 100, "val": 25, "test": 75, "heldout": 100}
    for name, per_category in sizes.items():
        counts = Counter(category_of(task_id) for task_id in split_ids(name))
        assert counts == {category: per_category for category in CATEGORIES}
    assert set(split_ids("format")) <= set(split_ids("train")) and len(split_ids("format")) == 75
    assert not set(split_ids("train")) & set(split_ids("heldout"))
    assert [task.id for task in split_tasks("val")] == split_ids("val")


def test_a_different_seed_gives_different_splits(tasks):
    assert generate_splits(tasks, seed=1)["train"] != split_ids("train")
