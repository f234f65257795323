"""``cnncalc profile``: the engine against PyTorch, row by row, then the timing."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from typing import TYPE_CHECKING, Any

from ..errors import Problem
from ..machine import out_of_memory, within_free_memory
from ..render import (
    grid,
    human,
    print_fitted,
    shape_text,
)
from ..report import Report
from ..text import DOTTED, Cell, Column, Page, Table
from . import common
from .common import Format

if TYPE_CHECKING:
    from rich.console import Console

    from ..torch_backend import RowComparison, Timing


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


#: Said when profile runs where torch is not installed.
TORCH_MISSING = (
    "profile needs PyTorch, which is not installed: python3 -m pip install 'cnncalc[torch]'"
    " (on a GPU machine, install a CUDA build of torch first: https://pytorch.org/get-started)"
)


def run(
    spec: str, *, device: str, batch: int, dtype: str, input: str | None, quiet: bool, train: bool, warmup: int,
    iters: int | None, peak_tflops: float | None, roofline: bool, roofline_device: str | None, format: Format,
) -> None:  # fmt: skip
    """Build the spec in torch on the device asked for, check every number, time it, and say so."""
    import typer

    try:
        from .. import torch_backend as tb
    except ImportError:
        common.refuse(TORCH_MISSING)
    report = common.analyze_spec(spec, batch, dtype, input)
    common.warn(report, quiet)
    try:
        where = tb.resolve_device(device)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    show = format is Format.table
    # on the CPU, an allocation past the machine's free memory fails and is said, rather than the kernel killing
    # the process (a CUDA context maps more address space than the machine has: no cap there)
    with within_free_memory() if where == "cpu" else contextlib.nullcontext() as free:
        try:
            with common.phase(f"building {report.name} in PyTorch on {where}", show):
                model = tb.build(report, device=where, dtype=dtype)
            with common.phase(f"checking {len(report.rows)} rows against PyTorch", show):
                saved = tb.measure_saved(model, report.input_shape, batch) if train else None
                # per-row kept-for-backward checks where the rules are verified (the CPU); CUDA compares the total
                checked = saved if where == "cpu" else None
                comparisons = tb.compare(report, tb.measure(model, report.input_shape, batch), checked, device=where)
            with common.progress(warmup + iters if iters else None, show) as tick:
                timing = tb.time_model(
                    model, report.input_shape, batch=batch, train=train, warmup=warmup, iters=iters, tick=tick
                )
            if saved is not None:
                timing.saved_bytes = sum(saved.values())
            roof = roof_rows = None
            if roofline:
                from ..roofline import roofline as compute_roof
                from . import roofline as roof_command

                with common.phase("timing each layer against its roof", show):
                    if roofline_device is None:
                        name, peak_flops, bytes_per_s = tb.measure_device(where, dtype)
                    else:
                        name, peak_flops, bytes_per_s = roof_command.resolve(roofline_device, dtype, None, None)
                    roof = compute_roof(report, device=name, peak_flops=peak_flops, bandwidth=bytes_per_s)
                    roof_rows = roof_command.measured(roof, tb.time_rows(model, report.input_shape, batch))
        except (RuntimeError, ValueError, MemoryError) as exc:  # torch refused the network: say so in one line
            if out_of_memory(exc):
                room = f" ({human(free, 'B')})" if free else ""
                hint = "a smaller --batch or --input"
                why = f"running it at batch {batch} needs more memory than this machine has free{room}"
                common.fail([Problem(f"{why}: try {hint}", file=str(spec))])
            common.fail([Problem(f"PyTorch failed on this network: {str(exc).splitlines()[0]}", file=str(spec))])
    if format is Format.json:
        result = profile_dict(report, comparisons, timing, peak_tflops)
        if roof is not None and roof_rows is not None:
            result["roofline"] = roof_command.measured_dict(roof, roof_rows)
        common.out(json.dumps(result, indent=2))
    else:
        print_profile(report, comparisons, timing, common.console(), peak_tflops)
        if roof is not None and roof_rows is not None:
            common.console().print()
            roof_command.print_measured(roof, roof_rows, common.console())
    if not all(c.ok for c in comparisons):
        raise typer.Exit(1)
