"""Blocks, residuals and concatenations: published figures, errors, memory, receptive fields, folding."""

from __future__ import annotations

import json
import os
from math import prod
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REFERENCE, SPECS
from helpers import spec_of
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import random_specs
from test_cli import check_golden, run

from cnncalc import SpecError, analyze, load_spec, parse_spec
from cnncalc.engine import _one_stride

# torchvision's published figures (its weights' metadata: num_params, and "GFLOPS", which are MACs)
TORCHVISION = [
    ("resnet18", 11_689_512, 1.814),
    ("resnet34", 21_797_672, 3.664),
    ("resnet50", 25_557_032, 4.089),
    ("resnet101", 44_549_160, 7.801),
    ("resnet152", 60_192_808, 11.514),
    ("googlenet", 6_624_904, 1.498),
    ("mobilenet_v2", 3_504_872, 0.301),
    ("resnext50_32x4d", 25_028_904, 4.23),
    ("wide_resnet50_2", 68_883_240, 11.398),
    ("vgg16_bn", 138_365_992, 15.47),
    ("squeezenet1_0", 1_248_424, 0.819),
    ("mnasnet1_0", 4_383_312, 0.314),
    ("mobilenet_v3_small", 2_542_856, 0.057),
    ("mobilenet_v3_large", 5_483_032, 0.217),
    ("regnet_y_400mf", 4_344_144, 0.402),
    ("shufflenet_v2_x1_0", 2_278_604, 0.145),
    ("efficientnet_b0", 5_288_548, 0.386),
    # its auxiliary classifier is a second output, run in training only: not in the published GFLOPS
    ("inception_v3", 27_161_264, 5.713),
    ("densenet121", 7_978_856, 2.834),
    ("convnext_tiny", 28_589_128, 4.456),
]


@pytest.mark.parametrize(("name", "params", "gmacs"), TORCHVISION, ids=[t[0] for t in TORCHVISION])
def test_published_torchvision_figures(name: str, params: int, gmacs: float) -> None:
    report = analyze(load_spec(SPECS / f"{name}.yaml"))
    t = report.totals
    # torchvision's num_params counts parameters, not batch norm's running statistics (buffers)
    assert t.params_trainable == params
    assert t.params_non_trainable == sum(2 * r.output_shape[0] for r in report.rows if r.kind == "batchnorm2d")
    inference = sum(r.macs for r in report.rows if r.block[:1] != ("AuxLogits",))
    assert round(inference / 1e9, 3) == gmacs
    assert report.output_rows[0].output_shape == (1000,)


