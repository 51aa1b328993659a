"""BFCL V3 multi-turn: tasks and splits, a safe executor over the official backends, and
official-parity scoring."""

from envtune.bfcl.calls import CallError, CallLimits, ParsedCall, ToolCall, parse_call
from envtune.bfcl.decoding import DecodeError, decode_prompt_output
from envtune.bfcl.executor import ERROR_PREFIX, ToolSession, stringify_result
from envtune.bfcl.release import DEFAULT_RELEASE, PAPER_RELEASE, RELEASES, BfclReleaseError
from envtune.bfcl.scoring import EntryVerdict, ScoreReport, TurnChecker, TurnVerdict, score_entry, summarize
from envtune.bfcl.tasks import CATEGORIES, Task, load_tasks, task_index, to_openai_tool

__all__ = [
    "CATEGORIES", "DEFAULT_RELEASE", "ERROR_PREFIX", "PAPER_RELEASE", "RELEASES",
    "BfclReleaseError", "CallError", "CallLimits", "DecodeError", "EntryVerdict", "ParsedCall",
    "ScoreReport", "Task", "ToolCall", "ToolSession", "TurnChecker", "TurnVerdict",
    "decode_prompt_output", "load_tasks", "parse_call", "score_entry", "stringify_result",
    "summarize", "task_index", "to_openai_tool",
]
