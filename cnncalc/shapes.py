"""Shapes written as text (``3x224x224``), in a spec or on the command line."""

from __future__ import annotations

import re

from . import safe_text

# ASCII digits only: str.isdigit() also takes '²' (which int() refuses) and '٣' (which int() reads as 3)
_NUMBER = re.compile(r"[0-9]{1,20}")


def parse_shape(text: str) -> tuple[int, ...]:
    """``'3x224x224'`` -> ``(3, 224, 224)``; ``'10'`` -> ``(10,)``. Raises ValueError for anything else.

    The sizes are not range-checked here (a spec's schema and the command line do that).

    >>> parse_shape("3 × 32 x 32"), parse_shape("10")
    ((3, 32, 32), (10,))
    """
    parts = [p.strip() for p in text.lower().replace("×", "x").split("x")]
    if len(parts) not in (1, 3) or not all(_NUMBER.fullmatch(p) for p in parts):
        raise ValueError(f"expected C x H x W such as 3x224x224 (or N features), got '{safe_text.text(text)}'")
    return tuple(int(p) for p in parts)