def test_resnet_stages_fold_to_the_papers_table(update_golden: bool) -> None:
    code, out, _ = run("summary", "specs/resnet50.yaml", "--depth", "1")
    assert code == 0
    check_golden("resnet50_depth1.txt", out, update_golden)
    report = analyze(load_spec(SPECS / "resnet50.yaml")).folded(1)
    stages = {r.name: r for r in report.rows if r.folded}
    assert list(stages) == ["layer1", "layer2", "layer3", "layer4"]
    assert [stages[s].output_shape for s in stages] == [(256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    assert [stages[s].kind for s in stages] == ["bottleneck x3", "bottleneck x4", "bottleneck x6", "bottleneck x3"]


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_folding_keeps_every_total(depth: int) -> None:
    full = analyze(load_spec(SPECS / "googlenet.yaml"))
    folded = full.folded(depth)
    assert folded.totals == full.totals
    assert len(folded.rows) < len(full.rows)
    assert sum(max(r.folded, 1) for r in folded.rows) == len(full.rows)
    assert all(len(r.block) < depth for r in folded.rows)


def test_json_rows_carry_block_paths_and_inputs() -> None:
    data = json.loads(run("summary", "specs/resnet18.yaml", "-f", "json")[1])
    rows = {r["name"]: r for r in data["layers"]}
    conv = rows["layer2.0.conv1"]
    assert conv["block"] == ["layer2", "0"] and conv["kind"] == "conv2d"
    add = rows["layer2.0.add1"]
    shortcut = rows["layer2.0.downsample.1"]
    assert add["kind"] == "add" and add["inputs"] == [rows["layer2.0.bn2"]["index"], shortcut["index"]]
    assert {"path": ["layer2"], "kind": "basic x2", "detail": "width=128"} in data["blocks"]
    assert data["totals"]["peak_activation_bytes"] > 0
    folded = json.loads(run("summary", "specs/resnet18.yaml", "-f", "json", "--depth", "1")[1])
    assert [r["name"] for r in folded["layers"] if r["folded"]] == ["layer1", "layer2", "layer3", "layer4"]


def test_bottleneck_worked_example() -> None:
    ref = yaml.safe_load((REFERENCE / "worked_examples.yaml").read_text())["bottleneck_1x1"]
    report = analyze(load_spec(SPECS / "bottleneck.yaml")).folded(1)
    blocks = {r.name: r for r in report.rows if r.folded}
    assert blocks["plain"].params == ref["plain_3x3_256_to_256_no_bias"]
    assert blocks["bottleneck"].params == ref["bottleneck_no_bias"]
    assert blocks["plain"].output_shape == blocks["bottleneck"].output_shape == (256, 56, 56)


# --- residuals and concatenations ---------------------------------------------------------


def conv(out: int, kernel: int = 1, **kw: Any) -> dict[str, Any]:
    return {"kind": "conv2d", "out": out, "kernel": kernel, "bias": False, **kw}


def test_shortcut_kinds() -> None:
    body = [conv(8, 3, stride=2, padding=1), {"kind": "batchnorm2d"}]
    projected = analyze(spec_of([{"kind": "residual", "body": body, "shortcut": "projection"}], [4, 8, 8]))
    names = [r.name for r in projected.rows]
    assert names == ["input", "conv1", "bn1", "downsample.0", "downsample.1", "add1"]
    assert projected.rows[3].detail == "1x1 s2 p0 nobias" and projected.rows[3].params == 4 * 8
    assert projected.rows[-1].inputs == (2, 4)
    auto_same = analyze(spec_of([{"kind": "residual", "body": [conv(4, 3, padding=1)], "shortcut": "auto"}], [4, 8, 8]))
    assert [r.kind for r in auto_same.rows] == ["input", "conv2d", "add"] and auto_same.rows[-1].inputs == (1, 0)
    optional = analyze(spec_of([{"kind": "residual", "body": body, "shortcut": "optional"}], [4, 8, 8]))
    assert [r.kind for r in optional.rows] == ["input", "conv2d", "batchnorm2d"]
    custom = analyze(
        spec_of(
            [{"kind": "residual", "body": body, "shortcut": [{"kind": "avgpool2d", "kernel": 2}, conv(8)]}], [4, 8, 8]
        )
    )
    assert [r.name for r in custom.rows][-3:] == ["shortcut.pool1", "shortcut.conv1", "add1"]


def test_two_shortcuts_in_one_block_get_their_own_names() -> None:
    body = [conv(8, 3, stride=2, padding=1)]
    twice = [{"kind": "residual", "body": body, "shortcut": "projection"}] * 2
    twice[1] = {"kind": "residual", "body": [conv(8, 1)], "shortcut": [conv(8, 1)]}
    names = [
        r.name
        for r in analyze(
            spec_of([*twice, {"kind": "residual", "body": body, "shortcut": "projection"}], [4, 16, 16])
        ).rows
    ]
    assert "downsample.0" in names and "shortcut.conv1" in names and "downsample_2.0" in names


def test_add_and_concat_memory_and_in_place() -> None:
    body = [conv(4, 3, padding=1)]
    add = analyze(spec_of([{"kind": "residual", "body": body}], [4, 8, 8])).rows[-1]
    in_place = analyze(
        spec_of([{"kind": "residual", "body": body, "inplace": True, "activation": "relu"}], [4, 8, 8])
    ).rows[-1]
    sigmoid = analyze(spec_of([{"kind": "residual", "body": body, "activation": "sigmoid"}], [4, 8, 8])).rows[-1]
    assert (add.activations, in_place.activations, sigmoid.activations) == (256, 0, 512)
    cat = analyze(spec_of([{"kind": "concat", "branches": [[conv(3)], [conv(5, 3, padding=1)]]}], [4, 8, 8])).rows[-1]
    assert cat.output_shape == (8, 8, 8) and cat.activations == 512 and cat.macs == 0


def test_peak_memory_keeps_the_residual_input_alive() -> None:
    body = [conv(1), conv(1)]  # on 1x4x4: each tensor 16 values
    plain = analyze(spec_of(body, [1, 4, 4]))
    residual = analyze(spec_of([{"kind": "residual", "body": body}], [1, 4, 4]))
    # plain: x is freed after conv1, so at conv2 only its input and output live: 32 values
    assert plain.peak_activation_bytes == 4 * 32
    # residual: x waits for the add: at conv2, x + conv1 + conv2; at the add, x + conv2 + sum: 48 values
    assert residual.peak_activation_bytes == 4 * 48
    in_place = analyze(spec_of([{"kind": "residual", "body": body, "inplace": True}], [1, 4, 4]))
    assert in_place.peak_activation_bytes == 4 * 48  # the add allocates nothing, but conv2 still sees three
    assert analyze(spec_of(body, [1, 4, 4]), batch=3).peak_activation_bytes == 3 * 4 * 32


def test_receptive_field_is_the_largest_over_paths() -> None:
    branches = [[conv(2, 1)], [conv(2, 5, padding=2)], [conv(2, 3, padding=1)]]
    cat = analyze(spec_of([{"kind": "concat", "branches": branches}], [3, 16, 16])).rows[-1]
    assert cat.receptive_field is not None and cat.receptive_field.size == (5, 5)
    res = analyze(spec_of([{"kind": "residual", "body": [conv(3, 3, padding=1), conv(3, 3, padding=1)]}], [3, 16, 16]))
    assert res.rows[-1].receptive_field.size == (5, 5)  # type: ignore[union-attr]


def test_split_multiply_and_identity_branches() -> None:
    se = {"kind": "multiply", "name": "se", "body": ["global_avgpool2d", conv(2, 1), "sigmoid"]}
    split = {"kind": "split", "branches": {"a": [], "b": [conv(2, 3, padding=1), se]}, "sections": [2, 2]}
    report = analyze(spec_of([split, {"kind": "concat", "branches": [[], [conv(1, 1)]]}], [4, 8, 8]))
    rows = {r.name: r for r in report.rows}
    # the parts are views of the input: no values, nothing kept, the same storage
    assert [(rows[n].detail, rows[n].activations) for n in ("chunk1", "chunk2")] == [
        ("channels 0:2", 0),
        ("channels 2:4", 0),
    ]
    assert rows["b.conv1"].inputs == (rows["chunk2"].index,)
    gate = rows["b.se.multiply1"]
    assert gate.inputs == (rows["b.conv1"].index, rows["b.se.sigmoid1"].index)
    assert gate.output_shape == (2, 8, 8) and gate.activations == 128 and gate.macs == 0
    assert gate.receptive_field is not None and gate.receptive_field.size == (10, 10)  # the pool saw all
    assert rows["concat1"].inputs == (rows["chunk1"].index, gate.index) and rows["concat1"].output_shape == (4, 8, 8)
    # an empty concat branch is the concat's input itself
    assert rows["concat2"].inputs == (rows["concat1"].index, rows["branch2.conv1"].index)
    assert report.rows[-1].output_shape == (5, 8, 8)


FPN = """\
name: tiny FPN
input: [3, 32, 32]
defaults:
  conv2d: {kernel: 3, padding: 1}
layers:
  - {kind: conv2d, out: 8, name: c1}
  - {kind: conv2d, out: 16, stride: 2, name: c2}
  - {kind: conv2d, out: 32, stride: 2, name: c3}
  - {kind: conv2d, out: 16, kernel: 1, padding: 0, name: lat3}
  - {kind: upsample, scale: 2, name: up3}
  - {kind: conv2d, out: 16, kernel: 1, padding: 0, from: c2, name: lat2}
  - {kind: add, from: [up3, lat2], name: p2}
  - {kind: conv2d, out: 8, kernel: 1, padding: 0, from: c1, name: lat1}
  - {kind: upsample, scale: 2, from: p2, name: up2}
  - {kind: concat, from: [up2, lat1], name: p1}
outputs: [p1, p2, lat3]
"""


def test_any_graph_with_from_and_outputs() -> None:
    assert FPN in (Path(__file__).parent.parent / "docs" / "dsl.md").read_text()  # the manual's example
    report = analyze(FPN)
    rows = {r.name: r for r in report.rows}
    assert rows["lat2"].inputs == (rows["c2"].index,)
    assert rows["p2"].inputs == (rows["up3"].index, rows["lat2"].index) and rows["p2"].detail == "up3 + lat2"
    assert rows["p1"].output_shape == (24, 32, 32) and rows["p1"].detail == "up2 + lat1"
    assert [r.name for r in report.output_rows] == ["p1", "p2", "lat3"]
    assert report.to_dict()["outputs"] == ["p1", "p2", "lat3"]
    # the loss reads every output: none is kept for backward (nothing keeps a concat's, an add's or lat3's)
    assert report.output_bytes == 4 * (24 * 32 * 32 + 16 * 16 * 16 + 16 * 8 * 8)
    # the receptive field follows every path: p2 sees c3's 9 pixels, at c2's step upsampled (4 / 2)
    assert rows["p2"].receptive_field is not None and rows["p2"].receptive_field.size == (9, 9)
    # lat3 stays alive to the end: the peak while p1 is made holds it, p2 and p1's inputs
    alive_at_p1 = sum(rows[n].activation_bytes for n in ("lat3", "p2", "up2", "lat1", "p1"))
    assert report.peak_activation_bytes >= alive_at_p1
    # a block's name reads its last row; inside a block, names are the block's own first
    nested = analyze(
        spec_of(
            [
                {"kind": "sequential", "name": "s", "layers": [conv(4, 1, name="a"), {"kind": "relu", "name": "r"}]},
                {
                    "kind": "sequential",
                    "name": "t",
                    "layers": [conv(4, 1, name="a"), {"kind": "add", "from": ["a", "s"]}],
                },
            ],
            [4, 8, 8],
        )
    )
    by = {r.name: r for r in nested.rows}
    assert by["t.add1"].inputs == (by["t.a"].index, by["s.r"].index)


# (id, layers, input, text of the one error line)
GRAPH_ERRORS = [
    (
        "add shapes differ",
        [{"kind": "residual", "body": [conv(8)]}],
        [4, 8, 8],
        "residual 'add': the body gives 8x8x8 but the shortcut (identity) gives 4x8x8; an add needs the same shape;"
        " use shortcut: projection (or auto) to match them",
    ),
    (
        "concat sizes differ",
        [{"kind": "concat", "branches": {"a": [conv(2)], "b": [conv(2, 3)]}}],
        [4, 8, 8],
        "concat: branch 'b' gives 2x6x6 but branch 'a' gives 2x8x8; a concatenation needs the same height and width",
    ),
    (
        "projection impossible",
        [{"kind": "residual", "body": [{"kind": "zeropad2d", "padding": 1}], "shortcut": "projection"}],
        [4, 8, 8],
        "a projection shortcut cannot take 4x8x8 to 4x10x10 with one stride",
    ),
    (
        "split unequal",
        [{"kind": "split", "branches": [[], [], []]}],
        [4, 8, 8],
        "split: 3 branches cannot share the input's 4 channels equally; give their channels as sections: [...]",
    ),
    (
        "split sections",
        [{"kind": "split", "branches": [[], []], "sections": [1, 2]}],
        [4, 8, 8],
        "split: sections [1, 2] must give each of the 2 branches its channels, 4 in all (the input's), in branch order",
    ),
    ("split flat", ["flatten", {"kind": "split", "branches": [[], []]}], [4, 8, 8], "a split needs a C x H x W input"),
    (
        "multiply shapes",
        [{"kind": "multiply", "body": ["global_avgpool2d", conv(2, 1)]}],
        [4, 8, 8],
        "multiply 'multiply': the body gives 2x1x1 but the input is 4x8x8; a product needs the input's shape, or"
        " C x 1 x 1 with its channels (4x1x1) to scale each channel",
    ),
    (
        "slice range",
        [{"kind": "slice", "start": 2, "stop": 6}],
        [4, 8, 8],
        "channels 2 to 6 are not a range of the input's 4 channels (0 <= start < stop <= channels)",
    ),
    ("shuffle groups", [{"kind": "channel_shuffle", "groups": 3}], [4, 8, 8], "groups 3 does not divide"),
    (
        "from an unknown name",
        [conv(4, 1, name="stem"), {"kind": "relu", "from": "stme"}],
        [4, 8, 8],
        "no row or block named 'stme' comes before this entry (did you mean 'stem'?)",
    ),
    (
        "from a later row",
        [{"kind": "relu", "from": "late"}, conv(4, 1, name="late")],
        [4, 8, 8],
        "no row or block named 'late' comes before this entry",
    ),
    (
        "from the enclosing block",
        [{"kind": "sequential", "name": "s", "layers": [conv(4, 1), {"kind": "relu", "from": "s"}]}],
        [4, 8, 8],
        "'s' is the block this entry is in: its output is not made yet",
    ),
    (
        "a row named in",
        [conv(4, 1, name="in")],
        [4, 8, 8],
        "name 'in' is what 'from: in' reads (the input of the block an entry is in); name it otherwise",
    ),
    (
        "a row nobody reads",
        [conv(4, 1, name="a"), conv(4, 1, name="b", **{"from": "input"})],
        [4, 8, 8],
        "layer 1 conv2d 'a': nothing reads its output 4x8x8; read it with 'from:' or name it in 'outputs:'",
    ),
    (
        "two inputs to a layer",
        [conv(4, 1, name="a"), {"kind": "relu", "from": ["a", "input"]}],
        [4, 8, 8],
        "a relu reads one input, but 'from' names 2; join them first with an add, a concat or a multiply",
    ),
    (
        "add of named shapes",
        [conv(2, 1, name="a"), {"kind": "add", "from": ["a", "input"]}],
        [4, 8, 8],
        "add: 'input' gives 4x8x8 but 'a' gives 2x8x8; an add needs the same shape",
    ),
    (
        "multiply of named shapes",
        [conv(2, 1, name="a"), {"kind": "multiply", "from": ["a", "input"]}],
        [4, 8, 8],
        "multiply: 'a' gives 2x8x8 and 'input' gives 4x8x8; a product needs the same shape, or C x 1 x 1",
    ),
    (
        "stacked add in place",
        [conv(4, 1, name="a"), {"kind": "add", "from": ["a", "input"], "stack": True, "inplace": True}],
        [4, 8, 8],
        "a stacked sum (stack: true) allocates its result: it cannot be in place",
    ),
    ("unknown output", [conv(4, 1, name="a")], [4, 8, 8], "no row or block named 'b' comes before"),
    ("unknown block", [{"use": "bottlneck"}], [4, 8, 8], "no block named 'bottlneck' (did you mean 'bottleneck'?)"),
    (
        "unknown argument",
        [{"use": "bottleneck", "width": 4, "widht": 4}],
        [4, 8, 8],
        "block 'bottleneck' has no argument 'widht' (did you mean 'width'?)",
    ),
    ("missing argument", [{"use": "bottleneck"}], [4, 8, 8], "block 'bottleneck' needs argument 'width'"),
    (
        "unknown first argument",
        [{"use": "bottleneck", "width": 2, "first": {"strde": 2}}],
        [4, 8, 8],
        "has no argument 'strde'",
    ),
]

BLOCKS = {
    "bottleneck": {
        "args": {"width": None, "stride": 1},
        "layers": [
            {
                "kind": "residual",
                "shortcut": "auto",
                "body": [{"kind": "conv2d", "out": "$width", "kernel": 1, "stride": "$stride"}],
            }
        ],
    }
}


@pytest.mark.parametrize(("layers", "input", "text"), [e[1:] for e in GRAPH_ERRORS], ids=[e[0] for e in GRAPH_ERRORS])
def test_graph_errors_are_one_clear_line(layers: list[Any], input: list[int], text: str) -> None:
    outputs = {"outputs": ["b"]} if "named 'b'" in text else {}
    with pytest.raises(SpecError) as err:
        analyze(spec_of(layers, input, blocks=BLOCKS, **outputs))
    [problem] = err.value.problems
    assert text in problem.message, problem.message


RELU_ = {"kind": "relu", "inplace": True}
#: In-place writes (every relu here is ``inplace: true``) into a tensor that is read, or returned, after: the
#: engine refuses them; tests/test_torch_backend.py shows PyTorch computing something else for each.
OVERWRITES: dict[str, tuple[list[Any], list[str] | None, str]] = {
    "a concat's first branch writes what the second reads": (
        [conv(4, 3, name="c1"), {"kind": "concat", "branches": [[RELU_], [conv(2)]]}],
        None,
        "layer 2 relu 'branch1.relu1' writes in place into the output of 'c1', which layer 3 conv2d"
        " 'branch2.conv1' reads after it: in PyTorch it would read relu's output instead; drop 'inplace: true'",
    ),
    "a residual's body writes what its shortcut reads": (
        [conv(4, 3, name="c1"), {"kind": "residual", "body": [RELU_]}],
        None,
        "writes in place into the output of 'c1', which layer 3 add 'add1' reads after it",
    ),
    "a row read by name after the write": (
        [
            conv(4, 3, name="c1"),
            {**RELU_, "name": "r"},
            conv(4, **{"from": "c1", "name": "k"}),
            {"kind": "add", "from": ["r", "k"]},
        ],
        None,
        "layer 2 relu 'r' writes in place into the output of 'c1', which layer 3 conv2d 'k' reads after it",
    ),
    "the network's input": (
        [{**RELU_, "name": "r"}, {"kind": "concat", "from": ["r", "input"]}],
        None,
        "layer 1 relu 'r' writes in place into the output of the input, which layer 2 concat",
    ),
    "an output, through a view": (
        [conv(4, 3, name="c1"), "flatten", {**RELU_, "name": "r"}],
        ["c1", "r"],
        "layer 3 relu 'r' writes in place into the output of 'c1', which the network returns ('outputs'):"
        " in PyTorch it would return relu's output instead",
    ),
}
#: In-place writes that nothing reads the old values of after: accepted (and PyTorch agrees, in the same test).
IN_PLACE_FINE: dict[str, tuple[list[Any], list[str] | None]] = {
    "after a conv": ([conv(4, 3), RELU_, conv(2)], None),
    "twice": ([conv(4, 3), RELU_, {"kind": "relu6", "inplace": True}], None),
    "in a concat's last branch": (
        [conv(4, 3, name="c1"), {"kind": "concat", "branches": [[conv(2)], [RELU_]]}],
        None,
    ),
    "in a residual's body, after its conv": (
        [conv(4, 3), {"kind": "residual", "body": [conv(4), RELU_], "inplace": True}],
        None,
    ),
    "an output that is the write": ([conv(4, 3, name="c1"), {**RELU_, "name": "r"}], ["r"]),
}


@pytest.mark.parametrize(("layers", "outputs", "text"), list(OVERWRITES.values()), ids=list(OVERWRITES))
def test_an_in_place_write_into_what_is_read_later_is_refused(
    layers: list[Any], outputs: list[str] | None, text: str
) -> None:
    with pytest.raises(SpecError) as err:
        analyze(spec_of(layers, [4, 8, 8], **({"outputs": outputs} if outputs else {})))
    [problem] = err.value.problems
    assert text in problem.message, problem.message


@pytest.mark.parametrize(("layers", "outputs"), list(IN_PLACE_FINE.values()), ids=list(IN_PLACE_FINE))
def test_an_in_place_write_nothing_reads_past_is_accepted(layers: list[Any], outputs: list[str] | None) -> None:
    analyze(spec_of(layers, [4, 8, 8], **({"outputs": outputs} if outputs else {})))


TEMPLATE = """\
name: t
input: [4, 8, 8]
blocks:
  unit:
    args: {out: null, k: 3}
    layers:
      - {kind: conv2d, out: "${out * 2}", kernel: $k, padding: "${k // 2}", name: "c_${k}"}
      - {kind: relu, when: "${k > 1}"}
layers:
  - {use: unit, out: 4, name: a}
  - {use: unit, out: 2, k: 1, repeat: 2, first: {k: 3}}
"""


def test_templates_arguments_when_and_first() -> None:
    report = analyze(load_spec(text=TEMPLATE))
    assert [(r.name, r.kind, r.output_shape[0]) for r in report.rows[1:]] == [
        ("a.c_3", "conv2d", 8),
        ("a.relu1", "relu", 8),
        ("unit1.0.c_3", "conv2d", 4),  # first: {k: 3}
        ("unit1.0.relu1", "relu", 4),
        ("unit1.1.c_1", "conv2d", 4),  # k: 1, and `when` leaves the relu out
    ]
    assert {b.path: b.kind for b in report.blocks} == {
        ("a",): "unit",
        ("unit1",): "unit x2",
        ("unit1", "0"): "unit",
        ("unit1", "1"): "unit",
    }


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            '"${out * 2}"',
            "t.yaml:7:29: '${outs * 2}': unknown name 'outs' (did you mean 'out'?); known: out, k, in_channels, index"
            " (in block 'unit' as used by 'a')",
        ),
        (
            "$k, padding",
            "t.yaml:7:51: kernel: expected a number or a pair [height, width], got 'x' (in block 'unit' as used by 'a')",
        ),
        ('"${k // 2}"', "t.yaml:7:64: '${k // 0}': division by zero (in block 'unit' as used by 'a')"),
    ],
)
def test_template_errors_point_into_the_block(change: str, expected: str) -> None:
    broken = {'"${out * 2}"': '"${outs * 2}"', "$k, padding": "x, padding", '"${k // 2}"': '"${k // 0}"'}[change]
    with pytest.raises(SpecError) as err:
        analyze(load_spec("t.yaml", text=TEMPLATE.replace(change, broken, 1)))
    assert str(err.value.problems[0]).startswith(expected), str(err.value)
    assert len(err.value.problems) == 1  # the block is used three times, the line appears once


