"""Docs that cannot go stale: the README, the manual in docs/ and --help cover what the code has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT
from typer.testing import CliRunner

from cnncalc.cli import app
from cnncalc.engine import __doc__ as engine_doc
from cnncalc.spec import ENTRY_KINDS

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]  # type: ignore[union-attr]
#: Every document whose relative links must resolve.
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]


def doc(name: str) -> str:
    return (DOCS / name).read_text()


def command_page(command: str) -> Path:
    # schema shares validate's page: the schema is how editors check a spec, beside how CI does
    return DOCS / ("validate.md" if command == "schema" else f"{command}.md")


def prose(markdown: str) -> str:
    """The text outside fenced code blocks, where links and headings are."""
    return re.sub(r"^```[^\n]*\n.*?^```[ \t]*$", "", markdown, flags=re.M | re.S)


def links(page: Path) -> list[str]:
    """The relative link targets of a page (web addresses left out)."""
    targets = re.findall(r"\]\(([^)\s]+)\)", prose(page.read_text()))
    return [t for t in targets if not re.match(r"[a-z][a-z+.-]*:", t)]


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6} +(.+?) *$", prose(markdown), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("kind", ENTRY_KINDS)
def test_every_layer_kind_is_documented(kind: str) -> None:
    assert f"| `{kind}` |" in doc("dsl.md")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_a_readme_line_and_a_page(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"Example: cnncalc {command}" in result.stdout
    assert f"`cnncalc {command}" in README
    page = command_page(command)
    assert page.is_file(), f"cnncalc {command} has no page: write {page.relative_to(ROOT)}"
    assert f"`cnncalc {command}" in page.read_text()


def test_readme_two_commands_and_ci_agree() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", README, flags=re.S)
    assert blocks[:2] == [
        "python3 -m pip install . && cnncalc summary specs/vgg16.yaml",
        "python3 -m pip install -e '.[dev,torch]' 'torch==2.14.1' 'torchvision==0.29.1' && python3 -m pytest",
    ]
    ci = (ROOT / ".ci" / "run").read_text()
    install, test = blocks[1].split(" && ")
    assert install in ci and test in ci


def test_readme_is_short() -> None:
    lines = len(README.splitlines())
    assert lines <= 300, f"README.md has {lines} lines; the pitch stays under 300, the rest goes to docs/"


def test_conventions_page_quotes_the_engine_conventions() -> None:
    page, docstring = " ".join(doc("conventions.md").split()), " ".join((engine_doc or "").split())
    for phrase in ("num_batches_tracked", "FlopCounterMode", "GFLOPS", "rule of thumb", "upper bound", "last reader"):
        assert phrase in page and phrase in docstring


def test_readme_table_is_the_current_output() -> None:
    golden = (ROOT / "tests" / "golden" / "vgg16.txt").read_text().rstrip("\n")
    assert golden in README, "README's VGG-16 table is stale: paste tests/golden/vgg16.txt"


def test_every_shipped_spec_names_its_source() -> None:
    for spec in sorted((ROOT / "specs").glob("*.yaml")):
        assert spec.read_text().startswith("# "), spec.name
        assert f"`{spec.name}`" in doc("dsl.md"), spec.name


@pytest.mark.parametrize(
    ("golden", "page"),
    [
        ("validate_broken_text.txt", "validate.md"),
        ("compare_vgg16_vgg19.md", "compare.md"),
        ("resnet50_depth1.txt", "dsl.md"),
        ("fit_resnet50.txt", "fit.md"),
        ("peers_resnet18.txt", "peers.md"),
        ("specs.txt", "specs.md"),
        ("roofline_resnet50.txt", "roofline.md"),
        ("sizes_alexnet.txt", "sizes.md"),
    ],
)
def test_docs_examples_are_current_output(golden: str, page: str) -> None:
    text = (ROOT / "tests" / "golden" / golden).read_text().rstrip("\n")
    assert text in doc(page), f"docs/{page}'s copy of tests/golden/{golden} is stale"


def test_every_docs_page_is_linked_from_the_readme_or_the_index() -> None:
    linked = {
        (page.parent / target.split("#")[0]).resolve()
        for page in (ROOT / "README.md", DOCS / "index.md")
        for target in links(page)
    }
    for page in sorted(DOCS.glob("*.md")):
        assert page.resolve() in linked, f"docs/{page.name} is linked from neither README.md nor docs/index.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file(page: Path) -> None:
    for target in links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.is_relative_to(ROOT) and file.exists(), f"{page.name}: {target} points at nothing"
        if anchor and file.suffix == ".md":
            assert anchor in anchors(file.read_text()), f"{page.name}: {target}: no such heading"


def test_ci_examples_run_cnncalc_validate() -> None:
    import yaml

    workflow = yaml.safe_load((ROOT / "examples" / "ci" / "validate-specs.yml").read_text())
    steps = [s.get("run", "") for s in workflow["jobs"]["validate"]["steps"]]
    assert "cnncalc validate specs/ --strict --format github" in steps
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "cnncalc-validate" and hook["entry"] == "cnncalc validate"


def test_the_tutorial_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of docs/tutorial.md, in a folder holding its spec and the shipped specs, exits 0."""
    import shlex

    tutorial = doc("tutorial.md")
    [spec] = re.findall(r"```yaml\n(.*?)```", tutorial, flags=re.S)
    (tmp_path / "my_cnn.yaml").write_text(spec)
    (tmp_path / "specs").symlink_to(ROOT / "specs")
    monkeypatch.chdir(tmp_path)
    commands = [line for block in re.findall(r"```sh\n(.*?)```", tutorial, flags=re.S) for line in block.splitlines()]
    assert len(commands) >= 8
    for command in commands:
        words = shlex.split(command)
        assert words[0] == "cnncalc"
        result = CliRunner().invoke(app, words[1:], env={"COLUMNS": "120", "NO_COLOR": "1"})
        assert result.exit_code == 0, (command, result.stdout[-500:], result.stderr[-500:])
