"""``cnncalc import``: torchvision's CNN families, and modules written here, round-trip through a spec.

Each imported spec has the model's learnable params, its MACs are FlopCounterMode's FLOPs / 2, its activations
are the values the model's operations allocate for their results, its rows carry the model's module names (the
state_dict loads by name into ``build(spec)``), and the built module's outputs are bit-identical. Inputs are small (the families' arithmetic does not depend on the size) to keep the tier quick.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from typer.testing import CliRunner

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import torch
        import torchvision.models as tvm
        import torchvision.models.segmentation as seg
except Exception as exc:  # a missing or broken torchvision (it can fail to load its ops)
    pytest.skip(f"torchvision is not importable: {exc}", allow_module_level=True)

import torch.nn.functional as F
from helpers import spec_of
from round_trip import round_trip
from strategies import random_specs
from torch import nn
from written_models import programs

from cnncalc import SpecError, analyze, from_torch, load_spec
from cnncalc import torch_backend as tb
from cnncalc.cli import app
from cnncalc.errors import Problem

pytestmark = pytest.mark.torch

ENV = {"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}

#: One member (or two) of every torchvision CNN family the importer expresses, and the input it runs at.
FAMILIES: dict[str, tuple[Callable[[], nn.Module], int]] = {
    "alexnet": (tvm.alexnet, 64),
    "vgg11": (tvm.vgg11, 32),
    "vgg11_bn": (tvm.vgg11_bn, 32),
    "resnet18": (tvm.resnet18, 64),
    "resnext50_32x4d": (tvm.resnext50_32x4d, 32),
    "wide_resnet50_2": (tvm.wide_resnet50_2, 32),
    "squeezenet1_0": (tvm.squeezenet1_0, 64),
    "squeezenet1_1": (tvm.squeezenet1_1, 64),
    "densenet121": (tvm.densenet121, 32),
    "googlenet": (lambda: tvm.googlenet(aux_logits=False, init_weights=True), 64),
    "inception_v3": (lambda: tvm.inception_v3(aux_logits=False, init_weights=False), 96),
    "mobilenet_v2": (tvm.mobilenet_v2, 64),
    "mobilenet_v3_large": (tvm.mobilenet_v3_large, 64),
    "mobilenet_v3_small": (tvm.mobilenet_v3_small, 64),
    "mnasnet0_5": (tvm.mnasnet0_5, 64),
    "shufflenet_v2_x0_5": (tvm.shufflenet_v2_x0_5, 64),
    "efficientnet_b0": (tvm.efficientnet_b0, 64),
    # B1 ... B7 scale B0's widths and depths (and B7 holds 66 M params): the arithmetic does not depend on the size
    **{f"efficientnet_b{i}": (getattr(tvm, f"efficientnet_b{i}"), 32) for i in range(1, 8)},
    "regnet_x_400mf": (tvm.regnet_x_400mf, 64),
    "regnet_y_400mf": (tvm.regnet_y_400mf, 64),
    "convnext_tiny": (tvm.convnext_tiny, 32),
    "fcn_resnet50": (lambda: seg.fcn_resnet50(weights_backbone=None, aux_loss=False), 64),
    "deeplabv3_mobilenet_v3_large": (lambda: seg.deeplabv3_mobilenet_v3_large(weights_backbone=None), 64),
    "lraspp_mobilenet_v3_large": (lambda: seg.lraspp_mobilenet_v3_large(weights_backbone=None), 64),
    # returns {"out": ..., "aux": ...}: two outputs, the auxiliary head's rows reading the backbone's third stage
    "fcn_resnet50_aux": (lambda: seg.fcn_resnet50(weights_backbone=None, aux_loss=True), 32),
}

#: What a family's spec must say. LR-ASPP's head multiplies two computed tensors and adds a row of the backbone's
#: middle to its end, read by name; ConvNeXt's block computes on the channels-last view (permute, LayerNorm,
#: Linear, GELU, Linear, permute back) and scales by a parameter of its own.
SAYS: dict[str, list[str]] = {
    "convnext_tiny": [
        "          - {kind: conv2d, name: '0', out: 96, kernel: 4, stride: 4}\n          - {kind: layernorm, name: '1'}\n",
        "              - {kind: layernorm, name: '2'}\n",
        "              - {kind: conv2d, name: '0', out: $in_channels, kernel: 7, padding: 3, groups: $in_channels}\n",
        "              - {kind: channel_linear, name: '3', out: '${in_channels * 4}', activation: gelu}\n",
        "          - {use: cnblock, name: '1', stochastic_depth_p: 0.0058823529411764705}\n",
        "          - {kind: layer_scale, name: layer_scale}\n",  # its init, 1e-6 in float32, is the default
    ],
    "fcn_resnet50_aux": [
        "  - {use: fcnhead, name: classifier}\n"
        "  - {kind: upsample, name: upsample, mode: bilinear, align_corners: false, size: 32}\n"
        "  - {use: fcnhead, name: aux_classifier, from: backbone.layer3}\n"
        "  - {kind: upsample, name: upsample_2, mode: bilinear, align_corners: false, size: 32}\n"
        "outputs: [upsample, upsample_2]\n",
    ],
    "lraspp_mobilenet_v3_large": [
        "        name: scale\n        from: in\n",  # the classifier's own input, the backbone's output
        "      - {kind: multiply, from: [cbr, scale]}\n",
        "      - {kind: conv2d, name: low_classifier, from: backbone.4, out: 21, kernel: 1, bias: true}\n",
        "      - {kind: add, from: [low_classifier, high_classifier]}\n",
    ],
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_torchvision_family_round_trips(name: str) -> None:
    make, size = FAMILIES[name]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GoogLeNet's note on its init
        model = make()
    text = round_trip(model, (3, size, size))
    for said in SAYS.get(name, []):
        assert said in text, text


#: Why the importer may refuse a built spec, each as docs/import.md's "What it refuses" says it (by message):
#: nothing else passes. Rows that are all the identity at inference (identity, dropout) leave a model that returns
#: its input; a row in place (relu, inplace: true) whose input a later row reads too changes what that one reads in
#: torch. (A projection shortcut or a split's part built as rows beside its body's, no module holding them, and a
#: split into one part, torch.cat of one tensor, were refused too: they are written now.)
DOCUMENTED_REFUSALS: tuple[str, ...] = (
    "(the model): the model returns its input; a spec has at least one row",
    "reads after it; a spec's rows read the values their inputs give: compute it out of place (inplace=False)",
)


@settings(
    max_examples=int(os.environ.get("CNNCALC_IMPORT_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=random_specs())
def test_a_random_spec_built_in_torch_imports_back_to_the_same_network(data: dict[str, Any]) -> None:
    """The engine's random networks (tests/strategies.py), built in torch, imported back: every figure and every
    output of the imported spec is the built module's, and the module's state_dict loads into it by name."""
    spec = spec_of(data["layers"], data["input"], **({"outputs": data["outputs"]} if "outputs" in data else {}))
    try:
        report = analyze(spec)
    except SpecError:
        event("the engine refuses the spec")
        return
    torch.manual_seed(0)
    model = tb.build(report)  # torch runs every spec the engine accepts: the differential test proves it
    try:
        round_trip(model, report.input_shape)
    except SpecError as exc:
        assert all(any(r in str(p) for r in DOCUMENTED_REFUSALS) for p in exc.problems), (str(exc), data)
        event("refused for a documented reason")
        return
    event(f"imported, {'with' if 'outputs' in data else 'without'} outputs")


@settings(
    max_examples=int(os.environ.get("CNNCALC_WRITTEN_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(made=programs())
def test_a_model_written_in_python_imports_exactly_or_is_refused_in_lines(made: tuple[nn.Module, Any]) -> None:
    """Random modules as a person writes them (tests/written_models.py: modules, functions, methods, joins, writes
    in place, blocks, operations no kind describes): each imports into a spec that round-trips exactly, every
    figure and output, or is refused with a line per problem; never another exception."""
    model, shape = made
    torch.manual_seed(0)
    try:
        round_trip(model, shape)
    except SpecError as exc:
        lines = [p.message for p in exc.problems]
        assert lines and "(the model): cannot be imported" not in lines, lines
        event("refused")
        return
    event("imported")


# --- modules written here ----------------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // 4, 1)
        self.fc2 = nn.Conv2d(c // 4, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(self.pool(x)))))


class Gated(nn.Module):
    """SE gating, a transposed conv, and a long skip round the encoder and decoder (a U-Net's copy)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(True))
        self.se = SqueezeExcite(16)
        self.inner = nn.Sequential(
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.ConvTranspose2d(32, 16, 4, stride=4),
        )
        self.head = nn.Conv2d(32, 5, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.se(self.stem(x))
        return self.head(torch.cat([s, self.inner(s)], dim=1))


def test_se_gating_a_transposed_conv_and_a_long_skip_round_trip() -> None:
    torch.manual_seed(0)
    text = round_trip(Gated(), (3, 32, 32))
    assert "kind: multiply" in text and "kind: convtranspose2d" in text and "kind: concat" in text


class Product(nn.Module):
    """A product of two computed tensors (a gated linear unit of convs), forked at an unnamed row."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.value = nn.Conv2d(8, 8, 1)
        self.gate = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        return self.value(x) * torch.sigmoid(self.gate(x))


def test_a_product_of_two_computed_tensors_reads_them_by_name() -> None:
    torch.manual_seed(0)
    text = round_trip(Product(), (3, 8, 8))
    assert "  - {kind: relu, name: relu}\n" in text  # the fork, named so that the second branch can read it
    assert "  - {kind: conv2d, name: gate, from: relu, out: 8, kernel: 1}\n" in text
    assert "  - {kind: multiply, from: [value, sigmoid]}\n" in text


class TwoHeads(nn.Module):
    """A body's output and a head on it, returned as a tuple (or a list)."""

    def __init__(self, as_list: bool = False) -> None:
        super().__init__()
        self.as_list = as_list
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...] | list[torch.Tensor]:
        y = self.body(x)
        return [y, self.head(y)] if self.as_list else (y, self.head(y))


class Heads(nn.Module):
    """Two heads on an unnamed row, returned as a dict in an order other than the one they run in."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.boxes = nn.Conv2d(8, 4, 1)
        self.scores = nn.Conv2d(8, 2, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        y = torch.relu(self.conv(x))
        boxes = self.boxes(y)
        return {"scores": self.scores(y), "boxes": boxes}


class ResidualAndInput(nn.Module):
    """A residual's sum (no row of its own when nested) and the input itself among the outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = x + self.conv(x)
        return self.head(y), y, x


def test_a_tuple_or_a_list_of_outputs_is_written_as_outputs() -> None:
    for as_list in (False, True):
        torch.manual_seed(0)
        text = round_trip(TwoHeads(as_list), (3, 8, 8))
        assert "    name: head\n    from: body\n" in text and text.endswith("outputs: [body, head]\n"), text


def test_a_dict_of_outputs_is_written_in_the_dicts_order() -> None:
    torch.manual_seed(0)
    text = round_trip(Heads(), (3, 8, 8))
    assert "  - {kind: relu, name: relu}\n" in text  # the fork, named so that the second head can read it
    assert "  - {kind: conv2d, name: scores, from: relu, out: 2, kernel: 1}\n" in text
    assert text.endswith("outputs: [scores, boxes]\n"), text


def test_an_output_no_nested_row_holds_is_written_flat_and_the_input_may_be_one() -> None:
    torch.manual_seed(0)
    text = round_trip(ResidualAndInput(), (3, 8, 8))
    assert "  - {kind: add, name: add, from: [input, conv]}\n" in text
    assert text.endswith("outputs: [head, add, input]\n"), text


class Returns(nn.Module):
    """Returns what a spec's outputs cannot say."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> Any:
        y = self.conv(x)
        return {
            "nested": lambda: (y, (y, x)),
            "none": lambda: [y, None],
            "number": lambda: {"y": y, "n": 3},
            "twice": lambda: (y, x, y),
            "input twice": lambda: (x, x.contiguous()),
            "empty": lambda: (),
            "input": lambda: x,
        }[self.what]()


@pytest.mark.parametrize(
    ("what", "said"),
    [
        ("nested", "the model returns a tuple holding tuple at 1; return tensors side by side, not nested"),
        ("none", "the model returns a list holding NoneType at 1; cnncalc imports tensors"),
        ("number", "the model returns a dict holding int at 'n'; cnncalc imports tensors"),
        ("twice", "the model returns the same tensor at 0 and 2; a spec's outputs name each row once"),
        ("input twice", "the model returns the same tensor at 0 and 1; a spec's outputs name each row once"),
        ("empty", "the model returns an empty tuple; cnncalc imports at least one tensor"),
        ("input", "the model returns its input; a spec has at least one row"),
    ],
)
def test_what_outputs_cannot_say_is_one_line(what: str, said: str) -> None:
    (line,) = _problems(Returns(what), (3, 4, 4))
    assert line.startswith("(the model): ") and said in line, line


class Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # a branch on the data: another input runs other operations
            return self.conv(x)
        return x


class Crossed(nn.Module):
    """A tensor read inside two branches: no nesting says it, the graph DSL's ``from:`` does."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 1)
        self.b = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        b = self.b(a + x)
        return torch.cat([a, b, x], 1)


class CrossedChunk(nn.Module):
    """A part of a chunk read by two joins: its parts are slices, read by name."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 7, 1)
        self.f = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.conv(x).chunk(2, dim=1)  # 7 channels: 4 and 3
        return torch.cat([self.f(a) + b, a], dim=1)


class Unknown(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(self.conv(x), dim=1) + self.conv.weight.sum() + torch.fft.fft2(x).real.sum()


class ChannelsLastOtherwise(nn.Module):
    """What ConvNeXt's block does not: a ReLU on the channels-last view, a permute of another order, and a
    parameter of one factor per row times a plane."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.scale = nn.Parameter(torch.ones(6, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.scale * x.permute(0, 1, 3, 2)


def _problems(model: nn.Module, shape: tuple[int, ...]) -> list[str]:
    with pytest.raises(SpecError) as info:
        from_torch(model, shape)
    return [str(p) for p in info.value.problems]


def test_a_branch_on_the_inputs_values_is_one_problem_at_its_line() -> None:
    (line,) = _problems(Untraceable(), (3, 8, 8))
    assert "the code reads a value computed from the input in Python" in line, line
    assert "so what runs depends on the input's values" in line and f"{Path(__file__).name}:" in line


def test_what_the_channels_last_view_and_a_layer_scale_cannot_be_is_refused() -> None:
    lines = _problems(ChannelsLastOtherwise(), (3, 6, 6))
    assert len(lines) == 3, lines
    assert "relu() on a channels-last view (x.permute(0, 2, 3, 1)) is no row of cnncalc" in lines[0]
    assert "permute() to [0, 1, 3, 2]; cnncalc reads a permute to channels-last (0, 2, 3, 1) and back" in lines[1]
    assert "the parameter 'scale' of shape [6, 1] times a tensor of [4, 6, 6]" in lines[2]


def test_a_graph_nesting_cannot_say_is_written_flat_with_from() -> None:
    torch.manual_seed(0)
    text = round_trip(Crossed(), (4, 8, 8))
    assert text.endswith(
        "  - {kind: conv2d, name: a, out: 4, kernel: 1}\n"
        "  - {kind: add, from: [a, input]}\n"
        "  - {kind: conv2d, name: b, out: 4, kernel: 1}\n"
        "  - {kind: concat, from: [a, b, input]}\n"
    )
    text = round_trip(CrossedChunk(), (3, 8, 8))
    assert "  - {kind: slice, name: slice, stop: 4}\n" in text
    assert "  - {kind: slice, name: slice_2, from: conv, start: 4, stop: 7}\n" in text
    assert "  - {kind: add, name: add, from: [f, slice_2]}\n  - {kind: concat, from: [add, slice]}\n" in text


def test_each_unknown_operation_is_a_problem_with_its_module_and_line() -> None:
    lines = _problems(Unknown(), (3, 8, 8))
    assert any("cumsum()" in line and "test_import.py:" in line for line in lines), lines
    assert any("conv.weight" in line for line in lines), lines
    assert any("view_as_real() is not an operation cnncalc imports" in line for line in lines), lines


# --- the command -----------------------------------------------------------------------------------------

MODULE = """
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.fc = nn.Linear(8 * 4 * 4, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class TwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.aux = nn.Conv2d(8, 2, 1)
        self.fc = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return self.fc(torch.flatten(y, 1)), self.aux(y)


class Broken(nn.Module):
    def forward(self, x):
        if x.mean() > 0:
            return x
        return -x


class Far(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        y = torch.cumsum(self.conv(x), dim=1)
        return torch.cumsum(y, dim=2) + torch.fft.fft2(y).real
"""


def test_a_py_file_to_a_summary_in_two_commands(tmp_path: Path) -> None:
    (tmp_path / "small.py").write_text(MODULE)
    out = tmp_path / "small.yaml"
    runner = CliRunner()
    result = runner.invoke(
        app, ["import", f"{tmp_path / 'small.py'}:Small", "--input", "3x8x8", "--arg", "classes=4", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = runner.invoke(app, ["summary", str(out)], env=ENV)
    assert summary.exit_code == 0 and "features" in summary.stdout and "linear 128 -> 4" in summary.stdout
    assert analyze(load_spec(out)).totals.params_trainable == 8 * 27 + 8 + 128 * 4 + 4


def test_a_model_with_two_outputs_imports_with_outputs_and_sums_up(tmp_path: Path) -> None:
    (tmp_path / "small.py").write_text(MODULE)
    out = tmp_path / "two.yaml"
    runner = CliRunner()
    result = runner.invoke(app, ["import", f"{tmp_path / 'small.py'}:TwoOut", "--input", "3x8x8", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().endswith(
        "  - {kind: conv2d, name: aux, from: relu, out: 2, kernel: 1}\noutputs: [fc, aux]\n"
    )
    summary = runner.invoke(app, ["summary", str(out)], env=ENV)
    assert summary.exit_code == 0, summary.output
    assert "linear 512 -> 4" in summary.stdout and "fc 4, aux 2x8x8" in summary.stdout, summary.stdout
    report = analyze(load_spec(out))
    assert [report.rows[i].name for i in report.outputs] == ["fc", "aux"]


def test_a_refused_model_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "small.py").write_text(MODULE)
    out = tmp_path / "broken.yaml"
    result = CliRunner().invoke(app, ["import", f"{tmp_path / 'small.py'}:Broken", "--input", "3x8x8", "-o", str(out)])
    assert result.exit_code == 1 and not out.exists()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: (the model): the code reads a value computed from the input")
    assert "Traceback" not in result.output


def test_a_refusal_ends_with_a_count_and_json_lists_every_operation(tmp_path: Path) -> None:
    """How far a model is from importing: a line per operation and their count by name, or all of it as JSON."""
    (tmp_path / "small.py").write_text(MODULE)
    out = tmp_path / "far.yaml"
    args = ["import", f"{tmp_path / 'small.py'}:Far", "--input", "3x8x8", "-o", str(out)]
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 1 and not out.exists() and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: (the model): cumsum() is not an operation cnncalc imports ("), lines
    assert lines[-1] == (
        "error: 6 problem(s) (cumsum 2, _to_copy 1, _fft_c2c 1, view_as_real 1, select 1); --format json lists each"
        " with its module and source line"
    ), lines
    result = CliRunner().invoke(app, [*args, "--format", "json"], env=ENV)
    assert result.exit_code == 1 and not out.exists()
    data = json.loads(result.stdout)
    assert data["imported"] is False and data["refused"] == len(data["operations"]) == len(lines) - 1
    assert data["by_operation"]["cumsum"] == 2 and sum(data["by_operation"].values()) == data["refused"]
    first = data["operations"][0]
    assert first["module"] == "(the model)" and first["operation"] == "cumsum"
    assert first["source"].startswith(str(tmp_path / "small.py") + ":")
    assert first["message"] == "cumsum() is not an operation cnncalc imports"
    # and an import that succeeds: the spec itself, in the same document
    result = CliRunner().invoke(app, ["import", f"{tmp_path / 'small.py'}:Small", "--input", "3x8x8", "-f", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["imported"] is True and data["left_out"] == [] and data["spec"]["input"] == [3, 8, 8]


def test_a_model_that_does_not_run_at_the_input_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "small.py").write_text(MODULE)
    out = tmp_path / "small.yaml"
    args = ["import", f"{tmp_path / 'small.py'}:Small", "--input", "3x1x1", "-o", str(out)]
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 1 and not out.exists()
    # torch.fx's ShapeProp printed the failing operation's traceback, then a dump of the node; the cause is the line
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: (the model): it does not run on a 1 x 3x1x1 input: "), line
    assert "Output size is too small" in line


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="the cap reads Linux's /proc")
def test_a_run_past_the_free_memory_is_one_line_not_a_killed_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import resource

    from cnncalc import machine

    (tmp_path / "small.py").write_text(MODULE)
    out = tmp_path / "small.yaml"
    # as if 64 MB were free: a 3 x 4096 x 4096 input alone is 201 MB
    monkeypatch.setattr(machine, "available_bytes", lambda: 64 * 2**20)
    before = resource.getrlimit(resource.RLIMIT_AS)
    args = ["import", f"{tmp_path / 'small.py'}:Small", "--input", "3x4096x4096", "-o", str(out)]
    result = CliRunner().invoke(app, args, env=ENV)
    assert resource.getrlimit(resource.RLIMIT_AS) == before  # the cap is lifted again
    assert result.exit_code == 1 and not out.exists()
    (line,) = result.stderr.strip().splitlines()
    assert "on a 1 x 3x4096x4096 input, running it once to learn every shape needs more memory than" in line
    assert "import at a smaller --input, then set the spec's input" in line
    # a model too big to build at all: its weights alone are 268 MB
    (tmp_path / "wide.py").write_text("from torch import nn\n\ndef wide():\n    return nn.Linear(8192, 8192)\n")
    result = CliRunner().invoke(app, ["import", f"{tmp_path / 'wide.py'}:wide", "--input", "8192"], env=ENV)
    assert result.exit_code == 1 and resource.getrlimit(resource.RLIMIT_AS) == before
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith("wide.py:wide: building or running it needs more memory than this machine has free"), line


NOISY = """
import argparse
from torch import nn

print("loading")
parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.1)
options = parser.parse_args()  # a training script's habit: at import, not under __main__


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        print("built")

    def forward(self, x):
        print("forward")
        return self.conv(x)


def leaves():
    raise SystemExit(3)
"""


def test_a_script_that_prints_and_parses_arguments_gives_a_clean_spec_on_stdout(tmp_path: Path) -> None:
    (tmp_path / "noisy.py").write_text(NOISY)
    result = CliRunner().invoke(app, ["import", f"{tmp_path / 'noisy.py'}:Net", "--input", "3x8x8"], env=ENV)
    assert result.exit_code == 0, result.output
    # the file ran with no arguments of ours (argparse would have exited 2), and what it printed went to stderr
    assert load_spec(text=result.stdout).name == "Net"
    assert "loading" in result.stderr and "built" in result.stderr and "forward" in result.stderr


def test_a_script_that_exits_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "noisy.py").write_text(NOISY + "\nraise SystemExit(4)\n")
    result = CliRunner().invoke(app, ["import", f"{tmp_path / 'noisy.py'}:Net", "--input", "3x8x8"], env=ENV)
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "noisy.py exited (status 4) before Net could be built; a script's own work belongs under"
            " `if __name__ == '__main__':`"
        )
    )
    (tmp_path / "noisy.py").write_text(NOISY)
    result = CliRunner().invoke(app, ["import", f"{tmp_path / 'noisy.py'}:leaves", "--input", "3x8x8"], env=ENV)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1].endswith("noisy.py:leaves: building it exited (status 3)")


class WritesAfterARead(nn.Module):
    """softplus reads x, then silu writes into x: the concat joins them in the other order."""

    def __init__(self) -> None:
        super().__init__()
        self.soft = nn.Softplus()
        self.silu = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.soft(x)
        return torch.cat([self.silu(x), a], dim=1)


def test_an_in_place_write_after_a_read_keeps_the_models_order() -> None:
    # nested, the concat's branches ran in the order they are joined: silu_ first, and softplus read its result
    text = round_trip(WritesAfterARead(), (2, 4, 4))
    assert text.index("name: soft") < text.index("name: silu")


class TwoHeadsOfFeatures(nn.Module):
    """A flat network's concat: two linear heads' features joined along dim 1 (or -1) of N x F."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.a, self.b, self.out = nn.Linear(48, 5), nn.Linear(48, 3), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.out(torch.cat([self.a(x), self.b(x)], dim=self.dim))


@pytest.mark.parametrize("dim", [1, -1])
def test_a_concat_of_flat_features_imports(dim: int) -> None:
    # refused as 'cat() along dim 1; cnncalc concatenates channels of C x H x W' (found by the random round trip),
    # then because the branches start from torch.flatten's row, which has no name to read it by
    text = round_trip(TwoHeadsOfFeatures(dim), (3, 4, 4))
    assert (
        "{kind: flatten, name: flatten}" in text and "from: flatten" in text and "{kind: concat, from: [a, b]}" in text
    )


class FunctionFork(nn.Module):
    """Branches, no module each, from a function's output (torch.relu): written flat, the relu named to be read."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(x)
        return torch.cat([self.a(x), self.b(x)], 1)


def test_branches_from_a_functions_output_are_written_flat() -> None:
    text = round_trip(FunctionFork(), (3, 8, 8))
    assert "{kind: relu, name: relu}" in text and "from: relu" in text


def test_torchvision_to_stdout() -> None:
    result = CliRunner().invoke(app, ["import", "torchvision:resnet18", "--input", "3x32x32", "--arg", "num_classes=7"])
    assert result.exit_code == 0, result.output
    spec = load_spec(text=result.stdout)
    assert spec.name == "resnet18" and "conv2d: {bias: false}" in result.stdout
    assert result.stderr == ""  # no progress where stderr is no terminal
    assert analyze(spec).rows[-1].output_shape == (7,)


def test_progress_names_each_step_in_order() -> None:
    seen: list[tuple[int, int, str]] = []
    from_torch(tvm.resnet18(), (3, 32, 32), progress=lambda what, step, steps: seen.append((step, steps, what)))
    assert [s for s, _, _ in seen] == sorted(s for s, _, _ in seen) and {s for s, _, _ in seen} == set(range(5))
    assert all(steps == 5 for _, steps, _ in seen)
    assert seen[0][2] == "running ResNet once" and seen[-1][2] == "checking the spec"
    assert any(what.startswith("reading operations: 200 of ") for _, _, what in seen)


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("torchvision:nonesuch", "torchvision has no model 'nonesuch'"),
        ("resnet18", "expected torchvision:NAME"),
        ("no/such/file.py:Net", "no file no/such/file.py"),
        ("cnncalc.nonesuch:Net", "cannot import cnncalc.nonesuch"),
    ],
)
def test_a_bad_target_is_one_line(target: str, said: str) -> None:
    result = CliRunner().invoke(app, ["import", target, "--input", "3x32x32"])
    assert result.exit_code == 1 and said in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_docs_example_is_the_current_output() -> None:
    root = Path(__file__).resolve().parents[1]
    result = CliRunner().invoke(
        app, ["import", str(root / "examples/import/tiny_net.py") + ":TinyNet", "--input", "3x32x32"]
    )
    assert result.exit_code == 0, result.output
    assert f"```yaml\n{result.stdout}```" in (root / "docs" / "import.md").read_text()


