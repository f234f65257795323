"""Convolution: ``conv2d``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field, StrictBool

from ..fields import ACCEPT_FLOOR_DESCRIPTION, Activation, ConvPadding, Layer, Pair, Pos
from ..report import Row, Shape
from .base import (
    Ctx,
    Device,
    Keep,
    Keeps,
    Kind,
    Out,
    PeerTerms,
    Same,
    SizeStep,
    Slide,
    entry,
    exactly,
    fmt,
    fused_values,
    hw,
    merge,
    out_numel,
    same_pads,
    same_window,
    terms,
    window,
)
from .fused import fused_keeps, fused_module, fused_terms

if TYPE_CHECKING:
    from torch import nn


class Conv2d(Layer):
    """nn.Conv2d, optionally followed by a fused activation."""

    kind: Literal["conv2d"]
    out: Pos = Field(description="Output channels (filters).")
    kernel: Pair
    stride: Pair = (1, 1)
    padding: ConvPadding = (0, 0)
    dilation: Pair = (1, 1)
    groups: Pos = 1
    bias: StrictBool = True
    in_: Pos | None = Field(None, alias="in", description="Input channels, checked against the input.")
    activation: Activation | None = None
    accept_floor: StrictBool = Field(False, description=ACCEPT_FLOOR_DESCRIPTION)


def _odd_same_padding(layer: Conv2d) -> tuple[int, int]:
    """Per axis, 1 where ``padding: same`` needs an odd total (dilation x (kernel - 1)), else 0."""
    if layer.padding != "same":
        return (0, 0)
    return (layer.dilation[0] * (layer.kernel[0] - 1) % 2, layer.dilation[1] * (layer.kernel[1] - 1) % 2)


class Conv2dKind(Kind[Conv2d]):
    model = Conv2d
    prefix = "conv"
    moves_data = True
    input = "planar"
    fields_doc = (
        "`out`, `kernel`, `stride` (1), `padding` (0, a pair, `same` (TensorFlow's: ceil(W / S) at any stride) or"
        " `valid`), `dilation` (1), `groups` (1),"
        " `bias` (true), `in` (checked against the input if given), `activation` (none), `accept_floor` (false)"
    )
    pytorch_doc = "`nn.Conv2d`"

    def rule(self, ctx: Ctx, layer: Conv2d) -> Out:
        c, _, _ = ctx.spatial()
        if layer.in_ is not None and layer.in_ != c:
            ctx.error(f"in: {layer.in_}, but the input has {c} channels ({fmt(ctx.shape)})", "in")
        g = layer.groups
        if c % g:
            ctx.error(f"groups={g} does not divide the {c} input channels", "groups")
        if layer.out % g:
            ctx.error(f"groups={g} does not divide the {layer.out} output channels (out)", "groups")
        k, d = layer.kernel, layer.dilation
        if layer.padding == "same":
            # PyTorch's at stride 1 (D*(F-1) in total, the odd pixel bottom/right); TensorFlow's at any stride:
            # ceil(W / S), padded as the size needs, the larger half after
            oh, ow = same_window(ctx, k, layer.stride, d)
            pad_text = "same"
        else:
            padding = (0, 0) if layer.padding == "valid" else layer.padding
            oh, ow = window(ctx, k, layer.stride, padding, d, accepted=layer.accept_floor)
            pad_text = f"p{hw(padding)}"
        cin = c // g
        out = layer.out * oh * ow
        detail = f"{k[0]}x{k[1]} s{hw(layer.stride)} {pad_text}"
        detail += "".join(
            [
                f" d{hw(d)}" if d != (1, 1) else "",
                f" g{g}" if g != 1 else "",
                "" if layer.bias else " nobias",
                f" +{layer.activation}" if layer.activation else "",
            ]
        )
        return Out(
            shape=(layer.out, oh, ow),
            detail=detail,
            weights=layer.out * cin * k[0] * k[1],
            biases=layer.out if layer.bias else 0,
            macs=out * cin * k[0] * k[1],
            activations=fused_values(out, layer.activation),
        )

    def keeps(self, layer: Conv2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # the weight always requires grad, so the input is kept even when it does not
        output, extra = fused_keeps(layer.activation, out_numel(row, batch) * dtype_bytes)
        c, h, w = row.input_shape or (0, 0, 0)
        if layer.padding == "same" and layer.stride != (1, 1):
            # TensorFlow's 'same': the input padded first (a copy where it needs padding), and that copy kept
            left, right, top, bottom = same_pads((c, h, w), layer.kernel, layer.stride, layer.dilation)
            padded = left + right + top + bottom > 0
            extra += batch * c * (h + top + bottom) * (w + left + right) * dtype_bytes if padded else 0
            return Keeps(input=not padded, output=output, extra=extra)
        odd = _odd_same_padding(layer)
        if any(odd):
            # 'same' with an odd total padding: PyTorch pads a copy by one on the right/bottom and keeps that
            extra += batch * c * (h + odd[0]) * (w + odd[1]) * dtype_bytes
        return Keeps(input=not any(odd), output=output, extra=extra)

    def torch_module(self, layer: Conv2d, shape: Shape) -> nn.Module:
        from torch import nn

        from ..torch_backend import PaddedSame

        tf_same = layer.padding == "same" and layer.stride != (1, 1)  # PyTorch refuses 'same' when strided
        conv: nn.Module = nn.Conv2d(
            layer.in_ or shape[0],
            layer.out,
            layer.kernel,
            stride=layer.stride,
            padding=(0, 0) if tf_same else layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=layer.bias,
        )
        if tf_same:
            conv = PaddedSame(conv, same_pads(shape, layer.kernel, layer.stride, layer.dilation), 0.0)
        return fused_module(conv, layer.activation, "conv")

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        from ..torch_backend import PaddedSame

        if exactly(module, PaddedSame) and module.value == 0.0:
            inner = cast("nn.Module", module.inner)
            found = self.from_torch(inner) if exactly(inner, nn.Conv2d) and inner.padding == (0, 0) else None
            return None if found is None else {**found, "padding": "same"}
        if not exactly(module, nn.Conv2d) or module.padding_mode != "zeros":
            return None
        return entry(
            "conv2d",
            out=module.out_channels,
            kernel=module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
        )

    def peer_terms(self, layer: Conv2d, row: Row, batch: int) -> PeerTerms:
        return merge(bias_terms(row, batch), fused_terms(layer.activation, row, batch))

    def size_step(self, layer: Conv2d, axis: int) -> SizeStep:
        if layer.padding == "same":
            return Keep() if layer.stride[axis] == 1 else Same(layer.stride[axis])
        padding = (0, 0) if layer.padding == "valid" else layer.padding
        return Slide(layer.kernel[axis], layer.stride[axis], padding[axis], layer.dilation[axis])


def bias_terms(row: Row, batch: int) -> PeerTerms:
    """A conv's or linear layer's bias, added to every output value: torchinfo and ptflops count it."""
    positions = out_numel(row, batch) if row.biases else 0
    return terms(torchinfo={"bias": positions}, ptflops={"bias": positions})


KINDS = (Conv2dKind(),)
