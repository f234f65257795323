"""The report's data types: rows, joins, totals, the report itself; torch-free and free of the work.

Every other module imports these; :mod:`cnncalc.engine` makes them and :mod:`cnncalc.training`,
:mod:`cnncalc.peers`, :mod:`cnncalc.torch_backend` read them, so no two of those import each other.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, get_args

from .errors import Path, Problem

if TYPE_CHECKING:
    from .fields import Layer

Dtype = Literal["float32", "float16", "bfloat16", "int8"]
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
assert set(DTYPE_BYTES) == set(get_args(Dtype))

Shape = tuple[int, ...]


class Quantity(NamedTuple):
    """A figure every row has, and where it goes: the one list that totals, folding, JSON, CSV and profile read."""

    name: str
    #: a field of :class:`Row` (False: derived from the fields, as ``params`` and ``flops`` are)
    stored: bool
    #: summed into :class:`Totals`
    totalled: bool
    #: measured per row by torch in an inference pass and compared (``cnncalc.torch_backend.compare``)
    checked: bool


#: The figures of a row, in the order the JSON and CSV outputs give them. A folded row sums the stored
#: ones (the derived ones follow); the totals sum the totalled ones. ``saved_bytes`` is checked against a
#: training forward, separately (``profile --train``).
ROW_QUANTITIES = (
    Quantity("params", stored=False, totalled=True, checked=False),
    Quantity("params_trainable", stored=False, totalled=True, checked=True),
    Quantity("params_non_trainable", stored=True, totalled=True, checked=True),
    Quantity("weights", stored=True, totalled=False, checked=True),
    Quantity("biases", stored=True, totalled=False, checked=True),
    Quantity("macs", stored=True, totalled=True, checked=False),
    Quantity("flops", stored=False, totalled=True, checked=True),
    Quantity("activations", stored=True, totalled=True, checked=False),
    Quantity("activation_bytes", stored=True, totalled=True, checked=True),
    Quantity("saved_bytes", stored=True, totalled=True, checked=False),
)


#: The step between neighbouring outputs in input pixels: whole, or a fraction after upsampling (1/2).
Jump = int | Fraction


@dataclass(frozen=True)
class ReceptiveField:
    """Input pixels seen by one output value (``size``) and the step between outputs (``stride``)."""

    size: tuple[int, int]
    stride: tuple[Jump, Jump]


@dataclass(frozen=True)
class Join:
    """What an ``add``, ``concat`` or ``multiply`` row does with its inputs."""

    kind: Literal["add", "concat", "multiply"]
    inplace: bool = False
    activation: str | None = None
    stack: bool = False  # an add computed as torch.stack(inputs).sum(0)


@dataclass(frozen=True)
class Row:
    """One row of the report: the input (index 0), a layer, or where branches join (add, concat).

    ``block`` names the blocks the row sits in, outermost first; ``name`` is the
    row's full dotted name (``layer1.0.conv1``). ``inputs`` are the indices of the
    rows whose outputs it reads.
    """

    index: int
    name: str
    kind: str
    detail: str
    input_shape: Shape | None
    output_shape: Shape
    weights: int = 0
    biases: int = 0
    params_non_trainable: int = 0
    macs: int = 0
    activations: int = 0
    activation_bytes: int = 0
    receptive_field: ReceptiveField | None = None
    path: Path = ()
    block: tuple[str, ...] = ()
    inputs: tuple[int, ...] = ()
    layer: Layer | Join | None = field(default=None, compare=False, repr=False)
    #: bytes this row adds to what a training forward keeps for backward (see cnncalc.training)
    saved_bytes: int = 0
    #: how many rows a ``--depth`` fold put into this one (0: a row of its own)
    folded: int = 0

    @property
    def local_name(self) -> str:
        """Its name in its block (``conv1``; ``convs.0`` where the name is a path into a module list)."""
        inside = ".".join(self.block)
        return self.name[len(inside) + 1 :] if inside and self.name.startswith(inside + ".") else self.name

    @property
    def params_trainable(self) -> int:
        return self.weights + self.biases

    @property
    def params(self) -> int:
        return self.params_trainable + self.params_non_trainable

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass(frozen=True)
class BlockInfo:
    """A block of rows: a block use, a stage of repeated uses, a branch or a named structure."""

    path: tuple[str, ...]
    kind: str
    detail: str = ""


@dataclass(frozen=True)
class Totals:
    """Sums over the rows; ``param_bytes`` and memory at the report's dtype."""

    params: int
    params_trainable: int
    params_non_trainable: int
    param_bytes: int
    macs: int
    flops: int
    activations: int
    activation_bytes: int
    forward_backward_bytes_estimate: int
    peak_activation_bytes: int
    saved_bytes: int
    output_bytes: int
    grad_bytes: int
    training_bytes: int


