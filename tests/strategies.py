"""Hypothesis strategies for random networks, shared by the torch differential test and the peers test.

Torch-free, so that importing them never loads torch.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

ACTIVATIONS = st.sampled_from([None, "relu", "leaky_relu", "tanh", "sigmoid", "softmax"])
small = st.integers(1, 4)
size_or_pair = st.one_of(small, st.tuples(small, small).map(list))


def _planar(c: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries(
            {
                "kind": st.just("conv2d"),
                "out": st.sampled_from([1, 2, 3, 4, 6, 8]),
                "kernel": size_or_pair,
                "stride": st.integers(1, 3),
                "padding": st.one_of(
                    st.integers(0, 3),
                    st.sampled_from(["same", "valid"]),
                    st.tuples(st.integers(0, 2), st.integers(0, 2)).map(list),
                ),
                "dilation": st.integers(1, 3),
                "groups": st.sampled_from(sorted({1, 2, 3, c})),
                "bias": st.booleans(),
                "activation": ACTIVATIONS,
            }
        ),
        st.fixed_dictionaries(
            {
                "kind": st.just("maxpool2d"),
                "kernel": size_or_pair,
                "stride": st.one_of(st.none(), st.integers(1, 3)),
                "padding": st.integers(0, 2),
                "dilation": st.integers(1, 2),
                "ceil_mode": st.booleans(),
            }
        ),
        st.fixed_dictionaries(
            {
                "kind": st.just("avgpool2d"),
                "kernel": size_or_pair,
                "stride": st.one_of(st.none(), st.integers(1, 3)),
                "padding": st.integers(0, 2),
                "ceil_mode": st.booleans(),
                "count_include_pad": st.booleans(),
            }
        ),
        st.fixed_dictionaries(
            {"kind": st.sampled_from(["adaptive_avgpool2d", "adaptive_maxpool2d"]), "output": size_or_pair}
        ),
        st.fixed_dictionaries(
            {
                "kind": st.just("zeropad2d"),
                "padding": st.one_of(st.integers(0, 2), st.lists(st.integers(0, 2), min_size=4, max_size=4)),
            }
        ),
        st.fixed_dictionaries(
            {"kind": st.just("batchnorm2d"), "affine": st.booleans(), "track_running_stats": st.booleans()}
        ),
        st.fixed_dictionaries({"kind": st.just("lrn"), "size": st.integers(1, 5)}),
        st.just({"kind": "global_avgpool2d"}),
    )


def _anywhere() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries({"kind": st.sampled_from(["relu", "relu6", "leaky_relu"]), "inplace": st.booleans()}),
        st.fixed_dictionaries(
            {"kind": st.just("dropout"), "p": st.sampled_from([0.0, 0.5, 1.0]), "inplace": st.booleans()}
        ),
        st.sampled_from([{"kind": "tanh"}, {"kind": "sigmoid"}, {"kind": "softmax"}, {"kind": "flatten"}]),
    )


def _flat() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.fixed_dictionaries(
            {"kind": st.just("linear"), "out": st.integers(1, 12), "bias": st.booleans(), "activation": ACTIVATIONS}
        ),
        st.fixed_dictionaries(
            {"kind": st.just("batchnorm1d"), "affine": st.booleans(), "track_running_stats": st.booleans()}
        ),
    )


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
        st.fixed_dictionaries({"kind": st.just("concat"), "branches": st.lists(leaves, min_size=1, max_size=3)}),
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
        flat = flat or layer["kind"] in ("flatten", "linear", "batchnorm1d")
        channels = layer.get("out", channels)
        layers.append(layer)
    return {"name": "random", "input": [c, h, w], "layers": layers}
