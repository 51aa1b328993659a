"""Tool calls as data: parsing Python call strings without ever evaluating them.

Ground truth and prompt-mode model output are Python call strings such as `cd(folder='docs')`.
We parse them with `ast` and accept only literal argument values (plus arithmetic on numeric
literals, which the official executor would also compute), under size limits, so a hostile string
can neither run code nor exhaust memory.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


class CallError(ValueError):
    """A call that cannot be parsed or run; the message becomes the error result of the call."""


@dataclass(frozen=True)
class CallLimits:
    """Bounds on one call. Each is far above anything the benchmark uses."""

    max_source_chars: int = 200_000
    max_depth: int = 16  # nesting of lists / dicts / tuples in one argument
    max_values: int = 20_000  # literal nodes in one call
    max_string_chars: int = 100_000
    max_int_bits: int = 256
    timeout_seconds: float = 5.0


DEFAULT_LIMITS = CallLimits()


@dataclass(frozen=True)
class ToolCall:
    """A call by tool name with keyword arguments: the one structure every call path ends in."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_python(self) -> str:
        """The call as a Python call string, as the official checker consumes it."""
        rendered = ", ".join(f"{key}={value!r}" for key, value in self.arguments.items())
        return f"{self.name}({rendered})"


@dataclass(frozen=True)
class ParsedCall:
    """A call string after parsing and before its positional arguments are bound to names."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


_ARITHMETIC = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


class LiteralReader:
    """Evaluates the literal subset of Python expressions under `CallLimits`."""

    def __init__(self, limits: CallLimits):
        self.limits = limits
        self.values = 0

    def read(self, node: ast.AST, depth: int = 0) -> Any:
        self.values += 1
        if self.values > self.limits.max_values:
            raise CallError(f"call has more than {self.limits.max_values} argument values")
        if depth > self.limits.max_depth:
            raise CallError(f"argument nested deeper than {self.limits.max_depth} levels")
        if isinstance(node, ast.Constant):
            return self.check_value(node.value)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [self.read(item, depth + 1) for item in node.elts]
            if isinstance(node, ast.List):
                return items
            if isinstance(node, ast.Tuple):
                return tuple(items)
            return self._hashable(set, items)
        if isinstance(node, ast.Dict):
            if any(key is None for key in node.keys):
                raise CallError("'**' unpacking is not allowed in arguments")
            keys = [self.read(key, depth + 1) for key in node.keys]
            values = [self.read(value, depth + 1) for value in node.values]
            return self._hashable(lambda pairs: dict(pairs), list(zip(keys, values)))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.read(node.operand, depth + 1)
            if not _is_number(operand):
                raise CallError("unary '-' and '+' apply to numbers only")
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            return self._arithmetic(node, depth)
        if isinstance(node, ast.Name):
            # What Python itself would say: no names exist in the call's namespace.
            raise CallError(f"name '{node.id}' is not defined")
        if isinstance(node, ast.Call):
            raise CallError("nested calls are not allowed; pass literal values")
        raise CallError(f"only literal argument values are allowed, not {type(node).__name__} expressions")

    def check_structure(self, value: Any, depth: int = 0) -> None:
        """Apply the same bounds to an argument value that arrived as data (e.g. from JSON)."""
        self.values += 1
        if self.values > self.limits.max_values:
            raise CallError(f"call has more than {self.limits.max_values} argument values")
        if depth > self.limits.max_depth:
            raise CallError(f"argument nested deeper than {self.limits.max_depth} levels")
        if isinstance(value, (list, tuple)):
            for item in value:
                self.check_structure(item, depth + 1)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.check_structure(key, depth + 1)
                self.check_structure(item, depth + 1)
        elif value is None or isinstance(value, (bool, int, float, str)):
            self.check_value(value)
        else:
            raise CallError(f"unsupported argument type {type(value).__name__}")

    def check_value(self, value: Any) -> Any:
        if isinstance(value, (str, bytes)) and len(value) > self.limits.max_string_chars:
            raise CallError(f"string argument longer than {self.limits.max_string_chars} characters")
        if isinstance(value, int) and value.bit_length() > self.limits.max_int_bits:
            raise CallError(f"integer argument larger than {self.limits.max_int_bits} bits")
        if value is Ellipsis:
            raise CallError("'...' is not a valid argument value")
        return value

    @staticmethod
    def _hashable(build, items):
        try:
            return build(items)
        except TypeError as error:  # unhashable set member or dict key, as Python reports it
            raise CallError(str(error)) from None

    def _arithmetic(self, node: ast.BinOp, depth: int) -> Any:
        left = self.read(node.left, depth + 1)
        right = self.read(node.right, depth + 1)
        if not (_is_number(left) and _is_number(right)):
            raise CallError("arithmetic in arguments applies to numbers only")
        if isinstance(node.op, ast.Pow) and isinstance(left, int) and isinstance(right, int):
            check_int_power(left, right, self.limits.max_int_bits)
        try:
            return self.check_value(_ARITHMETIC[type(node.op)](left, right))
        except (ArithmeticError, ValueError) as error:
            raise CallError(str(error)) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, complex))


def check_int_power(base: int, exponent: int, max_bits: int) -> None:
    """Refuse integer powers whose result would exceed `max_bits`, before computing them."""
    if exponent > 0 and abs(base) > 1 and exponent * math.log2(abs(base)) > max_bits:
        raise CallError(f"integer power {base}**{exponent} would exceed {max_bits} bits")


# Parsed expressions of short call strings are reused: trajectories repeat the same calls (the
# ground truth runs on every scoring pass), and values are still rebuilt fresh on every read.
_CACHED_SOURCE_CHARS = 1_000


def parse_expression(source: str, limits: CallLimits) -> ast.expr:
    """Parse one expression, reporting syntax errors as Python's `eval` does."""
    if len(source) <= _CACHED_SOURCE_CHARS:
        return _parse_cached(source, limits)
    return _parse(source, limits)


