"""Channels: ``channel_shuffle`` (ShuffleNet) and ``slice`` (a range of the channels, a view: the split's parts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, StrictInt

from ..fields import Layer, Pos
from ..report import Row, Shape
from .base import NO_TERMS, Ctx, Device, Keep, Keeps, Kind, Out, PeerTerms, SizeStep, entry, exactly

if TYPE_CHECKING:
    from torch import nn


class ChannelShuffle(Layer):
    """The channels, seen as groups x C/groups, transposed: channel i of group g goes to position i·groups + g."""

    kind: Literal["channel_shuffle"]
    groups: Pos = Field(description="Groups, which must divide the channels.")


class Slice(Layer):
    """Channels start to stop (stop excluded; none: to the last), a view of the input."""

    kind: Literal["slice"]
    start: StrictInt = Field(0, ge=0, description="The first channel kept.")
    stop: StrictInt | None = Field(None, ge=1, description="The channel after the last kept; none: the last.")


class ChannelShuffleKind(Kind[ChannelShuffle]):
    model = ChannelShuffle
    prefix = "shuffle"
    moves_data = True
    input = "planar"
    fields_doc = "`groups`, dividing the channels; channel i of group g goes to i·groups + g (a copy)"
    pytorch_doc = "`nn.ChannelShuffle`"

    def rule(self, ctx: Ctx, layer: ChannelShuffle) -> Out:
        c, h, w = ctx.spatial()
        if c % layer.groups:
            ctx.fail(f"groups {layer.groups} does not divide the input's {c} channels", "groups")
        return Out(shape=ctx.shape, detail=f"{layer.groups} groups", activations=c * h * w)

    def keeps(
        self, layer: ChannelShuffle, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool
    ) -> Keeps:
        return Keeps()  # a reshape, a transpose and a copy: nothing kept

    def torch_module(self, layer: ChannelShuffle, shape: Shape) -> nn.Module:
        from torch import nn

        return nn.ChannelShuffle(layer.groups)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from torch import nn

        return entry(self.name, groups=module.groups) if exactly(module, nn.ChannelShuffle) else None

    def peer_terms(self, layer: ChannelShuffle, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: ChannelShuffle, axis: int) -> SizeStep:
        return Keep()


class SliceKind(Kind[Slice]):
    model = Slice
    prefix = "slice"
    moves_data = False  # a view
    input = "planar"
    fields_doc = "`start` (0), `stop` (none: the last); channels start to stop-1, a view (a `split`'s parts)"
    pytorch_doc = "`x[:, start:stop]`"

    def rule(self, ctx: Ctx, layer: Slice) -> Out:
        c, h, w = ctx.spatial()
        stop = c if layer.stop is None else layer.stop
        if stop > c or layer.start >= stop:
            ctx.fail(
                f"channels {layer.start} to {stop} are not a range of the input's {c} channels"
                " (0 <= start < stop <= channels)",
                "stop" if stop > c else "start",
            )
        return Out(shape=(stop - layer.start, h, w), detail=f"channels {layer.start}:{stop}")

    def keeps(self, layer: Slice, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        return Keeps(new_output=False)  # a view of its input's storage

    def torch_module(self, layer: Slice, shape: Shape) -> nn.Module:
        from ..torch_backend import ChannelSlice

        return ChannelSlice(layer.start, layer.stop)

    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        from ..torch_backend import ChannelSlice

        return entry(self.name, start=module.start, stop=module.stop) if exactly(module, ChannelSlice) else None

    def peer_terms(self, layer: Slice, row: Row, batch: int) -> PeerTerms:
        return NO_TERMS

    def size_step(self, layer: Slice, axis: int) -> SizeStep:
        return Keep()


KINDS = (ChannelShuffleKind(), SliceKind())
