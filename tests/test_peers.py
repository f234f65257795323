"""`cnncalc peers`: other tools' counting rules, checked against the tools themselves."""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import pytest
from conftest import SPECS
from helpers import spec_of
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from strategies import random_specs
from typer.testing import CliRunner

from cnncalc import SpecError, analyze, load_spec
from cnncalc.cli import app
from cnncalc.peers import peer_counts

SPEC_FILES = sorted(SPECS.glob("*.yaml"))
ENV = {"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}


def by_tool(report: Any) -> dict[str, int]:
    return {c.tool.split()[0]: c.value for c in peer_counts(report)}


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_each_figure_is_macs_plus_its_terms(spec: Path) -> None:
    report = analyze(load_spec(spec))
    for c in peer_counts(report):
        assert c.macs == report.totals.macs and c.value == c.macs + sum(n for _, n in c.terms), c.tool
        # only the terms a tool adds for this network are listed; torchinfo's count of a linear layer over the
        # channels once per image, not at each position, is the one it takes away
        assert all(n > 0 or (c.tool.startswith("torchinfo") and "over channels" in what) for what, n in c.terms)
        assert all(n != 0 for _, n in c.terms)
    counts = by_tool(report)
    assert counts["torchvision"] == report.totals.macs
    assert counts["torch.utils.flop_counter"] == report.totals.flops


def _measured(report: Any) -> dict[str, int]:
    """What torchinfo, ptflops (pytorch backend) and thop print, running them on the built module."""
    torch = pytest.importorskip("torch")
    torchinfo = pytest.importorskip("torchinfo")
    ptflops = pytest.importorskip("ptflops")
    thop = pytest.importorskip("thop")
    from cnncalc import torch_backend as tb

    model = tb.build(report)
    shape = (report.batch, *report.input_shape)
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        info = torchinfo.summary(model, input_size=shape, verbose=0).total_mult_adds
        # ptflops builds its own input of batch 1 from the shape it is given
        flops, _ = ptflops.get_model_complexity_info(
            model, tuple(report.input_shape), as_strings=False, print_per_layer_stat=False, backend="pytorch"
        )
        macs, _ = thop.profile(tb.build(report), inputs=(torch.zeros(shape),), verbose=False)
    return {"torchinfo": int(info), "ptflops": int(flops), "thop": int(macs)}


@pytest.mark.torch
@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_the_tools_print_what_cnncalc_says_they_print(spec: Path) -> None:
    report = analyze(load_spec(spec))
    counts = by_tool(report)
    measured = _measured(report)
    assert {tool: counts[tool] for tool in measured} == measured


@pytest.mark.torch
def test_batch_counts_for_torchinfo_and_thop() -> None:
    report = analyze(load_spec(SPECS / "googlenet.yaml"), batch=3)
    counts, measured = by_tool(report), _measured(report)
    assert counts["torchinfo"] == measured["torchinfo"] and counts["thop"] == measured["thop"]


@pytest.mark.torch
@pytest.mark.parametrize(
    "layers",
    [
        [{"kind": "conv2d", "out": 4, "kernel": 3, "activation": "relu6"}, {"kind": "adaptive_avgpool2d", "output": 3}],
        [{"kind": "conv2d", "out": 4, "kernel": 3, "bias": False}, "batchnorm2d", {"kind": "leaky_relu"}, "softmax"],
        [{"kind": "conv2d", "out": 4, "kernel": 3}, {"kind": "batchnorm2d", "affine": False}, {"kind": "avgpool2d", "kernel": 2}],
        [{"kind": "conv2d", "out": 6, "kernel": 3}, {"kind": "lrn", "size": 3}, "flatten", "batchnorm1d", {"kind": "linear", "out": 5, "activation": "softmax"}],
        [{"kind": "residual", "body": [{"kind": "conv2d", "out": 3, "kernel": 3, "padding": 1}], "activation": "relu"}],
        [{"kind": "conv2d", "out": 4, "kernel": 3}, "silu", "gelu", {"kind": "gelu", "approximate": "tanh"}, "hardswish",
         "hardsigmoid", "elu", "selu", "mish", "softplus", "identity", {"kind": "pixel_unshuffle", "factor": 1}],
        [{"kind": "conv2d", "out": 4, "kernel": 3}, {"kind": "upsample", "scale": 2},
         {"kind": "upsample", "scale": [1, 3], "mode": "bilinear"}, {"kind": "upsample", "size": [20, 9]},
         {"kind": "convtranspose2d", "out": 8, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1},
         {"kind": "pixel_shuffle", "factor": 2}, {"kind": "crop", "margin": [3, 1]}, {"kind": "crop", "size": 5}],
        # a padding larger than the growth: fewer output positions than input ones (a negative term)
        [{"kind": "convtranspose2d", "out": 4, "kernel": 3, "padding": 1, "groups": 1, "activation": "relu"},
         {"kind": "convtranspose2d", "out": 2, "kernel": 1, "padding": 2, "bias": False}],
        [{"kind": "conv2d", "out": 4, "kernel": 3}, "layernorm", {"kind": "channel_linear", "out": 8}, "gelu",
         {"kind": "channel_linear", "out": 6, "activation": "gelu"},
         {"kind": "channel_linear", "out": 4, "bias": False}, "layer_scale", {"kind": "stochastic_depth", "p": 0.5},
         {"kind": "groupnorm", "groups": 2}, {"kind": "instancenorm2d", "affine": True}, "prelu",
         {"kind": "prelu", "per_channel": True}, {"kind": "layernorm", "elementwise_affine": False}, "flatten",
         {"kind": "layernorm", "bias": False}, {"kind": "groupnorm", "groups": 4, "affine": False}],
    ],
)  # fmt: skip
def test_the_tools_agree_on_other_layers(layers: list[Any]) -> None:
    report = analyze(spec_of(layers, [3, 11, 7]))
    counts = by_tool(report)
    measured = _measured(report)
    assert {tool: counts[tool] for tool in measured} == measured


def test_peers_command_and_json() -> None:
    result = CliRunner().invoke(app, ["peers", "specs/vgg16.yaml", "-f", "json"], env=ENV)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["macs"] == 15_470_264_320
    assert [p["tool"].split()[0] for p in data["peers"]] == [
        "torchvision",
        "torch.utils.flop_counter",
        "torchinfo",
        "ptflops",
        "thop",
    ]
    result = CliRunner().invoke(app, ["peers", "specs/vgg16.yaml"], env=ENV)
    assert result.exit_code == 0 and "15,523,175,400" in result.stdout  # ptflops' figure, checked above


@pytest.mark.torch
@settings(
    max_examples=int(os.environ.get("CNNCALC_PEERS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_tools_agree_on_random_specs(data: st.DataObject) -> None:
    drawn = data.draw(random_specs())
    try:
        report = analyze(
            spec_of(drawn["layers"], drawn["input"], **({"outputs": drawn["outputs"]} if "outputs" in drawn else {}))
        )
    except SpecError:
        event("the engine refuses")
        return
    event("checked against the tools")
    counts = by_tool(report)
    measured = _measured(report)
    assert {tool: counts[tool] for tool in measured} == measured, drawn


def test_peers_golden(update_golden: bool) -> None:
    from test_cli import check_golden

    result = CliRunner().invoke(app, ["peers", "specs/resnet18.yaml"], env=ENV)
    assert result.exit_code == 0
    check_golden("peers_resnet18.txt", result.stdout, update_golden)


@pytest.mark.torch
@pytest.mark.parametrize(
    "layers",
    [
        [{"kind": "std_conv2d", "out": 4, "kernel": 3, "gain": True, "activation": "relu"}],
        [{"kind": "std_conv2d", "out": 4, "kernel": 3, "stride": 2, "padding": "same", "bias": False}, {"kind": "grn"}],
        [{"kind": "conv2d", "out": 4, "kernel": 1}, {"kind": "layer_scale", "scalar": True, "inplace": True}],
        [{"kind": "space_to_depth", "factor": 2}, {"kind": "blur_pool2d"}],
    ],
    ids=["std_conv2d gain relu", "std_conv2d same, grn", "layer_scale scalar", "space_to_depth, blur_pool2d"],
)
def test_the_tools_count_the_newer_kinds_as_cnncalc_says(layers: list[dict[str, Any]]) -> None:
    """A subclass of nn.Conv2d (std_conv2d) is invisible to thop and ptflops, which hook by exact class."""
    report = analyze(spec_of(layers, [3, 8, 8]))
    measured = _measured(report)
    assert {tool: by_tool(report)[tool] for tool in measured} == measured
