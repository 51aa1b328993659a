"""Actionable environment feedback: the augmented mode's hints on top of the official results."""

from envtune.feedback.core import (
    CATEGORIES,
    HINT_PREFIX,
    FeedbackContext,
    Hint,
    augment,
    error_message,
    find_hint,
    hint_rule,
    render,
)

__all__ = [
    "CATEGORIES", "HINT_PREFIX", "FeedbackContext", "Hint", "augment", "error_message", "find_hint", "hint_rule", "render",
]
