"""A :class:`Report` as a rich table, JSON, CSV or Markdown."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .engine import Report, Row
from .errors import Problem, capped
from .text import DOTTED, WORDS, Cell, Column, Page, Table

if TYPE_CHECKING:  # render stays importable without torch, and a command imports only what it needs
    from rich.console import Console

    from .fit import Fit, Need
    from .peers import PeerCount
    from .torch_backend import RowComparison, Timing
    from .validate import FileResult

#: One line each, quoted from the engine's conventions; the README has them in full.
CONVENTIONS = (
    "MACs: multiply-accumulates of conv2d and linear, bias excluded (torchvision's 'GFLOPS'); FLOPs = 2 x MACs.",
    "Bias, pooling, norm, activations, adds and concatenations count 0 FLOPs, as in torch.utils.flop_counter.",
    "activations: values of the tensors each row allocates at inference; in-place ops, flatten and dropout add none.",
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
    return f"{size}/{stride}"


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


def _rows_with_headers(report: Report) -> list[tuple[Row | None, str, str]]:
    """(row or None for a block header, the name cell indented by nesting, the layer cell)."""
    infos = {b.path: b for b in report.blocks}
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
            out.append((None, "  " * depth + block[depth], label))
        previous = block
        out.append((row, "  " * len(block) + row.name.rsplit(".", 1)[-1], _layer_text(row)))
    return out


def _summary_table(report: Report, compact: bool) -> Table:
    t = report.totals
    number = short if compact else "{:,}".format
    columns = [
        Column("#", right=True),
        Column("name", footer="total"),  # names are never wrapped: they are what a reader searches for
        Column("layer", breaks=WORDS, max_width=34),
        Column("output", right=True),
        *([] if compact else [Column("activations", right=True, footer=f"{t.activations:,}")]),
        Column("memory", right=True, footer=human(t.activation_bytes, "B")),
        Column("params", right=True, footer=number(t.params)),
        Column("MACs", right=True, footer=number(t.macs)),
        Column("RF", right=True),
    ]
    title = f"{report.name}: input {shape_text(report.input_shape)}, batch {report.batch}, {report.dtype}"
    table = Table(columns, title=title, footer=True, sep=2 if compact else 3)
    for row, name, layer in _rows_with_headers(report):
        if row is None:  # a block's header: its kind and arguments span the columns of numbers, which it has none of
            table.add_row("", name, layer, style="bold")
        else:
            table.add_row(*_cells(row, name, layer, compact))
    return table


def print_table(report: Report, console: Console, *, quiet: bool = False) -> None:
    """The summary table (rows indented by block), then totals, conventions, warnings and notes."""
    page = Page(console)
    if print_fitted(page, lambda compact: _summary_table(report, compact)):
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
    return [
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


def _row_dict(row: Row) -> dict[str, Any]:
    rf = row.receptive_field
    return {
        "index": row.index,
        "name": row.name,
        "kind": row.kind,
        "detail": row.detail,
        "input_shape": list(row.input_shape) if row.input_shape is not None else None,
        "output_shape": list(row.output_shape),
        "params": row.params,
        "params_trainable": row.params_trainable,
        "params_non_trainable": row.params_non_trainable,
        "weights": row.weights,
        "biases": row.biases,
        "macs": row.macs,
        "flops": row.flops,
        "activations": row.activations,
        "activation_bytes": row.activation_bytes,
        "saved_bytes": row.saved_bytes,
        "receptive_field": {"size": list(rf.size), "stride": list(rf.stride)} if rf else None,
        "block": list(row.block),
        "inputs": list(row.inputs),
        "folded": row.folded,
    }


def problem_dict(problem: Problem) -> dict[str, Any]:
    return {"file": problem.file, "line": problem.line, "column": problem.column, "message": problem.message}


def to_dict(report: Report) -> dict[str, Any]:
    """The JSON contract (documented in the README): stable keys, integers exact."""
    return {
        "name": report.name,
        "input": {"shape": list(report.input_shape), "batch": report.batch, "dtype": report.dtype},
        "layers": [_row_dict(r) for r in report.rows],
        "totals": dataclasses.asdict(report.totals),
        "blocks": [{"path": list(b.path), "kind": b.kind, "detail": b.detail} for b in report.blocks],
        "warnings": [problem_dict(w) for w in report.warnings],
        "notes": list(report.notes),
        "conventions": list(CONVENTIONS),
    }


def to_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2)


# --- CSV and Markdown ------------------------------------------------------------

_CSV_COLUMNS = (
    "index",
    "name",
    "kind",
    "detail",
    "input_shape",
    "output_shape",
    "params",
    "params_trainable",
    "params_non_trainable",
    "weights",
    "biases",
    "macs",
    "flops",
    "activations",
    "activation_bytes",
    "saved_bytes",
    "rf_size",
    "rf_stride",
    "block",
    "inputs",
    "folded",
)


def to_csv(report: Report) -> str:
    """One line per row, then a ``total`` line; shapes as ``CxHxW``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for row in report.rows:
        d = _row_dict(row)
        rf = row.receptive_field
        d["input_shape"] = shape_text(row.input_shape)
        d["output_shape"] = shape_text(row.output_shape)
        d["rf_size"] = shape_text(rf.size) if rf else ""
        d["rf_stride"] = shape_text(rf.stride) if rf else ""
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
        lines.append("| " + " | ".join(_cells(row, row.name, _layer_text(row))) + " |")
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


