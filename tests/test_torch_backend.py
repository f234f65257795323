"""PyTorch as the oracle: every spec and random specs must agree with torch on every exact quantity."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, SPECS
from helpers import spec_of
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from strategies import layer_strategy, random_specs
from test_graph import IN_PLACE_FINE, OVERWRITES
from typer.testing import CliRunner

torch = pytest.importorskip("torch")  # CI installs torch; a dev machine without it skips this file

from cnncalc import Spec, SpecError, analyze, load_spec  # noqa: E402
from cnncalc import torch_backend as tb  # noqa: E402
from cnncalc.cli import app  # noqa: E402
from cnncalc.layers import KINDS  # noqa: E402
from cnncalc.layers.fused import activation_module  # noqa: E402
from cnncalc.spec import Concat, Multiply, Residual, Sequential, Split  # noqa: E402

pytestmark = pytest.mark.torch
ENV = {"COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb"}


def agree(spec: Spec, batch: int = 1, dtype: str = "float32", train: bool = False) -> list[tb.RowComparison]:
    report = analyze(spec, batch=batch, dtype=dtype)
    model = tb.build(report, dtype=dtype)
    saved = tb.measure_saved(model, report.input_shape, batch) if train else None
    return tb.compare(report, tb.measure(model, report.input_shape, batch), saved)


def assert_agree(comparisons: list[tb.RowComparison]) -> None:
    bad = [(c.row.name, ch) for c in comparisons for ch in c.checks if not ch.ok]
    assert not bad, bad


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_spec_agrees_with_torch(path: Path) -> None:
    spec = load_spec(path)
    comparisons = agree(spec)
    assert_agree(comparisons)
    report = analyze(spec)
    assert len(comparisons) == len(report.rows)
    for c in comparisons[1:]:  # MACs are half of FlopCounterMode's count, row by row
        assert 2 * c.row.macs == c.check("flops").measured


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_spec_keeps_what_cnncalc_says_for_backward(path: Path) -> None:
    """A training forward (batch 2): per row, the bytes of tensors autograd saves equal cnncalc's (CPU rules)."""
    comparisons = agree(load_spec(path), batch=2, train=True)
    assert_agree(comparisons)
    assert all(any(ch.quantity == "saved_bytes" for ch in c.checks) for c in comparisons[1:])


@pytest.mark.parametrize(
    "kind", ["silu", "gelu", "hardswish", "hardsigmoid", "elu", "selu", "mish", "softplus", "identity"]
)
def test_each_smooth_activation_agrees_with_torch_and_keeps_its_input(kind: str) -> None:
    spec = spec_of(
        [{"kind": "conv2d", "out": 4, "kernel": 3, "padding": 1}, kind, {"kind": "conv2d", "out": 2, "kernel": 1}]
    )
    assert_agree(agree(spec))
    assert_agree(agree(spec, batch=2, train=True))


def test_pixel_unshuffle_agrees_with_torch() -> None:
    spec = spec_of([{"kind": "conv2d", "out": 4, "kernel": 3, "padding": 1}, {"kind": "pixel_unshuffle", "factor": 2}],
                   (3, 8, 8))  # fmt: skip
    assert_agree(agree(spec))
    assert_agree(agree(spec, batch=2, train=True))


RESAMPLING = {
    "upsample nearest": [{"kind": "upsample", "scale": 2}],
    "upsample bilinear": [{"kind": "upsample", "scale": [2, 3], "mode": "bilinear"}],
    "upsample corners": [{"kind": "upsample", "size": [13, 7], "mode": "bilinear", "align_corners": True}],
    "up-conv": [{"kind": "convtranspose2d", "out": 6, "kernel": 2, "stride": 2}],
    "transposed conv": [
        {
            "kind": "convtranspose2d",
            "out": 4,
            "kernel": [3, 5],
            "stride": [2, 3],
            "padding": 1,
            "output_padding": [1, 2],
            "dilation": [1, 2],
            "groups": 2,
            "bias": False,
            "activation": "relu",
        }
    ],
    "transposed, then tanh": [{"kind": "convtranspose2d", "out": 4, "kernel": 3, "activation": "tanh"}],
    "pixel shuffle": [{"kind": "pixel_shuffle", "factor": 2}],
    "crop to a size": [{"kind": "crop", "size": [5, 4]}, "relu"],
    "crop by a margin": [{"kind": "crop", "margin": [1, 2]}, {"kind": "conv2d", "out": 2, "kernel": 1}],
}


