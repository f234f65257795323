"""Regularisation: ``dropout``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import StrictBool

from ..fields import Fraction, Layer
from ..report import Row, Shape
from .base import NO_TERMS, Ctx, Device, Keep, Keeps, Kind, Out, PeerTerms, SizeStep, entry, exactly, out_numel

if TYPE_CHECKING:
    from torch import nn


class Dropout(Layer):
    kind: Literal["dropout"]
    p: Fraction = 0.5
    inplace: StrictBool = False


class DropoutKind(Kind[Dropout]):
    model = Dropout
    prefix = "drop"
    moves_data = False  # an identity at inference
    input = "any"
    fields_doc = "`p` (0.5), `inplace` (false)"
    pytorch_doc = "`nn.Dropout`"

    def rule(self, ctx: Ctx, layer: Dropout) -> Out:
        # identity at inference: nothing allocated (training adds the output and a mask)
        return Out(shape=ctx.shape, detail=f"p={layer.p:g}")

    def keeps(self, layer: Dropout, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        p, inplace = layer.p, layer.inplace
        if p == 0:
            return Keeps(new_output=False)
        if not grad_in:
            return Keeps(new_output=not inplace)
        if p == 1:
            mask = dtype_bytes  # the input times a zero scalar
        elif device == "cuda" and not inplace:
            mask = out_numel(row, batch)  # native_dropout's bool mask
        else:
            mask = out_numel(row, batch) * dtype_bytes
        return Keeps(extra=mask, new_output=not inplace)

    def torch_module(self, layer: Dropout, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.Dropout(layer.p, layer.inplace)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return entry(self.name, p=module.p, inplace=module.inplace) if exactly(module, nn.Dropout) else None

    def peer_terms(self, layer: Dropout, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: Dropout, axis: int) -> SizeStep:
        return Keep()


KINDS = (DropoutKind(),)
