"""The spec DSL: pydantic models of a network, and loading them from YAML.

A spec is a name, an input shape and a list of entries: layers (a mapping with
a ``kind``), the structures ``residual``, ``concat``, ``split``, ``multiply`` and ``sequential`` that
hold entries of their own, and uses of the spec's reusable ``blocks``. Each layer
kind's model lives with the rest of the kind in :mod:`cnncalc.layers`; their field
types (sizes normalised, once, to ``(height, width)``) in :mod:`cnncalc.fields`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeAlias, TypeVar, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, PydanticKnownError, core_schema

from . import safe_text
from .errors import MAX_PROBLEMS, Path, Problem, SpecError, did_you_mean
from .fields import CONFIG, MAX_REPEAT, Activation, Before, FromRefs, Layer, LayerName, Pos, RowRef, describe
from .layers import KINDS
from .shapes import parse_shape
from .source import SourceMap, decode, load_yaml, read_file

#: Every layer model is a Layer (its kind's model in cnncalc.layers); so are the structures (name, repeat, when).
AnyLayer: TypeAlias = Layer


def _entry_tag(value: Any) -> str | None:
    """Which model an entry is: its ``kind``, or ``use`` for a block use."""
    if isinstance(value, dict):
        if "use" in value:
            return "use"
        kind = value.get("kind")
        return kind if isinstance(kind, str) else None
    if isinstance(value, Use):
        return "use"
    return getattr(value, "kind", None)


def _validate_entry(value: Any) -> Any:
    tag = _entry_tag(value)
    if tag is None:
        raise PydanticKnownError("union_tag_not_found", {"discriminator": "_entry_tag()"})
    if tag not in ENTRY_MODELS:
        expected = ", ".join(f"'{k}'" for k in ENTRY_MODELS)
        raise PydanticKnownError(
            "union_tag_invalid", {"discriminator": "_entry_tag()", "tag": tag, "expected_tags": expected}
        )
    return _kind_adapter(tag).validate_python(value)


class _OneKind(NamedTuple):
    """A discriminated union of one kind: its errors name the kind where the union of all would."""

    tag: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.tagged_union_schema({self.tag: handler(source)}, discriminator=_entry_tag)


@cache
def _kind_adapter(tag: str) -> TypeAdapter[Any]:
    # typed Any: mypy with pydantic 2.14 refuses a runtime-built Annotated as a TypeForm, 2.13 accepts it
    form: Any = Annotated[ENTRY_MODELS[tag], _OneKind(tag)]
    return TypeAdapter(form)


class _ByKind:
    """An entry, validated by the model of its own kind only.

    A discriminated union of every kind builds all their validators (~60 ms) before the first spec
    is read; this builds each on first use, with the same errors at the same places
    (``layers.3.conv2d.stride``). Its JSON schema is the union, defined once by :func:`json_schema`.
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(_validate_entry)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"$ref": "#/$defs/Entry"}


if TYPE_CHECKING:
    Entry: TypeAlias = "AnyEntry"
else:
    Entry = Annotated[Any, _ByKind()]


def _non_empty(entries: tuple[Any, ...]) -> tuple[Any, ...]:
    if not entries:
        raise ValueError("needs at least one entry")
    return entries


Entries = Annotated[tuple[Entry, ...], AfterValidator(_non_empty)]


M = TypeVar("M", bound=BaseModel)


class _Models(Mapping[str, type[M]]):
    """Models by tag: every layer kind's, in the registry's order (made with its family's module when first
    asked for, cnncalc.layers), then the ones given."""

    def __init__(self, given: Mapping[str, type[M]]) -> None:
        self._given = given

    def __getitem__(self, tag: str) -> type[M]:
        if tag in self._given:
            return self._given[tag]
        return cast("type[M]", KINDS[tag].model)  # KeyError for an unknown tag

    def __contains__(self, tag: object) -> bool:
        return tag in self._given or tag in KINDS

    def __iter__(self) -> Iterator[str]:
        yield from KINDS
        yield from self._given

    def __len__(self) -> int:
        return len(KINDS) + len(self._given)


