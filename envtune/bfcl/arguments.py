"""Check a call's arguments against its tool doc: the shared ground of schema hints and the
stage-1 reward's notion of a valid call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

# BFCL doc type -> (Python types accepted, words for people)
DOC_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "string": ((str,), "a string"),
    "integer": ((int,), "an integer"),
    "float": ((int, float), "a number"),
    "number": ((int, float), "a number"),
    "boolean": ((bool,), "a boolean (true or false)"),
    "array": ((list, tuple), "a list"),
    "tuple": ((list, tuple), "a list"),
    "dict": ((dict,), "an object"),
}


def type_problem(value: Any, schema: Mapping[str, Any]) -> str | None:
    """What is wrong with a value's type against its schema, phrased `must be ...` (None if it fits)."""
    expected = DOC_TYPES.get(schema.get("type", "any"))
    if expected is None:
        return None
    types, words = expected
    if isinstance(value, bool) and bool not in types:
        return f"must be {words}, not a boolean"
    if not isinstance(value, types):
        return f"must be {words}, not {type(value).__name__} {value!r}"
    if isinstance(value, (list, tuple)) and "items" in schema:
        for item in value:
            problem = type_problem(item, schema["items"])
            if problem:
                return f"must be a list whose items {problem.removeprefix('must be ')}"
    return None


@dataclass(frozen=True)
class ArgumentProblems:
    missing: tuple[str, ...] = ()
    unexpected: tuple[str, ...] = ()
    wrong_type: dict[str, str] = field(default_factory=dict)  # name -> "must be ..."
    outside_enum: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # name -> allowed values

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_type or self.outside_enum)


def check_arguments(doc: Mapping[str, Any], arguments: Mapping[str, Any]) -> ArgumentProblems:
    """Every way `arguments` break the tool doc (empty, and falsy, when they fit)."""
    parameters = doc.get("parameters", {})
    properties = parameters.get("properties", {})
    wrong_type, outside_enum = {}, {}
    for name, value in arguments.items():
        if name not in properties:
            continue
        problem = type_problem(value, properties[name])
        if problem:
            wrong_type[name] = problem
        allowed = properties[name].get("enum")
        if allowed and value not in allowed:
            outside_enum[name] = tuple(allowed)
    return ArgumentProblems(
        missing=tuple(name for name in parameters.get("required", []) if name not in arguments),
        unexpected=tuple(name for name in arguments if name not in properties),
        wrong_type=wrong_type,
        outside_enum=outside_enum,
    )


def signature(doc: Mapping[str, Any]) -> str:
    """A one-line signature such as `cd(folder: string)`; optional arguments carry a `?`."""
    properties = doc.get("parameters", {}).get("properties", {})
    required = set(doc.get("parameters", {}).get("required", []))
    parts = [f"{name}{'' if name in required else '?'}: {spec.get('type', 'any')}" for name, spec in properties.items()]
    return f"{doc['name']}({', '.join(parts)})"
