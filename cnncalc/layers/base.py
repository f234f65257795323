"""What every layer kind is: the facets a kind implements, and what its rules read and return.

A kind (``conv2d``, ``relu`` ...) is one subclass of :class:`Kind` in one family module of
:mod:`cnncalc.layers`, declaring everything cnncalc knows about it (PyTorch's
``register_flop_formula`` and pre-commit's ``Language`` protocol are the models): its pydantic
model, its analytic rule, what autograd keeps of it for backward, its PyTorch module, how each
peer tool counts it, how it maps an input size, its rows' name prefix and its documentation.
Torch is imported only inside :meth:`RowKind.torch_module`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import floor, gcd, prod
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, NamedTuple, NoReturn, TypeVar

from ..errors import Path, Problem
from ..fields import INPLACE_ACTIVATIONS, Layer
from ..geometry import effective_kernel, misfit, output_size, same_padding
from ..report import Jump, Row, Shape

if TYPE_CHECKING:
    from torch import nn

#: Where the training rules apply: the two differ for dropout's mask and batch norm's statistics.
Device = Literal["cpu", "cuda"]
#: The tools of :mod:`cnncalc.peers` whose counts depend on the kinds; each kind says what it adds to each.
PEER_TOOLS = ("torchinfo", "ptflops", "thop")
#: Per peer tool, the terms a row adds beyond cnncalc's MACs, by the term's key in that tool's list.
PeerTerms = Mapping[str, Mapping[str, int]]


# --- the rule: what a layer does to its input ------------------------------------------


class Stop(Exception):
    """A problem after which later shapes are unknown."""


def jump_value(value: Fraction) -> Jump:
    """A whole jump as an int (what every network without upsampling prints), else the fraction."""
    return value.numerator if value.denominator == 1 else value


# The small immutable values of this module are NamedTuples rather than frozen dataclasses: Python 3.11
# compiles each method a dataclass generates on its own, about 0.3 ms a class at every start of the command
# line, where a NamedTuple costs a sixth of that. Their == is a tuple's (``Grow(2) == Divide(2)``): the
# walks tell them apart with ``match``, never with ==.
class Field(NamedTuple):
    """Which input pixels each position along one axis reads, as a pattern that repeats.

    Position ``q = m * period + phase`` reads input pixels ``lo[phase] + m * step`` to ``hi[phase] + m * step``
    (``None``: none at all, as between a transposed conv's taps). Borders are left out: this is the field
    of positions inside the plane, the one of the standard receptive-field arithmetic. Without upsampling
    the period is 1 and the pattern is the classic ``r`` and ``j``; an upsampling by 2 doubles the period.
    """

    period: int = 1
    step: int = 1
    lo: tuple[int | None, ...] = (0,)
    hi: tuple[int | None, ...] = (0,)

    @property
    def size(self) -> int:
        """The most input pixels one position reads (first to last)."""
        return max((h - lo + 1 for lo, h in zip(self.lo, self.hi, strict=True) if lo is not None and h is not None),
                   default=0)  # fmt: skip

    @property
    def jump(self) -> Jump:
        return jump_value(Fraction(self.step, self.period))

    def at(self, q: int) -> tuple[int, int] | None:
        m, phase = divmod(q, self.period)
        lo, hi = self.lo[phase], self.hi[phase]
        return None if lo is None or hi is None else (lo + m * self.step, hi + m * self.step)

    def then(self, period: int, advance: int, reads: Callable[[int], Iterable[int]]) -> Field:
        """The field after a layer whose output ``q`` reads this tensor's positions ``reads(q)``, where
        ``reads(q + period)`` is ``reads(q)`` moved on by ``advance`` positions."""
        g = gcd(self.period, advance)
        new_period = period * self.period // g
        los: list[int | None] = []
        his: list[int | None] = []
        for q in range(new_period):
            read = reads(q)
            if isinstance(read, range) and read.step == 1 and len(read) > 2 * self.period:
                # a long window: a later period only moves its pattern on by the step, so the lowest position
                # is in the window's first period and the highest in its last (kernels of millions, in O(period))
                read = [*read[: self.period], *read[-self.period :]]
            spans = [s for s in (self.at(i) for i in read) if s is not None]
            los.append(min((s[0] for s in spans), default=None))
            his.append(max((s[1] for s in spans), default=None))
        return Field(new_period, advance // g * self.step, tuple(los), tuple(his))

    def window(self, kernel: int, stride: int, padding: int = 0) -> Field:
        """A sliding window (its effective kernel: dilation included): output q reads qS - P to qS - P + K - 1."""
        lo, hi = self.lo[0], self.hi[0]
        if self.period == 1 and lo is not None and hi is not None:  # the classic r and j, in closed form
            j = self.step
            return Field(1, stride * j, (lo - padding * j,), (hi + (kernel - 1 - padding) * j,))
        return self.then(1, stride, lambda q: range(q * stride - padding, q * stride - padding + kernel))

    def resample(self, ratio: Fraction, offset: Fraction, bilinear: bool) -> Field:
        """Interpolation: output q reads around ``src = q * ratio + offset`` (input over output size, PyTorch's
        source index), floor(src) only when nearest or when src is whole, else also the next one."""

        def reads(q: int) -> list[int]:
            src = q * ratio + offset
            first = floor(src)
            return [first, first + 1] if bilinear and src != first else [first]

        return self.then(ratio.denominator, ratio.numerator, reads)

    def transposed(self, kernel: int, stride: int, padding: int, dilation: int) -> Field:
        """A transposed conv: output o gets tap t of input i where i S - P + t D = o."""

        def reads(o: int) -> list[int]:
            taps = (o + padding - t * dilation for t in range(kernel))
            return [x // stride for x in taps if x % stride == 0]

        return self.then(stride, 1, reads)

    @staticmethod
    def widest(fields: Sequence[Field]) -> Field:
        """Where branches meet: the largest field and jump (with upsampling, the largest field's pattern)."""
        if all(f.period == 1 for f in fields):
            return Field(1, max(f.step for f in fields), (0,), (max(f.size for f in fields) - 1,))
        return max(fields, key=lambda f: (f.size, f.jump))


@dataclass
class RF:
    """Receptive-field state of one tensor: a :class:`Field` per axis, and its last spatial grid."""

    fields: tuple[Field, Field] = (Field(), Field())
    grid: tuple[int, int] = (1, 1)
    whole: bool = False  # an earlier layer already saw the whole plane

    @property
    def r(self) -> tuple[int, int]:
        return (self.fields[0].size, self.fields[1].size)

    @property
    def j(self) -> tuple[Jump, Jump]:
        return (self.fields[0].jump, self.fields[1].jump)

    def copy(self) -> RF:
        return RF(self.fields, self.grid, self.whole)

    def window(self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int] = (0, 0)) -> None:
        self.fields = (
            self.fields[0].window(kernel[0], stride[0], padding[0]),
            self.fields[1].window(kernel[1], stride[1], padding[1]),
        )

    def resample(self, ratios: tuple[Fraction, Fraction], offsets: tuple[Fraction, Fraction], bilinear: bool) -> None:
        self.fields = (
            self.fields[0].resample(ratios[0], offsets[0], bilinear),
            self.fields[1].resample(ratios[1], offsets[1], bilinear),
        )

    def transposed(
        self, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int]
    ) -> None:
        self.fields = (
            self.fields[0].transposed(kernel[0], stride[0], padding[0], dilation[0]),
            self.fields[1].transposed(kernel[1], stride[1], padding[1], dilation[1]),
        )

    def shift(self, by: tuple[int, int]) -> None:
        """A crop: position q is the input's q + by (same field and jump; with upsampling, another phase)."""
        self.fields = (
            self.fields[0].then(1, 1, lambda q: [q + by[0]]),
            self.fields[1].then(1, 1, lambda q: [q + by[1]]),
        )

    def see_all(self) -> None:
        if not self.whole:
            self.window(self.grid, (1, 1))
            self.whole = True

    @staticmethod
    def widest(states: Sequence[RF]) -> RF:
        """Where branches meet: the largest field and step over the paths."""
        return RF(
            fields=(Field.widest([s.fields[0] for s in states]), Field.widest([s.fields[1] for s in states])),
            grid=states[0].grid,
            whole=any(s.whole for s in states),
        )


