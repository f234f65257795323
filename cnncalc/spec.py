"""The spec DSL: pydantic models of a network, and loading them from YAML.

A spec is a name, an input shape and a list of layers, each a mapping with a
``kind``. Sizes given as one number or a pair are normalised here, once, to
``(height, width)`` tuples, so the engine never branches on int versus pair.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from .errors import Path, Problem, SpecError, did_you_mean
from .source import SourceMap, decode, load_yaml

#: The largest size, channel count or repeat a spec may hold; no real tensor is larger.
MAX_INT = 2**31 - 1
#: How often one layer may be repeated, and how many layers a spec may expand to.
MAX_REPEAT = 10_000
MAX_LAYERS = 100_000

Pos = Annotated[StrictInt, Field(ge=1, le=MAX_INT)]
NonNeg = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    return repr(value)


def _pair(value: Any) -> Any:
    """``3`` -> ``(3, 3)``; ``[3, 5]`` -> ``(3, 5)`` (height, width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2:
        return tuple(value)
    got = f"{len(value)} numbers" if isinstance(value, list | tuple) else _describe(value)
    raise ValueError(f"expected a number or a pair [height, width], got {got}")


def _padding(value: Any) -> Any:
    """Conv padding: a number, a pair, or the words 'same' / 'valid'."""
    if value in ("same", "valid"):
        return value
    try:
        pair = _pair(value)
    except ValueError:
        raise ValueError(
            f"expected a number, a pair [height, width], 'same' or 'valid', got {_describe(value)}"
        ) from None
    for n in pair:
        if isinstance(n, int) and not isinstance(n, bool) and not 0 <= n <= MAX_INT:
            raise ValueError(f"must be between 0 and {MAX_INT}, got {n}")
    return pair


def _pad4(value: Any) -> Any:
    """Zero padding: ``n`` on every side, ``[h, w]`` (Keras) or ``[left, right, top, bottom]`` (PyTorch)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * 4
    if isinstance(value, list | tuple) and len(value) == 2:
        return (value[1], value[1], value[0], value[0])
    if isinstance(value, list | tuple) and len(value) == 4:
        return tuple(value)
    got = f"{len(value)} numbers" if isinstance(value, list | tuple) else _describe(value)
    raise ValueError(f"expected a number, [h, w] or [left, right, top, bottom], got {got}")


Pair = Annotated[tuple[Pos, Pos], BeforeValidator(_pair, json_schema_input_type=Pos | tuple[Pos, Pos])]
Pair0 = Annotated[
    tuple[NonNeg, NonNeg],
    BeforeValidator(_pair, json_schema_input_type=NonNeg | tuple[NonNeg, NonNeg]),
]
ConvPadding = Annotated[
    tuple[NonNeg, NonNeg] | Literal["same", "valid"],
    BeforeValidator(_padding, json_schema_input_type=NonNeg | tuple[NonNeg, NonNeg] | Literal["same", "valid"]),
]
Pad4 = Annotated[
    tuple[NonNeg, NonNeg, NonNeg, NonNeg],
    BeforeValidator(
        _pad4,
        json_schema_input_type=NonNeg | tuple[NonNeg, NonNeg] | tuple[NonNeg, NonNeg, NonNeg, NonNeg],
    ),
]

#: Activations that may be fused onto a conv2d or linear layer (``activation: relu``).
Activation: TypeAlias = Literal["relu", "leaky_relu", "tanh", "sigmoid", "softmax"]
#: Fused activations PyTorch can apply in place; the others allocate a new tensor.
INPLACE_ACTIVATIONS = frozenset({"relu", "leaky_relu"})

LayerName = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: LayerName | None = Field(None, description="Row name; auto-numbered per kind when absent.")
    repeat: Annotated[StrictInt, Field(ge=1, le=MAX_REPEAT)] = Field(
        1, description="Stack this layer N times (names get _1, _2, ...)."
    )


class Conv2d(_Layer):
    """nn.Conv2d, optionally followed by a fused activation."""

    kind: Literal["conv2d"]
    out: Pos = Field(description="Output channels (filters).")
    kernel: Pair
    stride: Pair = (1, 1)
    padding: ConvPadding = (0, 0)
    dilation: Pair = (1, 1)
    groups: Pos = 1
    bias: StrictBool = True
    in_: Pos | None = Field(None, alias="in", description="Input channels, checked against the input.")
    activation: Activation | None = None


class MaxPool2d(_Layer):
    kind: Literal["maxpool2d"]
    kernel: Pair
    stride: Pair | None = Field(None, description="Defaults to the kernel size, as in PyTorch.")
    padding: Pair0 = (0, 0)
    dilation: Pair = (1, 1)
    ceil_mode: StrictBool = False


class AvgPool2d(_Layer):
    kind: Literal["avgpool2d"]
    kernel: Pair
    stride: Pair | None = Field(None, description="Defaults to the kernel size, as in PyTorch.")
    padding: Pair0 = (0, 0)
    ceil_mode: StrictBool = False
    count_include_pad: StrictBool = True


class AdaptiveAvgPool2d(_Layer):
    kind: Literal["adaptive_avgpool2d"]
    output: Pair


class AdaptiveMaxPool2d(_Layer):
    kind: Literal["adaptive_maxpool2d"]
    output: Pair


class GlobalAvgPool2d(_Layer):
    """Average over the whole plane: nn.AdaptiveAvgPool2d(1), output C x 1 x 1."""

    kind: Literal["global_avgpool2d"]


class ZeroPad2d(_Layer):
    kind: Literal["zeropad2d"]
    padding: Pad4


class Linear(_Layer):
    """nn.Linear on a flat input, optionally followed by a fused activation."""

    kind: Literal["linear"]
    out: Pos = Field(description="Output features.")
    bias: StrictBool = True
    in_: Pos | None = Field(None, alias="in", description="Input features, checked against the input.")
    activation: Activation | None = None


class Flatten(_Layer):
    kind: Literal["flatten"]


class BatchNorm2d(_Layer):
    kind: Literal["batchnorm2d"]
    eps: Annotated[float, Field(gt=0)] = 1e-5
    momentum: Fraction = 0.1
    affine: StrictBool = True
    track_running_stats: StrictBool = True


class BatchNorm1d(_Layer):
    kind: Literal["batchnorm1d"]
    eps: Annotated[float, Field(gt=0)] = 1e-5
    momentum: Fraction = 0.1
    affine: StrictBool = True
    track_running_stats: StrictBool = True


class LRN(_Layer):
    """nn.LocalResponseNorm across channels (AlexNet's and VGG A-LRN's "norm")."""

    kind: Literal["lrn"]
    size: Pos
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


class Dropout(_Layer):
    kind: Literal["dropout"]
    p: Fraction = 0.5
    inplace: StrictBool = False


class ReLU(_Layer):
    kind: Literal["relu"]
    inplace: StrictBool = False


class LeakyReLU(_Layer):
    kind: Literal["leaky_relu"]
    negative_slope: float = 0.01
    inplace: StrictBool = False


class Tanh(_Layer):
    kind: Literal["tanh"]


class Sigmoid(_Layer):
    kind: Literal["sigmoid"]


class Softmax(_Layer):
    """Softmax over the channels (CxHxW input) or the features (flat input)."""

    kind: Literal["softmax"]


AnyLayer: TypeAlias = (
    Conv2d
    | MaxPool2d
    | AvgPool2d
    | AdaptiveAvgPool2d
    | AdaptiveMaxPool2d
    | GlobalAvgPool2d
    | ZeroPad2d
    | Linear
    | Flatten
    | BatchNorm2d
    | BatchNorm1d
    | LRN
    | Dropout
    | ReLU
    | LeakyReLU
    | Tanh
    | Sigmoid
    | Softmax
)
#: One layer of a spec; its ``kind`` picks the model.
Layer = Annotated[AnyLayer, Field(discriminator="kind")]

#: Every layer kind's model, by its ``kind`` name.
LAYER_MODELS: dict[str, type[_Layer]] = {m.model_fields["kind"].annotation.__args__[0]: m for m in AnyLayer.__args__}
LAYER_KINDS: tuple[str, ...] = tuple(LAYER_MODELS)


def _partial(model: type[_Layer]) -> type[BaseModel]:
    """A model of the same fields, all optional: what ``defaults`` may set for a kind."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name in ("kind", "name", "repeat"):
            continue
        annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        fields[name] = (annotation | None, Field(None, alias=info.alias))
    return create_model(f"{model.__name__}Defaults", __config__=ConfigDict(extra="forbid", frozen=True), **fields)


Defaults = create_model(  # type: ignore[call-overload]
    "Defaults",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{kind: (_partial(model) | None, None) for kind, model in LAYER_MODELS.items()},
)


def _shape(value: Any) -> Any:
    """``"3x224x224"`` -> ``(3, 224, 224)``; lists become tuples of 3 (C, H, W) or 1 (N)."""
    if isinstance(value, str):
        parts = value.lower().replace("×", "x").split("x")
        if not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"expected C x H x W such as 3x224x224 (or N features), got '{value}'")
        value = [int(p) for p in parts]
    if isinstance(value, list | tuple):
        if len(value) not in (1, 3):
            raise ValueError(f"expected C x H x W such as [3, 224, 224] or [N], got {list(value)}")
        return tuple(value)
    return value