#: Every layer kind's name, in the registry's order (cnncalc.layers).
LAYER_KINDS: tuple[str, ...] = tuple(KINDS)
#: Every layer kind's model, by its ``kind`` name.
LAYER_MODELS: Mapping[str, type[Layer]] = _Models({})

# --- structures and blocks --------------------------------------------------------

Name = Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
#: A branch's or a named shortcut's name: also a whole number, as nn.Sequential and nn.ModuleList name their parts
#: (DeepLab's ASPP concatenates ``convs.0`` ... ``convs.4``); quoted in YAML (``"0": [...]``).
PartName = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_]{0,63}$")]
#: Names that block arguments may not take: they mean something else in a use or an expression.
RESERVED_ARGS = frozenset({"use", "name", "repeat", "first", "when", "from", "in_channels", "index"})


def _some_branch(branches: Any) -> Any:
    if not branches:
        raise ValueError("a concat needs at least one branch")
    return branches


def _some_part(branches: Any) -> Any:
    if not branches:
        raise ValueError("a split needs at least one branch")
    return branches


def _shape_tag(value: Any) -> str:
    # the labels are not keys (not identifiers), so that error paths skip them
    return "<word>" if isinstance(value, str) else "<mapping>" if isinstance(value, dict) else "<list>"


ShortcutWord = Literal["identity", "projection", "auto", "optional"]


def _one_name(shortcut: dict[str, Any]) -> dict[str, Any]:
    if len(shortcut) != 1:
        raise ValueError(f"a named shortcut is one name -> its entries, got {len(shortcut)} names")
    return shortcut


class Residual(Layer):
    """``body(x) + shortcut(x)``, then an optional activation (ResNet's and MobileNetV2's blocks).

    shortcut: ``identity`` (the shapes must match), ``projection`` (1x1 conv with the
    body's stride, then batch norm: torchvision's ``downsample``), ``auto`` (identity
    where the shapes match, else projection), ``optional`` (identity where they match,
    else no shortcut and no add), or a list of entries of its own.
    """

    kind: Literal["residual"]
    body: Entries
    shortcut: Annotated[
        Annotated[ShortcutWord, Tag("<word>")]
        | Annotated[Entries, Tag("<list>")]
        | Annotated[Annotated[dict[PartName, Entries], AfterValidator(_one_name)], Tag("<mapping>")],
        Discriminator(_shape_tag),
    ] = "identity"
    activation: Activation | None = Field(None, description="Applied after the add (ResNet: relu).")
    inplace: StrictBool = Field(False, description="Add into the body's output (torchvision's `out += identity`).")


