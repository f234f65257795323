"""Convolution: ``conv2d``, and ``std_conv2d`` (its weights standardized per filter first: BiT, NF-Nets)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

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
        if self.pads_first(layer):
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

    def pads_first(self, layer: Conv2d) -> bool:
        """Whether ``padding: same`` pads a copy of the input first (TensorFlow's, where PyTorch refuses 'same'
        when strided), not within the convolution."""
        return layer.padding == "same" and layer.stride != (1, 1)

    def torch_module(self, layer: Conv2d, shape: Shape) -> nn.Module:

        from ..torch_backend import PaddedSame

        tf_same = self.pads_first(layer)
        conv = self.conv(layer, layer.in_ or shape[0], (0, 0) if tf_same else layer.padding)
        if tf_same:  # the padding lends what it pads for (the conv, and its fused activation) the row's name
            pads = same_pads(shape, layer.kernel, layer.stride, layer.dilation)
            return PaddedSame(fused_module(conv, layer.activation, "conv"), pads, 0.0)
        return fused_module(conv, layer.activation, "conv")

    def conv(self, layer: Conv2d, channels: int, padding: Any) -> nn.Module:
        """The convolution itself, of ``channels`` inputs, padded by ``padding``."""
        from torch import nn

        kwargs = dict(stride=layer.stride, padding=padding, dilation=layer.dilation, groups=layer.groups)
        return nn.Conv2d(channels, layer.out, layer.kernel, **kwargs, bias=layer.bias)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import PaddedSame

        if exactly(module, PaddedSame) and module.value == 0.0:
            inner = cast("nn.Module", module.inner)
            found = self.read(inner) if getattr(inner, "padding", None) == (0, 0) else None
            return None if found is None else {**found, "padding": "same"}
        return self.read(module)

    def read(self, module: nn.Module) -> dict[str, Any] | None:
        """The entry of the convolution ``conv`` builds, or None."""
        from torch import nn

        if not exactly(module, nn.Conv2d) or module.padding_mode != "zeros":
            return None
        return _conv_entry("conv2d", module)

    def peer_terms(self, layer: Conv2d, row: Row, batch: int) -> PeerTerms:
        return merge(bias_terms(row, batch), fused_terms(layer.activation, row, batch))

    def size_step(self, layer: Conv2d, axis: int) -> SizeStep:
        if layer.padding == "same":
            return Keep() if layer.stride[axis] == 1 else Same(layer.stride[axis])
        padding = (0, 0) if layer.padding == "valid" else layer.padding
        return Slide(layer.kernel[axis], layer.stride[axis], padding[axis], layer.dilation[axis])


def _conv_entry(kind: str, module: Any) -> dict[str, Any]:
    """An nn.Conv2d's settings (of any subclass) as an entry's fields."""
    return entry(
        kind,
        out=module.out_channels,
        kernel=module.kernel_size,
        stride=module.stride,
        padding=module.padding,
        dilation=module.dilation,
        groups=module.groups,
        bias=module.bias is not None,
    )


class StdConv2d(Conv2d):
    """A conv2d whose filters are standardized first, each to mean 0 and variance 1 over its inputs and taps
    (weight standardization, timm's ``StdConv2d``); with ``gain``, each then scaled by a learnable gain times
    ``gamma`` / sqrt(fan-in) (NF-Nets' scaled weight standardization, timm's ``ScaledStdConv2d``)."""

    kind: Literal["std_conv2d"]  # type: ignore[assignment]
    eps: Annotated[float, Field(gt=0)] = Field(1e-6, description="Added to each filter's variance.")
    gain: StrictBool = Field(False, description="A learnable gain per filter (NF-Nets), counted with the weights.")
    gamma: Annotated[float, Field(gt=0)] = Field(
        1.0, description="With gain: the filters are scaled by gain x gamma / sqrt(fan-in) (NF-Nets' activation gain)."
    )


class StdConv2dKind(Conv2dKind):
    model = StdConv2d
    fields_doc = (
        "`conv2d`'s, and `eps` (1e-6), `gain` (false: NF-Nets' learnable gain per filter, with the weights),"
        " `gamma` (1.0, with gain); each filter standardized to mean 0, variance 1 before the convolution"
    )
    pytorch_doc = "timm's `StdConv2d`, `ScaledStdConv2d` (`gain`)"

    def rule(self, ctx: Ctx, layer: Conv2d) -> Out:
        assert isinstance(layer, StdConv2d)
        if layer.gamma != 1.0 and not layer.gain:
            ctx.error(f"gamma {layer.gamma} scales the gain: it needs gain: true", "gamma")
        out = super().rule(ctx, layer)
        fan_in = ctx.shape[0] // layer.groups * layer.kernel[0] * layer.kernel[1]
        if fan_in == 1:
            ctx.error(
                f"each filter has one weight ({ctx.shape[0] // layer.groups} input channel(s) per group x"
                f" {layer.kernel[0]}x{layer.kernel[1]}): it cannot be standardized (PyTorch's batch norm needs more"
                " than one value); use conv2d"
            )
        # the standardization runs on the weights, not the activations: torch counts no FLOPs for it
        out.weights += layer.out if layer.gain else 0
        out.detail = "ws " + out.detail + (f" gain x{layer.gamma:g}" if layer.gain else "")
        return out

    def keeps(self, layer: Conv2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        assert isinstance(layer, StdConv2d)
        keeps = super().keeps(layer, row, device, dtype_bytes, batch, grad_in)
        # the standardized filters (the conv's weight), each filter's mean and inverse std (float32 on CUDA), and
        # gain x scale (the norm's weight): as many values as the row's weights, once, whatever the batch
        stat = 4 if device == "cuda" else dtype_bytes
        extra = keeps.extra + row.weights * dtype_bytes + 2 * layer.out * stat
        return Keeps(input=keeps.input, output=keeps.output, extra=extra)

    def pads_first(self, layer: Conv2d) -> bool:
        return layer.padding == "same"  # at any stride, as timm's StdConv2dSame pads

    def conv(self, layer: Conv2d, channels: int, padding: Any) -> nn.Module:
        from ..torch_backend import StdConv2dModule

        assert isinstance(layer, StdConv2d)
        kwargs = dict(stride=layer.stride, padding=padding, dilation=layer.dilation, groups=layer.groups)
        return StdConv2dModule(
            channels,
            layer.out,
            layer.kernel,
            **kwargs,
            bias=layer.bias,
            eps=layer.eps,
            gain=layer.gain,
            gamma=layer.gamma,
        )

    def read(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        from ..torch_backend import StdConv2dModule

        if not exactly(module, StdConv2dModule):
            return None
        assert isinstance(module, nn.Conv2d)
        return self._entry(
            module, float(cast(float, module.eps)), module.gain is not None, float(cast(float, module.gamma))
        )

    def resembles(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        # a subclass of nn.Conv2d with an eps and no children (timm's StdConv2d), and a gain of one per filter with
        # its scale (ScaledStdConv2d); running it says whether it computes so
        if not isinstance(module, nn.Conv2d) or exactly(module, nn.Conv2d) or any(True for _ in module.children()):
            return None
        eps = getattr(module, "eps", None)
        if not isinstance(eps, float) or eps <= 0 or module.padding_mode != "zeros":
            return None
        if isinstance(module.padding, str):
            return None
        # timm's StdConv2dSame pads the input first as TensorFlow's 'same', from its size
        same = {"padding": "same"} if getattr(module, "same_pad", False) is True and module.padding == (0, 0) else {}
        gain = getattr(module, "gain", None)
        names = {n for n, _ in module.named_parameters()}
        if gain is None:
            return {**self._entry(module, eps, False, 1.0), **same} if names <= {"weight", "bias"} else None
        scale = getattr(module, "scale", None)
        if not isinstance(gain, nn.Parameter) or tuple(gain.shape) != (module.out_channels, 1, 1, 1):
            return None
        if not isinstance(scale, float) or scale <= 0 or names - {"weight", "bias", "gain"}:
            return None
        return {**self._entry(module, eps, True, gamma_of(scale, module.weight[0].numel())), **same}

    def peer_terms(self, layer: Conv2d, row: Row, batch: int) -> PeerTerms:
        # thop and ptflops hook modules by their exact class: a subclass of nn.Conv2d counts nothing there (its
        # fused activation, a module of its own, still counts); torchinfo counts it as a conv
        conv = merge(bias_terms(row, batch), fused_terms(layer.activation, row, batch))
        thop = {**conv.get("thop", {}), "unhooked": -row.macs}
        ptflops = {**conv.get("ptflops", {}), "unhooked": -row.macs - conv.get("ptflops", {}).get("bias", 0)}
        return {**conv, "thop": thop, "ptflops": ptflops}

    def _entry(self, module: nn.Module, eps: float, gain: bool, gamma: float) -> dict[str, Any]:
        found = _conv_entry(self.name, module)
        return {**found, "eps": eps, **({"gain": True, "gamma": gamma} if gain else {})}


def gamma_of(scale: float, fan_in: int) -> float:
    """The gamma that gives ``scale`` = gamma x fan_in ** -0.5 exactly, as the module computes it (the nearest
    float, or one a few steps from it where dividing does not undo the product)."""
    factor = float(fan_in**-0.5)
    gamma = scale / factor
    for _ in range(8):
        if gamma * factor == scale:
            break
        gamma = math.nextafter(gamma, math.inf if gamma * factor < scale else -math.inf)
    return gamma


def bias_terms(row: Row, batch: int) -> PeerTerms:
    """A conv's or linear layer's bias, added to every output value: torchinfo and ptflops count it."""
    positions = out_numel(row, batch) if row.biases else 0
    return terms(torchinfo={"bias": positions}, ptflops={"bias": positions})


KINDS = (Conv2dKind(), StdConv2dKind())
