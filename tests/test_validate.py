"""`cnncalc validate`, `schema` and `compare`: exact lines for broken specs, hostile input, fuzzing."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import random
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import ROOT, SPECS
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from test_cli import check_golden, run

from cnncalc import SpecError, analyze, load_spec, parse_spec
from cnncalc.commands.summary import print_table
from cnncalc.commands.validate import validation_lines
from cnncalc.errors import MAX_PROBLEMS
from cnncalc.safe_text import MARKER_ROOM, MAX_MESSAGE
from cnncalc.spec import json_schema
from cnncalc.validate import validate_file, validate_paths

#: What echoed text must never hold: C0 and C1 controls (a newline only ends a line).
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")

BROKEN = "tests/broken"


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_broken_folder_gives_exactly_the_expected_lines(fmt: str, update_golden: bool) -> None:
    code, out, err = run("validate", BROKEN, "--format", fmt)
    assert code == 1
    check_golden(f"validate_broken_{fmt}.txt", out, update_golden)
    assert err == "11 file(s) checked: 1 valid, 10 invalid (19 error(s), 1 warning(s))\n"


def test_every_broken_file_is_reported_and_every_line_is_located() -> None:
    _, out, _ = run("validate", BROKEN)
    named = {line.split(":")[0] for line in out.splitlines()}
    assert named == {str(p.relative_to(ROOT)) for p in (ROOT / BROKEN).glob("*.yaml")}
    for line in out.splitlines():
        _path, lineno, col, message = line.split(":", 3)
        assert lineno.isdigit() and col.isdigit() and message.startswith(" ")


@pytest.mark.parametrize("strict", [[], ["--strict"]], ids=["plain", "strict"])
def test_shipped_specs_are_valid(strict: list[str]) -> None:
    code, out, err = run("validate", "specs/", *strict)
    assert code == 0
    assert (
        out.splitlines()
        == [
            "specs/mnist_cnn.yaml:22:5: warning: layer 9 maxpool2d 'pool3': height and width: (7 - 2 + 0) / 2 = 2.5 is"
            " not a whole number: the window does not fit. PyTorch rounds down to 2, so the output is 3 and the last 1"
            " row(s) of the padded input are never read. Fits: stride 1; input 6 or 8; ceil_mode: true"
            " (accepted: accept_floor)",
            "specs/squeezenet1_0.yaml:22:48: warning: layer 1 conv2d 'conv1': height and width: (224 - 7 + 0) / 2 = 108.5"
            " is not a whole number: the filter does not fit. PyTorch rounds down to 108, so the output is 109 and the"
            " last 1 row(s) of the padded input are never read. Fits: stride 1 or 7; input 223 or 225"
            " (accepted: accept_floor)",
        ]
    )  # the only warnings: the lecture's model floors its last pool, SqueezeNet its first conv, and each says it means to
    n = len(list(SPECS.glob("*.yaml")))
    assert err.startswith(f"{n} file(s) checked: {n} valid, 0 invalid")


def test_strict_turns_warnings_into_errors() -> None:
    code, out, _ = run("validate", "tests/broken/misfit.yaml", "--strict")
    assert code == 1 and out.startswith("tests/broken/misfit.yaml:4:49: layer 1 conv2d 'conv1': height and width")
    assert run("validate", "tests/broken/misfit.yaml")[0] == 0


def test_json_format() -> None:
    code, out, _ = run("validate", "tests/broken/channels.yaml", "specs/lenet5.yaml", "-f", "json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False and data["errors"] == 4 and data["warnings"] == 0
    bad, good = data["files"]
    assert (bad["path"], bad["ok"], good["ok"]) == ("tests/broken/channels.yaml", False, True)
    assert bad["errors"][0] == {
        "file": "tests/broken/channels.yaml",
        "line": 5,
        "column": 60,
        "message": "layer 2 conv2d 'conv2': groups=5 does not divide the 64 input channels",
    }


def test_github_annotations_escape_what_github_requires(tmp_path: Path) -> None:
    spec = tmp_path / "a,b:c.yaml"
    spec.write_text("name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: 4, kernel: 3, stride: 100%}\n")
    _, out, _ = run("validate", str(spec), "-f", "github")
    assert out.startswith(
        f"::error file={tmp_path!s}/a%2Cb%3Ac.yaml,line=4,col=47::stride: expected a number or a pair [height, width], got "
    )
    assert "'100%25'" in out


def test_paths_folders_and_globs(tmp_path: Path) -> None:
    (tmp_path / "nets" / "deep").mkdir(parents=True)
    (tmp_path / ".github").mkdir()
    good = "name: t\ninput: [3, 8, 8]\nlayers: [relu]\n"
    for name in ("nets/a.yaml", "nets/deep/b.yml", ".github/ci.yml", "nets/.hidden.yaml", "nets/notes.txt"):
        (tmp_path / name).write_text(good if name.endswith(("yaml", "yml")) else "x")
    results = validate_paths([str(tmp_path)])
    assert sorted(Path(r.path).name for r in results) == ["a.yaml", "b.yml"]
    assert [Path(r.path).name for r in validate_paths([f"{tmp_path}/**/*.yml"])] == ["b.yml"]
    assert len(validate_paths([str(tmp_path / "nets"), str(tmp_path / "nets/a.yaml")])) == 2  # no duplicates
    (tmp_path / "empty").mkdir()
    missing = validate_paths([str(tmp_path / "nope.yaml"), f"{tmp_path}/*.json", str(tmp_path / "empty")])
    assert [r.errors[0].message for r in missing] == [
        "no such file or folder, nor a shipped spec of that name",
        "no file matches this pattern",
        "no .yaml or .yml files in this folder",
    ]
    code, out, _ = run("validate", str(tmp_path / "nope.yaml"))
    assert code == 1 and out == f"{tmp_path}/nope.yaml: no such file or folder, nor a shipped spec of that name\n"


def test_usage_errors_exit_2() -> None:
    assert run("validate")[0] == 2
    assert run("validate", "specs", "--format", "xml")[0] == 2


def test_validate_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text((ROOT / BROKEN / "channels.yaml").read_text())
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    run("validate", str(tmp_path))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


# --- hostile input -----------------------------------------------------------------------

SPEC = b"name: t\ninput: [3, 8, 8]\n"

ALIAS_BOMB = "\n".join(
    ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["name: t", "input: [3, 8, 8]", "layers: *a9"]
)

HOSTILE: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "1:1: the file is empty"),
    "only a comment": (b"# nothing\n", "1:1: the file is empty"),
    "not YAML": (b"name: [\n", "not valid YAML"),
    "a YAML list": (b"- 1\n- 2\n", "a spec must be a mapping"),
    "binary": (bytes(range(256)) * 4, "not a text file (it contains NUL bytes)"),
    "not UTF-8": ("name: Straße\n".encode("latin-1"), "1:11: not UTF-8 text (byte 0xdf cannot be decoded)"),
    "alias bomb": (ALIAS_BOMB.encode(), "alias bomb"),
    "repeat a billion": (
        b"name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: relu, repeat: 1000000000}\n",
        "repeat: must be less than or equal to 10000",
    ),
    "many repeats": (
        b"name: t\ninput: [3, 8, 8]\nlayers:\n" + b"  - {kind: relu, repeat: 10000}\n" * 11,
        "the network expands to more than 20,000 rows",
    ),
    "deep flow nesting": (
        b"name: t\ninput: " + b"[" * 10_000 + b"]" * 10_000 + b"\n",
        "nesting deeper than 100 levels",
    ),
    "deep block nesting": (
        b"name: t\nnotes:\n" + b"".join(b" " * (2 * i) + b"- \n" for i in range(500)),
        "nesting deeper than 100 levels",
    ),
    "huge number": (
        b"name: t\ninput: [3, 99999999999999999999, 8]\nlayers: [relu]\n",
        "must be less than or equal to 2147483647",
    ),
    "huge tensor": (
        b"name: t\ninput: [2147483647, 2147483647, 2147483647]\nlayers: [relu]\n",
        "holds more than 2^48 values: too large for any tensor",
    ),
    "huge kernel": (
        b"name: t\ninput: [1, 16777216, 16777216]\nlayers:\n  - {kind: conv2d, out: 1, kernel: 8388608, stride: 4194307}\n",
        "warning: layer 1 conv2d",
    ),
    "huge adaptive output": (
        b"name: t\ninput: [1, 3, 5]\nlayers:\n  - {kind: adaptive_avgpool2d, output: 2147483647}\n",
        "too large for any tensor",
    ),
    "python object tag": (
        b"name: !!python/object/apply:os.system [ls]\ninput: [3]\nlayers: [relu]\n",
        "cannot read this value",
    ),
    "too big a file": (b"# " + b"x" * 1_100_000 + b"\n", "specs over 1,000,000 bytes are refused"),
    "a thousand mistakes": (
        b"name: t\ninput: [3, 8, 8]\nlayers:\n" + b"  - {kind: conv2d, out: x, kernel: 0}\n" * 1000,
        "out: expected a valid integer",
    ),
    # 1. expressions that overflow
    "round of infinity": (
        SPEC + b"blocks:\n  b:\n    layers: [{kind: conv2d, out: '${round(1e309)}', kernel: 1}]\nlayers: [{use: b}]\n",
        "'${round(1e309)}': inf is not a finite number (in block 'b' as used by 'b1')",
    ),
    "int of an overflowing product": (
        SPEC + b"blocks:\n  b:\n    layers: [{kind: conv2d, out: '${int(1e300 * 1e300)}', kernel: 1}]\n"
        b"layers: [{use: b}]\n",
        "is too large",
    ),
    "a 99-digit argument divided by a float": (
        SPEC + b"blocks:\n  b:\n    args: {x: " + b"9" * 99 + b"}\n    layers: [{kind: conv2d, out: '${x / 2.0}', "
        b"kernel: 1}]\nlayers: [{use: b}]\n",
        "'${x / 2.0}': 1e+99 is too large",
    ),
    "a 400-digit argument": (
        SPEC + b"blocks:\n  b:\n    args: {x: " + b"9" * 400 + b"}\n    layers: [{kind: conv2d, out: '${x + 1.5}', "
        b"kernel: 1}]\nlayers: [{use: b}]\n",
        "5:15: cannot read this value: a number written with 400 characters (at most 100 are read)",
    ),
    # 2. YAML that PyYAML cannot construct
    "!!int abc": (
        SPEC + b"notes: [!!int abc]\nlayers: [relu]\n",
        "3:9: cannot read this value: 'abc' is not a valid !!int",
    ),
    "!!float x": (SPEC + b"notes: [!!float x]\nlayers: [relu]\n", "'x' is not a valid !!float"),
    "!!bool x": (SPEC + b"notes: [!!bool x]\nlayers: [relu]\n", "'x' is not a valid !!bool"),
    "!!timestamp x": (SPEC + b"notes: [!!timestamp x]\nlayers: [relu]\n", "'x' is not a valid !!timestamp"),
    "an invalid date": (
        SPEC + b"notes: [2024-13-45]\nlayers: [relu]\n",
        "'2024-13-45' reads as a date but is not one (month must be in 1..12); quote it to mean text",
    ),
    "recursive merge key": (
        SPEC + b"x: &a {<<: *a}\nlayers: [relu]\n",
        "3:4: '<<' merges a mapping into itself (a recursive alias)",
    ),
    "recursive alias": (SPEC + b"x: &a [*a]\nlayers: [relu]\n", "3:4: an alias refers to a value that contains it"),
    "an integer past 4,300 digits": (
        b"name: t\ninput: [3, " + b"9" * 5000 + b", 8]\nlayers: [relu]\n",
        "2:12: cannot read this value: a number written with 5,000 characters",
    ),
    # 3. echoed text is inert: escaped, and cut when long
    "escape sequences and a workflow command in a kind": (
        SPEC + b'layers: [{kind: "relu\\e[31m\\n::warning::x"}]\n',
        "unknown layer kind 'relu\\x1b[31m\\n::warning::x'",
    ),
    "a 960 kB kind": (SPEC + b"layers: [{kind: " + b"k" * 960_000 + b"}]\n", "k… (960,000 characters)'"),
    "a 90,000-number input": (
        b"name: t\ninput: [" + ", ".join(str(i) for i in range(90_000)).encode() + b"]\nlayers: [relu]\n",
        "2:8: input: expected C x H x W such as [3, 224, 224] or [N], got [0, 1, 2, 3,",
    ),
    "a 100,000-number input": (
        b"name: t\ninput: [" + ", ".join(str(i) for i in range(100_000)).encode() + b"]\nlayers: [relu]\n",
        "the YAML holds more than 100,000 values",
    ),
    # 4. an empty concat
    "concat of no branches": (
        SPEC + b"layers: [{kind: concat, branches: []}]\n",
        "3:35: branches: a concat needs at least one branch",
    ),
    "concat of no named branches": (
        SPEC + b"layers: [{kind: concat, branches: {}}]\n",
        "3:35: branches: a concat needs at least one branch",
    ),
    # 5. work that makes nothing
    "nested repeats of a disabled layer": (
        SPEC + b"layers:\n  - {kind: sequential, repeat: 10000, layers: [{kind: sequential, repeat: 10000,"
        b" layers: [{kind: relu, when: false}]}]}\n",
        "more than 500,000 steps",
    ),
    "a projection on 10^7 rows": (
        b"name: t\ninput: [1, 10000000, 1]\nlayers:\n  - {kind: residual, shortcut: projection,"
        b" body: [{kind: zeropad2d, padding: [0, 0, 0, 1]}]}\n",
        "a projection shortcut cannot take 1x10000000x1 to 1x10000001x1 with one stride",
    ),
    "a projection on 2^31 - 1 rows": (
        b"name: t\ninput: [1, 2147483647, 1]\nlayers:\n  - {kind: residual, shortcut: projection,"
        b" body: [{kind: avgpool2d, kernel: [2, 1], stride: [3, 1]}]}\n",
        "a projection shortcut cannot take 1x2147483647x1 to 1x715827882x1 with one stride",
    ),
    "an input of 2^93 values, no layer run": (
        b"name: t\ninput: [2147483647, 2147483647, 2147483647]\nlayers: [{kind: relu, when: false}]\n",
        "2:8: the input 2147483647x2147483647x2147483647 x batch 1 holds more than 2^48 values",
    ),
    # 6. many problems: at most MAX_PROBLEMS lines, then one that counts the rest
    "5,000 unknown keys": (
        SPEC + b"layers: [relu]\n" + b"".join(f"k{i}: 1\n".encode() for i in range(5000)),
        f"... and {5000 - MAX_PROBLEMS:,} more",
    ),
    # 7. defaults that would fill themselves in forever (a traceback of recursion before)
    "defaults of a structure holding itself": (
        SPEC
        + b"defaults:\n  sequential: {layers: [{kind: sequential}]}\nlayers: [{kind: sequential, layers: [relu]}]\n",
        "unknown key 'sequential' in defaults",
    ),
    "a structure without its layers, beside refused defaults for it": (
        SPEC + b"defaults:\n  sequential: {layers: [{kind: sequential}]}\nlayers: [{kind: sequential}]\n",
        "5:10: sequential needs 'layers'",  # defaults fill in layer kinds only: not located at line 4's
    ),
    "defaults of a layer holding layers": (
        SPEC + b"defaults:\n  relu: {layers: [relu]}\nlayers: [relu]\n",
        "unknown key 'layers' in defaults for relu",
    ),
    # 8. messages that named the wrong key
    "keys that are not identifiers": (
        SPEC + b"layers: [{kind: relu, in place: 1}]\nmy layers: 1\n",
        "3:23: unknown key 'in place' in relu",
    ),
}


@pytest.mark.parametrize("content", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_input_fails_fast_with_one_clear_line_each(tmp_path: Path, content: tuple[bytes, str]) -> None:
    raw, text = content
    path = tmp_path / "hostile.yaml"
    path.write_bytes(raw)
    # the work is bounded by counts (bytes, nodes, depth, rows), each named in its message;
    # benchmarks/hostile_speed.py times these cases
    code, out, err = run("validate", str(path))
    assert text in out
    assert code == (0 if "warning: " in text else 1)
    for line in out.splitlines():
        assert line.startswith(f"{path}:"), line
        assert not CONTROL.search(line) and len(line) < len(str(path)) + MAX_MESSAGE + MARKER_ROOM + 40, line[:300]
    assert len(out.splitlines()) <= MAX_PROBLEMS + 1
    code, out, err = run("summary", str(path))
    assert code == (0 if "warning: " in text else 1) and "Traceback" not in err
    assert not CONTROL.search(out + err) and len(err.splitlines()) <= MAX_PROBLEMS + 1


# specs that look hostile but are valid, and must stay so
HOSTILE_VALID: dict[str, bytes] = {
    "101 brackets in a quoted string and a comment": (
        SPEC + b"notes: ['" + b"[" * 101 + b"', \"" + b"{" * 101 + b'"]\n# ' + b"[" * 200 + b"\nlayers: [relu]\n"
    ),
    "101 brackets in a block scalar": SPEC + b"notes:\n  - |\n    " + b"[" * 101 + b"\nlayers: [relu]\n",
    "a 900 kB block argument used 10,000 times": (
        SPEC + b"blocks:\n  inner:\n    args: {a: null}\n    layers: [{kind: relu, when: false}]\n  b:\n"
        b"    args: {x: null}\n    layers: [{use: inner, a: $x}]\nlayers: [{use: b, repeat: 10000, x: "
        + b"x" * 900_000
        + b"}]\n"
    ),
}


@pytest.mark.parametrize("raw", list(HOSTILE_VALID.values()), ids=list(HOSTILE_VALID))
def test_hostile_looking_specs_stay_valid(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "valid.yaml"
    path.write_bytes(raw)
    assert run("validate", str(path))[:2] == (0, "")
    code, _, err = run("summary", str(path))
    assert code == 0, err
    report = analyze(load_spec(path))
    # a block's arguments are shown cut short, however long and however often used
    assert all(len(b.detail) < 200 for b in report.blocks)


def test_echoed_user_text_is_literal_and_inert(tmp_path: Path) -> None:
    """Rich markup prints as written, escape sequences and newlines are escaped, in every output."""
    path = tmp_path / "t.yaml"
    path.write_text(
        'name: "[/x] [link=https://example.com]click[/link] :warning: \\e]8;;http://e\\a\\e[2J"\n'
        "input: [3, 8, 8]\n"
        'notes: ["one\\n::warning::two", "[bold]x[/bold]"]\n'
        "blocks:\n  b:\n    args: {a: null}\n    layers: [relu]\n"
        'layers: [{use: b, name: u, repeat: 2, a: "[/x]\\e[31m\\r\\n::error::x"}]\n'
    )
    code, out, err = run("summary", str(path))
    assert code == 0, err
    assert "[/x] [link=https://example.com]click[/link] :warning: \\x1b]8;;http://e\\x07\\x1b[2J: input" in out
    assert "one\\n::warning::two" in out and "[bold]x[/bold]" in out
    assert "a=[/x]\\x1b[31m\\r\\n::error::x" in out
    assert not CONTROL.search(out)
    assert not any(line.lstrip().startswith("::") for line in out.splitlines())
    for fmt in ("json", "csv", "markdown"):
        code, out, _ = run("summary", str(path), "-f", fmt)
        assert code == 0 and not CONTROL.search(json.loads(out)["name"] if fmt == "json" else out)


@pytest.mark.parametrize("fmt", ["text", "github", "json"])
def test_a_file_name_and_a_kind_cannot_start_a_workflow_command(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "a\n::warning file=x::pwned\x1b[2J.yaml"
    path.write_text('name: t\ninput: [3, 8, 8]\nlayers: [{kind: "x\\n::error::y"}]\n')
    code, out, _ = run("validate", str(tmp_path), "-f", fmt)
    assert code == 1
    text = "".join(str(v) for v in _strings(json.loads(out))) if fmt == "json" else out
    name = "a\\n%3A%3Awarning file=x%3A%3Apwned" if fmt == "github" else "a\\n::warning file=x::pwned"
    assert f"{name}\\x1b[2J.yaml" in text and "'x\\n::error::y'" in text
    assert not CONTROL.search(text)
    assert all(line.startswith(("::error ", str(tmp_path), "{", " ", "}")) for line in out.splitlines())


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for v in data.values() for s in _strings(v)]
    if isinstance(data, list):
        return [s for v in data for s in _strings(v)]
    return [data] if isinstance(data, str) else []


def test_an_overflowing_argument_given_in_python(tmp_path: Path) -> None:
    """parse_spec takes Python values: a 400-digit int reaches the expression, which refuses it."""
    spec = parse_spec(
        {
            "name": "t",
            "input": [3, 8, 8],
            "blocks": {"b": {"args": {"x": 10**400}, "layers": [{"kind": "conv2d", "out": "${x / 2.0}", "kernel": 1}]}},
            "layers": [{"use": "b"}],
        }
    )
    with pytest.raises(SpecError, match=re.escape("'${x / 2.0}': a number of 401 digits is too large")):
        analyze(spec)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_only_regular_files_are_read(tmp_path: Path) -> None:
    """/dev/zero behind a .yaml link, a FIFO, and a folder of both: refused without reading (or waiting)."""
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    (tmp_path / "random.yaml").symlink_to("/dev/urandom")
    os.mkfifo(tmp_path / "fifo.yaml")
    for name, kind in (("zero.yaml", "a character device"), ("fifo.yaml", "a FIFO")):
        code, out, _ = run("validate", str(tmp_path / name))
        assert code == 1 and out == f"{tmp_path / name}: not a regular file (it is {kind}); only spec files are read\n"
        code, _, err = run("summary", str(tmp_path / name))
        assert code == 1 and f"not a regular file (it is {kind})" in err
    code, out, _ = run("validate", str(tmp_path))
    assert code == 1 and len(out.splitlines()) == 3 and all("not a regular file" in line for line in out.splitlines())


def test_a_glob_over_proc_ends() -> None:
    """``**`` follows no link (``/proc/self/root`` is ``/``), and a walk looks at MAX_ENTRIES entries at most."""
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    code, out, _ = run("validate", "/proc/**/*.yaml")
    assert code == 1 and out.startswith("/proc/**/*.yaml: ")
    assert len(out.splitlines()) == 1


def test_a_folder_given_to_summary(tmp_path: Path) -> None:
    code, _, err = run("summary", str(tmp_path))
    assert code == 1 and err == f"error: {tmp_path}: is a folder, not a spec file\n"


# --- fuzzing -------------------------------------------------------------------------------

SPEC_TEXTS = {p.name: p.read_text() for p in sorted(SPECS.glob("*.yaml"))}
JUNK: list[Any] = [None, 0, -1, 3, 2.5, True, "x", "same", [], [1, 2, 3], {}, {"kind": "relu"}, "conv2d", 10**30]
# what a hostile spec holds: escape sequences, rich markup, workflow commands, long text, huge numbers,
# overflowing expressions, empty structures, keys that are not identifiers
HOSTILE_JUNK: list[Any] = [
    "\x1b[31m[/x]\n::warning::x\x9b",
    "[link=https://example.com]x[/link] :warning:",
    "k" * 3000,
    10**400,
    float("inf"),
    float("nan"),
    "${round(1e309)}",
    "${in_channels / 2.0 * 1e308}",
    "a_${'x' if 1 else 2}" * 40,
    list(range(3000)),
    {"kind": "concat", "branches": []},
    {"kind": "concat", "branches": {}},
    {"kind-size": 3, "in place": 1},
    {"kind": "sequential", "repeat": 10000, "layers": [{"kind": "relu", "when": False}]},
]
# YAML text put where a value stands: tags PyYAML cannot construct, recursive aliases, deep brackets
HOSTILE_SNIPPETS = [
    "!!int abc",
    "!!float x",
    "!!bool maybe",
    "!!timestamp nope",
    "2024-13-45",
    "9" * 5000,
    "&r {<<: *r}",
    "&q [*q]",
    '"\\e[2J[/x]\\n::warning::x"',
    "'" + "[" * 150 + "'",
    "[]",
    "{}",
    "[" * 150,
    "1e309",
    "-.inf",
    "0x" + "f" * 200,
    "!!python/object/apply:os.system [ls]",
    "*undefined",
    "{kind: concat, branches: []}",
    "'${round(1e309)}'",
]


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, (*prefix, i))
    return out


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        data = data[p]
    return data


def mutate(data: Any, rng: random.Random, junk: list[Any] = JUNK) -> Any:
    """One random edit of parsed YAML: drop, duplicate or retype a value (from ``junk``), or swap two values."""
    paths = [p for p in _paths(data) if p]
    path = rng.choice(paths)
    parent, key = _parent(data, path), path[-1]
    op = rng.choice(["drop", "duplicate", "retype", "swap", "rename"])
    if op == "drop":
        del parent[key]
    elif op == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    elif op == "rename" and isinstance(parent, dict):
        parent[str(key)[::-1] or "x"] = parent.pop(key)
    elif op == "swap":
        other = rng.choice(paths)
        other_parent = _parent(data, other)
        with contextlib.suppress(KeyError, IndexError):
            # copies, so that swapping a value with its own ancestor cannot make a cycle
            mine, theirs = copy.deepcopy(parent[key]), copy.deepcopy(other_parent[other[-1]])
            parent[key], other_parent[other[-1]] = theirs, mine
    else:
        parent[key] = copy.deepcopy(rng.choice(junk))
    return data


@settings(max_examples=int(os.environ.get("CNNCALC_FUZZ_EXAMPLES", "400")), deadline=None)
@given(
    name=st.sampled_from(sorted(SPEC_TEXTS)),
    seed=st.integers(0, 2**32),
    edits=st.integers(1, 4),
    cut=st.floats(0, 1),
    how=st.sampled_from(["data", "truncate", "garble", "hostile data", "hostile text"]),
)
def test_fuzzed_specs_end_in_a_verdict_not_an_exception(name: str, seed: int, edits: int, cut: float, how: str) -> None:
    rng = random.Random(seed)
    text = SPEC_TEXTS[name]
    if how in ("data", "hostile data"):
        data = yaml.safe_load(text)
        for _ in range(edits):
            if not isinstance(data, dict) or not data:
                break
            data = mutate(data, rng, HOSTILE_JUNK if how == "hostile data" else JUNK)
        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    elif how == "hostile text":
        lines = text.splitlines()
        for _ in range(edits):
            i = rng.randrange(len(lines))
            head, sep, _ = lines[i].partition(": ")
            lines[i] = head + (sep or ": ") + rng.choice(HOSTILE_SNIPPETS)
        text = "\n".join(lines) + "\n"
    elif how == "truncate":
        text = text[: int(len(text) * cut)]
    else:
        chars = list(text)
        for _ in range(edits * 3):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice("[]{}:,-&*!|>'\"#\t\n x0"))
        text = "".join(chars)
    result = validate_file("fuzz.yaml", text=text)
    for problem in result.errors + result.warnings:
        assert problem.message and not CONTROL.search(problem.message + "\n")
        assert len(problem.message) <= MAX_MESSAGE + MARKER_ROOM
        assert problem.file == "fuzz.yaml" and problem.line is not None
    assert len(result.errors) <= MAX_PROBLEMS + 1 and len(result.warnings) <= MAX_PROBLEMS + 1
    for line in validation_lines([result], "github"):
        assert not CONTROL.search(line)
    if result.ok:  # then every other command must work on it too, and print the user's text literally
        report = analyze(load_spec("fuzz.yaml", text=text))
        out = io.StringIO()
        print_table(report, Console(file=out, width=100, markup=False, emoji=False, highlight=False))
        assert not CONTROL.search(out.getvalue().replace("\n", ""))


# --- schema -----------------------------------------------------------------------------------


def test_schema_accepts_every_shipped_spec_and_rejects_typos() -> None:
    validator = jsonschema.Draft202012Validator(json_schema())
    validator.check_schema(json_schema())
    for path in sorted(SPECS.glob("*.yaml")):
        validator.validate(yaml.safe_load(path.read_text()))
    # the bare-kind shorthand is valid wherever entries stand, as the loader accepts it
    nested = {
        "name": "t",
        "input": [3, 8, 8],
        "layers": [
            {"kind": "residual", "body": ["relu"], "shortcut": ["relu"]},
            {"kind": "concat", "branches": [["relu"], ["tanh"]]},
            {"kind": "sequential", "layers": ["flatten"]},
        ],
    }
    validator.validate(nested)
    analyze(parse_spec(nested))
    for broken in ("unknown_key", "unknown_kind", "wrong_types"):
        assert list(validator.iter_errors(yaml.safe_load((ROOT / BROKEN / f"{broken}.yaml").read_text())))


def test_schema_command_and_the_shipped_schema_file_agree() -> None:
    code, out, _ = run("schema")
    assert code == 0
    assert json.loads(out) == json_schema()
    shipped = ROOT / "schema" / "cnncalc.schema.json"
    assert shipped.read_text() == out, (
        "schema/cnncalc.schema.json is stale: cnncalc schema > schema/cnncalc.schema.json"
    )


# --- compare ------------------------------------------------------------------------------------


def test_compare_vgg16_vgg19(update_golden: bool) -> None:
    code, out, _ = run("compare", "specs/vgg16.yaml", "specs/vgg19.yaml", "-f", "markdown")
    assert code == 0
    check_golden("compare_vgg16_vgg19.md", out, update_golden)
    code, out, _ = run("compare", "specs/vgg16.yaml", "specs/vgg19.yaml", "-f", "json")
    data = json.loads(out)
    a, b = analyze(load_spec(SPECS / "vgg16.yaml")), analyze(load_spec(SPECS / "vgg19.yaml"))
    assert data["a"]["totals"]["params"] == a.totals.params and data["b"]["totals"]["macs"] == b.totals.macs
    stages = {s["stage"]: s for s in data["stages"]}
    assert list(stages) == ["input", "224x224", "112x112", "56x56", "28x28", "14x14", "7x7", "flat"]
    assert stages["56x56"]["params"] == {"a": 1_475_328, "b": 2_065_408}  # VGG-19 adds one conv3-256
    for attr in ("params", "macs", "activations"):
        assert sum(s[attr]["a"] for s in data["stages"]) == getattr(a.totals, attr)


def test_compare_stages_only_one_side_has() -> None:
    _, out, _ = run("compare", "specs/lenet5.yaml", "specs/mnist_cnn.yaml", "-f", "json")
    keys = [(s["stage"], s["params"]["a"] is None, s["params"]["b"] is None) for s in json.loads(out)["stages"]]
    assert keys[0] == ("input", False, False)
    assert ("3x3", True, False) in keys and ("28x28", False, False) in keys
    code, out, _ = run("compare", "specs/lenet5.yaml", "specs/mnist_cnn.yaml")
    assert code == 0 and "new" in out and "gone" in out


def test_compare_bad_spec_exits_1() -> None:
    code, _, err = run("compare", "specs/vgg16.yaml", "tests/broken/channels.yaml")
    assert code == 1 and err.startswith("error: tests/broken/channels.yaml:5:60")
