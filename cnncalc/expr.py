"""Block templates: ``$arg`` and ``${expression}`` in a block's layers, evaluated safely.

Only arithmetic, comparisons, ``a if c else b`` and ``min``/``max``/``round``/``int``
on numbers and the block's arguments: no attribute access, no other calls, no
``eval``. A value that is exactly ``$name`` or ``${...}`` keeps its type (``${width * 4}``
is an integer); inside other text it is formatted in (``branch_${i}``).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from . import safe_text
from .errors import did_you_mean

_NAME = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
_WHOLE = re.compile(r"^\$\{(.*)\}$", re.S)
_EMBEDDED = re.compile(r"\$\{(.*?)\}|\$([A-Za-z_][A-Za-z0-9_]*)")

MAX_EXPRESSION = 200
#: Numbers beyond this, read or computed, are refused: no size in a spec is near it.
MAX_VALUE = 2**63
#: Characters of a text that ``$name`` and ``${...}`` are put into, at most (names are at most 64).
MAX_TEXT = 1_000
#: ``round(x, n)`` takes ``n`` within this (Python computes 10**n for an integer x).
MAX_DIGITS = 30

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


def _round(x: int | float, ndigits: int | None = None) -> int | float:
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_DIGITS):
        raise ValueError(f"the number of digits must be a whole number from -{MAX_DIGITS} to {MAX_DIGITS}")
    return round(x) if ndigits is None else round(x, ndigits)


_CALLS: dict[str, Callable[..., Any]] = {"min": min, "max": max, "round": _round, "int": int}


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
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExpressionError(f"'{safe_text.text(text)}' is not an expression") from None
    return _eval(tree.body, env)


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    match node:
        case ast.Constant(value=value) if isinstance(value, int | float | str) or value is None:
            return value
        case ast.Name(id=name):
            if name not in env:
                raise ExpressionError(
                    f"unknown name '{name}'{did_you_mean(name, env)}; known: {safe_text.listing(env)}"
                )
            return env[name]
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left, env), _eval(right, env)
            _numbers(a, b)
            try:
                return _bounded(_BINARY[type(op)](a, b))
            except ZeroDivisionError:
                raise ExpressionError("division by zero") from None
            except OverflowError:
                raise ExpressionError("the result is too large") from None
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
                    raise ExpressionError(
                        f"cannot compare {safe_text.value(a, 60)} with {safe_text.value(b, 60)}"
                    ) from None
                a = b
            return True
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return _eval(body if _eval(test, env) else orelse, env)
        case ast.Call(func=ast.Name(id=fn), args=call_args, keywords=[]) if fn in _CALLS:
            numbers = [_number(_eval(a, env)) for a in call_args]
            try:
                return _bounded(_CALLS[fn](*numbers))
            except (TypeError, ValueError, OverflowError) as exc:
                raise ExpressionError(f"{fn}(): {exc}") from None
    raise ExpressionError(f"'{ast.unparse(node)}' is not allowed (only arithmetic on numbers and arguments)")


def _number(value: Any) -> int | float:
    """A number to compute with: finite and below :data:`MAX_VALUE` (an argument of 400 digits is refused here,
    before float() or round() could overflow on it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExpressionError(f"expected a number, got {safe_text.value(value, 60)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"{value} is not a finite number")
    if abs(value) >= MAX_VALUE:
        raise ExpressionError(f"{_show(value)} is too large")
    return value


def _numbers(a: Any, b: Any) -> None:
    _number(a)
    _number(b)


def _show(value: int | float) -> str:
    digits = len(str(abs(value))) if isinstance(value, int) else 0
    return f"{value:.3g}" if digits < 300 else f"a number of {digits:,} digits"


def _bounded(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ExpressionError(f"the result is {value}, not a finite number")
    if isinstance(value, int | float) and abs(value) >= MAX_VALUE:
        raise ExpressionError(f"result {_show(value)} is too large")
    return value


def _text_piece(value: Any) -> str:
    """A value as it is put into text (``branch_${i}``), never longer than :data:`MAX_TEXT` + 1."""
    if isinstance(value, str):
        return value[: MAX_TEXT + 1]
    if isinstance(value, bool | int | float) or value is None:
        return str(value)
    return safe_text.bounded_repr(value, MAX_TEXT + 1)[0]


def _embed(value: str, env: Mapping[str, Any]) -> str:
    """``value`` with each ``$name`` and ``${...}`` in it replaced, refused past :data:`MAX_TEXT` characters."""
    pieces, size, start = [], 0, 0
    for m in _EMBEDDED.finditer(value):
        piece = value[start : m.start()] + _text_piece(evaluate(m.group(1) or m.group(2), env))
        size += len(piece)
        if size > MAX_TEXT:
            raise ExpressionError(f"the text it makes would be longer than {MAX_TEXT:,} characters")
        pieces.append(piece)
        start = m.end()
    if size + len(value) - start > MAX_TEXT:
        raise ExpressionError(f"the text it makes would be longer than {MAX_TEXT:,} characters")
    return "".join(pieces) + value[start:]


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
        return _embed(value, env)
    except ExpressionError as exc:
        raise ExpressionError(f"'{safe_text.text(value, 100)}': {exc}", path) from None