def test_unused_block_is_a_warning() -> None:
    text = TEMPLATE.replace(
        "layers:\n  - {use: unit, out: 4, name: a}", "layers:\n  - relu\n  - {use: unit, out: 4, name: a}"
    )
    text += "  - relu\n"
    spare = text.replace("blocks:\n", "blocks:\n  spare:\n    layers: [relu]\n")
    report = analyze(load_spec("t.yaml", text=spare))
    assert [str(w) for w in report.warnings] == ["t.yaml:4:3: block 'spare' is never used"]


HOSTILE_BLOCKS = {
    "uses itself": (
        "blocks:\n  a:\n    layers: [{use: b}]\n  b:\n    layers: [{use: a}]\nlayers: [{use: a}]\n",
        "block 'a' uses itself (a -> b -> a)",
    ),
    "nested 5000 deep": (
        "blocks:\n"
        + "".join(f"  b{i}:\n    layers: [{{use: b{i + 1}}}]\n" for i in range(5000))
        + "  b5000:\n    layers: [relu]\nlayers: [{use: b0}]\n",
        "block uses nest more than 32 deep",
    ),
    "exponential": (
        "blocks:\n"
        + "".join(f"  b{i}:\n    layers: [{{use: b{i + 1}, repeat: 10}}]\n" for i in range(8))
        + "  b8:\n    layers: [relu]\nlayers: [{use: b0}]\n",
        "the network expands to more than 20,000 rows",
    ),
    # no rows at all, so no row bound: the steps of the walk are counted
    "a disabled layer fanned out 10^8 times": (
        "blocks:\n"
        + "".join(f"  b{i}:\n    layers: [{{use: b{i + 1}, repeat: 10}}]\n" for i in range(8))
        + "  b8:\n    layers: [{kind: relu, when: false}]\nlayers: [{use: b0}]\n",
        "expanding the network takes more than 500,000 steps",
    ),
    "a big template used 10,000 times": (
        "blocks:\n  b:\n    layers:\n      - {kind: sequential, when: false, layers: ["
        + ", ".join(["relu"] * 2000)
        + "]}\nlayers: [{use: b, repeat: 10000}]\n",
        "expanding the network takes more than 500,000 steps",
    ),
    "structures 30 deep in blocks 30 deep": (
        "blocks:\n"
        + "".join(
            f"  b{i}:\n    layers: [{'{kind: sequential, layers: [' * 30}{{use: b{i + 1}}}{']}' * 30}]\n"
            for i in range(30)
        )
        + "  b30:\n    layers: [relu]\nlayers: [{use: b0}]\n",
        "structures and block uses nest more than 100 deep",
    ),
    "an argument put into text 1,000 times": (
        "blocks:\n  b:\n    args: {x: xxxxxxxxxx}\n    layers: [{use: c, a: '"
        + "$x" * 1000
        + "'}]\n  c:\n    args: {a: null}\n    layers: [relu]\nlayers: [{use: b}]\n",
        "the text it makes would be longer than 1,000 characters",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_BLOCKS.values()), ids=list(HOSTILE_BLOCKS))
