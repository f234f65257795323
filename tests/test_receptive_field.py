"""The receptive field against autograd: the gradient of one output value says which input pixels it reads.

With every weight 1 and every bias 0 nothing cancels, so the input pixels with a non-zero gradient are
exactly those the value depends on (average pooling stands in for max pooling, whose gradient reaches
only the maximum). Over the positions whose field lies inside the input (the border clips the others),
the widest field is cnncalc's size and the fields move on by the jump, fractional after upsampling.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import pytest
import yaml
from conftest import SPECS
from helpers import report_of

torch = pytest.importorskip("torch")

from cnncalc import analyze, parse_spec  # noqa: E402
from cnncalc import torch_backend as tb  # noqa: E402

pytestmark = pytest.mark.torch

conv3 = {"kind": "conv2d", "out": 1, "kernel": 3}
CASES: dict[str, tuple[list[Any], int]] = {
    "conv": ([conv3, {"kind": "conv2d", "out": 1, "kernel": 3, "stride": 2, "padding": 1}], 40),
    "dilated conv": ([{"kind": "conv2d", "out": 1, "kernel": 3, "dilation": 2}, conv3], 40),
    "pool": ([{"kind": "avgpool2d", "kernel": 3, "stride": 2}, conv3, {"kind": "avgpool2d", "kernel": 2}], 48),
    "nearest x2": ([conv3, {"kind": "upsample", "scale": 2}, conv3], 24),
    "nearest x3, 2": ([conv3, {"kind": "upsample", "scale": [3, 2]}, {"kind": "conv2d", "out": 1, "kernel": 2}], 20),
    "nearest to a size": ([{"kind": "upsample", "size": 30}, conv3], 20),
    "bilinear x2": ([conv3, {"kind": "upsample", "scale": 2, "mode": "bilinear"}, conv3], 24),
    "bilinear x3": (
        [{"kind": "upsample", "scale": 3, "mode": "bilinear"}, {"kind": "conv2d", "out": 1, "kernel": 2}],
        20,
    ),
    "bilinear, corners": ([{"kind": "upsample", "size": 31, "mode": "bilinear", "align_corners": True}, conv3], 16),
    "up-conv 2x2 s2": ([conv3, {"kind": "convtranspose2d", "out": 1, "kernel": 2, "stride": 2}, conv3], 24),
    "transposed 3x3 s2": (
        [{"kind": "convtranspose2d", "out": 1, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}, conv3],
        20,
    ),
    "transposed 4x4 s2 p1": (
        [conv3, {"kind": "convtranspose2d", "out": 1, "kernel": 4, "stride": 2, "padding": 1}],
        20,
    ),
    "transposed with gaps": ([{"kind": "convtranspose2d", "out": 1, "kernel": 2, "stride": 3}, conv3], 16),
    "transposed, dilated": (
        [{"kind": "convtranspose2d", "out": 1, "kernel": 3, "stride": 2, "dilation": 2}, conv3],
        16,
    ),
    "down, then up": (
        [
            {"kind": "conv2d", "out": 1, "kernel": 3, "stride": 2},
            {"kind": "convtranspose2d", "out": 1, "kernel": 3, "stride": 2},
            conv3,
        ],
        40,
    ),
    "pixel shuffle": ([{"kind": "conv2d", "out": 4, "kernel": 3}, {"kind": "pixel_shuffle", "factor": 2}, conv3], 24),
    # a 2x2 stride-2 conv reads one pixel twice after a nearest x2, two pixels once the crop shifts the grid by one
    "phase: no crop": ([{"kind": "upsample", "scale": 2}, {"kind": "conv2d", "out": 1, "kernel": 2, "stride": 2}], 20),
    "phase: a crop shifts it": (
        [
            {"kind": "upsample", "scale": 2},
            {"kind": "crop", "margin": 1},
            {"kind": "conv2d", "out": 1, "kernel": 2, "stride": 2},
        ],
        20,
    ),
}


def test_a_crop_shifts_the_phase_of_an_upsampled_field() -> None:
    assert report_of(CASES["phase: no crop"][0], (1, 8, 8)).rows[-1].receptive_field.size == (1, 1)
    assert report_of(CASES["phase: a crop shifts it"][0], (1, 8, 8)).rows[-1].receptive_field.size == (2, 2)


def _fields(layers: list[Any], size: int) -> tuple[Any, list[tuple[int, int, int, int]]]:
    """The report, and per diagonal output position (q, q) whose field is inside: first and last row and column."""
    report = report_of(layers, (1, size, size))
    model = tb.build(report).double()
    for name, p in model.named_parameters():
        torch.nn.init.constant_(p, 0.0 if name.endswith("bias") else 1.0)
    x = torch.ones((1, 1, size, size), dtype=torch.float64, requires_grad=True)
    y = model(x)
    spans = []
    for q in range(min(y.shape[2], y.shape[3])):
        (grad,) = torch.autograd.grad(y[0, :, q, q].sum(), x, retain_graph=True)
        rows = grad[0, 0].abs().sum(dim=1).nonzero().flatten().tolist()
        cols = grad[0, 0].abs().sum(dim=0).nonzero().flatten().tolist()
        if rows and cols and rows[0] > 0 and rows[-1] < size - 1 and cols[0] > 0 and cols[-1] < size - 1:
            spans.append((rows[0], rows[-1], cols[0], cols[-1]))
        else:
            spans.append(None)
    return report, spans


@pytest.mark.parametrize("layers,size", list(CASES.values()), ids=list(CASES))
def test_the_field_is_what_autograd_reads(layers: list[Any], size: int) -> None:
    report, spans = _fields(layers, size)
    rf = report.rows[-1].receptive_field
    inside = [s for s in spans if s is not None]
    assert len(inside) >= 8, "too few positions inside the input to see every phase"
    assert (max(s[1] - s[0] + 1 for s in inside), max(s[3] - s[2] + 1 for s in inside)) == rf.size
    # the fields move on by the jump: over whole periods, exactly
    for axis in (0, 1):
        jump = Fraction(rf.stride[axis])
        period = jump.denominator * 6
        moved = [
            Fraction(b[2 * axis] - a[2 * axis], period)
            for a, b in zip(spans, spans[period:], strict=False)
            if a is not None and b is not None
        ]
        assert moved and set(moved) == {jump}, (axis, moved)


def test_the_unet_field_is_what_autograd_reads() -> None:
    """The shipped U-Net with one channel everywhere (and average pools): 204 pixels, 188 at a quarter of the
    positions (those the up-convolutions place differently), at a jump of 1."""
    text = re.sub(r"out: \d+", "out: 1", (SPECS / "unet.yaml").read_text()).replace("maxpool2d", "avgpool2d")
    report = analyze(parse_spec(yaml.safe_load(text)))
    assert report.rows[-1].receptive_field.size == (204, 204)
    model = tb.build(report).double()
    for name, p in model.named_parameters():
        torch.nn.init.constant_(p, 0.0 if name.endswith("bias") else 1.0)
    x = torch.ones((1, 1, 572, 572), dtype=torch.float64, requires_grad=True)
    y = model(x)
    sizes = []
    for q in range(16, 48):  # two periods of 16, inside the input
        (grad,) = torch.autograd.grad(y[0, 0, q, q], x, retain_graph=True)
        rows = grad[0, 0].abs().sum(dim=1).nonzero().flatten().tolist()
        assert rows[0] > 0 and rows[-1] < 571
        sizes.append(rows[-1] - rows[0] + 1)
    assert max(sizes) == 204 and sorted(set(sizes)) == [188, 204] and sizes.count(188) == 8
