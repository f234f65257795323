"""``cnncalc report``: one self-contained HTML page: the summary with collapsible blocks, the totals,
the charts inline as SVG, the roofline on a device, the conventions and the warnings.

Nothing is fetched from the network: the style is inline, the charts are inline SVG, and the page
holds its figures as JSON (``<script type="application/json" id="cnncalc-data">``, the summary's
JSON contract), which the tests compare with the cells of the page.
"""

from __future__ import annotations

import json
import re
from html import escape

from ..render import CONVENTIONS, human, rf_text, to_dict
from ..report import Report, Row
from ..roofline import Roofline
from . import common

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 2px 8px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th { border-bottom: 2px solid #999; } td.l, th.l { text-align: left; }
tr.block td { background: #f3f5f9; font-weight: 600; cursor: pointer; }
tr.block td.l::before { content: "\\25BE  "; } tr.block.closed td.l::before { content: "\\25B8  "; }
tr.hidden { display: none; } tfoot td { font-weight: 700; border-top: 2px solid #999; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; } dt { font-weight: 600; }
.warning { color: #a15c00; } .charts svg { max-width: 100%; height: auto; } .note { color: #666; }
"""

#: Opens and closes a block's rows on a click on its header; every row carries its block paths.
SCRIPT = """
document.querySelectorAll("tr.block").forEach(function (header) {
  header.addEventListener("click", function () {
    var path = header.dataset.path, closed = !header.classList.contains("closed");
    header.classList.toggle("closed", closed);
    document.querySelectorAll("tr[data-in]").forEach(function (row) {
      var inside = row.dataset.in.split(" ").indexOf(path) >= 0;
      if (inside) { row.classList.toggle("hidden", closed); if (!closed && row.classList.contains("block")) row.classList.remove("closed"); }
    });
  });
});
"""


def _shape(shape: tuple[int, ...] | None) -> str:
    return "x".join(str(n) for n in shape) if shape else ""


def _row_html(row: Row, within: list[str]) -> str:
    cells = [
        str(row.index),
        f'<td class="l">{"&nbsp;" * 3 * len(row.block)}{escape(row.local_name)}</td>',
        f'<td class="l">{escape(f"{row.kind} {row.detail}".strip())}</td>',
        _shape(row.output_shape),
        f"{row.activations:,}",
        human(row.activation_bytes, "B") if row.activation_bytes else "0",
        f"{row.params:,}",
        f"{row.macs:,}",
        rf_text(row),
    ]
    tds = "".join(c if c.startswith("<td") else f"<td>{c}</td>" for c in cells)
    return f'<tr data-index="{row.index}" data-in="{escape(" ".join(within))}">{tds}</tr>'


def _table(report: Report) -> str:
    infos = {b.path: b for b in report.blocks}
    lines = [
        "<table><thead><tr><th>#</th><th class=l>name</th><th class=l>layer</th><th>output</th>"
        "<th>activations</th><th>memory</th><th>params</th><th>MACs</th><th>RF</th></tr></thead><tbody>"
    ]
    previous: tuple[str, ...] = ()
    for row in report.rows:
        block = row.block
        common = next((i for i, (a, b) in enumerate(zip(previous, block, strict=False)) if a != b),
                      min(len(previous), len(block)))  # fmt: skip
        for depth in range(common, len(block)):
            path = block[: depth + 1]
            info = infos.get(path)
            label = f"{info.kind} {info.detail}".strip() if info else ""
            within = [".".join(block[:d]) for d in range(1, depth + 1)]
            lines.append(
                f'<tr class="block" data-path="{escape(".".join(path))}" data-in="{escape(" ".join(within))}">'
                f'<td></td><td class="l" colspan="2">{"&nbsp;" * 3 * depth}{escape(block[depth])}'
                f" <small>{escape(label)}</small></td><td colspan=6></td></tr>"
            )
        previous = block
        lines.append(_row_html(row, [".".join(block[:d]) for d in range(1, len(block) + 1)]))
    t = report.totals
    lines.append(
        f"</tbody><tfoot><tr><td></td><td class=l>total</td><td></td><td></td><td>{t.activations:,}</td>"
        f"<td>{human(t.activation_bytes, 'B')}</td><td>{t.params:,}</td><td>{t.macs:,}</td><td></td></tr></tfoot></table>"
    )
    return "\n".join(lines)


def _totals(report: Report) -> str:
    from ..render import training_text

    t = report.totals
    items = [
        ("params", f"{t.params:,} (trainable {t.params_trainable:,}, non-trainable {t.params_non_trainable:,})"
                   f" = {human(t.param_bytes, 'B')}"),
        ("MACs", f"{t.macs:,} = {human(t.macs)}MAC"),
        ("FLOPs", f"{t.flops:,} = {human(t.flops)}FLOP"),
        ("activations", f"{t.activations:,} values = {human(t.activation_bytes, 'B')}, the sum of the rows"),
        ("peak", f"{human(t.peak_activation_bytes, 'B')} of activations alive at once (inference)"),
        ("training", training_text(report)),
    ]  # fmt: skip
    return "<dl>" + "".join(f"<dt>{k}</dt><dd id='total-{k}'>{escape(v)}</dd>" for k, v in items) + "</dl>"


def _roofline(roof: Roofline) -> str:
    share = 100 * roof.memory_bound_share
    return (
        f"<p>On <b>{escape(roof.device)}</b> ({roof.dtype}: peak {roof.peak_flops / 1e12:,.1f} TFLOP/s,"
        f" {roof.bandwidth / 1e9:,.0f} GB/s, ridge {roof.ridge:,.1f} FLOP/byte): at best"
        f" <b id='roofline-time'>{roof.time_s * 1e3:,.3f} ms</b> per batch, {share:.1f}% of it in memory-bound layers"
        " (each layer alone at the published peak or bandwidth; see docs/roofline.md).</p>"
    )


def fragment(report: Report) -> str:
    """A notebook's view of a report (``Report._repr_html_``): the title, the totals, the warnings and the
    layer table, the page's own pieces without its script (a notebook shows every row)."""
    warnings = "".join(f"<li class=warning>{escape(w.warning_line())}</li>" for w in report.warnings)
    return "\n".join(
        [
            f"<p><b>{escape(report.name)}</b>: input {_shape(report.input_shape)}, batch {report.batch},"
            f" {escape(report.dtype)}</p>",
            _totals(report),
            f"<ul>{warnings}</ul>" if warnings else "",
            _table(report),
        ]
    )


def page(report: Report, roof: Roofline, charts: list[tuple[str, str]]) -> str:
    """The whole page; ``charts`` are (caption, inline SVG) pairs, empty without matplotlib."""
    shape = _shape(report.input_shape)
    # inert inside <script>: no tag can start in the data
    data = json.dumps(to_dict(report)).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.name)}: cnncalc report</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(report.name)}</h1>",
        f"<p class=note>input {shape}, batch {report.batch}, {report.dtype}; made by cnncalc</p>",
        "<h2>Totals</h2>",
        _totals(report),
    ]
    if report.warnings:
        parts += ["<h2>Warnings</h2><ul>"]
        parts += [f"<li class=warning>{escape(w.warning_line())}</li>" for w in report.warnings]
        parts += ["</ul>"]
    parts += ["<h2>Roofline</h2>", _roofline(roof)]
    parts += ["<h2>Charts</h2>"]
    if charts:
        parts += ["<div class=charts>"]
        parts += [f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>" for caption, svg in charts]
        parts += ["</div>"]
    else:
        parts += ["<p class=note>Charts need matplotlib: python3 -m pip install 'cnncalc[plot]'.</p>"]
    parts += ["<h2>Layers</h2><p class=note>Click a block to fold it.</p>", _table(report)]
    parts += ["<h2>Conventions</h2><ul>", *[f"<li>{escape(c)}</li>" for c in CONVENTIONS], "</ul>"]
    if report.notes:
        parts += ["<h2>Notes</h2>", *[f"<p>{escape(n.strip())}</p>" for n in report.notes]]
    parts += [
        f'<script type="application/json" id="cnncalc-data">{data}</script>',
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def chart_svgs(report: Report, roof: Roofline) -> list[tuple[str, str]]:
    """The memory and MACs bars (by block when long) and the roofline chart, as inline SVG."""
    from . import plot as charts

    shown = report.folded(1) if charts.too_long(report) else report
    out: list[tuple[str, str]] = []
    for what, caption in (("memory", "activation memory per layer"), ("macs", "MACs per layer")):
        out.append((caption, _svg(charts.render(charts.bars(shown, what), "svg"))))
    out.append((f"roofline on {roof.device}", _svg(charts.render(charts.roofline_chart(report, roof), "svg"))))
    return out


def _svg(raw: bytes) -> str:
    """An SVG file's text as an inline element: its XML prologue, doctype and metadata (a date) dropped."""
    text = raw.decode()
    return re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)


def run(spec: str, *, output: str, device: str, batch: int, dtype: str, input: str | None, quiet: bool) -> None:
    from pathlib import Path

    import typer

    from ..roofline import roofline as compute
    from .roofline import resolve

    out = Path(output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"expected a file name ending in .html, got '{output}'", param_hint="-o")
    if not out.parent.is_dir():
        raise typer.BadParameter(f"no folder '{out.parent}' to write '{out.name}' into", param_hint="-o")
    try:
        name, peak_flops, bandwidth = resolve(device, dtype, None, None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    analysed = common.analyze_spec(spec, batch, dtype, input)
    common.warn(analysed, quiet)
    roof = compute(analysed, device=name, peak_flops=peak_flops, bandwidth=bandwidth)
    try:
        charts = chart_svgs(analysed, roof)
    except ImportError:
        charts = []
        common.console(stderr=True).print("no charts: they need matplotlib (cnncalc[plot])", soft_wrap=True)
    out.write_text(page(analysed, roof, charts), encoding="utf-8")
    common.wrote(out)
