"""Flat inputs: ``linear``, and ``flatten``, which makes them; ``channel_linear``, a linear layer over the channels at
each position of a plane (ConvNeXt's pointwise layers)."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, StrictBool

from ..fields import Activation, Layer, Pos
from ..report import Row, Shape
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
    layouts_differ,
    merge,
    out_numel,
    terms,
)
from .conv import bias_terms
from .fused import fused_keeps, fused_module, fused_terms

if TYPE_CHECKING:
    from torch import nn


class Linear(Layer):
    """nn.Linear on a flat input, optionally followed by a fused activation."""

    kind: Literal["linear"]
    out: Pos = Field(description="Output features.")
    bias: StrictBool = True
    in_: Pos | None = Field(None, alias="in", description="Input features, checked against the input.")
    activation: Activation | None = None


class ChannelLinear(Layer):
    """nn.Linear over the channels at every position of a C x H x W plane: C x H x W to out x H x W."""

    kind: Literal["channel_linear"]
    out: Pos = Field(description="Output channels.")
    bias: StrictBool = True
    activation: Literal["gelu"] | None = Field(
        None, description="GELU on the channels-last result, before the permute back: ConvNeXt's, bit for bit."
    )


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


class ChannelLinearKind(Kind[ChannelLinear]):
    """A 1x1 convolution computed as ConvNeXt computes it: nn.Linear on the channels-last view of the plane (its
    weight out x in, as torchvision's state_dict holds it), the same sums as a conv1x1 but a matmul's rounding."""

    model = ChannelLinear
    prefix = "pw"
    moves_data = True
    layout = "channels_last"  # the permute back of its channels-last result
    input = "planar"
    fields_doc = (
        "`out`, `bias` (true), `activation` (none, or gelu: applied channels-last, as ConvNeXt does);"
        " over the channels at each position: C x H x W to out x H x W"
    )
    pytorch_doc = "`nn.Linear(C, out)` over channels-last positions (ConvNeXt's permute, Linear, permute back)"

    def rule(self, ctx: Ctx, layer: ChannelLinear) -> Out:
        c, h, w = ctx.spatial()
        return Out(
            shape=(layer.out, h, w),
            detail=f"{c} -> {layer.out}" + ("" if layer.bias else " nobias") + (" +gelu" if layer.activation else ""),
            weights=c * layer.out,
            biases=layer.out if layer.bias else 0,
            macs=c * layer.out * h * w,
            activations=fused_values(layer.out * h * w, layer.activation),
        )

    def keeps(
        self, layer: ChannelLinear, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        # the weight always requires grad: the matmul keeps its input, a channels-last copy of it unless the input
        # is laid out so already (what the walk of cnncalc.training tracks); a GELU keeps its input, the matmul's
        gelu = out_numel(row, batch) * dtype_bytes if layer.activation else 0
        return Keeps(input=True, input_layout="channels_last", extra=gelu)

    def torch_module(self, layer: ChannelLinear, shape: Shape) -> nn.Module:
        from torch import nn

        from ..torch_backend import ChannelsLast

        after = nn.GELU() if layer.activation else None
        return ChannelsLast(nn.Linear(shape[0], layer.out, bias=layer.bias), after)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        from ..torch_backend import ChannelsLast

        if not exactly(module, ChannelsLast):
            return None
        inner: Any = module.inner
        after: Any = module.after
        if not exactly(inner, nn.Linear):
            return None
        if after is not None and not (exactly(after, nn.GELU) and after.approximate == "none"):
            return None
        fields: dict[str, Any] = {"out": inner.out_features, "bias": inner.bias is not None}
        if after is not None:
            fields["activation"] = "gelu"
        return entry(self.name, **fields)

    def peer_terms(self, layer: ChannelLinear, row: Row, batch: int) -> PeerTerms:
        # torchinfo counts an nn.Linear's weights and biases once per image, not at each position
        _, h, w = row.input_shape or (0, 0, 0)
        weights = row.weights * batch * (1 - h * w)
        # ptflops: the patched F.gelu (the GELU is the row's, outside the module tree its hooks walk)
        gelu = out_numel(row, batch) if layer.activation else 0
        return terms(
            torchinfo={"bias": batch * row.biases, "positions": weights},
            ptflops={"bias": out_numel(row, batch) if row.biases else 0, "act": gelu},
        )

    def size_step(self, layer: ChannelLinear, axis: int) -> SizeStep:
        return Keep()


class FlattenKind(Kind[Flatten]):
    model = Flatten
    prefix = "flatten"
    moves_data = False  # a view
    layout = "contiguous"
    input = "any"
    fields_doc = "none; C x H x W to C·H·W (a view)"
    pytorch_doc = "`nn.Flatten`"

    def rule(self, ctx: Ctx, layer: Flatten) -> Out:
        numel = prod(ctx.shape)
        if ctx.channels_last and layouts_differ(ctx.shape):
            # a channels-last input (after a layer norm or a linear layer over channels) is not viewed: reshaped
            return Out(shape=(numel,), detail="copy of a channels-last input", activations=numel)
        return Out(shape=(numel,), detail="view" if len(ctx.shape) == 3 else "already flat")

    def keeps(self, layer: Flatten, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(new_output=row.activations > 0)  # a view, or the copy its rule counted

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


KINDS = (LinearKind(), ChannelLinearKind(), FlattenKind())
