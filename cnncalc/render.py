"""What every command formats alike: numbers and shapes, the conventions, and a report's JSON contract.

Each command's own tables and formats live in ``cnncalc/commands/``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import Problem
from .report import ROW_QUANTITIES, Jump, Report, Row
from .text import WORDS, Column, Page, Table

if TYPE_CHECKING:  # render stays importable without torch, and a command imports only what it needs
    pass

#: One line each, quoted from the engine's conventions; docs/conventions.md has them in full.
CONVENTIONS = (
    "MACs: multiply-accumulates of convs and linear layers, bias excluded (torchvision's 'GFLOPS'); FLOPs = 2 x MACs.",
    "Bias, pooling, norm, activations, adds and concatenations count 0 FLOPs, as in torch.utils.flop_counter.",
    "activations: values of the tensors each row allocates at inference; in-place ops, views and dropout add none.",
    "memory: activations x bytes per value; MB = 10^6 bytes. RF: receptive field size / stride in input pixels.",
    "kept for backward: tensors autograd saves in a training forward, each counted once (parameters not).",
)
LECTURE_X2 = "x2 for forward + backward: the lecture's rule of thumb, not a measurement"


def shape_text(shape: Sequence[int] | None) -> str:
    return "x".join(str(s) for s in shape) if shape else ""


def human(n: float, unit: str = "") -> str:
    """``15470264320`` -> ``'15.47 G'``; with a unit, ``'553.43 MB'``; past 999 T, with separators.

    >>> human(15470264320), human(553_430_000, "B"), human(999), human(2.5e18, "B")
    ('15.47 G', '553.43 MB', '999', '2,500,000.00 TB')
    """
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:,.2f} {prefix}{unit}"
    return f"{n:.0f} {unit}".rstrip() if unit else f"{n:,.0f}"


def short(n: int) -> str:
    """Three significant digits and an SI prefix, for narrow terminals.

    >>> short(0), short(999), short(1792), short(4100), short(3211264), short(15470264320), short(999_600)
    ('0', '999', '1.79k', '4.10k', '3.21M', '15.5G', '1.00M')
    >>> short(-36_928), short(12_000_000), short(10**15), short(12_345 * 10**12)
    ('-36.9k', '12.0M', '1,000T', '12,300T')
    """
    size, sign = abs(n), "-" if n < 0 else ""
    if size < 1000:
        return f"{sign}{size}"
    for factor, prefix in ((10**3, "k"), (10**6, "M"), (10**9, "G"), (10**12, "T")):
        value = float(f"{size / factor:.3g}")  # 999,600 rounds to 1000k: take the next prefix
        if value < 1000:
            decimals = 3 - len(str(int(value)))  # trailing zeros are significant: 4.10k, 12.0M
            return f"{sign}{value:.{decimals}f}{prefix}"
    return f"{sign}{value:,.0f}T"


#: Said under a table whose numbers were shortened to fit the terminal.
SHORTENED = (
    "Numbers shortened to fit the terminal (k, M, G, T = 10^3, 10^6, 10^9, 10^12); a wider terminal"
    " (or COLUMNS=160) or --format csv, markdown or json shows every digit"
)


def print_fitted(page: Page, build: Callable[[bool], Table]) -> bool:
    """Print ``build(False)``, or ``build(True)`` (compact) when the full one cannot fit; True if compact.

    A calculator must never show a number it has cut ("150,5…"): a table too wide for the
    terminal, even with its text wrapped word by word, shortens its numbers instead.
    """
    table = build(False)
    compact = not table.fits(page.width)
    page.table(build(True) if compact else table)
    return compact


def grid(rows: list[tuple[str, str]], right: bool = False) -> Table:
    """Label and value, the label bold, the value wrapped beside it."""
    table = Table([Column("", right=right), Column("", breaks=WORDS)], box=False, sep=2)
    for label, value in rows:
        table.add_row((label, "bold"), value)
    return table


def mib(n: int) -> str:
    """Bytes in MiB, with thousands separators.

    >>> mib(2**20), mib(2**50)
    ('1.00 MiB', '1,073,741,824.00 MiB')
    """
    return f"{n / 2**20:,.2f} MiB"


def rf_text(row: Row) -> str:
    rf = row.receptive_field
    if rf is None:
        return ""
    size = str(rf.size[0]) if rf.size[0] == rf.size[1] else f"{rf.size[0]}x{rf.size[1]}"
    stride = str(rf.stride[0]) if rf.stride[0] == rf.stride[1] else f"{rf.stride[0]}x{rf.stride[1]}"
    # after upsampling the stride is a fraction: 3/(1/2), a field of 3 pixels at a step of half a pixel
    return f"{size}/({stride})" if "/" in stride else f"{size}/{stride}"


def training_text(report: Report) -> str:
    """One training step's memory, counted: params, their gradients, and what autograd keeps for backward."""
    t = report.totals
    return (
        f"{human(t.training_bytes, 'B')} = params {human(t.param_bytes, 'B')} + grads {human(t.grad_bytes, 'B')}"
        f" + kept for backward {human(t.saved_bytes, 'B')} (PyTorch's autograd on CUDA, counted per row)"
        + (f" + output {human(t.output_bytes, 'B')} (what the loss reads)" if t.output_bytes else "")
        + ";"
        f" the optimizer adds {human(t.grad_bytes, 'B')} (SGD momentum) or {human(2 * t.grad_bytes, 'B')} (Adam)"
    )


# --- JSON ----------------------------------------------------------------------


def jump_json(jump: Jump) -> int | str:
    """A whole jump as a number, a fractional one (after upsampling) as its text, ``"1/2"``."""
    return jump if isinstance(jump, int) else str(jump)


def _row_dict(row: Row) -> dict[str, Any]:
    rf = row.receptive_field
    return {
        "index": row.index,
        "name": row.name,
        "kind": row.kind,
        "detail": row.detail,
        "input_shape": list(row.input_shape) if row.input_shape is not None else None,
        "output_shape": list(row.output_shape),
        **{q.name: getattr(row, q.name) for q in ROW_QUANTITIES},
        "receptive_field": {"size": list(rf.size), "stride": [jump_json(j) for j in rf.stride]} if rf else None,
        "block": list(row.block),
        "inputs": list(row.inputs),
        "folded": row.folded,
    }


def problem_dict(problem: Problem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "column": problem.column, "message": problem.message}


def to_dict(report: Report) -> dict[str, Any]:
    """The JSON contract (documented in docs/json.md): stable keys, integers exact."""
    return {
        "name": report.name,
        "input": {"shape": list(report.input_shape), "batch": report.batch, "dtype": report.dtype},
        "layers": [_row_dict(r) for r in report.rows],
        "outputs": [r.name for r in report.output_rows],
        "totals": dataclasses.asdict(report.totals),
        "blocks": [{"path": list(b.path), "kind": b.kind, "detail": b.detail} for b in report.blocks],
        "warnings": [problem_dict(w) for w in report.warnings],
        "notes": list(report.notes),
        "conventions": list(CONVENTIONS),
    }
