"""The analytic engine: walks a spec through each layer kind's rule (:mod:`cnncalc.layers`) into a :class:`Report`.

Conventions (quoted in docs/conventions.md; every figure in a report follows them):

- **Shapes** are PyTorch's: ``[C, H, W]`` per image, or ``[N]`` once flattened.
  Output sizes follow PyTorch exactly (floor, or ceil mode for pooling).
- **Params** = weights + biases (trainable) + non-trainable values. The only
  non-trainable values are batch norm's running mean and variance (2 per
  channel); its ``num_batches_tracked`` counter is a buffer, not a parameter.
- **MACs** = multiply-accumulates of convolutions and linear layers, bias excluded:
  ``(C_in/groups) * kH * kW`` per conv output value, ``in`` per linear output
  value. This is what torchvision's tables call "GFLOPS" and papers call
  "multiply-adds".
- **FLOPs** = 2 x MACs, what ``torch.utils.flop_counter.FlopCounterMode`` counts.
  Bias adds, pooling, normalisation, activations, softmax, residual adds,
  products and concatenation count 0: they are memory-bound and under 1% of a CNN's arithmetic.
- MACs, FLOPs and activations are for the whole batch (``batch`` images).
- **Activations** of a row = values of the new tensors the row allocates in an
  inference forward pass: the input row holds the input; conv, pool, linear,
  norm, padding, out-of-place activations, residual adds and concatenations hold
  their output; in-place activations (``inplace: true``, and relu/relu6/leaky_relu
  fused onto a conv, linear or add), in-place adds (``inplace: true`` on a
  residual), flatten (a view, unless its input is laid out channels-last: a copy)
  and dropout (identity at inference) allocate nothing. A fused activation that
  PyTorch cannot apply in place (tanh, sigmoid, softmax) adds a second tensor of
  the output's size.
- **Forward activation memory** = the sum of the rows x bytes per value of the
  dtype; the ``x2`` figure is the lecture's rule of thumb for forward +
  backward, not a measurement. **Peak activation memory** = the most bytes alive
  at once in an inference pass when every tensor is freed after its last reader
  (a residual's input stays alive until its add). Bytes are printed in MB =
  10^6 bytes (MiB = 2^20 beside them).
- **Receptive field** = the input pixels one output value can see (size) and
  the step between neighbouring outputs in input pixels (stride), by
  ``r += (k_eff - 1) * j; j *= s``; where branches meet, the largest over the
  paths. Linear layers and global pooling see the whole plane. After adaptive
  pooling whose sizes do not divide, it is an upper bound. Through upsampling
  and transposed convs the stride is a fraction and the field depends on the
  position: each axis is followed as the pattern of input pixels each position
  reads (``cnncalc.layers.base.Field``), the size the widest over positions.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from math import prod
from typing import Any, NamedTuple, NoReturn

from pydantic import ValidationError

from . import safe_text
from .errors import Path, Problem, SpecError, did_you_mean
from .expr import ExpressionError, substitute
from .fields import INPLACE_ACTIVATIONS, MAX_INT
from .layers import kind_of, row_kind, writes_in_place
from .layers.base import RF, Ctx, Stop, fmt, output_layout
from .report import DTYPE_BYTES, BlockInfo, Dtype, Join, ReceptiveField, Report, Row, Shape, Totals
from .spec import (
    Add,
    AnyEntry,
    AnyLayer,
    Block,
    Concat,
    Multiply,
    Residual,
    Sequential,
    Spec,
    Split,
    Use,
    locate,
    prepare,
    problems_from,
    validate_entry,
)

# the report's types, made here and re-exported: cnncalc.engine.Report is what users have imported
from .training import kept_for_backward

__all__ = [
    "DTYPE_BYTES",
    "BlockInfo",
    "Dtype",
    "Join",
    "ReceptiveField",
    "Report",
    "Row",
    "Shape",
    "Totals",
    "analyze",
    "check_input_shape",
]

#: No tensor may hold more values than this: 2^48 values is a petabyte at float32, beyond any device.
MAX_NUMEL = 2**48
#: A network may expand to at most this many rows (ResNet-152 has 466), and nest block uses at most this deep.
MAX_ROWS = 20_000
MAX_NESTING = 32
#: Lists of entries nested in one another (structures and block uses together), at most: the walk recurses on them.
MAX_DEPTH = 100
#: Characters of one of a spec's notes shown (the shipped ones are under 600).
MAX_NOTE = 2_000
#: Steps of the walk, at most: entries visited (each repeat, and those left out with ``when: false``, count)
#: and values of block templates filled in. Rows bound what a network makes; this bounds the work that makes
#: nothing (a block fanned out 10^8 times whose only layer is left out). ResNet-152 takes about 4,000.
MAX_STEPS = 500_000


# --- the walk ----------------------------------------------------------------


# --- entries, structures and blocks ------------------------------------------------


class _Tensor(NamedTuple):
    """A tensor flowing through the walk: the row that made it, its shape, its receptive field."""

    row: int
    shape: Shape
    rf: RF | None
    channels_last: bool = False  # its memory layout in PyTorch (RowKind.layout)


#: ``from: in`` reads the input of the block the entry is in (the network's input at the top): a block's branches
#: written flat read it so, whatever the block's use follows. No PyTorch module can be named ``in`` (a keyword).
BLOCK_INPUT = "in"


@dataclass
class _Scope:
    """The names of one block's rows: auto names are numbered per kind, and every name is unique."""

    block: tuple[str, ...]
    taken: set[str] = field(default_factory=set)
    counters: Counter[str] = field(default_factory=Counter)
    #: what came into the block: ``from: in`` reads it
    start: _Tensor | None = None
    #: the paths dotted names reach through (``convs`` of ``convs.0``): no row or block may take one
    spaces: set[str] = field(default_factory=set)

    def child(self, name: str) -> _Scope:
        return _Scope((*self.block, *name.split(".")))

    def auto(self, prefix: str) -> str:
        sep = "_" if prefix[-1:].isdigit() else ""  # relu6_1, not relu61
        while True:
            self.counters[prefix] += 1
            name = f"{prefix}{sep}{self.counters[prefix]}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def fresh(self, base: str) -> str:
        """``base`` if no row or block here has it yet, else ``base_2``, ``base_3`` ..."""
        # counting on from the last one given keeps a block of many shortcuts linear
        n = self.counters[f"fresh {base}"]
        name = base if n == 0 else f"{base}_{n}"
        while name in self.taken:
            n = max(n + 1, 2)
            name = f"{base}_{n}"
        self.counters[f"fresh {base}"] = n
        self.taken.add(name)
        return name

    def full(self, local: str) -> str:
        return ".".join((*self.block, local))


