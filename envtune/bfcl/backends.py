"""The eight simulated API classes of BFCL multi-turn, loaded from a pinned release."""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from pathlib import Path

from envtune.bfcl.release import import_bfcl_package, package_dir

BACKEND_PACKAGE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"

# class name -> (backend module, tool-doc file)
BACKENDS: dict[str, tuple[str, str]] = {
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system.json"),
    "MathAPI": ("math_api", "math_api.json"),
    "MessageAPI": ("message_api", "message_api.json"),
    "TwitterAPI": ("posting_api", "posting_api.json"),
    "TicketAPI": ("ticket_api", "ticket_api.json"),
    "TradingBot": ("trading_bot", "trading_bot.json"),
    "TravelAPI": ("travel_booking", "travel_booking.json"),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control.json"),
}

# Classes without a scenario: the official executor never calls their `_load_scenario`.
STATELESS_CLASSES = frozenset({"MathAPI"})


def _check_class(class_name: str) -> None:
    if class_name not in BACKENDS:
        known = ", ".join(BACKENDS)
        raise KeyError(f"unknown BFCL backend class {class_name!r}; known classes: {known}")


@lru_cache(maxsize=None)
def backend_class(class_name: str, release: str | None = None) -> type:
    """The backend class itself; importing it pulls in only the standard library and mpmath."""
    _check_class(class_name)
    import_bfcl_package(release)
    module = importlib.import_module(f"{BACKEND_PACKAGE}.{BACKENDS[class_name][0]}")
    return getattr(module, class_name)



@lru_cache(maxsize=None)
def class_tool_docs(class_name: str, release: str | None = None) -> tuple[dict, ...]:
    """The official tool docs (BFCL JSON form) of one class, in file order."""
    _check_class(class_name)
    path: Path = package_dir(release) / "data" / "multi_turn_func_doc" / BACKENDS[class_name][1]
    with path.open(encoding="utf-8") as handle:
        return tuple(json.loads(line) for line in handle if line.strip())
