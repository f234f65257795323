"""`cnncalc report`: one self-contained page whose figures are the JSON's; rendered by a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnncalc import analyze
from cnncalc.cli import app
from cnncalc.render import to_dict

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# headless, and quiet: this machine's network is closed, so nothing may try to reach out
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
    "--disable-background-networking", "--disable-component-update", "--enable-logging=stderr", "--v=0",
]  # fmt: skip


def write(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "page.html"
    result = CliRunner().invoke(app, ["report", *args, "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def cells(html: str) -> dict[int, list[str]]:
    """The layer table's cells, by row index, as text."""
    rows = re.findall(r'<tr data-index="(\d+)"[^>]*>(.*?)</tr>', html, flags=re.S)
    strip = lambda c: unescape(re.sub(r"<[^>]+>", "", c)).replace("\xa0", "").strip()  # noqa: E731
    return {int(i): [strip(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", body, flags=re.S)] for i, body in rows}


def test_the_page_is_self_contained_and_its_figures_are_the_json(tmp_path: Path) -> None:
    html = write(tmp_path, "resnet18", "--batch", "2").read_text()
    # nothing to fetch: no link, no source, no import; the only addresses are XML namespace names
    assert "<link" not in html and "src=" not in html and "@import" not in html
    assert not re.search(r'href="(?!#)', html) and not re.search(r"url\((?!#)", html)  # only references within
    report = analyze("resnet18", batch=2)
    data = json.loads(re.search(r'id="cnncalc-data">(.*?)</script>', html, flags=re.S).group(1))  # type: ignore[union-attr]
    assert data == json.loads(json.dumps(to_dict(report)))
    table = cells(html)
    assert sorted(table) == [layer["index"] for layer in data["layers"]]
    for layer in data["layers"]:
        row = table[layer["index"]]
        assert row[1] == layer["name"].rsplit(".", 1)[-1]
        assert [row[4], row[6], row[7]] == [f"{layer[k]:,}" for k in ("activations", "params", "macs")]
    assert f"{data['totals']['params']:,}" in html and f"{data['totals']['macs']:,}" in html
    assert html.count("<svg") == 3  # memory, MACs, roofline


def test_user_text_is_escaped(tmp_path: Path) -> None:
    spec = tmp_path / "x.yaml"
    spec.write_text("name: '<img src=x onerror=alert(1)></script>'\ninput: [3, 8, 8]\nlayers: [relu]\n")
    html = write(tmp_path, str(spec)).read_text()
    assert "<img src=x" not in html and "</script>'" not in html


@pytest.mark.parametrize(
    ("args", "text"), [(["-o", "page.txt"], "ending in .html"), (["--device", "x"], "unknown device")]
)
def test_bad_options_write_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], text: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", "vgg16", *(args if "-o" in args else [*args, "-o", "page.html"])])
    assert result.exit_code == 2 and text in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian's chromium package; .ci/run installs it)")
def test_a_real_browser_renders_it_without_errors_and_folds_blocks(tmp_path: Path) -> None:
    page = write(tmp_path, "resnet18", "--batch", "2")
    # a copy that clicks the first block's header once loaded, to check the folding script
    probe = tmp_path / "probe.html"
    probe.write_text(
        page.read_text().replace(
            "</body>",
            "<script>document.querySelector('tr.block').click();"
            "document.title = 'hidden:' + document.querySelectorAll('tr.hidden').length;</script></body>",
        )
    )
    for path in (page, probe):
        result = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        assert ":CONSOLE" not in result.stderr, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
        dom = result.stdout
        if path == page:
            rendered = cells(dom)
            assert len(rendered) == len(analyze("resnet18").rows)
            assert "<svg" in dom
        else:
            folded = int(re.search(r"<title>hidden:(\d+)</title>", dom).group(1))  # type: ignore[union-attr]
            first = re.search(r'<tr class="block[^"]*" data-path="([^"]+)"', page.read_text()).group(1)  # type: ignore[union-attr]
            inside = len(re.findall(rf'data-in="[^"]*\b{re.escape(first)}\b[^"]*"', page.read_text()))
            assert folded == inside > 0


#: Specs whose charts are drawn in full, one of each shape of network (plain, residual blocks, concatenations and
#: two outputs, upsampling, channels-last rows, many rows); the others' figures are built but not drawn:
#: matplotlib's drawing was a quarter of the torch-free tier.
DRAWN = {"vgg16", "resnet50", "inception_v3", "unet", "convnext_tiny", "densenet121", "mnist_cnn"}


def test_the_drawn_specs_are_shipped() -> None:
    assert DRAWN.issubset(p.stem for p in (Path(__file__).parent.parent / "specs").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(__file__).parent.parent / "specs").glob("*.yaml")))
def test_roofline_plot_and_report_work_on_every_shipped_spec(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if name not in DRAWN:
        from cnncalc.commands import plot

        def built_not_drawn(fig: object, fmt: str) -> bytes:
            plot._pyplot().close(fig)
            return b'<svg xmlns="http://www.w3.org/2000/svg"></svg>'

        monkeypatch.setattr(plot, "render", built_not_drawn)
    runner = CliRunner()
    roof = runner.invoke(app, ["roofline", name, "--device", "a100-80gb", "-f", "json"])
    assert roof.exit_code == 0
    assert json.loads(roof.stdout)["totals"]["flops"] == analyze(name).totals.flops
    chart = tmp_path / "c.svg"
    assert runner.invoke(app, ["plot", name, "--what", "roofline", "--device", "l4", "-o", str(chart)]).exit_code == 0
    html = write(tmp_path, name).read_text()
    assert len(cells(html)) == len(analyze(name).rows)