class Concat(Layer):
    """Parallel branches on the same input, joined along the channels (Inception); an empty branch passes it on."""

    kind: Literal["concat"]
    branches: (
        Annotated[
            Annotated[tuple[tuple[Entry, ...], ...], Tag("<list>")]
            | Annotated[dict[PartName, tuple[Entry, ...]], Tag("<mapping>")],
            Discriminator(_shape_tag),
            AfterValidator(_some_branch),
        ]
        | None
    ) = Field(
        None,
        description="A list of entry lists (named branch1, branch2, ...) or a mapping name -> entries; [] passes on."
        " Without branches, the rows named in 'from' are joined.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Concat:
        _join_form(self.kind, self.branches is not None, self.from_, "branches")
        return self


class Split(Layer):
    """The input's channels cut into consecutive parts, one per branch, each through its branch, joined along the
    channels (ShuffleNetV2's ``x.chunk(2, dim=1)``; an empty branch passes its part on unchanged)."""

    kind: Literal["split"]
    branches: Annotated[
        Annotated[tuple[tuple[Entry, ...], ...], Tag("<list>")]
        | Annotated[dict[PartName, tuple[Entry, ...]], Tag("<mapping>")],
        Discriminator(_shape_tag),
        AfterValidator(_some_part),
    ] = Field(
        description="A list of entry lists (named branch1, branch2, ...) or a mapping name -> entries; [] passes on."
    )
    sections: tuple[Pos, ...] | None = Field(
        None, description="Channels of each part, in branch order; none: equal parts (the branches divide C)."
    )


class Multiply(Layer):
    """``x * body(x)``: the body's output, C x 1 x 1 or x's own shape, scales the input (squeeze-and-excitation);
    without a body, the product of the two rows named in ``from``."""

    kind: Literal["multiply"]
    body: Entries | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Multiply:
        _join_form(self.kind, self.body is not None, self.from_, "body")
        return self


class Add(Layer):
    """The sum of the rows named in ``from`` (a feature pyramid's top-down path), then an optional activation."""

    kind: Literal["add"]
    activation: Activation | None = Field(None, description="Applied after the add.")
    inplace: StrictBool = Field(False, description="Add into the first input (PyTorch's `a += b`).")
    stack: StrictBool = Field(
        False,
        description="Summed as torch.stack(inputs).sum(0) (smp's FPN): the stack, a copy of every input, is freed"
        " within the row.",
    )

    @model_validator(mode="after")
    def _one_form(self) -> Add:
        _join_form(self.kind, False, self.from_, "from")
        return self


def _join_form(kind: str, nested: bool, refs: tuple[str, ...] | None, key: str) -> None:
    """A join reads its own branches (a body), or the rows named in ``from``: one of the two."""
    joined = refs is not None and len(refs) > 1
    if nested and joined:
        raise ValueError(f"a {kind} joins its {key} or the rows named in 'from', not both")
    if not nested and not joined:
        what = f"its {key}, or " if key != "from" else ""
        raise ValueError(f"a {kind} needs {what}at least two rows named in 'from'")


class Sequential(Layer):
    """Entries in order; with a ``name``, a block of its own in the summary."""

    kind: Literal["sequential"]
    layers: Entries


class Use(BaseModel):
    """A use of one of the spec's ``blocks``; every other key is one of the block's arguments."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)

    use: Name = Field(description="The block's name.")
    name: LayerName | None = None
    repeat: Annotated[StrictInt, Field(ge=1, le=MAX_REPEAT)] = Field(
        1, description="Use the block N times in a row, as name.0 ... name.N-1."
    )
    first: dict[str, Any] | None = Field(None, description="Arguments that differ for the first of the repeats.")
    when: StrictBool = True
    from_: FromRefs | None = Field(None, alias="from", description="The row or block whose output the block reads.")

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


STRUCTURE_MODELS: dict[str, type[Layer]] = {
    "residual": Residual,
    "concat": Concat,
    "split": Split,
    "multiply": Multiply,
    "add": Add,
    "sequential": Sequential,
}
#: What may stand in a list of layers, by the tag that picks it.
ENTRY_MODELS: Mapping[str, type[BaseModel]] = _Models({**STRUCTURE_MODELS, "use": Use})
ENTRY_KINDS: tuple[str, ...] = (*LAYER_KINDS, *STRUCTURE_MODELS)

AnyEntry: TypeAlias = AnyLayer | Residual | Concat | Split | Multiply | Add | Sequential | Use


@cache
def _entry_adapter() -> TypeAdapter[AnyEntry]:
    return TypeAdapter(Entry)


def validate_entry(data: Any) -> AnyEntry:
    """One entry (a block's, once its arguments are filled in); raises pydantic's ValidationError."""
    return _entry_adapter().validate_python(data)


class Block(BaseModel):
    """A reusable piece of network: arguments with their defaults, and entries that use them."""

    model_config = CONFIG

    args: dict[Name, Any] = Field(
        default_factory=dict, description="Argument -> default value; null makes the argument required."
    )
    layers: Annotated[tuple[Any, ...], AfterValidator(_non_empty)] = Field(
        description="Entries, checked at each use once $arg and ${expression} are filled in."
    )

    @field_validator("args")
    @classmethod
    def _not_reserved(cls, args: dict[str, Any]) -> dict[str, Any]:
        clash = sorted(set(args) & RESERVED_ARGS)
        if clash:
            raise ValueError(f"'{clash[0]}' cannot be an argument name (reserved: {', '.join(sorted(RESERVED_ARGS))})")
        return args


# --- defaults ----------------------------------------------------------------------


#: The fields of every layer that ``defaults`` may not set (they name or place one entry), by name and by key.
_PER_ENTRY = ("kind", "name", "repeat", "when", "from_")
_PER_ENTRY_KEYS = frozenset({"kind", "name", "repeat", "when", "from"})


@cache
def defaults_model(kind: str) -> type[BaseModel]:
    """A model of the kind's fields, all optional: what ``defaults`` may set for it (made on first use)."""
    model = LAYER_MODELS[kind]
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in _PER_ENTRY:
            continue
        annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[name] = (annotation | None, Field(None, alias=info.alias))
    return create_model(f"{model.__name__}Defaults", __config__=CONFIG, **fields)


class _DefaultsOf(NamedTuple):
    """The ``defaults`` of one kind, validated by its model, made and built on first use."""

    kind: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate)

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"anyOf": [{"$ref": f"#/$defs/{defaults_model(self.kind).__name__}"}, {"type": "null"}]}

    def validate(self, value: Any) -> Any:
        """Valid defaults as they were given (nulls left out); invalid ones raise, located by the kind's
        defaults model. Valid ones are checked by the kind's own validator, which the layers of the kind
        need anyway, where only the fields each layer must give itself may be missing: the defaults model
        (built as the kind's again) is made for the errors only."""
        if value is None:
            return None
        if isinstance(value, dict) and not value.keys() & _PER_ENTRY_KEYS:
            given = {k: v for k, v in value.items() if v is not None}
            try:
                _kind_adapter(self.kind).validate_python({**given, "kind": self.kind})
            except ValidationError as exc:
                errors = exc.errors(include_url=False, include_context=False, include_input=False)
                if all(e["type"] == "missing" and len(e["loc"]) == 2 for e in errors):  # (the kind, a field)
                    return given
            else:
                return given
        return defaults_model(self.kind).model_validate(value)