def test_the_docs_quote_of_fcn_with_its_auxiliary_head_is_what_the_round_trip_checks() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "import.md").read_text()
    (quoted,) = [b.split("```")[0] for b in page.split("```yaml\n")[1:] if "aux_classifier" in b]
    assert "".join(line[2:] + "\n" for line in quoted.splitlines() if line.strip()) == SAYS["fcn_resnet50_aux"][0]


def test_a_resnet_comes_out_as_stages_of_bottlenecks() -> None:
    torch.manual_seed(0)
    text = round_trip(tvm.resnet50(), (3, 32, 32))
    assert text.count("use: bottleneck") == 4 and text.count("  bottleneck:") == 1
    assert "  - {use: bottleneck, name: layer3, repeat: 6, first: {stride: 2}}\n" in text
    # the arguments as a person writes them: one width, the others expressions of it
    assert "    args: {width: 256, stride: 1}\n" in text
    assert "{kind: conv2d, name: conv2, out: $width, kernel: 3, stride: $stride, padding: 1}" in text
    assert "{kind: conv2d, name: conv3, out: '${width * 4}', kernel: 1}" in text
    # docs/import.md quotes it (its blocks and its stages; the size does not change them)
    page = (Path(__file__).resolve().parents[1] / "docs" / "import.md").read_text()
    (quoted,) = [b for b in page.split("```yaml\n")[1:] if b.startswith("blocks:\n  bottleneck:")]
    for part in quoted.split("```")[0].split("  ...\n"):
        assert part in text, part
    assert "shortcut: auto" in text and "downsample" not in text


