"""`cnncalc roofline`: bytes moved by the stated convention, the bound, the totals, the devices."""

from __future__ import annotations

import json
from math import isfinite

import pytest
from helpers import report_of
from typer.testing import CliRunner

from cnncalc import analyze
from cnncalc.roofline import DEVICES, bytes_moved, roofline

ENV = {"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
F = 4  # float32 bytes


def run(*args: str) -> tuple[int, str, str]:
    from cnncalc.cli import app

    result = CliRunner().invoke(app, list(args), env=ENV)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


CONV = {"kind": "conv2d", "out": 4, "kernel": 3, "padding": 1}
# (id, layers on a 3x8x8 input, batch, the last row's bytes moved, worked out by hand)
CASES = [
    ("conv reads input and params, writes output", [CONV], 2, (2 * 3 * 64 + (4 * 27 + 4) + 2 * 4 * 64) * F),
    ("a fused relu adds nothing", [{**CONV, "activation": "relu"}], 1, (3 * 64 + 112 + 4 * 64) * F),
    ("an in-place relu reads and writes", [CONV, "relu"], 1, 2 * 4 * 64 * F),
    ("a pool", [CONV, {"kind": "maxpool2d", "kernel": 2}], 1, (4 * 64 + 4 * 16) * F),
    ("batch norm reads its 4 x C values", [CONV, "batchnorm2d"], 1, (2 * 4 * 64 + 4 * 4) * F),
    ("flatten is a view", [CONV, "flatten"], 1, 0),
    # a linear layer over channels leaves its result channels-last: flatten copies it into C·H·W order
    (
        "flatten copies a channels-last input",
        [CONV, {"kind": "channel_linear", "out": 5}, "flatten"],
        2,
        2 * 2 * 5 * 64 * F,
    ),
    ("dropout is the identity", [CONV, "flatten", "dropout"], 1, 0),
    ("linear", [CONV, "flatten", {"kind": "linear", "out": 10}], 3, (3 * 256 + 256 * 10 + 10 + 3 * 10) * F),
    (
        "an add reads both",
        [CONV, {"kind": "residual", "body": [{"kind": "conv2d", "out": 4, "kernel": 1}]}],
        1,
        3 * 4 * 64 * F,
    ),
]


@pytest.mark.parametrize(("layers", "batch", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bytes_moved(layers: list[object], batch: int, expected: int) -> None:
    report = report_of(layers, (3, 8, 8), batch=batch)
    assert bytes_moved(report.rows[-1], report.rows, report.batch, report.dtype_bytes) == expected


def test_bound_and_time_follow_the_roof() -> None:
    report = analyze("vgg16")
    roof = roofline(report, device="d", peak_flops=100e12, bandwidth=1e12)
    for r in roof.rows:
        compute, memory = r.flops / 100e12, r.bytes / 1e12
        assert r.time_s == max(compute, memory)
        assert r.bound == ("none" if r.flops == r.bytes == 0 else "compute" if compute >= memory else "memory")
        assert r.intensity == (r.flops / r.bytes if r.bytes else 0)
    assert roof.flops == report.totals.flops
    assert roof.time_s == pytest.approx(sum(r.time_s for r in roof.rows))
    assert 0 < roof.memory_bound_share < 1
    # conv3x3 on 224x224 is compute-bound at this ridge (100 FLOP/byte); the poolings are memory-bound
    by_name = {r.name: r for r in roof.rows}
    assert by_name["conv1_2"].bound == "compute" and by_name["pool1"].bound == "memory"


def test_folding_keeps_the_totals() -> None:
    report = analyze("resnet50", batch=8)
    flat = roofline(report, device="d", peak_flops=300e12, bandwidth=2e12)
    folded = roofline(report, device="d", peak_flops=300e12, bandwidth=2e12, depth=1)
    assert len(folded.rows) < len(flat.rows)
    assert (folded.flops, folded.bytes) == (flat.flops, flat.bytes)
    assert folded.time_s == pytest.approx(flat.time_s)


def test_json_contract() -> None:
    code, out, _ = run("roofline", "resnet18", "--device", "h100-sxm", "--dtype", "bf16", "-b", "32", "-f", "json")
    assert code == 0
    data = json.loads(out)
    device = DEVICES["h100-sxm"]
    assert data["device"] == {
        "name": "H100 SXM", "dtype": "bfloat16", "peak_flops": device.peaks["bfloat16"], "bandwidth": device.bandwidth,
    }  # fmt: skip
    assert set(data["rows"][0]) >= {"name", "flops", "bytes", "intensity", "bound", "time_s"}
    assert (
        data["totals"]["flops"] == sum(r["flops"] for r in data["rows"]) == analyze("resnet18", batch=32).totals.flops
    )
    assert data["totals"]["bytes"] == sum(r["bytes"] for r in data["rows"])
    assert data["totals"]["time_s"] == pytest.approx(sum(r["time_s"] for r in data["rows"]))


def test_table_and_csv() -> None:
    code, out, _ = run("roofline", "vgg16", "--device", "a100-80gb", "--depth", "1")
    assert code == 0 and "A100 80GB" in out and "memory-bound rows" in out
    code, out, _ = run("roofline", "vgg16", "--peak", "10", "--bandwidth", "100", "-f", "csv")
    lines = out.splitlines()
    assert lines[0] == "index,name,kind,flops,bytes,intensity,bound,time_s" and lines[-1].startswith(",total,")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--device", "nosuch"], "unknown device 'nosuch'; known: h100-sxm"),
        (["--device", "t4", "--dtype", "bf16"], "T4 has no published bfloat16 peak"),
        ([], "give --device NAME, or both --peak and --bandwidth"),
        (["--peak", "inf", "--bandwidth", "1"], "expected a positive, finite number"),
    ],
)
def test_bad_devices_are_usage_errors(args: list[str], text: str) -> None:
    code, out, err = run("roofline", "vgg16", *args)
    assert code == 2 and out == "" and text in " ".join(err.replace("│", " ").split())


@pytest.mark.torch
def test_measure_this_machine() -> None:
    pytest.importorskip("torch")
    code, out, err = run("roofline", "lenet5", "--device", "measure", "-f", "json")
    assert code == 0, err
    device = json.loads(out)["device"]
    assert "measured" in device["name"]
    assert isfinite(device["peak_flops"]) and device["peak_flops"] > 1e8
    assert isfinite(device["bandwidth"]) and device["bandwidth"] > 1e8


def test_roofline_golden(update_golden: bool) -> None:
    from test_cli import check_golden

    code, out, _ = run("roofline", "resnet50", "--device", "h100-sxm", "--dtype", "bf16", "-b", "64", "--depth", "1")
    assert code == 0
    check_golden("roofline_resnet50.txt", out, update_golden)
