"""Block templates: ``$arg`` and ``${expression}`` in a block's layers, evaluated safely.

Only arithmetic, comparisons, ``a if c else b`` and ``min``/``max``/``round``/``int``
on numbers and the block's arguments: no attribute access, no other calls, no
``eval``. A value that is exactly ``$name`` or ``${...}`` keeps its type (``${width * 4}``
is an integer); inside other text it is formatted in (``branch_${i}``).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import did_you_mean

_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_WHOLE = re.compile(r"^\$\{(.*)\}$", re.S)
_EMBEDDED = re.compile(r"\$\{(.*?)\}|\$([A-Za-z_][A-Za-z0-9_]*)")

MAX_EXPRESSION = 200
#: Results beyond this are refused: no size in a spec is near it.
MAX_VALUE = 2**63

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_CALLS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "round": round, "int": int}


class ExpressionError(ValueError):
    """An expression that cannot be evaluated; ``path`` says where in the template it stands."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    """Evaluate one expression over ``env``.

    >>> evaluate("width * 4", {"width": 64})
    256
    >>> evaluate("s if i == 0 else 1", {"s": 2, "i": 3})
    1
    """
    if len(text) > MAX_EXPRESSION:
        raise ExpressionError(f"expression longer than {MAX_EXPRESSION} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ExpressionError(f"'{text}' is not an expression") from None
    return _eval(tree.body, env)


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    match node:
        case ast.Constant(value=value) if isinstance(value, int | float | str) or value is None:
            return value
        case ast.Name(id=name):
            if name not in env:
                raise ExpressionError(f"unknown name '{name}'{did_you_mean(name, env)}; known: {', '.join(env)}")
            return env[name]
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left, env), _eval(right, env)
            _numbers(a, b)
            try:
                return _bounded(_BINARY[type(op)](a, b))
            except ZeroDivisionError:
                raise ExpressionError("division by zero") from None
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_number(_eval(operand, env))
        case ast.UnaryOp(op=ast.UAdd(), operand=operand):
            return _number(_eval(operand, env))
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, env)
        case ast.BoolOp(op=op, values=values):
            results = [_eval(v, env) for v in values]
            return all(results) if isinstance(op, ast.And) else any(results)
        case ast.Compare(left=left, ops=ops, comparators=rights) if all(type(o) in _COMPARE for o in ops):
            a = _eval(left, env)
            for o, right in zip(ops, rights, strict=True):
                b = _eval(right, env)
                try:
                    if not _COMPARE[type(o)](a, b):
                        return False
                except TypeError:
                    raise ExpressionError(f"cannot compare {a!r} with {b!r}") from None
                a = b
            return True
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _eval(body if _eval(test, env) else orelse, env)
        case ast.Call(func=ast.Name(id=fn), args=call_args, keywords=[]) if fn in _CALLS:
            numbers = [_number(_eval(a, env)) for a in call_args]
            try:
                return _bounded(_CALLS[fn](*numbers))
            except (TypeError, ValueError) as exc:
                raise ExpressionError(f"{fn}(): {exc}") from None
    raise ExpressionError(f"'{ast.unparse(node)}' is not allowed (only arithmetic on numbers and arguments)")


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"expected a number, got {value!r}")
    return value


def _numbers(a: Any, b: Any) -> None:
    _number(a)
    _number(b)


def _bounded(value: Any) -> Any:
    if isinstance(value, int | float) and abs(value) >= MAX_VALUE:
        raise ExpressionError(f"result {value:.3g} is too large")
    return value


def substitute(value: Any, env: Mapping[str, Any], path: tuple[str | int, ...] = ()) -> Any:
    """A template value with ``$name`` and ``${...}`` replaced (strings only; keys are kept).

    >>> substitute({"out": "${w * 4}", "name": "conv_$i", "kernel": 3}, {"w": 16, "i": 2})
    {'out': 64, 'name': 'conv_2', 'kernel': 3}
    """
    if isinstance(value, dict):
        return {k: substitute(v, env, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, env, (*path, i)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    try:
        if m := _NAME.match(value):
            return evaluate(m.group(1), env)
        if m := _WHOLE.match(value):
            return evaluate(m.group(1), env)
        return _EMBEDDED.sub(lambda m: str(evaluate(m.group(1) or m.group(2), env)), value)
    except ExpressionError as exc:
        raise ExpressionError(f"'{value}': {exc}", path) from None
