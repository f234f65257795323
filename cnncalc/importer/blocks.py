"""Step 6 of an import: repeated modules as blocks, the values that differ between their uses as arguments.

Submodules of one class (not torch's containers) whose entries have the same structure (the same kinds, names and
fields, the values aside) and which occur at least twice become one block, named after the class; each value that
differs between them is an argument, written as a person writes it where the uses prove it (``$in_channels``,
``${width * 4}``), and a stage of uses of one block named 0 ... n-1, equal but for the first, one ``use`` with
``repeat``. Torch-free.
"""

from __future__ import annotations

import re
from typing import Any

from ..spec import RESERVED_ARGS
from .graph import CLASS, IN


def _skeleton(entry: Any) -> Any:
    """An entry with its values left out: its kinds, names and keys (what a block's uses share)."""
    if isinstance(entry, dict):
        return tuple(
            (k, (tuple(v) if isinstance(v, list) else v) if k in ("kind", "name", "from", CLASS) else _skeleton(v))
            for k, v in entry.items()
            if k != IN
        )
    if isinstance(entry, list) and any(isinstance(v, dict | list) for v in entry):
        return tuple(_skeleton(v) for v in entry)
    return None


def _values(entry: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every value of an entry that a block argument may stand for, by where it is (kinds and names are not)."""
    out: dict[tuple[str, ...], Any] = {}
    if isinstance(entry, dict):
        label = str(entry.get("name", entry.get("kind", "")))
        for k, v in entry.items():
            if k not in ("kind", "name", "from", CLASS, IN):
                out.update(_values(v, (*path, label, k)))
    elif isinstance(entry, list) and any(isinstance(v, dict | list) for v in entry):
        for i, v in enumerate(entry):
            out.update(_values(v, (*path, str(i))))
    else:
        out[path] = entry
    return out


def _substitute(entry: Any, exprs: dict[tuple[str, ...], str], path: tuple[str, ...] = ()) -> Any:
    """An entry with each value at a path of ``exprs`` written as that argument or expression."""
    if isinstance(entry, dict):
        label = str(entry.get("name", entry.get("kind", "")))
        return {
            k: v if k in ("kind", "name", "from") else _substitute(v, exprs, (*path, label, k))
            for k, v in entry.items()
            if k not in (CLASS, IN)
        }
    if isinstance(entry, list) and any(isinstance(v, dict | list) for v in entry):
        return [_substitute(v, exprs, (*path, str(i))) for i, v in enumerate(entry)]
    return exprs.get(path, entry)


#: The fields whose values a block's arguments relate (channel counts): ``conv3_out`` is ``${conv1_out * 4}``.
_SIZES = ("out", "groups")
#: The fields whose one argument in a block is named as the field.
_SHORT = ("out", "kernel", "stride", "padding", "dilation", "groups")


def _reads(expression: str, name: str) -> bool:
    """Whether an expression written by :func:`_related` reads the argument ``name``."""
    return re.search(rf"(?<=[${{]){name}\b", expression) is not None


def _related(values: list[Any], bases: list[tuple[str, list[Any]]]) -> str | None:
    """``values`` (one per use of a block) as an expression of a base's: equal (``$in_channels``), a whole multiple
    (``${conv1_out * 4}``) or a whole part (``${in_channels // 2}``) of it in every use, the first base that holds."""

    def whole(xs: list[Any]) -> bool:
        return all(type(x) is int and x > 0 for x in xs)

    if not whole(values):
        return None
    for name, base in bases:
        if not whole(base):
            continue
        if values == base:
            return f"${name}"
        if all(x % b == 0 for x, b in zip(values, base, strict=True)):
            (k, *more) = {x // b for x, b in zip(values, base, strict=True)}
            if not more:
                return f"${{{name} * {k}}}"
        if all(b % x == 0 for x, b in zip(values, base, strict=True)):
            (k, *more) = {b // x for x, b in zip(values, base, strict=True)}
            if not more:
                return f"${{{name} // {k}}}"
    return None


def _arg_name(path: tuple[str, ...], taken: set[str]) -> str:
    """A block argument's name from where its value is: the last row's name and the field (``conv2_stride``)."""
    parts = [p for p in path if p not in ("layers", "body", "branches") and not p.isdigit()][-2:]
    base = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(parts)) or "arg"
    base = base if base[0].isalpha() else f"a{base}"
    name, n = base, 1
    while name in taken or name in ("use", "name", "repeat", "first", "when", "in_channels"):
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def fold_blocks(layers: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Submodules of one class with the same structure, used at least twice, as one block with arguments for
    the values that differ (each argument's default the most common value), and a stage of uses of one block
    named 0 ... n-1, equal but for the first, as one ``use`` with ``repeat`` (and ``first``)."""
    found: dict[Any, list[dict[str, Any]]] = {}

    def collect(entry: Any) -> None:
        if not isinstance(entry, dict):
            return
        if entry.get("kind") == "sequential" and CLASS in entry:
            found.setdefault((entry[CLASS], _skeleton(entry["layers"])), []).append(entry)
        for v in entry.values():
            for e in v if isinstance(v, list) else v.values() if isinstance(v, dict) else []:
                if isinstance(e, list):
                    for x in e:
                        collect(x)
                else:
                    collect(e)

    for e in layers:
        collect(e)
    blocks: dict[str, Any] = {}
    uses: dict[int, dict[str, Any]] = {}  # id of a member entry -> its use
    for members in found.values():
        cls = members[0][CLASS]
        if len(members) < 2 or cls in ("Sequential", "ModuleList", "ModuleDict"):
            continue  # torch's containers are lists, not blocks a person names
        values = [_values(m["layers"]) for m in members]
        differing = [p for p in values[0] if any(repr(v[p]) != repr(values[0][p]) for v in values)]
        taken: set[str] = set()
        # a channel count that is another's, or the block's input's, times or over a whole number in every use is
        # that expression (a bottleneck's conv3_out is ${conv1_out * 4}); the others are arguments
        ins = [m.get(IN) for m in members]
        args: dict[tuple[str, ...], str] = {}
        exprs: dict[tuple[str, ...], str] = {}
        for p in differing:
            column = [v[p] for v in values]
            bases = [("in_channels", ins)] + [(a, [v[q] for v in values]) for q, a in args.items() if q[-1] in _SIZES]
            related = _related(column, bases) if p[-1] in _SIZES else None
            if related is not None:
                exprs[p] = related
            else:
                args[p] = _arg_name(p, taken)
        # the one channel count that others are written in is the block's width (a bottleneck's conv1_out), and
        # the one argument of a field is named as the field (stride, not conv2_stride)
        bases = [p for p, a in args.items() if p[-1] == "out" and any(_reads(e, a) for e in exprs.values())]
        fields = [p[-1] for p in args]
        for p, a in list(args.items()):
            short = "width" if bases == [p] else p[-1] if fields.count(p[-1]) == 1 and p[-1] in _SHORT else a
            if short != a and short not in taken and short not in RESERVED_ARGS:
                taken.add(short)
                args[p] = short
                exprs = {q: re.sub(rf"(?<=[${{]){a}\b", short, e) for q, e in exprs.items()}
        defaults = {}
        for p, a in args.items():
            seen = [repr(v[p]) for v in values]
            defaults[a] = next(v[p] for v in values if repr(v[p]) == max(dict.fromkeys(seen), key=seen.count))
        name = _snake(cls)
        n = 1
        while name in blocks:
            n += 1
            name = f"{_snake(cls)}_{n}"
        rows = _substitute(members[0]["layers"], exprs | {p: f"${a}" for p, a in args.items()})
        blocks[name] = {"args": defaults, "layers": rows} if args else {"layers": rows}
        for m, v in zip(members, values, strict=True):
            own = {a: compact(v[p]) for p, a in args.items() if repr(v[p]) != repr(defaults[a])}
            reads = {"from": m["from"]} if "from" in m else {}
            uses[id(m)] = {"use": name, "name": m["name"], **reads, **own}

    def rewrite(entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        if id(entry) in uses:
            return uses[id(entry)]
        out: dict[str, Any] = {}
        for k, v in entry.items():
            if k in (CLASS, IN):
                continue
            if isinstance(v, list):
                out[k] = [rewrite(e) for e in v]
            elif isinstance(v, dict) and k in ("branches", "shortcut"):
                out[k] = {n: [rewrite(e) for e in b] for n, b in v.items()}
            else:
                out[k] = v
        if out.get("kind") == "sequential":
            return _repeated(out, blocks)
        return out

    return blocks, [rewrite(e) for e in layers]


def _repeated(stage: dict[str, Any], blocks: dict[str, Any]) -> dict[str, Any]:
    """A stage of uses of one block, named 0 ... n-1 and equal but for the first, as one use with ``repeat``."""
    inner = stage["layers"]
    if len(inner) < 2 or not all(isinstance(e, dict) and "use" in e for e in inner):
        return stage
    if [e["name"] for e in inner] != [str(i) for i in range(len(inner))] or len({e["use"] for e in inner}) != 1:
        return stage
    if any(k in e for e in inner for k in ("repeat", "first", "when")) or any("from" in e for e in inner[1:]):
        return stage  # a stage of stages, or uses that do not each read the one before (HRNet's branches)
    rest = [{k: v for k, v in e.items() if k != "name"} for e in inner[1:]]
    if any(repr(r) != repr(rest[0]) for r in rest):
        return stage
    first = {k: v for k, v in inner[0].items() if k not in ("name", "use") and repr(rest[0].get(k)) != repr(v)}
    block_args = {k: v for k, v in rest[0].items() if k != "use"}
    # an argument the later uses set but the first leaves at the block's default: the first says the default
    defaults = blocks[inner[0]["use"]].get("args", {})
    first |= {k: compact(defaults[k]) for k in block_args if k not in inner[0]}
    reads = {"from": stage["from"]} if "from" in stage else {}
    use: dict[str, Any] = {"use": inner[0]["use"], "name": stage["name"], **reads, "repeat": len(inner), **block_args}
    if first:
        use["first"] = first
    return use


def compact(value: Any) -> Any:
    """A pair (or four sides) of one number as that number."""
    if isinstance(value, list) and len(value) in (2, 4) and len(set(value)) == 1 and isinstance(value[0], int):
        return value[0]
    return value