Defaults = create_model(  # type: ignore[call-overload]
    "Defaults",
    __config__=CONFIG,
    **{kind: (Annotated[BaseModel | None, _DefaultsOf(kind)], None) for kind in LAYER_KINDS},
)


def prepare(entry: Any, defaults: Mapping[str, Any]) -> Any:
    """Raw entry data made ready to validate: ``- relu`` -> ``{kind: relu}``, ``defaults`` filled in, recursively."""
    if isinstance(entry, str):
        entry = {"kind": entry}
    if not isinstance(entry, dict) or "use" in entry:
        return entry
    out = dict(entry)
    for key in ("body", "layers", "shortcut"):
        if isinstance(out.get(key), list):
            out[key] = [prepare(e, defaults) for e in out[key]]
    shortcut = out.get("shortcut")
    if isinstance(shortcut, dict):
        out["shortcut"] = {
            k: [prepare(e, defaults) for e in b] if isinstance(b, list) else b for k, b in shortcut.items()
        }
    branches = out.get("branches")
    if isinstance(branches, list):
        out["branches"] = [[prepare(e, defaults) for e in b] if isinstance(b, list) else b for b in branches]
    elif isinstance(branches, dict):
        out["branches"] = {
            k: [prepare(e, defaults) for e in b] if isinstance(b, list) else b for k, b in branches.items()
        }
    # a layer kind's defaults, filled in after the entry's own entries are: what they hold is not read as
    # entries (defaults naming a structure, or holding 'layers', are errors, not a loop that never ends)
    kind = out.get("kind")
    preset = defaults.get(kind) if isinstance(kind, str) and kind in LAYER_MODELS else None
    if isinstance(preset, dict):
        out = {**{k: v for k, v in preset.items() if v is not None}, **out}
    return out


def _shape(value: Any) -> Any:
    """``"3x224x224"`` -> ``(3, 224, 224)``; lists become tuples of 3 (C, H, W) or 1 (N)."""
    if isinstance(value, str):
        value = list(parse_shape(value))
    if isinstance(value, list | tuple):
        if len(value) not in (1, 3):
            raise ValueError(f"expected C x H x W such as [3, 224, 224] or [N], got {safe_text.value(list(value))}")
        return tuple(value)
    return value


