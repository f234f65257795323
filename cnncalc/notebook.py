"""A report as a notebook shows it: an HTML table with the totals, every user-written text escaped."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import Report


def _shape(shape: tuple[int, ...] | None) -> str:
    return "x".join(str(n) for n in shape) if shape else ""


def to_html(report: Report) -> str:
    """One self-contained table: a row per layer (its full dotted name), then the totals and the warnings."""
    from .render import CONVENTIONS, human, rf_text

    t = report.totals
    head = ["#", "name", "layer", "output", "activations", "memory", "params", "MACs", "RF"]
    cells = "".join(f"<th>{h}</th>" for h in head)
    lines = [
        f"<p><b>{escape(report.name)}</b>: input {_shape(report.input_shape)}, batch {report.batch},"
        f" {escape(report.dtype)}</p>",
        '<table class="cnncalc">',
        f"<thead><tr>{cells}</tr></thead>",
        "<tbody>",
    ]
    right = ' style="text-align:right"'
    for row in report.rows:
        layer = f"{row.kind} {row.detail}".strip() + (f" ({row.folded} rows)" if row.folded else "")
        values = [
            human(row.activation_bytes, "B") if row.activation_bytes else "0",
            f"{row.params:,}",
            f"{row.macs:,}",
            rf_text(row),
        ]
        lines.append(
            f"<tr><td{right}>{row.index}</td><td>{escape(row.name)}</td><td>{escape(layer)}</td>"
            f"<td{right}>{_shape(row.output_shape)}</td><td{right}>{row.activations:,}</td>"
            + "".join(f"<td{right}>{v}</td>" for v in values)
            + "</tr>"
        )
    lines += [
        "</tbody>",
        f"<tfoot><tr><td></td><td><b>total</b></td><td></td><td></td><td{right}><b>{t.activations:,}</b></td>"
        f"<td{right}><b>{human(t.activation_bytes, 'B')}</b></td><td{right}><b>{t.params:,}</b></td>"
        f"<td{right}><b>{t.macs:,}</b></td><td></td></tr></tfoot>",
        "</table>",
        "<ul>",
        f"<li>params {t.params:,} (trainable {t.params_trainable:,}) = {human(t.param_bytes, 'B')}</li>",
        f"<li>MACs {t.macs:,}; FLOPs {t.flops:,}</li>",
        f"<li>peak activations {human(t.peak_activation_bytes, 'B')}; training {human(t.training_bytes, 'B')}</li>",
        "</ul>",
    ]
    if report.warnings:
        lines.append("<ul>" + "".join(f"<li>warning: {escape(str(w))}</li>" for w in report.warnings) + "</ul>")
    lines.append("<details><summary>conventions</summary><ul>")
    lines += [f"<li>{escape(c)}</li>" for c in CONVENTIONS]
    lines.append("</ul></details>")
    return "\n".join(lines)
