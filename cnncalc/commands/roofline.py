"""``cnncalc roofline``: per row, FLOPs, bytes moved, intensity and the bound on a device."""

from __future__ import annotations

import csv
import dataclasses
import io
from typing import TYPE_CHECKING, Any

from ..report import Report
from ..roofline import DEVICES, Roofline
from ..text import DOTTED, Column, Page, Table
from . import common
from .common import Format

if TYPE_CHECKING:
    from rich.console import Console

#: Said under every roofline: what it is and what it is not.
CAVEAT = (
    "An ideal: each row alone at the device's published peak or bandwidth, rows one after another, caches"
    " empty between them; real kernels reach less (cnncalc profile --roofline measures each layer)."
)


def resolve(
    name: str | None, dtype: str, peak_tflops: float | None, bandwidth_gbs: float | None
) -> tuple[str, float, float]:
    """(device name, peak FLOP/s, bandwidth bytes/s) from a device of the table, overridden by --peak/--bandwidth."""
    if name is None:
        if peak_tflops is None or bandwidth_gbs is None:
            raise ValueError("give --device NAME, or both --peak and --bandwidth")
        return "custom", peak_tflops * 1e12, bandwidth_gbs * 1e9
    key = name.lower().replace(" ", "-").replace("_", "-")
    device = DEVICES.get(key)
    if device is None:
        raise ValueError(f"unknown device '{name}'; known: {', '.join(DEVICES)}, measure")
    peak = peak_tflops * 1e12 if peak_tflops is not None else device.peak(dtype)
    bandwidth = bandwidth_gbs * 1e9 if bandwidth_gbs is not None else device.bandwidth
    return device.name, peak, bandwidth


def _device(roof: Roofline) -> dict[str, Any]:
    return {"name": roof.device, "dtype": roof.dtype, "peak_flops": roof.peak_flops, "bandwidth": roof.bandwidth}


def to_dict(roof: Roofline) -> dict[str, Any]:
    """The JSON contract (docs/roofline.md)."""
    return {
        "device": _device(roof),
        "rows": [dataclasses.asdict(r) for r in roof.rows],
        "totals": {
            "flops": roof.flops,
            "bytes": roof.bytes,
            "time_s": roof.time_s,
            "memory_bound_share": roof.memory_bound_share,
        },
    }


def to_csv(roof: Roofline) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = ("index", "name", "kind", "flops", "bytes", "intensity", "bound", "time_s")
    writer.writerow(columns)
    for r in roof.rows:
        writer.writerow([getattr(r, c) for c in columns])
    writer.writerow(["", "total", "", roof.flops, roof.bytes, "", "", roof.time_s])
    return out.getvalue()


def _time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.2f} us"


def print_roofline(report: Report, roof: Roofline, console: Console) -> None:
    title = (
        f"{report.name} on {roof.device}: {roof.dtype}, batch {report.batch}; peak {roof.peak_flops / 1e12:,.1f}"
        f" TFLOP/s, {roof.bandwidth / 1e9:,.0f} GB/s, ridge at {roof.ridge:,.1f} FLOP/byte"
    )
    page = Page(console)
    page.line(title)
    columns = [Column("#", right=True), Column("name", breaks=DOTTED, footer="total")]
    columns += [
        Column("FLOPs", right=True, footer=f"{roof.flops:,}"),
        Column("bytes", right=True, footer=f"{roof.bytes:,}"),
    ]
    columns += [Column("FLOP/byte", right=True), Column("bound"), Column("time", right=True, footer=_time(roof.time_s))]
    table = Table(columns, footer=True)
    for r in roof.rows:
        table.add_row(
            str(r.index), r.name, f"{r.flops:,}", f"{r.bytes:,}",
            f"{r.intensity:,.1f}" if r.bytes else "", r.bound if r.bound != "none" else "", _time(r.time_s) if r.time_s else "",
        )  # fmt: skip
    page.table(table)
    share = roof.memory_bound_share
    page.text(
        f"time {_time(roof.time_s)} per batch at best, {100 * share:.1f}% of it in memory-bound rows;"
        f" {report.batch / roof.time_s:,.0f} images/s at most"
        if roof.time_s
        else "nothing to run"
    )
    page.text(CAVEAT, "dim")
    page.write()


