"""Narrow terminals: tables wrap text at word boundaries and shorten their numbers (and say so), never cut a cell."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ROOT, SPECS
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnncalc.cli import app
from cnncalc.render import short

SPEC_FILES = sorted(SPECS.glob("*.yaml"))
SHORT = re.compile(r"^-?\d{1,3}(\.\d{1,2})?[kMGT]?$")
PREFIX = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def run(columns: int, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"})
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout


def parse_short(text: str) -> float:
    prefix = text[-1] if text[-1] in "kMGT" else ""
    return float(text.removesuffix(prefix).replace(",", "")) * PREFIX[prefix]  # past 999T: 1,000T


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_short_keeps_three_significant_digits(n: int) -> None:
    text = short(n)
    assert SHORT.match(text) or abs(n) >= 10**15 - 10**12, text
    if 1000 <= abs(n) < 10**15 - 10**12:
        assert len(re.sub(r"\D", "", text)) == 3, text  # 4.10k, not 4.1k
    assert abs(parse_short(text) - n) <= 0.005 * abs(n) + 0.5


def _table_rows(out: str, count: int) -> list[str]:
    """The ``count`` rows of the summary table, found by their index in the first column.

    Block headers (``layer1``, stage ``0``) are indented further, and a folded layer cell continues on lines
    that start with spaces; neither is a row.
    """
    rows: list[str] = []
    for line in out.splitlines():
        if len(rows) < count and re.match(rf"^ {{0,5}}{len(rows)} ", line):
            rows.append(line)
    return rows


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("columns", [80, 100])
def test_summary_in_a_narrow_terminal_cuts_no_number(spec: Path, columns: int) -> None:
    code, out = run(columns, "summary", str(spec.relative_to(ROOT)))
    assert code == 0
    assert max(len(line.rstrip()) for line in out.splitlines()) <= columns
    report = json.loads(run(200, "summary", str(spec.relative_to(ROOT)), "-f", "json")[1])
    lines = _table_rows(out, len(report["layers"]))
    assert len(lines) == len(report["layers"])
    shortened = "Numbers shortened to fit the terminal" in out
    for line, layer in zip(lines, report["layers"], strict=True):
        tokens = line.split()
        assert "…" not in " ".join(tokens[-5:]), line
        # the last four cells: memory (two tokens unless 0), params, MACs, RF
        params, macs = tokens[-3], tokens[-2]
        if shortened:
            assert parse_short(params) == pytest.approx(layer["params"], rel=0.005, abs=0.5), line
            assert parse_short(macs) == pytest.approx(layer["macs"], rel=0.005, abs=0.5), line
        else:
            assert (int(params.replace(",", "")), int(macs.replace(",", ""))) == (layer["params"], layer["macs"])


def test_vgg16_at_80_columns_is_shortened_and_exact_at_120() -> None:
    _, narrow = run(80, "summary", "specs/vgg16.yaml")
    _, wide = run(120, "summary", "specs/vgg16.yaml")
    assert "Numbers shortened to fit the terminal" in narrow
    assert "Numbers shortened" not in wide
    # the footer: total memory, params and MACs; the totals block under the table stays exact
    assert re.search(r"total\s+60\.95 MB\s+138M\s+15\.5G", narrow)
    assert "15,470,264,320 = 15.47 GMAC" in narrow
    assert re.search(r"total\s+15,237,608\s+60\.95 MB\s+138,357,544\s+15,470,264,320", wide)


def test_compare_in_a_narrow_terminal_cuts_no_number() -> None:
    code, out = run(80, "compare", "specs/resnet18.yaml", "specs/resnet50.yaml")
    assert code == 0
    assert "…" not in out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    total = next(line for line in out.splitlines() if line.startswith(" total"))
    assert total.split()[1:] == ["11.7M", "25.6M", "+13.9M", "1.81G", "4.09G", "+2.28G", "5.32M", "22.6M", "+17.3M"]
    assert "+13,911,040 (+118.9%)" in out  # the exact totals below the table


@pytest.mark.torch
def test_profile_in_a_narrow_terminal_keeps_exact_figures() -> None:
    pytest.importorskip("torch")
    code, out = run(80, "profile", "specs/lenet5.yaml", "--device", "cpu", "--iters", "1", "--warmup", "0")
    assert code == 0, out
    assert "…" not in out
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 80
    assert "PyTorch's figures only" in out
    c1 = next(line for line in out.splitlines() if line.split()[:2] == ["1", "c1"])
    assert c1.split() == ["1", "c1", "6x28x28", "✓", "156", "✓", "235,200", "✓", "37,632", "✓"]


@pytest.mark.parametrize("columns", [20, 40, 60])
def test_very_narrow_terminals_still_print_a_table(columns: int) -> None:
    """Below what even short numbers need, the table is wider than the terminal, uncut; the totals stay exact."""
    code, out = run(columns, "summary", "specs/resnet50.yaml")
    assert code == 0
    assert "25,557,032" in out.replace("\n", "")  # the trainable params line, folded but whole


def _name_at(lines: list[str], k: int) -> str:
    """The name of the row on line ``k``: a deep one may wrap after an underscore, its lines under its start."""
    name = lines[k].split()[1]
    at = lines[k].index(f" {name}", len(lines[k].split()[0]) + lines[k].index(lines[k].split()[0])) + 1
    while name.endswith(("_", "-")):
        k += 1
        name += lines[k][at:].split()[0]
    return name


def _words(text: str) -> list[str]:
    return " ".join(text.split()).split(" ")


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("columns", [80, 200])
def test_summary_cuts_no_name_and_no_block_header(spec: Path, columns: int) -> None:
    """Names stay whole beside their index; a block's header (kind and arguments) is printed in full."""
    code, out = run(columns, "summary", str(spec.relative_to(ROOT)))
    assert code == 0 and "…" not in out
    report = json.loads(run(200, "summary", str(spec.relative_to(ROOT)), "-f", "json")[1])
    lines = out.splitlines()
    for line, layer in zip(_table_rows(out, len(report["layers"])), report["layers"], strict=True):
        assert _name_at(lines, lines.index(line)) == layer["name"].rsplit(".", 1)[-1], line
    flat = " ".join(_words(out))
    for block in report["blocks"]:
        # a header's text spans the columns of numbers (it has none): wrapped, its lines hold nothing else
        header = f"{block['path'][-1]} {block['kind']} {block['detail']}".strip()
        assert header in flat, header