Shape = Annotated[
    tuple[Pos, ...],
    BeforeValidator(_shape, json_schema_input_type=tuple[Pos, Pos, Pos] | tuple[Pos] | str),
]


class Spec(BaseModel):
    """A network: its name, its input shape and its layers, in order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: StrictStr = Field(min_length=1)
    input: Shape = Field(description="[C, H, W] for images, or [N] for a flat input.")
    notes: tuple[StrictStr, ...] = Field((), description="Printed under the summary.")
    defaults: Defaults = Field(
        default_factory=Defaults, description="Per-kind field values used where a layer omits them."
    )
    layers: tuple[Layer, ...]

    _source: SourceMap | None = PrivateAttr(None)

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        """Turn bare ``- relu`` into ``{kind: relu}`` and fill fields from ``defaults``."""
        if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
            return data
        if isinstance(data.get("notes"), str):
            data = {**data, "notes": [data["notes"]]}
        defaults = data.get("defaults") if isinstance(data.get("defaults"), dict) else {}
        layers = []
        for layer in data["layers"]:
            if isinstance(layer, str):
                layer = {"kind": layer}
            if isinstance(layer, dict) and isinstance(layer.get("kind"), str):
                preset = defaults.get(layer["kind"])
                if isinstance(preset, dict):
                    layer = {**{k: v for k, v in preset.items() if v is not None}, **layer}
            layers.append(layer)
        return {**data, "layers": layers}

    @field_validator("layers")
    @classmethod
    def _not_empty(cls, layers: tuple[AnyLayer, ...]) -> tuple[AnyLayer, ...]:
        if not layers:
            raise ValueError("a spec needs at least one layer")
        return layers

    def expanded(self) -> list[LayerInstance]:
        """The layers in order, repeats unrolled, each with its unique row name."""
        return _expand(self)

    @property
    def source(self) -> SourceMap | None:
        """Where this spec's values stand in its YAML file, when it was loaded from one."""
        return self._source


