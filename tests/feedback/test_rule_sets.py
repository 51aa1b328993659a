"""The rules `augment` tries are the ones it is given: none are registered globally, and a rule that
raises is skipped but reported."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from envtune.bfcl.executor import ToolSession
from envtune.env import Episode, EpisodeConfig
from envtune.feedback import DEFAULT_RULES, Augmented, HintRuleWarning, augment, hint_rule
from envtune.feedback import rules as builtin

CALL = "cd(folder='document/x')"  # fails on multi_turn_base_0: cd takes one directory level
DEFAULT_KIND = "file_system.path_not_allowed"


@hint_rule("test.always", "parameter_constraint", r".")
def always(context, match) -> str:
    return "A hint of the caller's own."


@hint_rule("test.broken", "parameter_constraint", r".")
def broken(context, match) -> str:
    raise KeyError("missing")


@pytest.fixture
def failing(tasks):
    """`run(rules)`: augment the failing CALL with `rules`, on a fresh session of multi_turn_base_0."""
    task = tasks["multi_turn_base_0"]
    docs = {doc["name"]: doc for doc in task.tool_docs(0)}

    def run(rules) -> tuple[str, Augmented]:
        with ToolSession.for_task(task) as session:
            result = session.execute(CALL)
            return result, augment(session, CALL, result, docs, rules=rules)

    return run


def test_a_rule_placed_first_wins(failing):
    _, default = failing(DEFAULT_RULES)
    assert default.hint.kind == DEFAULT_KIND
    result, own = failing([always, *DEFAULT_RULES])
    assert own.text == f"{result}\nHint: A hint of the caller's own."
    assert (own.hint.kind, own.rule_errors) == ("test.always", ())


def test_no_rules_give_no_hint(failing):
    result, got = failing([])
    assert got == Augmented(result, None, ())


def test_a_raising_rule_is_reported_and_the_next_rule_answers(failing):
    _, default = failing(DEFAULT_RULES)
    with pytest.warns(HintRuleWarning, match=r"test\.broken .*KeyError\('missing'\)"):
        _, got = failing([broken, *DEFAULT_RULES])
    assert got == Augmented(default.text, default.hint, ("test.broken",))


def test_an_episode_counts_the_rules_that_raised(tasks):
    call = {"name": "cd", "arguments": {"folder": "document/x"}}
    reply = f"<think>act</think><tool_call>{json.dumps([call])}</tool_call>"
    config = EpisodeConfig(feedback="augmented")
    with Episode(tasks["multi_turn_base_0"], config, rules=[broken, *DEFAULT_RULES]) as episode:
        episode.reset()
        assert episode.record.hint_rule_errors == 0
        with pytest.warns(HintRuleWarning):
            record = episode.step(reply).record
    assert record.hint_rule_errors == 1
    assert [hint.kind for hint in record.hints] == [DEFAULT_KIND]


def test_default_rules_are_schema_first_then_every_domain_module_by_name():
    modules = {module.name for module in pkgutil.iter_modules(builtin.__path__)}
    domains = [domain.__name__.rpartition(".")[2] for domain in builtin.DOMAINS]
    assert domains == sorted(modules - {"schema"})  # every module is listed, in the order of their names
    assert DEFAULT_RULES[: len(builtin.schema.RULES)] == builtin.schema.RULES
    assert len({rule.kind for rule in DEFAULT_RULES}) == len(DEFAULT_RULES)


def test_importing_core_does_not_load_the_rules():
    code = "import sys, envtune.feedback.core; print('envtune.feedback.rules' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.stdout.strip() == "False"
