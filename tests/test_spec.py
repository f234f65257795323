"""Loading specs: the DSL's shorthands, and bad input located at file:line:column."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import spec_of

from cnncalc import SpecError, analyze, load_spec
from cnncalc.layers.conv import Conv2d
from cnncalc.spec import ENTRY_KINDS, LAYER_KINDS

GOOD = """\
name: tiny
input: 3x32x32
defaults:
  conv2d: {kernel: 3, padding: 1, activation: relu}
layers:
  - {kind: conv2d, out: 8, repeat: 2}
  - {kind: conv2d, out: 16, kernel: 1, padding: 0, activation: null}
  - {kind: maxpool2d, kernel: 2}
  - flatten
  - {kind: linear, out: 10}
"""


def test_defaults_repeat_and_bare_kinds() -> None:
    spec = load_spec(text=GOOD)
    assert spec.input == (3, 32, 32)
    first, second = spec.layers[0], spec.layers[1]
    assert isinstance(first, Conv2d) and isinstance(second, Conv2d)
    assert (first.kernel, first.padding, first.activation, first.repeat) == ((3, 3), (1, 1), "relu", 2)
    assert (second.kernel, second.padding, second.activation) == ((1, 1), (0, 0), None)
    assert [r.name for r in analyze(spec).rows] == ["input", "conv1", "conv2", "conv3", "pool1", "flatten1", "fc1"]


def test_pairs_are_normalised_once() -> None:
    spec = spec_of([{"kind": "conv2d", "out": 4, "kernel": [3, 5], "stride": 2, "dilation": [1, 2]}])
    layer = spec.layers[0]
    assert isinstance(layer, Conv2d)
    assert (layer.kernel, layer.stride, layer.dilation, layer.padding) == ((3, 5), (2, 2), (1, 2), (0, 0))


def _error(text: str) -> list[str]:
    with pytest.raises(SpecError) as err:
        analyze(load_spec("bad.yaml", text=text))
    return [str(p) for p in err.value.problems]


# (id, YAML text, the expected error lines)
BAD = [
    (
        "unknown key",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: 4, kernal: 3}\n",
        [
            "bad.yaml:4:5: conv2d needs 'kernel'",
            "bad.yaml:4:28: unknown key 'kernal' in conv2d (did you mean 'kernel'?); allowed: name, repeat, when, from, kind, out, kernel, stride, padding, dilation, groups, bias, in, activation, accept_floor",
        ],
    ),
    (
        "unknown kind",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv, out: 4}\n",
        ["bad.yaml:4:5: unknown layer kind 'conv' (did you mean 'conv2d'?)"],
    ),
    (
        "unknown kind, nothing close",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: zzqx}\n",
        [
            "bad.yaml:4:5: unknown layer kind 'zzqx'; the kinds: "
            + ", ".join(ENTRY_KINDS)
            + " (or 'use:' for a block)",
        ],
    ),
    (
        "unknown bare kind",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - flaten\n",
        ["bad.yaml:4:5: unknown layer kind 'flaten' (did you mean 'flatten'?)"],
    ),
    (
        "one-key form",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - maxpool2d: {kernel: 2}\n",
        ["bad.yaml:4:5: a layer needs a 'kind': write {kind: maxpool2d, ...} rather than 'maxpool2d: ...'"],
    ),
    (
        "unknown top-level key",
        "name: t\ninput: [3, 8, 8]\nlayer:\n  - relu\n",
        [
            "bad.yaml:1:1: the spec needs 'layers'",
            "bad.yaml:3:1: unknown key 'layer' in the spec (did you mean 'layers'?); allowed: name, input, notes, defaults, blocks, layers, outputs",
        ],
    ),
    (
        "wrong type",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: four, kernel: 3}\n",
        ["bad.yaml:4:25: out: expected a valid integer, got 'four'"],
    ),
    (
        "bool is not a number",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: 4, kernel: yes}\n",
        ["bad.yaml:4:36: kernel: expected a number or a pair [height, width], got a boolean"],
    ),
    (
        "bad pair element",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: 4, kernel: [3, 0]}\n",
        ["bad.yaml:4:40: kernel: must be greater than or equal to 1, got 0"],
    ),
    (
        "bad default located at the default",
        "name: t\ninput: [3, 8, 8]\ndefaults:\n  conv2d: {stride: 0}\nlayers:\n  - {kind: conv2d, out: 4, kernel: 3}\n  - {kind: conv2d, out: 4, kernel: 3}\n",
        ["bad.yaml:4:20: stride: must be greater than or equal to 1, got 0"],
    ),
    (
        "unknown default kind",
        "name: t\ninput: [3, 8, 8]\ndefaults:\n  conv: {kernel: 3}\nlayers:\n  - relu\n",
        ["bad.yaml:4:3: unknown key 'conv' in defaults (did you mean 'conv2d'?); allowed: " + ", ".join(LAYER_KINDS)],
    ),
    (
        "bad activation",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: 4, kernel: 3, activation: gelu}\n",
        [
            "bad.yaml:4:51: activation: expected 'relu', 'relu6', 'leaky_relu', 'tanh', 'sigmoid' or 'softmax', got 'gelu'"
        ],
    ),
    (
        "bad input",
        "name: t\ninput: [3, 8]\nlayers:\n  - relu\n",
        ["bad.yaml:2:8: input: expected C x H x W such as [3, 224, 224] or [N], got [3, 8]"],
    ),
    (
        "duplicate name",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: relu, name: a}\n  - {kind: relu, name: a}\n",
        ["bad.yaml:5:24: name 'a' is used more than once"],
    ),
    (
        "geometry at the layer's field",
        "name: t\ninput: [64, 2, 2]\nlayers:\n  - relu\n  - {kind: conv2d, out: 4, kernel: 3}\n",
        [
            "bad.yaml:5:36: layer 2 conv2d 'conv1': output height would be 0 (input 64x2x2, kernel 3x3, padding 0): the padded input 2 is smaller than the kernel"
        ],
    ),
    (
        "linear on planes",
        "name: t\ninput: [1, 8, 8]\nlayers:\n  - {kind: linear, out: 4}\n",
        [
            "bad.yaml:4:5: layer 1 linear 'fc1': linear needs a flat input, got 1x8x8; add '- flatten' before it (PyTorch's nn.Linear would act on the last dimension only)"
        ],
    ),
    ("empty file", "", ["bad.yaml:1:1: the file is empty; a spec needs at least 'name', 'input' and 'layers'"]),
    (
        "not a mapping",
        "- relu\n",
        ["bad.yaml:1:1: a spec must be a mapping with 'name', 'input' and 'layers', got a list"],
    ),
    (
        "not YAML",
        "name: t\ninput: [3, 8, 8\nlayers: []\n",
        ["bad.yaml:3:7: not valid YAML: expected ',' or ']', but got ':'"],
    ),
    ("duplicate key", "name: t\nname: u\ninput: [3, 8, 8]\nlayers: [relu]\n", ["bad.yaml:2:1: duplicate key 'name'"]),
    (
        "python tag refused",
        "name: !!python/object:os.system t\ninput: [3, 8, 8]\nlayers: [relu]\n",
        [
            "bad.yaml:1:7: cannot read this value: the tag 'tag:yaml.org,2002:python/object:os.system' is not allowed"
            " in a spec"
        ],
    ),
    (
        "empty layers",
        "name: t\ninput: [3, 8, 8]\nlayers: []\n",
        ["bad.yaml:3:9: layers: needs at least one entry"],
    ),
    (
        "repeat bound",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: relu, repeat: 1000000000}\n",
        ["bad.yaml:4:26: repeat: must be less than or equal to 10000, got 1000000000"],
    ),
    (
        "keys that are not identifiers, named as written",
        "name: t\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: 4, kernel: 3, kernel-size: 3, in place: 1}\n"
        "my layers: 1\n",
        [
            "bad.yaml:4:39: unknown key 'kernel-size' in conv2d (did you mean 'kernel'?); allowed: name, repeat, when,"
            " from, kind, out, kernel, stride, padding, dilation, groups, bias, in, activation, accept_floor",
            "bad.yaml:4:55: unknown key 'in place' in conv2d; allowed: name, repeat, when, from, kind, out, kernel, stride,"
            " padding, dilation, groups, bias, in, activation, accept_floor",
            "bad.yaml:5:1: unknown key 'my layers' in the spec (did you mean 'layers'?); allowed: name, input, notes,"
            " defaults, blocks, layers, outputs",
        ],
    ),
    (
        "a key that is not an identifier in a block's entry",
        "name: t\ninput: [3, 8, 8]\nblocks:\n  b:\n    layers: [{kind: relu, in-place: true}]\nlayers: [{use: b}]\n",
        [
            "bad.yaml:5:27: unknown key 'in-place' in relu (did you mean 'inplace'?); allowed: name, repeat, when,"
            " from, kind, inplace (in block 'b' as used by 'b1')"
        ],
    ),
    (
        "superscript and Arabic-Indic digits in an input",
        "name: t\ninput: 3x²x8\nlayers: [relu]\n",
        ["bad.yaml:2:8: input: expected C x H x W such as 3x224x224 (or N features), got '3x²x8'"],
    ),
    (
        "Arabic-Indic digits in an input",
        "name: t\ninput: 3x٣x8\nlayers: [relu]\n",
        ["bad.yaml:2:8: input: expected C x H x W such as 3x224x224 (or N features), got '3x٣x8'"],
    ),
]


@pytest.mark.parametrize(("text", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_spec_is_located(text: str, expected: list[str]) -> None:
    assert _error(text) == expected


def test_files_that_are_not_specs(tmp_path: Path) -> None:
    binary = tmp_path / "x.yaml"
    binary.write_bytes(b"\x00\x01\x02")
    latin = tmp_path / "l.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    cases = {
        tmp_path / "missing.yaml": "no such file",
        tmp_path: "is a folder, not a spec file",
        binary: "not a text file (it contains NUL bytes)",
        latin: ":1:10: not UTF-8 text (byte 0xe9 cannot be decoded)",
    }
    for path, text in cases.items():
        with pytest.raises(SpecError) as err:
            load_spec(path)
        assert text in str(err.value)
        assert str(err.value).startswith(str(path))


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    with pytest.raises(SpecError, match="alias bomb"):
        load_spec(text="\n".join(lines) + "\nname: t\ninput: [3]\nlayers: [relu]\n")


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(SpecError, match="nesting deeper than"):
        load_spec(text="name: t\ninput: " + "[" * 5000 + "]" * 5000 + "\nlayers: [relu]\n")
    # the YAML parser's own depth is counted: brackets in text and comments are not nesting
    brackets = "[" * 150
    spec = load_spec(
        text=f"name: t\ninput: [3, 8, 8]\nnotes: ['{brackets}', \"{brackets}\"]  # {brackets}\nlayers: [relu]\n"
    )
    assert spec.notes == (brackets, brackets)
    with pytest.raises(SpecError, match="nesting deeper than"):
        load_spec(text="name: t\nnotes:\n" + "".join(" " * (2 * i) + "- \n" for i in range(300)))


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "cnncalc" / "specs").glob("*.yaml")))
def test_to_yaml_reads_back_as_the_same_network(path: Path) -> None:
    """``Spec.to_yaml`` writes what was read (blocks and expressions kept): the text loads to the same report."""
    spec = load_spec(path)
    again = load_spec(text=spec.to_yaml())
    assert analyze(again).rows == analyze(spec).rows


def test_to_yaml_of_a_spec_built_in_python_writes_its_fields() -> None:
    from cnncalc.spec import Spec

    spec = Spec.model_validate({"name": "n", "input": [3, 8, 8], "layers": [{"kind": "conv2d", "out": 4, "kernel": 3}]})
    text = spec.to_yaml()
    assert text == "name: n\ninput: [3, 8, 8]\nlayers:\n  - {kind: conv2d, out: 4, kernel: [3, 3]}\n"
    assert analyze(load_spec(text=text)).totals == analyze(spec).totals
