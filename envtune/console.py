"""What the commands print around the libraries they drive: one line before each step that takes a
while, and the libraries' own chatter (info logs, warnings, the progress bars of loading and saving
weights) kept out of the console unless `--verbose` asks for it. Errors always show."""

from __future__ import annotations

import logging
import sys
import warnings

# Libraries whose logs and warnings `quiet_libraries` keeps to errors
LIBRARIES = ("transformers", "trl", "peft", "accelerate", "datasets", "huggingface_hub", "torch")


def status(message: str) -> None:
    """One line on stderr before a long step (loading a model, a download), so that a quiet console
    never looks stuck and stdout keeps the results."""
    print(message, file=sys.stderr, flush=True)


def quiet_libraries() -> None:
    """Keep the libraries' info logs, warnings and progress bars out of the console for the rest of
    the process: what a command prints is then envtune's own lines. Their errors still show. For
    commands that load a model with transformers (it imports transformers)."""
    from transformers.utils import logging as transformers_logging

    for name in LIBRARIES:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=rf"(?:{'|'.join(LIBRARIES)})(?:\.|$)")
    transformers_logging.disable_progress_bar()  # huggingface_hub's bars too