@dataclass(frozen=True)
class Report:
    """What :func:`analyze` finds: one row per layer, totals derived from them, and warnings."""

    name: str
    input_shape: Shape
    batch: int
    dtype: str
    rows: tuple[Row, ...]
    warnings: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    blocks: tuple[BlockInfo, ...] = ()
    peak_activation_bytes: int = 0
    #: the network's output in a training step, when no tensor kept for backward holds it (the loss reads it)
    output_bytes: int = 0
    #: the rows the network returns (a spec's ``outputs``); empty: its last row
    outputs: tuple[int, ...] = ()

    @property
    def output_rows(self) -> tuple[Row, ...]:
        """The rows whose outputs the network returns, in order: its ``outputs``, else its last row (in a folded
        report, the rows that hold them)."""
        if not self.outputs:
            return self.rows[-1:]
        starts = [r.index for r in self.rows]
        return tuple(self.rows[bisect_right(starts, i) - 1] for i in self.outputs)

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @cached_property  # derived from the rows, which a frozen report never changes
    def totals(self) -> Totals:
        sums = {q.name: sum(getattr(r, q.name) for r in self.rows) for q in ROW_QUANTITIES if q.totalled}
        param_bytes = sums["params"] * self.dtype_bytes
        grads = sums["params_trainable"] * self.dtype_bytes
        return Totals(
            **sums,
            param_bytes=param_bytes,
            forward_backward_bytes_estimate=2 * sums["activation_bytes"],
            peak_activation_bytes=self.peak_activation_bytes,
            output_bytes=self.output_bytes,
            grad_bytes=grads,
            training_bytes=param_bytes + grads + sums["saved_bytes"] + self.output_bytes,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``--format json`` (docs/json.md), as a dict."""
        from .render import to_dict

        return to_dict(self)

    def _repr_markdown_(self) -> str:
        from .commands.summary import to_markdown

        return to_markdown(self)

    def _repr_html_(self) -> str:
        from .commands.report import fragment

        return fragment(self)

    def folded(self, depth: int) -> Report:
        """The rows inside blocks nested ``depth`` or more deep folded into one row per block.

        A folded row sums its rows; its shapes are the first input and the last output.
        """
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        kinds = {b.path: b for b in self.blocks}
        rows: list[Row] = []
        group: list[Row] = []

        def flush() -> None:
            if not group:
                return
            path = group[0].block[:depth]
            info = kinds.get(path, BlockInfo(path, "block"))
            rows.append(
                Row(
                    index=group[0].index,
                    name=".".join(path),
                    kind=info.kind,
                    detail=info.detail,
                    input_shape=group[0].input_shape,
                    output_shape=group[-1].output_shape,
                    **{q.name: sum(getattr(r, q.name) for r in group) for q in ROW_QUANTITIES if q.stored},
                    receptive_field=group[-1].receptive_field,
                    path=group[0].path,
                    block=path[:-1],
                    inputs=group[0].inputs,
                    folded=len(group),
                )
            )
            group.clear()

        for row in self.rows:
            if len(row.block) >= depth:
                if group and group[0].block[:depth] != row.block[:depth]:
                    flush()
                group.append(row)
            else:
                flush()
                rows.append(row)
        flush()
        blocks = tuple(b for b in self.blocks if len(b.path) < depth)
        return replace(self, rows=tuple(rows), blocks=blocks)
