"""What a training step keeps: the tensors autograd saves for backward, row by row.

A training forward pass keeps, until backward, every tensor some op needs for its
gradient: a conv keeps its input, a ReLU its output, a max pool its input and the
int64 indices of its maxima, a batch norm its input and two per-channel statistics,
an in-place ReLU6 a copy of its input (it overwrites the original)...
Each kind's ``keeps`` (in :mod:`cnncalc.layers`) is what PyTorch's autograd formulas save (``derivatives.yaml``;
measured with ``torch.autograd.graph.saved_tensors_hooks``, see
``cnncalc.torch_backend.measure_saved``). A tensor two ops keep (a ReLU's output that
the next conv also keeps) counts once, at the first row that keeps it; parameters and
running statistics are not counted here (they live anyway). The network's input counts
when the first layer keeps it, as every conv or linear does.

The walk follows each tensor's memory layout as PyTorch lays it out (each kind's ``layout``): a
kind that keeps its input in one layout (``Keeps.input_layout``: a linear layer over channels-last
positions, instance norm's contiguous reshape) keeps a copy instead where the input is laid out
otherwise.

Devices differ in two ops: dropout in training keeps a mask of 1 byte per value on CUDA
(``native_dropout``) but a mask of the input's dtype on the CPU (and for in-place dropout);
batch norm's two saved statistics are float32 on CUDA, the input's dtype on the CPU. The CPU
rules are checked against PyTorch in the test suite; the CUDA ones are read from PyTorch's
kernels and not yet measured on a GPU (``profile --train`` on CUDA compares the total only).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import prod
from typing import NamedTuple

from .layers import row_kind, writes_in_place
from .layers.base import Device, Keeps, layouts_differ, output_layout
from .report import Row

__all__ = ["Device", "Kept", "kept_for_backward", "saved_for_backward"]


def _keeps(row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
    """The autograd rule of one row, its kind's; ``grad_in``: whether its input requires grad."""
    if row.layer is None:  # the input row
        return Keeps()
    return row_kind(row.layer).keeps(row.layer, row, device, dtype_bytes, batch, grad_in)


def _channels_last(row: Row, layouts: list[bool]) -> bool:
    """Whether a row's output is laid out channels-last, from its kind's :attr:`~cnncalc.layers.base.RowKind.layout`
    and its inputs' layouts (the network's input is contiguous), as the engine's walk tracks it."""
    if row.layer is None:
        return False
    return output_layout(row_kind(row.layer).layout_of(row.layer), [layouts[i] for i in row.inputs])


def _sliced(
    row: Row, rows: Sequence[Row], first: int | None, storage: list[int], sliced: list[bool], channels_last: list[bool]
) -> bool:
    """Whether a row's output is some of the channels of a contiguous tensor: a ``slice`` of fewer channels than
    its input has, or a row in place on (or the identity of) one."""
    if first is None or channels_last[first]:
        return False
    if row.kind == "slice":
        return row.output_shape[0] < rows[first].output_shape[0]
    return storage[row.index] == storage[first] and row.output_shape == rows[first].output_shape and sliced[first]


class Kept(NamedTuple):
    """What a training forward holds for backward: bytes per row, and the output when nothing keeps it."""

    per_row: list[int]
    #: the network's outputs, which the loss reads; 0 for one a row already keeps (a final ReLU's result)
    output_bytes: int
    #: (a row that writes in place, an earlier row that keeps what it overwrites): PyTorch's backward refuses
    #: a saved tensor changed after it was saved, so a network with any cannot train as written
    overwritten: tuple[tuple[int, int], ...] = ()


def kept_for_backward(
    rows: Sequence[Row], *, dtype_bytes: int, batch: int, device: Device, outputs: Sequence[int] = ()
) -> Kept:
    """Bytes each row adds to what a training forward keeps (the first row to keep a tensor counts it), and the output."""
    storage: list[int] = []  # per row, the row whose allocation holds its output
    grad: list[bool] = []  # per row, whether its output requires grad
    channels_last: list[bool] = []  # per row, whether its output's permute to N x H x W x C is contiguous
    #: per row, whether its output is some of the channels of a contiguous tensor (a slice, a view of it): images
    #: apart in memory, so a batch of them cannot be merged into one matrix without a copy
    sliced: list[bool] = []
    keeper: dict[int, int] = {}  # per kept storage, the first row that keeps it for backward (which counts it)
    overwritten: list[tuple[int, int]] = []
    out: list[int] = []

    def nbytes(row: int) -> int:
        return batch * prod(rows[row].output_shape) * dtype_bytes

    for row in rows:
        first = row.inputs[0] if row.inputs else None
        grad_in = any(grad[i] for i in row.inputs)
        keeps = _keeps(row, device, dtype_bytes, batch, grad_in)
        storage.append(row.index if keeps.new_output or first is None else storage[first])
        grad.append(grad_in or row.weights + row.biases > 0)
        channels_last.append(_channels_last(row, channels_last))
        sliced.append(_sliced(row, rows, first, storage, sliced, channels_last))
        added, wants_input = keeps.extra, keeps.input
        if keeps.input_layout is not None and first is not None and sliced[first]:
            # a batch of sliced images is copied into one matrix (both layouts merge the batch with another
            # axis), one image is a view of it: measured with saved_tensors_hooks
            shape = rows[first].output_shape
            if batch > 1 and (keeps.input_layout == "contiguous" or prod(shape[1:]) > 1):
                added, wants_input = added + nbytes(first), False
        elif (
            keeps.input_layout is not None
            and first is not None
            and channels_last[first] != (keeps.input_layout == "channels_last")
            and layouts_differ(rows[first].output_shape)
        ):
            added, wants_input = added + nbytes(first), False  # it keeps a copy in its layout instead
        if first is not None and writes_in_place(row.layer) and storage[first] in keeper:
            overwritten.append((row.index, keeper[storage[first]]))
        second = row.inputs[1] if len(row.inputs) > 1 else None
        wants_second = False
        if keeps.factors and first is not None and second is not None:
            wants_input, wants_second = wants_input or grad[second], grad[first]
        for role, wanted in ((first, wants_input), (second, wants_second), (row.index, keeps.output)):
            if wanted and role is not None and storage[role] not in keeper:
                keeper[storage[role]] = row.index
                added += nbytes(storage[role])
        out.append(added)
    if not storage:
        return Kept(out, 0)
    returned = {storage[i] for i in outputs or (len(rows) - 1,)}  # what the loss reads, once per storage
    return Kept(out, sum(nbytes(s) for s in returned if s not in keeper), tuple(overwritten))


def saved_for_backward(rows: Sequence[Row], *, dtype_bytes: int, batch: int, device: Device) -> list[int]:
    """Bytes each row adds to what a training forward keeps for backward (the first row to keep a tensor counts it)."""
    return kept_for_backward(rows, dtype_bytes=dtype_bytes, batch=batch, device=device).per_row