# --- profile: engine against torch ----------------------------------------------------

#: Table columns of ``profile``: (header, the checks that decide its mark).
_PROFILE_COLUMNS = (
    ("shape", ("output_shape",)),
    ("params", ("params_trainable", "params_non_trainable", "weights", "biases")),
    ("FLOPs", ("flops",)),
    ("bytes", ("activation_bytes",)),
    ("kept", ("saved_bytes",)),  # with --train only
)


def _cell(value: Any) -> str:
    if isinstance(value, tuple):
        return shape_text(value)
    return f"{value:,}"


def _cell_pair(c: RowComparison, header: str, quantities: tuple[str, ...]) -> tuple[str, Cell]:
    """A column's two cells for one row: cnncalc's value, and torch's with its mark (both empty if unchecked)."""
    checks = [ch for ch in c.checks if ch.quantity in quantities]
    if not checks:
        return "", ""
    # the params cells show the total, trainable + non-trainable; the mark covers all four checks
    shown = checks[:2] if header == "params" else checks[:1]
    analytic = sum(ch.analytic for ch in shown) if header == "params" else shown[0].analytic
    measured = sum(ch.measured for ch in shown) if header == "params" else shown[0].measured
    ok = all(ch.ok for ch in checks)
    return _cell(analytic), (f"{_cell(measured)} {'✓' if ok else '✗'}", "green" if ok else "bold red")


def mismatches(comparisons: list[RowComparison]) -> list[str]:
    return [
        f"layer {c.row.index} {c.row.kind} '{c.row.name}': {ch.quantity} cnncalc {_cell(ch.analytic)} != torch {_cell(ch.measured)}"
        for c in comparisons
        for ch in c.checks
        if not ch.ok
    ]


def kept_for_backward(comparisons: list[RowComparison]) -> int | None:
    """cnncalc's bytes kept for backward by the rules of the device profiled, when ``--train`` measured them."""
    checks = [ch for c in comparisons for ch in c.checks if ch.quantity == "saved_bytes"]
    return sum(ch.analytic for ch in checks) if checks else None


