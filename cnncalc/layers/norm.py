"""Normalisation: ``batchnorm2d``, ``batchnorm1d``, ``layernorm``, ``groupnorm``, ``instancenorm2d``, ``lrn``,
``rmsnorm``; and
``layer_scale``, the learnable per-channel factor of a ConvNeXt block (a norm's affine scale on its own)."""

from __future__ import annotations

from abc import abstractmethod
from math import prod
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, StrictBool

from ..fields import Fraction, Layer, Pos
from ..report import Row, Shape
from .base import (
    NO_TERMS,
    Ctx,
    Device,
    Keep,
    Keeps,
    Kind,
    L,
    Out,
    PeerTerms,
    SizeStep,
    entry,
    exactly,
    fmt,
    in_numel,
    out_numel,
    terms,
)

if TYPE_CHECKING:
    from torch import nn


class _BatchNorm(Layer):
    eps: Annotated[float, Field(gt=0)] = 1e-5
    momentum: Fraction = 0.1
    affine: StrictBool = True
    track_running_stats: StrictBool = True


class BatchNorm2d(_BatchNorm):
    kind: Literal["batchnorm2d"]


class BatchNorm1d(_BatchNorm):
    """Batch norm on a flat input."""

    kind: Literal["batchnorm1d"]


class LayerNorm(Layer):
    """Normalisation over the channels at each position of a C x H x W plane (ConvNeXt's LayerNorm2d), or over
    the features of a flat input."""

    kind: Literal["layernorm"]
    eps: Annotated[float, Field(gt=0)] = 1e-5
    elementwise_affine: StrictBool = True
    bias: StrictBool = Field(True, description="A learnable bias besides the scale (with elementwise_affine).")


class GroupNorm(Layer):
    """Normalisation over groups of channels, per image."""

    kind: Literal["groupnorm"]
    groups: Pos = Field(description="Channel groups; they must divide the channels.")
    eps: Annotated[float, Field(gt=0)] = 1e-5
    affine: StrictBool = True


class InstanceNorm2d(Layer):
    """Normalisation over each channel of each image."""

    kind: Literal["instancenorm2d"]
    eps: Annotated[float, Field(gt=0)] = 1e-5
    momentum: Fraction = 0.1
    affine: StrictBool = False
    track_running_stats: StrictBool = False


class RMSNorm(Layer):
    """Root-mean-square normalisation over the channels at each position of a plane (timm's ``RmsNorm2d``): the
    input divided by the root of its channels' mean square (plus ``eps``), times a learnable scale per channel."""

    kind: Literal["rmsnorm"]
    eps: Annotated[float, Field(gt=0)] = 1e-6
    affine: StrictBool = True


class GRN(Layer):
    """Global response normalisation (ConvNeXt-V2, timm's ``GlobalResponseNorm``): each channel's L2 norm over the
    plane, divided by the channels' mean of it (plus ``eps``), scales the input; ``x + bias + weight * x * that``."""

    kind: Literal["grn"]
    eps: Annotated[float, Field(gt=0)] = 1e-6


class LayerScale(Layer):
    """Its input times a learnable factor per channel (ConvNeXt's layer scale), or one factor (``scalar``)."""

    kind: Literal["layer_scale"]
    init: float = Field(1e-6, description="The factors' initial value.")
    vector: StrictBool = Field(
        False, description="The factors held as a vector of C, viewed as C x 1 x 1 to multiply (timm's gamma)."
    )
    scalar: StrictBool = Field(
        False,
        description="One factor for the whole tensor (NF-Nets' skipinit gain): a 0-d parameter (with vector, 1-D"
        " of one).",
    )
    inplace: StrictBool = Field(False, description="Multiply into the input (`x.mul_(gamma)`).")


class LRN(Layer):
    """nn.LocalResponseNorm across channels (AlexNet's and VGG A-LRN's "norm")."""

    kind: Literal["lrn"]
    size: Pos
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


