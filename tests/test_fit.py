"""`cnncalc fit`: the largest batch whose counted memory fits a budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SPECS
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnncalc import analyze, load_spec
from cnncalc.cli import app
from cnncalc.fit import OPTIMIZER_STATE, largest_batch, need, parse_bytes

ENV = {"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=ENV)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16GB", 16 * 10**9), ("80GiB", 80 * 2**30), ("1.5 GB", 1_500_000_000), ("512MiB", 512 * 2**20),
     ("24g", 24 * 10**9), ("1000", 1000), ("2TB", 2 * 10**12), ("64 kB", 64_000)],
)  # fmt: skip
def test_parse_bytes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "16 XB", "-1GB", "1e9", "16 GB extra"])
def test_parse_bytes_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size such as 16GB"):
        parse_bytes(text)


VGG11 = load_spec(SPECS / "vgg11.yaml")
RESNET18 = load_spec(SPECS / "resnet18.yaml")


@settings(max_examples=40, deadline=None)
@given(
    spec=st.sampled_from([VGG11, RESNET18]),
    budget=st.integers(10**8, 10**11),
    train=st.booleans(),
    optimizer=st.sampled_from(["sgd", "momentum", "adam"]),
    dtype=st.sampled_from(["float32", "bfloat16"]),
)
def test_the_batch_found_fits_and_the_next_does_not(spec, budget, train, optimizer, dtype) -> None:  # type: ignore[no-untyped-def]
    result = largest_batch(spec, budget, train=train, optimizer=optimizer, dtype=dtype)
    assert result.next is not None
    if result.best is None:
        assert result.next.batch == 1 and result.next.total > budget
        return
    assert result.best.total <= budget < result.next.total
    assert result.next.batch == result.best.batch + 1
    # each figure is the engine's own total at that batch
    report = analyze(spec, batch=result.best.batch, dtype=dtype)
    t = report.totals
    if train:
        assert result.best.total == t.training_bytes + OPTIMIZER_STATE[optimizer] * t.grad_bytes
    else:
        assert result.best.total == t.param_bytes + t.peak_activation_bytes
    assert need(report, train=train, optimizer=optimizer) == result.best


def test_fit_command_vgg16_training() -> None:
    code, out, _ = run("fit", "specs/vgg16.yaml", "--memory", "16GB", "--train")
    assert code == 0
    report = analyze(load_spec(SPECS / "vgg16.yaml"), batch=188)
    t = report.totals
    assert t.output_bytes == 188 * 1000 * 4  # the logits the loss reads
    assert t.training_bytes + 2 * t.grad_bytes == 15_981_775_872  # printed below, for batch 188
    assert "batch 188  fits: 15.98 GB (15,981,775,872 bytes)" in out
    assert "batch 189  does not: 16.06 GB" in out
    assert "Not counted:" in out


def test_fit_json_and_not_even_one_image() -> None:
    code, out, _ = run("fit", "specs/vgg16.yaml", "-m", "1GB", "--train", "-f", "json")
    assert code == 1
    data = json.loads(out)
    assert data["batch"] == 0 and data["fits"] is None
    assert data["next"]["batch"] == 1 and data["next"]["total"] > data["budget_bytes"] == 10**9
    code, out, _ = run("fit", "specs/lenet5.yaml", "-m", "24GiB", "-f", "json")
    data = json.loads(out)
    assert code == 0 and data["fits"]["total"] <= 24 * 2**30 < data["next"]["total"]


@pytest.mark.parametrize(
    ("args", "code"),
    [(["-m", "16 XB"], 2), ([], 2), (["-m", "16GB", "--optimizer", "lion"], 2), (["-m", "16GB", "-i", "3x0x0"], 2)],
)
def test_fit_usage_errors(args: list[str], code: int) -> None:
    assert run("fit", "specs/vgg16.yaml", *args)[0] == code


def test_fit_on_a_broken_spec_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninput: [3, 7, 7]\nlayers:\n  - {kind: conv2d, out: 4, kernel: 9}\n")
    code, _, err = run("fit", str(bad), "-m", "1GB")
    assert code == 1
    assert err.count("\n") == 1 and f"{bad}:4:" in err


def test_fit_golden(update_golden: bool) -> None:
    from test_cli import check_golden

    code, out, _ = run("fit", "specs/resnet50.yaml", "--memory", "80GB", "--train", "--dtype", "bfloat16")
    assert code == 0
    check_golden("fit_resnet50.txt", out, update_golden)


def test_a_float_budget_gives_a_whole_batch() -> None:
    spec = load_spec(SPECS / "resnet50.yaml")
    result = largest_batch(spec, 80e9)
    assert result.best is not None and type(result.best.batch) is int
    assert result.best.batch == largest_batch(spec, 80 * 10**9).best.batch  # type: ignore[union-attr]


@pytest.mark.parametrize("budget", [float("inf"), float("nan"), -1, True])
def test_a_budget_that_is_no_size_is_refused(budget: float) -> None:
    with pytest.raises(ValueError, match="budget must be a finite number of bytes"):
        largest_batch(load_spec(SPECS / "lenet5.yaml"), budget)


def test_training_counts_the_output_the_loss_reads() -> None:
    """Dense prediction: two 3x3 convs on 64x256x256 keep the input and the first output; the loss reads the second."""
    spec = load_spec(
        "dense.yaml",
        text="name: dense\ninput: [64, 256, 256]\nlayers:\n"
        + "  - {kind: conv2d, out: 64, kernel: 3, padding: 1}\n" * 2,
    )
    plane = 64 * 256 * 256 * 4
    t = analyze(spec).totals
    assert (t.saved_bytes, t.output_bytes) == (2 * plane, plane)
    assert t.training_bytes == t.param_bytes + t.grad_bytes + 3 * plane  # 50.9 MB, the output 16.8 MB of it
    result = largest_batch(spec, 10**9, train=True, optimizer="sgd")
    assert result.best is not None and result.best.total <= 10**9 < result.next.total  # type: ignore[union-attr]
    assert result.best.output == result.best.batch * plane