def _timing_lines(report: Report, timing: Timing, peak_tflops: float | None, kept: int | None) -> list[tuple[str, str]]:
    t = report.totals
    secs = timing.seconds
    median = timing.median
    q1, q3 = timing.quartiles
    achieved = timing.flops_per_iter / median / 1e12 if median > 0 else 0.0
    lines = [
        ("device", f"{timing.device_name} ({timing.device}), {timing.mode}, batch {report.batch}, {report.dtype}"),
        (
            "latency",
            f"median {median * 1e3:.3f} ms per batch, half of the runs within {q1 * 1e3:.3f} to {q3 * 1e3:.3f}"
            f" (min {min(secs) * 1e3:.3f}, max {max(secs) * 1e3:.3f}; {len(secs)} iterations after"
            f" {timing.warmup} warm-up, {timing.threads} CPU threads, {timing.mode}"
            + (" under torch.inference_mode)" if timing.mode == "inference" else ")"),
        ),
        ("throughput", f"{report.batch / median:,.1f} images/s" if median > 0 else "n/a"),
        (
            "achieved",
            f"{achieved:.3f} TFLOP/s ({human(timing.flops_per_iter)}FLOP per iteration, counted by FlopCounterMode"
            + (", forward + backward)" if timing.mode == "train" else ")")
            + (f", {100 * achieved / peak_tflops:.1f}% of the {peak_tflops:g} TFLOP/s peak" if peak_tflops else ""),
        ),
    ]
    verified = kept is not None
    if kept is None and timing.saved_bytes is not None:
        kept = t.saved_bytes  # CUDA: the summary's figure, by rules not yet measured on a GPU
    if timing.peak_bytes is not None:
        train = kept is not None
        estimate = t.param_bytes + (t.grad_bytes + (kept or 0) if train else t.peak_activation_bytes)
        what = "params + grads + kept for backward" if train else "params + peak activations"
        lines.append(
            (
                "peak memory",
                f"{human(timing.peak_bytes, 'B')} allocated (torch.cuda.max_memory_allocated); cnncalc's estimate"
                f" {human(estimate, 'B')} ({what})",
            )
        )
    if timing.saved_bytes is not None and kept is not None:
        if kept == timing.saved_bytes:
            mark = "✓"
        else:
            mark = "✗" if verified else "(differs: cnncalc's CUDA rules are not yet checked on a GPU)"
        lines.append(
            (
                "kept for bwd",
                f"{timing.saved_bytes:,} bytes = {human(timing.saved_bytes, 'B')} of tensors autograd keeps for backward"
                f" (measured); cnncalc {kept:,} {mark}; the lecture's x2 rule assumes"
                f" {human(t.forward_backward_bytes_estimate - t.activation_bytes, 'B')}, one more copy of the activations",
            )
        )
    return lines


def _profile_table(report: Report, comparisons: list[RowComparison], compact: bool) -> Table:
    title = f"{report.name}: cnncalc against PyTorch, input {shape_text(report.input_shape)}, batch {report.batch}, {report.dtype}"
    measured_quantities = {ch.quantity for c in comparisons for ch in c.checks}
    columns = [(h, q) for h, q in _PROFILE_COLUMNS if measured_quantities & set(q)]
    heads = [Column("#", right=True), Column("name", breaks=DOTTED)]
    for header, _ in columns:
        if not compact:
            heads.append(Column(header, right=True))
        heads.append(Column(f"torch {header}" if compact else "torch", right=True))
    table = Table(heads, title=title, sep=2)
    for c in comparisons:
        row = c.row
        cells: list[Cell] = [str(row.index), row.name]
        for header, quantities in columns:
            analytic, measured = _cell_pair(c, header, quantities)
            cells += [measured] if compact else [analytic, measured]
        table.add_row(*cells)
    return table


def print_profile(
    report: Report,
    comparisons: list[RowComparison],
    timing: Timing,
    console: Console,
    peak_tflops: float | None = None,
) -> None:
    """Analytic and measured side by side, a mark per cell, then the timing."""
    page = Page(console)
    if print_fitted(page, lambda compact: _profile_table(report, comparisons, compact)):
        page.text("Narrow terminal: PyTorch's figures only, each marked ✓ where cnncalc's equals it.", "dim")
    bad = mismatches(comparisons)
    n = sum(len(c.checks) for c in comparisons)
    if bad:
        page.text(f"✗ {len(bad)} of {n} checks disagree with PyTorch:", "bold red")
        for line in bad:
            page.text(f"  mismatch: {line}", "red")
    else:
        page.text(
            f"✓ all {n} checks agree with PyTorch (shapes, params, FLOPs, activation bytes"
            + (", bytes kept for backward)" if kept_for_backward(comparisons) is not None else ")"),
            "bold green",
        )
    page.blank()
    page.table(grid(_timing_lines(report, timing, peak_tflops, kept_for_backward(comparisons))))
    page.write()


