"""The registry of layer kinds: every registered kind implements every facet, and the rest of cnncalc finds it."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import spec_of
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import layer_strategy

from cnncalc import SpecError, analyze
from cnncalc.fields import Layer
from cnncalc.layers import FAMILIES, INDEX, JOINS, KINDS, family, kind_of, row_kind
from cnncalc.layers.base import PEER_TOOLS, Keeps, Kind, RowKind, SizeStep
from cnncalc.peers import peer_counts
from cnncalc.report import Join
from cnncalc.spec import LAYER_KINDS, LAYER_MODELS

ROOT = Path(__file__).resolve().parents[1]
#: What a kind declares besides its methods; the methods are the abstract ones of Kind (inspect.isabstract).
DECLARED = ("name", "model", "input", "prefix", "moves_data", "fields_doc", "pytorch_doc")


def test_the_spec_takes_its_kinds_from_the_registry() -> None:
    assert tuple(KINDS) == LAYER_KINDS
    assert all(LAYER_MODELS[name] is kind.model for name, kind in KINDS.items())


def test_the_index_lists_every_family_kind_in_its_order() -> None:
    # what each family module declares, read by importing it: the index must say the same, in order
    declared = [kind.name for name in FAMILIES for kind in importlib.import_module(f"cnncalc.layers.{name}").KINDS]
    assert list(INDEX) == declared
    assert [type(KINDS[name]).__module__ for name in INDEX] == [f"cnncalc.layers.{INDEX[name]}" for name in INDEX]
    modules = {p.stem for p in (ROOT / "cnncalc" / "layers").glob("*.py")} - {"__init__", "base", "fused", "joins"}
    assert set(FAMILIES) == modules, "a family module not in the registry"


def test_a_family_that_differs_from_the_index_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(INDEX, "zeropad3d", "pad")
    family.cache_clear()
    try:
        with pytest.raises(LookupError, match=r"cnncalc.layers.pad declares the kinds \['zeropad2d'\].*'zeropad3d'"):
            KINDS["zeropad3d"]
    finally:
        family.cache_clear()


def test_a_spec_loads_only_the_families_of_its_kinds() -> None:
    # VGG-16 is convs and linear layers with relu fused, max pools and dropout: no activation row, no norm,
    # resampling, padding or channel op
    code = (
        "import sys\n"
        "from cnncalc import analyze, load_spec\n"
        "assert analyze(load_spec('specs/vgg16.yaml')).totals.params == 138357544\n"
        "print(' '.join(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('cnncalc.layers.'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["base", "conv", "dense", "dropout", "fused", "joins", "pool"]


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_implements_every_facet(name: str) -> None:
    kind = KINDS[name]
    assert isinstance(kind, Kind)
    assert not inspect.isabstract(type(kind)), f"{name}: {sorted(type(kind).__abstractmethods__)} not implemented"
    missing = [attr for attr in DECLARED if not hasattr(kind, attr)]
    assert not missing, f"{name} declares no {', '.join(missing)}"
    assert issubclass(kind.model, Layer)
    assert kind.model.model_fields["kind"].annotation.__args__ == (name,)  # type: ignore[union-attr]
    assert kind.input in ("planar", "flat", "any")
    assert kind.prefix and isinstance(kind.moves_data, bool)
    # where a kind's module is: one family module of cnncalc.layers, its model beside it
    assert type(kind).__module__ == kind.model.__module__
    assert type(kind).__module__.startswith("cnncalc.layers.")


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_is_documented_as_it_declares(name: str) -> None:
    kind = KINDS[name]
    row = f"| `{name}` | {kind.fields_doc} | {kind.pytorch_doc} |"
    assert row in (ROOT / "docs" / "dsl.md").read_text(), f"docs/dsl.md lacks the row: {row}"


def test_joins_implement_every_facet_of_a_row() -> None:
    assert set(JOINS) == {"add", "concat", "multiply"}
    for join in JOINS.values():
        assert isinstance(join, RowKind) and not inspect.isabstract(type(join))
        assert row_kind(Join(join.name)) is join  # type: ignore[arg-type]


def test_an_unregistered_kind_is_an_error_not_a_default() -> None:
    class Conv3d(Layer):
        kind: str = "conv3d"

    with pytest.raises(LookupError, match="no layer kind is registered for Conv3d"):
        kind_of(Conv3d())
    with pytest.raises(LookupError, match="no join"):
        row_kind(Join("subtract"))  # type: ignore[arg-type]


def _input(kind: Kind[Any]) -> list[int]:
    return [6] if kind.input == "flat" else [4, 9, 9]


@pytest.mark.parametrize("name", KINDS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_facet_answers_for_drawn_layers(name: str, data: st.DataObject) -> None:
    """Drawn layers of each kind, where they fit: rule, keeps, peers, sizes and roofline each answer."""
    kind = KINDS[name]
    entry = data.draw(layer_strategy(kind, 4))
    try:
        report = analyze(spec_of([entry], _input(kind)), batch=2)
    except SpecError:
        assume(False)  # the rule refused it: its own tests say why
    row = report.rows[1]
    assert row.kind == name and row.name.startswith(kind.prefix)
    layer = row.layer
    assert kind_of(layer) is kind  # type: ignore[arg-type]
    for device in ("cpu", "cuda"):
        for grad_in in (True, False):
            assert isinstance(kind.keeps(layer, row, device, 4, 2, grad_in), Keeps)
    terms = kind.peer_terms(layer, row, 2)
    assert set(terms) <= set(PEER_TOOLS)
    # a term is what a tool counts beyond cnncalc's MACs: less where torchinfo and thop count a transposed conv at
    # its output positions (a large padding makes them fewer than the input ones FlopCounterMode counts at), and
    # where torchinfo counts a linear layer over the channels once per image, not at each position, and where a
    # tool does not see a conv at all (std_conv2d, a subclass of nn.Conv2d; blur_pool2d's F.conv2d)
    assert all(isinstance(n, int) for counts in terms.values() for n in counts.values())
    assert all(
        n >= 0
        for tool, counts in terms.items()
        for key, n in counts.items()
        if key not in ("positions", "transposed", "unhooked")
    )
    peer_counts(report)  # a term no tool describes is an error there
    if len(row.output_shape) == 3:
        for axis in (0, 1):
            assert isinstance(kind.size_step(layer, axis), SizeStep)


def _refusal(entry: dict[str, Any], shape: list[int]) -> str | None:
    try:
        analyze(spec_of([entry], shape))
    except SpecError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", KINDS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_every_kind_takes_the_input_it_declares(name: str, data: st.DataObject) -> None:
    """``input`` says what the rule accepts: the rule refuses the other rank, and only that."""
    kind = KINDS[name]
    entry = data.draw(layer_strategy(kind, 4))
    for shape, takes in (([4, 9, 9], kind.input != "flat"), ([6], kind.input != "planar")):
        refused = _refusal(entry, shape) or ""
        about_rank = f"{name} needs a C x H x W input" in refused or f"{name} needs a flat input" in refused
        assert about_rank != takes, refused


@pytest.mark.torch
@pytest.mark.parametrize("name", KINDS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(data=st.data())
def test_every_kind_reads_back_the_module_it_builds(name: str, data: st.DataObject) -> None:
    """``from_torch`` inverts ``torch_module``: the entry read from a drawn layer's module builds the same module
    (a fused activation is a container of two, which the importer traces through)."""
    torch = pytest.importorskip("torch")
    from cnncalc.importer import entry_for

    kind = KINDS[name]
    entry = data.draw(layer_strategy(kind, 4))
    assume(entry.get("activation") is None)
    try:
        report = analyze(spec_of([entry], _input(kind)))
    except SpecError:
        assume(False)
    row = report.rows[1]
    module = kind.torch_module(row.layer, row.input_shape)
    found = entry_for(module)
    assert found is not None, f"{name}: no kind reads back {module!r}"
    again = kind_of(LAYER_MODELS[found["kind"]].model_validate(found))
    rebuilt = again.torch_module(LAYER_MODELS[found["kind"]].model_validate(found), row.input_shape)
    assert type(rebuilt) is type(module)
    rebuilt.load_state_dict(module.state_dict())  # the same tensors under the same names
    x = torch.randn(2, *row.input_shape)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x.clone()), module.eval()(x.clone()))
