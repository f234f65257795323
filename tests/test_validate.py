"""`cnncalc validate`, `schema` and `compare`: exact lines for broken specs, hostile input, fuzzing."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import ROOT, SPECS
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import check_golden, run

from cnncalc import analyze, load_spec, parse_spec
from cnncalc.spec import json_schema
from cnncalc.validate import validate_file, validate_paths

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
    assert out == (
        "specs/mnist_cnn.yaml:22:5: warning: layer 9 maxpool2d 'pool3': height and width: (7 - 2 + 0) / 2 = 2.5 is"
        " not a whole number: the window does not fit. PyTorch rounds down to 2, so the output is 3 and the last 1"
        " row(s) of the padded input are never read. Fits: stride 1; input 6 or 8; ceil_mode: true"
        " (accepted: accept_floor)\n"
    )  # the only warning: the lecture's model floors its last pool, and says it means to
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
        "no such file or folder",
        "no file matches this pattern",
        "no .yaml or .yml files in this folder",
    ]
    code, out, _ = run("validate", str(tmp_path / "nope.yaml"))
    assert code == 1 and out == f"{tmp_path}/nope.yaml: no such file or folder\n"


def test_usage_errors_exit_2() -> None:
    assert run("validate")[0] == 2
    assert run("validate", "specs", "--format", "xml")[0] == 2


def test_validate_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text((ROOT / BROKEN / "channels.yaml").read_text())
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    run("validate", str(tmp_path))
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before


# --- hostile input -----------------------------------------------------------------------

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
    assert code == (0 if "warning" in text else 1)
    for line in out.splitlines():
        assert line.startswith(f"{path}:"), line
    code, out, err = run("summary", str(path))
    assert code == (0 if "warning" in text else 1) and "Traceback" not in err


def test_a_folder_given_to_summary(tmp_path: Path) -> None:
    code, _, err = run("summary", str(tmp_path))
    assert code == 1 and err == f"error: {tmp_path}: is a folder, not a spec file\n"


# --- fuzzing -------------------------------------------------------------------------------

SPEC_TEXTS = {p.name: p.read_text() for p in sorted(SPECS.glob("*.yaml"))}
JUNK: list[Any] = [None, 0, -1, 3, 2.5, True, "x", "same", [], [1, 2, 3], {}, {"kind": "relu"}, "conv2d", 10**30]


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


def mutate(data: Any, rng: random.Random) -> Any:
    """One random edit of parsed YAML: drop, duplicate or retype a value, or swap two values."""
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
        parent[key] = copy.deepcopy(rng.choice(JUNK))
    return data


@settings(max_examples=int(os.environ.get("CNNCALC_FUZZ_EXAMPLES", "400")), deadline=None)
@given(
    name=st.sampled_from(sorted(SPEC_TEXTS)),
    seed=st.integers(0, 2**32),
    edits=st.integers(1, 4),
    cut=st.floats(0, 1),
    how=st.sampled_from(["data", "truncate", "garble"]),
)
def test_fuzzed_specs_end_in_a_verdict_not_an_exception(name: str, seed: int, edits: int, cut: float, how: str) -> None:
    rng = random.Random(seed)
    text = SPEC_TEXTS[name]
    if how == "data":
        data = yaml.safe_load(text)
        for _ in range(edits):
            if not isinstance(data, dict) or not data:
                break
            data = mutate(data, rng)
        text = yaml.safe_dump(data, sort_keys=False)
    elif how == "truncate":
        text = text[: int(len(text) * cut)]
    else:
        chars = list(text)
        for _ in range(edits * 3):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice("[]{}:,-&*!|>'\"#\t\n x0"))
        text = "".join(chars)
    result = validate_file("fuzz.yaml", text=text)
    for problem in result.errors + result.warnings:
        assert problem.message and "\n" not in problem.message
        assert problem.file == "fuzz.yaml" and problem.line is not None
    if result.ok:  # then every other command must work on it too
        analyze(load_spec("fuzz.yaml", text=text))


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
