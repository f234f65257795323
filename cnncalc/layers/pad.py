"""Padding: ``zeropad2d``."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any, Literal

from ..fields import Layer, Pad4
from ..report import Row, Shape
from .base import NO_TERMS, Ctx, Device, Grow, Keeps, Kind, Out, PeerTerms, SizeStep, entry, exactly

if TYPE_CHECKING:
    from torch import nn


class ZeroPad2d(Layer):
    kind: Literal["zeropad2d"]
    padding: Pad4


class ZeroPad2dKind(Kind[ZeroPad2d]):
    model = ZeroPad2d
    prefix = "pad"
    moves_data = True
    input = "planar"
    fields_doc = (
        "`padding`: n, `[h, w]` (Keras' `ZeroPadding2D`) or `[left, right, top, bottom]` (PyTorch's order); a"
        " negative side crops"
    )
    pytorch_doc = "`nn.ZeroPad2d`"

    def rule(self, ctx: Ctx, layer: ZeroPad2d) -> Out:
        c, h, w = ctx.spatial()
        left, right, top, bottom = layer.padding
        shape = (c, h + top + bottom, w + left + right)
        for axis, n in (("height", shape[1]), ("width", shape[2])):
            if n < 1:
                ctx.fail(f"the {axis} would be {n} (input {c}x{h}x{w}, padding {list(layer.padding)})", "padding")
        detail = f"pad {left}" if len(set(layer.padding)) == 1 else f"pad l{left} r{right} t{top} b{bottom}"
        return Out(shape=shape, detail=detail, activations=prod(shape))

    def keeps(self, layer: ZeroPad2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps()  # its gradient is a slice: nothing kept

    def torch_module(self, layer: ZeroPad2d, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.ZeroPad2d(layer.padding)  # (left, right, top, bottom), PyTorch's order

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return entry(self.name, padding=module.padding) if exactly(module, nn.ZeroPad2d) else None

    def peer_terms(self, layer: ZeroPad2d, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: ZeroPad2d, axis: int) -> SizeStep:
        left, right, top, bottom = layer.padding
        return Grow(top + bottom if axis == 0 else left + right)


KINDS = (ZeroPad2dKind(),)
