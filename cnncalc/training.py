"""What a training step keeps: the tensors autograd saves for backward, row by row.

A training forward pass keeps, until backward, every tensor some op needs for its
gradient: a conv keeps its input, a ReLU its output, a max pool its input and the
int64 indices of its maxima, a batch norm its input and two per-channel statistics,
an in-place ReLU6 a copy of its input (it overwrites the original)...
Each rule below is what PyTorch's autograd formulas save (``derivatives.yaml``;
measured with ``torch.autograd.graph.saved_tensors_hooks``, see
``cnncalc.torch_backend.measure_saved``). A tensor two ops keep (a ReLU's output that
the next conv also keeps) counts once, at the first row that keeps it; parameters and
running statistics are not counted here (they live anyway). The network's input counts
when the first layer keeps it, as every conv or linear does.

Devices differ in two ops: dropout in training keeps a mask of 1 byte per value on CUDA
(``native_dropout``) but a mask of the input's dtype on the CPU (and for in-place dropout);
batch norm's two saved statistics are float32 on CUDA, the input's dtype on the CPU. The CPU
rules are checked against PyTorch in the test suite; the CUDA ones are read from PyTorch's
kernels and not yet measured on a GPU (``profile --train`` on CUDA compares the total only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from math import prod
from typing import Literal, assert_never

from .report import Join, Row
from .spec import (
    INPLACE_ACTIVATIONS,
    LRN,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    ReLU6,
    Sigmoid,
    Softmax,
    Tanh,
    ZeroPad2d,
)

Device = Literal["cpu", "cuda"]

#: Bytes of one int64 index, whatever the dtype (max pooling's argmax).
INDEX_BYTES = 8


@dataclass(frozen=True)
class _Keeps:
    """What one row keeps: storages by role, extra new bytes, and whether its output is a new storage."""

    input: bool = False  # the storage of its (first) input
    output: bool = False  # the storage of its output
    extra: int = 0  # bytes of tensors made only to be saved (indices, masks, statistics)
    new_output: bool = True  # False: the output shares the input's storage (in place, a view)


def _odd_same_padding(layer: Conv2d) -> tuple[int, int]:
    """Per axis, 1 where ``padding: same`` needs an odd total (dilation x (kernel - 1)), else 0."""
    if layer.padding != "same":
        return (0, 0)
    return (layer.dilation[0] * (layer.kernel[0] - 1) % 2, layer.dilation[1] * (layer.kernel[1] - 1) % 2)


def _fused(activation: str | None, output_bytes: int) -> tuple[bool, int]:
    """What an activation fused into a row keeps: (the row's output, extra bytes).

    Each keeps its result, the row's output, except relu6: in place it keeps a copy of its input.
    """
    if activation is None:
        return False, 0
    return (False, output_bytes) if activation == "relu6" else (True, 0)


def _keeps(row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> _Keeps:
    """The autograd rule of one row; ``grad_in``: whether its input requires grad."""
    layer = row.layer
    out_numel = batch * prod(row.output_shape)
    in_shape = row.input_shape or ()
    match layer:
        case None:  # the input row
            return _Keeps()
        case Join(kind=kind, inplace=inplace, activation=activation):
            # an add and a concat keep nothing, an activation after the add what a fused one keeps;
            # after an in-place add the output is the body's storage, unless an activation makes a new one
            output, extra = _fused(activation if kind == "add" and grad_in else None, out_numel * dtype_bytes)
            fresh = not inplace or (activation is not None and activation not in INPLACE_ACTIVATIONS)
            return _Keeps(output=output, extra=extra, new_output=fresh)
        case Conv2d(activation=activation) | Linear(activation=activation):
            # the weight always requires grad, so the input is kept even when it does not
            output, extra = _fused(activation, out_numel * dtype_bytes)
            odd = _odd_same_padding(layer) if isinstance(layer, Conv2d) else (0, 0)
            if any(odd):
                # 'same' with an odd total padding: PyTorch pads a copy by one on the right/bottom and keeps that
                c, h, w = in_shape
                extra += batch * c * (h + odd[0]) * (w + odd[1]) * dtype_bytes
            return _Keeps(input=not any(odd), output=output, extra=extra)
        case MaxPool2d() | AdaptiveMaxPool2d():
            return _Keeps(input=grad_in, extra=INDEX_BYTES * out_numel if grad_in else 0)
        case AvgPool2d():
            return _Keeps(input=grad_in)
        case AdaptiveAvgPool2d() | GlobalAvgPool2d():
            # an output of 1x1 is a mean, which keeps only the input's size
            one = isinstance(layer, GlobalAvgPool2d) or tuple(layer.output) == (1, 1)
            return _Keeps(input=grad_in and not one)
        case ZeroPad2d():
            return _Keeps()
        case Flatten():
            return _Keeps(new_output=False)
        case BatchNorm2d() | BatchNorm1d():
            # the saved mean and inverse std: in the dtype on the CPU, in float32 on CUDA (its accumulate type)
            keeps = grad_in or layer.affine
            stat = 4 if device == "cuda" else dtype_bytes
            return _Keeps(input=keeps, extra=2 * in_shape[0] * stat if keeps else 0)
        case LRN():
            # x * x, padded over channels and averaged, then (k + alpha * avg) ** beta and x / that
            c, h, w = in_shape
            padded = batch * (c + layer.size - 1) * h * w
            return _Keeps(input=grad_in, extra=(padded + 2 * out_numel) * dtype_bytes if grad_in else 0)
        case Dropout(p=p, inplace=inplace):
            if p == 0:
                return _Keeps(new_output=False)
            if not grad_in:
                return _Keeps(new_output=not inplace)
            if p == 1:
                mask = dtype_bytes  # the input times a zero scalar
            elif device == "cuda" and not inplace:
                mask = out_numel  # native_dropout's bool mask
            else:
                mask = out_numel * dtype_bytes
            return _Keeps(extra=mask, new_output=not inplace)
        case ReLU(inplace=inplace):
            # relu keeps its result: its input's storage when in place
            return _Keeps(input=grad_in and inplace, output=grad_in and not inplace, new_output=not inplace)
        case ReLU6(inplace=inplace):
            # hardtanh keeps its input; in place, autograd keeps a copy of it (the input is overwritten)
            if inplace:
                return _Keeps(extra=out_numel * dtype_bytes if grad_in else 0, new_output=False)
            return _Keeps(input=grad_in)
        case LeakyReLU(inplace=inplace):
            # leaky_relu keeps its input; in place its result, the same storage
            return _Keeps(input=grad_in, new_output=not inplace)
        case Tanh() | Sigmoid() | Softmax():
            return _Keeps(output=grad_in)
        case _:
            assert_never(layer)


@dataclass(frozen=True)
class Kept:
    """What a training forward holds for backward: bytes per row, and the output when nothing keeps it."""

    per_row: list[int]
    #: the network's output, which the loss reads; 0 when a row already keeps its storage (a final ReLU's result)
    output_bytes: int


def kept_for_backward(rows: Sequence[Row], *, dtype_bytes: int, batch: int, device: Device) -> Kept:
    """Bytes each row adds to what a training forward keeps (the first row to keep a tensor counts it), and the output."""
    storage: list[int] = []  # per row, the row whose allocation holds its output
    grad: list[bool] = []  # per row, whether its output requires grad
    kept: set[int] = set()
    out: list[int] = []

    def nbytes(row: int) -> int:
        return batch * prod(rows[row].output_shape) * dtype_bytes

    for row in rows:
        first = row.inputs[0] if row.inputs else None
        grad_in = any(grad[i] for i in row.inputs)
        keeps = _keeps(row, device, dtype_bytes, batch, grad_in)
        storage.append(row.index if keeps.new_output or first is None else storage[first])
        grad.append(grad_in or row.weights + row.biases > 0)
        added = keeps.extra
        for role, wanted in ((first, keeps.input), (row.index, keeps.output)):
            if wanted and role is not None and storage[role] not in kept:
                kept.add(storage[role])
                added += nbytes(storage[role])
        out.append(added)
    last = storage[-1] if storage else None
    return Kept(out, 0 if last is None or last in kept else nbytes(last))


def saved_for_backward(rows: Sequence[Row], *, dtype_bytes: int, batch: int, device: Device) -> list[int]:
    """Bytes each row adds to what a training forward keeps for backward (the first row to keep a tensor counts it)."""
    return kept_for_backward(rows, dtype_bytes=dtype_bytes, batch=batch, device=device).per_row