def test_hostile_blocks_fail_fast(tmp_path: Path, case: tuple[str, str]) -> None:
    body, text = case
    path = tmp_path / "h.yaml"
    path.write_text("name: t\ninput: [3, 8, 8]\n" + body)
    code, out, _ = run("validate", str(path))  # bounded by counts; benchmarks/hostile_speed.py times it
    assert code == 1 and text in out and out.count("\n") == 1


def _peak_reference(rows: Any, bytes_per_value: int, batch: int, outputs: Any = ()) -> int:
    """The quadratic peak of before (the alive set summed at every row): the linear one must agree with it."""
    storage = list(range(len(rows)))
    for row in rows[1:]:
        if row.activations == 0 and row.inputs:
            storage[row.index] = storage[row.inputs[0]]
    last = {s: s for s in storage}
    for row in rows:
        for i in row.inputs:
            last[storage[i]] = max(last[storage[i]], row.index)
    for out in outputs or (len(rows) - 1,):
        last[storage[out]] = len(rows)
    peak, alive = 0, {}
    for row in rows:
        alive = {s: b for s, b in alive.items() if last[s] >= row.index}
        peak = max(peak, sum(alive.values()) + row.activation_bytes)
        if storage[row.index] == row.index:
            alive[row.index] = prod(rows[row.index].output_shape) * batch * bytes_per_value
    return peak


