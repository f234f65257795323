"""``cnncalc summary``: the table of a report, and its JSON, CSV and Markdown."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import capped
from ..render import (
    CONVENTIONS,
    LECTURE_X2,
    SHORTENED,
    _row_dict,
    grid,
    human,
    mib,
    print_fitted,
    rf_text,
    shape_text,
    short,
    to_dict,
    training_text,
)
from ..report import ROW_QUANTITIES, Report, Row
from ..text import FIELDS, NAMES, WORDS, Column, Page, Table
from . import common
from .common import Format

if TYPE_CHECKING:
    from rich.console import Console


def _layer_text(row: Row) -> str:
    text = f"{row.kind} {row.detail}".strip()
    return f"{text} ({row.folded} rows)" if row.folded else text


def _cells(row: Row, name: str, layer: str, compact: bool = False) -> list[str]:
    """One row of the summary table: #, name, layer, output, activations (not when compact), memory, params, MACs, RF."""
    number = short if compact else "{:,}".format
    return [
        str(row.index),
        name,
        layer,
        shape_text(row.output_shape),
        *([] if compact else [f"{row.activations:,}"]),
        human(row.activation_bytes, "B") if row.activation_bytes else "0",
        number(row.params),
        number(row.macs),
        rf_text(row),
    ]


def _rows_with_headers(
    report: Report, indent: str = "  ", *, branch_levels: bool = True
) -> list[tuple[Row | None, str, str]]:
    """(row or None for a block header, the name cell indented by nesting, the layer cell); without
    ``branch_levels`` a concat's branches are not indented under their header (a U-Net's nesting)."""
    infos = {b.path: b for b in report.blocks}

    def level(path: tuple[str, ...]) -> int:
        """How deep ``path``'s contents are indented."""
        if branch_levels:
            return len(path)
        return sum(1 for i in range(len(path)) if (info := infos.get(path[: i + 1])) is None or info.kind != "branch")

    out: list[tuple[Row | None, str, str]] = []
    previous: tuple[str, ...] = ()
    for row in report.rows:
        block = row.block
        common = next(
            (i for i, (a, b) in enumerate(zip(previous, block, strict=False)) if a != b), min(len(previous), len(block))
        )
        for depth in range(common, len(block)):
            info = infos.get(block[: depth + 1])
            label = f"{info.kind} {info.detail}".strip() if info else ""
            out.append((None, indent * level(block[:depth]) + block[depth], label))
        previous = block
        out.append((row, indent * level(block) + row.local_name, _layer_text(row)))
    return out


def _summary_table(report: Report, compact: bool, *, branch_levels: bool = True) -> Table:
    t = report.totals
    number = short if compact else "{:,}".format
    columns = [
        Column("#", right=True),
        # names are what a reader searches for: wrapped (at an underscore) only when nothing else can narrow
        Column("name", footer="total", breaks=NAMES, last=True),
        Column("layer", breaks=WORDS, max_width=34),
        Column("output", right=True),
        *([] if compact else [Column("activations", right=True, footer=f"{t.activations:,}")]),
        Column("memory", right=True, footer=human(t.activation_bytes, "B")),
        Column("params", right=True, footer=number(t.params)),
        Column("MACs", right=True, footer=number(t.macs)),
        Column("RF", right=True, breaks=FIELDS, last=True),
    ]
    title = f"{report.name}: input {shape_text(report.input_shape)}, batch {report.batch}, {report.dtype}"
    table = Table(columns, title=title, footer=True, sep=2 if compact else 3)
    # a narrow terminal gets one space per level of nesting: deep networks (DenseNet) fit 80 columns
    for row, name, layer in _rows_with_headers(report, " " if compact else "  ", branch_levels=branch_levels):
        if row is None:  # a block's header: its kind and arguments span the columns of numbers, which it has none of
            table.add_row("", name, layer, style="bold")
        else:
            table.add_row(*_cells(row, name, layer, compact))
    return table


def print_table(report: Report, console: Console, *, quiet: bool = False) -> None:
    """The summary table (rows indented by block), then totals, conventions, warnings and notes."""
    page = Page(console)

    def build(compact: bool) -> Table:
        # too wide by its nesting alone (U-Net's four levels): a concat's branches are not indented
        table = _summary_table(report, compact)
        if not table.fits(page.width):
            flatter = _summary_table(report, compact, branch_levels=False)
            table = flatter if compact or flatter.fits(page.width) else table
        return table

    if print_fitted(page, build):
        page.text(f"{SHORTENED}; the activations column is left out.", "dim")
    page.table(grid(_total_lines(report)))
    page.blank()
    page.text("conventions", "bold")
    for line in CONVENTIONS:
        page.text(f"  {line}", "dim")
    if report.warnings and not quiet:
        page.blank()
        for w in capped(report.warnings):
            page.text(w.warning_line(), "yellow")
    if report.notes:
        page.blank()
        page.text("notes", "bold")
        for note in report.notes:
            page.text(f"  {note.strip()}")
    page.write()