def _parse(source: str, limits: CallLimits) -> ast.expr:
    if len(source) > limits.max_source_chars:
        raise CallError(f"call text longer than {limits.max_source_chars} characters")
    try:
        return ast.parse(source, filename="<string>", mode="eval").body
    except SyntaxError as error:
        raise CallError(str(error)) from None
    except (RecursionError, MemoryError, ValueError):
        raise CallError("call text is too deeply nested or malformed") from None


_parse_cached = lru_cache(maxsize=4096)(_parse)


def call_from_ast(node: ast.expr, limits: CallLimits = DEFAULT_LIMITS) -> ParsedCall:
    """Read a call node `name(args..., key=value...)` whose arguments are all literals."""
    if not isinstance(node, ast.Call):
        raise CallError("expected a function call such as tool_name(arg=value)")
    if isinstance(node.func, ast.Attribute):
        root = node.func
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name):
            raise CallError(f"name '{root.id}' is not defined")
        raise CallError("only plain tool names can be called")
    if not isinstance(node.func, ast.Name):
        raise CallError("only plain tool names can be called")
    reader = LiteralReader(limits)
    args = []
    for argument in node.args:
        if isinstance(argument, ast.Starred):
            raise CallError("'*' unpacking is not allowed in arguments")
        args.append(reader.read(argument))
    kwargs: dict[str, Any] = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            raise CallError("'**' unpacking is not allowed in arguments")
        if keyword.arg in kwargs:  # Python's parser already rejects this; kept for ASTs built by hand
            raise CallError(f"keyword argument repeated: {keyword.arg}")
        kwargs[keyword.arg] = reader.read(keyword.value)
    return ParsedCall(node.func.id, tuple(args), kwargs)


def check_tool_call(call: ToolCall, limits: CallLimits = DEFAULT_LIMITS) -> None:
    """Bounds for a structured call: a string name and an object of bounded literal arguments."""
    if not isinstance(call.name, str) or not isinstance(call.arguments, dict):
        raise CallError("a tool call needs a string name and an object of arguments")
    reader = LiteralReader(limits)
    for key, value in call.arguments.items():
        if not isinstance(key, str):
            raise CallError(f"argument names must be strings, not {key!r}")
        reader.check_structure(value)


def parse_call(source: str, limits: CallLimits = DEFAULT_LIMITS) -> ParsedCall:
    """Parse one Python call string such as `mv(source='a.txt', destination='b')`."""
    return call_from_ast(parse_expression(source, limits), limits)
