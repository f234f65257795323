"""The command line: golden outputs, their invariants, exit codes, and no torch."""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import GOLDEN, ROOT, SPECS
from typer.testing import CliRunner

from cnncalc import analyze, load_spec
from cnncalc.cli import app

SPEC_FILES = sorted(SPECS.glob("*.yaml"))
ENV = {"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=ENV)
    assert "Traceback" not in result.stdout + result.stderr
    return result.exit_code, result.stdout, result.stderr


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def check_golden(name: str, text: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.write_text(_normal(text))
    assert path.exists(), f"{path} is missing: run pytest --update-golden"
    assert _normal(text) == path.read_text(), (
        f"{name} differs from its golden file (pytest --update-golden rewrites it)"
    )


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_summary_table_golden(spec: Path, update_golden: bool) -> None:
    code, out, err = run("summary", str(spec.relative_to(ROOT)))
    assert code == 0, err
    check_golden(f"{spec.stem}.txt", out, update_golden)


@pytest.mark.parametrize(("fmt", "ext"), [("json", "json"), ("csv", "csv"), ("markdown", "md")])
def test_summary_formats_golden(fmt: str, ext: str, update_golden: bool) -> None:
    code, out, _ = run("summary", "specs/vgg16.yaml", "--format", fmt)
    assert code == 0
    check_golden(f"vgg16.{ext}", out, update_golden)


def _table_numbers(text: str) -> tuple[list[list[int]], list[int]]:
    """(activations, params, MACs) of each row of a rendered table, and of its footer."""

    def num(token: str) -> int:
        return int(token.replace(",", ""))

    rows, footer = [], []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) >= 6 and tokens[0].isdigit() and "/" in tokens[-1]:
            acts = tokens[-5] if tokens[-4] == "0" else tokens[-6]
            rows.append([num(acts), num(tokens[-3]), num(tokens[-2])])
        elif tokens[:1] == ["total"]:
            footer = [num(tokens[1]), num(tokens[-2]), num(tokens[-1])]
    return rows, footer


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_table_rows_add_up_to_printed_totals(spec: Path) -> None:
    _, out, _ = run("summary", str(spec))
    rows, footer = _table_numbers(out)
    data = json.loads(run("summary", str(spec), "-f", "json")[1])
    assert len(rows) == len(data["layers"])
    assert [sum(col) for col in zip(*rows, strict=True)] == footer
    t = data["totals"]
    assert footer == [t["activations"], t["params"], t["macs"]]


def test_json_contract() -> None:
    code, out, _ = run("summary", "specs/mnist_cnn.yaml", "-f", "json", "--batch", "8", "--dtype", "float16")
    assert code == 0
    data = json.loads(out)
    assert {"name", "input", "layers", "totals", "warnings"} <= set(data)
    assert data["input"] == {"shape": [1, 28, 28], "batch": 8, "dtype": "float16"}
    row_keys = {
        "index", "name", "kind", "input_shape", "output_shape", "params", "params_trainable", "weights", "biases",
        "macs", "flops", "activations", "activation_bytes", "receptive_field",
    }  # fmt: skip
    for row in data["layers"]:
        assert row_keys <= set(row)
    assert data["layers"][0]["kind"] == "input" and data["layers"][0]["input_shape"] is None
    assert data["layers"][-1]["output_shape"] == [10]
    totals = data["totals"]
    for key in ("params", "params_trainable", "macs", "flops", "activations", "activation_bytes"):
        assert totals[key] == sum(row[key] for row in data["layers"]), key
    assert totals["param_bytes"] == 2 * totals["params"]
    assert totals["activation_bytes"] == 2 * totals["activations"]
    [warning] = data["warnings"]
    assert warning["file"] == "specs/mnist_cnn.yaml" and warning["line"] == 22 and "2.5" in warning["message"]


def test_csv_has_a_row_per_layer_and_a_total() -> None:
    rows = list(csv.DictReader(io.StringIO(run("summary", "specs/alexnet.yaml", "-f", "csv")[1])))
    *layers, total = rows
    assert total["name"] == "total" and int(total["params"]) == 62378344
    assert sum(int(r["params"]) for r in layers) == int(total["params"])
    assert layers[1]["output_shape"] == "96x55x55"


def test_batch_dtype_input_options() -> None:
    data = json.loads(
        run("summary", "specs/alexnet.yaml", "-f", "json", "-b", "4", "--dtype", "int8", "-i", "3x259x259")[1]
    )
    assert data["input"] == {"shape": [3, 259, 259], "batch": 4, "dtype": "int8"}
    assert data["layers"][1]["output_shape"] == [96, 63, 63]
    assert data["totals"]["activation_bytes"] == data["totals"]["activations"]


def test_fit_warning_is_visible_and_strict_makes_it_an_error() -> None:
    # AlexNet on 224: a real pixel is never read
    code, out, _ = run("summary", "specs/alexnet.yaml", "--input", "3x224x224")
    assert code == 0 and "specs/alexnet.yaml:14:49: warning: layer 1 conv2d 'conv1'" in out
    code, out, err = run("summary", "specs/alexnet.yaml", "--input", "3x224x224", "--strict")
    assert code == 1 and out == ""
    assert err.startswith(
        "error: specs/alexnet.yaml:14:49: layer 1 conv2d 'conv1': height and width: (224 - 11 + 0) / 4 = 53.25"
    )
    assert err.count("\n") == 4  # conv1 and the three pools after it


def test_an_accepted_floor_warns_but_strict_passes() -> None:
    code, out, _ = run("summary", "specs/mnist_cnn.yaml", "--strict")
    assert code == 0
    assert "specs/mnist_cnn.yaml:22:5: warning: layer 9 maxpool2d 'pool3': height and width: (7 - 2 + 0) / 2" in out
    assert "(accepted: accept_floor)" in out


@pytest.mark.parametrize("spec", SPEC_FILES, ids=lambda p: p.stem)
def test_torchvision_geometry_does_not_warn(spec: Path) -> None:
    """A 7x7/2 conv with padding 3 on 224 leaves only padding unread; a 1x1/2 conv skips odd rows by design."""
    report = analyze(load_spec(spec))
    assert all("accept_floor" in w.message for w in report.warnings), report.warnings


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["summary", "specs/missing.yaml"], 1, "error: specs/missing.yaml: no such file"),
        (["summary", "specs"], 1, "error: specs: is a folder, not a spec file"),
        (["summary", "specs/vgg16.yaml", "--dtype", "float64"], 2, "float64"),
        (["summary", "specs/vgg16.yaml", "--batch", "0"], 2, "--batch"),
        (["summary", "specs/vgg16.yaml", "--input", "3x2"], 2, "expected C x H x W"),
        # digits only in ASCII: '²' passes str.isdigit() (int() refuses it), '٣' is read by int() as 3
        (["summary", "specs/vgg16.yaml", "--input", "3x²x8"], 2, "expected C x H x W"),
        (["summary", "specs/vgg16.yaml", "--input", "3x٣x8"], 2, "expected C x H x W"),
        (["summary", "specs/vgg16.yaml", "--input", "3x" + "9" * 5000 + "x8"], 2, "(5,004 characters)"),
        (["summary", "specs/vgg16.yaml", "--input", "3x2147483648x8"], 2, "each from 1 to 2147483647"),
        (["summary", "specs/vgg16.yaml", "--input", "4096x4096x4096x"], 2, "expected C x H x W"),
        (["summary", "specs/vgg16.yaml", "--input", "65536x65536x65537"], 2, "more than 2^48 values"),
        (["fit", "specs/vgg16.yaml", "--memory", "9" * 400 + "GB"], 2, "expected a size"),
        (["profile", "specs/vgg16.yaml", "--iters", "0"], 2, "--iters"),
        (["profile", "specs/vgg16.yaml", "--iters", "100001"], 2, "--iters"),
        (["profile", "specs/vgg16.yaml", "--warmup", "10001"], 2, "--warmup"),
        (["profile", "specs/vgg16.yaml", "--peak-tflops", "inf"], 2, "finite"),
        (["profile", "specs/vgg16.yaml", "--peak-tflops", "nan"], 2, "--peak-tflops"),
        (["summary", "specs/vgg16.yaml", "--format", "xml"], 2, "xml"),
        (["summary"], 2, "SPEC"),
        (["nonsense"], 2, "nonsense"),
    ],
)
def test_exit_codes(args: list[str], code: int, text: str) -> None:
    got, out, err = run(*args)
    assert got == code
    assert text in out + err


