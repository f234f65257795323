"""The input sizes a network accepts, keeps its parameters at, and reads without losing pixels.

Each axis (height, width) is followed on its own through the rows of the report at the spec's own
input: a window (conv, pool) maps ``n`` to ``floor((n + 2P - D(F - 1) - 1) / S) + 1`` (the pooling
``ceil_mode`` rounds up), padding adds, adaptive and global pooling fix the size, joins need equal
sizes (a product's gate may be of size 1). The structure of the network (which rows, which shortcut)
is the one at the spec's input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil, lcm

from .geometry import effective_kernel, misfit, output_size
from .layers import kind_of, row_kind
from .layers.base import Crop, Divide, Fixed, Grow, Keep, Same, Scale, SizeStep, Slide, Transposed
from .layers.dense import Linear
from .layers.resample import transposed_size
from .report import Join, Report, Row

AXES = ("height", "width")


@dataclass(frozen=True)
class Walk:
    """One input size along one axis: each row's size there (None once flat), and what it found."""

    valid: bool
    lossless: bool
    #: the spatial size each flatten row sees (what a following linear layer's params depend on)
    flattened: tuple[int, ...]
    sizes: tuple[int | None, ...]


def _step(row: Row, axis: int) -> SizeStep:
    """How a row maps an input size along ``axis``: its kind's rule (a join keeps the size)."""
    if row.layer is None or isinstance(row.layer, Join):
        return Keep()
    return kind_of(row.layer).size_step(row.layer, axis)


