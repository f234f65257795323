"""`cnncalc plot`: each chart is drawn to the file asked for, with its units; bad options write nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from test_cli import run

pytest.importorskip("matplotlib")


@pytest.mark.parametrize(
    ("args", "texts"),
    [
        (["vgg16"], ["activation memory (MB)", "conv1_1", "total 60.95 MB"]),
        (["resnet50", "--what", "macs", "--depth", "1"], ["multiply-accumulates (GMAC)", "layer3"]),
        (["lenet5", "--what", "params"], ["parameters (thousands)", "c5"]),
        (["vgg16", "vgg19", "--what", "params"], ["parameters (millions)", "stage (output resolution)", "14x14"]),
        (
            ["resnet50", "--what", "roofline", "--device", "h100-sxm", "--dtype", "bf16"],
            ["attainable TFLOP/s", "arithmetic intensity (FLOP per byte moved)", "ridge 295 FLOP/byte"],
        ),
    ],
)
def test_charts_have_their_labels(tmp_path: Path, args: list[str], texts: list[str]) -> None:
    out = tmp_path / "chart.svg"
    code, _, err = run("plot", *args, "-o", str(out))
    assert code == 0, err
    svg = out.read_text()
    for text in texts:
        # matplotlib writes text as glyph paths with the string in a comment or an aria label
        assert text in svg, text


@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_png_and_pdf(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"chart{suffix}"
    assert run("plot", "resnet18", "-o", str(out))[0] == 0
    magic = out.read_bytes()[:8]
    assert magic.startswith(b"\x89PNG" if suffix == ".png" else b"%PDF")


def test_a_long_network_is_drawn_by_blocks(tmp_path: Path) -> None:
    code, _, err = run("plot", "resnet152", "-o", str(tmp_path / "r.svg"))
    assert code == 0 and "drawn by blocks (--depth 1)" in err
    assert "layer3" in (tmp_path / "r.svg").read_text()


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["-o", "chart.txt"], "ending in .png, .svg or .pdf"),
        (["-o", "nosuch/chart.png"], "no folder"),
        (["--what", "roofline", "--device", "nosuch", "-o", "chart.png"], "unknown device 'nosuch'"),
    ],
)
def test_bad_options_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], text: str) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run("plot", "vgg16", *args)
    assert code == 2 and text in " ".join(err.replace("│", " ").split())
    assert list(tmp_path.iterdir()) == []


def test_without_matplotlib_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from cnncalc.cli import app\n"
        f"app(['plot', 'vgg16', '-o', {str(tmp_path / 'x.png')!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "pip install 'cnncalc[plot]'" in result.stderr
    assert not (tmp_path / "x.png").exists()
