"""``cnncalc specs``: the shipped specs, each with its input, params and MACs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .. import zoo
from ..engine import analyze
from ..text import WORDS, Column, Page, Table
from . import common
from .common import Format

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class ZooEntry:
    name: str  # what commands take: cnncalc summary NAME
    network: str  # the spec's own name
    input_shape: tuple[int, ...]
    params: int
    macs: int
    rows: int


def entries() -> list[ZooEntry]:
    """Every shipped spec, analysed at its own input, batch 1."""
    out = []
    for name in zoo.names():
        report = analyze(zoo.shipped(name) or name)
        t = report.totals
        out.append(ZooEntry(name, report.name, report.input_shape, t.params, t.macs, len(report.rows) - 1))
    return out


def to_dict(found: list[ZooEntry]) -> list[dict[str, Any]]:
    return [{**asdict(e), "input_shape": list(e.input_shape)} for e in found]


def print_specs(found: list[ZooEntry], console: Console) -> None:
    page = Page(console)
    columns = [Column("name"), Column("network", breaks=WORDS)]
    columns += [Column(header, right=True) for header in ("input", "params", "MACs", "rows")]
    for sep in (3, 2):  # closer columns before a table wider than the terminal
        table = Table(columns, title="The shipped specs (cnncalc summary NAME works from any folder)", sep=sep)
        for e in found:
            shape = "x".join(str(n) for n in e.input_shape)
            table.add_row(e.name, e.network, shape, f"{e.params:,}", f"{e.macs:,}", f"{e.rows:,}")
        if table.fits(page.width):
            break
    page.table(table)
    page.write()


def run(format: Format) -> None:
    found = entries()
    if format is Format.json:
        common.out(json.dumps(to_dict(found), indent=2))
    else:
        print_specs(found, common.console())
