"""Two reports side by side: what a change to a network costs, in total and stage by stage."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .report import Report, Row

#: The figures compared, as (label, Row/Totals attribute).
FIGURES = (("params", "params"), ("MACs", "macs"), ("activations", "activations"))


@dataclass(frozen=True)
class Stage:
    """Consecutive rows whose outputs share one resolution (``56x56``), the input, or the flat head."""

    key: str
    rows: tuple[Row, ...]

    def total(self, attr: str) -> int:
        return sum(getattr(r, attr) for r in self.rows)


def _key(row: Row) -> str:
    if row.kind == "input":
        return "input"
    shape = row.output_shape
    return f"{shape[1]}x{shape[2]}" if len(shape) == 3 else "flat"


def stages(report: Report) -> list[Stage]:
    """The report's rows cut where the output resolution changes; a resolution seen again is numbered."""
    groups: list[tuple[str, list[Row]]] = []
    for row in report.rows:
        key = _key(row)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(row)
        else:
            groups.append((key, [row]))
    seen: Counter[str] = Counter()
    out = []
    for key, rows in groups:
        seen[key] += 1
        out.append(Stage(key if seen[key] == 1 else f"{key} ({seen[key]})", tuple(rows)))
    return out


@dataclass(frozen=True)
class StagePair:
    key: str
    a: Stage | None
    b: Stage | None

    def value(self, side: str, attr: str) -> int | None:
        stage = self.a if side == "a" else self.b
        return stage.total(attr) if stage is not None else None


def pair_stages(a: Report, b: Report) -> list[StagePair]:
    """Stages of ``a`` and ``b`` matched by key, in ``a``'s order; a stage only ``b`` has follows its predecessor in ``b``."""
    by_a, by_b = {s.key: s for s in stages(a)}, {s.key: s for s in stages(b)}
    keys = list(by_a)
    previous = -1
    for key in by_b:
        if key in by_a:
            previous = keys.index(key)
        else:
            previous += 1
            keys.insert(previous, key)
    return [StagePair(k, by_a.get(k), by_b.get(k)) for k in keys]


def delta(a: int | None, b: int | None, number: Callable[[int], str] = "{:,}".format) -> str:
    """``'+1,234 (+5.2%)'``; ``'new'`` or ``'gone'`` when a side lacks the stage.

    >>> delta(1000, 1100), delta(5, 5), delta(None, 3)
    ('+100 (+10.0%)', '=', 'new')
    """
    if a is None:
        return "new"
    if b is None:
        return "gone"
    d = b - a
    if d == 0:
        return "="
    pct = f" ({100 * d / a:+,.1f}%)" if a else ""
    return f"{'+' if d > 0 else '-'}{number(abs(d))}{pct}"