Shape = Annotated[tuple[Pos, ...], Before(_shape, tuple[Pos, Pos, Pos] | tuple[Pos] | str)]


class Spec(BaseModel):
    """A network: its name, its input shape, its reusable blocks and its layers, in order."""

    model_config = CONFIG

    name: StrictStr = Field(min_length=1)
    input: Shape = Field(description="[C, H, W] for images, or [N] for a flat input.")
    notes: tuple[StrictStr, ...] = Field((), description="Printed under the summary.")
    defaults: Defaults = Field(
        default_factory=Defaults, description="Per-kind field values used where a layer omits them."
    )
    blocks: dict[Name, Block] = Field(default_factory=dict, description="Reusable blocks, used as {use: name, ...}.")
    layers: Annotated[tuple[Entry, ...], AfterValidator(_non_empty)]
    outputs: Annotated[tuple[RowRef, ...], Field(min_length=1)] | None = Field(
        None, description="The rows or blocks the network returns, in order; none: its last row."
    )

    _source: SourceMap | None = PrivateAttr(None)
    _raw: Any = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _prepare(cls, data: Any) -> Any:
        """Bare kinds become ``{kind: ...}`` and ``defaults`` fill in the layers (blocks: at each use)."""
        if not isinstance(data, dict):
            return data
        if isinstance(data.get("notes"), str):
            data = {**data, "notes": [data["notes"]]}
        if isinstance(data.get("layers"), list):
            defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
            data = {**data, "layers": [prepare(e, defaults) for e in data["layers"]]}
        return data

    @property
    def source(self) -> SourceMap | None:
        """Where this spec's values stand in its YAML file, when it was loaded from one."""
        return self._source

    def to_yaml(self) -> str:
        """The spec as YAML a person would write: as it was given when it was read from data (blocks and
        expressions kept), else from its models; loading the text back gives the same spec."""
        data = self._raw if isinstance(self._raw, dict) else _plain(self)
        return dump_yaml(data)

    @property
    def raw_defaults(self) -> dict[str, Any]:
        """``defaults`` as plain data, to fill in block entries at each use."""
        kinds = {kind: getattr(self.defaults, kind) for kind in LAYER_KINDS}
        return {
            k: dict(v) if isinstance(v, dict) else v.model_dump(exclude_none=True, by_alias=True)
            for k, v in kinds.items()
            if v is not None
        }


# --- writing a spec ---------------------------------------------------------------------

#: Keys of a spec written first, in this order; the rest follow as they come.
_SPEC_ORDER = ("name", "input", "notes", "defaults", "blocks", "layers")
#: Width up to which a mapping without entries of its own is written on one line (flow style).
_FLOW_WIDTH = 120


def _plain(model: Any) -> Any:
    """A model as plain data: fields at their defaults left out, aliases used, tuples as lists."""
    if isinstance(model, BaseModel):
        out: dict[str, Any] = {}
        for key, info in type(model).model_fields.items():
            value = getattr(model, key)
            if key != "kind" and (value == info.default or (info.is_required() is False and value == {})):
                continue
            plain = _plain(value)
            if plain == {} and not info.is_required():
                continue  # defaults none of whose kinds are set
            out[info.alias or key] = plain
        out.update({k: _plain(v) for k, v in (model.model_extra or {}).items()})
        return out
    if isinstance(model, dict):
        return {k: _plain(v) for k, v in model.items()}
    if isinstance(model, list | tuple):
        return [_plain(v) for v in model]
    return model


def _flow(value: Any) -> str:
    import yaml

    text: str = yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=2**30).strip()
    return text[1:-1]


