"""Pooling: ``maxpool2d``, ``avgpool2d``, ``adaptive_avgpool2d``, ``adaptive_maxpool2d``, ``global_avgpool2d``."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import Field, StrictBool, StrictInt

from ..fields import ACCEPT_FLOOR_DESCRIPTION, Layer, Pair, Pair0, PoolPadding
from ..geometry import effective_kernel
from ..report import Row, Shape
from .base import (
    Ctx,
    Device,
    Fixed,
    Keeps,
    Kind,
    L,
    Out,
    PeerTerms,
    Same,
    SizeStep,
    Slide,
    entry,
    exactly,
    hw,
    in_numel,
    merge,
    out_numel,
    same_pads,
    same_window,
    terms,
    window,
)

if TYPE_CHECKING:
    from torch import nn

#: Bytes of one int64 index, whatever the dtype (max pooling's argmax).
INDEX_BYTES = 8


class MaxPool2d(Layer):
    kind: Literal["maxpool2d"]
    kernel: Pair
    stride: Pair | None = Field(None, description="Defaults to the kernel size, as in PyTorch.")
    padding: PoolPadding = Field(
        (0, 0),
        description="A number, a pair, or 'same': TensorFlow's, ceil(W / S), padded with -inf as the size needs.",
    )
    dilation: Pair = (1, 1)
    ceil_mode: StrictBool = False
    accept_floor: StrictBool = Field(False, description=ACCEPT_FLOOR_DESCRIPTION)


class AvgPool2d(Layer):
    kind: Literal["avgpool2d"]
    kernel: Pair
    stride: Pair | None = Field(None, description="Defaults to the kernel size, as in PyTorch.")
    padding: Pair0 = (0, 0)
    ceil_mode: StrictBool = False
    count_include_pad: StrictBool = True
    accept_floor: StrictBool = Field(False, description=ACCEPT_FLOOR_DESCRIPTION)


class AdaptiveAvgPool2d(Layer):
    kind: Literal["adaptive_avgpool2d"]
    output: Pair


class AdaptiveMaxPool2d(Layer):
    kind: Literal["adaptive_maxpool2d"]
    output: Pair


class BlurPool2d(Layer):
    """Anti-aliased downsampling (Zhang, "Making convolutional networks shift-invariant again"; timm's
    ``BlurPool2d``): the input reflect-padded, then each channel convolved with a fixed binomial filter at a
    stride."""

    kind: Literal["blur_pool2d"]
    kernel: StrictInt = Field(3, ge=1, le=16, description="The binomial filter's side (3: [1, 2, 1] / 4 each way).")
    stride: StrictInt = Field(2, ge=1, le=16)


class GlobalAvgPool2d(Layer):
    """Average over the whole plane: nn.AdaptiveAvgPool2d(1), output C x 1 x 1."""

    kind: Literal["global_avgpool2d"]


def _ptflops(row: Row, batch: int) -> PeerTerms:
    # the pooling modules call F.*_pool*, which ptflops patches and counts again: 2 per input value
    return terms(ptflops={"pool": 2 * in_numel(row, batch)})


class _Pool(Kind[L]):
    prefix = "pool"
    moves_data = True
    input = "planar"

    def rule(self, ctx: Ctx, layer: MaxPool2d | AvgPool2d) -> Out:
        c, _, _ = ctx.spatial()
        stride = layer.stride or layer.kernel
        dilation = layer.dilation if isinstance(layer, MaxPool2d) else (1, 1)
        if layer.padding == "same":
            if layer.ceil_mode:
                ctx.error("padding 'same' sets the output size (ceil(W / S)): leave ceil_mode out", "ceil_mode")
            oh, ow = same_window(ctx, layer.kernel, stride, dilation)
            detail = f"{layer.kernel[0]}x{layer.kernel[1]} s{hw(stride)} same" + (
                f" d{hw(dilation)}" if dilation != (1, 1) else ""
            )
            # its output (the input padded with -inf, where the size needs it, is freed within the row)
            return Out(shape=(c, oh, ow), detail=detail, activations=c * oh * ow)
        for k, p, d in zip(layer.kernel, layer.padding, dilation, strict=True):
            if p > k // 2 or p > effective_kernel(k, d) // 2:
                ctx.error(
                    f"padding {p} is more than half the kernel {k}"
                    f" (PyTorch allows at most {min(k, effective_kernel(k, d)) // 2})",
                    "padding",
                )
                break
        oh, ow = window(
            ctx,
            layer.kernel,
            stride,
            layer.padding,
            dilation,
            ceil_mode=layer.ceil_mode,
            pool=True,
            accepted=layer.accept_floor,
        )
        detail = f"{layer.kernel[0]}x{layer.kernel[1]} s{hw(stride)}"
        detail += "".join(
            [
                f" p{hw(layer.padding)}" if layer.padding != (0, 0) else "",
                f" d{hw(dilation)}" if dilation != (1, 1) else "",
                " ceil" if layer.ceil_mode else "",
            ]
        )
        return Out(shape=(c, oh, ow), detail=detail, activations=c * oh * ow)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        from ..torch_backend import PaddedSame

        if exactly(module, PaddedSame) and self.name == "maxpool2d" and module.value == float("-inf"):
            found = self.from_torch(cast("nn.Module", module.inner))
            plain = found is not None and found["padding"] in ([0, 0], 0) and not found["ceil_mode"]
            return {**found, "padding": "same"} if plain and found is not None else None
        if exactly(module, nn.MaxPool2d) and self.name == "maxpool2d" and not module.return_indices:
            fields = {"dilation": module.dilation}
        elif exactly(module, nn.AvgPool2d) and self.name == "avgpool2d" and module.divisor_override is None:
            fields = {"count_include_pad": module.count_include_pad}
        else:
            return None
        return entry(
            self.name,
            kernel=module.kernel_size,
            stride=module.stride,
            padding=module.padding,
            ceil_mode=module.ceil_mode,
            **fields,
        )

    def size_step(self, layer: MaxPool2d | AvgPool2d, axis: int) -> SizeStep:
        stride = layer.stride or layer.kernel
        if layer.padding == "same":
            return Same(stride[axis])
        dilation = layer.dilation[axis] if isinstance(layer, MaxPool2d) else 1
        return Slide(layer.kernel[axis], stride[axis], layer.padding[axis], dilation, layer.ceil_mode)


class MaxPool2dKind(_Pool[MaxPool2d]):
    model = MaxPool2d
    fields_doc = (
        "`kernel`, `stride` (= kernel), `padding` (0, a pair, or `same`: TensorFlow's), `dilation` (1), `ceil_mode`"
        " (false), `accept_floor` (false)"
    )
    pytorch_doc = "`nn.MaxPool2d`"

    def keeps(self, layer: MaxPool2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        indices = INDEX_BYTES * out_numel(row, batch) if grad_in else 0
        if layer.padding == "same" and grad_in:
            # the input padded with -inf first (a copy where it needs padding), and that copy kept
            c, h, w = row.input_shape or (0, 0, 0)
            left, right, top, bottom = same_pads((c, h, w), layer.kernel, layer.stride or layer.kernel, layer.dilation)
            if left + right + top + bottom:
                return Keeps(extra=indices + batch * c * (h + top + bottom) * (w + left + right) * dtype_bytes)
        return Keeps(input=grad_in, extra=indices)

    def torch_module(self, layer: MaxPool2d, shape: Shape) -> nn.Module:
        from torch import nn

        from ..torch_backend import PaddedSame

        if layer.padding == "same":
            stride = layer.stride or layer.kernel
            pool = nn.MaxPool2d(layer.kernel, stride, 0, dilation=layer.dilation)
            return PaddedSame(pool, same_pads(shape, layer.kernel, stride, layer.dilation), float("-inf"))
        return nn.MaxPool2d(
            layer.kernel, layer.stride, layer.padding, dilation=layer.dilation, ceil_mode=layer.ceil_mode
        )

    def peer_terms(self, layer: MaxPool2d, row: Row, batch: int) -> PeerTerms:
        if layer.padding == "same" and row.input_shape is not None:
            # TensorFlow's 'same': the pool runs on the padded copy, whose values ptflops counts
            c, h, w = row.input_shape
            left, right, top, bottom = same_pads((c, h, w), layer.kernel, layer.stride or layer.kernel, layer.dilation)
            return terms(ptflops={"pool": 2 * batch * c * (h + top + bottom) * (w + left + right)})
        return _ptflops(row, batch)


class AvgPool2dKind(_Pool[AvgPool2d]):
    model = AvgPool2d
    fields_doc = (
        "`kernel`, `stride` (= kernel), `padding` (0), `ceil_mode` (false), `count_include_pad` (true),"
        " `accept_floor` (false)"
    )
    pytorch_doc = "`nn.AvgPool2d`"

    def keeps(self, layer: AvgPool2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(input=grad_in)

    def torch_module(self, layer: AvgPool2d, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.AvgPool2d(
            layer.kernel,
            layer.stride,
            layer.padding,
            ceil_mode=layer.ceil_mode,
            count_include_pad=layer.count_include_pad,
        )

    def peer_terms(self, layer: AvgPool2d, row: Row, batch: int) -> PeerTerms:
        # thop: one add per output value
        return merge(_ptflops(row, batch), terms(thop={"pool": out_numel(row, batch)}))


def _adaptive_window(size: int, out: int) -> int:
    """The widest of PyTorch's adaptive windows ``[floor(i*In/Out), ceil((i+1)*In/Out))``.

    >>> _adaptive_window(13, 6), _adaptive_window(12, 6), _adaptive_window(3, 5)
    (3, 2, 2)
    """
    if size % out == 0:
        return size // out
    if out > 4096:  # past this, ceil(In/Out) + 1 bounds the windows without visiting them all
        return -(-size // out) + 1
    return max(-(-(i + 1) * size // out) - (i * size) // out for i in range(out))


def _adaptive(ctx: Ctx, output: tuple[int, int]) -> Out:
    c, h, w = ctx.spatial()
    if output == (1, 1):
        ctx.rf.see_all()
    else:
        # the widest window and the largest step between windows
        kernel = tuple(_adaptive_window(n, o) for n, o in zip((h, w), output, strict=True))
        step = tuple(-(-n // o) for n, o in zip((h, w), output, strict=True))
        ctx.rf.window((kernel[0], kernel[1]), (step[0], step[1]))
    return Out(shape=(c, *output), detail=f"-> {output[0]}x{output[1]}", activations=c * prod(output))


def _adaptive_thop(row: Row, batch: int) -> PeerTerms:
    """thop's adaptive average: (input / output size per axis, multiplied, + 1) per output value, in floats."""
    _, h, w = row.input_shape or (0, 0, 0)
    _, oh, ow = row.output_shape
    kernel = (h / oh) * (w / ow)
    return terms(thop={"pool": int((kernel + 1) * out_numel(row, batch))})


