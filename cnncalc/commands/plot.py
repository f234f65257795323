"""``cnncalc plot``: per-layer bars of memory, params or MACs, two specs by stage, or the roofline chart.

matplotlib is an optional extra (``cnncalc[plot]``), imported only here; the format follows the
file's suffix (.png, .svg, .pdf).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..compare import pair_stages
from ..render import human
from ..report import Report
from ..roofline import Roofline
from . import common

#: What a bar chart can show: (the Row and Totals attribute, the axis label's quantity, the unit).
WHAT = {
    "memory": ("activation_bytes", "activation memory", "B"),
    "params": ("params", "parameters", ""),
    "macs": ("macs", "multiply-accumulates", "MAC"),
}
SUFFIXES = (".png", ".svg", ".pdf")
#: More bars than this are unreadable: a network this long is drawn by blocks (--depth 1) unless told otherwise.
MAX_BARS = 60
MISSING = "plot needs matplotlib, which is not installed: python3 -m pip install 'cnncalc[plot]'"


_WORDS = {"T": "trillions", "G": "billions", "M": "millions", "k": "thousands"}


def _scale(largest: float, unit: str) -> tuple[float, str]:
    """A divisor and its axis unit, so that the largest bar reads between 1 and 1000.

    >>> _scale(138_357_544, ""), _scale(25_690_112, "B"), _scale(512, "MAC")
    ((1000000.0, 'millions'), (1000000.0, 'MB'), (1.0, 'MAC'))
    """
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if largest >= factor:
            return factor, f"{prefix}{unit}" if unit else _WORDS[prefix]
    return 1.0, unit or "count"


def too_long(report: Report) -> bool:
    """More bars than a reader can tell apart, in a network that has blocks to draw instead."""
    return len(report.rows) > MAX_BARS and bool(report.blocks)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    return plt


def render(fig: Any, fmt: str) -> bytes:
    """The figure drawn in memory (png, svg or pdf), then closed."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=fmt, bbox_inches="tight", dpi=150)
    finally:
        _pyplot().close(fig)
    return buffer.getvalue()


def save(fig: Any, out: Path) -> None:
    """Drawn in memory first: a chart that fails leaves no file behind."""
    out.write_bytes(render(fig, out.suffix[1:].lower()))


def bars(report: Report, what: str) -> Any:
    """One horizontal bar per row (folded rows with ``--depth``), top to bottom in network order."""
    plt = _pyplot()
    attr, quantity, unit = WHAT[what]
    rows = [r for r in report.rows if r.kind != "input" or what == "memory"]
    values = [getattr(r, attr) for r in rows]
    factor, axis_unit = _scale(max(values, default=0), unit)
    height = max(2.5, 0.22 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(8, height))
    positions = range(len(rows))
    ax.barh(positions, [v / factor for v in values], color="#4c72b0")
    ax.set_yticks(list(positions), [r.name for r in rows], fontsize=8 if len(rows) < 60 else 6)
    ax.invert_yaxis()
    ax.set_xlabel(f"{quantity} ({axis_unit})")
    batch = f", batch {report.batch}, {report.dtype}" if what != "params" else ""
    ax.set_title(f"{report.name}: {quantity} per layer{batch}", fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)
    total = getattr(report.totals, attr)
    ax.text(1.0, -0.5 / height, f"total {human(total, unit)}", transform=ax.transAxes,
            ha="right", va="top", fontsize=8)  # fmt: skip
    return fig


def compare_bars(a: Report, b: Report, what: str) -> Any:
    """Two specs by stage (where the output resolution changes), side by side."""
    plt = _pyplot()
    attr, quantity, unit = WHAT[what]
    pairs = pair_stages(a, b)
    va = [p.value("a", attr) or 0 for p in pairs]
    vb = [p.value("b", attr) or 0 for p in pairs]
    factor, axis_unit = _scale(max([*va, *vb], default=0), unit)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.45 * len(pairs) + 1.2)))
    y = list(range(len(pairs)))
    ax.barh([i - 0.2 for i in y], [v / factor for v in va], height=0.4, label=f"A: {a.name}", color="#4c72b0")
    ax.barh([i + 0.2 for i in y], [v / factor for v in vb], height=0.4, label=f"B: {b.name}", color="#dd8452")
    ax.set_yticks(y, [p.key for p in pairs], fontsize=8)
    ax.invert_yaxis()
    ax.set_ylabel("stage (output resolution)")
    ax.set_xlabel(f"{quantity} ({axis_unit})")
    ax.set_title(f"{quantity} per stage", fontsize=10, loc="left")
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    return fig