def _holds_entries(value: Any) -> bool:
    """Whether a value holds entries (a list of mappings, at any depth): then it is written as a block."""
    if isinstance(value, dict):
        return any(_holds_entries(v) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, dict) or _holds_entries(v) for v in value)
    return False


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, v in value.items():
            head = f"{pad}{_flow(key)}:"
            nested = isinstance(v, dict) and any(isinstance(x, dict) for x in v.values())  # defaults: per kind
            if (
                isinstance(v, dict | list)
                and v
                and (nested or _holds_entries(v) or len(head) + len(_flow(v)) > _FLOW_WIDTH)
            ):
                lines.append(head)
                lines += _yaml_lines(v, indent + 2)
            else:
                lines.append(f"{head} {_flow(v)}")
        return lines
    for item in value:
        if isinstance(item, dict) and item and (_holds_entries(item) or len(pad) + len(_flow(item)) > _FLOW_WIDTH):
            inner = _yaml_lines(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines += inner[1:]
        else:
            lines.append(f"{pad}- {_flow(item)}")
    return lines


def dump_yaml(data: dict[str, Any]) -> str:
    """A spec's data as YAML in the shipped specs' style: small entries on one line, structures as blocks."""
    ordered = {k: data[k] for k in _SPEC_ORDER if k in data} | {k: v for k, v in data.items() if k not in _SPEC_ORDER}
    return "\n".join(_yaml_lines(ordered, 0)) + "\n"


# --- error messages ------------------------------------------------------------------

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


_NOWHERE = object()


def _clean(loc: Sequence[int | str], data: Any = _NOWHERE, at: int = 0) -> list[int | str]:
    """A pydantic error path without the labels that are not places in the file.

    Drops the tag of a tagged union (the entry's kind, right after its index) and
    pydantic's names for union branches ("<list>", "function-after[...]"). A part that
    is a key or an index of ``data`` (the validated data) is a place, whatever its
    spelling: ``kernel-size`` and ``my layers`` are kept as written. ``data`` stands at ``loc[at:]``.
    """
    out: list[int | str] = []
    node = data
    for i, part in enumerate(loc):
        if i >= at and _holds(node, part):
            node = node[part]
        elif isinstance(part, str) and (
            not _KEY.match(part) or (out and isinstance(out[-1], int) and part in ENTRY_MODELS)
        ):
            continue
        elif i >= at:
            node = _NOWHERE  # a key the data lacks (a missing field): nothing below it is in the data either
        out.append(part)
    return out


def _holds(node: Any, part: int | str) -> bool:
    """Whether ``part`` is a key of the mapping, or an index of the list, ``node``."""
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list | tuple) and isinstance(part, int) and 0 <= part < len(node)


def _owner(loc: Sequence[int | str]) -> str:
    """What holds the key at the end of ``loc``: 'conv2d', 'defaults for conv2d', 'block x', 'the spec'."""
    for i in range(len(loc) - 2, 0, -1):
        if isinstance(loc[i], str) and loc[i] in ENTRY_MODELS and isinstance(loc[i - 1], int):
            return str(loc[i])
    if len(loc) >= 3 and loc[0] == "defaults":
        return f"defaults for {loc[1]}"
    if len(loc) == 2 and loc[0] == "defaults":
        return "defaults"
    if len(loc) >= 3 and loc[0] == "blocks":
        return f"block '{loc[1]}'"
    if len(loc) == 2 and loc[0] == "blocks":
        return "blocks"
    return "the spec"