def _adaptive_entry(kind: str, module: nn.Module, cls: type) -> dict[str, Any] | None:
    """An adaptive pooling's entry; None for another class or a size kept as the input's (``None``)."""
    if not exactly(module, cls):
        return None
    output = module.output_size
    if output is None or (isinstance(output, tuple) and None in output):
        return None
    return entry(kind, output=output)


class AdaptiveAvgPool2dKind(Kind[AdaptiveAvgPool2d]):
    model = AdaptiveAvgPool2d
    prefix = "pool"
    moves_data = True
    input = "planar"
    fields_doc = "`output` (size or pair)"
    pytorch_doc = "`nn.AdaptiveAvgPool2d`"

    def rule(self, ctx: Ctx, layer: AdaptiveAvgPool2d) -> Out:
        return _adaptive(ctx, layer.output)

    def keeps(
        self, layer: AdaptiveAvgPool2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        # an output of 1x1 is a mean, which keeps only the input's size
        return Keeps(input=grad_in and tuple(layer.output) != (1, 1))

    def torch_module(self, layer: AdaptiveAvgPool2d, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.AdaptiveAvgPool2d(layer.output)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return _adaptive_entry(self.name, module, nn.AdaptiveAvgPool2d)

    def peer_terms(self, layer: AdaptiveAvgPool2d, row: Row, batch: int) -> PeerTerms:
        return merge(_ptflops(row, batch), _adaptive_thop(row, batch))

    def size_step(self, layer: AdaptiveAvgPool2d, axis: int) -> SizeStep:
        return Fixed(layer.output[axis])


class AdaptiveMaxPool2dKind(Kind[AdaptiveMaxPool2d]):
    model = AdaptiveMaxPool2d
    prefix = "pool"
    moves_data = True
    input = "planar"
    fields_doc = "`output` (size or pair)"
    pytorch_doc = "`nn.AdaptiveMaxPool2d`"

    def rule(self, ctx: Ctx, layer: AdaptiveMaxPool2d) -> Out:
        return _adaptive(ctx, layer.output)

    def keeps(
        self, layer: AdaptiveMaxPool2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        return Keeps(input=grad_in, extra=INDEX_BYTES * out_numel(row, batch) if grad_in else 0)

    def torch_module(self, layer: AdaptiveMaxPool2d, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.AdaptiveMaxPool2d(layer.output)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if exactly(module, nn.AdaptiveMaxPool2d) and module.return_indices:
            return None
        return _adaptive_entry(self.name, module, nn.AdaptiveMaxPool2d)

    def peer_terms(self, layer: AdaptiveMaxPool2d, row: Row, batch: int) -> PeerTerms:
        return _ptflops(row, batch)

    def size_step(self, layer: AdaptiveMaxPool2d, axis: int) -> SizeStep:
        return Fixed(layer.output[axis])


class GlobalAvgPool2dKind(Kind[GlobalAvgPool2d]):
    model = GlobalAvgPool2d
    prefix = "pool"
    moves_data = True
    input = "planar"
    fields_doc = "none; output C x 1 x 1"
    pytorch_doc = "`nn.AdaptiveAvgPool2d(1)`"

    def rule(self, ctx: Ctx, layer: GlobalAvgPool2d) -> Out:
        return _adaptive(ctx, (1, 1))

    def keeps(
        self, layer: GlobalAvgPool2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        return Keeps()  # a mean keeps only the input's size

    def torch_module(self, layer: GlobalAvgPool2d, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.AdaptiveAvgPool2d(1)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        whole = exactly(module, nn.AdaptiveAvgPool2d) and module.output_size in (1, (1, 1))
        return entry(self.name) if whole else None

    def peer_terms(self, layer: GlobalAvgPool2d, row: Row, batch: int) -> PeerTerms:
        return merge(_ptflops(row, batch), _adaptive_thop(row, batch))

    def size_step(self, layer: GlobalAvgPool2d, axis: int) -> SizeStep:
        return Fixed(1)


def blur_padding(layer: BlurPool2d) -> int:
    """The reflect padding at each side: (stride - 1 + kernel - 1) // 2, as timm pads."""
    return (layer.stride - 1 + layer.kernel - 1) // 2


class BlurPool2dKind(Kind[BlurPool2d]):
    model = BlurPool2d
    prefix = "blur"
    moves_data = True
    input = "planar"
    fields_doc = (
        "`kernel` (3), `stride` (2); reflect-padded by (stride - 1 + kernel - 1) // 2, each channel convolved with"
        " a fixed binomial filter (a buffer, no parameter), the size floored"
    )
    pytorch_doc = "timm's `BlurPool2d` (TResNet's anti-aliasing)"

    def rule(self, ctx: Ctx, layer: BlurPool2d) -> Out:
        c, h, w = ctx.spatial()
        p, k, s = blur_padding(layer), layer.kernel, layer.stride
        if p >= min(h, w):
            ctx.fail(f"reflect padding {p} needs an input larger than it, not {h}x{w} (PyTorch refuses it)", "kernel")
        # the filter is fixed and always floors its size, as timm's does
        oh, ow = window(ctx, (k, k), (s, s), (p, p), (1, 1), accepted=True)
        # its output (the padded copy is freed within the row); a depthwise conv: k^2 MACs per output value
        return Out(
            shape=(c, oh, ow), detail=f"{k}x{k} s{s} reflect p{p}", macs=c * oh * ow * k * k, activations=c * oh * ow
        )

    def keeps(self, layer: BlurPool2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # where the input needs a gradient: the reflection pad keeps its input, the conv the padded copy (the filter
        # is a buffer); else nothing
        if not grad_in:
            return Keeps()
        c, h, w = row.input_shape or (0, 0, 0)
        p = blur_padding(layer)
        return Keeps(input=True, extra=batch * c * (h + 2 * p) * (w + 2 * p) * dtype_bytes)

    def torch_module(self, layer: BlurPool2d, shape: Shape) -> nn.Module:
        from ..torch_backend import BlurPool

        return BlurPool(shape[0], layer.kernel, layer.stride)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import BlurPool

        return self.resembles(module) if exactly(module, BlurPool) else None

    def resembles(self, module: nn.Module) -> dict[str, Any] | None:
        # no parameters or children, a filter buffer, reflect padding: running it says whether it computes so
        if any(True for _ in module.children()) or any(True for _ in module.parameters()):
            return None
        k, s, mode = (getattr(module, name, None) for name in ("filt_size", "stride", "pad_mode"))
        if (
            not isinstance(k, int)
            or not isinstance(s, int)
            or mode != "reflect"
            or "filt" not in dict(module.named_buffers())
        ):
            return None
        return entry(self.name, kernel=k, stride=s)

    def peer_terms(self, layer: BlurPool2d, row: Row, batch: int) -> PeerTerms:
        # a module the tools do not know, without parameters, whose F.conv2d none of them sees
        unhooked = {"unhooked": -row.macs}
        return terms(torchinfo=unhooked, thop=unhooked, ptflops=unhooked)

    def size_step(self, layer: BlurPool2d, axis: int) -> SizeStep:
        return Slide(layer.kernel, layer.stride, blur_padding(layer), 1)


KINDS = (
    MaxPool2dKind(), AvgPool2dKind(), AdaptiveAvgPool2dKind(), AdaptiveMaxPool2dKind(), GlobalAvgPool2dKind(),
    BlurPool2dKind(),
)  # fmt: skip