def profile_dict(
    report: Report, comparisons: list[RowComparison], timing: Timing, peak_tflops: float | None = None
) -> dict[str, Any]:
    """``profile --format json``: ``ok`` first, then every check and the timing."""
    bad = mismatches(comparisons)
    median = timing.median
    return {
        "ok": not bad,
        "name": report.name,
        "input": {"shape": list(report.input_shape), "batch": report.batch, "dtype": report.dtype},
        "layers": [
            {
                "index": c.row.index,
                "name": c.row.name,
                "kind": c.row.kind,
                "checks": {
                    ch.quantity: {
                        "analytic": list(ch.analytic) if isinstance(ch.analytic, tuple) else ch.analytic,
                        "measured": list(ch.measured) if isinstance(ch.measured, tuple) else ch.measured,
                        "ok": ch.ok,
                    }
                    for ch in c.checks
                },
            }
            for c in comparisons
        ],
        "mismatches": bad,
        "timing": {
            "device": timing.device,
            "device_name": timing.device_name,
            "mode": timing.mode,
            "warmup": timing.warmup,
            "iterations": len(timing.seconds),
            "seconds": timing.seconds,
            "median_seconds": median,
            "quartile_seconds": list(timing.quartiles),
            "threads": timing.threads,
            "images_per_second": report.batch / median if median > 0 else None,
            "flops_per_iteration": timing.flops_per_iter,
            "achieved_tflops": timing.flops_per_iter / median / 1e12 if median > 0 else None,
            "peak_tflops": peak_tflops,
            "peak_memory_bytes": timing.peak_bytes,
            "baseline_memory_bytes": timing.baseline_bytes,
            "saved_for_backward_bytes": timing.saved_bytes,
        },
        "totals": dataclasses.asdict(report.totals),
    }


# --- validate -------------------------------------------------------------------------


