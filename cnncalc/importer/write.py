"""Step 7 of an import: entries as a person writes them, and the spec's data.

Fields at their kind's default are left out, a pair of equal numbers is written as one, a setting most of a kind's
rows share moves into ``defaults``, and an entry of only its kind is written as the kind's name. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..layers import KINDS
from .blocks import compact, fold_blocks


def _bare(entry: dict[str, Any]) -> Any:
    """An entry of only its kind written as the kind's name (``- flatten``), as the shipped specs do."""
    if set(entry) == {"kind"} and entry["kind"] in KINDS:
        return entry["kind"]
    out = dict(entry)
    for key in ("body", "layers"):
        if key in out:
            out[key] = [_bare(e) for e in out[key]]
    for key in ("shortcut", "branches"):
        if isinstance(out.get(key), dict):
            out[key] = {k: [_bare(e) for e in b] for k, b in out[key].items()}
    return out


def _walk(entry: dict[str, Any], leaf: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """``leaf`` applied to every layer entry of ``entry`` (itself, or those a structure holds)."""
    if entry.get("kind") not in KINDS:
        out = dict(entry)
        for key in ("body", "layers"):
            if key in out:
                out[key] = [_walk(e, leaf) for e in out[key]]
        for key in ("shortcut", "branches"):
            if isinstance(out.get(key), dict):
                out[key] = {k: [_walk(e, leaf) for e in b] for k, b in out[key].items()}
        return out
    return leaf(entry)


def _layers(entry: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    _walk(entry, lambda e: found.append(e) or e)  # type: ignore[func-returns-value]
    return found


def _clean(entry: dict[str, Any]) -> dict[str, Any]:
    """Fields at their defaults left out; a pair (or four sides) of one number written as that number."""
    model = KINDS[entry["kind"]].model
    out: dict[str, Any] = {}
    for key, value in entry.items():
        info = model.model_fields.get(key) or model.model_fields.get(f"{key}_")
        if key not in ("kind", "name") and info is not None and _at_default(value, info.default):
            continue
        out[key] = compact(value)
    return out


def _at_default(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        whole = isinstance(value, int) and not isinstance(value, bool) and all(d == value for d in default)
        return whole or (isinstance(value, list | tuple) and list(value) == list(default))
    if isinstance(default, bool) or isinstance(value, bool):
        return value is default
    return bool(value == default)


#: A value is lifted into ``defaults`` when it holds for more than this share of a kind's rows (at least 3).
_MAJORITY = 0.5


def _lift_defaults(layers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per kind, the field values most of its rows share (torchvision's ``bias=False`` before batch norm, a
    family's batch norm ``eps``): written once in ``defaults``, and only where a row differs."""
    rows = [e for top in layers for e in _layers(top)]
    lifted: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(e["kind"] for e in rows):
        mine = [e for e in rows if e["kind"] == kind]
        if len(mine) < 3:
            continue
        for key in dict.fromkeys(k for e in mine for k in e if k not in ("kind", "name")):
            if not all(isinstance(e.get(key), bool | float | type(None)) for e in mine):
                continue  # settings (true/false, eps, momentum), never sizes: those a reader looks for in each row
            values = [repr(e.get(key)) for e in mine]
            best = max(dict.fromkeys(values), key=values.count)
            if best != "None" and values.count(best) > _MAJORITY * len(mine):
                lifted.setdefault(kind, {})[key] = next(e[key] for e in mine if repr(e.get(key)) == best)
    return lifted


def _leave_out(entry: dict[str, Any], defaults: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A row without the values ``defaults`` gives it, and with the kind's own default where it differs."""
    preset = defaults.get(entry["kind"], {})
    out = {k: v for k, v in entry.items() if k not in preset or repr(preset[k]) != repr(v)}
    model = KINDS[entry["kind"]].model
    for key in preset:
        if key not in entry:
            info = model.model_fields.get(key) or model.model_fields[f"{key}_"]
            default = info.default
            out[key] = list(default) if isinstance(default, tuple) else default
    return out


def spec_data(
    layers: list[dict[str, Any]], name: str, shape: tuple[int, ...], outputs: list[str] | None, notes: list[str]
) -> dict[str, Any]:
    """The spec's data from the named rows: repeated modules folded into blocks, fields at their defaults left out,
    the settings most rows of a kind share lifted into ``defaults``."""
    blocks, layers = fold_blocks(layers)
    layers = [_walk(e, _clean) for e in layers]
    for block in blocks.values():
        block["layers"] = [_walk(e, _clean) for e in block["layers"]]
        if "args" in block:
            block["args"] = {k: compact(v) for k, v in block["args"].items()}
    defaults = _lift_defaults(layers + [e for b in blocks.values() for e in b["layers"]])
    data: dict[str, Any] = {"name": name, "input": list(shape)}
    if notes:
        data["notes"] = notes
    if defaults:
        data["defaults"] = defaults
        layers = [_walk(e, lambda x: _leave_out(x, defaults)) for e in layers]
        for block in blocks.values():
            block["layers"] = [_walk(e, lambda x: _leave_out(x, defaults)) for e in block["layers"]]
    if blocks:
        data["blocks"] = {n: {**b, "layers": [_bare(e) for e in b["layers"]]} for n, b in blocks.items()}
    data["layers"] = [_bare(e) for e in layers]
    if outputs is not None:
        data["outputs"] = outputs
    return data
