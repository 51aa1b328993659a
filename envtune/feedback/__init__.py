"""Actionable environment feedback: the augmented mode's hints on top of the official results.

`DEFAULT_RULES` is every built-in rule; pass it, a subset or an extension to `augment(..., rules=...)`.
"""

from typing import Any

from envtune.feedback.core import (
    CATEGORIES,
    HINT_PREFIX,
    Augmented,
    FeedbackContext,
    Hint,
    HintRuleWarning,
    Rule,
    augment,
    error_message,
    find_hint,
    hint_rule,
    render,
)

__all__ = [
    "CATEGORIES", "DEFAULT_RULES", "HINT_PREFIX", "Augmented", "FeedbackContext", "Hint", "HintRuleWarning", "Rule",
    "augment", "error_message", "find_hint", "hint_rule", "render",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that importing `envtune.feedback.core` (say, to write rules of one's own)
    # does not load the built-in rules.
    if name == "DEFAULT_RULES":
        from envtune.feedback.rules import ALL_RULES

        return ALL_RULES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