@settings(max_examples=int(os.environ.get("CNNCALC_PEAK_EXAMPLES", "80")), deadline=None)
@given(random_specs(), st.integers(1, 3))
def test_peak_memory_is_the_running_sum_of_what_is_alive(data: dict[str, Any], batch: int) -> None:
    try:
        report = analyze(parse_spec(data), batch=batch)
    except SpecError:
        return
    assert report.peak_activation_bytes == _peak_reference(report.rows, 4, batch, report.outputs)


def test_from_in_reads_what_came_into_the_block_at_every_use() -> None:
    """Branches written flat in a block read its input as ``in``, so one block serves every use (an Inception
    block after any other)."""
    block = {
        "layers": [
            conv(2, 1, name="a"),
            conv(3, 3, name="b", **{"from": "in", "padding": 1}),
            {"kind": "concat", "from": ["a", "b"]},
        ]
    }
    layers = [conv(4, 1, name="stem"), {"use": "inc", "name": "i1"}, {"use": "inc", "name": "i2"}]
    report = analyze(spec_of(layers, [3, 8, 8], blocks={"inc": block}))
    rows = {r.name: r for r in report.rows}
    assert rows["i1.b"].inputs == (rows["stem"].index,) and rows["i1.b"].input_shape == (4, 8, 8)
    last = report.rows[rows["i2.a"].index - 1]  # the first use's concat
    assert rows["i2.b"].inputs == rows["i2.a"].inputs == (last.index,) and last.name.startswith("i1.")
    assert rows["i2.b"].input_shape == (5, 8, 8)
    # at the top, the network's input
    top = analyze(
        spec_of(
            [conv(2, 1, name="a"), {"kind": "relu", "from": "in"}, {"kind": "add", "from": ["a", "relu1"]}], [2, 4, 4]
        )
    )
    assert top.rows[2].inputs == (0,)


