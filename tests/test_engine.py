"""The engine's rules: one named case per edge, and properties that must always hold."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from helpers import report_of, spec_of
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncalc import SpecError, analyze
from cnncalc.commands.summary import to_csv
from cnncalc.geometry import effective_kernel, output_size
from cnncalc.render import rf_text, to_dict


def conv(**kw: Any) -> dict[str, Any]:
    return {"kind": "conv2d", "out": 8, "kernel": 3, **kw}


# (id, input, layers, expected output shape, expected params of the last row, expected MACs of the last row)
SHAPE_CASES = [
    ("stride 2 pad 1", [3, 32, 32], [conv(stride=2, padding=1)], (8, 16, 16), 8 * 27 + 8, 8 * 16 * 16 * 27),
    ("dilation 2", [3, 32, 32], [conv(dilation=2)], (8, 28, 28), 224, 8 * 28 * 28 * 27),
    (
        "rectangular kernel",
        [3, 32, 20],
        [conv(kernel=[3, 5], padding=[1, 2])],
        (8, 32, 20),
        8 * 45 + 8,
        8 * 32 * 20 * 45,
    ),
    ("groups 2", [4, 8, 8], [conv(groups=2, padding=1)], (8, 8, 8), 8 * 2 * 9 + 8, 8 * 64 * 2 * 9),
    ("depthwise", [8, 8, 8], [conv(groups=8, padding=1, bias=False)], (8, 8, 8), 8 * 9, 8 * 64 * 9),
    ("no bias", [3, 8, 8], [conv(bias=False)], (8, 6, 6), 216, 8 * 36 * 27),
    ("padding valid", [3, 8, 8], [conv(padding="valid")], (8, 6, 6), 224, 8 * 36 * 27),
    ("padding same even kernel", [3, 7, 7], [conv(kernel=4, padding="same")], (8, 7, 7), 8 * 48 + 8, 8 * 49 * 48),
    ("1x1 conv", [64, 5, 5], [conv(kernel=1, out=16)], (16, 5, 5), 64 * 16 + 16, 16 * 25 * 64),
    # TensorFlow's 'same' at any stride: ceil(W / S), whatever the kernel
    ("same stride 2 even", [3, 8, 8], [conv(padding="same", stride=2)], (8, 4, 4), 224, 8 * 16 * 27),
    ("same stride 2 odd", [3, 7, 9], [conv(padding="same", stride=2)], (8, 4, 5), 224, 8 * 20 * 27),
    ("same stride 3 kernel 1", [3, 7, 7], [conv(kernel=1, padding="same", stride=3)], (8, 3, 3), 32, 8 * 9 * 3),
    (
        "maxpool same",
        [2, 7, 8],
        [{"kind": "maxpool2d", "kernel": 3, "stride": 2, "padding": "same"}],
        (2, 4, 4),
        0,
        0,
    ),
    (
        "maxpool ceil 112",
        [64, 112, 112],
        [{"kind": "maxpool2d", "kernel": 3, "stride": 2, "ceil_mode": True}],
        (64, 56, 56),
        0,
        0,
    ),
    (
        "maxpool ceil drops window in padding",
        [1, 5, 5],
        [{"kind": "maxpool2d", "kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}],
        (1, 3, 3),
        0,
        0,
    ),
    ("maxpool stride defaults to kernel", [1, 8, 8], [{"kind": "maxpool2d", "kernel": 2}], (1, 4, 4), 0, 0),
    ("maxpool dilation", [1, 9, 9], [{"kind": "maxpool2d", "kernel": 2, "stride": 1, "dilation": 2}], (1, 7, 7), 0, 0),
    ("avgpool pad", [1, 8, 8], [{"kind": "avgpool2d", "kernel": 3, "stride": 1, "padding": 1}], (1, 8, 8), 0, 0),
    ("adaptive avg 6x6", [256, 13, 13], [{"kind": "adaptive_avgpool2d", "output": 6}], (256, 6, 6), 0, 0),
    ("adaptive max grows", [2, 3, 3], [{"kind": "adaptive_maxpool2d", "output": [5, 4]}], (2, 5, 4), 0, 0),
    ("global avg", [512, 7, 7], [{"kind": "global_avgpool2d"}], (512, 1, 1), 0, 0),
    ("zeropad int", [3, 64, 64], [{"kind": "zeropad2d", "padding": 3}], (3, 70, 70), 0, 0),
    ("zeropad h w", [3, 10, 10], [{"kind": "zeropad2d", "padding": [1, 2]}], (3, 12, 14), 0, 0),
    ("zeropad l r t b", [3, 10, 10], [{"kind": "zeropad2d", "padding": [1, 2, 3, 4]}], (3, 17, 13), 0, 0),
    ("flatten", [512, 7, 7], ["flatten"], (25088,), 0, 0),
    ("linear", [512, 7, 7], ["flatten", {"kind": "linear", "out": 4096}], (4096,), 102764544, 102760448),
    ("linear no bias on flat input", [784], [{"kind": "linear", "out": 10, "bias": False}], (10,), 7840, 7840),
    ("batchnorm2d", [32, 4, 4], [{"kind": "batchnorm2d"}], (32, 4, 4), 128, 0),
    ("batchnorm2d no affine", [32, 4, 4], [{"kind": "batchnorm2d", "affine": False}], (32, 4, 4), 64, 0),
    ("batchnorm1d", [100], [{"kind": "batchnorm1d"}], (100,), 400, 0),
    ("lrn", [96, 27, 27], [{"kind": "lrn", "size": 5}], (96, 27, 27), 0, 0),
    ("softmax", [10], ["softmax"], (10,), 0, 0),
    ("upsample nearest", [8, 5, 6], [{"kind": "upsample", "scale": [2, 3]}], (8, 10, 18), 0, 0),
    ("upsample to a size", [8, 5, 6], [{"kind": "upsample", "size": 7, "mode": "bilinear"}], (8, 7, 7), 0, 0),
    # (H - 1)S - 2P + D(K - 1) + output_padding + 1; MACs at the input positions: 4 x 6 x 9 x 5 x 6
    (
        "convtranspose2d",
        [4, 5, 6],
        [{"kind": "convtranspose2d", "out": 6, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}],
        (6, 10, 12),
        4 * 6 * 9 + 6,
        4 * 6 * 9 * 30,
    ),
    (
        "convtranspose2d groups",
        [4, 5, 6],
        [{"kind": "convtranspose2d", "out": 6, "kernel": 2, "stride": 2, "groups": 2, "bias": False}],
        (6, 10, 12),
        4 * 3 * 4,
        4 * 3 * 4 * 30,
    ),
    (
        "convtranspose2d dilated",
        [1, 5, 5],
        [{"kind": "convtranspose2d", "out": 1, "kernel": 3, "dilation": 2}],
        (1, 9, 9),
        10,
        225,
    ),
    ("pixel_shuffle", [12, 5, 6], [{"kind": "pixel_shuffle", "factor": 2}], (3, 10, 12), 0, 0),
    ("crop to a size", [3, 10, 9], [{"kind": "crop", "size": [7, 4]}], (3, 7, 4), 0, 0),
    ("crop by a margin", [3, 10, 9], [{"kind": "crop", "margin": [1, 3]}], (3, 8, 3), 0, 0),
    ("layernorm over channels", [96, 56, 56], [{"kind": "layernorm"}], (96, 56, 56), 192, 0),
    ("layernorm without bias", [96, 56, 56], [{"kind": "layernorm", "bias": False}], (96, 56, 56), 96, 0),
    ("layernorm over features", [768], [{"kind": "layernorm", "elementwise_affine": False}], (768,), 0, 0),
    ("groupnorm", [32, 4, 4], [{"kind": "groupnorm", "groups": 8}], (32, 4, 4), 64, 0),
    ("instancenorm2d", [32, 4, 4], ["instancenorm2d"], (32, 4, 4), 0, 0),
    ("instancenorm2d affine", [32, 4, 4], [{"kind": "instancenorm2d", "affine": True}], (32, 4, 4), 64, 0),
    ("prelu, one slope", [32, 4, 4], ["prelu"], (32, 4, 4), 1, 0),
    ("prelu per channel", [32, 4, 4], [{"kind": "prelu", "per_channel": True}], (32, 4, 4), 32, 0),
    ("layer scale", [96, 56, 56], ["layer_scale"], (96, 56, 56), 96, 0),
    ("channel linear", [96, 56, 56], [{"kind": "channel_linear", "out": 384}], (384, 56, 56), 96 * 384 + 384,
     96 * 384 * 56 * 56),
    ("stochastic depth", [96, 56, 56], [{"kind": "stochastic_depth", "p": 0.1}], (96, 56, 56), 0, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("input", "layers", "shape", "params", "macs"), [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES]
)
def test_layer_rule(input: list[int], layers: list[Any], shape: tuple[int, ...], params: int, macs: int) -> None:
    row = report_of(layers, input).rows[-1]
    assert (row.output_shape, row.params, row.macs, row.flops) == (shape, params, macs, 2 * macs)


# (id, input, layers, activations of the last row) -- what each kind allocates at inference
MEMORY_CASES = [
    ("relu out of place", [8, 4, 4], ["relu"], 128),
    ("relu in place", [8, 4, 4], [{"kind": "relu", "inplace": True}], 0),
    ("leaky relu in place", [8, 4, 4], [{"kind": "leaky_relu", "inplace": True, "negative_slope": 0.2}], 0),
    ("tanh", [8, 4, 4], ["tanh"], 128),
    ("sigmoid", [8], ["sigmoid"], 8),
    ("dropout is identity at inference", [8], ["dropout"], 0),
    ("flatten is a view", [8, 4, 4], ["flatten"], 0),
    ("crop is a view", [8, 4, 4], [{"kind": "crop", "margin": 1}], 0),
    ("upsample allocates its output", [8, 4, 4], [{"kind": "upsample", "scale": 2}], 512),
    (
        "convtranspose + fused sigmoid",
        [2, 4, 4],
        [{"kind": "convtranspose2d", "out": 1, "kernel": 2, "stride": 2, "activation": "sigmoid"}],
        128,
    ),
    ("conv + fused relu in place", [3, 4, 4], [conv(padding=1, activation="relu")], 128),
    ("conv + fused sigmoid is a second tensor", [3, 4, 4], [conv(padding=1, activation="sigmoid")], 256),
    ("linear + fused softmax", [16], [{"kind": "linear", "out": 10, "activation": "softmax"}], 20),
    ("layer scale is a new tensor", [8, 4, 4], ["layer_scale"], 128),
    (
        "channel linear + gelu is a second tensor",
        [8, 4, 4],
        [{"kind": "channel_linear", "out": 2, "activation": "gelu"}],
        64,
    ),
    ("stochastic depth is identity at inference", [8, 4, 4], [{"kind": "stochastic_depth", "p": 0.5}], 0),
    ("flatten copies a channels-last input", [8, 4, 4], ["layernorm", "flatten"], 128),
    ("flatten views a channels-last 1x1 plane", [8, 1, 1], ["layernorm", "flatten"], 0),
]


@pytest.mark.parametrize(
    ("input", "layers", "activations"), [c[1:] for c in MEMORY_CASES], ids=[c[0] for c in MEMORY_CASES]
)
def test_activation_memory_rule(input: list[int], layers: list[Any], activations: int) -> None:
    report = report_of(layers, input, dtype="float16")
    assert report.rows[-1].activations == activations
    assert report.rows[-1].activation_bytes == 2 * activations


# (id, input, layers, text the one error line must contain)
ERROR_CASES = [
    ("zero output", [64, 2, 2], [conv()], "output height would be 0 (input 64x2x2, kernel 3x3, padding 0)"),
    ("negative output", [1, 3, 3], [{"kind": "maxpool2d", "kernel": 9, "stride": 1}], "output height would be -5"),
    ("groups vs input channels", [64, 8, 8], [conv(groups=3, out=6)], "groups=3 does not divide the 64 input channels"),
    ("groups vs output channels", [4, 8, 8], [conv(groups=2, out=5)], "groups=2 does not divide the 5 output channels"),
    ("conv in mismatch", [3, 8, 8], [conv(**{"in": 1})], "in: 1, but the input has 3 channels"),
    (
        "linear in mismatch",
        [512, 7, 7],
        ["flatten", {"kind": "linear", "out": 10, "in": 4096}],
        "in: 4096, but the input has 25088 features",
    ),
    ("linear needs flatten", [512, 7, 7], [{"kind": "linear", "out": 10}], "add '- flatten' before it"),
    ("conv after flatten", [3, 8, 8], ["flatten", conv()], "conv2d needs a C x H x W input, got 192"),
    (
        "same pool in ceil mode",
        [3, 8, 8],
        [{"kind": "maxpool2d", "kernel": 3, "stride": 2, "padding": "same", "ceil_mode": True}],
        "padding 'same' sets the output size (ceil(W / S)): leave ceil_mode out",
    ),
    (
        "pool padding over half",
        [1, 9, 9],
        [{"kind": "maxpool2d", "kernel": 3, "padding": 2}],
        "padding 2 is more than half the kernel 3",
    ),
    ("lrn on flat", [10], [{"kind": "lrn", "size": 3}], "lrn needs a C x H x W input"),
    ("batchnorm1d on planes", [3, 4, 4], [{"kind": "batchnorm1d"}], "use batchnorm2d"),
    ("batchnorm2d on flat", [3], [{"kind": "batchnorm2d"}], "batchnorm2d needs a C x H x W input"),
    ("too large", [1, 2**24, 2**24], [conv(kernel=1, out=2**20)], "too large for any tensor"),
    ("upsample both", [3, 4, 4], [{"kind": "upsample", "scale": 2, "size": 8}], "give exactly one of scale"),
    ("upsample neither", [3, 4, 4], [{"kind": "upsample"}], "give exactly one of scale"),
    (
        "align_corners with nearest",
        [3, 4, 4],
        [{"kind": "upsample", "scale": 2, "align_corners": False}],
        "align_corners is only for mode bilinear, not nearest",
    ),
    (
        "output_padding too large",
        [3, 4, 4],
        [{"kind": "convtranspose2d", "out": 2, "kernel": 3, "stride": 2, "output_padding": 2}],
        "output_padding 2 (height) must be smaller than the stride 2 or the dilation 1",
    ),
    (
        "transposed output not positive",
        [3, 1, 1],
        [{"kind": "convtranspose2d", "out": 2, "kernel": 1, "padding": 1}],
        "output height would be -1: (input 1 - 1) x stride 1 - 2 x padding 1",
    ),
    (
        "transposed groups",
        [3, 4, 4],
        [{"kind": "convtranspose2d", "out": 4, "kernel": 2, "groups": 2}],
        "groups=2 does not divide the 3 input channels",
    ),
    (
        "pixel_shuffle channels",
        [6, 4, 4],
        [{"kind": "pixel_shuffle", "factor": 2}],
        "factor 2: its square 4 does not divide the 6 channels of 6x4x4",
    ),
    ("crop larger", [3, 8, 8], [{"kind": "crop", "size": [9, 4]}], "height 9 is larger than the input's 8"),
    (
        "crop margin too large",
        [3, 8, 8],
        [{"kind": "crop", "margin": [1, 4]}],
        "a margin of 4 at each side leaves no width of the input's 8",
    ),
    ("crop both", [3, 8, 8], [{"kind": "crop", "margin": 1, "size": 2}], "give exactly one of size"),
    (
        "groupnorm groups must divide",
        [6, 4, 4],
        [{"kind": "groupnorm", "groups": 4}],
        "groups 4 do not divide the 6 input channels (PyTorch refuses it); take one of 1, 2, 3, 6",
    ),
    (
        "groupnorm of one value per group",
        [2, 1, 1],
        [{"kind": "groupnorm", "groups": 2}],
        "each group's statistics need more than 1 value, got 1 channel x 1x1 (PyTorch refuses it)",
    ),
    (
        "instancenorm2d on one value per channel",
        [3, 1, 1],
        ["instancenorm2d"],
        "each channel's statistics need more than 1 value, got 1x1 (PyTorch refuses it in training and at inference)",
    ),
    ("channel linear on flat", [10], [{"kind": "channel_linear", "out": 3}], "channel_linear needs a C x H x W input"),
]


@pytest.mark.parametrize(("input", "layers", "text"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_geometry_error(input: list[int], layers: list[Any], text: str) -> None:
    with pytest.raises(SpecError) as err:
        report_of(layers, input)
    assert text in str(err.value)
    assert str(err.value).startswith(f"layer {len(layers)} ")
    assert "\n" not in str(err.value)


def test_independent_problems_are_all_reported() -> None:
    with pytest.raises(SpecError) as err:
        report_of([conv(groups=3, out=7, **{"in": 5})], [4, 8, 8])
    assert len(err.value.problems) == 3


def test_fit_warning_and_strict() -> None:
    layers = [{"kind": "maxpool2d", "kernel": 2}]
    report = report_of(layers, [1, 7, 6])
    assert report.rows[-1].output_shape == (1, 3, 3)
    [warning] = report.warnings
    assert warning.message.startswith("layer 1 maxpool2d 'pool1': height: (7 - 2 + 0) / 2 = 2.5 is not a whole number")
    with pytest.raises(SpecError, match="is not a whole number"):
        report_of(layers, [1, 7, 6], strict=True)
    assert not report_of([{**layers[0], "ceil_mode": True}], [1, 7, 6], strict=True).warnings


def test_batch_dtype_and_input_override() -> None:
    spec = spec_of([conv(padding=1), "flatten", {"kind": "linear", "out": 10}], [3, 8, 8])
    one = analyze(spec)
    four = analyze(spec, batch=4, dtype="bfloat16")
    assert four.totals.params == one.totals.params
    assert four.totals.param_bytes == one.totals.params * 2
    assert four.totals.macs == 4 * one.totals.macs
    assert four.totals.activations == 4 * one.totals.activations
    assert four.totals.activation_bytes == 4 * 2 * one.totals.activations
    assert analyze(spec, dtype="int8").totals.activation_bytes == one.totals.activations
    with pytest.raises(SpecError, match=r"in: 512, but the input has 2048 features"):
        analyze(
            spec_of([conv(padding=1), "flatten", {"kind": "linear", "out": 10, "in": 512}], [3, 8, 8]),
            input_shape=(3, 16, 16),
        )
    assert analyze(spec, input_shape=(3, 4, 4)).rows[1].output_shape == (8, 4, 4)


def test_repeat_and_auto_names() -> None:
    report = report_of(
        [conv(padding=1, repeat=3, name="block"), {"kind": "maxpool2d", "kernel": 2}, conv(padding=1), "relu"],
        [3, 8, 8],
    )
    assert [r.name for r in report.rows] == ["input", "block_1", "block_2", "block_3", "pool1", "conv1", "relu1"]


def test_receptive_field_through_stride_and_dilation() -> None:
    report = report_of([conv(stride=2), conv(dilation=2), {"kind": "maxpool2d", "kernel": 2}], [3, 64, 64])
    sizes = [r.receptive_field.size[0] for r in report.rows[1:]]  # type: ignore[union-attr]
    strides = [r.receptive_field.stride[0] for r in report.rows[1:]]  # type: ignore[union-attr]
    assert sizes == [3, 3 + 4 * 2, 11 + 1 * 2] and strides == [2, 2, 4]
    assert report_of([{"kind": "linear", "out": 3}], [5]).rows[-1].receptive_field is None


def test_receptive_field_through_upsampling() -> None:
    """An upsampling by 2 halves the jump (a fraction), a conv after it grows the field by (K - 1) x jump, each
    layer's field the widest over the positions' phases (tests/test_receptive_field.py checks it with autograd)."""
    up = [conv(), {"kind": "upsample", "scale": 2}, conv(), {"kind": "convtranspose2d", "out": 1, "kernel": 3,
          "stride": 3}, {"kind": "conv2d", "out": 1, "kernel": 3, "stride": 6}]  # fmt: skip
    report = report_of(up, [3, 16, 16])
    fields = [(r.receptive_field.size[0], r.receptive_field.stride[0]) for r in report.rows[1:]]  # type: ignore[union-attr]
    half, sixth = Fraction(1, 2), Fraction(1, 6)
    assert fields == [(3, 1), (3, half), (4, half), (4, sixth), (4, 1)]  # as autograd reads them
    # whole jumps stay ints, so every output without upsampling is as before; fractions print as 1/2
    assert type(fields[-1][1]) is int
    row = report.rows[3]
    assert rf_text(row) == "4/(1/2)"
    assert to_dict(report)["layers"][3]["receptive_field"] == {"size": [4, 4], "stride": ["1/2", "1/2"]}
    assert "1/2x1/2" in to_csv(report)


def test_totals_are_sums_of_rows() -> None:
    report = report_of(
        [conv(padding=1, activation="relu"), {"kind": "batchnorm2d"}, "flatten", {"kind": "linear", "out": 3}]
    )
    t = report.totals
    for field in (
        "params",
        "params_trainable",
        "params_non_trainable",
        "macs",
        "flops",
        "activations",
        "activation_bytes",
    ):
        assert getattr(t, field) == sum(getattr(r, field) for r in report.rows), field


# --- properties ---------------------------------------------------------------------------


@given(
    size=st.integers(1, 300),
    kernel=st.integers(1, 11),
    stride=st.integers(1, 6),
    padding=st.integers(0, 5),
    dilation=st.integers(1, 3),
)
def test_output_size_counts_window_positions(size: int, kernel: int, stride: int, padding: int, dilation: int) -> None:
    """Floor mode: the number of window starts i*S with the whole window inside the padded input."""
    eff = effective_kernel(kernel, dilation)
    positions = sum(1 for start in range(0, size + 2 * padding, stride) if start + eff <= size + 2 * padding)
    assert max(output_size(size, kernel, stride, padding, dilation), 0) == positions


@given(size=st.integers(1, 300), kernel=st.integers(1, 6), stride=st.integers(1, 6), padding=st.integers(0, 3))
def test_ceil_mode_keeps_last_window_starting_inside(size: int, kernel: int, stride: int, padding: int) -> None:
    padding = min(padding, kernel // 2)
    out = output_size(size, kernel, stride, padding, ceil_mode=True)
    floor = output_size(size, kernel, stride, padding)
    assert floor <= out <= floor + 1
    if out >= 1:
        assert (out - 1) * stride < size + padding  # the last window starts inside the input or left padding


@given(
    kernel=st.integers(1, 6).map(lambda k: 2 * k - 1),
    dilation=st.integers(1, 3),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
)
def test_same_padding_keeps_size_at_stride_1(kernel: int, dilation: int, h: int, w: int) -> None:
    pad = dilation * (kernel - 1) // 2
    explicit = report_of([conv(kernel=kernel, dilation=dilation, padding=pad)], [3, h, w]).rows[-1]
    same = report_of([conv(kernel=kernel, dilation=dilation, padding="same")], [3, h, w]).rows[-1]
    assert explicit.output_shape == same.output_shape == (8, h, w)


conv_layers = st.lists(
    st.fixed_dictionaries(
        {
            "kind": st.just("conv2d"),
            "out": st.integers(1, 16),
            "kernel": st.integers(1, 3),
            "padding": st.just("same"),
            "bias": st.booleans(),
        }
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=50)
@given(layers=conv_layers, a=st.integers(4, 40), b=st.integers(4, 40), c=st.integers(1, 8))
def test_params_do_not_depend_on_input_size(layers: list[dict[str, Any]], a: int, b: int, c: int) -> None:
    small = report_of(layers, [c, a, a])
    large = report_of(layers, [c, b, a + b])
    assert [r.params for r in small.rows] == [r.params for r in large.rows]
    assert small.totals.macs * (b * (a + b)) == large.totals.macs * (a * a)  # MACs scale with the plane