def measured(roof: Roofline, seconds: dict[int, float]) -> list[dict[str, Any]]:
    """``profile --roofline``: each row's measured time beside its ideal, and the fraction of the roof reached."""
    out = []
    for r in roof.rows:
        took = seconds.get(r.index)
        if took is None or r.kind == "input":
            continue
        out.append(
            {"index": r.index, "name": r.name, "bound": r.bound, "ideal_s": r.time_s, "measured_s": took,
             "fraction": r.time_s / took if took > 0 else None}
        )  # fmt: skip
    return out


def measured_dict(roof: Roofline, rows: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum(r["measured_s"] for r in rows)
    return {
        "device": _device(roof),
        "rows": rows,
        "totals": {"ideal_s": roof.time_s, "measured_s": total, "fraction": roof.time_s / total if total else None},
    }


def print_measured(roof: Roofline, rows: list[dict[str, Any]], console: Console, top: int = 12) -> None:
    """The rows that take longest, each against its roof, then the whole network."""
    total = sum(r["measured_s"] for r in rows)
    page = Page(console)
    page.text(
        f"roofline on {roof.device} (peak {roof.peak_flops / 1e12:,.2f} TFLOP/s, {roof.bandwidth / 1e9:,.1f} GB/s):"
        f" the layers reach {100 * roof.time_s / total:.1f}% of the roof over the whole pass"
        f" (ideal {_time(roof.time_s)}, measured {_time(total)} with a hook around each layer)"
        if total
        else "roofline: nothing was timed"
    )
    columns = [Column("#", right=True), Column("name", breaks=DOTTED), Column("bound")]
    columns += [Column("ideal", right=True), Column("measured", right=True), Column("of roof", right=True)]
    table = Table(columns)
    for r in sorted(rows, key=lambda r: -r["measured_s"])[:top]:
        fraction = f"{100 * r['fraction']:.1f}%" if r["fraction"] is not None else ""
        table.add_row(str(r["index"]), r["name"], r["bound"], _time(r["ideal_s"]), _time(r["measured_s"]), fraction)
    page.table(table)
    page.write()


def run(
    spec: str, *, device: str | None, peak: float | None, bandwidth: float | None, batch: int, dtype: str,
    input: str | None, depth: int | None, quiet: bool, format: Format,
) -> None:  # fmt: skip
    import json
    import math

    import typer

    from ..roofline import roofline as compute

    for value, name in ((peak, "--peak"), (bandwidth, "--bandwidth")):
        if value is not None and not (0 < value < math.inf):
            raise typer.BadParameter(f"expected a positive, finite number, got {value}", param_hint=name)
    report = common.analyze_spec(spec, batch, dtype, input)
    common.warn(report, quiet)
    try:
        if device is not None and device.lower() == "measure":
            try:
                from .. import torch_backend as tb
            except ImportError:
                raise ValueError("--device measure needs PyTorch: python3 -m pip install 'cnncalc[torch]'") from None
            if dtype == "int8":
                raise ValueError("--device measure times float matmuls: use float32, float16 or bfloat16")
            name, measured_peak, measured_bandwidth = tb.measure_device(tb.resolve_device("auto"), dtype)
            name, peak_flops, bytes_per_s = resolve(
                None, dtype, peak if peak is not None else measured_peak / 1e12,
                bandwidth if bandwidth is not None else measured_bandwidth / 1e9,
            )  # fmt: skip
            name = "this machine, measured" if name == "custom" else name
        else:
            name, peak_flops, bytes_per_s = resolve(device, dtype, peak, bandwidth)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    roof = compute(report, device=name, peak_flops=peak_flops, bandwidth=bytes_per_s, depth=depth)
    if format is Format.json:
        common.out(json.dumps(to_dict(roof), indent=2))
    elif format is Format.csv:
        common.out(to_csv(roof))
    else:
        print_roofline(report, roof, common.console())
