"""What an activation fused onto a row does (``activation: relu`` on a conv, a linear layer, a transposed conv
or a join): its memory, its peers' counts and its PyTorch module.

Apart from the activation family, so that a spec whose activations are all fused (VGG-16's) never
imports that family's sixteen kinds; the module, for a PyTorch build, is the fused kind's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..report import Row
from .base import NO_TERMS, PeerTerms, out_numel, terms

if TYPE_CHECKING:
    from torch import nn


def fused_module(module: nn.Module, activation: str | None, key: str) -> nn.Module:
    """``module`` followed by the fused activation, in place where PyTorch allows it (relu, relu6, leaky_relu)."""
    if activation is None:
        return module
    from collections import OrderedDict

    from torch import nn

    return nn.Sequential(OrderedDict([(key, module), (activation, activation_module(activation))]))


def activation_module(name: str) -> nn.Module:
    """A fused activation's module: its kind's, in place where PyTorch allows it."""
    from . import INDEX, KINDS

    if INDEX.get(name) != "activation":
        raise ValueError(f"unknown activation {name!r}")
    kind = KINDS[name]
    inplace = {"inplace": True} if "inplace" in kind.model.model_fields else {}
    return kind.torch_module(kind.model.model_validate({"kind": name, **inplace}), ())


def fused_keeps(activation: str | None, output_bytes: int) -> tuple[bool, int]:
    """What an activation fused into a row keeps: (the row's output, extra bytes).

    Each keeps its result, the row's output, except relu6: in place it keeps a copy of its input.
    """
    if activation is None:
        return False, 0
    return (False, output_bytes) if activation == "relu6" else (True, 0)


#: ptflops' count per output value of a fused activation: nn.ReLU also calls the patched F.relu (twice).
_PTFLOPS_FUSED = {"relu": 2, "relu6": 1, "leaky_relu": 1, "softmax": 1}


def fused_terms(activation: str | None, row: Row, batch: int) -> PeerTerms:
    """What the peers count for an activation fused into a row."""
    if activation is None:
        return NO_TERMS
    out = out_numel(row, batch)
    softmax = thop_softmax(row, batch) if activation == "softmax" else 0
    return terms(ptflops={"act": _PTFLOPS_FUSED.get(activation, 0) * out}, thop={"softmax": softmax})


def thop_softmax(row: Row, batch: int) -> int:
    """thop's count for a softmax, fused or a row of its own: exp, add and divide per value, over the features
    (channels)."""
    features = row.output_shape[0]
    return out_numel(row, batch) // features * (3 * features - 1)
