"""The importer's oracle: a model imported, and every figure of its spec checked against the model in torch.

The spec's learnable params are the model's, its MACs are FlopCounterMode's FLOPs / 2, its activations are the values
the model's operations allocate for their results, its rows carry the model's module names (the state_dict loads by
name into ``build(spec)``), and the built module's outputs are bit-identical, all of them, in order.
"""

from __future__ import annotations

from math import prod
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from cnncalc import analyze, from_torch, load_spec
from cnncalc import torch_backend as tb
from cnncalc.errors import Problem


def _outs(y: Any) -> list[torch.Tensor]:
    """A model's outputs in order: a tensor, or each of a tuple, a list or a dict (``build(spec)`` returns a tuple
    where the model returns a dict: the values are compared in order)."""
    if isinstance(y, dict):
        return list(y.values())
    return list(y) if isinstance(y, tuple | list) else [y]


class Allocated(TorchDispatchMode):
    """The values the operations run allocate for their results: each operation's first result (a max pool's values,
    not its indices; a layer norm's output, not its statistics), unless it is a view of, or written into, an input
    (a reshape, an in-place ReLU)."""

    def __init__(self) -> None:
        super().__init__()
        self.values = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)
        }
        first = next((t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)), None)
        if first is not None and first.is_floating_point() and first.untyped_storage().data_ptr() not in inputs:
            self.values += first.numel()
        return out


#: Kinds PyTorch computes through values no row holds: ``F.local_response_norm`` through a padded square and its
#: average, a ``channel_linear`` on an input not laid out channels-last through a channels-last copy of it, an
#: instance norm with running statistics through copies of them per image. Where a network has one, the model
#: allocates more than its rows' outputs.
TEMPORARIES = {"lrn", "channel_linear", "instancenorm2d"}


def temporaries(row: Any) -> int:
    """Values a row allocates and frees within itself, where they are known exactly (a row's activations are its
    outputs): TensorFlow's 'same' padding pads a copy first; ``eca`` makes the channels' means, a convolution of
    them and their sigmoid; ``rmsnorm`` makes x^2, its mean, the mean plus eps, its rsqrt, and x times it; a stacked
    add stacks its inputs; ``std_conv2d`` standardizes its filters (a copy of the weights, and gain x scale); ``blur_pool2d`` pads a copy; ``grn``
    makes norms, their mean, factors, x times them and the addcmul before the sum."""
    from cnncalc.layers.base import same_pads

    layer = row.layer
    shape = row.input_shape or ()
    if getattr(layer, "padding", None) == "same" and len(shape) == 3:
        stride = getattr(layer, "stride", None) or layer.kernel
        if row.kind in ("maxpool2d", "std_conv2d") or stride != (1, 1):
            left, right, top, bottom = same_pads(shape, layer.kernel, stride, layer.dilation)
            c, h, w = shape
            padded = c * (h + top + bottom) * (w + left + right) if left + right + top + bottom else 0
            return padded + (row.weights if row.kind == "std_conv2d" else 0)
    if row.kind == "eca":
        return 3 * shape[0]
    if row.kind == "blur_pool2d":  # the reflect-padded copy
        p = (layer.stride - 1 + layer.kernel - 1) // 2
        return shape[0] * (shape[1] + 2 * p) * (shape[2] + 2 * p)
    if row.kind == "grn":  # the norms and the factors (C each), their mean and + eps (1 each), x times the factors
        return 2 * shape[0] + 2 + 2 * prod(shape)  # and the addcmul (C x H x W each)
    if row.kind == "std_conv2d":
        return (
            row.weights
        )  # the standardized filters, and gain x scale (with the weights) (inference keeps no statistics)
    if row.kind == "add" and getattr(layer, "stack", False):  # torch.stack(xs).sum(0): a copy of every input
        return len(row.inputs) * prod(row.output_shape)
    if row.kind == "rmsnorm":
        c, h, w = shape
        return c * h * w + 3 * h * w + (c * h * w if layer.affine else 0)
    return 0


def round_trip(model: nn.Module, shape: tuple[int, ...]) -> str:
    """Import ``model``, check every figure and the outputs (all of them, in order) against it, and return the
    spec's YAML. A module the run never reads (a head left unused) is left out, said in a warning: the figures are
    the rest's."""
    model.eval()
    said: list[Problem] = []
    spec = from_torch(model, shape, warnings=said)
    text = spec.to_yaml()
    report = analyze(load_spec(text=text))  # the YAML, read back, is the same network
    assert report.totals == analyze(spec).totals
    x = torch.randn(1, *shape)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        ys = _outs(model(x.clone()))  # a copy: a model's first row may write its input in place (relu_)
    fresh = x.clone()
    with torch.no_grad(), Allocated() as allocated:
        model(fresh)
    left_out = [p.message.split(":")[0] for p in said]
    assert all("parameters that do not run" in p.message for p in said), said

    def kept(name: str) -> bool:
        return not any(name == m or name.startswith(m + ".") for m in left_out)

    assert report.totals.params_trainable == sum(p.numel() for n, p in model.named_parameters() if kept(n))
    assert report.totals.macs * 2 == counter.get_total_flops()
    rows = report.totals.activations - report.rows[0].activations  # the input row: x itself
    rows += sum(temporaries(r) for r in report.rows)
    assert rows == allocated.values or ({r.kind for r in report.rows} & TEMPORARIES and rows < allocated.values)
    assert [report.rows[i].output_shape for i in report.outputs] == [tuple(y.shape[1:]) for y in ys]
    built = tb.build(report).eval()
    state = {k: v for k, v in model.state_dict().items() if kept(k)}
    assert set(built.state_dict()) == set(state)
    built.load_state_dict(state)
    with torch.no_grad():
        got = _outs(built(x.clone()))
    # bit for bit; a NaN where the model gives one (a max pool's window of padding only, normalised)
    same = [
        a.shape == b.shape and bool(torch.isclose(a, b, rtol=0, atol=0, equal_nan=True).all())
        for a, b in zip(got, ys, strict=True)
    ]
    assert len(got) == len(ys) and all(same)
    return text
