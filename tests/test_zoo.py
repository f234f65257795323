"""The shipped specs by name, from any folder; a spec from standard input; analyze() from what is at hand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SPECS
from test_cli import check_golden
from typer.testing import CliRunner

from cnncalc import SpecError, analyze, load_spec, zoo
from cnncalc.cli import app

ENV = {"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=ENV, input=input)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_the_zoo_is_the_repositorys_specs_folder() -> None:
    assert zoo.names() == sorted(p.stem for p in SPECS.glob("*.yaml"))
    assert SPECS.resolve() == zoo.ZOO  # specs/ points into the package, which ships them


def test_a_name_works_from_any_folder(tmp_path: Path) -> None:
    env = {**os.environ, **ENV}
    out = subprocess.run(
        [sys.executable, "-m", "cnncalc", "summary", "resnet50", "-f", "json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert json.loads(out)["totals"]["macs"] == analyze(load_spec(SPECS / "resnet50.yaml")).totals.macs


def test_a_file_wins_over_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("vgg16").write_text("name: mine\ninput: [3, 8, 8]\nlayers: [relu]\n")
    assert analyze("vgg16").name == "mine"
    assert analyze("vgg16.yaml").name == "VGG-16 (D)"


@pytest.mark.parametrize("command", [["summary"], ["fit", "-m", "1GB"], ["peers"], ["compare", "vgg16"]])
def test_every_command_takes_a_name(command: list[str]) -> None:
    code, out, err = run(command[0], "lenet5", *command[1:])
    assert code == 0, err
    assert out


def test_an_unknown_name_says_what_is_close() -> None:
    code, out, err = run("summary", "resnt50")
    assert code == 1 and out == ""
    assert err == (
        "error: resnt50: no such file, nor a shipped spec of that name (did you mean 'resnet50'?);"
        " `cnncalc specs` lists them\n"
    )


def test_standard_input() -> None:
    text = (SPECS / "lenet5.yaml").read_text()
    code, out, _ = run("summary", "-", "-f", "json", input=text)
    assert code == 0 and json.loads(out)["totals"]["params"] == 61_706
    code, out, _ = run("validate", "-", "lenet5", input="name: t\ninput: [3, 8, 8]\nlayers: [{kind: conv2d}]\n")
    assert code == 1
    assert out.startswith("<stdin>:3:10: conv2d needs 'out'")


def test_standard_input_is_bounded() -> None:
    code, _, err = run("summary", "-", input="# " + "x" * 1_100_000 + "\n")
    assert code == 1 and err == "error: <stdin>: specs over 1,000,000 bytes are refused\n"


def test_the_specs_command_lists_the_zoo() -> None:
    code, out, _ = run("specs", "-f", "json")
    assert code == 0
    listed = {e["name"]: e for e in json.loads(out)}
    assert sorted(listed) == zoo.names()
    for name, entry in listed.items():
        report = analyze(zoo.shipped(name))  # type: ignore[arg-type]
        assert (entry["params"], entry["macs"], entry["input_shape"]) == (
            report.totals.params,
            report.totals.macs,
            list(report.input_shape),
        )
    code, out, _ = run("specs")
    assert code == 0 and all(name in out for name in listed)


def test_analyze_takes_a_path_a_name_or_yaml_text() -> None:
    by_path = analyze(SPECS / "lenet5.yaml")
    assert analyze("lenet5").totals == by_path.totals == analyze(str(SPECS / "lenet5.yaml")).totals
    assert analyze((SPECS / "lenet5.yaml").read_text()).totals == by_path.totals
    with pytest.raises(SpecError, match="nor a shipped spec"):
        analyze("no_such_network")


def test_specs_golden(update_golden: bool) -> None:
    code, out, _ = run("specs")
    assert code == 0
    check_golden("specs.txt", out, update_golden)


def test_a_report_shows_itself_in_a_notebook() -> None:
    report = analyze("resnet18", batch=2)
    assert report.to_dict() == json.loads(run("summary", "resnet18", "-b", "2", "-f", "json")[1])
    assert report._repr_markdown_() == run("summary", "resnet18", "-b", "2", "-f", "markdown")[1]
    html = report._repr_html_()
    assert html.count('<tr data-index="') == len(report.rows)  # every row, between the block headers
    assert f"<td>{report.totals.macs:,}</td>" in html and "conv1</td>" in html
    assert "<script" not in html
    hostile = analyze("name: <script>x</script>\ninput: [3, 8, 8]\nlayers: [{kind: relu, name: a}]\n")
    assert "<script>" not in hostile._repr_html_() and "&lt;script&gt;" in hostile._repr_html_()
