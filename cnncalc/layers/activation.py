"""Activations: ``relu``, ``relu6``, ``leaky_relu``, ``tanh``, ``sigmoid``, ``softmax``, the smooth ones of
modern CNNs (``silu``, ``gelu``, ``hardswish``, ``hardsigmoid``, ``elu``, ``selu``, ``mish``, ``softplus``),
``prelu``, and ``identity`` (what one fused onto a conv, a linear layer or a join does is :mod:`.fused`'s)."""

from __future__ import annotations

from math import prod
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import Field, StrictBool

from ..fields import Layer
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
    in_numel,
    out_numel,
    terms,
)
from .fused import thop_softmax

if TYPE_CHECKING:
    from torch import nn


class ReLU(Layer):
    kind: Literal["relu"]
    inplace: StrictBool = False


class ReLU6(Layer):
    kind: Literal["relu6"]
    inplace: StrictBool = False


class LeakyReLU(Layer):
    kind: Literal["leaky_relu"]
    negative_slope: float = 0.01
    inplace: StrictBool = False


class Tanh(Layer):
    kind: Literal["tanh"]


class Sigmoid(Layer):
    kind: Literal["sigmoid"]


class Softmax(Layer):
    """Softmax over the channels (CxHxW input) or the features (flat input)."""

    kind: Literal["softmax"]


class SiLU(Layer):
    kind: Literal["silu"]
    inplace: StrictBool = False


class GELU(Layer):
    kind: Literal["gelu"]
    approximate: Literal["none", "tanh"] = "none"


class Hardswish(Layer):
    kind: Literal["hardswish"]
    inplace: StrictBool = False


class Hardsigmoid(Layer):
    kind: Literal["hardsigmoid"]
    inplace: StrictBool = False


class ELU(Layer):
    kind: Literal["elu"]
    alpha: float = 1.0
    inplace: StrictBool = False


class SELU(Layer):
    kind: Literal["selu"]
    inplace: StrictBool = False


class Mish(Layer):
    kind: Literal["mish"]
    inplace: StrictBool = False


class Softplus(Layer):
    kind: Literal["softplus"]
    beta: float = 1.0
    threshold: float = 20.0


class PReLU(Layer):
    """Leaky ReLU with a learnable slope, one for all channels or one per channel."""

    kind: Literal["prelu"]
    per_channel: StrictBool = Field(False, description="One slope per channel (PyTorch's num_parameters=C), not 1.")
    init: float = Field(0.25, description="The slopes' initial value.")


class Scale(Layer):
    """Its input times a constant (Inception-ResNet's ``0.17 * f(x)`` before the add, NF-Net's ``alpha``)."""

    kind: Literal["scale"]
    factor: Annotated[float, Field(allow_inf_nan=False)]
    inplace: StrictBool = False


class Identity(Layer):
    """Its input, unchanged and not copied: an identity branch (DenseNet concatenates a layer's input)."""

    kind: Literal["identity"]


# --- the kinds -----------------------------------------------------------------------


class _Elementwise(Kind[L]):
    """Shape kept, one value out per value in; allocates its output unless in place.

    Its PyTorch module is ``nn.<torch_name>``, built from the layer's own fields, which are named as
    that module's arguments (``inplace``, ``negative_slope``, ``approximate``, ``alpha``, ``beta``...).
    """

    moves_data = True
    input = "any"
    torch_name: ClassVar[str]

    @property
    def pytorch_doc(self) -> str:  # type: ignore[override]
        return f"`nn.{self.torch_name}`"

    def torch_module(self, layer: L, shape: Shape) -> nn.Module:
        from torch import nn

        arguments = layer.model_dump(exclude=set(Layer.model_fields) | {"kind"})
        return getattr(nn, self.torch_name)(**arguments)  # type: ignore[no-any-return]

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if not exactly(module, getattr(nn, self.torch_name)):
            return None
        own = [f for f in self.model.model_fields if f not in Layer.model_fields and f != "kind"]
        return entry(self.name, **{f: getattr(module, f) for f in own})

    def out(self, ctx: Ctx, detail: str, *, inplace: bool) -> Out:
        return Out(shape=ctx.shape, detail=detail, activations=0 if inplace else prod(ctx.shape))

    def size_step(self, layer: L, axis: int) -> SizeStep:
        return Keep()


