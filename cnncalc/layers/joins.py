"""Where branches meet: the rows ``add`` (a residual's body and shortcut), ``concat`` (a concat's or a split's
branches) and ``multiply`` (a multiply's body and its input).

Their entries (``residual``, ``concat``, ``split``, ``multiply``) are structures that the walk of :mod:`cnncalc.engine` expands;
their rows are :class:`~cnncalc.report.Join` and have the facets of every row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..fields import INPLACE_ACTIVATIONS
from ..report import Join, Row, Shape
from .base import NO_TERMS, Device, Keeps, PeerTerms, RowKind, out_numel
from .fused import fused_keeps, fused_terms

if TYPE_CHECKING:
    from torch import nn


class AddKind(RowKind[Join]):
    name = "add"
    moves_data = True

    def keeps(self, layer: Join, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # an add keeps nothing, an activation after it what a fused one keeps; after an in-place add
        # the output is the body's storage, unless an activation makes a new one
        activation = layer.activation
        output, extra = fused_keeps(activation if grad_in else None, out_numel(row, batch) * dtype_bytes)
        fresh = not layer.inplace or (activation is not None and activation not in INPLACE_ACTIVATIONS)
        return Keeps(output=output, extra=extra, new_output=fresh)

    def torch_module(self, layer: Join, shape: Shape) -> nn.Module:
        from ..torch_backend import Add

        return Add(layer.inplace, layer.activation, layer.stack)

    def peer_terms(self, layer: Join, row: Row, batch: int) -> PeerTerms:
        return fused_terms(layer.activation, row, batch)


class ConcatKind(RowKind[Join]):
    name = "concat"
    moves_data = True
    layout = "all_inputs"

    def keeps(self, layer: Join, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps()  # torch.cat keeps only the sizes

    def torch_module(self, layer: Join, shape: Shape) -> nn.Module:
        from ..torch_backend import Concat

        return Concat()

    def peer_terms(self, layer: Join, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS


class MultiplyKind(RowKind[Join]):
    name = "multiply"
    moves_data = True
    broadcasts = True  # a C x 1 x 1 gate scales every position

    def keeps(self, layer: Join, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(factors=True)

    def torch_module(self, layer: Join, shape: Shape) -> nn.Module:
        from ..torch_backend import Multiply

        return Multiply()

    def peer_terms(self, layer: Join, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS


JOINS = (AddKind(), ConcatKind(), MultiplyKind())
