"""``cnncalc fit``: the largest batch that fits a budget, term by term."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from ..fit import LIMIT
from ..render import (
    grid,
    human,
    problem_dict,
)
from ..text import Page
from . import common
from .common import Format

if TYPE_CHECKING:
    from rich.console import Console

    from ..fit import Fit, Need


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


def run(
    spec: str, *, memory: str, train: bool, optimizer: str, dtype: str, input: str | None, quiet: bool,
    format: Format,
) -> None:  # fmt: skip
    import typer

    from .. import safe_text
    from ..errors import SpecError
    from ..fit import largest_batch, parse_bytes

    try:
        budget = parse_bytes(memory)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--memory") from None
    try:
        result = largest_batch(
            common.load(spec),
            budget,
            train=train,
            optimizer=optimizer,  # type: ignore[arg-type]
            dtype=dtype,
            input_shape=common.parse_input(input),
        )
    except SpecError as exc:
        common.fail(exc.problems)
    common.warn(result, quiet)
    name = safe_text.text(str(spec))
    if format is Format.json:
        common.out(json.dumps(fit_dict(result, name), indent=2))
    else:
        print_fit(result, name, common.console())
    if result.best is None:
        raise typer.Exit(1)
