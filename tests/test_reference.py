"""The classic tables, row by row, from tests/reference/ (the figures we must reproduce)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REFERENCE, SPECS
from helpers import hwc, report_of

from cnncalc import Report, SpecError, analyze, load_spec


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _table_rows(report: Report) -> list[Any]:
    """The rows a lecture table lists: the input and every layer that allocates an output."""
    return [r for r in report.rows if r.kind == "input" or r.activations > 0]


def test_vgg16_matches_cs231n_table_row_by_row(reference: Path) -> None:
    expected = _csv(reference / "cs231n_vgg16.csv")
    rows = _table_rows(analyze(load_spec(SPECS / "vgg16.yaml")))
    assert len(rows) == len(expected)
    for row, ref in zip(rows, expected, strict=True):
        c, h, w = int(ref["channels"]), int(ref["height"]), int(ref["width"])
        assert row.output_shape == ((c,) if ref["layer"].startswith("FC") else (c, h, w)), ref["layer"]
        assert row.activations == int(ref["activations"]), ref["layer"]
        assert row.weights == int(ref["params_no_bias"]), ref["layer"]
        assert row.params == int(ref["params_with_bias"]), ref["layer"]


def test_vgg16_totals_are_the_sum_of_the_rows_not_the_slide_footer(reference: Path) -> None:
    worked = yaml.safe_load((reference / "worked_examples.yaml").read_text())["vgg16_memory_total"]
    report = analyze(load_spec(SPECS / "vgg16.yaml"))
    t = report.totals
    assert (
        t.activations
        == worked["sum_of_rows"]
        == sum(int(r["activations"]) for r in _csv(reference / "cs231n_vgg16.csv"))
    )
    assert t.activation_bytes == 4 * worked["sum_of_rows"]  # 60.95 MB, not 93 MB
    assert t.activations != worked["slide_total_claim"]
    assert sum(r.weights for r in report.rows) == worked["params_no_bias"]
    assert t.params == worked["params_with_bias"]
    assert any("24M" in note for note in report.notes), "the summary must explain the slide's footer"


def test_alexnet_matches_cs231n_walkthrough(reference: Path) -> None:
    expected = _csv(reference / "cs231n_alexnet.csv")
    report = analyze(load_spec(SPECS / "alexnet.yaml"))
    rows = _table_rows(report)
    assert len(rows) == len(expected)
    for row, ref in zip(rows, expected, strict=True):
        c, h, w = int(ref["channels"]), int(ref["height"]), int(ref["width"])
        assert row.output_shape == ((c,) if ref["layer"].startswith("FC") else (c, h, w)), ref["layer"]
        assert row.weights == int(ref["params_no_bias"]), ref["layer"]
        assert row.params == int(ref["params_with_bias"]), ref["layer"]
    assert not report.warnings


VGG_SPECS = {"A": "vgg11", "A-LRN": "vgg11_lrn", "B": "vgg13", "C": "vgg16_c", "D": "vgg16", "E": "vgg19"}


@pytest.mark.parametrize("ref", _csv(REFERENCE / "vgg_table2.csv"), ids=lambda r: r["config"])
def test_vgg_paper_table2(ref: dict[str, str]) -> None:
    report = analyze(load_spec(SPECS / f"{VGG_SPECS[ref['config']]}.yaml"))
    assert report.totals.params == int(ref["params_exact_with_bias"])
    assert round(report.totals.params / 1e6) == int(ref["params_millions_in_paper"])
    weight_layers = sum(1 for r in report.rows if r.kind in ("conv2d", "linear"))
    assert weight_layers == int(ref["weight_layers"])


# --- worked_examples.yaml ------------------------------------------------------------


@pytest.fixture(scope="module")
def worked(reference: Path) -> dict[str, Any]:
    return yaml.safe_load((reference / "worked_examples.yaml").read_text())  # type: ignore[no-any-return]


def _conv(case: dict[str, Any], strict: bool) -> Report:
    w = case["input"]
    conv = {"kind": "conv2d", "out": 1, "kernel": case["kernel"], "stride": case["stride"], "padding": case["pad"]}
    return report_of([conv], [1, w, w], strict=strict)


def test_worked_conv_output_sizes(worked: dict[str, Any]) -> None:
    for case in worked["conv_output_size"]:
        if "output" in case:
            report = _conv(case, strict=True)
            assert report.rows[-1].output_shape[1:] == (case["output"], case["output"]), case
        else:
            with pytest.raises(SpecError) as err:
                _conv(case, strict=True)
            span = case["input"] - case["kernel"] + 2 * case["pad"]
            expected = f"({case['input']} - {case['kernel']} + {2 * case['pad']}) / {case['stride']} = "
            assert expected in str(err.value), case
            assert f"{span / case['stride']:.2f}".rstrip("0") in str(err.value)
            assert "is not a whole number" in str(err.value)
            # without --strict PyTorch's floor is used, with a visible warning
            assert len(_conv(case, strict=False).warnings) == 1
    first = next(c for c in worked["conv_output_size"] if "error" in c)
    with pytest.raises(SpecError, match=r"\(7 - 3 \+ 0\) / 3 = 1\.33 is not a whole number: the filter does not fit"):
        _conv(first, strict=True)


def test_worked_same_padding(worked: dict[str, Any]) -> None:
    for case in worked["same_padding"]:
        k, p = case["kernel"], case["pad"]
        explicit = report_of([{"kind": "conv2d", "out": 4, "kernel": k, "padding": p}], [3, 17, 17], strict=True)
        same = report_of([{"kind": "conv2d", "out": 4, "kernel": k, "padding": "same"}], [3, 17, 17], strict=True)
        assert explicit.rows[-1].output_shape == same.rows[-1].output_shape == (4, 17, 17)
        assert explicit.rows[-1].macs == same.rows[-1].macs


def test_worked_conv_layers(worked: dict[str, Any]) -> None:
    for case in worked["conv_layer"]:
        if "input" not in case:
            continue
        conv = {
            "kind": "conv2d",
            "out": case["filters"],
            "kernel": case["kernel"],
            "stride": case["stride"],
            "padding": case["pad"],
        }
        row = report_of([conv], list(hwc(case["input"])), strict=True).rows[-1]
        assert row.output_shape == hwc(case["output"])
        if "params" in case:
            assert row.params == case["params"]
            assert row.params // case["filters"] == case["params_per_filter"]
        if "params_no_bias" in case:
            assert row.weights == case["params_no_bias"]


def test_worked_bottleneck(worked: dict[str, Any]) -> None:
    ref = worked["bottleneck_1x1"]
    plain = report_of([{"kind": "conv2d", "out": 256, "kernel": 3, "padding": 1, "bias": False}], [256, 56, 56])
    bottleneck = report_of(
        [
            {"kind": "conv2d", "out": 64, "kernel": 1, "bias": False},
            {"kind": "conv2d", "out": 64, "kernel": 3, "padding": 1, "bias": False},
            {"kind": "conv2d", "out": 256, "kernel": 1, "bias": False},
        ],
        [256, 56, 56],
    )
    assert plain.totals.params == ref["plain_3x3_256_to_256_no_bias"]
    assert bottleneck.totals.params == ref["bottleneck_no_bias"]
    assert bottleneck.rows[-1].output_shape == plain.rows[-1].output_shape


def test_worked_mnist_example(worked: dict[str, Any]) -> None:
    ref = worked["pytorch_mnist_example"]
    report = analyze(load_spec(SPECS / "mnist_cnn.yaml"))
    assert report.input_shape == hwc(ref["input"])
    pools = [r for r in report.rows if r.kind == "maxpool2d"]
    assert pools[2].output_shape == hwc(ref["after_third_pool"])
    assert report.totals.params == ref["params"]
    assert len(report.warnings) == 1 and "(7 - 2 + 0) / 2 = 2.5" in report.warnings[0].message


def test_worked_keras_happy_model(worked: dict[str, Any]) -> None:
    ref = worked["keras_happy_model"]
    report = analyze(load_spec(SPECS / "happy_model.yaml"))
    by_kind = {r.kind: r for r in report.rows}
    assert report.input_shape == hwc(ref["input"])
    assert by_kind["zeropad2d"].output_shape == hwc(ref["after_padding"])
    assert by_kind["conv2d"].output_shape == hwc(ref["after_conv"])
    assert by_kind["maxpool2d"].output_shape == hwc(ref["after_pool"])
    t = report.totals
    assert (t.params, t.params_trainable, t.params_non_trainable) == (
        ref["params_total"],
        ref["params_trainable"],
        ref["params_non_trainable"],
    )


def test_worked_lenet5(worked: dict[str, Any]) -> None:
    assert analyze(load_spec(SPECS / "lenet5.yaml"), strict=True).totals.params == worked["lenet5"]["params"]


def test_worked_receptive_fields(worked: dict[str, Any]) -> None:
    for case in worked["receptive_field"]:
        n = int(case["layers"].split(" x ")[0])
        report = report_of([{"kind": "conv2d", "out": 8, "kernel": 3, "repeat": n}], [3, 32, 32])
        rf = report.rows[-1].receptive_field
        assert rf is not None and rf.size == (case["receptive_field"],) * 2 and rf.stride == (1, 1)


def test_worked_alexnet_totals(worked: dict[str, Any]) -> None:
    ref = worked["alexnet_totals"]
    assert analyze(load_spec(SPECS / "alexnet.yaml")).totals.params == ref["single_tower_params"]
    assert analyze(load_spec(SPECS / "alexnet_grouped.yaml")).totals.params == ref["two_group_params"]


def test_worked_yolo_head(worked: dict[str, Any]) -> None:
    classes, anchors = 80, 5
    head = report_of([{"kind": "conv2d", "out": (5 + classes) * anchors, "kernel": 1}], [1024, 19, 19])
    assert head.rows[-1].output_shape == hwc(worked["yolo_head"]["output"])