#: Characters of one block argument's value shown in a block's header row.
MAX_ARG_TEXT = 40


def _args_text(args: Mapping[str, Any]) -> str:
    """``width=64 stride=2``: each value cut short (a block argument may be a long list or text)."""
    return " ".join(
        f"{k}={safe_text.text(v, MAX_ARG_TEXT) if isinstance(v, str) else safe_text.value(v, MAX_ARG_TEXT)}"
        for k, v in args.items()
    )


def _size(value: Any, most: int, *, template: bool = False) -> int:
    """Values in ``value`` (lists and mappings counted with what they hold), counted up to ``most`` + 1;
    in a ``template``, each ``$`` too (an expression to evaluate)."""
    count, todo = 0, [value]
    while todo and count <= most:
        item = todo.pop()
        count += 1
        if isinstance(item, dict):
            todo += item.values()
        elif isinstance(item, list | tuple):
            todo += item
        elif template and isinstance(item, str):
            count += item.count("$")
    return count


class _Walker:
    """Walks a spec's entries in order, expanding blocks, and collects rows and problems."""

    def __init__(self, spec: Spec, *, batch: int, dtype_bytes: int, strict: bool) -> None:
        self.spec = spec
        self.batch = batch
        self.size = dtype_bytes
        self.strict = strict
        self.rows: list[Row] = []
        self.blocks: list[BlockInfo] = []
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.uses: list[str] = []
        self.used: set[str] = set()
        self.defaults = spec.raw_defaults
        self.steps = 0
        self.depth = 0
        self.template_sizes: dict[str, int] = {}
        self.tensors: list[_Tensor] = []  # per row, its output as a tensor of the walk (what 'from' reads)
        self.row_named: dict[str, int] = {"input": 0}
        self.block_last: dict[tuple[str, ...], int] = {}  # per block, its last row so far: its output once done

    # -- problems

    def fail(self, message: str, path: Path, *, at_key: bool = False) -> NoReturn:
        self.errors.append(Problem(message, path, at_key=at_key))
        raise Stop

    def step(self, path: Path, n: int = 1) -> None:
        """Count ``n`` steps of work; past :data:`MAX_STEPS`, stop here."""
        self.steps += n
        if self.steps > MAX_STEPS:
            self.fail(
                f"expanding the network takes more than {MAX_STEPS:,} steps (entries visited, each repeat and"
                " those left out with 'when: false' included, and block values filled in)",
                path,
            )

    # -- rows

    def add_row(self, row: Row) -> None:
        if len(self.rows) > MAX_ROWS:
            self.fail(f"the network expands to more than {MAX_ROWS:,} rows", row.path)
        if prod(row.output_shape) * self.batch > MAX_NUMEL:
            self.fail(
                f"layer {row.index} {row.kind} '{row.name}': the output {fmt(row.output_shape)} x batch {self.batch}"
                " holds more than 2^48 values: too large for any tensor",
                row.path,
            )
        self.rows.append(row)
        self.row_named.setdefault(row.name, row.index)
        for k in range(1, len(row.block) + 1):
            self.block_last[row.block[:k]] = row.index

    def made(self, tensor: _Tensor) -> _Tensor:
        """``tensor``, the output of the row just added, kept for ``from`` to read."""
        self.tensors.append(tensor)
        return tensor

    # -- the graph: 'from' and 'outputs'

    def source(self, ref: str, path: Path, scope: _Scope) -> _Tensor:
        """The tensor a name reads: a row's or a finished block's output, looked up from ``scope`` outwards."""
        if ref == BLOCK_INPUT:
            assert scope.start is not None  # set as the block's first entry begins
            return scope.start
        parts = tuple(ref.split("."))
        for k in range(len(scope.block), -1, -1):
            where = (*scope.block[:k], *parts)
            index = self.row_named.get(".".join(where))
            if index is not None:
                return self.tensors[index]
            if where in self.block_last:
                if scope.block[: len(where)] == where:
                    self.fail(f"'{ref}' is the block this entry is in: its output is not made yet", path)
                return self.tensors[self.block_last[where]]
        known = [*self.row_named, *(".".join(b) for b in self.block_last)]
        self.fail(
            f"no row or block named '{ref}' comes before this entry{did_you_mean(ref, known)}"
            " (a spec runs in order: 'from' reads what is already made)",
            path,
        )

    def sources(self, entry: AnyEntry, path: Path, scope: _Scope) -> list[_Tensor]:
        refs = entry.from_ or ()
        return [
            self.source(ref, (*path, "from", i) if len(refs) > 1 else (*path, "from"), scope)
            for i, ref in enumerate(refs)
        ]

    def joined(self, entry: Add | Concat | Multiply, inputs: list[_Tensor], path: Path, scope: _Scope) -> _Tensor:
        """A join of rows named in ``from`` (no branches, no body): an add, a concatenation or a product."""
        names = list(entry.from_ or ())
        local = entry.name  # claimed with its list's names (reserve)
        if isinstance(entry, Concat):
            return self.concatenate(list(zip(names, inputs, strict=True)), path, scope, "concat", local, by_name=True)
        first, *rest = inputs
        if isinstance(entry, Add):
            for name, t in zip(names[1:], rest, strict=True):
                if t.shape != first.shape:
                    self.fail(
                        f"add: '{name}' gives {fmt(t.shape)} but '{names[0]}' gives {fmt(first.shape)};"
                        " an add needs the same shape",
                        (*path, "from"),
                    )
            if entry.stack and entry.inplace:
                self.fail("a stacked sum (stack: true) allocates its result: it cannot be in place", (*path, "inplace"))
            join = Join("add", entry.inplace, entry.activation, entry.stack)
            detail = " + ".join(names) + (" (stacked)" if entry.stack else "")
            return self.join(join, inputs, first.shape, path, scope, detail, local)
        if len(inputs) != 2:
            self.fail(f"multiply: 'from' names {len(inputs)} rows; a product takes two", (*path, "from"))
        a, b = inputs
        shape = a.shape if _scales(b.shape, a.shape) else b.shape if _scales(a.shape, b.shape) else None
        if shape is None:
            self.fail(
                f"multiply: '{names[0]}' gives {fmt(a.shape)} and '{names[1]}' gives {fmt(b.shape)}; a product needs"
                " the same shape, or C x 1 x 1 against C x H x W to scale each channel",
                (*path, "from"),
            )
        return self.join(Join("multiply"), inputs, shape, path, scope, f"{names[0]} x {names[1]}", local)

    # -- entries

    def entries(self, items: Sequence[tuple[AnyEntry, Path]], x: _Tensor, scope: _Scope) -> _Tensor:
        if self.depth >= MAX_DEPTH and items:
            self.fail(f"structures and block uses nest more than {MAX_DEPTH} deep", items[0][1])
        self.depth += 1
        if scope.start is None:
            scope.start = x
        try:
            self.reserve(items, scope)
            for entry, path in items:
                x = self.entry(entry, path, x, scope)
            return x
        finally:
            self.depth -= 1

    def reserve(self, items: Sequence[tuple[AnyEntry, Path]], scope: _Scope) -> None:
        """Claim the explicit names of a list of entries first, so auto names avoid them."""
        for entry, path in items:
            if entry.name is None or not entry.when:
                continue
            names = (
                [entry.name]
                if entry.repeat == 1 or isinstance(entry, Use)
                else [f"{entry.name}_{r}" for r in range(1, entry.repeat + 1)]
            )
            for name in names:
                self.claim(scope, name, (*path, "name"))

    def claim(self, scope: _Scope, name: str, path: Path) -> None:
        """Take ``name`` in ``scope``: every row and block of a block has its own name."""
        if name == BLOCK_INPUT:
            self.fail(
                f"name '{name}' is what 'from: {name}' reads (the input of the block an entry is in); name it otherwise",
                path,
                at_key=path[-1:] != ("name",),
            )
        where = f" in '{'.'.join(scope.block)}'" if scope.block else ""
        if name in scope.taken:
            self.fail(f"name '{name}' is used more than once{where}", path, at_key=path[-1:] != ("name",))
        # a dotted name is a path (convs.0): no row or block may be named as a part of it that holds others
        parts = name.split(".")
        above = [".".join(parts[:k]) for k in range(1, len(parts))]
        clash = next((a for a in above if a in scope.taken), None) or (name if name in scope.spaces else None)
        if clash is not None:
            self.fail(
                f"name '{name}'{where}: '{clash}' is both a row or block and holds the rows named '{clash}.…'",
                path,
                at_key=path[-1:] != ("name",),
            )
        scope.taken.add(name)
        scope.spaces.update(above)

    def entry(self, entry: AnyEntry, path: Path, x: _Tensor, scope: _Scope) -> _Tensor:
        self.step(path)
        if not entry.when:
            return x
        if entry.from_ is not None:
            inputs = self.sources(entry, path, scope)
            if len(inputs) > 1:
                if not isinstance(entry, Add | Concat | Multiply):
                    self.fail(
                        f"a {_entry_kind(entry)} reads one input, but 'from' names {len(inputs)};"
                        " join them first with an add, a concat or a multiply",
                        (*path, "from"),
                    )
                if entry.repeat > 1:
                    self.fail("a join of rows named in 'from' cannot repeat", (*path, "repeat"))
                return self.joined(entry, inputs, path, scope)
            (x,) = inputs
        if isinstance(entry, Use):
            return self.use(entry, path, x, scope)
        for r in range(1, entry.repeat + 1):
            if r > 1:
                self.step(path)
            name = None if entry.name is None else entry.name if entry.repeat == 1 else f"{entry.name}_{r}"
            match entry:
                case Residual():
                    x = self.residual(entry, path, x, self.named(scope, name, entry.kind))
                case Concat():
                    x = self.concat(entry, path, x, self.named(scope, name, entry.kind))
                case Split():
                    x = self.split(entry, path, x, self.named(scope, name, entry.kind))
                case Multiply():
                    x = self.multiply(entry, path, x, self.named(scope, name, entry.kind))
                case Sequential():
                    inner = self.named(scope, name, entry.kind)
                    x = self.entries([(e, (*path, "layers", i)) for i, e in enumerate(entry.layers)], x, inner)
                case _:
                    x = self.leaf(entry, path, x, scope, name or scope.auto(kind_of(entry).prefix))
        return x

    def named(self, scope: _Scope, name: str | None, kind: str) -> _Scope:
        """A named structure is a block of its own; an unnamed one shares the enclosing block's names."""
        if name is None:
            return scope
        inner = scope.child(name)
        self.blocks.append(BlockInfo(inner.block, kind))
        return inner

    def leaf(self, layer: AnyLayer, path: Path, x: _Tensor, scope: _Scope, local: str) -> _Tensor:
        index = len(self.rows)
        rf = x.rf.copy() if x.rf else RF()
        ctx = Ctx(
            index,
            scope.full(local),
            layer.kind,
            path,
            x.shape,
            self.strict,
            self.batch,
            rf,
            self.errors,
            self.warnings,
            x.channels_last,
        )
        kind = kind_of(layer)
        out = kind.rule(ctx, layer)
        if x.rf is not None and len(out.shape) == 3:
            rf.grid = (out.shape[1], out.shape[2])
        self.add_row(
            Row(
                index=index,
                name=ctx.name,
                kind=layer.kind,
                detail=out.detail,
                input_shape=x.shape,
                output_shape=out.shape,
                weights=out.weights,
                biases=out.biases,
                params_non_trainable=out.non_trainable,
                macs=self.batch * out.macs,
                activations=self.batch * out.activations,
                activation_bytes=self.batch * out.activations * self.size,
                receptive_field=ReceptiveField(rf.r, rf.j) if x.rf else None,
                path=path,
                block=scope.block,
                inputs=(x.row,),
                layer=layer,
            )
        )
        return self.made(
            _Tensor(index, out.shape, rf if x.rf else None, output_layout(kind.layout_of(layer), [x.channels_last]))
        )

    def join(
        self,
        join: Join,
        inputs: Sequence[_Tensor],
        shape: Shape,
        path: Path,
        scope: _Scope,
        detail: str,
        local: str | None = None,
    ) -> _Tensor:
        index = len(self.rows)
        numel = prod(shape)
        values = 0 if join.inplace else numel
        if join.activation is not None and join.activation not in INPLACE_ACTIVATIONS:
            values += numel
        states = [t.rf for t in inputs if t.rf is not None]
        rf = RF.widest(states) if len(states) == len(inputs) else None
        if join.activation:
            detail += f" +{join.activation}"
        self.add_row(
            Row(
                index=index,
                name=scope.full(local or scope.auto(join.kind)),
                kind=join.kind,
                detail=detail,
                input_shape=inputs[0].shape,
                output_shape=shape,
                activations=self.batch * values,
                activation_bytes=self.batch * values * self.size,
                receptive_field=ReceptiveField(rf.r, rf.j) if rf else None,
                path=path,
                block=scope.block,
                inputs=tuple(t.row for t in inputs),
                layer=join,
            )
        )
        layout = output_layout(row_kind(join).layout_of(join), [t.channels_last for t in inputs])
        return self.made(_Tensor(index, shape, rf, layout))

    # -- structures

    def residual(self, entry: Residual, path: Path, x: _Tensor, scope: _Scope) -> _Tensor:
        y = self.entries([(e, (*path, "body", i)) for i, e in enumerate(entry.body)], x, scope)
        shortcut = entry.shortcut
        same = y.shape == x.shape
        if shortcut == "optional" and not same:
            return y
        if shortcut == "identity" or (shortcut in ("auto", "optional") and same):
            s, what = x, "identity"
        elif shortcut in ("projection", "auto"):
            s, what = self.projection(entry, path, x, y, scope), "projection"
        else:
            assert not isinstance(shortcut, str)
            if isinstance(shortcut, dict):
                ((name, items),) = shortcut.items()
                self.claim(scope, name, (*path, "shortcut", name))
                spath: Path = (*path, "shortcut", name)
            else:
                name, items, spath = scope.fresh("shortcut"), shortcut, (*path, "shortcut")
            inner = scope.child(name)
            self.blocks.append(BlockInfo(inner.block, "shortcut"))
            s = self.entries([(e, (*spath, i)) for i, e in enumerate(items)], x, inner)
            what = "shortcut"
        if s.shape != y.shape:
            hint = "; use shortcut: projection (or auto) to match them" if what == "identity" else ""
            name = scope.full("add") if not scope.block else ".".join(scope.block)
            self.fail(
                f"residual '{name}': the body gives {fmt(y.shape)} but the shortcut ({what}) gives {fmt(s.shape)};"
                f" an add needs the same shape{hint}",
                path,
            )
        return self.join(Join("add", entry.inplace, entry.activation), [y, s], y.shape, path, scope, f"body + {what}")

    def projection(self, entry: Residual, path: Path, x: _Tensor, y: _Tensor, scope: _Scope) -> _Tensor:
        """torchvision's ``downsample``: a 1x1 conv with the body's stride, then batch norm."""
        if len(x.shape) != 3 or len(y.shape) != 3:
            self.fail(f"a projection shortcut needs C x H x W tensors, got {fmt(x.shape)} -> {fmt(y.shape)}", path)
        stride = _one_stride((x.shape[1], x.shape[2]), (y.shape[1], y.shape[2]))
        if stride is None:
            self.fail(
                f"a projection shortcut cannot take {fmt(x.shape)} to {fmt(y.shape)} with one stride;"
                " give the shortcut as a list of layers",
                (*path, "shortcut"),
            )
        from .layers.conv import Conv2d  # the families load with their first kind (cnncalc.layers)
        from .layers.norm import BatchNorm2d

        inner = scope.child(scope.fresh("downsample"))
        self.blocks.append(BlockInfo(inner.block, "projection"))
        conv = Conv2d(kind="conv2d", out=y.shape[0], kernel=(1, 1), stride=(stride, stride), bias=False)
        z = self.leaf(conv, (*path, "shortcut"), x, inner, "0")
        return self.leaf(BatchNorm2d(kind="batchnorm2d"), (*path, "shortcut"), z, inner, "1")

    def branches(self, entry: Concat | Split, path: Path, scope: _Scope) -> list[tuple[str, Sequence[AnyEntry], Path]]:
        """A concat's or a split's branches: their names (claimed in ``scope``), entries and paths."""
        # a concat without branches joins the rows named in 'from' (joined); the schema refuses a split without
        # them, and one built in Python may still hold none
        if not entry.branches:
            self.fail(f"a {entry.kind} needs at least one branch", (*path, "branches"))
        if isinstance(entry.branches, dict):
            for name in entry.branches:
                self.claim(scope, name, (*path, "branches", name))
            return [(name, items, (*path, "branches", name)) for name, items in entry.branches.items()]
        # numbered on from any earlier branches in this block, so that two concats never clash
        return [(scope.auto("branch"), items, (*path, "branches", i)) for i, items in enumerate(entry.branches)]

    def branch(self, scope: _Scope, name: str, items: Sequence[AnyEntry], bpath: Path, x: _Tensor) -> _Tensor:
        inner = scope.child(name)
        self.blocks.append(BlockInfo(inner.block, "branch"))
        return self.entries([(e, (*bpath, i)) for i, e in enumerate(items)], x, inner)

    def concatenate(
        self,
        outs: Sequence[tuple[str, _Tensor]],
        path: Path,
        scope: _Scope,
        kind: str,
        local: str | None = None,
        *,
        by_name: bool = False,
    ) -> _Tensor:
        first_name, first = outs[0]
        for name, t in outs[1:]:
            if len(t.shape) != len(first.shape) or t.shape[1:] != first.shape[1:]:
                what = "height and width" if len(first.shape) == 3 else "kind of tensor"
                self.fail(
                    f"{kind}: branch '{name}' gives {fmt(t.shape)} but branch '{first_name}' gives {fmt(first.shape)};"
                    f" a concatenation needs the same {what}",
                    path,
                )
        shape = (sum(t.shape[0] for _, t in outs), *first.shape[1:])
        detail = " + ".join(n for n, _ in outs) if by_name else f"{len(outs)} branch{'es' if len(outs) != 1 else ''}"
        return self.join(Join("concat"), [t for _, t in outs], shape, path, scope, detail, local)

    def concat(self, entry: Concat, path: Path, x: _Tensor, scope: _Scope) -> _Tensor:
        branches = self.branches(entry, path, scope)
        outs = [(name, self.branch(scope, name, items, bpath, x)) for name, items, bpath in branches]
        return self.concatenate(outs, path, scope, "concat")

    def split(self, entry: Split, path: Path, x: _Tensor, scope: _Scope) -> _Tensor:
        branches = self.branches(entry, path, scope)
        if len(x.shape) != 3:
            self.fail(f"a split needs a C x H x W input, got {fmt(x.shape)} (flat)", path)
        c, n = x.shape[0], len(branches)
        if entry.sections is None:
            if c % n:
                self.fail(
                    f"split: {n} branches cannot share the input's {c} channels equally;"
                    " give their channels as sections: [...]",
                    path,
                )
            sections: Sequence[int] = [c // n] * n
        else:
            sections = entry.sections
            if len(sections) != n or sum(sections) != c:
                self.fail(
                    f"split: sections {list(sections)} must give each of the {n} branches its channels,"
                    f" {c} in all (the input's), in branch order",
                    (*path, "sections"),
                    at_key=True,
                )
        from .layers.channel import Slice  # the families load with their first kind (cnncalc.layers)

        outs, start = [], 0
        for (name, items, bpath), size in zip(branches, sections, strict=True):
            chunk = Slice(kind="slice", start=start, stop=start + size)
            part = self.leaf(chunk, bpath, x, scope, scope.auto("chunk"))
            outs.append((name, self.branch(scope, name, items, bpath, part)))
            start += size
        return self.concatenate(outs, path, scope, "split")

    def multiply(self, entry: Multiply, path: Path, x: _Tensor, scope: _Scope) -> _Tensor:
        assert entry.body is not None  # without one, a join of named rows (joined)
        y = self.entries([(e, (*path, "body", i)) for i, e in enumerate(entry.body)], x, scope)
        if not _scales(y.shape, x.shape):
            name = scope.full("multiply") if not scope.block else ".".join(scope.block)
            self.fail(
                f"multiply '{name}': the body gives {fmt(y.shape)} but the input is {fmt(x.shape)}; a product needs"
                f" the input's shape, or C x 1 x 1 with its channels ({x.shape[0]}x1x1) to scale each channel",
                path,
            )
        detail = "input x body" + (" per channel" if y.shape != x.shape else "")
        return self.join(Join("multiply"), [x, y], x.shape, path, scope, detail)

    # -- blocks

    def use(self, entry: Use, path: Path, x: _Tensor, scope: _Scope) -> _Tensor:
        block = self.spec.blocks.get(entry.use)
        if block is None:
            self.errors.append(unknown_block(entry, self.spec.blocks, path))
            raise Stop
        if entry.use in self.uses:
            chain = " -> ".join([*self.uses[self.uses.index(entry.use) :], entry.use])
            self.fail(f"block '{entry.use}' uses itself ({chain})", (*path, "use"))
        if len(self.uses) >= MAX_NESTING:
            self.fail(f"block uses nest more than {MAX_NESTING} deep", (*path, "use"))
        self.used.add(entry.use)
        self.check_args(entry, block, path)
        name = entry.name or scope.auto(entry.use)
        if entry.repeat == 1:
            return self.instance(
                entry, block, path, x, self.named_block(scope, name, entry.use, entry.args), entry.first, 0
            )
        stage = scope.child(name)
        text = _args_text(entry.args)
        first_text = _args_text({**entry.args, **entry.first}) if entry.first else text
        self.blocks.append(BlockInfo(stage.block, f"{entry.use} x{entry.repeat}", text))
        for i in range(entry.repeat):
            member = stage.child(str(i))
            self.blocks.append(BlockInfo(member.block, entry.use, first_text if i == 0 else text))
            x = self.instance(entry, block, path, x, member, entry.first if i == 0 else None, i)
        return x

    def named_block(self, scope: _Scope, name: str, kind: str, args: Mapping[str, Any]) -> _Scope:
        inner = scope.child(name)
        self.blocks.append(BlockInfo(inner.block, kind, _args_text(args)))
        return inner

    def check_args(self, entry: Use, block: Block, path: Path) -> None:
        problems = use_problems(entry, block, path)
        if problems:
            self.errors.extend(problems)
            raise Stop

    def instance(
        self,
        entry: Use,
        block: Block,
        path: Path,
        x: _Tensor,
        scope: _Scope,
        first: Mapping[str, Any] | None,
        index: int,
    ) -> _Tensor:
        base: Path = ("blocks", entry.use, "layers")
        # each instance fills in the whole template, and validates what that gives: count both as steps
        if entry.use not in self.template_sizes:
            self.template_sizes[entry.use] = _size(block.layers, MAX_STEPS, template=True)
        self.step(base, self.template_sizes[entry.use] + len(block.args) + len(entry.args) + len(first or {}))
        env = {**block.args, **entry.args, **(first or {}), "in_channels": x.shape[0], "index": index}
        used = f"(in block '{entry.use}' as used by '{'.'.join(scope.block)}')"
        items = []
        for i, template in enumerate(block.layers):
            where: Path = (*base, i)
            try:
                data = prepare(substitute(template, env), self.defaults)
                self.step(where, _size(data, MAX_STEPS - self.steps))  # arguments put in whole count too
                items.append((validate_entry(data), where))
            except ExpressionError as exc:
                self.fail(f"{exc} {used}", (*where, *exc.path))
            except ValidationError as exc:
                problems = problems_from(exc, where, data)
                self.errors.extend(replace(p, message=f"{p.message} {used}") for p in problems)
                raise Stop from None
        self.uses.append(entry.use)
        try:
            return self.entries(items, x, scope)
        finally:
            self.uses.pop()


def use_problems(entry: Use, block: Block, path: Path) -> list[Problem]:
    """What is wrong with the arguments of one use of ``block``: unknown ones, and missing required ones."""
    problems = []
    allowed = list(block.args)
    for source, given in (((*path,), entry.args), ((*path, "first"), entry.first or {})):
        for arg in given:
            if arg not in block.args:
                problems.append(
                    Problem(
                        f"block '{entry.use}' has no argument '{safe_text.text(arg)}'{did_you_mean(arg, allowed)}"
                        + (f"; its arguments: {safe_text.listing(allowed)}" if allowed else "; it takes no arguments"),
                        (*source, arg),
                        at_key=True,
                    )
                )
    missing = [a for a, default in block.args.items() if default is None and a not in entry.args]
    if missing:
        problems.append(Problem(f"block '{entry.use}' needs argument '{missing[0]}'", path))
    return problems


def unknown_block(entry: Use, blocks: Mapping[str, Block], path: Path) -> Problem:
    known = list(blocks)
    return Problem(
        f"no block named '{entry.use}'{did_you_mean(entry.use, known)}"
        + (f"; blocks: {safe_text.listing(known)}" if known else "; the spec defines no blocks"),
        (*path, "use"),
    )


def _scales(gate: Shape, shape: Shape) -> bool:
    """Whether a tensor of shape ``gate`` multiplies one of ``shape`` to that shape: the same, or C x 1 x 1."""
    return gate == shape or (len(gate) == len(shape) == 3 and gate == (shape[0], 1, 1))


def _entry_kind(entry: AnyEntry) -> str:
    return f"use of '{entry.use}'" if isinstance(entry, Use) else entry.kind


def _uses(items: Sequence[tuple[Any, Path]]) -> Iterator[tuple[Use, Path]]:
    """Every block use written in the spec's own entries, nested structures included (not inside blocks)."""
    for entry, path in items:
        match entry:
            case Use():
                yield entry, path
            case Residual(body=body, shortcut=shortcut):
                yield from _uses([(e, (*path, "body", i)) for i, e in enumerate(body)])
                if isinstance(shortcut, dict):
                    for name, entries in shortcut.items():
                        yield from _uses([(e, (*path, "shortcut", name, i)) for i, e in enumerate(entries)])
                elif not isinstance(shortcut, str):
                    yield from _uses([(e, (*path, "shortcut", i)) for i, e in enumerate(shortcut)])
            case Multiply(body=body) if body is not None:
                yield from _uses([(e, (*path, "body", i)) for i, e in enumerate(body)])
            case Concat(branches=branches) | Split(branches=branches) if branches is not None:
                named: Iterable[tuple[str | int, Sequence[Any]]] = (
                    branches.items() if isinstance(branches, dict) else enumerate(branches)
                )
                for key, branch in named:
                    yield from _uses([(e, (*path, "branches", key, i)) for i, e in enumerate(branch)])
            case Sequential(layers=layers):
                yield from _uses([(e, (*path, "layers", i)) for i, e in enumerate(layers)])


def block_use_problems(spec: Spec) -> list[Problem]:
    """Every mistake in the spec's block uses, found before the walk, which stops at the first one it meets."""
    problems: list[Problem] = []
    for entry, path in _uses([(e, ("layers", i)) for i, e in enumerate(spec.layers)]):
        block = spec.blocks.get(entry.use)
        problems += [unknown_block(entry, spec.blocks, path)] if block is None else use_problems(entry, block, path)
    return problems


def _one_stride(size: tuple[int, int], out: tuple[int, int]) -> int | None:
    """The smallest stride ``s`` that takes ``size`` to ``out`` on both axes by ``(n - 1) // s + 1``, if one does.

    Solved, not searched: ``(n - 1) // s == o - 1`` holds for ``s`` in ``((n - 1) // o, (n - 1) // (o - 1)]``.

    >>> _one_stride((56, 56), (28, 28)), _one_stride((7, 7), (4, 4)), _one_stride((8, 8), (10, 10))
    (2, 2, None)
    >>> _one_stride((2**31 - 1, 1), (2**31 - 1, 1))
    1
    """
    low, high = 1, None
    for n, o in zip(size, out, strict=True):
        if o < 1 or o > n:
            return None
        low = max(low, (n - 1) // o + 1)
        if o > 1:
            top = (n - 1) // (o - 1)
            high = top if high is None else min(high, top)
    return low if high is None or low <= high else None


def _outputs(walker: _Walker, spec: Spec, last: _Tensor, scope: _Scope) -> tuple[int, ...]:
    """The rows the network returns (``outputs``, else its last), after checking every row's output is read."""
    if spec.outputs is None:
        outputs: tuple[int, ...] = (last.row,)
    else:
        refs = [walker.source(ref, ("outputs", i), scope).row for i, ref in enumerate(spec.outputs)]
        outputs = tuple(dict.fromkeys(refs))
    read = {i for row in walker.rows for i in row.inputs} | set(outputs)
    for row in walker.rows[1:]:
        if row.index not in read:
            walker.errors.append(
                Problem(
                    f"layer {row.index} {row.kind} '{row.name}': nothing reads its output {fmt(row.output_shape)};"
                    " read it with 'from:' or name it in 'outputs:'",
                    row.path,
                )
            )
    return outputs


def _storages(rows: Sequence[Row]) -> list[int]:
    """Per row, the row whose allocation holds its output: a row that allocates nothing (in place, a view)
    shares its first input's."""
    storage = list(range(len(rows)))
    for row in rows[1:]:
        if row.activations == 0 and row.inputs:
            storage[row.index] = storage[row.inputs[0]]
    return storage


def overwritten_reads(rows: Sequence[Row], outputs: Sequence[int] = ()) -> list[Problem]:
    """Rows that write in place (``inplace: true``) into a tensor that a later row still reads, or that the
    network returns: the module PyTorch builds would hand that reader the overwritten values, so the spec
    says one computation and its build does another. Rows run in the order listed (a concat's branches in
    theirs), so a read before the write is fine. Linear in the reads (a bisection each)."""
    writers = [row for row in rows[1:] if writes_in_place(row.layer) and row.inputs]
    if not writers:
        return []
    storage = _storages(rows)
    writes: dict[int, list[int]] = {}  # per storage, the rows that write into it in place, in order
    for row in writers:
        writes.setdefault(storage[row.inputs[0]], []).append(row.index)
    # a writer -> the tensor it overwrote, and the row that read it after (None: the network returns it)
    found: dict[int, tuple[int, int | None]] = {}
    reads = [(row.index, t) for row in rows for t in row.inputs] + [(len(rows), t) for t in outputs]
    for when, tensor in reads:
        times = writes.get(storage[tensor], [])
        k = bisect.bisect_right(times, tensor)  # the first write after the tensor was made
        if k < len(times) and times[k] < when:
            found.setdefault(times[k], (tensor, when if when < len(rows) else None))
    problems: list[Problem] = []
    for writer, (tensor, reader) in sorted(found.items()):
        row = rows[writer]
        whose = "the input" if tensor == 0 else f"'{rows[tensor].name}'"
        if reader is None:
            said = "which the network returns ('outputs'): in PyTorch it would return"
        else:
            later = rows[reader]
            said = f"which layer {later.index} {later.kind} '{later.name}' reads after it: in PyTorch it would read"
        problems.append(
            Problem(
                f"layer {row.index} {row.kind} '{row.name}' writes in place into the output of {whose}, {said}"
                f" {row.kind}'s output instead; drop 'inplace: true'",
                row.path,
            )
        )
    return problems


def _peak_bytes(rows: Sequence[Row], bytes_per_value: int, batch: int, outputs: Sequence[int] = ()) -> int:
    """The most activation bytes alive at once when each tensor is freed after its last reader.

    A row that allocates nothing (in place, a view) shares its first input's storage.
    While a row runs, its inputs and everything it allocates (with a fused
    activation's intermediate) are alive; afterwards only its output persists.
    """
    storage = _storages(rows)
    last = {s: s for s in storage}
    for row in rows:
        for i in row.inputs:
            last[storage[i]] = max(last[storage[i]], row.index)
    for out in outputs or (len(rows) - 1,):
        last[storage[out]] = len(rows)  # the network's outputs are kept
    persistent = {s: prod(rows[s].output_shape) * batch * bytes_per_value for s in set(storage)}
    # a running sum: each storage is added after its row and taken off after its last reader,
    # so a concat of many branches costs one step per branch, not one per branch per row
    freed: dict[int, list[int]] = {}
    for s in persistent:
        freed.setdefault(last[s] + 1, []).append(s)
    peak = alive = 0
    for row in rows:
        alive -= sum(persistent[s] for s in freed.get(row.index, ()))
        peak = max(peak, alive + row.activation_bytes)
        if storage[row.index] == row.index:
            alive += persistent[row.index]
    return peak


def check_input_shape(shape: Sequence[int]) -> None:
    """Raise ValueError unless ``shape`` is C x H x W or N, each size from 1 to 2^31 - 1, at most 2^48 values."""
    if len(shape) not in (1, 3) or min(shape) < 1 or max(shape) > MAX_INT:
        raise ValueError(f"input shape must be C x H x W or N, each from 1 to {MAX_INT}, got {fmt(shape)}")
    if prod(shape) > MAX_NUMEL:
        raise ValueError(f"the input {fmt(shape)} holds more than 2^48 values: too large for any tensor")


def analyze(
    spec: Spec | str | os.PathLike[str],
    *,
    batch: int = 1,
    dtype: str = "float32",
    input_shape: Sequence[int] | None = None,
    strict: bool = False,
) -> Report:
    """Walk ``spec`` layer by layer, blocks expanded, and return its :class:`Report`.

    ``spec`` is a :class:`Spec`, or what :func:`cnncalc.zoo.coerce` loads: a path, the name of a
    shipped spec (``"resnet50"``) or YAML text.

    ``input_shape`` overrides the spec's input; ``strict`` turns every "does not
    fit" warning into an error. Raises :class:`SpecError` listing every problem
    found (located in the YAML file when the spec was loaded from one).
    """
    if not isinstance(spec, Spec):
        from .zoo import coerce  # the zoo loads specs, which the engine does not otherwise do

        spec = coerce(spec)
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    size = DTYPE_BYTES[dtype]
    shape: Shape = tuple(input_shape) if input_shape is not None else spec.input
    if input_shape is not None:  # the spec's own input was checked by its schema
        check_input_shape(shape)
    walker = _Walker(spec, batch=batch, dtype_bytes=size, strict=strict)
    rf = RF(grid=(shape[1], shape[2])) if len(shape) == 3 else None
    if prod(shape) * batch > MAX_NUMEL:
        # checked even when no layer runs: every tensor, the input included, is held to the same bound
        problem = Problem(
            f"the input {fmt(shape)} x batch {batch} holds more than 2^48 values: too large for any tensor", ("input",)
        )
        raise SpecError(locate(spec, [problem]))
    walker.rows.append(
        Row(
            index=0,
            name="input",
            kind="input",
            detail="",
            input_shape=None,
            output_shape=shape,
            activations=batch * prod(shape),
            activation_bytes=batch * prod(shape) * size,
            receptive_field=ReceptiveField((1, 1), (1, 1)) if rf else None,
            path=("input",),
        )
    )
    scope = _Scope(())
    scope.taken.add("input")
    outputs: tuple[int, ...] = ()
    with contextlib.suppress(Stop):
        x = walker.made(_Tensor(0, shape, rf))
        x = walker.entries([(e, ("layers", i)) for i, e in enumerate(spec.layers)], x, scope)
        outputs = _outputs(walker, spec, x, scope)
        walker.errors += overwritten_reads(walker.rows, outputs)
    if walker.errors:
        # the walk stops at the first mistake in a block use; the others are found without it
        raise SpecError(locate(spec, list(dict.fromkeys([*walker.errors, *block_use_problems(spec)]))))
    unused = [name for name in spec.blocks if name not in walker.used]
    walker.warnings += [Problem(f"block '{name}' is never used", ("blocks", name), at_key=True) for name in unused]
    kept = kept_for_backward(walker.rows, dtype_bytes=size, batch=batch, device="cuda", outputs=outputs)
    for writer, keeper in kept.overwritten:
        w, k = walker.rows[writer], walker.rows[keeper]
        walker.warnings.append(
            Problem(
                f"layer {w.index} {w.kind} '{w.name}' writes in place into what layer {k.index} {k.kind} '{k.name}'"
                " keeps for backward: PyTorch's backward refuses a saved tensor changed after it was saved, so this"
                " network cannot train as written (its training figures assume it can); drop 'inplace: true' to"
                " train it",
                w.path,
            )
        )
    rows = tuple(replace(r, saved_bytes=s) for r, s in zip(walker.rows, kept.per_row, strict=True))
    return Report(
        name=safe_text.text(spec.name),
        input_shape=shape,
        batch=batch,
        dtype=dtype,
        rows=rows,
        warnings=tuple(locate(spec, walker.warnings, in_file_order=False)),
        notes=tuple(safe_text.text(note, MAX_NOTE) for note in spec.notes),
        blocks=tuple(walker.blocks),
        peak_activation_bytes=_peak_bytes(rows, size, batch, outputs),
        output_bytes=kept.output_bytes,
        outputs=outputs,
    )
