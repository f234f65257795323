"""Normalisation: ``batchnorm2d``, ``batchnorm1d``, ``lrn``."""

from __future__ import annotations

from abc import abstractmethod
from math import prod
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, StrictBool

from ..fields import Fraction, Layer, Pos
from ..report import Row, Shape
from .base import (
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


KINDS = (BatchNorm2dKind(), BatchNorm1dKind(), LRNKind())