@pytest.mark.parametrize("columns", ["0", "1", "-5", "wide"])
def test_a_terminal_width_below_the_minimum_still_prints(columns: str) -> None:
    """COLUMNS=0 printed nothing and exited 0; widths below the minimum count as the minimum."""
    result = CliRunner().invoke(app, ["summary", "specs/lenet5.yaml"], env={**ENV, "COLUMNS": columns})
    assert result.exit_code == 0
    assert "61,706" in result.stdout.replace("\n", "")  # the params total, whole


def test_bad_spec_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: 4, kernal: 3, padding: 1}\n")
    before = sorted(tmp_path.iterdir())
    code, out, err = run("summary", str(bad))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"error: {bad}:4:5: conv2d needs 'kernel'",
        f"error: {bad}:4:28: unknown key 'kernal' in conv2d (did you mean 'kernel'?); allowed: name, repeat, when, from, kind, out,"
        " kernel, stride, padding, dilation, groups, bias, in, activation, accept_floor",
    ]
    assert sorted(tmp_path.iterdir()) == before


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ENV}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=False)


def test_summary_never_imports_torch() -> None:
    # torch is made unimportable: summary (and fit) must still work, and must not even try
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from cnncalc.cli import app\n"
        "for args in (['fit', 'specs/vgg16.yaml', '-m', '16GB', '--train'], ['summary', 'specs/vgg16.yaml', '-f', 'json']):\n"
        "    try:\n        app(args)\n"
        "    except SystemExit as e:\n        assert e.code in (0, None), e.code\n"
        "assert not [m for m in sys.modules if m.startswith('torch.')], 'torch was imported'\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout[result.stdout.index("{") :])["totals"]["params"] == 138357544


@pytest.mark.parametrize(("enabled", "host_froze"), [(True, False), (False, False), (True, True)])
def test_importing_leaves_the_hosts_collector_as_it_was(enabled: bool, host_froze: bool) -> None:
    # the collector is paused while cnncalc imports (cnncalc._collector_paused), then given back as it was
    code = (
        "import gc\n"
        f"{'gc.enable()' if enabled else 'gc.disable()'}; gc.set_threshold(500, 7, 9)\n"
        f"{'gc.freeze()' if host_froze else ''}\n"
        "before = gc.get_freeze_count()\n"
        "import cnncalc, cnncalc.cli\n"
        f"assert gc.isenabled() is {enabled}, gc.isenabled()\n"
        "assert gc.get_threshold() == (500, 7, 9), gc.get_threshold()\n"
        # (frozen objects that die leave the count: it may only fall, never to 0 from the host's)
        "assert (gc.get_freeze_count() > 0) is (before > 0), 'the host objects unfrozen'\n"
        "assert gc.get_freeze_count() <= before, 'objects frozen'\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr


_LOADER_AFTER_SUMMARY = (
    "import sys\n"
    "from cnncalc.cli import PLUGIN_LOADER, run\n"
    "sys.argv = ['cnncalc', 'summary', 'specs/lenet5.yaml', '-f', 'json']\n"
    "try:\n    run()\n"
    "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
    "loader = sys.modules[PLUGIN_LOADER]\n"
    "print('real' if getattr(loader, '__file__', None) else 'stand-in', file=sys.stderr)\n"
)


def test_with_every_pydantic_plugin_off_the_loader_is_not_imported() -> None:
    result = _python(_LOADER_AFTER_SUMMARY)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["totals"]["params"] == 61706
    assert result.stderr.strip() == "stand-in"


def test_a_users_plugin_setting_gets_pydantics_own_loader() -> None:
    env = {**os.environ, **ENV, "PYDANTIC_DISABLE_PLUGINS": "some_plugin"}
    result = subprocess.run(
        [sys.executable, "-c", _LOADER_AFTER_SUMMARY], capture_output=True, text=True, cwd=ROOT, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "real"


def test_the_loaders_stand_in_gives_any_other_name_from_the_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnncalc import cli

    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "__all__")
    monkeypatch.delitem(sys.modules, cli.PLUGIN_LOADER, raising=False)
    cli._skip_plugin_loader()
    stand_in = sys.modules[cli.PLUGIN_LOADER]
    assert not hasattr(stand_in, "__file__")
    from pydantic.plugin._loader import get_plugins  # what pydantic asks of it

    assert list(get_plugins()) == []
    from pydantic.plugin._loader import PYDANTIC_ENTRY_POINT_GROUP  # anything else: the real module's

    assert PYDANTIC_ENTRY_POINT_GROUP == "pydantic"
    assert getattr(sys.modules[cli.PLUGIN_LOADER], "__file__", None)


def test_python_dash_m_and_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cnncalc", "--version"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0 and result.stdout.startswith("cnncalc ")


@pytest.mark.parametrize("args", [["--help"], ["summary", "-h"]])
def test_a_piped_help_page_has_no_trailing_spaces(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cnncalc", *args], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0 and "Usage: cnncalc" in result.stdout
    assert [line for line in result.stdout.splitlines() if line != line.rstrip()] == []


@pytest.mark.parametrize("command", ["summary", "validate", "compare", "fit", "peers", "profile", "specs", "schema"])
def test_help_has_no_python_type_placeholders(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for placeholder in ("<bool>", "<str>", "<list[", "<int range>", "<float range>", "Value error,"):
        assert placeholder not in result.stdout, (command, placeholder)
    # -d is --depth wherever it exists, and nothing else
    assert ("-d " not in result.stdout) or ("--depth" in result.stdout and result.stdout.count("-d ") == 1)


def _commands() -> dict[str, Any]:
    import typer.main

    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", sorted(_commands()))
def test_an_80_column_help_page_never_breaks_a_metavar(command: str) -> None:
    # rich wraps the metavar column where it is too narrow: '[float32|float16|bfloat16|i' / 'nt8]' before
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"})
    assert result.exit_code == 0
    for param in _commands()[command].params:
        if getattr(param, "metavar", None):
            assert param.metavar in result.stdout, (command, param.metavar)
    assert "(cnncalc)" not in result.stdout  # rich markup once ate '[plot]' from 'cnncalc[plot]'


@pytest.mark.parametrize("command", sorted(_commands()))
def test_a_help_paragraph_breaks_at_the_terminals_width_not_at_the_docstrings(command: str) -> None:
    # typer 0.29 kept a docstring paragraph's line breaks: 'the range keeping every' / 'parameter count' at 80
    callback = _commands()[command].callback
    doc = inspect.cleandoc(getattr(callback, "__wrapped__", callback).__doc__ or "")
    assert doc.startswith(_commands()[command].help.split()[0])  # the command's own docstring
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"})
    lines = [" ".join(line.strip(" │").split()) for line in result.stdout.splitlines()]
    for paragraph in doc.split("\n\n"):
        assert " ".join(paragraph.replace("\\[", "[").split()) in lines, (command, paragraph)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["summary", "lenet5", "-f", "text"], "expected one of table, json, csv, markdown, got 'text'"),
        (["validate", "specs", "-f", "csv"], "expected one of text, json, github, got 'csv'"),
        (["plot", "lenet5", "-w", "flops", "-o", "x.png"], "expected one of memory, params, macs, roofline, got"),
        (["fit", "lenet5", "-m", "1GB", "--optimizer", "lion"], "expected one of sgd, momentum, adam, got 'lion'"),
        (["profile", "lenet5", "--device", "tpu"], "expected one of auto, cpu, cuda, got 'tpu'"),
        (["plot", "lenet5"], "Missing option '--output' / '-o'"),
        (["report", "lenet5"], "Missing option '--output' / '-o'"),
    ],
)
def test_a_wrong_choice_names_the_commands_own(args: list[str], expected: str) -> None:
    code, out, err = run(*args)
    assert code == 2 and out == ""
    flat = " ".join(line.strip("│ ") for line in err.splitlines())
    assert expected in flat and "Value error" not in flat, err


@pytest.mark.parametrize(("alias", "name"), [("fp16", "float16"), ("bf16", "bfloat16"), ("FP32", "float32")])
def test_dtype_aliases(alias: str, name: str) -> None:
    code, out, _ = run("summary", "specs/lenet5.yaml", "--dtype", alias, "-f", "json")
    assert code == 0 and json.loads(out)["input"]["dtype"] == name


def test_profile_offers_only_the_dtypes_it_runs() -> None:
    result = CliRunner().invoke(app, ["profile", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert "float32, float16 or bfloat16" in result.stdout and "int8" not in result.stdout
    code, _, err = run("profile", "specs/lenet5.yaml", "--dtype", "int8")
    assert code == 2 and "expected one of float32, float16, bfloat16" in err


def test_compare_csv_is_the_stages_and_the_totals() -> None:
    code, out, _ = run("compare", "specs/vgg16.yaml", "specs/vgg19.yaml", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    a, b = analyze(load_spec(SPECS / "vgg16.yaml")), analyze(load_spec(SPECS / "vgg19.yaml"))
    assert rows[-1]["stage"] == "total"
    for attr in ("params", "macs", "activations"):
        assert sum(int(r[f"{attr}_a"]) for r in rows[:-1]) == int(rows[-1][f"{attr}_a"]) == getattr(a.totals, attr)
        assert int(rows[-1][f"{attr}_b"]) == getattr(b.totals, attr)
        assert all(int(r[f"{attr}_delta"]) == int(r[f"{attr}_b"]) - int(r[f"{attr}_a"]) for r in rows)


def test_warnings_have_one_form_everywhere_and_quiet_hides_them() -> None:
    args = ("specs/alexnet.yaml", "--input", "3x224x224")
    first = "specs/alexnet.yaml:14:49: warning: layer 1 conv2d 'conv1': height and width: (224 - 11 + 0) / 4"
    wide = {**ENV, "COLUMNS": "400"}
    table = CliRunner().invoke(app, ["summary", *args], env=wide).stdout
    markdown = run("summary", *args, "-f", "markdown")[1]
    csv_err = run("summary", *args, "-f", "csv")[2]
    compare_err = run("compare", *args[:1], "specs/alexnet.yaml", *args[1:])[2]
    peers_err = run("peers", *args)[2]
    fit_err = run("fit", *args, "-m", "1GB")[2]
    validate_out = run("validate", "specs/mnist_cnn.yaml")[1]
    for text in (table, markdown, csv_err, compare_err, peers_err, fit_err):
        assert first in text
    assert validate_out.startswith("specs/mnist_cnn.yaml:22:5: warning: layer 9 maxpool2d 'pool3'")
    # in layer order: conv1, then the pools after it
    lines = [line for line in csv_err.splitlines() if ": warning: " in line]
    assert [int(line.split(":")[1]) for line in lines] == sorted(int(line.split(":")[1]) for line in lines)
    for command in (
        ["summary", *args],
        ["summary", *args, "-f", "markdown"],
        ["peers", *args],
        ["fit", *args, "-m", "1GB"],
    ):
        code, out, err = run(*command, "--quiet")
        assert code == 0 and "warning" not in out + err
    assert run("validate", "specs/mnist_cnn.yaml", "-q")[1] == ""


def test_the_version_is_in_one_place() -> None:
    from importlib.metadata import version

    import cnncalc

    assert version("cnncalc") == cnncalc.__version__
    assert run("--version")[1] == f"cnncalc {cnncalc.__version__}\n"
    assert "version =" not in (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.dynamic]")[0]


def test_markdown_cells_escape_a_pipe(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(
        "name: t\ninput: [3, 8, 8]\nblocks:\n  b:\n    args: {note: x}\n    layers: [relu]\n"
        "layers: [{use: b, note: 'a|b'}]\n"
    )
    code, out, _ = run("summary", str(spec), "-f", "markdown", "--depth", "1")
    assert code == 0
    row = next(line for line in out.splitlines() if "note=" in line)
    assert "a\\|b" in row and row.count(" | ") == 8  # nine cells, the pipe inside one of them escaped


@pytest.mark.parametrize(
    ("argv", "commands"),
    [
        (["summary", "vgg16"], ["summary"]),
        (["specs"], ["specs"]),
        (["--version"], None),
        ([], None),
        (["sumary", "vgg16"], None),  # the whole app, to suggest 'summary'
        (["-q", "summary"], None),
    ],
)
def test_a_run_builds_only_the_command_it_invokes(argv: list[str], commands: list[str] | None) -> None:
    from cnncalc.cli import _command_name, app, only_invoked

    chosen = only_invoked(argv)
    if commands is None:
        assert chosen is app
    else:
        assert [_command_name(c) for c in chosen.registered_commands] == commands
        assert chosen.registered_callback is app.registered_callback  # --version stays
        assert len(app.registered_commands) == 13
