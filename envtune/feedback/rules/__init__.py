"""Hint rules, one module per concern. Importing this package registers them all: the schema-derived
rules first (a call that breaks its tool's schema is fixed there first), then the domain rules."""

import importlib
import pkgutil

from envtune.feedback.rules import schema  # noqa: F401  (registers first)

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    if _module != "schema":
        importlib.import_module(f"{__name__}.{_module}")