class ReLUKind(_Elementwise[ReLU]):
    model = ReLU
    prefix = "relu"
    fields_doc = "`inplace` (false)"
    torch_name = "ReLU"

    def rule(self, ctx: Ctx, layer: ReLU) -> Out:
        return self.out(ctx, "in place" if layer.inplace else "", inplace=layer.inplace)

    def keeps(self, layer: ReLU, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # relu keeps its result: its input's storage when in place
        inplace = layer.inplace
        return Keeps(input=grad_in and inplace, output=grad_in and not inplace, new_output=not inplace)

    def peer_terms(self, layer: ReLU, row: Row, batch: int) -> PeerTerms:
        # ptflops hooks nn.ReLU and counts the F.relu it calls again
        return terms(ptflops={"act": 2 * out_numel(row, batch)})


class ReLU6Kind(_Elementwise[ReLU6]):
    model = ReLU6
    prefix = "relu6"
    fields_doc = "`inplace` (false)"
    torch_name = "ReLU6"

    def rule(self, ctx: Ctx, layer: ReLU6) -> Out:
        return self.out(ctx, "in place" if layer.inplace else "", inplace=layer.inplace)

    def keeps(self, layer: ReLU6, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # hardtanh keeps its input; in place, autograd keeps a copy of it (the input is overwritten)
        if layer.inplace:
            return Keeps(extra=out_numel(row, batch) * dtype_bytes if grad_in else 0, new_output=False)
        return Keeps(input=grad_in)

    def peer_terms(self, layer: ReLU6, row: Row, batch: int) -> PeerTerms:
        return terms(ptflops={"act": out_numel(row, batch)})  # F.hardtanh is not patched: hooked once


class LeakyReLUKind(_Elementwise[LeakyReLU]):
    model = LeakyReLU
    prefix = "leaky_relu"
    fields_doc = "`negative_slope` (0.01), `inplace` (false)"
    torch_name = "LeakyReLU"

    def rule(self, ctx: Ctx, layer: LeakyReLU) -> Out:
        detail = f"slope {layer.negative_slope:g}" + (", in place" if layer.inplace else "")
        return self.out(ctx, detail, inplace=layer.inplace)

    def keeps(self, layer: LeakyReLU, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        # leaky_relu keeps its input; in place its result, the same storage
        return Keeps(input=grad_in, new_output=not layer.inplace)

    def peer_terms(self, layer: LeakyReLU, row: Row, batch: int) -> PeerTerms:
        return terms(ptflops={"act": out_numel(row, batch)})


class _KeepsResult(_Elementwise[L]):
    """tanh, sigmoid and softmax: out of place, keeping their result for backward."""

    def rule(self, ctx: Ctx, layer: L) -> Out:
        return self.out(ctx, "", inplace=False)

    def keeps(self, layer: L, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(output=grad_in)

    def peer_terms(self, layer: L, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS  # ptflops hooks no nn.Tanh or nn.Sigmoid; thop counts them 0


class TanhKind(_KeepsResult[Tanh]):
    model = Tanh
    prefix = "tanh"
    fields_doc = "none"
    torch_name = "Tanh"


class SigmoidKind(_KeepsResult[Sigmoid]):
    model = Sigmoid
    prefix = "sigmoid"
    fields_doc = "none"
    torch_name = "Sigmoid"


class SoftmaxKind(_KeepsResult[Softmax]):
    model = Softmax
    prefix = "softmax"
    fields_doc = "none; over the channels (C x H x W) or the features (flat)"
    pytorch_doc = "`nn.Softmax(dim=1)`"
    layout = "contiguous"

    def rule(self, ctx: Ctx, layer: Softmax) -> Out:
        return self.out(ctx, "over channels" if len(ctx.shape) == 3 else "over features", inplace=False)

    def torch_module(self, layer: Softmax, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.Softmax(dim=1)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return entry(self.name) if exactly(module, nn.Softmax) and module.dim == 1 else None

    def peer_terms(self, layer: Softmax, row: Row, batch: int) -> PeerTerms:
        return terms(ptflops={"act": in_numel(row, batch)}, thop={"softmax": thop_softmax(row, batch)})


class _KeepsInput(_Elementwise[L]):
    """The smooth activations: out of place, keeping their input for backward (autograd's derivative formulas
    for silu, gelu, hardswish, hardsigmoid, elu, selu, mish and softplus all read ``self``)."""

    #: ptflops' count per value: a hook on the module (GELU, ELU) and a patch of the functional (gelu, elu, silu)
    ptflops_per_value: ClassVar[int] = 0
    #: in place (``inplace: true``), autograd keeps a copy of the input it overwrites, or (elu, selu) the
    #: result, which backward can invert
    inplace_keeps: ClassVar[Literal["copy", "result"]] = "copy"

    def rule(self, ctx: Ctx, layer: L) -> Out:
        inplace = getattr(layer, "inplace", False)
        return self.out(ctx, "in place" if inplace else "", inplace=inplace)

    def keeps(self, layer: L, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        if not getattr(layer, "inplace", False):
            return Keeps(input=grad_in)
        if self.inplace_keeps == "result":
            return Keeps(input=grad_in, new_output=False)  # the result is the input's storage
        return Keeps(extra=out_numel(row, batch) * dtype_bytes if grad_in else 0, new_output=False)

    def peer_terms(self, layer: L, row: Row, batch: int) -> PeerTerms:
        # thop has no rule for any of them (0); torchinfo and FlopCounterMode count no activation
        if not self.ptflops_per_value:
            return NO_TERMS
        return terms(ptflops={"act": self.ptflops_per_value * out_numel(row, batch)})


class SiLUKind(_KeepsInput[SiLU]):
    model = SiLU
    prefix = "silu"
    ptflops_per_value = 1  # F.silu is patched; nn.SiLU has no hook
    fields_doc = "`inplace` (false); swish"
    torch_name = "SiLU"


class GELUKind(_KeepsInput[GELU]):
    model = GELU
    prefix = "gelu"
    ptflops_per_value = 2  # nn.GELU's hook and the patched F.gelu
    fields_doc = "`approximate` (none, or tanh)"
    torch_name = "GELU"

    def rule(self, ctx: Ctx, layer: GELU) -> Out:
        return self.out(ctx, "tanh" if layer.approximate == "tanh" else "", inplace=False)


class HardswishKind(_KeepsInput[Hardswish]):
    model = Hardswish
    prefix = "hardswish"
    fields_doc = "`inplace` (false)"
    torch_name = "Hardswish"


class HardsigmoidKind(_KeepsInput[Hardsigmoid]):
    model = Hardsigmoid
    prefix = "hardsigmoid"
    fields_doc = "`inplace` (false)"
    torch_name = "Hardsigmoid"


class ELUKind(_KeepsInput[ELU]):
    model = ELU
    prefix = "elu"
    ptflops_per_value = 2  # nn.ELU's hook and the patched F.elu
    fields_doc = "`alpha` (1.0), `inplace` (false)"
    torch_name = "ELU"
    inplace_keeps = "result"


class SELUKind(_KeepsInput[SELU]):
    model = SELU
    prefix = "selu"
    fields_doc = "`inplace` (false)"
    torch_name = "SELU"
    inplace_keeps = "result"


class MishKind(_KeepsInput[Mish]):
    model = Mish
    prefix = "mish"
    fields_doc = "`inplace` (false)"
    torch_name = "Mish"


class SoftplusKind(_KeepsInput[Softplus]):
    model = Softplus
    prefix = "softplus"
    fields_doc = "`beta` (1.0), `threshold` (20.0)"
    torch_name = "Softplus"


class PReLUKind(_Elementwise[PReLU]):
    """Not an ``activation:`` of a conv or linear row: it has parameters, so it is a row of its own."""

    model = PReLU
    prefix = "prelu"
    fields_doc = "`per_channel` (false: 1 slope), `init` (0.25)"
    torch_name = "PReLU"

    def rule(self, ctx: Ctx, layer: PReLU) -> Out:
        slopes = ctx.shape[0] if layer.per_channel else 1
        out = self.out(ctx, f"{slopes} slope{'s' if slopes > 1 else ''}", inplace=False)
        out.weights = slopes
        return out

    def keeps(self, layer: PReLU, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(input=True)  # the slopes require grad: both gradients read the input

    def torch_module(self, layer: PReLU, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.PReLU(shape[0] if layer.per_channel else 1, layer.init)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        if not exactly(module, nn.PReLU):
            return None
        slopes: Any = module.num_parameters
        return entry(self.name, per_channel=slopes > 1, init=module.init)

    def peer_terms(self, layer: PReLU, row: Row, batch: int) -> PeerTerms:
        # ptflops: nn.PReLU's hook and the patched F.prelu; thop: 1 per value (in eval); torchinfo: its weight
        values = out_numel(row, batch)
        return terms(
            ptflops={"act": 2 * values}, thop={"prelu": values}, torchinfo={"prelu": batch * row.params_trainable}
        )


class ScaleKind(_Elementwise[Scale]):
    model = Scale
    prefix = "scale"
    fields_doc = "`factor`, `inplace` (false); its input times a constant, no parameter"
    pytorch_doc = "`x * factor` (`x.mul_(factor)` in place)"

    def rule(self, ctx: Ctx, layer: Scale) -> Out:
        return self.out(ctx, f"x {layer.factor:g}" + (" in place" if layer.inplace else ""), inplace=layer.inplace)

    def keeps(self, layer: Scale, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(new_output=not layer.inplace)  # the gradient is the constant's: nothing is kept

    def torch_module(self, layer: Scale, shape: Shape) -> nn.Module:
        from ..torch_backend import ScaleModule

        return ScaleModule(layer.factor, layer.inplace)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import ScaleModule

        if not exactly(module, ScaleModule):
            return None
        return entry(self.name, factor=module.factor, inplace=module.inplace)

    def peer_terms(self, layer: Scale, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS  # a product by a number, which no tool hooks


class IdentityKind(_Elementwise[Identity]):
    model = Identity
    prefix = "identity"
    moves_data = False  # the same tensor
    fields_doc = "none; its input, not copied (an identity branch of a concat)"
    torch_name = "Identity"

    def rule(self, ctx: Ctx, layer: Identity) -> Out:
        return self.out(ctx, "", inplace=True)

    def keeps(self, layer: Identity, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(new_output=False)

    def peer_terms(self, layer: Identity, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS


KINDS = (
    ReLUKind(), ReLU6Kind(), LeakyReLUKind(), TanhKind(), SigmoidKind(), SoftmaxKind(),
    SiLUKind(), GELUKind(), HardswishKind(), HardsigmoidKind(), ELUKind(), SELUKind(), MishKind(), SoftplusKind(),
    PReLUKind(), ScaleKind(), IdentityKind(),
)  # fmt: skip