def test_peers_in_a_narrow_terminal_breaks_no_word() -> None:
    code, out = run(80, "peers", "specs/resnet18.yaml")
    assert code == 0 and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    data = json.loads(run(200, "peers", "specs/resnet18.yaml", "-f", "json")[1])
    tokens = set(_words(out))
    for peer in data["peers"]:
        for word in _words(f"{peer['label']} {peer['rule']}"):
            # whole, or broken after a hyphen between words: "multiply-" / "accumulates"
            assert word in tokens or set(re.findall(r"[^-]+-?", word)) <= tokens, word


COMMANDS = [
    ("summary", "specs/googlenet.yaml"),
    ("summary", "specs/resnet50.yaml", "--depth", "1"),
    ("compare", "specs/resnet18.yaml", "specs/resnet50.yaml"),
    ("peers", "specs/resnet18.yaml"),
    ("fit", "specs/resnet50.yaml", "-m", "16GB", "--train"),
    ("specs",),
    ("validate", "tests/broken"),
    ("roofline", "specs/resnet50.yaml", "--device", "h100-sxm"),
    ("sizes", "specs/alexnet.yaml"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("columns", [80, 120, 200])
def test_no_line_ends_in_spaces(args: tuple[str, ...], columns: int) -> None:
    _, out = run(columns, *args)
    assert out and not [line for line in out.splitlines() if line != line.rstrip()]


def test_huge_values_keep_thousands_separators(tmp_path: Path) -> None:
    spec = tmp_path / "huge.yaml"
    spec.write_text("name: huge\ninput: [4, 8388608, 8388608]\nlayers: [global_avgpool2d]\n")  # 2^48 values
    code, out = run(120, "summary", str(spec))
    assert code == 0
    assert "1,125.90 TB (1,073,741,824.00 MiB)" in out  # the input's 2^50 bytes
    for mib in re.findall(r"\(([\d,.]+) MiB\)", out):
        assert re.fullmatch(r"\d{1,3}(,\d{3})*\.\d\d", mib), mib
