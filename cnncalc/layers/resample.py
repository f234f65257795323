"""Resampling: ``upsample``, ``convtranspose2d``, ``pixel_shuffle``, ``pixel_unshuffle`` (YOLOv2's reorg) and
``crop`` (U-Net's copy and crop)."""

from __future__ import annotations

from fractions import Fraction
from math import prod
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, StrictBool, StrictInt

from ..fields import Activation, Layer, Pair, Pair0, Pos
from ..report import Row, Shape
from .base import (
    NO_TERMS,
    Ctx,
    Device,
    Divide,
    Fixed,
    Keeps,
    Kind,
    Out,
    PeerTerms,
    Scale,
    SizeStep,
    Transposed,
    entry,
    exactly,
    fmt,
    fused_values,
    hw,
    merge,
    out_numel,
    terms,
)
from .base import (
    Crop as CropStep,
)
from .conv import bias_terms
from .fused import fused_keeps, fused_module, fused_terms

if TYPE_CHECKING:
    from torch import nn


# --- upsample ----------------------------------------------------------------------------


class Upsample(Layer):
    """nn.Upsample: by a whole ``scale`` or to a ``size`` (exactly one), nearest or bilinear."""

    kind: Literal["upsample"]
    scale: Pair | None = Field(None, description="The factor per axis (a whole number); or give size.")
    size: Pair | None = Field(None, description="The output height and width; or give scale.")
    mode: Literal["nearest", "bilinear"] = "nearest"
    align_corners: StrictBool | None = Field(None, description="Only with bilinear: PyTorch's align_corners.")