def test_a_wide_concat_is_linear() -> None:
    """10,000 branches: every branch's output is alive until the concat (the peak counts them once each)."""
    report = analyze(spec_of([{"kind": "concat", "branches": [[conv(1)]] * 10_000}], [1, 2, 2]))
    assert len(report.rows) == 10_002
    # at the concat: the 10,000 branch outputs and the concat's own 10,000 x 4 values
    assert report.peak_activation_bytes == 4 * (10_000 * 4 + 10_000 * 4)


@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 45), st.integers(1, 45))
def test_the_projection_stride_is_solved_as_the_search_found_it(h: int, w: int, oh: int, ow: int) -> None:
    search = next(
        (s for s in range(1, max(h, w) + 1) if (h - 1) // s + 1 == oh and (w - 1) // s + 1 == ow),
        None,
    )
    assert _one_stride((h, w), (oh, ow)) == search


def test_every_block_mistake_is_reported(tmp_path: Path) -> None:
    """The walk stops at the first bad use; validate still reports each one, located."""
    path = tmp_path / "b.yaml"
    path.write_text(
        "name: t\ninput: [3, 8, 8]\nblocks:\n  unit:\n    args: {out: null}\n"
        '    layers:\n      - {kind: conv2d, out: "${out}", kernel: 3, padding: 1}\n'
        "layers:\n  - {use: unit}\n  - {use: unit, out: 4, width: 3}\n"
        "  - {kind: sequential, layers: [{use: nosuch}]}\n"
    )
    code, out, _ = run("validate", str(path))
    assert code == 1
    assert out.splitlines() == [
        f"{path}:9:5: block 'unit' needs argument 'out'",
        f"{path}:10:25: block 'unit' has no argument 'width'; its arguments: out",
        f"{path}:11:39: no block named 'nosuch'; blocks: unit",
    ]


def test_yolov2_is_darknets() -> None:
    """YOLOv2 on COCO at 608 (Darknet's yolov2.cfg): 425 x 19 x 19 out, 62.94 BFLOPs (2 x MACs); 13 x 13 at 416."""
    report = analyze(load_spec(SPECS / "yolov2.yaml"))
    t = report.totals
    assert (t.params_trainable, t.macs) == (50_962_889, 31_469_126_656)
    assert round(2 * t.macs / 1e9, 2) == 62.94
    assert report.rows[-1].output_shape == (425, 19, 19)
    reorg = next(r for r in report.rows if r.kind == "pixel_unshuffle")
    assert (reorg.input_shape, reorg.output_shape) == ((64, 38, 38), (256, 19, 19))
    assert analyze(load_spec(SPECS / "yolov2.yaml"), input_shape=(3, 416, 416)).rows[-1].output_shape == (425, 13, 13)


def test_pixel_unshuffle_needs_a_dividing_factor() -> None:
    with pytest.raises(SpecError, match=r"factor 2 does not divide the input 4x5x6 \(PyTorch refuses it\)"):
        analyze(parse_spec({"name": "t", "input": [4, 5, 6], "layers": [{"kind": "pixel_unshuffle"}]}))


def test_unet_is_the_papers() -> None:
    """U-Net (Ronneberger et al. 2015, Fig. 1) at 572: 31,030,658 params with biases, 2 x 388 x 388 out."""
    report = analyze(load_spec(SPECS / "unet.yaml"))
    t = report.totals
    assert (t.params_trainable, t.params_non_trainable, t.macs) == (31_030_658, 0, 150_428_424_448)
    assert report.rows[-1].output_shape == (2, 388, 388)
    # each level: the cropped copy first, then the upsampled map (the paper's channel order)
    joins = [r for r in report.rows if r.kind == "concat"]
    assert [r.output_shape for r in joins] == [(1024, 56, 56), (512, 104, 104), (256, 200, 200), (128, 392, 392)]
    for join in joins:
        copy, up = (report.rows[i] for i in join.inputs)
        assert (copy.kind, up.kind) == ("crop", "convtranspose2d") and copy.output_shape == up.output_shape
    crops = [(r.input_shape, r.output_shape) for r in report.rows if r.kind == "crop"]
    assert [(i[1], o[1]) for i, o in crops] == [(568, 392), (280, 200), (136, 104), (64, 56)]
    assert not report.warnings  # every unpadded conv and pool reads its input whole at 572


@pytest.mark.parametrize(("branches", "detail"), [([[]], "1 branch"), ([[], [{"kind": "relu"}]], "2 branches")])
def test_a_concat_of_one_branch_is_a_copy_of_its_input(branches: list[Any], detail: str) -> None:
    # torch.cat of one tensor copies it (DenseNet's layers begin with one): a row of its own, its activations new
    report = analyze(spec_of([{"kind": "concat", "branches": branches}], (3, 4, 4)))
    row = report.rows[-1]
    assert row.detail == detail and row.activations == len(branches) * 3 * 4 * 4
