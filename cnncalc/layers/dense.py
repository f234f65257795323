"""Flat inputs: ``linear``, and ``flatten``, which makes them."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, StrictBool

from ..fields import Activation, Layer, Pos
from ..report import Row, Shape
from .activation import fused_keeps, fused_module, fused_terms
from .base import (
    NO_TERMS,
    Ctx,
    Device,
    Keep,
    Keeps,
    Kind,
    Out,
    PeerTerms,
    SizeStep,
    entry,
    exactly,
    fmt,
    fused_values,
    merge,
)
from .conv import bias_terms

if TYPE_CHECKING:
    from torch import nn


class Linear(Layer):
    """nn.Linear on a flat input, optionally followed by a fused activation."""

    kind: Literal["linear"]
    out: Pos = Field(description="Output features.")
    bias: StrictBool = True
    in_: Pos | None = Field(None, alias="in", description="Input features, checked against the input.")
    activation: Activation | None = None


class Flatten(Layer):
    kind: Literal["flatten"]


class LinearKind(Kind[Linear]):
    model = Linear
    prefix = "fc"
    moves_data = True
    input = "flat"
    fields_doc = "`out`, `bias` (true), `in` (checked if given), `activation` (none); needs a flat input"
    pytorch_doc = "`nn.Linear`"

    def rule(self, ctx: Ctx, layer: Linear) -> Out:
        if len(ctx.shape) != 1:
            ctx.fail(
                f"linear needs a flat input, got {fmt(ctx.shape)}; add '- flatten' before it "
                "(PyTorch's nn.Linear would act on the last dimension only)"
            )
        (n,) = ctx.shape
        if layer.in_ is not None and layer.in_ != n:
            ctx.error(f"in: {layer.in_}, but the input has {n} features", "in")
        ctx.rf.see_all()
        detail = (
            f"{n} -> {layer.out}"
            + ("" if layer.bias else " nobias")
            + (f" +{layer.activation}" if layer.activation else "")
        )
        return Out(
            shape=(layer.out,),
            detail=detail,
            weights=n * layer.out,
            biases=layer.out if layer.bias else 0,
            macs=n * layer.out,
            activations=fused_values(layer.out, layer.activation),
        )

    def keeps(self, layer: Linear, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # the weight always requires grad, so the input is kept even when it does not
        output, extra = fused_keeps(layer.activation, batch * prod(row.output_shape) * dtype_bytes)
        return Keeps(input=True, output=output, extra=extra)

    def torch_module(self, layer: Linear, shape: Shape) -> nn.Module:
        from torch import nn

        linear = nn.Linear(layer.in_ or shape[-1], layer.out, bias=layer.bias)
        return fused_module(linear, layer.activation, "linear")

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if not exactly(module, nn.Linear):
            return None
        return entry(self.name, out=module.out_features, bias=module.bias is not None)

    def peer_terms(self, layer: Linear, row: Row, batch: int) -> PeerTerms:
        return merge(bias_terms(row, batch), fused_terms(layer.activation, row, batch))

    def size_step(self, layer: Linear, axis: int) -> SizeStep:
        return Keep()  # never reached: its input is flat


class FlattenKind(Kind[Flatten]):
    model = Flatten
    prefix = "flatten"
    moves_data = False  # a view
    input = "any"
    fields_doc = "none; C x H x W to C·H·W (a view)"
    pytorch_doc = "`nn.Flatten`"

    def rule(self, ctx: Ctx, layer: Flatten) -> Out:
        return Out(shape=(prod(ctx.shape),), detail="view" if len(ctx.shape) == 3 else "already flat")

    def keeps(self, layer: Flatten, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(new_output=False)

    def torch_module(self, layer: Flatten, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.Flatten()

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        # on a batch of C x H x W, the only flatten the kind makes: dims 1 to the last
        whole = exactly(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1
        return entry(self.name) if whole else None

    def peer_terms(self, layer: Flatten, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: Flatten, axis: int) -> SizeStep:
        return Keep()  # never reached: its output is flat


KINDS = (LinearKind(), FlattenKind())
