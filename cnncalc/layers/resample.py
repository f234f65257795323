"""Resampling: ``pixel_unshuffle`` (space-to-depth: YOLOv2's reorg)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, StrictInt

from ..fields import Layer
from ..report import Row, Shape
from .base import NO_TERMS, Ctx, Device, Divide, Keeps, Kind, Out, PeerTerms, SizeStep

if TYPE_CHECKING:
    from torch import nn


class PixelUnshuffle(Layer):
    """Each factor x factor patch of every channel becomes factor^2 channels: C x H x W to C·r² x H/r x W/r."""

    kind: Literal["pixel_unshuffle"]
    factor: StrictInt = Field(2, ge=1, le=1024, description="r: the patch side, which must divide H and W.")


class PixelUnshuffleKind(Kind[PixelUnshuffle]):
    model = PixelUnshuffle
    prefix = "unshuffle"
    moves_data = True
    input = "planar"
    fields_doc = "`factor` (2); C x H x W to C·r² x H/r x W/r, r dividing H and W (space-to-depth, YOLOv2's reorg)"
    pytorch_doc = "`nn.PixelUnshuffle`"

    def rule(self, ctx: Ctx, layer: PixelUnshuffle) -> Out:
        c, h, w = ctx.spatial()
        r = layer.factor
        if h % r or w % r:
            ctx.fail(f"factor {r} does not divide the input {c}x{h}x{w} (PyTorch refuses it)", "factor")
        ctx.rf.window((r, r), (r, r))
        shape = (c * r * r, h // r, w // r)
        return Out(shape=shape, detail=f"{r}x{r} to depth", activations=c * h * w)

    def keeps(
        self, layer: PixelUnshuffle, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        return Keeps()  # its gradient is a pixel shuffle: nothing kept

    def torch_module(self, layer: PixelUnshuffle, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.PixelUnshuffle(layer.factor)

    def peer_terms(self, layer: PixelUnshuffle, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: PixelUnshuffle, axis: int) -> SizeStep:
        return Divide(layer.factor)


KINDS = (PixelUnshuffleKind(),)
