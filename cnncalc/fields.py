"""The field types of the DSL's models, and the base of every layer kind's model.

Sizes given as one number or a pair are normalised here, once, to ``(height, width)``
tuples (Keras' ``standardize_tuple``), so no rule branches on int versus pair. Torch-free;
:mod:`cnncalc.spec` and every family module of :mod:`cnncalc.layers` build on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, NamedTuple, TypeAlias

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    StrictStr,
    TypeAdapter,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from . import safe_text

#: The largest size, channel count or repeat a spec may hold; no real tensor is larger.
MAX_INT = 2**31 - 1
#: How often one entry may be repeated.
MAX_REPEAT = 10_000

Pos = Annotated[StrictInt, Field(ge=1, le=MAX_INT)]
NonNeg = Annotated[StrictInt, Field(ge=0, le=MAX_INT)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    return safe_text.value(value)


def _pair(value: Any) -> Any:
    """``3`` -> ``(3, 3)``; ``[3, 5]`` -> ``(3, 5)`` (height, width)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, list | tuple) and len(value) == 2:
        return tuple(value)
    got = f"{len(value)} numbers" if isinstance(value, list | tuple) else describe(value)
    raise ValueError(f"expected a number or a pair [height, width], got {got}")


def _padding(value: Any) -> Any:
    """Conv padding: a number, a pair, or the words 'same' / 'valid'."""
    if value in ("same", "valid"):
        return value
    try:
        pair = _pair(value)
    except ValueError:
        raise ValueError(
            f"expected a number, a pair [height, width], 'same' or 'valid', got {describe(value)}"
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
    got = f"{len(value)} numbers" if isinstance(value, list | tuple) else describe(value)
    raise ValueError(f"expected a number, [h, w] or [left, right, top, bottom], got {got}")


class Before(NamedTuple):
    """pydantic's ``BeforeValidator(func, json_schema_input_type=accepts)``, building the JSON schema of
    ``accepts`` only when a JSON schema is asked for (pydantic builds its validator with every model's)."""

    func: Callable[[Any], Any]
    accepts: Any

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self.func, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return TypeAdapter(self.accepts).json_schema()


Pair = Annotated[tuple[Pos, Pos], Before(_pair, Pos | tuple[Pos, Pos])]
Pair0 = Annotated[tuple[NonNeg, NonNeg], Before(_pair, NonNeg | tuple[NonNeg, NonNeg])]
ConvPadding = Annotated[
    tuple[NonNeg, NonNeg] | Literal["same", "valid"],
    Before(_padding, NonNeg | tuple[NonNeg, NonNeg] | Literal["same", "valid"]),
]


def _pool_padding(value: Any) -> Any:
    """Pool padding: a number, a pair, or 'same' (TensorFlow's)."""
    if value == "same":
        return value
    try:
        return _pair(value)
    except ValueError:
        raise ValueError(f"expected a number, a pair [height, width] or 'same', got {describe(value)}") from None


PoolPadding = Annotated[
    tuple[NonNeg, NonNeg] | Literal["same"],
    Before(_pool_padding, NonNeg | tuple[NonNeg, NonNeg] | Literal["same"]),
]
#: A side's padding; a negative one crops (PyTorch's nn.ZeroPad2d takes both: NASNet's (-1, 1, -1, 1) shifts by one)
PadSide = Annotated[StrictInt, Field(ge=-MAX_INT, le=MAX_INT)]
Pad4 = Annotated[
    tuple[PadSide, PadSide, PadSide, PadSide],
    Before(_pad4, PadSide | tuple[PadSide, PadSide] | tuple[PadSide, PadSide, PadSide, PadSide]),
]

#: Activations that may be fused onto a conv2d, a linear layer or a residual's add (``activation: relu``).
Activation: TypeAlias = Literal["relu", "relu6", "leaky_relu", "tanh", "sigmoid", "softmax"]
#: Fused activations PyTorch can apply in place; the others allocate a new tensor.
INPLACE_ACTIVATIONS = frozenset({"relu", "relu6", "leaky_relu"})


def _name(value: Any) -> Any:
    """A name; a whole number (an expression's, ``name: "${i + 1}"``) is its digits, as nn.Sequential names its parts."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


#: A row's or block's name; a dotted one (``convs.0``) is a path into a module list whose modules run between
#: others' (Res2Net's ``convs`` and ``bns``, HRNet's ``fuse_layers``), as PyTorch names their parameters.
LayerName = Annotated[
    StrictStr,
    Field(pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$"),
    Before(_name, Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,7}$")] | NonNeg),
]

#: A row or block by its dotted name (``layer2.0.conv1``), from the entry's own block outwards.
RowRef = Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,64}(\.[A-Za-z0-9_-]{1,64}){0,31}$")]


def _refs(value: Any) -> Any:
    """``from: a`` -> ``("a",)``; ``from: [a, b]`` -> ``("a", "b")``."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError("names no row: give one name, or a list of them")
        return tuple(value)
    raise ValueError(f"expected a name or a list of names, got {describe(value)}")


FromRefs = Annotated[tuple[RowRef, ...], Field(max_length=256), Before(_refs, RowRef | list[RowRef])]
FROM_DESCRIPTION = (
    "Read these rows' or blocks' outputs instead of the previous entry's: one name for a layer or structure,"
    " several for a join (add, concat, multiply without branches or body)."
)

#: Every model builds its validator on first use, not at import: a spec pays only for the kinds it uses.
CONFIG = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Layer(BaseModel):
    """The fields every layer kind takes; each kind's model adds ``kind: Literal[...]`` and its own."""

    model_config = CONFIG

    if TYPE_CHECKING:  # each kind's model declares it as a Literal field: its name
        kind: str

    name: LayerName | None = Field(None, description="Row name; auto-numbered per kind when absent.")
    repeat: Annotated[StrictInt, Field(ge=1, le=MAX_REPEAT)] = Field(
        1, description="Stack this layer N times (names get _1, _2, ...)."
    )
    when: StrictBool = Field(True, description="Leave the entry out when false; in a block, e.g. ${t != 1}.")
    from_: FromRefs | None = Field(None, alias="from", description=FROM_DESCRIPTION)


#: ``accept_floor``, as conv and pooling take it.
ACCEPT_FLOOR_DESCRIPTION = (
    "Knowingly let PyTorch floor a (W - F + 2P)/S that is not whole: the warning is kept,"
    " marked accepted, and --strict does not make it an error."
)