def roofline_chart(report: Report, roof: Roofline, other: tuple[Report, Roofline] | None = None) -> Any:
    """Attainable FLOP/s against intensity, log-log: the device's roofs and every computing row as a point."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    series = [(report, roof, "#4c72b0")] + ([(other[0], other[1], "#dd8452")] if other else [])
    points = [r for _, rf, _ in series for r in rf.rows if r.flops and r.bytes]
    lo = min([r.intensity for r in points] + [roof.ridge / 10]) / 2
    hi = max([r.intensity for r in points] + [roof.ridge * 10]) * 2
    xs = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    ax.plot(xs, [min(roof.peak_flops, roof.bandwidth * x) / 1e12 for x in xs], color="black", lw=1.5,
            label=f"{roof.device} roof ({roof.peak_flops / 1e12:,.0f} TFLOP/s, {roof.bandwidth / 1e9:,.0f} GB/s)")  # fmt: skip
    ax.axvline(roof.ridge, color="grey", lw=0.8, ls=":")
    ax.text(roof.ridge * 1.08, roof.peak_flops / 1e12 * 1.2, f"ridge {roof.ridge:,.0f} FLOP/byte", fontsize=7,
            ha="left", color="grey")  # fmt: skip
    for rep, rf, color in series:
        rows = [r for r in rf.rows if r.flops and r.bytes]
        ax.scatter([r.intensity for r in rows], [r.flops / r.time_s / 1e12 for r in rows], s=14, color=color,
                   alpha=0.8, label=f"{rep.name}: {len(rows)} layers that compute")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
    ax.set_ylabel("attainable TFLOP/s")
    ax.set_title(f"Roofline on {roof.device}, {roof.dtype}, batch {report.batch}", fontsize=10, loc="left")
    ax.grid(which="both", alpha=0.25)
    ax.set_ylim(top=roof.peak_flops / 1e12 * 2)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def run(
    spec: str, other: str | None, *, what: str, output: str, device: str | None, batch: int, dtype: str,
    input: str | None, depth: int | None, quiet: bool,
) -> None:  # fmt: skip
    import typer

    out = Path(output)
    if out.suffix.lower() not in SUFFIXES:
        raise typer.BadParameter(f"expected a file name ending in .png, .svg or .pdf, got '{output}'", param_hint="-o")
    if not out.parent.is_dir():
        raise typer.BadParameter(f"no folder '{out.parent}' to write '{out.name}' into", param_hint="-o")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        common.refuse(MISSING)
    reports = [common.analyze_spec(s, batch, dtype, input) for s in (spec, other) if s is not None]
    for report in reports:
        common.warn(report, quiet)
    if what == "roofline":
        from ..roofline import roofline as compute
        from .roofline import resolve

        try:
            name, peak_flops, bandwidth = resolve(device or "h100-sxm", dtype, None, None)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--device") from None
        roofs = [compute(r, device=name, peak_flops=peak_flops, bandwidth=bandwidth, depth=depth) for r in reports]
        fig = roofline_chart(reports[0], roofs[0], (reports[1], roofs[1]) if len(reports) > 1 else None)
    elif len(reports) > 1:
        fig = compare_bars(reports[0], reports[1], what)
    else:
        report = reports[0]
        if depth is None and too_long(report):
            depth = 1
            common.console(stderr=True).print(
                f"{len(report.rows):,} rows are too many bars to read: drawn by blocks (--depth 1)", soft_wrap=True
            )
        fig = bars(report.folded(depth) if depth else report, what)
    save(fig, out)
    common.wrote(out)