@pytest.mark.parametrize(("make", "shipped"), [(tvm.resnet50, "resnet50"), (tvm.convnext_tiny, "convnext_tiny")])
def test_an_import_is_the_shipped_hand_written_spec_in_every_total(make: Callable[[], nn.Module], shipped: str) -> None:
    """At 224, to the byte: `out += identity` in place, ConvNeXt's channels-last rows, its layer scale."""
    imported = analyze(from_torch(make().eval(), (3, 224, 224))).totals
    assert imported == analyze(shipped).totals


def test_a_segmentation_model_downloads_no_backbone() -> None:
    from cnncalc.commands.import_ import model_of

    model = model_of("torchvision:fcn_resnet50", {"aux_loss": False})  # weights_backbone=None: nothing fetched
    assert sum(p.numel() for p in model.parameters()) > 0


class OverTheWidth(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.LayerNorm(6)  # over the last dimension of N x C x H x W: the width, not the channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


def test_parameters_that_do_not_run_are_left_out_in_a_warning_each() -> None:
    said: list[Problem] = []
    model = tvm.googlenet(aux_logits=True, init_weights=False)
    spec = from_torch(model, (3, 64, 64), warnings=said)
    assert [str(p).split(":")[0] for p in said] == ["aux1", "aux2"]
    line = "aux1: InceptionAux holds 3,188,968 parameters that do not run on a 3x64x64 input at inference"
    assert line in str(said[0]) and "the spec leaves them out" in str(said[0])
    assert [n.startswith("Left out of this import: aux") for n in spec.notes] == [True, True]
    ran = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("aux"))
    assert analyze(spec).totals.params_trainable == ran


