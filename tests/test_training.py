"""What a training forward keeps for backward, by hand: one table row per rule of cnncalc.training.

Every figure is worked out from the rule it tests; tests/test_torch_backend.py checks the same
rules against PyTorch's saved_tensors_hooks on every shipped spec and on random ones.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import spec_of

from cnncalc import analyze
from cnncalc.training import saved_for_backward

N, F = 2, 4  # batch, bytes per float32
CONV = {"kind": "conv2d", "out": 4, "kernel": 3}  # 3x8x8 -> 4x6x6
X = N * 3 * 8 * 8 * F  # the input, kept by the first conv
Y = N * 4 * 6 * 6 * F  # the conv's output

CASES: list[tuple[str, list[Any], list[int]]] = [
    ("conv keeps its input", [CONV], [0, X]),
    ("a fused relu keeps the conv's output", [{**CONV, "activation": "relu"}], [0, X + Y]),
    ("a fused relu6 keeps a copy (in place)", [{**CONV, "activation": "relu6"}], [0, X + Y]),
    ("relu keeps its result", [CONV, "relu"], [0, X, Y]),
    ("relu in place keeps its input's storage", [CONV, {"kind": "relu", "inplace": True}], [0, X, Y]),
    ("a tensor kept twice counts once", [CONV, {"kind": "relu", "inplace": True}, CONV], [0, X, Y, 0]),
    ("relu6 in place keeps a copy of its input", [CONV, {"kind": "relu6", "inplace": True}, CONV], [0, X, Y, Y]),
    ("leaky relu in place keeps its input", [CONV, {"kind": "leaky_relu", "inplace": True}, CONV], [0, X, Y, 0]),
    ("tanh keeps its result", [CONV, "tanh", "sigmoid"], [0, X, Y, Y]),
    (
        "max pool keeps its input and int64 indices",
        [CONV, {"kind": "maxpool2d", "kernel": 2}],
        [0, X, Y + N * 4 * 3 * 3 * 8],
    ),
    ("avg pool keeps its input", [CONV, {"kind": "avgpool2d", "kernel": 2}], [0, X, Y]),
    ("a global average is a mean: nothing", [CONV, "global_avgpool2d"], [0, X, 0]),
    ("an adaptive average to 2x2 keeps its input", [CONV, {"kind": "adaptive_avgpool2d", "output": 2}], [0, X, Y]),
    ("batch norm keeps its input and 2 stats per channel", [CONV, "batchnorm2d"], [0, X, Y + 2 * 4 * F]),
    ("zero padding and flatten keep nothing", [CONV, {"kind": "zeropad2d", "padding": 1}, "flatten"], [0, X, 0, 0]),
    (
        "lrn keeps its input, padded squares, two maps",
        [CONV, {"kind": "lrn", "size": 5}],
        [0, X, Y + (N * (4 + 4) * 6 * 6 + 2 * N * 4 * 6 * 6) * F],
    ),
    ("dropout keeps a bool mask (CUDA)", [CONV, "dropout"], [0, X, N * 4 * 6 * 6]),
    ("dropout p=0 keeps nothing", [CONV, {"kind": "dropout", "p": 0}], [0, X, 0]),
    (
        "before any parameter nothing needs a gradient",
        ["relu", {"kind": "maxpool2d", "kernel": 2}, CONV],
        [0, 0, 0, N * 3 * 4 * 4 * F],
    ),
    ("linear keeps its input (the flattened view)", [CONV, "flatten", {"kind": "linear", "out": 5}], [0, X, 0, Y]),
    (
        "upsampling keeps only sizes",
        [
            CONV,
            {"kind": "upsample", "scale": 2},
            {"kind": "upsample", "scale": 2, "mode": "bilinear"},
            {"kind": "pixel_shuffle", "factor": 2},
        ],
        [0, X, 0, 0, 0],
    ),
    (
        "a transposed conv keeps its input",
        [CONV, {"kind": "convtranspose2d", "out": 2, "kernel": 2, "stride": 2}],
        [0, X, Y],
    ),
    (
        "a crop is a view: a conv after it keeps the viewed storage",
        [CONV, {"kind": "crop", "margin": 1}, CONV],
        [0, X, 0, Y],
    ),
    ("layer norm keeps its input and 2 stats per position", [CONV, "layernorm"], [0, X, Y + 2 * N * 6 * 6 * F]),
    ("group norm keeps its input and 2 stats per group", [CONV, {"kind": "groupnorm", "groups": 2}],
     [0, X, Y + 2 * N * 2 * F]),
    ("instance norm without affine keeps its input and stats", [CONV, "instancenorm2d"], [0, X, Y + 2 * N * 4 * F]),
    ("prelu and layer scale keep their input", [CONV, "prelu", "layer_scale"], [0, X, Y, Y]),
    # a linear layer over channels keeps its input channels-last: a copy after a conv, the input after a layer norm
    ("channel linear keeps a channels-last copy", [CONV, {"kind": "channel_linear", "out": 5}], [0, X, Y]),
    ("channel linear after a layer norm keeps its input", [CONV, "layernorm", {"kind": "channel_linear", "out": 5}],
     [0, X, Y + 2 * N * 6 * 6 * F, Y]),
    ("channel linear + gelu keeps the matmul's result", [CONV, "layernorm", {"kind": "channel_linear", "out": 5,
     "activation": "gelu"}], [0, X, Y + 2 * N * 6 * 6 * F, Y + N * 5 * 6 * 6 * F]),
    ("instance norm keeps a contiguous copy of a channels-last input", ["layernorm", CONV, "instancenorm2d"],
     [0, X + 2 * N * 8 * 8 * F, X, Y + 2 * N * 4 * F]),
    ("stochastic depth keeps its noise, a value per image", [CONV, {"kind": "stochastic_depth", "p": 0.2}],
     [0, X, N * F]),
    ("stochastic depth per batch keeps one value", [CONV, {"kind": "stochastic_depth", "p": 0.2, "mode": "batch"}],
     [0, X, F]),
]  # fmt: skip


@pytest.mark.parametrize(("layers", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_kept_for_backward_per_row(layers: list[Any], expected: list[int]) -> None:
    report = analyze(spec_of(layers, [3, 8, 8]), batch=N)
    assert [r.saved_bytes for r in report.rows] == expected


def test_dropout_on_the_cpu_keeps_a_mask_of_the_dtype() -> None:
    report = analyze(spec_of([CONV, "dropout"], [3, 8, 8]), batch=N)
    cpu = saved_for_backward(report.rows, dtype_bytes=F, batch=N, device="cpu")
    assert cpu == [0, X, N * 4 * 6 * 6 * F]


def test_residual_add_with_relu_keeps_its_result() -> None:
    layers = [
        CONV,
        {
            "kind": "residual",
            "body": [{"kind": "conv2d", "out": 4, "kernel": 3, "padding": 1}],
            "activation": "relu",
            "inplace": True,
        },
    ]
    report = analyze(spec_of(layers, [3, 8, 8]), batch=N)
    add = report.rows[-1]
    assert add.kind == "add" and add.saved_bytes == Y  # the body conv's output, added to in place, then relu'd


def test_training_total_is_params_grads_and_kept() -> None:
    report = analyze(spec_of([{**CONV, "activation": "relu"}, "batchnorm2d"], [3, 8, 8]), batch=N)
    t = report.totals
    assert t.grad_bytes == t.params_trainable * F
    # batch norm keeps the relu's output, which the relu already keeps: only its two statistics are new
    assert t.saved_bytes == sum(r.saved_bytes for r in report.rows) == X + Y + 2 * 4 * F
    # the batch norm's output, which the loss reads, is kept by no op: it counts once more
    assert t.output_bytes == Y
    assert t.training_bytes == t.param_bytes + t.grad_bytes + t.saved_bytes + t.output_bytes
    folded = analyze(spec_of([{"kind": "sequential", "name": "s", "layers": [CONV, "relu"]}], [3, 8, 8])).folded(1)
    assert folded.totals.saved_bytes == analyze(spec_of([CONV, "relu"], [3, 8, 8])).totals.saved_bytes


def test_an_activation_after_an_in_place_add_keeps_a_new_tensor() -> None:
    """``out += identity`` writes into the body's output; a tanh after it makes (and keeps) a new tensor."""
    body = [{"kind": "conv2d", "out": 3, "kernel": 1, "bias": False, "activation": "relu"}]
    layers = [{"kind": "residual", "body": body, "shortcut": "identity", "activation": "tanh", "inplace": True}]
    report = analyze(spec_of(layers, [3, 8, 8]), batch=N)
    assert report.rows[-1].saved_bytes == X  # the tanh's result: 3x8x8, like the input


def test_same_padding_with_an_even_kernel_keeps_a_padded_copy() -> None:
    """PyTorch pads the input by one more on the right and bottom, convolves that, and keeps it."""
    report = analyze(spec_of([{"kind": "conv2d", "out": 4, "kernel": 2, "padding": "same"}], [3, 8, 8]), batch=N)
    assert report.rows[1].saved_bytes == N * 3 * 9 * 9 * F
    report = analyze(spec_of([{"kind": "conv2d", "out": 4, "kernel": [3, 2], "padding": "same"}], [3, 8, 8]), batch=N)
    assert report.rows[1].saved_bytes == N * 3 * 8 * 9 * F


def test_batch_norm_statistics_are_float32_on_cuda() -> None:
    report = analyze(spec_of([CONV, "batchnorm2d"], [3, 8, 8]), batch=N, dtype="bfloat16")
    y = N * 4 * 6 * 6 * 2
    assert report.rows[2].saved_bytes == y + 2 * 4 * 4  # the summary: CUDA's float32 statistics
    cpu = saved_for_backward(report.rows, dtype_bytes=2, batch=N, device="cpu")
    assert cpu[2] == y + 2 * 4 * 2  # measured on the CPU (tests/test_torch_backend.py): bfloat16