def _total_lines(report: Report) -> list[tuple[str, str]]:
    t = report.totals
    outputs = report.output_rows
    returned = [("outputs", ", ".join(f"{r.name} {shape_text(r.output_shape)}" for r in outputs))]
    return [
        *(returned if outputs != report.rows[-1:] else []),  # a spec that names its outputs
        (
            "params",
            f"{t.params:,} (trainable {t.params_trainable:,}, non-trainable {t.params_non_trainable:,})"
            f" = {human(t.param_bytes, 'B')} ({mib(t.param_bytes)}) at {report.dtype}",
        ),
        ("MACs", f"{t.macs:,} = {human(t.macs)}MAC"),
        ("FLOPs", f"{t.flops:,} = {human(t.flops)}FLOP"),
        (
            "activations",
            f"{t.activations:,} values = {human(t.activation_bytes, 'B')} ({mib(t.activation_bytes)}),"
            " forward pass, the sum of the rows",
        ),
        (
            "peak",
            f"{human(t.peak_activation_bytes, 'B')} ({mib(t.peak_activation_bytes)}) of activations alive at once"
            " (inference, each tensor freed after its last reader)",
        ),
        ("fwd + bwd", f"~{human(t.forward_backward_bytes_estimate, 'B')} ({LECTURE_X2})"),
        ("training", training_text(report)),
    ]


def to_json(report: Report) -> str:
    import json  # imported by the formats that write it: the table's start is 1 ms shorter

    return json.dumps(to_dict(report), indent=2)


_CSV_COLUMNS = (
    "index",
    "name",
    "kind",
    "detail",
    "input_shape",
    "output_shape",
    *(q.name for q in ROW_QUANTITIES),
    "rf_size",
    "rf_stride",
    "block",
    "inputs",
    "folded",
)


def to_csv(report: Report) -> str:
    """One line per row, then a ``total`` line; shapes as ``CxHxW``."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for row in report.rows:
        d = _row_dict(row)
        rf = row.receptive_field
        d["input_shape"] = shape_text(row.input_shape)
        d["output_shape"] = shape_text(row.output_shape)
        d["rf_size"] = shape_text(rf.size) if rf else ""
        d["rf_stride"] = "x".join(str(j) for j in rf.stride) if rf else ""
        d["block"] = ".".join(row.block)
        d["inputs"] = " ".join(str(i) for i in row.inputs)
        writer.writerow([d[c] for c in _CSV_COLUMNS])
    totals = {**dataclasses.asdict(report.totals), "name": "total", "kind": "total"}
    writer.writerow([totals.get(c, "") for c in _CSV_COLUMNS])
    return out.getvalue()


def to_markdown(report: Report, *, quiet: bool = False) -> str:
    t = report.totals
    head = ["#", "name", "layer", "output", "activations", "memory", "params", "MACs", "RF"]
    align = ["--:", ":--", ":--", "--:", "--:", "--:", "--:", "--:", "--:"]
    lines = [
        f"### {report.name}",
        "",
        f"input {shape_text(report.input_shape)}, batch {report.batch}, {report.dtype}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(align) + "|",
    ]
    for row in report.rows:
        # a block's arguments are user text: a '|' in them would end the cell
        cells = [c.replace("|", "\\|") for c in _cells(row, row.name, _layer_text(row))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"| | **total** | | | **{t.activations:,}** | **{human(t.activation_bytes, 'B')}** "
        f"| **{t.params:,}** | **{t.macs:,}** | |"
    )
    lines += [
        "",
        f"- params: {t.params:,} (trainable {t.params_trainable:,}, non-trainable {t.params_non_trainable:,})"
        f" = {human(t.param_bytes, 'B')} at {report.dtype}",
        f"- MACs: {t.macs:,} ({human(t.macs)}); FLOPs: {t.flops:,} ({human(t.flops)})",
        f"- forward activations: {t.activations:,} values = {human(t.activation_bytes, 'B')} ({mib(t.activation_bytes)});"
        f" fwd + bwd ~{human(t.forward_backward_bytes_estimate, 'B')} ({LECTURE_X2})",
        f"- peak: {human(t.peak_activation_bytes, 'B')} of activations alive at once (inference)",
        f"- training: {training_text(report)}",
        "",
        *[f"> {c}  " for c in CONVENTIONS],
    ]
    if report.warnings and not quiet:
        lines += ["", *[f"- {w.warning_line()}" for w in report.warnings]]
    if report.notes:
        lines += ["", *[f"- note: {n.strip()}" for n in report.notes]]
    return "\n".join(lines) + "\n"


def run(
    spec: str,
    *,
    batch: int,
    dtype: str,
    input: str | None,
    strict: bool,
    quiet: bool,
    format: Format,
    depth: int | None,
) -> None:
    report = common.analyze_spec(spec, batch, dtype, input, strict)
    if depth is not None:
        report = report.folded(depth)
    if format is Format.table:
        print_table(report, common.console(), quiet=quiet)
    elif format is Format.markdown:
        common.out(to_markdown(report, quiet=quiet))
    elif format is Format.csv:
        common.warn(report, quiet)
        common.out(to_csv(report))
    else:
        common.out(to_json(report))