def test_the_cli_imports_googlenet_with_a_warning_line_per_head(tmp_path: Path) -> None:
    out = tmp_path / "g.yaml"
    args = ["import", "torchvision:googlenet", "--input", "3x64x64", "-o", str(out)]
    result = CliRunner().invoke(app, args, env=ENV)
    assert result.exit_code == 0, result.output
    # torchvision's FutureWarning about init_weights is not one of the lines
    lines = result.stderr.splitlines()
    assert [line.split(":")[:2] for line in lines[:-1]] == [["warning", " aux1"], ["warning", " aux2"]], lines
    assert lines[-1] == f"wrote {out}" and "Left out of this import: aux1: InceptionAux" in out.read_text()


def test_a_module_its_kind_would_compute_otherwise_is_refused() -> None:
    (line,) = _problems(OverTheWidth(), (3, 8, 8))
    assert "module 'norm' (LayerNorm) on a 4x6x6 input does not compute what layernorm does" in line


# --- what the random round trip found ----------------------------------------------------------------------


def test_a_built_spec_with_lent_rows_traces_and_imports_back() -> None:
    """A layer scale's parameter and a channel linear's module (and its GELU) are lent to the tree, not in it:
    torch.fx traces through them (it found `module is not installed as a submodule`)."""
    spec = spec_of([{"kind": "layer_scale"}, {"kind": "channel_linear", "out": 2, "activation": "gelu"}], (4, 3, 5))
    torch.manual_seed(0)
    text = round_trip(tb.build(spec), (4, 3, 5))
    assert "kind: layer_scale" in text and "activation: gelu" in text, text