def walk(rows: Sequence[Row], axis: int, n: int) -> Walk:
    """Follow input size ``n`` along ``axis`` through ``rows``."""
    sizes: list[int | None] = []
    valid = lossless = True
    flattened: list[int] = []
    for row in rows:
        ins = [sizes[i] for i in row.inputs]
        size = ins[0] if ins else n
        if size is None or len(row.output_shape) == 1:
            if row.kind == "flatten" and size is not None:
                flattened.append(size)
            sizes.append(None)
            continue
        match _step(row, axis):
            case Slide(kernel=k, stride=st, padding=p, dilation=d, ceil_mode=ceil):
                out = output_size(size, k, st, p, d, ceil)
                if out < 1:
                    valid = False
                elif not ceil and misfit(size, k, st, p, d) is not None:
                    lossless = False
            case Same(stride=st):
                out = -(-size // st)  # every pixel read: the padding is what the size needs
            case Fixed(size=fixed):
                out = fixed
            case Grow(by=by):
                out = size + by
                valid = valid and out >= 1  # a negative padding crops
            case Divide(by=by):
                valid = valid and size % by == 0
                out = size // by
            case Scale(by=by):
                out = size * by
            case Transposed(kernel=k, stride=st, padding=p, dilation=d, output_padding=op):
                out = transposed_size(size, k, st, p, d, op)
                valid = valid and out >= 1
            case Crop(size=None, margin=margin):
                out = size - margin
                valid = valid and out >= 1
            case Crop(size=int() as cropped):
                valid = valid and size >= cropped
                out = cropped
            case Keep():
                if isinstance(row.layer, Join) and len(set(ins)) > 1:
                    # inputs meet at one size; a product's gate may also be of size 1
                    meet = max(i or 0 for i in ins)
                    valid = valid and row_kind(row.layer).broadcasts and set(ins) <= {meet, 1}
                    size = meet
                out = size
        sizes.append(max(out, 0))
    return Walk(valid, valid and lossless, tuple(flattened), tuple(sizes))


@dataclass(frozen=True)
class Formula:
    """``floor((n + shift) / divisor) + offset``, or a constant when ``divisor`` is 0."""

    shift: int = 0
    divisor: int = 1
    offset: int = 0

    def __call__(self, n: int) -> int:
        return self.offset if self.divisor == 0 else (n + self.shift) // self.divisor + self.offset

    def then(self, shift: int, divisor: int, offset: int) -> Formula:
        """This map followed by ``m -> floor((m + shift) / divisor) + offset``.

        floor((floor((n + a) / s) + b + c) / t) = floor((n + a + s(b + c)) / (s t)) for whole numbers.
        """
        if self.divisor == 0:
            return Formula(0, 0, (self.offset + shift) // divisor + offset)
        return Formula(self.shift + self.divisor * (self.offset + shift), self.divisor * divisor, offset)

    def text(self, var: str) -> str:
        """``floor((H - 35) / 32)``: the offset folded into the shift, as floor((n + a) / s) + b = floor((n + a + bs) / s)."""
        if self.divisor == 0:
            return str(self.offset)
        if self.divisor == 1 and self.offset:  # n - 185 + 1 is n - 184
            return Formula(self.shift + self.offset, 1, 0).text(var)
        if self.divisor > 1 and self.offset:
            return Formula(self.shift + self.offset * self.divisor, self.divisor, 0).text(var)
        inner = var if self.shift == 0 else f"{var} {'+' if self.shift > 0 else '-'} {abs(self.shift)}"
        core = (
            inner
            if self.divisor == 1
            else f"floor(({inner}) / {self.divisor})"
            if self.shift
            else f"floor({var} / {self.divisor})"
        )
        return core if self.offset == 0 else f"{core} {'+' if self.offset > 0 else '-'} {abs(self.offset)}"


def formula(rows: Sequence[Row], axis: int, end: int) -> Formula | None:
    """The size of row ``end`` as a function of the input size, along its first inputs; None without a closed form."""
    chain = []
    i = end
    while i > 0:
        chain.append(rows[i])
        i = rows[i].inputs[0]
    f = Formula()
    for row in reversed(chain):
        match _step(row, axis):
            case Slide(kernel=k, stride=st, padding=p, dilation=d, ceil_mode=ceil):
                f = f.then(2 * p - effective_kernel(k, d) + (st - 1 if ceil else 0), st, 1)
            case Same(stride=st):
                f = f.then(st - 1, st, 0)  # ceil(n / S)
            case Fixed(size=fixed):
                f = Formula(0, 0, fixed)
            case Grow(by=by):
                f = f.then(by, 1, 0)
            case Divide(by=by):
                f = f.then(0, by, 0)
            case Crop(size=None, margin=margin):
                f = f.then(-margin, 1, 0)
            case Crop(size=int() as cropped):
                f = Formula(0, 0, cropped)
            case Scale() | Transposed():
                return None  # a floor times a factor: no floor((n + a) / s) + b form
    return f


@dataclass(frozen=True)
class Axis:
    axis: str
    size: int  # the spec's own input size along this axis
    valid: tuple[int, int | None]  # smallest and largest input with an output everywhere (None: unbounded)
    valid_period: int  # 1, or where branches must meet at one size (a U-Net's concat), the period of the valid sizes
    valid_residues: tuple[int, ...]  # the valid sizes modulo valid_period
    same_params: tuple[int, int | None]  # the range around ``size`` where every parameter count stays
    lossless_period: int
    lossless_residues: tuple[int, ...]
    lossless_from: int | None
    lossless_to: int | None  # the largest lossless size when the valid sizes are bounded, else None
    output_row: str  # the last row whose output is a plane
    output_formula: str | None


def _period(ok: Sequence[bool], start: int, candidates: Sequence[int]) -> int:
    """The smallest candidate period of ``ok`` (indexed by size) from ``start`` on; the last one otherwise."""
    for p in candidates:
        if all(ok[n] == ok[n + p] for n in range(start, len(ok) - p)):
            return p
    return candidates[-1]


def _period_bound(rows: Sequence[Row], axis: int) -> int:
    """Where every row's step in input pixels repeats: their least common multiple (a U-Net's way back up
    counts its largest step on the way down; an auxiliary head's 48 beside the trunk's 32 makes 96)."""
    return lcm(*{ceil(r.receptive_field.stride[axis]) for r in rows if r.receptive_field} or {1})


def analyze_sizes(report: Report, limit: int | None = None) -> list[Axis]:
    """Each axis of ``report``'s input: valid, same-params and lossless sizes, and the output formula."""
    rows = report.rows
    if len(report.input_shape) != 3:
        raise ValueError("the network's input is flat: it has no height or width to vary")
    spatial = [r for r in rows if len(r.output_shape) == 3]
    # the last plane whose size follows the input (not the 1x1 after global pooling)
    varying = [r for r in spatial if not isinstance(_step(r, 0), Fixed)]
    last = (varying or spatial)[-1]
    out = []
    for axis, name in enumerate(AXES):
        size = report.input_shape[1 + axis]
        # the steps of the network: its sizes repeat their pattern at the product of its strides; after
        # upsampling (a U-Net's way back up) the largest step on the way down
        jump = _period_bound(rows, axis)
        top = limit or max(4 * size, 8 * jump, 256)
        walks = [walk(rows, axis, n) if n else Walk(False, False, (), ()) for n in range(top + 1)]
        own = walks[size].flattened if size <= top else walk(rows, axis, size).flattened
        # a linear layer that names its 'in' accepts only the flattened size it was written for
        pinned = any(isinstance(r.layer, Linear) and r.layer.in_ is not None for r in rows)
        valid = [w.valid and (not pinned or w.flattened == own) for w in walks]
        first = next((n for n in range(1, top + 1) if valid[n]), None)
        if first is None:
            raise ValueError(f"no {name} from 1 to {top:,} gives every layer an output")
        divisors = [p for p in range(1, jump + 1) if jump % p == 0]
        # branches that meet at one size (a U-Net's copy and its upsampled map) take only some sizes
        final = max(n for n in range(first, top + 1) if valid[n])
        gaps = not all(valid[first : final + 1])
        vperiod = _period(valid[: final + 1], first, divisors) if gaps else 1
        vresidues = tuple(sorted({n % vperiod for n in range(first, top + 1) if valid[n]}))
        largest = None if any(valid[top - vperiod + 1 :]) else max(n for n in range(1, top + 1) if valid[n])
        same = [valid[n] and walks[n].flattened == own for n in range(top + 1)]
        lo = hi = size
        while lo > vperiod and same[lo - vperiod]:
            lo -= vperiod
        while hi + vperiod <= top and same[hi + vperiod]:
            hi += vperiod
        lossless = [w.lossless and ok for w, ok in zip(walks, valid, strict=True)]
        start = next((n for n in range(1, top + 1) if lossless[n]), None)
        period, residues, end = jump, tuple[int, ...](), None
        if start is not None:
            end = None if largest is None else max(n for n in range(start, top + 1) if lossless[n])
            period = _period(lossless, start, divisors)
            residues = tuple(sorted({n % period for n in range(start, top + 1) if lossless[n]}))
        f = formula(rows, axis, last.index)
        checks = range(first, top + 1)
        exact = f is not None and all(f(n) == walks[n].sizes[last.index] for n in checks if valid[n])
        out.append(
            Axis(name, size, (first, largest), vperiod, vresidues,
                 (lo, None if hi > top - vperiod and same[hi] else hi), period, residues,
                 start, end, last.name, f.text("H" if axis == 0 else "W") if exact and f is not None else None)
        )  # fmt: skip
    return out