class UpsampleKind(Kind[Upsample]):
    model = Upsample
    prefix = "up"
    moves_data = True
    input = "planar"
    fields_doc = (
        "`scale` (a whole factor) or `size` (exactly one), `mode` (nearest or bilinear), `align_corners` (none;"
        " bilinear only); 0 MACs (as FlopCounterMode)"
    )
    pytorch_doc = "`nn.Upsample`"

    def rule(self, ctx: Ctx, layer: Upsample) -> Out:
        c, h, w = ctx.spatial()
        if (layer.scale is None) == (layer.size is None):
            ctx.fail("give exactly one of scale (a factor) and size (the output height and width)", "scale")
        if layer.align_corners is not None and layer.mode != "bilinear":
            ctx.fail(f"align_corners is only for mode bilinear, not {layer.mode} (PyTorch refuses it)", "align_corners")
        if layer.scale is not None:
            oh, ow = h * layer.scale[0], w * layer.scale[1]
            ratios = (Fraction(1, layer.scale[0]), Fraction(1, layer.scale[1]))
            what = f"x{hw(layer.scale)}"
        else:
            assert layer.size is not None
            oh, ow = layer.size
            ratios = (Fraction(h, oh), Fraction(w, ow))
            what = f"to {fmt(layer.size)}"
        bilinear = layer.mode == "bilinear"
        if bilinear and layer.align_corners:
            # PyTorch's source index: q (in - 1) / (out - 1), corners on corners
            ratios = (
                Fraction(h - 1, oh - 1) if oh > 1 else Fraction(0),
                Fraction(w - 1, ow - 1) if ow > 1 else Fraction(0),
            )
            offsets = (Fraction(0), Fraction(0))
        elif bilinear:  # (q + 1/2) in/out - 1/2, pixel centres on pixel centres
            offsets = (ratios[0] / 2 - Fraction(1, 2), ratios[1] / 2 - Fraction(1, 2))
        else:  # floor(q in/out)
            offsets = (Fraction(0), Fraction(0))
        ctx.rf.resample(ratios, offsets, bilinear)
        detail = f"{layer.mode} {what}" + (" align_corners" if layer.align_corners else "")
        return Out(shape=(c, oh, ow), detail=detail, activations=c * oh * ow)

    def keeps(self, layer: Upsample, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps()  # its gradient needs only the sizes and scales (derivatives.yaml; measured)

    def torch_module(self, layer: Upsample, shape: Shape) -> nn.Module:
        from torch import nn

        scale = None if layer.scale is None else (float(layer.scale[0]), float(layer.scale[1]))
        return nn.Upsample(size=layer.size, scale_factor=scale, mode=layer.mode, align_corners=layer.align_corners)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if not exactly(module, nn.Upsample) or module.mode not in ("nearest", "bilinear"):
            return None
        if module.recompute_scale_factor is not None:
            return None
        fields: dict[str, Any] = {"mode": module.mode, "align_corners": module.align_corners}
        if module.size is not None:
            fields["size"] = module.size
        else:
            scale = module.scale_factor
            scales = scale if isinstance(scale, tuple) else (scale, scale)
            if not all(float(s).is_integer() for s in scales):
                return None  # the kind takes whole factors only
            fields["scale"] = [int(s) for s in scales]
        return entry(self.name, **fields)

    def peer_terms(self, layer: Upsample, row: Row, batch: int) -> PeerTerms:
        # ptflops: its Upsample hook and its F.interpolate hook, an output value each; thop: 1 (nearest) or
        # 11 (bilinear) per output value
        out = out_numel(row, batch)
        return terms(ptflops={"resample": 2 * out}, thop={"resample": (11 if layer.mode == "bilinear" else 1) * out})

    def size_step(self, layer: Upsample, axis: int) -> SizeStep:
        if layer.size is not None:
            return Fixed(layer.size[axis])
        return Scale(layer.scale[axis] if layer.scale is not None else 1)


# --- convtranspose2d ------------------------------------------------------------------------


class ConvTranspose2d(Layer):
    """nn.ConvTranspose2d (an up-convolution), optionally followed by a fused activation."""

    kind: Literal["convtranspose2d"]
    out: Pos = Field(description="Output channels.")
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair0 = (0, 0)
    output_padding: Pair0 = Field((0, 0), description="Rows and columns added at the bottom/right of the output.")
    dilation: Pair = (1, 1)
    groups: Pos = 1
    bias: StrictBool = True
    in_: Pos | None = Field(None, alias="in", description="Input channels, checked against the input.")
    activation: Activation | None = None


def transposed_size(n: int, kernel: int, stride: int, padding: int, dilation: int, output_padding: int) -> int:
    """``(n - 1)S - 2P + D(F - 1) + output_padding + 1``, PyTorch's output size of a transposed conv."""
    return (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


class ConvTranspose2dKind(Kind[ConvTranspose2d]):
    model = ConvTranspose2d
    prefix = "upconv"
    moves_data = True
    input = "planar"
    fields_doc = (
        "`out`, `kernel`, `stride` (1), `padding` (0), `output_padding` (0), `dilation` (1), `groups` (1),"
        " `bias` (true), `in` (checked against the input if given), `activation` (none)"
    )
    pytorch_doc = "`nn.ConvTranspose2d`"

    def rule(self, ctx: Ctx, layer: ConvTranspose2d) -> Out:
        c, h, w = ctx.spatial()
        if layer.in_ is not None and layer.in_ != c:
            ctx.error(f"in: {layer.in_}, but the input has {c} channels ({fmt(ctx.shape)})", "in")
        g = layer.groups
        if c % g:
            ctx.error(f"groups={g} does not divide the {c} input channels", "groups")
        if layer.out % g:
            ctx.error(f"groups={g} does not divide the {layer.out} output channels (out)", "groups")
        k, s, p, d, op = layer.kernel, layer.stride, layer.padding, layer.dilation, layer.output_padding
        for axis, a in (("height", 0), ("width", 1)):
            if op[a] >= max(s[a], d[a]):
                ctx.fail(
                    f"output_padding {op[a]} ({axis}) must be smaller than the stride {s[a]} or the dilation {d[a]}"
                    " (PyTorch refuses it)",
                    "output_padding",
                )
        oh, ow = (transposed_size(n, k[a], s[a], p[a], d[a], op[a]) for a, n in ((0, h), (1, w)))
        for axis, o, n, a in (("height", oh, h, 0), ("width", ow, w, 1)):
            if o <= 0:
                ctx.fail(
                    f"output {axis} would be {o}: (input {n} - 1) x stride {s[a]} - 2 x padding {p[a]}"
                    f" + dilation {d[a]} x (kernel {k[a]} - 1) + output_padding {op[a]} + 1; lower the padding",
                    "padding",
                )
        ctx.rf.transposed(k, s, p, d)
        cout = layer.out // g
        detail = f"{k[0]}x{k[1]} s{hw(s)} p{hw(p)}" + "".join(
            [
                f" op{hw(op)}" if op != (0, 0) else "",
                f" d{hw(d)}" if d != (1, 1) else "",
                f" g{g}" if g != 1 else "",
                "" if layer.bias else " nobias",
                f" +{layer.activation}" if layer.activation else "",
            ]
        )
        return Out(
            shape=(layer.out, oh, ow),
            detail=detail,
            weights=c * cout * k[0] * k[1],
            # each input value meets each of its group's filters once (FlopCounterMode's count)
            macs=c * cout * k[0] * k[1] * h * w,
            biases=layer.out if layer.bias else 0,
            activations=fused_values(layer.out * oh * ow, layer.activation),
        )

    def keeps(
        self, layer: ConvTranspose2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        # the weight always requires grad, so the input is kept even when it does not
        output, extra = fused_keeps(layer.activation, out_numel(row, batch) * dtype_bytes)
        return Keeps(input=True, output=output, extra=extra)

    def torch_module(self, layer: ConvTranspose2d, shape: Shape) -> nn.Module:
        from torch import nn

        conv = nn.ConvTranspose2d(
            layer.in_ or shape[0],
            layer.out,
            layer.kernel,
            stride=layer.stride,
            padding=layer.padding,
            output_padding=layer.output_padding,
            groups=layer.groups,
            bias=layer.bias,
            dilation=layer.dilation,
        )
        return fused_module(conv, layer.activation, "conv")

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if not exactly(module, nn.ConvTranspose2d) or module.padding_mode != "zeros":
            return None
        return entry(
            self.name,
            out=module.out_channels,
            kernel=module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            output_padding=module.output_padding,
            dilation=module.dilation,
            groups=module.groups,
            bias=module.bias is not None,
        )

    def peer_terms(self, layer: ConvTranspose2d, row: Row, batch: int) -> PeerTerms:
        # torchinfo (each weight times the output positions) and thop (each output value times its group's
        # inputs and the kernel) count by output positions, cnncalc (as ptflops) by input ones
        c, h, w = row.input_shape or (0, 0, 0)
        _, oh, ow = row.output_shape
        per_position = c * (layer.out // layer.groups) * layer.kernel[0] * layer.kernel[1] * batch
        shift = per_position * (oh * ow - h * w)
        return merge(
            bias_terms(row, batch),
            terms(torchinfo={"transposed": shift}, thop={"transposed": shift}),
            fused_terms(layer.activation, row, batch),
        )

    def size_step(self, layer: ConvTranspose2d, axis: int) -> SizeStep:
        return Transposed(
            layer.kernel[axis],
            layer.stride[axis],
            layer.padding[axis],
            layer.dilation[axis],
            layer.output_padding[axis],
        )


# --- pixel_shuffle, pixel_unshuffle ----------------------------------------------------------------


class PixelShuffle(Layer):
    """Each group of factor^2 channels becomes a factor x factor patch: C·r² x H x W to C x rH x rW."""

    kind: Literal["pixel_shuffle"]
    factor: StrictInt = Field(2, ge=1, le=1024, description="r: the patch side; r² must divide the channels.")


class PixelShuffleKind(Kind[PixelShuffle]):
    model = PixelShuffle
    prefix = "shuffle"
    moves_data = True
    input = "planar"
    fields_doc = "`factor` (2); C·r² x H x W to C x rH x rW, r² dividing the channels (depth-to-space)"
    pytorch_doc = "`nn.PixelShuffle`"

    def rule(self, ctx: Ctx, layer: PixelShuffle) -> Out:
        c, h, w = ctx.spatial()
        r = layer.factor
        if c % (r * r):
            ctx.fail(
                f"factor {r}: its square {r * r} does not divide the {c} channels of {fmt(ctx.shape)}"
                " (PyTorch refuses it)",
                "factor",
            )
        ctx.rf.resample((Fraction(1, r), Fraction(1, r)), (Fraction(0), Fraction(0)), False)
        shape = (c // (r * r), h * r, w * r)
        return Out(shape=shape, detail=f"depth to {r}x{r}", activations=prod(shape))

    def keeps(
        self, layer: PixelShuffle, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        return Keeps()  # its gradient is a pixel unshuffle: nothing kept

    def torch_module(self, layer: PixelShuffle, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.PixelShuffle(layer.factor)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return entry(self.name, factor=module.upscale_factor) if exactly(module, nn.PixelShuffle) else None

    def peer_terms(self, layer: PixelShuffle, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: PixelShuffle, axis: int) -> SizeStep:
        return Scale(layer.factor)


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

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return entry(self.name, factor=module.downscale_factor) if exactly(module, nn.PixelUnshuffle) else None

    def peer_terms(self, layer: PixelUnshuffle, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: PixelUnshuffle, axis: int) -> SizeStep:
        return Divide(layer.factor)


class SpaceToDepth(PixelUnshuffle):
    """TResNet's stem: each factor x factor patch becomes factor^2 x C channels, ordered by the patch position
    first (timm's ``SpaceToDepth``; ``pixel_unshuffle`` orders by the channel first)."""

    kind: Literal["space_to_depth"]  # type: ignore[assignment]
    factor: StrictInt = Field(4, ge=1, le=1024, description="r: the patch side, which must divide H and W.")


def space_to_depth_copies(c: int, h: int, w: int, r: int) -> bool:
    """Whether the permute of (C, H/r, r, W/r, r) to (r, r, C, H/r, W/r) needs a copy to be contiguous: unless its
    dimensions of more than one value keep their order (a factor of 1, say), ``contiguous()`` copies.

    >>> space_to_depth_copies(3, 8, 8, 4), space_to_depth_copies(3, 8, 8, 1), space_to_depth_copies(1, 4, 4, 4)
    (True, False, False)
    """
    sizes = (c, h // r, r, w // r, r)
    order = [i for i in (2, 4, 0, 1, 3) if sizes[i] > 1]
    return order != sorted(order)


class SpaceToDepthKind(PixelUnshuffleKind):
    """``pixel_unshuffle``'s shape, field and facets; the channels in another order, and a view where its permute
    is contiguous already."""

    model = SpaceToDepth
    prefix = "s2d"
    fields_doc = (
        "`factor` (4); C x H x W to r²·C x H/r x W/r, the channels ordered by patch position, then channel"
        " (TResNet's stem; a copy)"
    )
    pytorch_doc = "timm's `SpaceToDepth` (a view, a permute, a contiguous copy)"

    def rule(self, ctx: Ctx, layer: PixelUnshuffle) -> Out:
        c, h, w = ctx.spatial()
        out = super().rule(ctx, layer)
        copies = space_to_depth_copies(c, h, w, layer.factor)
        out.detail += ", patch-major" + ("" if copies else " (a view)")
        out.activations = out.activations if copies else 0
        return out

    def keeps(
        self, layer: PixelUnshuffle, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        c, h, w = row.input_shape or (0, 0, 0)
        return Keeps(new_output=space_to_depth_copies(c, h, w, layer.factor))  # nothing kept; a view is no tensor

    def torch_module(self, layer: PixelUnshuffle, shape: Shape) -> nn.Module:
        from ..torch_backend import SpaceToDepthModule

        return SpaceToDepthModule(layer.factor)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import SpaceToDepthModule

        return self.resembles(module) if exactly(module, SpaceToDepthModule) else None

    def resembles(self, module: nn.Module) -> dict[str, Any] | None:
        # no parameters, buffers or children, and a block size ``bs``: running it says whether it computes so
        bs = getattr(module, "bs", None)
        if not isinstance(bs, int) or bs < 1 or any(True for _ in module.children()):
            return None
        if any(True for _ in module.parameters()) or any(True for _ in module.buffers()):
            return None
        return entry(self.name, factor=bs)


# --- crop ------------------------------------------------------------------------------------


class Crop(Layer):
    """A centred crop, to a ``size`` or by a ``margin`` at each side (exactly one): U-Net's copy and crop."""

    kind: Literal["crop"]
    size: Pair | None = Field(None, description="The output height and width; or give margin.")
    margin: Pair0 | None = Field(None, description="Rows (columns) removed at each side; or give size.")


def crop_box(layer: Crop, h: int, w: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the crop of an H x W plane; an odd remainder drops its extra row at the
    bottom (column at the right)."""
    if layer.size is not None:
        oh, ow = layer.size
        return (h - oh) // 2, (w - ow) // 2, oh, ow
    top, left = layer.margin or (0, 0)
    return top, left, h - 2 * top, w - 2 * left


class CropKind(Kind[Crop]):
    model = Crop
    prefix = "crop"
    moves_data = False  # a view
    input = "planar"
    fields_doc = (
        "`size` or `margin` (per side), exactly one; a centred crop, the odd row/column dropped at the"
        " bottom/right (a view)"
    )
    pytorch_doc = "a slice `x[..., t:t+h, l:l+w]`"

    def rule(self, ctx: Ctx, layer: Crop) -> Out:
        c, h, w = ctx.spatial()
        if (layer.size is None) == (layer.margin is None):
            ctx.fail("give exactly one of size (the output height and width) and margin (removed at each side)", "size")
        _, _, oh, ow = crop_box(layer, h, w)
        key = "size" if layer.size is not None else "margin"
        for axis, o, n in (("height", oh, h), ("width", ow, w)):
            if o > n:
                ctx.fail(f"{axis} {o} is larger than the input's {n} ({fmt(ctx.shape)}): a crop cannot grow", key)
            if o < 1:
                ctx.fail(f"a margin of {(n - o) // 2} at each side leaves no {axis} of the input's {n}", key)
        # the same pixels: each position's field is what it was, only the positions start further on
        top, left, _, _ = crop_box(layer, h, w)
        ctx.rf.shift((top, left))
        what = f"to {oh}x{ow}" if layer.size is not None else f"by {hw(layer.margin or (0, 0))}"
        return Out(shape=(c, oh, ow), detail=f"{what} (view)")

    def keeps(self, layer: Crop, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(new_output=False)

    def torch_module(self, layer: Crop, shape: Shape) -> nn.Module:
        from ..torch_backend import Crop as CropModule

        if (layer.size is None) == (layer.margin is None):
            raise ValueError("a crop takes exactly one of size and margin")
        return CropModule(*crop_box(layer, shape[1], shape[2]))

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import Crop as CropModule

        # cnncalc's own module (a slice in a model is a function, not a module): its box, as a centred size
        if not exactly(module, CropModule):
            return None
        return entry(self.name, size=[module.height, module.width])

    def peer_terms(self, layer: Crop, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: Crop, axis: int) -> SizeStep:
        if layer.size is not None:
            return CropStep(size=layer.size[axis])
        return CropStep(margin=2 * (layer.margin or (0, 0))[axis])


KINDS = (
    UpsampleKind(),
    ConvTranspose2dKind(),
    PixelShuffleKind(),
    PixelUnshuffleKind(),
    SpaceToDepthKind(),
    CropKind(),
)
