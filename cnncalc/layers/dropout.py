"""Regularisation: ``dropout``, and ``stochastic_depth`` (a residual body dropped per image)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, StrictBool

from ..fields import Fraction, Layer
from ..report import Row, Shape
from .base import NO_TERMS, Ctx, Device, Keep, Keeps, Kind, Out, PeerTerms, SizeStep, entry, exactly, out_numel

if TYPE_CHECKING:
    from torch import nn


class Dropout(Layer):
    kind: Literal["dropout"]
    p: Fraction = 0.5
    inplace: StrictBool = False


class StochasticDepth(Layer):
    """In training, its input zeroed for whole images (``row``) or the whole batch (``batch``) with probability
    ``p``, the rest scaled by 1 / (1 - p); its input itself at inference (torchvision.ops.StochasticDepth)."""

    kind: Literal["stochastic_depth"]
    p: Fraction = Field(description="The probability of dropping (torchvision's ConvNeXt: 0.1 x block / last block).")
    mode: Literal["row", "batch"] = "row"


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


class StochasticDepthKind(Kind[StochasticDepth]):
    model = StochasticDepth
    prefix = "drop_path"
    moves_data = False  # an identity at inference
    input = "any"
    fields_doc = "`p`, `mode` (row, or batch); its input at inference"
    pytorch_doc = "`torchvision.ops.StochasticDepth` (cnncalc's own module: no torchvision needed)"

    def rule(self, ctx: Ctx, layer: StochasticDepth) -> Out:
        # its input at inference: nothing allocated (training multiplies by a scaled 0/1 noise)
        return Out(shape=ctx.shape, detail=f"p={layer.p:.3g}" + (" per batch" if layer.mode == "batch" else ""))

    def keeps(
        self, layer: StochasticDepth, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        if layer.p == 0:
            return Keeps(new_output=False)  # its input itself
        # input * noise keeps the noise (one value per image, or one) for the input's gradient
        noise = (batch if layer.mode == "row" else 1) * dtype_bytes
        return Keeps(extra=noise if grad_in else 0)

    def torch_module(self, layer: StochasticDepth, shape: Shape) -> nn.Module:
        from ..torch_backend import StochasticDepth as Module

        return Module(layer.p, layer.mode)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import StochasticDepth as Module

        classes: list[type] = [Module]
        try:
            from torchvision.ops import StochasticDepth as Theirs  # type: ignore[import-untyped]

            classes.append(Theirs)  # EfficientNet's and ConvNeXt's
        except ImportError:
            pass
        if not any(exactly(module, c) for c in classes):
            return None
        return entry(self.name, p=module.p, mode=module.mode)

    def peer_terms(self, layer: StochasticDepth, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS  # the tools run at inference, where it is its input

    def size_step(self, layer: StochasticDepth, axis: int) -> SizeStep:
        return Keep()


KINDS = (DropoutKind(), StochasticDepthKind())