def _allowed_keys(loc: Sequence[int | str]) -> list[str]:
    """The keys allowed in the mapping that holds the last element of ``loc``."""
    model: type[BaseModel] | None = Spec
    previous: int | str | None = None
    for part in loc[:-1]:
        if isinstance(part, str) and part in ENTRY_MODELS and isinstance(previous, int):
            model = ENTRY_MODELS[part]
        elif model is Spec and part == "defaults":
            model = Defaults
        elif model is Defaults and isinstance(part, str) and part in LAYER_MODELS:
            model = defaults_model(part)
        elif model is Spec and part == "blocks":
            model = None
        elif model is None:
            model = Block
        previous = part
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _message(err: ErrorDetails, prefix: Path = (), path: Path = (), *, hints: bool = True) -> tuple[str, bool]:
    """Our wording of one pydantic error, and whether it is about a key (not a value).

    ``prefix``: where in the spec the validated data stands (a block's entry at ``blocks.b.layers.0``);
    ``path``: the error's place in the spec (see :func:`_clean`); ``hints``: whether to look for a
    "did you mean" (a fuzzy comparison with each name allowed).
    """
    close = did_you_mean if hints else lambda word, choices: ""
    typ, ctx = err["type"], err.get("ctx", {})
    loc = (*prefix, *err["loc"])
    field = safe_text.text(next((p for p in reversed(path) if isinstance(p, str)), ""))
    got = err.get("input")
    owner = _owner(loc)
    if typ == "extra_forbidden":
        allowed = _allowed_keys(loc)
        hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return f"unknown key '{field}' in {owner}{close(field, allowed)}{hint}", True
    if typ == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        hint = close(tag, ENTRY_KINDS)
        if hint == "" and close is did_you_mean:
            # no close match: say what there is (a 'use:' names a block, not a kind)
            hint = f"; the kinds: {', '.join(ENTRY_KINDS)} (or 'use:' for a block)"
        return f"unknown layer kind '{safe_text.text(tag)}'{hint}", False
    if typ == "union_tag_not_found":
        if isinstance(got, dict) and len(got) == 1 and next(iter(got)) in ENTRY_MODELS:
            k = safe_text.text(next(iter(got)))
            return f"a layer needs a 'kind': write {{kind: {k}, ...}} rather than '{k}: ...'", False
        if isinstance(got, dict) and "kind" in got:
            return f"kind: expected a layer kind name, got {describe(got['kind'])}", False
        if isinstance(got, dict):
            return f"a layer needs a 'kind' (one of: {', '.join(ENTRY_KINDS)}) or 'use: <block>'", False
        return f"expected a layer (a mapping with a 'kind', or a kind's name), got {describe(got)}", False
    if typ == "missing":
        return f"{owner} needs '{field}'", False
    if typ == "value_error":
        return f"{field}: {ctx.get('error', err['msg'])}", False
    if typ in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        return f"{field}: expected {expected}, got {safe_text.value(got)}", False
    if typ.startswith(("greater_than", "less_than")):
        return f"{field}: {err['msg'].replace('Input should be', 'must be')}, got {safe_text.value(got)}", False
    if typ in ("too_short", "too_long"):
        return f"{field}: {err['msg'].replace('Input should have', 'needs')}", False
    if typ == "string_pattern_mismatch":
        what = (
            "letters, digits, '_' and '-'" if field == "name" else "letters, digits and '_', not starting with a digit"
        )
        return f"{field}: '{safe_text.text(str(got))}' may use only {what} (at most 64)", False
    expected = err["msg"].replace("Input should be ", "expected ")
    return f"{field or owner}: {expected}, got {describe(got)}", False


def problems_from(exc: ValidationError, prefix: Path = (), data: Any = _NOWHERE) -> list[Problem]:
    """Pydantic's errors as our one-line problems (not yet located), under ``prefix``; ``data`` is what was validated.

    Only the first :data:`~cnncalc.errors.MAX_PROBLEMS` look for a "did you mean": a person reads those (the
    output stops there), and 50,000 unknown keys would cost a fuzzy comparison each.
    """
    out = []
    for i, err in enumerate(exc.errors(include_url=False)):
        path = tuple(_clean((*prefix, *err["loc"]), data, len(prefix)))
        message, about_key = _message(err, prefix, path, hints=i < MAX_PROBLEMS)
        out.append(Problem(message, path, at_key=about_key, schema=True))
    return out


def _entry_field_default(raw: Any, path: Path) -> Path | None:
    """Where ``defaults`` sets a field that a layer entry at ``path`` leaves out, if it does."""
    node, entry, rest = raw, None, path
    for i, part in enumerate(path):
        if isinstance(node, str) and node in LAYER_MODELS:
            entry, rest = {"kind": node}, path[i:]
            break
        kind = node.get("kind") if isinstance(node, dict) else None
        if isinstance(kind, str) and kind in LAYER_MODELS:  # defaults fill in a layer kind's fields only
            entry, rest = node, path[i:]
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
    if entry is None or not rest or not isinstance(rest[0], str) or rest[0] in entry:
        return None
    return ("defaults", entry["kind"], *rest)


