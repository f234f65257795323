"""Text from a spec or the command line made inert before cnncalc echoes it.

A spec is untrusted input: its names, kinds, keys and values come back in error
messages, tables and CI logs. Escaping ESC and the other C0/C1 control characters
(and newlines, so that a message stays one line and cannot start a GitHub
``::warning::`` command) and cutting long values keeps every echoed value short,
literal and on one line. Rich markup is the consoles' concern: cnncalc's print
strings literally (``markup=False``).

>>> text("relu\\x1b[31m\\n::warning::x")
'relu\\\\x1b[31m\\\\n::warning::x'
>>> text("k" * 960_000, limit=5)
'kkkkk… (960,000 characters)'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

#: Characters of one value echoed in a message (a kind, a key, a name, a number list).
MAX_ECHO = 200
#: Characters of a whole message, values and words together.
MAX_MESSAGE = 2_000
#: A cut text ends in "… (N characters)"; a text at most this much over a limit is left as it is, so that cutting
#: an already cut text changes nothing.
MARKER_ROOM = 40

# C0 and C1 controls, DEL, Unicode line and paragraph separators, and the bidirectional overrides
# that can make a terminal show text in another order than it is ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    return _NAMED.get(ch) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(value: str) -> str:
    """Control characters and newlines as ``\\x1b``, ``\\n`` ...: one literal line."""
    return _UNSAFE.sub(_escape_one, value)


def _marker(length: int) -> str:
    return f"… ({length:,} characters)"


def text(value: str, limit: int = MAX_ECHO) -> str:
    """``value`` escaped and, when longer than ``limit`` (plus room for the marker), cut with a marker."""
    if len(value) <= limit + MARKER_ROOM:
        return escape(value)
    return escape(value[:limit]) + _marker(len(value))


def _pieces(value: Any, depth: int) -> Iterator[str | int]:
    """``repr(value)`` in pieces, so that a caller can stop early on a huge list; an int piece is a length unshown."""
    if isinstance(value, str):
        if len(value) <= MAX_MESSAGE:
            yield repr(value)
        else:  # the repr of the start, and roughly the length of the rest
            yield repr(value[:MAX_MESSAGE])
            yield len(value) - MAX_MESSAGE
    elif isinstance(value, list | tuple | dict):
        if depth > 50:
            yield "…"
            return
        opening, closing = (
            ("{", "}") if isinstance(value, dict) else ("[", "]") if isinstance(value, list) else ("(", ")")
        )
        yield opening
        items = value.items() if isinstance(value, dict) else ((None, v) for v in value)
        for i, (key, item) in enumerate(items):
            if i:
                yield ", "
            if isinstance(value, dict):
                yield from _pieces(key, depth + 1)
                yield ": "
            yield from _pieces(item, depth + 1)
        if isinstance(value, tuple) and len(value) == 1:
            yield ","
        yield closing
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 10_000:
        yield f"<an integer of {value.bit_length():,} bits>"  # repr would refuse it (over 4,300 digits)
    else:
        yield repr(value)


def bounded_repr(value: Any, limit: int) -> tuple[str, int]:
    """The first ``limit`` characters of ``repr(value)`` (the whole when shorter), and its full length.

    Lists and strings are walked, never copied whole.
    """
    kept: list[str] = []
    size = 0
    for piece in _pieces(value, 0):
        if isinstance(piece, int):
            size += piece
            continue
        if size < limit:
            kept.append(piece[: limit - size])
        size += len(piece)
    return "".join(kept), size


def value(obj: Any, limit: int = MAX_ECHO) -> str:
    """``repr(obj)`` for a message: escaped, and cut with a marker past ``limit`` characters.

    >>> value(list(range(100_000)), limit=12)
    '[0, 1, 2, 3,… (688,890 characters)'
    """
    shown, size = bounded_repr(obj, limit + MARKER_ROOM + 1)
    if size <= limit + MARKER_ROOM:
        return escape(shown)
    return escape(shown[:limit]) + _marker(size)


def listing(names: Iterable[str], most: int = 12) -> str:
    """Names joined by commas, at most ``most`` of them, then how many more.

    >>> listing(["a", "b", "c"], most=2)
    'a, b and 1 more'
    """
    names = list(names)
    shown = ", ".join(text(n, 64) for n in names[:most])
    return shown + (f" and {len(names) - most:,} more" if len(names) > most else "")
