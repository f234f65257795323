"""The registry of layer kinds: every kind, complete in its family module (see :mod:`cnncalc.layers.base`).

Adding a kind is adding its :class:`~cnncalc.layers.base.Kind` to a family's ``KINDS`` and its name to
:data:`INDEX` (a new family module goes into :data:`FAMILIES`); the spec, the engine, the training rules,
the PyTorch build, the peers and the sizes all look kinds up here, and ``tests/test_layers.py`` proves each
implements every facet. The order of :data:`INDEX` is the order the schema, the docs and the error messages
list the kinds in.

A family module is imported when one of its kinds is first looked up: a spec of convs, pools and linear
layers never makes the models of the norms, the resamplings or the channel operations (5 ms of a
160 ms summary). Every name is known without importing anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from ..fields import Layer
from ..report import Join
from . import joins
from .base import Kind, RowKind

#: Every layer kind's name -> its family module, in the order the kinds are listed. A family that
#: declares a kind missing here, or lacks one named here, is refused when it is imported.
INDEX: dict[str, str] = {
    "conv2d": "conv",
    "std_conv2d": "conv",
    "maxpool2d": "pool",
    "avgpool2d": "pool",
    "adaptive_avgpool2d": "pool",
    "adaptive_maxpool2d": "pool",
    "global_avgpool2d": "pool",
    "blur_pool2d": "pool",
    "zeropad2d": "pad",
    "upsample": "resample",
    "convtranspose2d": "resample",
    "pixel_shuffle": "resample",
    "pixel_unshuffle": "resample",
    "space_to_depth": "resample",
    "crop": "resample",
    "channel_shuffle": "channel",
    "slice": "channel",
    "linear": "dense",
    "channel_linear": "dense",
    "flatten": "dense",
    "batchnorm2d": "norm",
    "batchnorm1d": "norm",
    "layernorm": "norm",
    "groupnorm": "norm",
    "instancenorm2d": "norm",
    "lrn": "norm",
    "rmsnorm": "norm",
    "grn": "norm",
    "layer_scale": "norm",
    "eca": "attention",
    "dropout": "dropout",
    "stochastic_depth": "dropout",
    "relu": "activation",
    "relu6": "activation",
    "leaky_relu": "activation",
    "tanh": "activation",
    "sigmoid": "activation",
    "softmax": "activation",
    "silu": "activation",
    "gelu": "activation",
    "hardswish": "activation",
    "hardsigmoid": "activation",
    "elu": "activation",
    "selu": "activation",
    "mish": "activation",
    "softplus": "activation",
    "prelu": "activation",
    "scale": "activation",
    "identity": "activation",
}
#: The family modules, in the order their kinds are listed.
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(INDEX.values()))


@cache
def family(name: str) -> dict[str, Kind[Any]]:
    """A family's kinds by name, its module imported on first use; it must declare what :data:`INDEX` says."""
    module = importlib.import_module(f"{__name__}.{name}")
    kinds: dict[str, Kind[Any]] = {kind.name: kind for kind in module.KINDS}
    listed = [kind for kind, home in INDEX.items() if home == name]
    if list(kinds) != listed:
        raise LookupError(
            f"cnncalc.layers.{name} declares the kinds {list(kinds)}, cnncalc.layers.INDEX lists {listed}:"
            " the index names every kind, in its family's order"
        )
    return kinds


class Registry(Mapping[str, Kind[Any]]):
    """Every layer kind by its ``kind`` name: names without imports, a kind with its family's module."""

    def __getitem__(self, name: str) -> Kind[Any]:
        return family(INDEX[name])[name]

    def __contains__(self, name: object) -> bool:
        return name in INDEX

    def __iter__(self) -> Iterator[str]:
        return iter(INDEX)

    def __len__(self) -> int:
        return len(INDEX)

    def __repr__(self) -> str:
        return f"<the {len(INDEX)} layer kinds of cnncalc.layers>"


#: Every layer kind by its ``kind`` name.
KINDS: Mapping[str, Kind[Any]] = Registry()
#: The rows where branches meet, by their ``kind`` name.
JOINS: dict[str, RowKind[Join]] = {join.name: join for join in joins.JOINS}


def writes_in_place(layer: Layer | Join | None) -> bool:
    """Whether a row's layer writes into its input (``inplace: true`` on an activation, dropout or an add).

    Read from the fields themselves (a layer's and a join's are in its ``__dict__``): a pydantic model's
    getattr of a field it lacks is slow, and this is asked of every row."""
    return bool(getattr(layer, "__dict__", {}).get("inplace"))


def kind_of(layer: Layer) -> Kind[Any]:
    """The registered kind of a layer's model: an unregistered kind is an error, never a default."""
    try:
        return KINDS[layer.kind]
    except (KeyError, AttributeError):
        raise LookupError(f"no layer kind is registered for {type(layer).__name__}") from None


def row_kind(layer: Layer | Join) -> RowKind[Any]:
    """The registered kind of what makes a row: a layer's model or a join."""
    if isinstance(layer, Join):
        try:
            return JOINS[layer.kind]
        except KeyError:
            raise LookupError(f"no join is registered for {layer.kind!r}") from None
    return kind_of(layer)