@dataclass(frozen=True)
class LayerInstance:
    """One row of the network: a layer of the spec, after repeats are unrolled."""

    name: str
    layer: AnyLayer
    path: Path  # where the layer stands in the spec: ("layers", i)


_PREFIX = {
    "conv2d": "conv",
    "linear": "fc",
    "maxpool2d": "pool",
    "avgpool2d": "pool",
    "adaptive_avgpool2d": "pool",
    "adaptive_maxpool2d": "pool",
    "global_avgpool2d": "pool",
    "batchnorm2d": "bn",
    "batchnorm1d": "bn",
    "lrn": "norm",
    "zeropad2d": "pad",
    "dropout": "drop",
}


def _expand(spec: Spec) -> list[LayerInstance]:
    total = sum(layer.repeat for layer in spec.layers)
    if total > MAX_LAYERS:
        problem = Problem(f"the spec expands to {total:,} layers; at most {MAX_LAYERS:,} are allowed", ("layers",))
        raise SpecError(locate(spec, [problem]))
    explicit: list[tuple[str, Path]] = []
    for i, layer in enumerate(spec.layers):
        if layer.name is not None:
            names = [layer.name] if layer.repeat == 1 else [f"{layer.name}_{r}" for r in range(1, layer.repeat + 1)]
            explicit += [(n, ("layers", i, "name")) for n in names]
    counts = Counter(n for n, _ in explicit)
    dupes = [Problem(f"layer name '{n}' is used more than once", p) for n, p in explicit if counts[n] > 1]
    if dupes:
        raise SpecError(locate(spec, dupes[1:]))
    taken = set(counts)
    numbers: Counter[str] = Counter()
    out = []
    for i, layer in enumerate(spec.layers):
        for r in range(1, layer.repeat + 1):
            if layer.name is not None:
                name = layer.name if layer.repeat == 1 else f"{layer.name}_{r}"
            else:
                prefix = _PREFIX.get(layer.kind, layer.kind)
                while True:
                    numbers[prefix] += 1
                    name = f"{prefix}{numbers[prefix]}"
                    if name not in taken:
                        break
            taken.add(name)
            out.append(LayerInstance(name, layer, ("layers", i)))
    return out