@pytest.mark.parametrize("layers", list(RESAMPLING.values()), ids=list(RESAMPLING))
def test_the_resampling_kinds_agree_with_torch_and_keep_what_they_say(layers: list[Any]) -> None:
    spec = spec_of([{"kind": "conv2d", "out": 4, "kernel": 3, "padding": 1}, *layers], (3, 8, 9))
    assert_agree(agree(spec))
    assert_agree(agree(spec, batch=2, train=True))


def _out_of_place(value: Any) -> Any:
    """Entries with every ``inplace: true`` made false, at any depth."""
    if isinstance(value, dict):
        return {k: False if k == "inplace" else _out_of_place(v) for k, v in value.items()}
    return [_out_of_place(v) for v in value] if isinstance(value, list) else value


IN_PLACE_CASES = [(layers, outputs, True) for layers, outputs, _ in OVERWRITES.values()] + [
    (layers, outputs, False) for layers, outputs in IN_PLACE_FINE.values()
]


@pytest.mark.parametrize(
    ("layers", "outputs", "refused"), IN_PLACE_CASES, ids=[*OVERWRITES, *(f"fine: {k}" for k in IN_PLACE_FINE)]
)
def test_torch_computes_otherwise_exactly_where_an_in_place_write_is_refused(
    layers: list[Any], outputs: list[str] | None, refused: bool
) -> None:
    """Each spec's module, built out of place, then with the writes it asks for made in place (its ReLUs, its
    adds): the outputs change for exactly the specs the engine refuses."""
    report = analyze(spec_of(_out_of_place(layers), (4, 8, 8), **({"outputs": outputs} if outputs else {})))
    torch.manual_seed(0)
    model = tb.build(report).eval()
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        before = model(x.clone())
        for module in model.modules():
            if isinstance(module, torch.nn.ReLU | torch.nn.ReLU6 | tb._AddOp):
                module.inplace = True
        after = model(x.clone())
    pairs = zip(*(y if isinstance(y, tuple) else (y,) for y in (before, after)), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs) is refused


def _on_a_slice(shape: list[int], start: int, stop: int | None, *after: Any) -> tuple[list[int], list[Any]]:
    """A conv's output (the input's channels), channels ``start`` to ``stop`` of it, then ``after``."""
    conv = {"kind": "conv2d", "out": shape[0], "kernel": 1}
    return shape, [conv, {"kind": "slice", "start": start, "stop": stop}, *after]


#: Kinds that keep their input in one layout (a linear over the channels, instance norm's reshape) on some of
#: the channels of a tensor: a batch of such slices is copied into one matrix, one image is a view of them.
SLICED = {
    "channel_linear on one channel of two": _on_a_slice([2, 1, 2], 1, None, {"kind": "channel_linear", "out": 1}),
    "channel_linear on two channels of four": _on_a_slice([4, 2, 2], 1, 3, {"kind": "channel_linear", "out": 1}),
    "channel_linear on one position": _on_a_slice([2, 1, 1], 1, None, {"kind": "channel_linear", "out": 1}),
    "instance norm on one channel of two": _on_a_slice([2, 2, 2], 1, None, {"kind": "instancenorm2d"}),
    "instance norm, affine, after a relu on the slice": _on_a_slice(
        [4, 2, 2], 1, 3, {"kind": "relu", "inplace": True}, {"kind": "instancenorm2d", "affine": True}
    ),
}


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize(("shape", "layers"), list(SLICED.values()), ids=list(SLICED))
def test_a_slice_kept_in_a_layout_is_copied_for_a_batch(shape: list[int], layers: list[Any], batch: int) -> None:
    # found by the random differential test at a local seed: 32 bytes counted (the sliced tensor) for 16 kept
    assert_agree(agree(spec_of(layers, shape), batch=batch, train=True))


#: A product keeps each factor for the other's gradient, only where that other factor requires one: the
#: network's input and what is computed from it without parameters need none.
PRODUCTS = {
    "of two trainable rows": [
        {"kind": "conv2d", "out": 2, "kernel": 1, "name": "a"},
        {"kind": "conv2d", "out": 2, "kernel": 1, "name": "b"},
        {"kind": "multiply", "from": ["a", "b"]},
    ],
    "a trainable row by the input": [
        {"kind": "conv2d", "out": 2, "kernel": 1, "name": "a"},
        {"kind": "multiply", "from": ["a", "input"]},
    ],
    "the input by a trainable row": [
        {"kind": "conv2d", "out": 2, "kernel": 1, "name": "a"},
        {"kind": "multiply", "from": ["input", "a"]},
    ],
    "a parameterless row by a trainable one": [
        {"kind": "tanh", "name": "t", "from": "input"},
        {"kind": "prelu", "name": "p", "from": "input"},
        {"kind": "multiply", "from": ["t", "p"]},
    ],
    "a row by itself": [
        {"kind": "conv2d", "out": 2, "kernel": 1, "name": "a"},
        {"kind": "multiply", "from": ["a", "a"]},
    ],
    "an SE gate": [
        {"kind": "conv2d", "out": 2, "kernel": 1},
        {"kind": "multiply", "body": ["global_avgpool2d", {"kind": "conv2d", "out": 2, "kernel": 1}, "sigmoid"]},
    ],
}