@dataclass
class Out:
    """What one rule returns about its layer (per image; the walk scales by batch)."""

    shape: Shape
    detail: str
    weights: int = 0
    biases: int = 0
    non_trainable: int = 0
    macs: int = 0
    activations: int = 0


@dataclass
class Ctx:
    """One layer under analysis: where it is, what comes in, and what it found wrong."""

    index: int
    name: str
    kind: str
    path: Path
    shape: Shape
    strict: bool
    batch: int
    rf: RF
    errors: list[Problem]
    warnings: list[Problem]
    #: whether the input is laid out channels-last in PyTorch's memory (see :attr:`RowKind.layout`)
    channels_last: bool = False

    def _problem(self, message: str, key: str | None) -> Problem:
        path = self.path if key is None else (*self.path, key)
        return Problem(f"layer {self.index} {self.kind} '{self.name}': {message}", path)

    def error(self, message: str, key: str | None = None) -> None:
        self.errors.append(self._problem(message, key))

    def fail(self, message: str, key: str | None = None) -> NoReturn:
        self.error(message, key)
        raise Stop

    def warn(self, message: str, key: str | None = None) -> None:
        self.warnings.append(self._problem(message, key))

    def check_fit(self, axes: list[tuple[str, str | None]], key: str | None, accepted: bool = False) -> None:
        """Warn (or, strict and not accepted in the spec, fail) for each axis where real input is left unread."""
        texts: dict[str, list[str]] = {}
        for axis, text in axes:
            if text is not None:
                texts.setdefault(text, []).append(axis)
        for text, names in texts.items():
            message = f"{' and '.join(names)}: {text}"
            if accepted:
                self.warn(f"{message} (accepted: accept_floor)", key)
            elif self.strict:
                self.error(message, key)
            else:
                self.warn(message, key)

    def spatial(self) -> tuple[int, int, int]:
        if len(self.shape) != 3:
            self.fail(
                f"{self.kind} needs a C x H x W input, got {fmt(self.shape)} (flat); it cannot follow flatten or linear"
            )
        c, h, w = self.shape
        return c, h, w