# --- loading -----------------------------------------------------------------


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _owner(loc: tuple[int | str, ...]) -> str:
    """What holds the key at the end of ``loc``: 'conv2d', 'defaults for conv2d', 'the spec'."""
    if len(loc) >= 4 and loc[0] == "layers" and loc[2] in LAYER_MODELS:
        return str(loc[2])
    if len(loc) >= 3 and loc[0] == "defaults":
        return f"defaults for {loc[1]}"
    if len(loc) == 2 and loc[0] == "defaults":
        return "defaults"
    return "the spec"


def _message(err: ErrorDetails) -> tuple[str, bool]:
    """Our wording of one pydantic error, and whether it is about a key (not a value)."""
    typ, loc, ctx = err["type"], err["loc"], err.get("ctx", {})
    # the last key of the path; pydantic's own labels for union branches ("literal[...]") are not keys
    field = next((p for p in reversed(loc) if isinstance(p, str) and p not in LAYER_MODELS and _KEY.match(p)), "")
    got = err.get("input")
    owner = _owner(loc)
    if typ == "extra_forbidden":
        allowed = _allowed_keys(loc)
        return f"unknown key '{field}' in {owner}{did_you_mean(field, allowed)}; allowed: {', '.join(allowed)}", True
    if typ == "union_tag_invalid":
        tag = str(ctx.get("tag"))
        return f"unknown layer kind '{tag}'{did_you_mean(tag, LAYER_KINDS)}", False
    if typ == "union_tag_not_found":
        if isinstance(got, dict) and len(got) == 1 and next(iter(got)) in LAYER_MODELS:
            k = next(iter(got))
            return f"a layer needs a 'kind': write {{kind: {k}, ...}} rather than '{k}: ...'", False
        if isinstance(got, dict) and "kind" in got:
            return f"kind: expected a layer kind name, got {_describe(got['kind'])}", False
        return f"a layer needs a 'kind' (one of: {', '.join(LAYER_KINDS)})", False
    if typ == "missing":
        return f"{owner} needs '{field}'", False
    if typ == "value_error":
        return f"{field}: {ctx.get('error', err['msg'])}", False
    if typ in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        return f"{field}: expected {expected}, got {got!r}", False
    if typ.startswith(("greater_than", "less_than")):
        return f"{field}: {err['msg'].replace('Input should be', 'must be')}, got {got!r}", False
    if typ in ("too_short", "too_long"):
        return f"{field}: {err['msg'].replace('Input should have', 'needs')}", False
    if typ == "string_pattern_mismatch" and field == "name":
        return f"name: '{got}' may use only letters, digits, '_' and '-' (at most 64)", False
    expected = err["msg"].replace("Input should be ", "expected ")
    return f"{field or owner}: {expected}, got {_describe(got)}", False


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the mapping that holds the last element of ``loc``."""
    model: type[BaseModel] = Spec
    for part in loc[:-1]:
        if model is Spec and part == "defaults":
            model = Defaults
        elif model is Defaults and isinstance(part, str) and part in LAYER_DEFAULT_MODELS:
            model = LAYER_DEFAULT_MODELS[part]
        elif model is Spec and isinstance(part, str) and part in LAYER_MODELS:
            model = LAYER_MODELS[part]
    return [f.alias or n for n, f in model.model_fields.items()]


LAYER_DEFAULT_MODELS: dict[str, type[BaseModel]] = {
    kind: Defaults.model_fields[kind].annotation.__args__[0]  # type: ignore[union-attr]
    for kind in LAYER_KINDS
}


def _located(exc: ValidationError, data: Any, smap: SourceMap | None) -> list[Problem]:
    """Pydantic's errors as our one-line problems, each at its place in the file."""
    problems: dict[tuple[Any, ...], Problem] = {}
    raw_layers = data.get("layers") if isinstance(data, dict) else None
    for err in exc.errors(include_url=False):
        loc = list(err["loc"])
        if len(loc) >= 3 and loc[0] == "layers" and isinstance(loc[1], int) and loc[2] in LAYER_MODELS:
            del loc[2]  # the discriminator's tag is not a place in the file
        message, about_key = _message(err)
        path: Path = tuple(loc)
        problem = Problem(message, path)
        if smap is not None:
            problem = _locate_layer_field(problem, smap, raw_layers, about_key)
        # a bad default fails again in every layer it fills: report it once
        dedupe = (problem.line, problem.column) if problem.line is not None else (path, message)
        problems.setdefault(dedupe, problem)
    return sorted(problems.values(), key=lambda p: (p.line or 0, p.column or 0))


