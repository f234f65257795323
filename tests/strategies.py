"""Hypothesis strategies for random networks, shared by the torch differential test and the peers test.

Every registered layer kind is drawn (cnncalc.layers.KINDS), each field from its type.

Torch-free, so that importing them never loads torch.
"""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from hypothesis import strategies as st
from pydantic.fields import FieldInfo

from cnncalc.fields import Before, Layer
from cnncalc.layers import KINDS
from cnncalc.layers.base import Kind

ACTIVATIONS = st.sampled_from([None, "relu", "leaky_relu", "tanh", "sigmoid", "softmax"])
small = st.integers(1, 4)
size_or_pair = st.one_of(small, st.tuples(small, small).map(list))


def _field(name: str, info: FieldInfo, c: int) -> st.SearchStrategy[Any] | None:
    """Values for one field of a kind's model, from its type (cnncalc.fields); None leaves its default."""
    if name == "out":  # channels: small, and often what groups divide
        return st.sampled_from([1, 2, 3, 4, 6, 8])
    if name == "groups":
        return st.sampled_from(sorted({1, 2, 3, c}))
    if name == "in_":  # checked against the input: left to the engine to infer
        return None
    if name == "factor" and info.annotation is float:  # a constant product (scale): a round number or not
        return st.sampled_from([0.17, 0.5, 2.0, -1.0])
    if name == "scale":  # an upsampling factor: small, so that a few in a row stay small planes
        return st.one_of(st.none(), st.integers(1, 2), st.tuples(st.integers(1, 3), st.integers(1, 2)).map(list))
    return _typed(info.annotation, info.metadata)


