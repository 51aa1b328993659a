"""Argument types for the command line: a bad value is refused by argparse with the flag's name
and what it accepts, before any work starts."""

from __future__ import annotations

import argparse
from typing import Callable


def _bounded(kind: type, low: float, inclusive: bool, description: str) -> Callable[[str], float | int]:
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}") from None
        if value < low or (value == low and not inclusive) or value != value:  # value != value: NaN
            raise argparse.ArgumentTypeError(f"expected {description}, got {text!r}")
        return value

    parse.__name__ = description  # argparse names the type in some messages
    return parse


positive_int = _bounded(int, 0, False, "a positive integer")
non_negative_int = _bounded(int, 0, True, "an integer of 0 or more")
positive_float = _bounded(float, 0.0, False, "a positive number")
non_negative_float = _bounded(float, 0.0, True, "a number of 0 or more")