def fmt(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def hw(pair: tuple[int, int]) -> str:
    return f"{pair[0]}" if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def window(
    ctx: Ctx,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    *,
    ceil_mode: bool = False,
    pool: bool = False,
    accepted: bool = False,
) -> tuple[int, int]:
    """Output H, W of a sliding window (conv or pool), with the zero and fit checks."""
    _, h, w = ctx.spatial()
    out = tuple(
        output_size(size, k, s, p, d, ceil_mode)
        for size, k, s, p, d in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )
    for axis, size, o, k, p, d in zip(("height", "width"), (h, w), out, kernel, padding, dilation, strict=True):
        if o <= 0:
            k_text = f"{fmt(kernel)}" + (f" dilated to {effective_kernel(k, d)}" if d > 1 else "")
            ctx.fail(
                f"output {axis} would be {o} (input {fmt(ctx.shape)}, kernel {k_text}, padding {p}): "
                f"the padded input {size + 2 * p} is smaller than the kernel",
                "kernel",
            )
    if not ceil_mode:
        ctx.check_fit(
            [
                (axis, misfit(size, k, s, p, d, pool=pool))
                for axis, size, k, s, p, d in zip(
                    ("height", "width"), (h, w), kernel, stride, padding, dilation, strict=True
                )
            ],
            "stride",
            accepted,
        )
    ctx.rf.window((effective_kernel(kernel[0], dilation[0]), effective_kernel(kernel[1], dilation[1])), stride, padding)
    return out[0], out[1]


def same_window(
    ctx: Ctx, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int]:
    """Output H, W of a window with TensorFlow's "same" padding (ceil(H / S)): every input pixel is read, nothing
    to check; the receptive field steps with the padding before."""
    _, h, w = ctx.spatial()
    before = (
        same_padding(h, kernel[0], stride[0], dilation[0])[0],
        same_padding(w, kernel[1], stride[1], dilation[1])[0],
    )
    ctx.rf.window((effective_kernel(kernel[0], dilation[0]), effective_kernel(kernel[1], dilation[1])), stride, before)
    return -(-h // stride[0]), -(-w // stride[1])


def same_pads(
    shape: Shape, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, ...]:
    """The [left, right, top, bottom] zeros (or -inf) TensorFlow's "same" adds to a C x H x W input."""
    top, bottom = same_padding(shape[1], kernel[0], stride[0], dilation[0])
    left, right = same_padding(shape[2], kernel[1], stride[1], dilation[1])
    return (left, right, top, bottom)


# --- what autograd keeps: the training facet ----------------------------------------------


class Keeps(NamedTuple):
    """What one row keeps for backward: storages by role, extra new bytes, and whether its output is new."""

    input: bool = False  # the storage of its (first) input
    #: a product's factors: each one's storage, where the other factor requires grad (``a * b`` keeps b for
    #: a's gradient and a for b's; a factor that needs no gradient, the network's input, keeps nothing)
    factors: bool = False
    output: bool = False  # the storage of its output
    extra: int = 0  # bytes of tensors made only to be saved (indices, masks, statistics)
    new_output: bool = True  # False: the output shares the input's storage (in place, a view)
    #: the layout its input is kept in (a matmul over channels-last positions, instance norm's reshape of a
    #: contiguous input): a copy of it instead of the input where the input is laid out otherwise
    input_layout: Literal["channels_last", "contiguous"] | None = None


# --- how a kind maps an input size: the sizes facet ---------------------------------------


class Keep(NamedTuple):
    """The size passes through (elementwise, norms, 'same' padding)."""


class Slide(NamedTuple):
    """A sliding window: ``floor((n + 2P - D(F - 1) - 1) / S) + 1``, or ceil with ``ceil_mode``."""

    kernel: int
    stride: int
    padding: int
    dilation: int = 1
    ceil_mode: bool = False


class Same(NamedTuple):
    """TensorFlow's "same" padding: ``ceil(n / S)``, padded as the size needs (``cnncalc.geometry.same_padding``)."""

    stride: int


class Fixed(NamedTuple):
    """The size is the layer's own, whatever comes in (adaptive and global pooling)."""

    size: int


class Grow(NamedTuple):
    """The size grows by a constant (zero padding)."""

    by: int


class Divide(NamedTuple):
    """The size is divided exactly, or the layer refuses it (space-to-depth)."""

    by: int


class Scale(NamedTuple):
    """The size is multiplied (an upsampling by a whole factor, depth-to-space)."""

    by: int


class Transposed(NamedTuple):
    """A transposed conv: ``(n - 1)S - 2P + D(F - 1) + output_padding + 1``, refused below 1."""

    kernel: int
    stride: int
    padding: int
    dilation: int = 1
    output_padding: int = 0


class Crop(NamedTuple):
    """A centred crop: to ``size`` (refused on a smaller input), or by ``margin`` in all (refused when nothing is
    left)."""

    size: int | None = None
    margin: int = 0


SizeStep = Keep | Slide | Same | Fixed | Grow | Divide | Scale | Transposed | Crop


#: See :attr:`RowKind.layout`.
Layout = Literal["input", "channels_last", "contiguous", "all_inputs"]


def output_layout(layout: Layout, inputs: Sequence[bool]) -> bool:
    """Whether a row's output is laid out channels-last, given its kind's layout and its inputs' layouts."""
    if layout == "input":
        return inputs[0]
    if layout == "all_inputs":
        return all(inputs)
    return layout == "channels_last"


def layouts_differ(shape: Shape) -> bool:
    """Whether a tensor's channels-last and contiguous layouts differ (C > 1 and H·W > 1): changing it copies."""
    return len(shape) == 3 and shape[0] > 1 and shape[1] * shape[2] > 1


# --- the facets -----------------------------------------------------------------------

L = TypeVar("L", bound=Any)


class RowKind(ABC, Generic[L]):
    """The facets of anything that makes a row: a layer kind, or a join (add, concat)."""

    #: the row's ``kind`` (``conv2d``, ``add``)
    name: ClassVar[str]
    #: whether the row reads and writes memory at inference (a view and an identity do not; cnncalc.roofline)
    moves_data: ClassVar[bool]
    #: whether its inputs may differ in size where one is 1 (a product's per-channel gate; cnncalc.sizes)
    broadcasts: ClassVar[bool] = False
    #: the memory layout of its output, which decides whether a later ``input_layout`` copies: its first
    #: input's (most of PyTorch's kernels follow a channels-last input), channels-last, contiguous, or
    #: channels-last only when all its inputs are (torch.cat)
    layout: ClassVar[Layout] = "input"

    def layout_of(self, layer: L) -> Layout:
        """The memory layout of this row's output: its kind's, or contiguous after a fused softmax."""
        return "contiguous" if getattr(layer, "activation", None) == "softmax" else self.layout

    @abstractmethod
    def keeps(self, layer: L, row: Row, device: Device, dtype_bytes: int, batch: int, grad_in: bool) -> Keeps:
        """What autograd keeps of this row for backward (PyTorch's ``derivatives.yaml``); ``grad_in``: whether its
        input requires grad."""

    @abstractmethod
    def torch_module(self, layer: L, shape: Shape) -> nn.Module:
        """The exact PyTorch module, given the input shape per image; imports torch itself."""

    @abstractmethod
    def peer_terms(self, layer: L, row: Row, batch: int) -> PeerTerms:
        """Per tool of :data:`PEER_TOOLS` (read in its source), what it counts for this row beyond cnncalc's MACs."""


class Kind(RowKind[L]):
    """A layer kind: its model and its rule besides the facets of every row."""

    #: the pydantic model of its entries (keys, defaults, ranges); its ``kind`` literal is the kind's name
    model: ClassVar[type[Layer]]
    #: the input it takes: C x H x W (``planar``), ``flat``, or ``any``; its rule refuses the others
    input: ClassVar[Literal["planar", "flat", "any"]]
    #: what its rows are auto-named after (``conv`` -> conv1, conv2 ...)
    prefix: ClassVar[str]
    #: its row of the kinds table in docs/dsl.md: the fields with their defaults, and the PyTorch module
    fields_doc: ClassVar[str]
    pytorch_doc: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model" in cls.__dict__:
            cls.name = cls.model.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]

    @abstractmethod
    def rule(self, ctx: Ctx, layer: L) -> Out:
        """Output shape, params (trainable and not), MACs and values allocated at inference, per image; the
        receptive-field step on ``ctx.rf``; problems through ``ctx``."""

    @abstractmethod
    def size_step(self, layer: L, axis: int) -> SizeStep:
        """How the layer maps an input size along ``axis`` (0: height, 1: width) (cnncalc.sizes)."""

    @abstractmethod
    def from_torch(self, module: nn.Module) -> dict[str, Any] | None:
        """The inverse of :meth:`torch_module` (cnncalc.importer): the entry's fields, ``kind`` first, that build a
        module computing exactly what ``module`` does, or None when this kind does not describe it (another class,
        a subclass that may compute otherwise, a setting the kind has no field for). Imports torch itself."""

    def resembles(self, module: nn.Module) -> dict[str, Any] | None:
        """The entry of a module of another class that this kind may describe, read from its children and settings
        (timm's ``EcaModule``, ``RmsNorm2d``); the importer keeps it only where the kind's module, given the
        module's weights, computes exactly what it does at its input. None by default: most kinds read only the
        module they build (:meth:`from_torch`)."""
        return None


def fused_values(numel: int, activation: str | None) -> int:
    """Values a conv, linear or add row allocates: its output, plus a fused activation's if not in place."""
    extra = 0 if activation is None or activation in INPLACE_ACTIVATIONS else numel
    return numel + extra


def out_numel(row: Row, batch: int) -> int:
    return batch * prod(row.output_shape)


def in_numel(row: Row, batch: int) -> int:
    return batch * prod(row.input_shape) if row.input_shape else 0


def terms(**tools: Mapping[str, int]) -> PeerTerms:
    """Peer terms, only those not 0 kept (a tool not named counts nothing for the row)."""
    return {tool: {k: n for k, n in counts.items() if n} for tool, counts in tools.items()}


def merge(*parts: PeerTerms) -> PeerTerms:
    out: dict[str, dict[str, int]] = {}
    for part in parts:
        for tool, counts in part.items():
            mine = out.setdefault(tool, {})
            for key, n in counts.items():
                mine[key] = mine.get(key, 0) + n
    return out


NO_TERMS: PeerTerms = {}


def exactly(module: nn.Module, cls: type) -> bool:
    """Whether ``module`` is an instance of ``cls`` itself: a subclass may override ``forward``."""
    return type(module) is cls


def entry(kind: str, **fields: Any) -> dict[str, Any]:
    """An entry's fields, ``kind`` first; PyTorch's tuples as lists, as YAML writes them."""
    return {"kind": kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}
