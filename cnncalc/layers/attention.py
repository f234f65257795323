"""Attention that gates channels: ``eca`` (efficient channel attention, ECA-Net: a 1-D convolution across the pooled
channels, then a sigmoid, scales the input)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, StrictBool

from ..fields import Layer, Pos
from ..report import Row, Shape
from .base import Ctx, Device, Keep, Keeps, Kind, Out, PeerTerms, SizeStep, entry, exactly, terms

if TYPE_CHECKING:
    from torch import nn


class ECA(Layer):
    """``x * sigmoid(conv1d(mean(x)))``: the channels' means, a 1-D convolution across them (one filter of ``kernel``
    taps, zero-padded to keep C), a sigmoid, and the input scaled by it (ECA-Net, timm's ``EcaModule``)."""

    kind: Literal["eca"]
    kernel: Pos = Field(description="Taps of the convolution across the channels (odd keeps C).")
    bias: StrictBool = False


class ECAKind(Kind[ECA]):
    model = ECA
    prefix = "eca"
    moves_data = True
    input = "planar"
    fields_doc = (
        "`kernel` (odd), `bias` (false); the input scaled by a sigmoid of a 1-D conv across its pooled channels"
    )
    pytorch_doc = "timm's `EcaModule`: `conv` an `nn.Conv1d(1, 1, kernel)`"

    def rule(self, ctx: Ctx, layer: ECA) -> Out:
        c, h, w = ctx.spatial()
        if layer.kernel % 2 == 0:
            ctx.error(f"kernel {layer.kernel} is even: padded by (kernel - 1) / 2, it would not keep the {c} channels")
        ctx.rf.see_all()  # every channel's mean reads the whole plane
        # its output, the product (the means, the convolution and the sigmoid, C each, are freed within the row)
        return Out(
            shape=(c, h, w),
            detail=f"k{layer.kernel}" + ("" if not layer.bias else " bias"),
            weights=layer.kernel,
            biases=1 if layer.bias else 0,
            macs=c * layer.kernel,
            activations=c * h * w,
        )

    def keeps(self, layer: ECA, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # the convolution keeps the means it reads, the sigmoid its result (which the product keeps too, as the
        # factor of the input's gradient), and the product the input (the gate's gradient)
        c = row.output_shape[0]
        return Keeps(input=True, extra=2 * batch * c * dtype_bytes)

    def torch_module(self, layer: ECA, shape: Shape) -> nn.Module:
        from ..torch_backend import ECAModule

        return ECAModule(layer.kernel, layer.bias)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import ECAModule

        return self.resembles(module) if exactly(module, ECAModule) else None

    def resembles(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        # a 1-D conv named conv and a gate without parameters (a sigmoid of any class: running it says which)
        children = dict(module.named_children())
        conv, gate = children.get("conv"), children.get("gate")
        if set(children) != {"conv", "gate"} or conv is None or gate is None or not exactly(conv, nn.Conv1d):
            return None
        if any(True for _ in gate.parameters()) or any(True for _ in module.parameters(False)):
            return None
        assert isinstance(conv, nn.Conv1d)
        k = conv.kernel_size[0]
        settings = (conv.in_channels, conv.out_channels, conv.stride, conv.padding, conv.dilation, conv.groups)
        if settings != (1, 1, (1,), ((k - 1) // 2,), (1,), 1) or conv.padding_mode != "zeros":
            return None
        return entry(self.name, kernel=k, bias=conv.bias is not None)

    def peer_terms(self, layer: ECA, row: Row, batch: int) -> PeerTerms:
        # torchinfo and ptflops count the conv's bias, added once per channel
        positions = batch * row.output_shape[0] if layer.bias else 0
        return terms(torchinfo={"bias": positions}, ptflops={"bias": positions})

    def size_step(self, layer: ECA, axis: int) -> SizeStep:
        return Keep()


KINDS = (ECAKind(),)
