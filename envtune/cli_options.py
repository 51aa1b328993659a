"""Options that several commands share, defined once so that a flag has one name, one meaning and one
help text wherever it appears.

The episode options map one to one onto `EpisodeConfig` fields (the flag is the field name with
dashes), so a command can pass what was given straight to a config.
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping, Sequence

from envtune.bfcl.release import DEFAULT_RELEASE, RELEASE_ENV_VAR, RELEASES
from envtune.cli_values import positive_int
from envtune.env.episode import FEEDBACK_MODES
from envtune.env.prompts import PROMPT_VARIANTS

EPISODE_FIELDS = ("feedback", "protocol", "prompt", "max_steps_per_turn")

_PROTOCOL_HELP = {
    "envtune": "envtune (<think>, then a <tool_call> JSON list or an <answer>)",
    "prompt": "prompt (BFCL prompt mode: a Python list of calls)",
    "native": "native (function calling; endpoints only)",
}


def add_release_argument(parser: argparse.ArgumentParser) -> None:
    """`--release`: which pinned bfcl-eval release supplies the tasks and the official rules."""
    parser.add_argument(
        "--release", choices=sorted(RELEASES), default=None,
        help=f"pinned bfcl-eval release (default: ${RELEASE_ENV_VAR} or {DEFAULT_RELEASE})",
    )


def add_episode_arguments(
    parser: argparse.ArgumentParser, *, protocols: Sequence[str], defaults: Mapping[str, Any] | None,
    default_notes: Mapping[str, str] | None = None,
) -> None:
    """Add `--feedback`, `--protocol` (choices: `protocols`), `--prompt`, `--max-steps-per-turn` and
    `--release`.

    `defaults` gives each EpisodeConfig field in EPISODE_FIELDS its default; None leaves them all None
    ("not given"), for a command whose config file supplies the values. `default_notes` replaces the
    help's default for a field whose default the command works out itself (given as None)."""
    notes = dict(default_notes or {})

    def add(field: str, help: str, **kwargs: Any) -> None:
        value = None if defaults is None else defaults[field]
        shown = notes.get(field, "the config's value" if defaults is None else value)
        parser.add_argument("--" + field.replace("_", "-"), default=value, help=f"{help} (default: {shown})", **kwargs)

    add("feedback", "tool results: standard (BFCL's result strings as they are) or augmented (errors get a "
        "Hint: line saying what is wrong)", choices=FEEDBACK_MODES)
    add("protocol", "reply format: " + ", ".join(_PROTOCOL_HELP[name] for name in protocols), choices=tuple(protocols))
    add("prompt", "system prompt: basic, extended (adds rules for ambiguous requests) or bfcl (BFCL's own "
        "prompt-mode text; needs --protocol prompt)", choices=PROMPT_VARIANTS)
    add("max_steps_per_turn", "steps a turn may take: replies in tune, play and replay; in eval, executed call "
        "steps as BFCL counts them, one more force-quits the entry", type=positive_int, metavar="N")
    add_release_argument(parser)


def episode_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The EpisodeConfig fields given on the command line (not None), by field name."""
    return {field: getattr(args, field) for field in EPISODE_FIELDS if getattr(args, field) is not None}


def add_verbose_argument(parser: argparse.ArgumentParser, quiet: str, extra: str = "") -> None:
    """`--verbose`: the libraries' own output back on the console (see `envtune.console.quiet_libraries`).
    `quiet` says what the command prints without it, `extra` what else it shows with it."""
    shown = ", ".join(filter(None, (extra, "info logs, warnings and the progress bars of loading and saving weights")))
    parser.add_argument("--verbose", action="store_true",
                        help=f"also show the libraries' own output: {shown} (default: {quiet}; errors always show)")
