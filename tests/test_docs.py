"""Docs that cannot go stale: the README and --help cover what the code has."""

from __future__ import annotations

import re

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from cnncalc.cli import app
from cnncalc.engine import __doc__ as engine_doc
from cnncalc.spec import ENTRY_KINDS

README = (ROOT / "README.md").read_text()
COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ENTRY_KINDS)
def test_every_layer_kind_is_documented(kind: str) -> None:
    assert f"| `{kind}` |" in README


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"Example: cnncalc {command}" in result.stdout
    assert f"`cnncalc {command}" in README


def test_readme_two_commands_and_ci_agree() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    assert blocks[:2] == [
        "python3 -m pip install . && cnncalc summary specs/vgg16.yaml",
        "python3 -m pip install -e '.[dev,torch]' 'torch==2.13.0' && python3 -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    install, test = blocks[1].split(" && ")
    assert install in ci and test in ci


def test_readme_quotes_the_engine_conventions() -> None:
    readme, doc = " ".join(README.split()), " ".join((engine_doc or "").split())
    for phrase in ("num_batches_tracked", "FlopCounterMode", "GFLOPS", "rule of thumb", "upper bound", "last reader"):
        assert phrase in readme and phrase in doc


def test_readme_table_is_the_current_output() -> None:
    golden = (ROOT / "tests" / "golden" / "vgg16.txt").read_text().rstrip("\n")
    assert golden in README, "README's VGG-16 table is stale: paste tests/golden/vgg16.txt"


def test_every_shipped_spec_names_its_source() -> None:
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        assert spec.read_text().startswith("# "), spec.name
        assert f"`{spec.name}`" in README, spec.name


@pytest.mark.parametrize(
    "golden",
    [
        "validate_broken_text.txt",
        "compare_vgg16_vgg19.md",
        "resnet50_depth1.txt",
        "fit_resnet50.txt",
        "peers_resnet18.txt",
    ],
)
def test_readme_examples_are_current_output(golden: str) -> None:
    text = (ROOT / "tests" / "golden" / golden).read_text().rstrip("\n")
    assert text in README, f"README's copy of tests/golden/{golden} is stale"


def test_ci_examples_run_cnncalc_validate() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "validate-specs.yml").read_text())
    steps = [s.get("run", "") for s in workflow["jobs"]["validate"]["steps"]]
    assert "cnncalc validate specs/ --strict --format github" in steps
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "cnncalc-validate" and hook["entry"] == "cnncalc validate"