@pytest.mark.parametrize("layers", list(PRODUCTS.values()), ids=list(PRODUCTS))
def test_a_product_keeps_the_factors_autograd_saves(layers: list[Any]) -> None:
    spec = spec_of(layers, (2, 4, 4))
    assert_agree(agree(spec, batch=2, train=True))


OUTPUT_CASES = {
    "a conv's output, kept by nothing": [{"kind": "conv2d", "out": 4, "kernel": 3}],
    "a relu keeps its result": [{"kind": "conv2d", "out": 4, "kernel": 3}, {"kind": "relu", "inplace": False}],
    "in place after a conv": [{"kind": "conv2d", "out": 4, "kernel": 3, "activation": "relu"}],
    "flatten, a view of the kept": [{"kind": "conv2d", "out": 4, "kernel": 3}, "relu", "flatten"],
    "linear after flatten": ["flatten", {"kind": "linear", "out": 5}],
    "dropout in place": ["flatten", {"kind": "linear", "out": 5}, {"kind": "dropout", "inplace": True}],
    "a residual's add": [
        {"kind": "conv2d", "out": 3, "kernel": 1},
        {"kind": "residual", "body": [{"kind": "conv2d", "out": 3, "kernel": 1}]},
    ],
}


@pytest.mark.parametrize("layers", list(OUTPUT_CASES.values()), ids=list(OUTPUT_CASES))
def test_the_output_counts_in_training_memory_unless_kept(layers: list[Any]) -> None:
    """The loss reads the output: training memory holds it, once, unless a tensor kept for backward is it."""
    report = analyze(spec_of(layers, (3, 6, 6)), batch=2)
    _, output = tb.measure_kept(tb.build(report), report.input_shape, 2)
    assert report.totals.output_bytes == output
    assert report.totals.training_bytes == (
        report.totals.param_bytes + report.totals.grad_bytes + report.totals.saved_bytes + output
    )


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_spec_counts_its_output_as_torch_holds_it(path: Path) -> None:
    report = analyze(load_spec(path), batch=2)
    _, output = tb.measure_kept(tb.build(report), report.input_shape, 2)
    assert report.totals.output_bytes == output


def test_half_precision_keeps_what_cnncalc_says_for_backward() -> None:
    assert_agree(agree(load_spec(SPECS / "resnet18.yaml"), batch=2, dtype="bfloat16", train=True))
    assert_agree(agree(load_spec(SPECS / "mobilenet_v2.yaml"), batch=2, dtype="bfloat16", train=True))


def test_saved_rules_differ_by_device_for_dropout() -> None:
    """Dropout keeps a 1-byte mask on CUDA (native_dropout) and one of the dtype on the CPU: the CPU is measured."""
    spec = spec_of([{"kind": "conv2d", "out": 4, "kernel": 3}, {"kind": "dropout"}], [3, 8, 8])
    report = analyze(spec, batch=2)
    model = tb.build(report)
    comparisons = tb.compare(report, tb.measure(model, report.input_shape, 2), tb.measure_saved(model, (3, 8, 8), 2))
    assert_agree(comparisons)
    mask = comparisons[2].check("saved_bytes").measured
    assert mask == 2 * 4 * 6 * 6 * 4  # a float32 mask on the CPU
    assert report.rows[2].saved_bytes == mask // 4  # the summary counts CUDA's bool mask


def test_cuda_training_total_is_information_not_a_check() -> None:
    """On CUDA, profile --train compares only the total kept for backward, and says when it differs."""
    from cnncalc.commands.profile import _timing_lines

    report = analyze(load_spec(SPECS / "lenet5.yaml"))
    timing = tb.Timing(mode="train", device="cuda", device_name="a GPU", warmup=0, seconds=[0.01], peak_bytes=10**6)
    for measured, text in ((report.totals.saved_bytes, "✓"), (1, "not yet checked on a GPU")):
        timing.saved_bytes = measured
        lines = dict(_timing_lines(report, timing, None, None))
        assert text in lines["kept for bwd"]
        assert "params + grads + kept for backward" in lines["peak memory"]