class _BatchNormKind(Kind[L]):
    prefix = "bn"
    moves_data = True

    @abstractmethod
    def channels(self, ctx: Ctx) -> int:
        """The input's channels, refusing an input of the wrong rank."""

    def rule(self, ctx: Ctx, layer: _BatchNorm) -> Out:
        c = self.channels(ctx)
        per_channel = ctx.batch * prod(ctx.shape[1:])
        if not layer.track_running_stats and per_channel < 2:
            # without running stats PyTorch normalises with batch statistics, even at inference
            ctx.error(
                f"without running stats the batch statistics need more than 1 value per channel,"
                f" got {per_channel} (batch {ctx.batch} x {fmt(ctx.shape[1:]) or '1'})",
                "track_running_stats",
            )
        affine = c if layer.affine else 0
        detail = "".join(
            ["" if layer.affine else "no affine ", "" if layer.track_running_stats else "no running stats"]
        )
        return Out(
            shape=ctx.shape,
            detail=detail.strip(),
            weights=affine,
            biases=affine,
            non_trainable=2 * c if layer.track_running_stats else 0,
            activations=prod(ctx.shape),
        )

    def keeps(self, layer: _BatchNorm, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # the saved mean and inverse std: in the dtype on the CPU, in float32 on CUDA (its accumulate type)
        keeps = grad_in or layer.affine
        stat = 4 if device == "cuda" else dtype_bytes
        channels = (row.input_shape or (0,))[0]
        return Keeps(input=keeps, extra=2 * channels * stat if keeps else 0)

    def peer_terms(self, layer: _BatchNorm, row: Row, batch: int) -> PeerTerms:
        return terms(
            torchinfo={"norm": batch * row.params_trainable},  # its weights and biases, once per image
            thop={"norm": out_numel(row, batch) * (4 if layer.affine else 2)},
            ptflops={"norm": in_numel(row, batch) * (2 if layer.affine else 1)},
        )

    def size_step(self, layer: _BatchNorm, axis: int) -> SizeStep:
        return Keep()


def _batchnorm_entry(kind: str, module: nn.Module, cls: type) -> dict[str, Any] | None:
    # momentum None (a cumulative average) has no field: only training differs, but it is not the same module
    if not exactly(module, cls) or module.momentum is None:
        return None
    return entry(
        kind,
        eps=module.eps,
        momentum=module.momentum,
        affine=module.affine,
        track_running_stats=module.track_running_stats,
    )


class BatchNorm2dKind(_BatchNormKind[BatchNorm2d]):
    model = BatchNorm2d
    input = "planar"
    fields_doc = "`eps` (1e-5), `momentum` (0.1), `affine` (true), `track_running_stats` (true)"
    pytorch_doc = "`nn.BatchNorm2d`"

    def channels(self, ctx: Ctx) -> int:
        return ctx.spatial()[0]

    def torch_module(self, layer: BatchNorm2d, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.BatchNorm2d(shape[0], layer.eps, layer.momentum, layer.affine, layer.track_running_stats)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return _batchnorm_entry(self.name, module, nn.BatchNorm2d)


class BatchNorm1dKind(_BatchNormKind[BatchNorm1d]):
    model = BatchNorm1d
    input = "flat"
    fields_doc = "as `batchnorm2d`, on a flat input"
    pytorch_doc = "`nn.BatchNorm1d`"

    def channels(self, ctx: Ctx) -> int:
        if len(ctx.shape) != 1:
            ctx.fail(f"batchnorm1d needs a flat input, got {fmt(ctx.shape)}; use batchnorm2d on C x H x W")
        return ctx.shape[0]

    def torch_module(self, layer: BatchNorm1d, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.BatchNorm1d(shape[0], layer.eps, layer.momentum, layer.affine, layer.track_running_stats)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return _batchnorm_entry(self.name, module, nn.BatchNorm1d)


def _norm_terms(row: Row, batch: int, *, thop: int, ptflops: int) -> PeerTerms:
    """torchinfo counts a norm's weights and biases once per image; thop and ptflops per value, by their rules."""
    return terms(
        torchinfo={"norm": batch * row.params_trainable},
        thop={"norm": out_numel(row, batch) * thop},
        ptflops={"norm": in_numel(row, batch) * ptflops},
    )


class LayerNormKind(Kind[LayerNorm]):
    model = LayerNorm
    prefix = "ln"
    moves_data = True
    layout = "channels_last"  # on a plane, the permute back of its channels-last result
    input = "any"
    fields_doc = (
        "`eps` (1e-5), `elementwise_affine` (true), `bias` (true); over the channels at each position of"
        " C x H x W, or over the features (flat)"
    )
    pytorch_doc = "`nn.LayerNorm(C)`, over channels-last positions on a plane (ConvNeXt's LayerNorm2d)"

    def rule(self, ctx: Ctx, layer: LayerNorm) -> Out:
        c = ctx.shape[0]
        affine = c if layer.elementwise_affine else 0
        detail = ["over channels" if len(ctx.shape) == 3 else "over features"]
        if not layer.elementwise_affine:
            detail.append("no affine")
        elif not layer.bias:
            detail.append("no bias")
        return Out(
            shape=ctx.shape,
            detail=", ".join(detail),
            weights=affine,
            biases=affine if layer.bias else 0,
            activations=prod(ctx.shape),
        )

    def keeps(self, layer: LayerNorm, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # native_layer_norm keeps its input, and a mean and an inverse std per position (per image when flat):
        # in the dtype on the CPU, in float32 on CUDA (its accumulate type)
        keeps = grad_in or layer.elementwise_affine
        positions = batch * prod((row.input_shape or (0,))[1:])
        stat = 4 if device == "cuda" else dtype_bytes
        return Keeps(input=keeps, extra=2 * positions * stat if keeps else 0)

    def torch_module(self, layer: LayerNorm, shape: Shape) -> nn.Module:
        from torch import nn

        from ..torch_backend import ChannelsLast

        norm = nn.LayerNorm(shape[0], layer.eps, layer.elementwise_affine, layer.bias)
        return ChannelsLast(norm) if len(shape) == 3 else norm

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        from ..torch_backend import ChannelsLast

        inner: Any = module.inner if exactly(module, ChannelsLast) and module.after is None else module
        if not exactly(inner, nn.LayerNorm) or len(inner.normalized_shape) != 1:
            return None
        affine = inner.elementwise_affine
        return entry(self.name, eps=inner.eps, elementwise_affine=affine, bias=inner.bias is not None or not affine)

    def peer_terms(self, layer: LayerNorm, row: Row, batch: int) -> PeerTerms:
        # thop reads elementwise_affine; ptflops reads `affine`, which nn.LayerNorm has not
        return _norm_terms(row, batch, thop=4 if layer.elementwise_affine else 2, ptflops=1)

    def size_step(self, layer: LayerNorm, axis: int) -> SizeStep:
        return Keep()


class GroupNormKind(Kind[GroupNorm]):
    model = GroupNorm
    prefix = "gn"
    moves_data = True
    input = "any"
    fields_doc = "`groups`, `eps` (1e-5), `affine` (true); the groups divide the channels"
    pytorch_doc = "`nn.GroupNorm`"

    def rule(self, ctx: Ctx, layer: GroupNorm) -> Out:
        c, g = ctx.shape[0], layer.groups
        if c % g:
            divisors = [d for d in range(1, c + 1) if c % d == 0]
            ctx.fail(
                f"groups {g} do not divide the {c} input channels (PyTorch refuses it);"
                f" take one of {', '.join(map(str, divisors))}",
                "groups",
            )
        per_group = c // g * prod(ctx.shape[1:])
        if per_group < 2:
            ctx.error(
                f"each group's statistics need more than 1 value, got {c // g} channel x {fmt(ctx.shape[1:]) or '1'}"
                " (PyTorch refuses it)",
                "groups",
            )
        affine = c if layer.affine else 0
        detail = f"{g} groups" + ("" if layer.affine else ", no affine")
        return Out(shape=ctx.shape, detail=detail, weights=affine, biases=affine, activations=prod(ctx.shape))

    def keeps(self, layer: GroupNorm, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # native_group_norm keeps its input, and a mean and an inverse std per image and group, in the dtype
        keeps = grad_in or layer.affine
        return Keeps(input=keeps, extra=2 * batch * layer.groups * dtype_bytes if keeps else 0)

    def torch_module(self, layer: GroupNorm, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.GroupNorm(layer.groups, shape[0], layer.eps, layer.affine)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if not exactly(module, nn.GroupNorm):
            return None
        return entry(self.name, groups=module.num_groups, eps=module.eps, affine=module.affine)

    def peer_terms(self, layer: GroupNorm, row: Row, batch: int) -> PeerTerms:
        return _norm_terms(row, batch, thop=0, ptflops=2 if layer.affine else 1)  # thop has no rule for it

    def size_step(self, layer: GroupNorm, axis: int) -> SizeStep:
        return Keep()


class InstanceNorm2dKind(Kind[InstanceNorm2d]):
    model = InstanceNorm2d
    prefix = "in"
    moves_data = True
    layout = "contiguous"  # F.instance_norm reshapes its input and returns a new contiguous tensor
    input = "planar"
    fields_doc = "`eps` (1e-5), `momentum` (0.1), `affine` (false), `track_running_stats` (false)"
    pytorch_doc = "`nn.InstanceNorm2d`"

    def rule(self, ctx: Ctx, layer: InstanceNorm2d) -> Out:
        c, h, w = ctx.spatial()
        if h * w < 2:
            # PyTorch normalises each channel by its own statistics in training, and without running stats at
            # inference too: one value has none
            ctx.error(
                f"each channel's statistics need more than 1 value, got {h}x{w}"
                f" (PyTorch refuses it in training{'' if layer.track_running_stats else ' and at inference'})"
            )
        affine = c if layer.affine else 0
        detail = ", ".join(
            (["affine"] if layer.affine else []) + (["running stats"] if layer.track_running_stats else [])
        )
        return Out(
            shape=ctx.shape,
            detail=detail,
            weights=affine,
            biases=affine,
            non_trainable=2 * c if layer.track_running_stats else 0,
            activations=prod(ctx.shape),
        )

    def keeps(
        self, layer: InstanceNorm2d, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        # F.instance_norm is a batch norm of 1 x (N·C) x H x W: it keeps its input (a contiguous copy of a
        # channels-last one), a mean and an inverse std per image and channel (float32 on CUDA), and what it
        # repeats per image for it: the weight when affine, the running mean and variance when tracked
        keeps = grad_in or layer.affine
        if not keeps:
            return Keeps()
        channels = batch * (row.input_shape or (0,))[0]
        stat = 4 if device == "cuda" else dtype_bytes
        repeated = (layer.affine + 2 * layer.track_running_stats) * channels * dtype_bytes
        return Keeps(input=True, extra=2 * channels * stat + repeated, input_layout="contiguous")

    def torch_module(self, layer: InstanceNorm2d, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.InstanceNorm2d(shape[0], layer.eps, layer.momentum, layer.affine, layer.track_running_stats)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if not exactly(module, nn.InstanceNorm2d) or module.momentum is None:
            return None
        return entry(
            self.name,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )

    def peer_terms(self, layer: InstanceNorm2d, row: Row, batch: int) -> PeerTerms:
        two = 2 if layer.affine else 1
        return _norm_terms(row, batch, thop=2 * two, ptflops=two)

    def size_step(self, layer: InstanceNorm2d, axis: int) -> SizeStep:
        return Keep()


class RMSNormKind(Kind[RMSNorm]):
    model = RMSNorm
    prefix = "rms"
    moves_data = True
    input = "planar"
    fields_doc = "`eps` (1e-6), `affine` (true); over the channels at each position"
    pytorch_doc = "timm's `RmsNorm2d` (`x * rsqrt(mean(x^2 over C) + eps) * weight`)"

    def rule(self, ctx: Ctx, layer: RMSNorm) -> Out:
        c, h, w = ctx.spatial()
        # its output (x^2, its mean over the channels, + eps, the rsqrt and x times it are freed within the row)
        return Out(
            shape=ctx.shape,
            detail="" if layer.affine else "no affine",
            weights=c if layer.affine else 0,
            activations=c * h * w,
        )

    def keeps(self, layer: RMSNorm, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # where the input needs a gradient: x^2 and x times the rsqrt keep x, the rsqrt its result (H x W); the
        # weight always: times the weight keeps what it scales
        c, h, w = row.output_shape
        scaled = c * h * w if layer.affine else 0
        return Keeps(input=grad_in, extra=batch * ((h * w if grad_in else 0) + scaled) * dtype_bytes)

    def torch_module(self, layer: RMSNorm, shape: Shape) -> nn.Module:
        from ..torch_backend import RMSNorm2d

        return RMSNorm2d(shape[0], layer.eps, layer.affine)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import RMSNorm2d

        return self.resembles(module) if exactly(module, RMSNorm2d) else None

    def resembles(self, module: nn.Module) -> dict[str, Any] | None:
        # no children, a float eps, and at most a weight of one dimension: running it says whether it is one
        own = dict(module.named_parameters(recurse=False))
        eps = getattr(module, "eps", None)
        if any(True for _ in module.children()) or not isinstance(eps, float) or eps <= 0 or set(own) - {"weight"}:
            return None
        if "weight" in own and own["weight"].dim() != 1:
            return None
        return entry(self.name, eps=eps, affine="weight" in own)

    def peer_terms(self, layer: RMSNorm, row: Row, batch: int) -> PeerTerms:
        # torchinfo counts a module's own parameters once per image; thop and ptflops know no such module
        return terms(torchinfo={"norm": batch * row.params_trainable})

    def size_step(self, layer: RMSNorm, axis: int) -> SizeStep:
        return Keep()


class GRNKind(Kind[GRN]):
    model = GRN
    prefix = "grn"
    moves_data = True
    input = "planar"
    fields_doc = (
        "`eps` (1e-6); `x + bias + weight * x * n`, n each channel's L2 norm over the plane over the channels'"
        " mean of it"
    )
    pytorch_doc = "timm's `GlobalResponseNorm` (ConvNeXt-V2's, on C x H x W)"

    def rule(self, ctx: Ctx, layer: GRN) -> Out:
        c, h, w = ctx.spatial()
        ctx.rf.see_all()  # every channel's norm reads the whole plane
        # its output (the norms, their mean, the factors, x times them and the product are freed within the row)
        return Out(shape=ctx.shape, detail="", weights=c, biases=c, activations=c * h * w)

    def keeps(self, layer: GRN, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # the weight's gradient reads x times the factors (C x H x W); where the input needs a gradient, the norm
        # keeps x and its result (C), the division its divisor (1), the product the factors (C)
        c, h, w = row.output_shape
        extra = c * h * w + ((2 * c + 1) if grad_in else 0)
        return Keeps(input=grad_in, extra=batch * extra * dtype_bytes)

    def torch_module(self, layer: GRN, shape: Shape) -> nn.Module:
        from ..torch_backend import GlobalResponseNorm

        return GlobalResponseNorm(shape[0], layer.eps)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import GlobalResponseNorm

        return self.resembles(module) if exactly(module, GlobalResponseNorm) else None

    def resembles(self, module: nn.Module) -> dict[str, Any] | None:
        # no children, a float eps, a weight and a bias of C, normalising over H and W of N x C x H x W (timm's
        # spatial_dim (2, 3)); running it says whether it computes so
        own = dict(module.named_parameters(recurse=False))
        eps = getattr(module, "eps", None)
        if any(True for _ in module.children()) or not isinstance(eps, float) or eps <= 0:
            return None
        if set(own) != {"weight", "bias"} or own["weight"].dim() != 1 or own["bias"].shape != own["weight"].shape:
            return None
        if tuple(getattr(module, "spatial_dim", ())) != (2, 3):
            return None
        return entry(self.name, eps=eps)

    def peer_terms(self, layer: GRN, row: Row, batch: int) -> PeerTerms:
        # torchinfo counts a module's own parameters once per image; thop and ptflops know no such module
        return terms(torchinfo={"norm": batch * row.params_trainable})

    def size_step(self, layer: GRN, axis: int) -> SizeStep:
        return Keep()


class LayerScaleKind(Kind[LayerScale]):
    model = LayerScale
    prefix = "layer_scale"
    moves_data = True
    input = "any"
    fields_doc = (
        "`init` (1e-6), `vector` (false: held as C x 1 x 1), `scalar` (false: one factor), `inplace` (false); its"
        " input times a learnable factor per channel, held by the enclosing module"
    )
    pytorch_doc = (
        "a parameter `<name>` (C x 1 x 1, or C) of the enclosing module, as ConvNeXt's block holds it (timm's"
        " `gamma`: C, viewed as C x 1 x 1)"
    )

    def rule(self, ctx: Ctx, layer: LayerScale) -> Out:
        detail = f"init {layer.init:g}" + (" scalar" if layer.scalar else "") + (" in place" if layer.inplace else "")
        return Out(
            shape=ctx.shape,
            detail=detail,
            weights=1 if layer.scalar else ctx.shape[0],
            activations=0 if layer.inplace else prod(ctx.shape),
        )

    def keeps(self, layer: LayerScale, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(input=True)  # the factor requires grad: its gradient reads the input

    def torch_module(self, layer: LayerScale, shape: Shape) -> nn.Module:
        from ..torch_backend import LayerScaleModule

        factors = () if layer.scalar else (shape[0], *(1 for _ in shape[1:]))
        held = ((factors or (1,))[0],) if layer.vector else factors
        return LayerScaleModule(held, layer.init, factors, layer.inplace)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import LayerScaleModule

        if not exactly(module, LayerScaleModule):
            return None
        import torch

        factors: Any = module.parameter
        vector = {"vector": True} if factors.dim() == 1 and module.view != tuple(factors.shape) else {}
        vector |= ({"scalar": True} if module.view == () else {}) | ({"inplace": True} if module.inplace else {})
        values = factors.detach().flatten().unique()
        if values.numel() != 1:
            return entry(self.name, **vector)  # trained factors come with the state_dict
        # the factors' initial value, as the fewest digits that give the same number in their dtype (1e-06)
        value = values[0]
        digits = (float(f"{float(value):.{n}g}") for n in range(1, 18))
        return entry(self.name, init=next(d for d in digits if torch.tensor(d, dtype=value.dtype) == value), **vector)

    def peer_terms(self, layer: LayerScale, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS  # a product no tool hooks (torch's `*`), of a parameter outside the module tree

    def size_step(self, layer: LayerScale, axis: int) -> SizeStep:
        return Keep()


class LRNKind(Kind[LRN]):
    model = LRN
    prefix = "norm"
    moves_data = True
    input = "planar"
    fields_doc = "`size`, `alpha` (1e-4), `beta` (0.75), `k` (1)"
    pytorch_doc = "`nn.LocalResponseNorm`"

    def rule(self, ctx: Ctx, layer: LRN) -> Out:
        ctx.spatial()
        return Out(shape=ctx.shape, detail=f"size {layer.size}", activations=prod(ctx.shape))

    def keeps(self, layer: LRN, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # x * x, padded over channels and averaged, then (k + alpha * avg) ** beta and x / that
        c, h, w = row.input_shape or ()
        padded = batch * (c + layer.size - 1) * h * w
        return Keeps(input=grad_in, extra=(padded + 2 * out_numel(row, batch)) * dtype_bytes if grad_in else 0)

    def torch_module(self, layer: LRN, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if not exactly(module, nn.LocalResponseNorm):
            return None
        return entry(self.name, size=module.size, alpha=module.alpha, beta=module.beta, k=module.k)

    def peer_terms(self, layer: LRN, row: Row, batch: int) -> PeerTerms:
        # ptflops: F.local_response_norm's x * x, avg_pool3d over the padded squares, * alpha and + k
        c, h, w = row.input_shape or (0, 0, 0)
        return terms(ptflops={"other": 3 * out_numel(row, batch) + batch * (c + layer.size - 1) * h * w})

    def size_step(self, layer: LRN, axis: int) -> SizeStep:
        return Keep()


KINDS = (
    BatchNorm2dKind(), BatchNorm1dKind(), LayerNormKind(), GroupNormKind(), InstanceNorm2dKind(), LRNKind(),
    RMSNormKind(), GRNKind(),
    LayerScaleKind(),
)  # fmt: skip
