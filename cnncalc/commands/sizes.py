"""``cnncalc sizes``: per axis, the input sizes a network accepts, keeps its params at, reads losslessly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..report import Report
from ..sizes import Axis
from ..text import WORDS, Column, Page, Table
from . import common
from .common import Format

if TYPE_CHECKING:
    from rich.console import Console


def to_dict(report: Report, axes: list[Axis]) -> dict[str, Any]:
    """The JSON contract (docs/sizes.md)."""
    return {
        "name": report.name,
        "input": list(report.input_shape),
        "axes": {
            a.axis: {
                "size": a.size,
                "valid": {
                    "min": a.valid[0],
                    "max": a.valid[1],
                    "period": a.valid_period,
                    "residues": list(a.valid_residues),
                },
                "same_params": {"min": a.same_params[0], "max": a.same_params[1]},
                "lossless": {
                    "period": a.lossless_period,
                    "residues": list(a.lossless_residues),
                    "from": a.lossless_from,
                    "to": a.lossless_to,
                },
                "output": {"row": a.output_row, "formula": a.output_formula},
            }
            for a in axes
        },
    }


def _range(lo: int, hi: int | None) -> str:
    return f"{lo:,} and up" if hi is None else f"{lo:,} to {hi:,}"


def _valid(a: Axis) -> str:
    if a.valid_period == 1:
        return _range(*a.valid)
    runs: list[list[int]] = []
    for r in a.valid_residues:
        if runs and runs[-1][-1] == r - 1:
            runs[-1].append(r)
        else:
            runs.append([r])
    residues = ", ".join(str(run[0]) if len(run) == 1 else f"{run[0]} to {run[-1]}" for run in runs)
    return f"{_range(*a.valid)}, sizes = {residues} (mod {a.valid_period})"


def _lossless(a: Axis) -> str:
    if a.lossless_from is None:
        return "none: every size leaves real input unread somewhere"
    if a.lossless_to == a.lossless_from:
        return f"{a.lossless_from:,} only"
    upto = "" if a.lossless_to is None else f" to {a.lossless_to:,}"
    if a.lossless_period == 1:
        return f"every size from {a.lossless_from:,}{upto}"
    residues = ", ".join(str(r) for r in a.lossless_residues)
    if a.lossless_residues == (0,):
        return f"every {a.lossless_period} from {a.lossless_from:,}{upto} (multiples of {a.lossless_period})"
    return f"from {a.lossless_from:,}{upto}, sizes = {residues} (mod {a.lossless_period})"


def print_sizes(report: Report, axes: list[Axis], console: Console) -> None:
    shape = "x".join(str(n) for n in report.input_shape)
    page = Page(console)
    page.text(f"{report.name}: input sizes (the spec's input is {shape})", "bold")
    grid = Table([Column(""), *(Column(a.axis, breaks=WORDS) for a in axes)], box=False, sep=2)
    grid.add_row("", *((a.axis, "bold") for a in axes))
    for label, cells in (
        ("valid", [_valid(a) for a in axes]),
        ("same params", [_range(*a.same_params) for a in axes]),
        ("lossless", [_lossless(a) for a in axes]),
        ("output", [f"{a.output_row}: {a.output_formula or 'no closed form'}" for a in axes]),
    ):
        grid.add_row((label, "bold"), *cells)
    page.table(grid)
    page.text(
        "valid: every layer has an output; same params: every parameter count is as at the spec's input;"
        " lossless: no layer leaves real input unread (summary's warning rule).",
        "dim",
    )
    page.write()


def run(spec: str, *, format: Format) -> None:
    import json

    from ..errors import Problem
    from ..sizes import analyze_sizes

    report = common.analyze_spec(spec, 1, "float32", None)
    try:
        axes = analyze_sizes(report)
    except ValueError as exc:
        common.fail([Problem(str(exc), file=spec)])
    if format is Format.json:
        common.out(json.dumps(to_dict(report, axes), indent=2))
    else:
        print_sizes(report, axes, common.console())