class SelfJoined(nn.Module):
    """A tensor joined with itself: ``y + y``, ``cat([y, y])``, ``y * y``."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return {"add": lambda: y + y, "cat": lambda: torch.cat([y, y], 1), "mul": lambda: y * y}[self.op]()


@pytest.mark.parametrize(("op", "kind"), [("add", "add"), ("cat", "concat"), ("mul", "multiply")])
def test_a_tensor_joined_with_itself_is_a_join_reading_it_twice(op: str, kind: str) -> None:
    """No branch to nest (it was written as a residual with an empty body, which the spec refuses)."""
    torch.manual_seed(0)
    text = round_trip(SelfJoined(op), (2, 3, 3))
    assert text.endswith(f"  - {{kind: {kind}, from: [conv, conv]}}\n"), text


class Plus(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class JoinInAModule(nn.Module):
    """An add of its own module, written flat (its input is read beside another output): the join's two names stay
    on its row (they were lifted onto the module's ``sequential``, which reads one input)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.plus = Plus()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.conv(x)
        return torch.relu(y), self.plus(y, x)


def test_a_join_in_a_module_keeps_the_names_it_reads() -> None:
    torch.manual_seed(0)
    text = round_trip(JoinInAModule(), (2, 3, 3))
    assert "    name: plus\n    layers:\n      - {kind: add, from: [conv, input]}\n" in text, text


class Unread(nn.Module):
    """A module that runs but whose output nothing reads: the spec would leave its parameters out in silence."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv(x)
        return x + x


def test_a_module_whose_output_nothing_reads_is_refused_not_left_out() -> None:
    (line,) = _problems(Unread(), (2, 3, 3))
    assert line.startswith("conv: Conv2d holds 6 parameters whose output the model does not use on a 2x3x3 input"), line


class GatedOutput(nn.Module):
    """A product of the input and a conv of it, unnamed, returned beside another output: a name on the multiply
    would go before its rows' names."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.relu(x), x * self.conv(x)


def test_an_unnamed_structure_read_by_name_is_written_flat() -> None:
    """It was written ``{kind: multiply, name: multiply, body: [conv]}``: the build named the conv
    ``multiply.conv``, and the model's state_dict did not load."""
    torch.manual_seed(0)
    text = round_trip(GatedOutput(), (2, 3, 3))
    assert text.endswith("  - {kind: multiply, name: multiply, from: [input, conv]}\noutputs: [relu, multiply]\n"), text


class InPlaceOnARead(nn.Module):
    """``relu_`` on a tensor that a later operation reads too: that one reads the rectified values in torch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.cat([self.relu(y), y], 1)


def test_an_operation_in_place_on_a_tensor_read_after_it_reads_what_torch_reads() -> None:
    """``cat([relu_(y), y])`` reads the rectified values twice, as torch runs it: the run follows each tensor."""
    torch.manual_seed(0)
    text = round_trip(InPlaceOnARead(), (2, 3, 3))
    assert text.endswith("  - {kind: relu, name: relu, inplace: true}\n  - {kind: concat, from: [relu, relu]}\n"), text


class SelfJoinInABranch(nn.Module):
    """A product of two computed tensors, one of them a tensor joined with itself: ``relu(y) * tanh(y + y)``."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.relu(y) * torch.tanh(y + y)


def test_a_self_join_in_a_branch_written_flat_imports() -> None:
    """Where the branch starts was looked for among the join's branches, and it has none (a ValueError)."""
    torch.manual_seed(0)
    text = round_trip(SelfJoinInABranch(), (2, 3, 3))
    assert "{kind: add, from: [conv, conv]}" in text, text


# --- found by a review of the importer: each imported into a spec that computed otherwise, or did not load --------


class _AfterAConv(nn.Module):
    """A 1x1 conv ``c``; a subclass's forward says what follows it."""

    def __init__(self, channels: int = 3, out: int = 3) -> None:
        super().__init__()
        self.c = nn.Conv2d(channels, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(x)


class _Fire(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.c1(x), self.c2(x)], 1)


class _OneConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class StaleFork(nn.Module):
    """b's flat concat read its fork as 'conv' (branch a's last row's name), which from b finds the top conv."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.a, self.b = nn.Conv2d(3, 3, 1), _OneConv(), _Fire()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x))
        return torch.cat([self.a(y), self.b(y)], 1)


class _Downsampled(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=4, padding=1, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(4), nn.ReLU()
        self.downsample = nn.Sequential(nn.Conv2d(3, 4, 1, stride=stride, bias=False), nn.BatchNorm2d(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x))) + self.downsample(x)


class Downsampled(nn.Module):
    """A downsample is `shortcut: auto` only with the stride the engine's projection takes (4 here, not 5)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.b = _Downsampled(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(x)


class DropoutWithItsMode(_AfterAConv):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(self.c(x), 0.5, training=self.training)


@pytest.mark.parametrize(
    ("model", "said"),
    [
        (StaleFork(), "- {kind: conv2d, name: c2, out: 2, kernel: 3, padding: 1, from: in}"),
        (Downsampled(5), "shortcut:\n          downsample:"),
        (Downsampled(4), "shortcut: auto"),
        (DropoutWithItsMode(), "  - {kind: conv2d, name: c, out: 3, kernel: 1}\n"),
    ],
    ids=["a flat concat's fork by its own name", "a downsample of another stride", "torchvision's", "F.dropout eval"],
)
def test_what_the_review_found_now_imports_exactly(model: nn.Module, said: str) -> None:
    torch.manual_seed(0)
    assert said in round_trip(model, (3, 16, 16))


class _Refusals:
    """Models the importer wrote into specs that computed otherwise (or did not load, or did not check)."""

    class DropoutAlways(_AfterAConv):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.dropout(self.c(x), 0.5)  # training=True: it drops in eval mode too

    class Broadcast(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + F.adaptive_avg_pool2d(x, 1)

    class SigmoidInPlace(_AfterAConv):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.c(x)
            y.sigmoid_()
            return y

    class MulInPlace(_AfterAConv):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.c(x)
            y.mul_(torch.sigmoid(x))
            return y

    class StatsTwice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.bn = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3, affine=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.bn(self.c(self.bn(x)))

    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 3, 1)
            self.b = self.a

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.a(x)

    class CopyOfARefusedOp(_AfterAConv):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c(torch.cat([x.cumsum(1)], 1))  # a copy's input that is refused (a KeyError before)

    class SpatialGate(_AfterAConv):
        def __init__(self) -> None:
            super().__init__(3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(self.c(x))


@pytest.mark.parametrize(
    ("model", "said"),
    [
        (_Refusals.DropoutAlways(), "with training=True (its default) drops values at inference too"),
        (_Refusals.Broadcast(), "add() of 3x8x8 and 3x1x1: it broadcasts; cnncalc adds tensors of one shape"),
        (_Refusals.SigmoidInPlace(), "sigmoid_() is not an operation cnncalc imports"),
        (_Refusals.MulInPlace(), "mul_() writes a product into its input; cnncalc's multiply allocates its result"),
        (_Refusals.StatsTwice(), "bn: the module runs 2 times with the same weights (or running statistics)"),
        (_Refusals.Shared(), "a: the same module is also 'b'; a spec's rows each have their own weights"),
        (_Refusals.SpatialGate(), "the spec written for it does not check: multiply 'multiply': the body gives 1x8x8"),
        (_Refusals.CopyOfARefusedOp(), "cumsum() is not an operation cnncalc imports"),
    ],
    ids=["F.dropout", "broadcast add", "sigmoid_", "mul_", "stats twice", "one module twice", "1xHxW gate", "copy"],
)
def test_what_the_review_found_is_refused(model: nn.Module, said: str) -> None:
    lines = _problems(model, (3, 8, 8))
    assert len(lines) == 1 and said in lines[0], lines


class UnequalChunks(nn.Module):
    """torch.chunk(2) of 5 channels gives 3 and 2: the split says its sections (it was written without, and
    refused by the engine)."""

    def __init__(self) -> None:
        super().__init__()
        self.b = _AfterAConv(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return torch.cat([a, self.b(b)], 1)


def test_a_chunk_into_unequal_parts_is_a_split_with_sections() -> None:
    torch.manual_seed(0)
    assert "sections: [3, 2]" in round_trip(UnequalChunks(), (5, 8, 8))


class BranchesAfterAResidual(nn.Module):
    """A concat's branches, no module each, read an add: nested, the add has no row to read by name (it was
    refused: 'add() is read by name, and no one row or block of the spec holds it'); written flat."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.e1, self.e3 = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x) + x
        return torch.cat([self.e1(y), self.e3(y)], 1)


def test_branches_that_read_a_joins_output_are_written_flat() -> None:
    torch.manual_seed(0)
    text = round_trip(BranchesAfterAResidual(), (3, 8, 8))
    assert "{kind: add, name: add, from: [conv, input]}" in text and "from: add" in text


class _Bare:
    """Shortcuts and parts of a chunk that leaf modules beside the body's run, no module of their own holding them
    (each was refused: 'cnncalc names each shortcut's rows after one module that holds them, and these have none'):
    written as rows beside the body's, and a join of the two by name."""

    class TopLevel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, stride=2, padding=1)
            self.proj, self.bn = nn.Conv2d(3, 4, 1, stride=2), nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.c2(self.c1(x)) + self.bn(self.proj(x)))

    class _Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.proj = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.c1(x)
            out += self.proj(x)
            return out

    class InABlock(nn.Module):
        """The shortcut's only module is the block's: written in the block (it was a residual beside it, its
        shortcut a block named as the body's, and the written spec did not check)."""

        def __init__(self) -> None:
            super().__init__()
            self.stem, self.b = nn.Conv2d(3, 3, 1), _Bare._Block()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.stem(x))

    class _Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 3, 3, stride=2, padding=1), nn.BatchNorm2d(3))
            self.bn = nn.BatchNorm2d(3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) + self.bn(F.avg_pool2d(x, 2))

    class PooledShortcut(nn.Module):
        """A shortcut of a function and a leaf in the block, a body in a module of its own."""

        def __init__(self) -> None:
            super().__init__()
            self.b = _Bare._Pooled()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(x)

    class ChunkOfLeaves(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            left, right = self.stem(x).chunk(2, dim=1)
            return torch.cat([self.a(left), self.b(right)], 1)

    class UnequalChunkOfALeaf(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(3, 3, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            left, right = x.chunk(2, dim=1)
            return torch.cat([self.a(left), right], 1)


@pytest.mark.parametrize(
    ("model", "channels", "said"),
    [
        (_Bare.TopLevel(), 3, "  - {kind: conv2d, name: proj, from: input, out: 4, kernel: 1, stride: 2}\n"
         "  - {kind: batchnorm2d, name: bn}\n  - {kind: add, from: [c2, bn]}\n  - relu"),
        (_Bare.InABlock(), 3, "    name: b\n    layers:\n      - {kind: conv2d, name: c1, out: 4, kernel: 3, padding: 1}\n"
         "      - {kind: conv2d, name: proj, from: in, out: 4, kernel: 1}\n      - {kind: add, from: [c1, proj]"),
        (_Bare.PooledShortcut(), 3, "{kind: add, from: [body, bn]}"),
        (_Bare.ChunkOfLeaves(), 3, "  - {kind: slice, stop: 4}\n  - {kind: conv2d, name: a,"),
        (_Bare.UnequalChunkOfALeaf(), 5, "{kind: slice, name: slice_branch2, start: 3, stop: 5, from: input}"),
    ],
    ids=["at the top", "in a block", "a pool and a norm", "a chunk's parts", "an unequal chunk"],
)  # fmt: skip
def test_a_shortcut_or_part_no_module_holds_is_written_beside_the_body(
    model: nn.Module, channels: int, said: str
) -> None:
    torch.manual_seed(0)
    text = round_trip(model, (channels, 8, 8))
    assert said in text, text


class IntoTheShorterSide(nn.Module):
    """``out += self.down(x)`` whose shortcut is the longer side: the body is the side the add writes into (it was
    the longer one, and the add out of place allocated a tensor the model does not)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.down = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        out += self.down(x)
        return out


def test_an_add_in_place_into_the_shorter_side_stays_in_place() -> None:
    torch.manual_seed(0)
    text = round_trip(IntoTheShorterSide(), (3, 8, 8))
    assert "body:\n      - {kind: conv2d, name: conv, out: 4, kernel: 1}\n    shortcut:\n      down:" in text, text
    assert "inplace: true" in text, text


class _Written:
    """Found by the property test of models written in Python (each imported otherwise before: a spec computing
    other values, a dead computation left out in silence, a wrong reason, an internal error)."""

    class WritesIntoADropoutsResult(nn.Module):
        """A dropout at inference returns its input itself: the write into ``y`` changes the returned ``z`` (the
        spec traced with torch.fx left the ReLU out and returned other values)."""

        def __init__(self) -> None:
            super().__init__()
            self.c, self.drop = nn.Conv2d(3, 3, 1), nn.Dropout()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.c(x)
            z = self.drop(y)
            torch.relu_(y)
            return z

    class DeadSigmoid(_AfterAConv):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.c(x)
            torch.sigmoid(y)  # computed for nothing: the spec cannot hold it, and left it out in silence
            return y

    class UnusedBlock(nn.Module):
        """A block that runs but whose output nothing reads was said not to run."""

        def __init__(self) -> None:
            super().__init__()
            self.c, self.b = nn.Conv2d(3, 3, 1), _AfterAConv()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.b(x)
            return self.c(x)

    class CopyEndsABranch(_AfterAConv):
        """A branch, no module holding it, that ends in a copy (torch.cat of one tensor): an internal error."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.cat([torch.relu(x)], 1), self.c(x)], 1)


@pytest.mark.parametrize(
    ("model", "said"),
    [
        (_Written.DeadSigmoid(), "sigmoid() computes 1x3x4x4 values that nothing the model returns is computed from"),
        (_Written.UnusedBlock(), "b: _AfterAConv holds 12 parameters whose output the model does not use"),
    ],
    ids=["a dead sigmoid", "an unused block"],
)
def test_what_written_models_found_is_refused(model: nn.Module, said: str) -> None:
    lines = _problems(model, (3, 4, 4))
    assert len(lines) == 1 and said in lines[0], lines


def test_a_write_into_what_a_dropout_returned_is_the_returned_values() -> None:
    """A dropout at inference returns its input itself, so ``relu_(y)`` after ``z = drop(y)`` rectifies ``z``: the
    run follows the tensor, and the spec computes what the model returns."""
    torch.manual_seed(0)
    text = round_trip(_Written.WritesIntoADropoutsResult(), (3, 4, 4))
    assert text.endswith("  - {kind: dropout, name: drop}\n  - {kind: relu, inplace: true}\n"), text


def test_a_branch_that_ends_in_a_copy_imports() -> None:
    torch.manual_seed(0)
    text = round_trip(_Written.CopyEndsABranch(), (3, 4, 4))
    assert "{kind: concat, name: concat_branch1, branches: [[]]}" in text, text