def test_batch_and_half_precision_agree() -> None:
    assert_agree(agree(load_spec(SPECS / "happy_model.yaml"), batch=3, dtype="bfloat16"))
    assert_agree(agree(load_spec(SPECS / "mnist_cnn.yaml"), batch=2, dtype="float16"))


def test_build_names_modules_as_the_rows() -> None:
    for name in ("vgg16", "resnet18", "googlenet"):
        report = analyze(load_spec(SPECS / f"{name}.yaml"))
        model = tb.build(report)
        for row in report.rows[1:]:
            assert model.get_submodule(row.name) is not None
    vgg = tb.build(analyze(load_spec(SPECS / "vgg16.yaml")))
    assert isinstance(vgg.conv1_1.conv, torch.nn.Conv2d) and vgg.conv1_1.relu.inplace
    resnet = tb.build(analyze(load_spec(SPECS / "resnet18.yaml")))
    keys = set(resnet.state_dict())
    # the parameters carry torchvision's names
    assert {
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "fc.bias",
    } <= keys


def test_a_layer_scale_is_a_parameter_of_the_enclosing_module() -> None:
    """torchvision's ConvNeXt holds its layer scale as ``features.1.0.layer_scale``: so does the build, and the
    row still runs with every per-row hook (measure, measure_kept, time_rows) and follows .to()."""
    layers = [
        {"kind": "sequential", "name": "x", "layers": [{"kind": "conv2d", "out": 4, "kernel": 1}, "layer_scale"]},
        {"kind": "layer_scale", "name": "top", "init": 0.5},
    ]
    report = analyze(spec_of(layers, [3, 5, 5]), batch=2)
    model = tb.build(report)
    assert list(model.state_dict()) == ["top", "x.layer_scale1", "x.conv1.weight", "x.conv1.bias"]
    assert model.x.layer_scale1.shape == (4, 1, 1) and float(model.top.detach()[0, 0, 0]) == 0.5
    assert not any(isinstance(m, tb.LentParameter) for m in model.modules())  # the rows run outside the tree
    assert_agree(tb.compare(report, tb.measure(model, (3, 5, 5), 2), tb.measure_saved(model, (3, 5, 5), 2)))
    assert set(tb.time_rows(model, (3, 5, 5), 2, warmup=0, iters=1)) == {r.index for r in report.rows[1:]}
    model.load_state_dict({**model.state_dict(), "top": torch.full((4, 1, 1), 2.0)})
    half = model.to(torch.bfloat16)
    out = half(torch.ones(1, 3, 5, 5, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16 and float(half.top.detach()[0, 0, 0]) == 2.0


def test_build_takes_a_spec_or_its_report() -> None:
    spec = load_spec(SPECS / "lenet5.yaml")
    from_spec, from_report = tb.build(spec), tb.build(analyze(spec))
    assert [n for n, _ in from_spec.named_modules()] == [n for n, _ in from_report.named_modules()]
    assert from_spec(torch.zeros(1, 1, 32, 32)).shape == (1, 10)


def test_residual_input_is_freed_only_after_the_add() -> None:
    """The interpreter lets a tensor go after its last reader, as eager code does."""
    report = analyze(load_spec(SPECS / "resnet18.yaml"))
    model = tb.build(report)
    add = next(r for r in report.rows if r.kind == "add")
    assert model.last_use[add.inputs[1]] == add.index  # the identity is read last by the add


def test_measure_removes_hooks_and_restores_mode_even_on_failure() -> None:
    spec = spec_of([{"kind": "conv2d", "out": 4, "kernel": 3}, {"kind": "dropout"}])
    model = tb.build(analyze(spec)).train()
    with pytest.raises(RuntimeError):
        tb.measure(model, (5, 8, 8))  # wrong channels: torch refuses
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    tb.measure(model, (3, 8, 8))
    assert model.training


def test_a_wrong_engine_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison can fail: an engine that miscounts conv MACs by one is reported."""
    conv = KINDS["conv2d"]
    original = conv.rule

    def off_by_one(ctx: Any, layer: Any) -> Any:
        out = original(ctx, layer)
        out.macs += 1
        return out

    monkeypatch.setattr(conv, "rule", off_by_one)
    comparisons = agree(load_spec(SPECS / "lenet5.yaml"))
    bad = [(c.row.name, ch.quantity) for c in comparisons for ch in c.checks if not ch.ok]
    assert bad == [("c1", "flops"), ("c3", "flops"), ("c5", "flops")]


# --- the differential test ---------------------------------------------------------------

#: Specs the engine refuses on purpose although torch would run them (README, "Conventions").
STRICTER = (
    "add '- flatten' before it",
    "needs a C x H x W input, got",
    "an add needs the same shape",
    "are not a range of the input's",  # x[:, 2:9] of 4 channels gives 2
    "a product needs the input's shape",  # x * y broadcasts any compatible shapes
    "cannot share the input's",  # torch.chunk makes unequal parts
    "a product needs the same shape",  # a * b broadcasts any compatible shapes
    "nothing reads its output",  # PyTorch runs dead code
    "(PyTorch refuses it in training)",  # an instance norm of 1x1 planes with running stats: it cannot train
    "writes in place into the output of",  # PyTorch runs it, and the later read sees the written values
    "padding 'same' sets the output size",  # a max pool's ceil_mode beside TensorFlow's 'same' says nothing
    "is even: padded by (kernel - 1) / 2",  # an ECA gate of fewer channels broadcasts where one channel is left
)


def _torch_entries(entries: tuple[Any, ...], x: Any, named: dict[str, Any] | None = None) -> Any:
    """The entries run in torch; ``named``: the top level's outputs by name, for 'from' (random graphs name only those)."""
    for entry in entries:
        if named is not None and entry.from_ is not None:
            inputs = [named[ref] for ref in entry.from_]
            if len(inputs) > 1:
                match entry.kind:
                    case "add":
                        x = sum(inputs[1:], inputs[0])
                    case "concat":
                        x = torch.cat(inputs, dim=1)
                    case _:
                        x = inputs[0] * inputs[1]
                named[entry.name] = x
                continue
            x = inputs[0]
        for _ in range(entry.repeat):
            x = _torch_entry(entry, x)
            if x.numel() == 0:  # x[:, 3:9] of 2 channels: torch makes an empty tensor, the engine refuses
                raise RuntimeError("an empty tensor")
        if named is not None and entry.name is not None:
            named[entry.name] = x
    return x


def _torch_entry(entry: Any, x: Any) -> Any:
    """The spec's meaning written again with torch alone, without the engine's shapes."""
    match entry:
        case Residual():
            y = _torch_entries(entry.body, x)
            word = entry.shortcut if isinstance(entry.shortcut, str) else None
            if word == "optional" and y.shape != x.shape:
                return y
            if word == "identity" or (word in ("auto", "optional") and y.shape == x.shape):
                s = x
            elif word in ("projection", "auto"):
                strides = [
                    k
                    for k in range(1, max(x.shape[2], x.shape[3]) + 1)
                    if (x.shape[2] - 1) // k + 1 == y.shape[2] and (x.shape[3] - 1) // k + 1 == y.shape[3]
                ]
                if not strides:
                    raise RuntimeError("no stride takes the input to the body's output")
                s = torch.nn.BatchNorm2d(y.shape[1]).eval()(
                    torch.nn.Conv2d(x.shape[1], y.shape[1], 1, strides[0], bias=False)(x)
                )
            elif isinstance(entry.shortcut, dict):
                s = _torch_entries(next(iter(entry.shortcut.values())), x)
            else:
                s = _torch_entries(entry.shortcut, x)
            out = y.add_(s) if entry.inplace else y + s
            return activation_module(entry.activation)(out) if entry.activation else out
        case Concat():
            branches = entry.branches.values() if isinstance(entry.branches, dict) else entry.branches
            return torch.cat([_torch_entries(b, x) for b in branches], dim=1)
        case Split():
            branches = list(entry.branches.values() if isinstance(entry.branches, dict) else entry.branches)
            sizes = entry.sections or [x.shape[1] // len(branches)] * len(branches)
            if len(sizes) != len(branches) or sum(sizes) != x.shape[1]:
                raise RuntimeError("the sections do not cover the channels")
            parts = torch.split(x, list(sizes), dim=1)
            return torch.cat([_torch_entries(b, part) for b, part in zip(branches, parts, strict=True)], dim=1)
        case Multiply():
            return x * _torch_entries(entry.body, x)
        case Sequential():
            return _torch_entries(entry.layers, x)
    return tb.module_for(entry, tuple(x.shape[1:])).eval()(x)


def torch_runs(spec: Spec) -> str | None:
    """Run the spec with torch alone; None if torch accepts it, else its error."""
    try:
        with torch.no_grad():
            x = torch.zeros((1, *spec.input))
            _torch_entries(spec.layers, x, {"input": x})
    except (RuntimeError, ValueError, IndexError) as exc:
        return str(exc)
    return None


@settings(
    max_examples=int(os.environ.get("CNNCALC_DIFF_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=random_specs())
def test_engine_and_torch_agree_on_random_specs(data: dict[str, Any]) -> None:
    spec = spec_of(data["layers"], data["input"], **({"outputs": data["outputs"]} if "outputs" in data else {}))
    try:
        report = analyze(spec)
    except SpecError as exc:
        refused = torch_runs(spec)
        event("engine and torch refuse" if refused else "engine refuses, stricter on purpose")
        if refused is None:
            assert all(any(s in p.message for s in STRICTER) for p in exc.problems), (str(exc), data)
        return
    assert torch_runs(spec) is None, data
    event(f"both accept, {'with' if any(r.kind in ('add', 'concat') for r in report.rows) else 'without'} branches")
    model = tb.build(report)
    assert_agree(tb.compare(report, tb.measure(model, report.input_shape)))
    # a training forward of two images (batch norm needs two values per channel to train)
    report = analyze(spec, batch=2)
    model = tb.build(report)
    saved, output = tb.measure_kept(model, report.input_shape, 2)
    assert_agree(tb.compare(report, tb.measure(model, report.input_shape, 2), saved))
    assert report.totals.output_bytes == output, data
    # and backward runs, except where the engine warns that an in-place write changes a saved tensor
    if cannot_train(report):
        event("cannot train: an in-place write changes a saved tensor")
    assert (backward_refused(model, report) is not None) is cannot_train(report), data


def cannot_train(report: Any) -> bool:
    return any("keeps for backward" in w.message for w in report.warnings)


def backward_refused(model: Any, report: Any) -> str | None:
    """A training step's backward of the built module on two random images: None, or PyTorch's refusal."""
    torch.manual_seed(0)
    model.train()
    y = model(torch.randn(2, *report.input_shape))
    loss = sum(t.float().sum() for t in (y if isinstance(y, tuple) else (y,)))
    if not loss.requires_grad:  # nothing to train before the output (no parameter reaches it)
        return None
    try:
        loss.backward()
    except RuntimeError as exc:
        assert "modified by an inplace operation" in str(exc), exc
        return str(exc)
    return None


#: Networks whose in-place writes change what an earlier row keeps for backward: they run, but cannot train.
CANNOT_TRAIN: dict[str, tuple[list[Any], bool]] = {
    "relu in place after sigmoid (which keeps its result)": (
        [{"kind": "conv2d", "out": 4, "kernel": 3}, "sigmoid", {"kind": "relu", "inplace": True}],
        True,
    ),
    "relu6 in place after relu (which keeps its result)": (
        [
            {"kind": "conv2d", "out": 4, "kernel": 3},
            {"kind": "relu", "inplace": True},
            {"kind": "relu6", "inplace": True},
        ],
        True,
    ),
    "relu in place after relu6 in place (which keeps a copy)": (
        [
            {"kind": "conv2d", "out": 4, "kernel": 3},
            {"kind": "relu6", "inplace": True},
            {"kind": "relu", "inplace": True},
        ],
        False,
    ),
    "an add in place into a relu's result": (
        [
            {"kind": "conv2d", "out": 4, "kernel": 3},
            {"kind": "residual", "body": [{"kind": "conv2d", "out": 4, "kernel": 1}, "relu"], "inplace": True},
        ],
        True,
    ),
    "an add in place into a batch norm's output (torchvision's)": (
        [
            {"kind": "conv2d", "out": 4, "kernel": 3},
            {"kind": "residual", "body": [{"kind": "conv2d", "out": 4, "kernel": 1}, "batchnorm2d"], "inplace": True},
        ],
        False,
    ),
    "relu in place on the input a conv keeps": (
        [
            {"kind": "conv2d", "out": 4, "kernel": 1, "name": "c"},
            {"kind": "relu", "inplace": True, "from": "input", "name": "r"},
            {"kind": "concat", "from": ["c", "r"]},
        ],
        True,
    ),
}


@pytest.mark.parametrize(("layers", "warned"), list(CANNOT_TRAIN.values()), ids=list(CANNOT_TRAIN))
def test_a_network_that_cannot_train_is_said_to_and_torch_agrees(layers: list[Any], warned: bool) -> None:
    report = analyze(spec_of(layers, (3, 6, 6)), batch=2)
    assert cannot_train(report) is warned, report.warnings
    assert (backward_refused(tb.build(report), report) is not None) is warned


# --- the command ---------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=ENV)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_profile_table_on_cpu() -> None:
    code, out, _ = run("profile", "specs/lenet5.yaml", "--device", "cpu", "--warmup", "1", "--iters", "3")
    assert code == 0
    assert "✓ all 57 checks agree with PyTorch" in out
    assert "latency" in out and "images/s" in out and "TFLOP/s" in out


def test_profile_json_train() -> None:
    code, out, _ = run(
        "profile", "specs/happy_model.yaml", "--device", "cpu", "--train", "-b", "2", "--iters", "2", "-f", "json"
    )
    assert code == 0
    data = json.loads(out)
    assert data["ok"] is True and data["mismatches"] == []
    timing = data["timing"]
    assert timing["mode"] == "train" and timing["iterations"] == 2 and len(timing["seconds"]) == 2
    assert timing["flops_per_iteration"] > 2 * data["totals"]["flops"]  # backward counted too
    assert timing["saved_for_backward_bytes"] == sum(
        layer["checks"]["saved_bytes"]["analytic"] for layer in data["layers"][1:]
    )
    assert all(layer["checks"]["saved_bytes"]["ok"] for layer in data["layers"][1:])


def test_profile_mismatch_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = KINDS["avgpool2d"]
    original = pool.rule

    def wrong(ctx: Any, layer: Any) -> Any:
        out = original(ctx, layer)
        out.activations *= 2
        return out

    monkeypatch.setattr(pool, "rule", wrong)
    code, out, _ = run("profile", "specs/lenet5.yaml", "--device", "cpu", "--iters", "1", "--warmup", "0")
    assert code == 1
    assert "✗ 2 of 57 checks disagree with PyTorch" in out
    assert "mismatch: layer 2 avgpool2d 's2': activation_bytes cnncalc 9,408 != torch 4,704" in out


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="the cap reads Linux's /proc")
def test_profile_past_the_free_memory_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import resource

    from cnncalc import machine

    # as if 32 MB were free: LeNet-5 at batch 20,000 holds 20,000 x 4,704 x 4 B = 376 MB in its first conv's output
    monkeypatch.setattr(machine, "available_bytes", lambda: 32 * 2**20)
    before = resource.getrlimit(resource.RLIMIT_AS)
    code, _, err = run("profile", "specs/lenet5.yaml", "--device", "cpu", "-b", "20000", "--iters", "1")
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "running it at batch 20000 needs more memory than this machine has free (33.55 MB)" in line
    assert line.endswith("try a smaller --batch or --input")


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["--dtype", "int8"], "int8"),
        (["--iters", "0"], "--iters"),
    ],
)
def test_profile_usage_errors(args: list[str], text: str) -> None:
    code, out, err = run("profile", "specs/lenet5.yaml", *args)
    assert code == 2 and text in out + err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_profile_cuda_without_cuda_is_a_usage_error() -> None:
    code, out, err = run("profile", "specs/lenet5.yaml", "--device", "cuda")
    assert code == 2 and "no CUDA device" in out + err


def test_profile_without_torch_says_how_to_install() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\nfrom cnncalc.cli import app\napp(['profile', 'specs/lenet5.yaml'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **ENV}, check=False
    )
    assert result.returncode == 2
    assert "pip install 'cnncalc[torch]'" in result.stderr and "Traceback" not in result.stderr


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("args", [[], ["--train"], ["--dtype", "bfloat16"]], ids=["fwd", "train", "bf16"])
def test_profile_vgg16_on_cuda(args: list[str]) -> None:
    code, out, _ = run("profile", "specs/vgg16.yaml", "--device", "cuda", "--iters", "5", "-f", "json", *args)
    assert code == 0
    data = json.loads(out)
    assert data["ok"] and data["timing"]["device"] == "cuda" and data["timing"]["peak_memory_bytes"] > 0


def test_profile_times_until_the_median_is_stable() -> None:
    """No --iters: at least 20 steps and a second of them; the spread and the thread count are reported."""
    code, out, _ = run("profile", "specs/lenet5.yaml", "--device", "cpu", "--warmup", "1", "-f", "json")
    assert code == 0
    timing = json.loads(out)["timing"]
    assert timing["iterations"] >= tb.MIN_ITERS and sum(timing["seconds"]) >= 1.0
    q1, q3 = timing["quartile_seconds"]
    assert min(timing["seconds"]) <= q1 <= timing["median_seconds"] <= q3 <= max(timing["seconds"])
    assert timing["threads"] == torch.get_num_threads()


def test_profile_iters_are_bounded() -> None:
    code, _, err = run("profile", "specs/lenet5.yaml", "--iters", "100001")
    assert code == 2 and "--iters" in err


def test_profile_roofline_times_each_layer_against_its_roof() -> None:
    code, out, err = run(
        "profile", "specs/lenet5.yaml", "--device", "cpu", "--iters", "1", "--roofline",
        "--roofline-device", "h100-sxm", "-f", "json",
    )  # fmt: skip
    assert code == 0, err
    roof = json.loads(out)["roofline"]
    report = analyze(load_spec(SPECS / "lenet5.yaml"))
    assert [r["index"] for r in roof["rows"]] == [r.index for r in report.rows[1:]]
    code, ideal, _ = run("roofline", "specs/lenet5.yaml", "--device", "h100-sxm", "-f", "json")
    by_index = {r["index"]: r for r in json.loads(ideal)["rows"]}
    for r in roof["rows"]:
        assert r["ideal_s"] == by_index[r["index"]]["time_s"] and r["bound"] == by_index[r["index"]]["bound"]
        assert r["measured_s"] > 0 and r["fraction"] == pytest.approx(r["ideal_s"] / r["measured_s"])
    assert roof["totals"]["measured_s"] == pytest.approx(sum(r["measured_s"] for r in roof["rows"]))


@pytest.mark.parametrize("name", KINDS)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_every_kind_builds_its_own_module(name: str, data: st.DataObject) -> None:
    """The torch facet of the registry: each kind's module, where the rule takes the layer."""
    entry = data.draw(layer_strategy(KINDS[name], 4))
    try:
        report = analyze(spec_of([entry], [6] if KINDS[name].input == "flat" else [4, 9, 9]))
    except SpecError:
        return
    row = report.rows[1]
    assert isinstance(KINDS[name].torch_module(row.layer, row.input_shape), torch.nn.Module)


def test_torch_measures_every_checked_quantity() -> None:
    measured = {f.name for f in dataclasses.fields(tb.MeasuredRow)}
    assert set(tb.QUANTITIES) <= measured


@pytest.mark.parametrize("stack", [False, True])
def test_an_add_of_three_named_rows_agrees(stack: bool) -> None:
    """Three inputs: summed into the first sum in place, or stacked and summed (smp's FPN); either is one output."""
    add = {"kind": "add", "from": ["a", "b", "c"], "name": "sum", **({"stack": True} if stack else {})}
    layers = [{"kind": "conv2d", "out": 4, "kernel": 1, "name": n, "from": "input"} for n in "abc"]
    spec = spec_of([*layers, add], [3, 8, 8])
    assert_agree(agree(spec))
    model = tb.build(analyze(spec)).eval()
    convs = {name: module for _, name, module, _ in model.steps if name in ("a", "b", "c")}
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(x), convs["a"](x) + convs["b"](x) + convs["c"](x))


NEWER_KINDS = {
    "std_conv2d gain": [{"kind": "std_conv2d", "out": 4, "kernel": 3, "gain": True, "gamma": 1.7}],
    "std_conv2d same": [{"kind": "std_conv2d", "out": 4, "kernel": 3, "stride": 2, "padding": "same"}],
    "grn": [{"kind": "conv2d", "out": 4, "kernel": 3}, {"kind": "grn"}],
    "grn on the input": [{"kind": "grn"}],
    "layer_scale scalar in place": [
        {"kind": "conv2d", "out": 4, "kernel": 1},
        {"kind": "layer_scale", "scalar": True, "inplace": True},
    ],
    "layer_scale scalar vector": [{"kind": "conv2d", "out": 4, "kernel": 1}, {"kind": "layer_scale", "scalar": True}],
    "blur_pool2d": [{"kind": "conv2d", "out": 4, "kernel": 1}, {"kind": "blur_pool2d"}],
    "blur_pool2d 5, stride 1": [{"kind": "blur_pool2d", "kernel": 5, "stride": 1}],
    "space_to_depth": [{"kind": "space_to_depth", "factor": 2}, {"kind": "conv2d", "out": 4, "kernel": 1}],
}


@pytest.mark.parametrize("layers", list(NEWER_KINDS.values()), ids=list(NEWER_KINDS))
def test_the_kinds_timm_taught_agree_in_inference_and_training(layers: list[dict[str, Any]]) -> None:
    """Every figure, and what autograd keeps for backward, of the kinds NF-Nets, ConvNeXt-V2 and TResNet brought."""
    spec = spec_of(layers, [3, 8, 8])
    assert_agree(agree(spec))
    report = analyze(spec, batch=2)
    model = tb.build(report)
    saved, output = tb.measure_kept(model, report.input_shape, 2)
    assert_agree(tb.compare(report, tb.measure(model, report.input_shape, 2), saved))
    assert report.totals.output_bytes == output