def locate(
    spec: Spec | None,
    problems: Sequence[Problem],
    source: SourceMap | None = None,
    raw: Any = None,
    *,
    in_file_order: bool = True,
) -> list[Problem]:
    """Give problems their file:line:column, in file order (else as given: warnings in layer order), each place once.

    A value the schema refused that ``defaults`` filled in is located at the
    default; a bad default fails again in every layer it fills, and is reported
    once. Geometry problems stay at their layer.
    """
    source = source or (spec.source if spec is not None else None)
    raw = raw if raw is not None else (spec._raw if spec is not None else None)
    if source is None:
        return list(problems)
    located: dict[Any, Problem] = {}
    for problem in problems:
        default_path = _entry_field_default(raw, problem.path) if raw is not None and problem.schema else None
        shared = default_path is not None and default_path[:3] in source.values
        if default_path is not None and shared:
            problem = Problem(problem.message, default_path, at_key=problem.at_key)
        p = source.locate(problem, key=problem.at_key)
        # a default, or a block's entry, stands once in the file however often it is used: one line each
        once = shared or p.path[:1] in (("blocks",), ("defaults",))
        located.setdefault((p.line, p.column) if once else (p.line, p.column, p.message), p)
    found = list(located.values())
    return sorted(found, key=lambda p: (p.line or 0, p.column or 0)) if in_file_order else found


def parse_spec(data: Any, source: SourceMap | None = None) -> Spec:
    """Validate plain data (as YAML or JSON gives it) into a :class:`Spec`."""
    if not isinstance(data, dict):
        problem = Problem(f"a spec must be a mapping with 'name', 'input' and 'layers', got {describe(data)}")
        raise SpecError(source.locate(problem) if source else problem)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(locate(None, problems_from(exc, data=data), source, data)) from None
    spec._source = source
    spec._raw = data
    return spec


def load_spec(path: str | FsPath | None = None, *, text: str | None = None) -> Spec:
    """Load and validate a YAML spec from a file (or from ``text``).

    Raises :class:`SpecError` with located one-line problems.
    """
    file = str(path) if path is not None else None
    if text is None:
        if path is None:
            raise TypeError("load_spec needs a path or text")
        text = decode(read_file(path), file)
    data, smap = load_yaml(text, file)
    return parse_spec(data, smap)


def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a spec file, for editors and CI (``cnncalc schema``)."""
    from pydantic.json_schema import models_json_schema

    # every model at once: entries and each kind's defaults are validated lazily, so the spec's own schema
    # only refers to them (Entry, <Kind>Defaults)
    models: list[type[BaseModel]] = [Spec, *ENTRY_MODELS.values(), *(defaults_model(kind) for kind in LAYER_KINDS)]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template="#/$defs/{model}")
    defs = dict(sorted(top["$defs"].items()))
    schema = {"$defs": defs, **defs.pop("Spec")}
    props = schema["properties"]
    # one definition of an entry, with the shorthand the loader accepts everywhere: a bare kind name
    bare = {"type": "string", "enum": list(LAYER_KINDS), "description": "A layer whose fields all have defaults."}
    entry = {"oneOf": [{"$ref": f"#/$defs/{m.__name__}"} for m in ENTRY_MODELS.values()]}
    defs["Entry"] = {"anyOf": [entry, bare]}
    props["layers"]["minItems"] = 1
    for kind in LAYER_KINDS:  # a reference needs no title (pydantic gives a model's none)
        defs["Defaults"]["properties"][kind].pop("title")
    # any field may come from `defaults`, which a schema cannot follow: only `kind` is required here
    for model in (*LAYER_MODELS.values(), *STRUCTURE_MODELS.values()):
        defs[model.__name__]["required"] = ["kind"]
    props["notes"] = {"anyOf": [props["notes"], {"type": "string"}], "description": props["notes"]["description"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://cnncalc.dev/schema/cnncalc.schema.json",
        "title": "cnncalc spec",
        "description": "A CNN described for cnncalc: name, input shape, defaults, blocks and layers.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
