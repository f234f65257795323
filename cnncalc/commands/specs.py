"""``cnncalc specs``: the shipped specs, each with its input, params and MACs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .. import zoo
from ..engine import analyze


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
    table = Table(
        title="The shipped specs (cnncalc summary NAME works from any folder)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for header, justify in (("name", "left"), ("network", "left"), ("input", "right"), ("params", "right"),
                            ("MACs", "right"), ("rows", "right")):  # fmt: skip
        table.add_column(header, justify=justify, no_wrap=header != "network")  # type: ignore[arg-type]
    for e in found:
        shape = "x".join(str(n) for n in e.input_shape)
        table.add_row(Text(e.name), Text(e.network), shape, f"{e.params:,}", f"{e.macs:,}", f"{e.rows:,}")
    console.print(table)