def _typed(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any] | None:
    before = next((m for m in metadata if isinstance(m, Before)), None)
    origin, args = get_origin(annotation), get_args(annotation)
    if get_origin(annotation) is Annotated:  # an Optional's inner type keeps its metadata
        return _typed(args[0], list(annotation.__metadata__))
    if before is not None:
        match before.func.__name__:
            case "_pad4":  # a negative side crops
                return st.one_of(st.integers(0, 2), st.lists(st.integers(-1, 2), min_size=4, max_size=4))
            case "_padding":
                return st.one_of(
                    st.integers(0, 3),
                    st.sampled_from(["same", "valid"]),
                    st.tuples(st.integers(0, 2), st.integers(0, 2)).map(list),
                )
            case "_pool_padding":
                return st.one_of(st.integers(0, 1), st.just("same"))
            case "_pair" if "ge=0" in repr(annotation):
                return st.integers(0, 2)
            case "_pair":
                return size_or_pair
    if origin in (Union, UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        if get_origin(inner) is Literal:
            return st.sampled_from([None, *get_args(inner)])
        values = _typed(inner, [])
        return None if values is None else st.one_of(st.none(), values)
    if origin is Literal:
        return st.sampled_from(args)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers(1, 5)
    if annotation is float and any(getattr(m, "le", None) == 1.0 for m in metadata):
        return st.sampled_from([0.0, 0.5, 1.0])  # a fraction: both ends and between
    return None  # any other float keeps its default


def layer_strategy(kind: Kind[Any], c: int) -> st.SearchStrategy[dict[str, Any]]:
    """Entries of one registered kind, every field drawn from its type: a new kind is drawn without a line here."""
    fields = {}
    for name, info in kind.model.model_fields.items():
        if name in Layer.model_fields or name == "kind":
            continue
        values = _field(name, info, c)
        if values is not None:
            fields[info.alias or name] = values
    return st.fixed_dictionaries({"kind": st.just(kind.name), **fields})


def _taking(input: str, c: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(*(layer_strategy(k, c) for k in KINDS.values() if k.input == input))


def _planar(c: int) -> st.SearchStrategy[dict[str, Any]]:
    return _taking("planar", c)


def _anywhere() -> st.SearchStrategy[dict[str, Any]]:
    return _taking("any", 1)


def _flat() -> st.SearchStrategy[dict[str, Any]]:
    return _taking("flat", 1)


def _fitting(c: int) -> st.SearchStrategy[dict[str, Any]]:
    """Layers that usually keep or halve the plane, so that branches often meet."""
    return st.one_of(
        st.fixed_dictionaries(
            {
                "kind": st.just("conv2d"),
                "out": st.sampled_from(sorted({c, 2, 4})),
                "kernel": st.sampled_from([1, 3]),
                "padding": st.just("same"),
                "bias": st.booleans(),
                "activation": ACTIVATIONS,
            }
        ),
        st.fixed_dictionaries(
            {
                "kind": st.just("conv2d"),
                "out": st.sampled_from(sorted({c, 4})),
                "kernel": st.just(3),
                "stride": st.just(2),
                "padding": st.just(1),
            }
        ),
        st.just({"kind": "batchnorm2d"}),
        st.just({"kind": "relu", "inplace": True}),
        st.just({"kind": "maxpool2d", "kernel": 3, "stride": 1, "padding": 1}),
    )


def _gate(c: int) -> dict[str, Any]:
    """Squeeze-and-excitation's gate: a per-channel factor in (0, 1), C x 1 x 1."""
    squeeze = [{"kind": "global_avgpool2d"}, {"kind": "conv2d", "out": c, "kernel": 1, "activation": "sigmoid"}]
    return {"kind": "sequential", "layers": squeeze}


def _structure(c: int) -> st.SearchStrategy[dict[str, Any]]:
    leaves = st.lists(st.one_of(_fitting(c), _fitting(c), _planar(c)), min_size=1, max_size=3)
    shortcut = st.one_of(st.sampled_from(["identity", "projection", "auto", "optional"]), leaves)
    return st.one_of(
        st.fixed_dictionaries(
            {
                "kind": st.just("residual"),
                "body": leaves,
                "shortcut": shortcut,
                "activation": ACTIVATIONS,
                "inplace": st.booleans(),
            }
        ),
        st.fixed_dictionaries(
            {"kind": st.just("concat"), "branches": st.lists(st.one_of(leaves, st.just([])), min_size=1, max_size=3)}
        ),
        st.fixed_dictionaries(
            {"kind": st.just("split"), "branches": st.lists(st.one_of(leaves, st.just([])), min_size=1, max_size=3)}
        ),
        st.fixed_dictionaries({"kind": st.just("multiply"), "body": st.one_of(leaves, st.just([_gate(c)]))}),
        st.fixed_dictionaries({"kind": st.just("sequential"), "layers": leaves}),
    )


@st.composite
def random_specs(draw: st.DrawFn) -> dict[str, Any]:
    c, h, w = draw(st.integers(1, 6)), draw(st.integers(1, 20)), draw(st.integers(1, 20))
    layers: list[dict[str, Any]] = []
    flat = False
    channels = c
    for _ in range(draw(st.integers(1, 6))):
        # mostly layers that fit where they stand; sometimes any kind at all
        if draw(st.integers(0, 9)) == 0:
            layer = draw(st.one_of(_planar(channels), _structure(channels), _anywhere(), _flat()))
        elif flat:
            layer = draw(st.one_of(_flat(), _anywhere()))
        else:
            layer = draw(st.one_of(_planar(channels), _structure(channels), _anywhere()))
        kind = KINDS.get(layer["kind"])  # None: a structure
        flat = flat or layer["kind"] == "flatten" or (kind is not None and kind.input == "flat")
        channels = layer.get("out", channels)
        layers.append(layer)
    if draw(st.integers(0, 2)) == 0:
        return _rewired(draw, {"name": "random", "input": [c, h, w], "layers": layers})
    return {"name": "random", "input": [c, h, w], "layers": layers}


def _rewired(draw: st.DrawFn, spec: dict[str, Any]) -> dict[str, Any]:
    """The same entries as a graph: named n0, n1 ..., some reading an earlier one ('from'), joins of two named
    rows, and every row nobody reads among the outputs."""
    names = ["input"]
    reads: set[str] = set()
    layers = []
    for i, entry in enumerate(spec["layers"]):
        entry = {**entry, "name": f"n{i}"}
        source = draw(st.sampled_from(names)) if draw(st.booleans()) else names[-1]
        if source != names[-1]:
            entry["from"] = source
        reads.add(source)
        layers.append(entry)
        names.append(entry["name"])
        if len(names) > 2 and draw(st.integers(0, 3)) == 0:
            pair = draw(st.lists(st.sampled_from(names), min_size=2, max_size=2))
            join = {"kind": draw(st.sampled_from(["add", "concat", "multiply"])), "from": pair, "name": f"j{i}"}
            layers.append(join)
            reads.update(pair)
            names.append(join["name"])
    outputs = [n for n in names[1:] if n not in reads]
    return {**spec, "layers": layers, "outputs": outputs}
