"""The largest batch whose counted memory fits a budget, for inference or for a training step.

Inference needs the params and the peak of live activations; a training step the params,
their gradients, the optimizer's state and what autograd keeps for backward (see
:mod:`cnncalc.training`). Activation terms grow in proportion to the batch, the rest not
at all, so memory is ``fixed + per_image x batch`` (batch norm's saved statistics are
part of ``fixed``); the answer is solved from that line, then confirmed by analysing the
spec at the batch found and the next one.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from typing import Literal

from . import safe_text
from .engine import analyze
from .errors import Problem
from .report import Report
from .spec import Spec

Optimizer = Literal["sgd", "momentum", "adam"]

#: The largest batch the solver tries (a bound on its search, far beyond any real batch).
LIMIT = 2**24

#: Copies of the gradients each optimizer keeps as state (torch.optim's defaults).
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2}

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_bytes(text: str) -> int:
    """``'16GB'`` -> 16e9, ``'80GiB'`` -> 80 x 2^30, ``'1.5 GB'``, ``'512MiB'``, ``'1000000'``.

    >>> parse_bytes("16GB"), parse_bytes("1.5 gib"), parse_bytes("512")
    (16000000000, 1610612736, 512)
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else ""
    number = float(match.group(1)) if match else math.inf  # inf: a number too long to be a size
    if match is None or unit not in _UNITS or not math.isfinite(number * _UNITS[unit]):
        raise ValueError(
            f"expected a size such as 16GB, 80GiB or 512MB (GB = 10^9, GiB = 2^30 bytes), got '{safe_text.text(text)}'"
        )
    return int(number * _UNITS[unit])


@dataclass(frozen=True)
class Need:
    """The memory one batch needs, term by term (bytes)."""

    batch: int
    params: int
    grads: int
    optimizer: int
    activations: int  # peak live activations (inference) or kept for backward (training)
    output: int = 0  # training: the network's output, which the loss reads, when nothing kept holds it

    @property
    def total(self) -> int:
        return self.params + self.grads + self.optimizer + self.activations + self.output


def need(report: Report, *, train: bool, optimizer: Optimizer) -> Need:
    t = report.totals
    if not train:
        return Need(report.batch, t.param_bytes, 0, 0, t.peak_activation_bytes)
    state = OPTIMIZER_STATE[optimizer] * t.grad_bytes
    return Need(report.batch, t.param_bytes, t.grad_bytes, state, t.saved_bytes, t.output_bytes)


@dataclass(frozen=True)
class Fit:
    budget: int
    train: bool
    optimizer: Optimizer
    best: Need | None  # the largest batch that fits; None when not even one image does
    next: Need | None  # the smallest batch that does not fit; None when the search stopped at its limit
    warnings: tuple[Problem, ...] = ()  # the spec's, as analyze gives them


def largest_batch(
    spec: Spec,
    budget: int | float,
    *,
    train: bool = False,
    optimizer: Optimizer = "adam",
    dtype: str = "float32",
    input_shape: tuple[int, ...] | None = None,
    limit: int = LIMIT,
) -> Fit:
    """The largest batch (up to ``limit``) whose counted memory is at most ``budget`` bytes (``80e9`` works)."""
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not 0 <= budget < float("inf"):
        raise ValueError(f"budget must be a finite number of bytes, at least 0, got {budget!r}")
    budget = int(budget)  # a float budget (80e9) gives whole batches, not 926.0

    @functools.cache  # the search and the answer ask for the same batches
    def report_at(batch: int) -> Report:
        return analyze(spec, batch=batch, dtype=dtype, input_shape=input_shape)

    def at(batch: int) -> Need:
        return need(report_at(batch), train=train, optimizer=optimizer)

    warnings = report_at(1).warnings
    one, two = at(1), at(2)
    per_image = two.total - one.total
    fixed = one.total - per_image
    guess = max(1, min(limit, (budget - fixed) // per_image if per_image > 0 else limit))
    # the line is exact by construction; confirm it, and step if it were ever off
    while guess > 1 and at(guess).total > budget:
        guess -= 1
    while guess < limit and at(guess + 1).total <= budget:
        guess += 1
    found = at(guess)
    if found.total > budget:
        return Fit(budget, train, optimizer, None, found, warnings)
    return Fit(budget, train, optimizer, found, at(guess + 1) if guess < limit else None, warnings)
