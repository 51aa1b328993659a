"""Decode prompt-mode model text into call strings under the official BFCL rules.

The official decoder wraps the text in `[...]`, parses it as a Python list of calls, keeps keyword
arguments only, reads argument values with a few lenient rules (a bare name becomes a string, a
call without keywords becomes its source text, ...) and renders each call back to a string. A text
that does not decode contributes no step. We follow those rules exactly, except that we never
evaluate anything: arithmetic is folded only over numeric literals and lambdas are refused.
"""

from __future__ import annotations

import ast
from typing import Any

from envtune.bfcl.calls import DEFAULT_LIMITS, CallError, CallLimits, LiteralReader, parse_expression


class DecodeError(ValueError):
    """The text is not a prompt-mode list of calls; the official harness drops such a step."""


def _resolve_call(node: ast.Call, reader: LiteralReader) -> dict[str, dict[str, Any]]:
    parts = []
    func = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    arguments = {keyword.arg: _resolve_value(keyword.value, reader) for keyword in node.keywords}
    return {".".join(reversed(parts)): arguments}


def _resolve_value(node: ast.AST | None, reader: LiteralReader) -> Any:
    """One argument value, read with the official decoder's rules."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else reader.check_value(node.value)
    if isinstance(node, ast.UnaryOp):
        if not isinstance(node.operand, ast.Constant):
            raise DecodeError("unary operator on a non-literal")
        try:
            return -node.operand.value  # the official decoder negates for every unary operator
        except TypeError as error:
            raise DecodeError(str(error)) from None
    if isinstance(node, ast.List):
        return [_resolve_value(item, reader) for item in node.elts]
    if isinstance(node, ast.Dict):
        try:
            return {_resolve_value(key, reader): _resolve_value(value, reader) for key, value in zip(node.keys, node.values)}
        except TypeError as error:
            raise DecodeError(str(error)) from None
    if isinstance(node, ast.BinOp):
        try:
            return reader.read(node)
        except CallError as error:
            raise DecodeError(str(error)) from None
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        return ast.unparse(node) if not node.keywords else _resolve_call(node, reader)
    if isinstance(node, ast.Tuple):
        return tuple(_resolve_value(item, reader) for item in node.elts)
    if isinstance(node, ast.Subscript):
        return f"{ast.unparse(node.value)}[{ast.unparse(node.slice)}]"
    raise DecodeError(f"unsupported argument expression: {type(node).__name__ if node else 'None'}")


def _render_value(value: Any) -> str:
    """The official rendering of a decoded value back into call-string source."""
    if isinstance(value, dict):
        if all(isinstance(item, dict) for item in value.values()):
            if not value:
                raise DecodeError("an empty dict argument cannot be rendered by the official decoder")
            name, arguments = next(iter(value.items()))
            return f"{name}({', '.join(f'{key}={_render_value(item)}' for key, item in arguments.items())})"
        return "{" + ", ".join(f"'{key}': {_render_value(item)}" for key, item in value.items()) + "}"
    return repr(value)


def decode_prompt_output(text: str, limits: CallLimits = DEFAULT_LIMITS) -> list[str]:
    """Decode one model step into the call strings the official checker would execute.

    Raises DecodeError where the official decoder fails (the step then counts as no call).
    """
    text = text.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    try:
        body = parse_expression(text.strip().strip("'"), limits)
    except CallError as error:
        raise DecodeError(str(error)) from None
    if isinstance(body, ast.Call):
        nodes = [body]
    elif isinstance(body, (ast.List, ast.Tuple, ast.Set)):
        nodes = body.elts
    else:
        raise DecodeError("expected a list of function calls")
    reader = LiteralReader(limits)
    decoded = []
    for node in nodes:
        if not isinstance(node, ast.Call):
            raise DecodeError("every list element must be a function call")
        try:
            decoded.append(_resolve_call(node, reader))
        except CallError as error:
            raise DecodeError(str(error)) from None
    return [
        f"{name}({', '.join(f'{key}={_render_value(value)}' for key, value in arguments.items())})"
        for call in decoded
        for name, arguments in call.items()
    ]
