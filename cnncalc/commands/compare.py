"""``cnncalc compare``: two reports side by side, per stage and in total."""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Any

from ..compare import FIGURES, delta, pair_stages
from ..render import (
    SHORTENED,
    human,
    print_fitted,
    rf_text,
    shape_text,
    short,
    to_dict,
)
from ..report import Report
from ..text import WORDS, Column, Page, Table
from . import common
from .common import Format

if TYPE_CHECKING:
    from rich.console import Console


def _compare_rows(a: Report, b: Report, compact: bool = False) -> list[tuple[str, list[str]]]:
    """Per stage, then in total: each figure for A, for B, and B - A, in readable units (compact: no percentages)."""

    number = short if compact else human
    rows = []
    totals = [(attr, getattr(a.totals, attr), getattr(b.totals, attr)) for _, attr in FIGURES]
    for key, values in [
        *((p.key, [(attr, p.value("a", attr), p.value("b", attr)) for _, attr in FIGURES]) for p in pair_stages(a, b)),
        ("total", totals),
    ]:
        cells = []
        for _, va, vb in values:
            change = delta(va, vb, number)
            cells += [
                "" if va is None else number(va),
                "" if vb is None else number(vb),
                change.split(" (")[0] if compact else change,
            ]
        rows.append((key, cells))
    return rows


def _compare_totals(a: Report, b: Report) -> list[tuple[str, str, str, str]]:

    ta, tb = a.totals, b.totals
    rfa, rfb = a.rows[-1].receptive_field, b.rows[-1].receptive_field

    def line(label: str, va: int, vb: int, unit: str = "") -> tuple[str, str, str, str]:
        return (label, human(va, unit), human(vb, unit), delta(va, vb, lambda n: human(n, unit)))

    lines = [
        ("params", f"{ta.params:,}", f"{tb.params:,}", delta(ta.params, tb.params)),
        line("param memory", ta.param_bytes, tb.param_bytes, "B"),
        line("MACs", ta.macs, tb.macs),
        line("FLOPs", ta.flops, tb.flops),
        line("activation memory", ta.activation_bytes, tb.activation_bytes, "B"),
        line("training memory", ta.training_bytes, tb.training_bytes, "B"),
        ("output", shape_text(a.rows[-1].output_shape), shape_text(b.rows[-1].output_shape), ""),
    ]
    if rfa and rfb:
        lines.append(("receptive field", rf_text(a.rows[-1]), rf_text(b.rows[-1]), ""))
    return lines


def _title(a: Report, b: Report, files: tuple[str, str]) -> str:
    return (
        f"A: {a.name} ({files[0]})  vs  B: {b.name} ({files[1]}), batch {a.batch}, {a.dtype};"
        " a stage ends where the output resolution changes"
    )


def _compare_table(a: Report, b: Report, files: tuple[str, str], compact: bool) -> Table:

    columns = [Column("stage")]
    for label, _ in FIGURES:
        label = "acts" if compact and label == "activations" else label
        columns += [Column(f"{label} A", right=True), Column("B", right=True)]
        columns.append(Column("B - A", right=True, breaks=None if compact else WORDS))
    table = Table(columns, title=_title(a, b, files), sep=2 if compact else 3)
    for key, cells in _compare_rows(a, b, compact):
        table.add_row(key, *cells, style="bold" if key == "total" else None)
    return table


def print_compare(a: Report, b: Report, files: tuple[str, str], console: Console) -> None:
    page = Page(console)
    if print_fitted(page, lambda compact: _compare_table(a, b, files, compact)):
        page.text(f"{SHORTENED}; acts = activations; the totals below are exact.", "dim")
    totals = Table([Column("")] + [Column("", breaks=WORDS)] * 3, box=False, sep=2)
    totals.add_row("", ("A", "bold"), ("B", "bold"), ("B - A", "bold"))
    for label, *values in _compare_totals(a, b):
        totals.add_row((label, "bold"), *values)
    page.table(totals)
    page.write()


def compare_markdown(a: Report, b: Report, files: tuple[str, str]) -> str:

    head = ["stage"] + [f"{h} {s}" for h, _ in FIGURES for s in ("A", "B", "B - A")]
    lines = [
        f"**A**: {a.name} (`{files[0]}`) vs **B**: {b.name} (`{files[1]}`), batch {a.batch}, {a.dtype}",
        "",
        "| " + " | ".join(head) + " |",
        "|:--|" + "--:|" * (len(head) - 1),
    ]
    for key, cells in _compare_rows(a, b):
        lines.append("| " + " | ".join([f"**{key}**" if key == "total" else key, *cells]) + " |")
    lines += ["", "| | A | B | B - A |", "|:--|--:|--:|--:|"]
    lines += [f"| {label} | {va} | {vb} | {d} |" for label, va, vb, d in _compare_totals(a, b)]
    return "\n".join(lines) + "\n"


def compare_dict(a: Report, b: Report, files: tuple[str, str]) -> dict[str, Any]:

    return {
        "a": {"file": files[0], **to_dict(a)},
        "b": {"file": files[1], **to_dict(b)},
        "stages": [
            {
                "stage": pair.key,
                **{attr: {"a": pair.value("a", attr), "b": pair.value("b", attr)} for _, attr in FIGURES},
            }
            for pair in pair_stages(a, b)
        ],
    }


def compare_csv(a: Report, b: Report) -> str:
    """``compare --format csv``: a line per stage, then ``total``; each figure for A, B and B - A (empty where a
    side lacks the stage)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["stage", *(f"{attr}_{side}" for _, attr in FIGURES for side in ("a", "b", "delta"))])

    def cells(va: int | None, vb: int | None) -> list[int | str]:
        return [*("" if v is None else v for v in (va, vb)), "" if va is None or vb is None else vb - va]

    for pair in pair_stages(a, b):
        writer.writerow(
            [pair.key, *(c for _, attr in FIGURES for c in cells(pair.value("a", attr), pair.value("b", attr)))]
        )
    ta, tb = a.totals, b.totals
    writer.writerow(["total", *(c for _, attr in FIGURES for c in cells(getattr(ta, attr), getattr(tb, attr)))])
    return out.getvalue()


def run(
    a: str, b: str, *, batch: int, dtype: str, input: str | None, strict: bool, quiet: bool, format: Format
) -> None:
    from .. import safe_text

    ra = common.analyze_spec(a, batch, dtype, input, strict)
    rb = common.analyze_spec(b, batch, dtype, input, strict)
    for report in (ra, rb):
        common.warn(report, quiet)
    files = (safe_text.text(str(a)), safe_text.text(str(b)))
    if format is Format.table:
        print_compare(ra, rb, files, common.console())
    elif format is Format.markdown:
        common.out(compare_markdown(ra, rb, files))
    elif format is Format.csv:
        common.out(compare_csv(ra, rb))
    else:
        common.out(json.dumps(compare_dict(ra, rb, files), indent=2))
