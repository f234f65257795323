"""The registry of layer kinds: every kind, complete in its family module (see :mod:`cnncalc.layers.base`).

Adding a kind is adding its :class:`~cnncalc.layers.base.Kind` to a family's ``KINDS`` (or a new family
module to :data:`FAMILIES`); the spec, the engine, the training rules, the PyTorch build, the peers and the
sizes all look kinds up here, and ``tests/test_layers.py`` proves each implements every facet. The order
of :data:`KINDS` is the order the schema, the docs and the error messages list them in.
"""

from __future__ import annotations

from typing import Any

from ..fields import Layer
from ..report import Join
from . import activation, channel, conv, dense, dropout, joins, norm, pad, pool, resample
from .base import Kind, RowKind

#: The family modules, in the order their kinds are listed.
FAMILIES = (conv, pool, pad, resample, channel, dense, norm, dropout, activation)

#: Every layer kind by its ``kind`` name.
KINDS: dict[str, Kind[Any]] = {kind.name: kind for family in FAMILIES for kind in family.KINDS}
#: The rows where branches meet, by their ``kind`` name.
JOINS: dict[str, RowKind[Join]] = {join.name: join for join in joins.JOINS}


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