def _locate_layer_field(problem: Problem, smap: SourceMap, raw_layers: Any, key: bool) -> Problem:
    """Locate a problem; a field filled in from ``defaults`` is located at the default."""
    path = problem.path
    if len(path) >= 3 and path[0] == "layers" and isinstance(path[1], int) and isinstance(raw_layers, list):
        raw = raw_layers[path[1]] if path[1] < len(raw_layers) else None
        if isinstance(raw, dict) and path[2] not in raw and isinstance(raw.get("kind"), str):
            from_default: Path = ("defaults", raw["kind"], *path[2:])
            if from_default[:3] in smap.values:
                return smap.locate(Problem(problem.message, from_default), key=key)
    return smap.locate(problem, key=key)


def parse_spec(data: Any, source: SourceMap | None = None) -> Spec:
    """Validate plain data (as YAML or JSON gives it) into a :class:`Spec`."""
    if not isinstance(data, dict):
        problem = Problem(f"a spec must be a mapping with 'name', 'input' and 'layers', got {_describe(data)}")
        raise SpecError(source.locate(problem) if source else problem)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_located(exc, data, source)) from None
    spec._source = source
    return spec


def load_spec(path: str | FsPath | None = None, *, text: str | None = None) -> Spec:
    """Load and validate a YAML spec from a file (or from ``text``).

    Raises :class:`SpecError` with located one-line problems.
    """
    file = str(path) if path is not None else None
    if text is None:
        if path is None:
            raise TypeError("load_spec needs a path or text")
        fs = FsPath(path)
        try:
            if fs.is_dir():
                raise SpecError(Problem("is a folder, not a spec file", file=file))
            raw = fs.read_bytes()
        except FileNotFoundError:
            raise SpecError(Problem("no such file", file=file)) from None
        except OSError as exc:
            raise SpecError(Problem(f"cannot read: {exc.strerror}", file=file)) from None
        text = decode(raw, file)
    data, smap = load_yaml(text, file)
    return parse_spec(data, smap)


def locate(spec: Spec, problems: Sequence[Problem]) -> list[Problem]:
    """Give problems found on a loaded spec their file:line:column."""
    if spec.source is None:
        return list(problems)
    return [spec.source.locate(p) for p in problems]


def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of a spec file, for editors and CI (``cnncalc schema``)."""
    schema = Spec.model_json_schema()
    props = schema["properties"]
    # the shorthands the loader accepts: a bare kind name for a layer, a string for notes
    bare = {"type": "string", "enum": list(LAYER_KINDS), "description": "A layer whose fields all have defaults."}
    props["layers"]["items"] = {"anyOf": [props["layers"]["items"], bare]}
    props["layers"]["minItems"] = 1
    # any field may come from `defaults`, which a schema cannot follow: only `kind` is required here
    for model in LAYER_MODELS.values():
        schema["$defs"][model.__name__]["required"] = ["kind"]
    props["notes"] = {"anyOf": [props["notes"], {"type": "string"}], "description": props["notes"]["description"]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://cnncalc.dev/schema/cnncalc.schema.json",
        "title": "cnncalc spec",
        "description": "A CNN described for cnncalc: name, input shape, defaults and layers.",
        **{k: v for k, v in schema.items() if k not in ("title", "description")},
    }
