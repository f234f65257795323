"""``cnncalc peers``: what other tools print for a network, and why."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..render import (
    shape_text,
)
from ..report import Report
from ..text import WORDS, Column, Page, Table
from . import common
from .common import Format

if TYPE_CHECKING:
    from rich.console import Console

    from ..peers import PeerCount


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
        terms = "\n".join(f"{'-' if n < 0 else '+'} {abs(n):,} {what}" for what, n in c.terms) or "+ 0: the same count"
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


def run(spec: str, *, batch: int, input: str | None, quiet: bool, format: Format) -> None:
    from ..peers import peer_counts

    report = common.analyze_spec(spec, batch, "float32", input)
    common.warn(report, quiet)
    counts = peer_counts(report)
    if format is Format.json:
        common.out(json.dumps(peers_dict(report, counts), indent=2))
    else:
        print_peers(report, counts, common.console())
