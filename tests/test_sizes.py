"""`cnncalc sizes`: every size it names is checked against the engine itself (summary's analysis)."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from conftest import SPECS
from typer.testing import CliRunner

from cnncalc import Report, SpecError, analyze, load_spec
from cnncalc.cli import app
from cnncalc.sizes import AXES, analyze_sizes

SPEC_FILES = sorted(SPECS.glob("*.yaml"))


def at(spec: Any, own: tuple[int, ...], axis: int, n: int) -> Report | None:
    shape = list(own)
    shape[1 + axis] = n
    try:
        return analyze(spec, input_shape=shape)
    except SpecError:
        return None


def params(report: Report) -> list[int]:
    return [r.params for r in report.rows]


def lossy(report: Report, axis: int) -> bool:
    """Whether summary warns that real input along ``axis`` is never read."""
    pattern = rf"': (height and width|{AXES[axis]}): .* is not a whole number"
    return any(re.search(pattern, w.message) for w in report.warnings)


def evaluate(formula: str, n: int) -> int:
    return int(eval(formula.replace("floor(", "(").replace(" / ", " // "), {"H": n, "W": n}))


@pytest.mark.parametrize("path", SPEC_FILES, ids=lambda p: p.stem)
def test_sizes_agree_with_the_engine(path: Any) -> None:
    spec = load_spec(path)
    report = analyze(spec)
    own = report.input_shape
    memo: dict[tuple[int, int], Report | None] = {}

    def size(axis: int, n: int) -> Report | None:  # each size analysed once (a check may ask for it again)
        if (axis, n) not in memo:
            memo[axis, n] = at(spec, own, axis, n)
        return memo[axis, n]

    for axis, found in enumerate(analyze_sizes(report)):
        assert found.axis == AXES[axis]
        lo, hi = found.valid
        assert size(axis, lo) is not None
        if lo > 1:
            assert size(axis, lo - 1) is None
        if hi is not None:
            assert size(axis, hi) is not None and size(axis, hi + 1) is None
        step = found.valid_period  # where only some sizes are valid, the valid ones
        if step > 1:
            assert all(size(axis, lo + i) is None for i in range(1, step) if (lo + i) % step not in
                       found.valid_residues)  # fmt: skip
            assert all(size(axis, lo + i * step) is not None for i in range(3))
        first, last = found.same_params
        for n in (first, last) if last is not None else (first, first + 37 * step):
            assert params(size(axis, n)) == params(report)  # type: ignore[arg-type]
        for n in (first - step, (last or 0) + step):
            other = size(axis, n) if (n >= 1 and last is not None) or n == first - step >= 1 else None
            assert other is None or params(other) != params(report)
        if found.lossless_from is not None:
            start, period = found.lossless_from, found.lossless_period
            for n in (start, start + period, start + 5 * period):
                if found.lossless_to is not None and n > found.lossless_to:
                    continue
                assert not lossy(size(axis, n), axis), n  # type: ignore[arg-type]
            if period > 1:
                off = next(n for n in range(start, start + period) if n % period not in found.lossless_residues)
                checked = size(axis, off)
                assert checked is None or lossy(checked, axis)
        if found.output_formula is not None:
            index = next(r.index for r in report.rows if r.name == found.output_row)
            for n in (lo, lo + 1, lo + 7, own[1 + axis], 2 * own[1 + axis] + 3):
                checked = size(axis, n)
                if checked is not None:
                    assert checked.rows[index].output_shape[1 + axis] == evaluate(found.output_formula, n)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vgg16", {"valid": (32, None), "same_params": (224, 255), "lossless": (32, (0,), 32), "formula": "floor(H / 32)"}),
        ("resnet50", {"valid": (1, None), "same_params": (1, None), "lossless": (1, (0,), 1)}),
        ("alexnet", {"same_params": (227, 258), "lossless": (32, (3,), 67), "formula": "floor((H - 35) / 32)"}),
    ],
)  # fmt: skip
def test_the_issues_figures(name: str, expected: dict[str, Any]) -> None:
    height = analyze_sizes(analyze(name))[0]
    got = {
        "valid": height.valid,
        "same_params": height.same_params,
        "lossless": (height.lossless_period, height.lossless_residues, height.lossless_from),
        "formula": height.output_formula,
    }
    assert {k: got[k] for k in expected} == expected


def test_json_contract() -> None:
    result = CliRunner().invoke(app, ["sizes", "vgg16", "-f", "json"])
    assert result.exit_code == 0
    height = json.loads(result.stdout)["axes"]["height"]
    assert height == {
        "size": 224,
        "valid": {"min": 32, "max": None, "period": 1, "residues": [0]},
        "same_params": {"min": 224, "max": 255},
        "lossless": {"period": 32, "residues": [0], "from": 32, "to": None},
        "output": {"row": "pool5", "formula": "floor(H / 32)"},
    }


def test_a_flat_input_has_no_sizes() -> None:
    result = CliRunner().invoke(app, ["sizes", "-"], input="name: t\ninput: [10]\nlayers: [{kind: linear, out: 2}]\n")
    assert result.exit_code == 1 and "no height or width" in result.stderr


def test_sizes_golden(update_golden: bool) -> None:
    from test_cli import ENV, check_golden

    result = CliRunner().invoke(app, ["sizes", "alexnet"], env=ENV)
    assert result.exit_code == 0
    check_golden("sizes_alexnet.txt", result.stdout, update_golden)


def test_unet_takes_572_and_every_16th_size() -> None:
    """U-Net's copy and crop meets the upsampled map only at sizes 12 more than a multiple of 16."""
    height, width = analyze_sizes(analyze(load_spec(SPECS / "unet.yaml")))
    assert dataclasses.replace(width, axis="height", output_formula=height.output_formula) == height
    assert height.valid == (188, None) and (height.valid_period, height.valid_residues) == (16, (12,))
    assert 572 % 16 == 12 and height.same_params == (188, None)
    assert (height.lossless_period, height.lossless_residues, height.lossless_from) == (16, (12,), 188)
    assert (height.output_formula, width.output_formula) == ("H - 184", "W - 184")