def _github_escape(text: str, *, prop: bool = False) -> str:
    """GitHub Actions workflow-command escaping (``%``, newlines; ``:`` and ``,`` in properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def validation_lines(results: list[FileResult], fmt: str) -> list[str]:
    """One line per problem: ``path:line:col: message`` (text) or a ``::error``/``::warning`` annotation."""
    lines = []
    for result in results:
        problems = [(p, "error") for p in result.errors] + [(p, "warning") for p in result.warnings]
        problems.sort(key=lambda item: (item[0].line or 0, item[0].column or 0))
        for p, severity in problems:
            if fmt == "github":
                props = [f"file={_github_escape(p.file or result.path, prop=True)}"]
                props += [f"{k}={v}" for k, v in (("line", p.line), ("col", p.column)) if v is not None]
                lines.append(f"::{severity} {','.join(props)}::{_github_escape(p.message)}")
            else:
                located = p if p.file else p.located(result.path, p.line, p.column)
                lines.append(located.warning_line() if severity == "warning" else str(located))
    return lines


def validation_dict(results: list[FileResult]) -> dict[str, Any]:
    return {
        "ok": all(r.ok for r in results),
        "files": [
            {
                "path": r.path,
                "ok": r.ok,
                "errors": [problem_dict(p) for p in r.errors],
                "warnings": [problem_dict(p) for p in r.warnings],
            }
            for r in results
        ],
        "errors": sum(r.error_count for r in results),
        "warnings": sum(r.warning_count for r in results),
    }


def validation_summary(results: list[FileResult]) -> str:
    bad = sum(not r.ok for r in results)
    errors = sum(r.error_count for r in results)
    warnings = sum(r.warning_count for r in results)
    return (
        f"{len(results)} file(s) checked: {len(results) - bad} valid, {bad} invalid"
        f" ({errors} error(s), {warnings} warning(s))"
    )


# --- compare --------------------------------------------------------------------------


def _compare_rows(a: Report, b: Report, compact: bool = False) -> list[tuple[str, list[str]]]:
    """Per stage, then in total: each figure for A, for B, and B - A, in readable units (compact: no percentages)."""
    from .compare import FIGURES, delta, pair_stages

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
    from .compare import delta

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
    from .compare import FIGURES

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
    from .compare import FIGURES

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
    from .compare import FIGURES, pair_stages

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


# --- fit ------------------------------------------------------------------------------

#: What the solver's sums leave out; said under every answer.
NOT_COUNTED = (
    "Not counted: the CUDA context (some hundreds of MB), cuDNN workspaces, the caching allocator's rounding"
    " and fragmentation, and tensors a backward pass makes while it runs; leave headroom."
)


def _need_text(n: Need, train: bool, optimizer: str) -> str:
    parts = [f"params {human(n.params, 'B')}"]
    if train:
        parts.append(f"grads {human(n.grads, 'B')}")
        if n.optimizer:
            parts.append(f"{optimizer} state {human(n.optimizer, 'B')}")
        parts.append(f"kept for backward {human(n.activations, 'B')}")
        if n.output:
            parts.append(f"output {human(n.output, 'B')}")
    else:
        parts.append(f"peak activations {human(n.activations, 'B')}")
    return f"{human(n.total, 'B')} ({n.total:,} bytes) = " + " + ".join(parts)


def print_fit(result: Fit, file: str, console: Console) -> None:
    from .fit import LIMIT

    page = Page(console)
    what = f"a training step with {result.optimizer}" if result.train else "inference"
    budget = f"{human(result.budget, 'B')} ({result.budget / 2**30:,.2f} GiB)"
    page.text(f"{file}: the largest batch for {what} in {budget}", "bold")
    rows = []
    if result.best is not None:
        rows.append(
            (f"batch {result.best.batch:,}", "fits: " + _need_text(result.best, result.train, result.optimizer))
        )
    if result.next is not None:
        rows.append(
            (f"batch {result.next.batch:,}", "does not: " + _need_text(result.next, result.train, result.optimizer))
        )
    else:
        rows.append(("", f"(the search stops at batch {LIMIT:,}; larger batches may fit too)"))
    page.table(grid(rows, right=True))
    if result.best is None:
        page.text("Not even one image fits.", "bold red")
    page.text(NOT_COUNTED, "dim")
    page.write()


def fit_dict(result: Fit, file: str) -> dict[str, Any]:
    def need(n: Need | None) -> dict[str, int] | None:
        return None if n is None else {**dataclasses.asdict(n), "total": n.total}

    return {
        "file": file,
        "budget_bytes": result.budget,
        "train": result.train,
        "optimizer": result.optimizer if result.train else None,
        "batch": result.best.batch if result.best else 0,
        "fits": need(result.best),
        "next": need(result.next),
        "not_counted": NOT_COUNTED,
        "warnings": [problem_dict(w) for w in result.warnings],
    }


# --- peers ----------------------------------------------------------------------------


def print_peers(report: Report, counts: list[PeerCount], console: Console) -> None:
    t = report.totals
    title = (
        f"{report.name}: what other tools print for it (input {shape_text(report.input_shape)}, batch {report.batch});"
        f" cnncalc's MACs: {t.macs:,}"
    )
    columns = [Column("tool"), Column("prints", breaks=WORDS), Column("value", right=True)]
    columns.append(Column("beyond cnncalc's MACs", breaks=WORDS))
    table = Table(columns, title=title, lines_between=True)
    for c in counts:
        terms = "\n".join(f"+ {n:,} {what}" for what, n in c.terms) if c.terms else "+ 0: the same count"
        table.add_row(c.tool, [(c.label, None), (c.rule, "dim")], f"{c.value:,}", terms)
    page = Page(console)
    page.table(table)
    page.text(
        "Each value is that tool's rules, read in its source, applied to this spec; tests/test_peers.py runs"
        " the tools themselves on every shipped spec and checks them exactly.",
        "dim",
    )
    page.write()


def peers_dict(report: Report, counts: list[PeerCount]) -> dict[str, Any]:
    return {
        "name": report.name,
        "input": {"shape": list(report.input_shape), "batch": report.batch},
        "macs": report.totals.macs,
        "peers": [
            {
                "tool": c.tool,
                "label": c.label,
                "value": c.value,
                "rule": c.rule,
                "terms": [{"what": what, "value": n} for what, n in c.terms],
            }
            for c in counts
        ],
    }
