"""The analytic engine: one rule per layer kind, walking a spec into a :class:`Report`.

Conventions (quoted in the README; every figure in a report follows them):

- **Shapes** are PyTorch's: ``[C, H, W]`` per image, or ``[N]`` once flattened.
  Output sizes follow PyTorch exactly (floor, or ceil mode for pooling).
- **Params** = weights + biases (trainable) + non-trainable values. The only
  non-trainable values are batch norm's running mean and variance (2 per
  channel); its ``num_batches_tracked`` counter is a buffer, not a parameter.
- **MACs** = multiply-accumulates of conv2d and linear layers, bias excluded:
  ``(C_in/groups) * kH * kW`` per conv output value, ``in`` per linear output
  value. This is what torchvision's tables call "GFLOPS" and papers call
  "multiply-adds".
- **FLOPs** = 2 x MACs, what ``torch.utils.flop_counter.FlopCounterMode`` counts.
  Bias adds, pooling, normalisation, activations and softmax count 0: they are
  memory-bound and under 1% of a CNN's arithmetic.
- MACs, FLOPs and activations are for the whole batch (``batch`` images).
- **Activations** of a row = values of the new tensors the row allocates in an
  inference forward pass: the input row holds the input; conv, pool, linear,
  norm, padding and out-of-place activations hold their output; in-place
  activations (``inplace: true``, and relu/leaky_relu fused onto a conv or
  linear), flatten (a view) and dropout (identity at inference) allocate
  nothing. A fused activation that PyTorch cannot apply in place (tanh,
  sigmoid, softmax) adds a second tensor of the output's size.
- **Forward activation memory** = the sum of the rows x bytes per value of the
  dtype; the ``x2`` figure is the lecture's rule of thumb for forward +
  backward, not a measurement. Bytes are printed in MB = 10^6 bytes (MiB = 2^20
  beside them).
- **Receptive field** = the input pixels one output value can see (size) and
  the step between neighbouring outputs in input pixels (stride), by
  ``r += (k_eff - 1) * j; j *= s``. Linear layers and global pooling see the
  whole plane. After adaptive pooling whose sizes do not divide, it is an upper
  bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import prod
from typing import Literal, NoReturn, assert_never, get_args

from .errors import Path, Problem, SpecError
from .geometry import effective_kernel, misfit, output_size
from .spec import (
    INPLACE_ACTIVATIONS,
    LRN,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AnyLayer,
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool2d,
    LayerInstance,
    LeakyReLU,
    Linear,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Softmax,
    Spec,
    Tanh,
    ZeroPad2d,
    locate,
)

Dtype = Literal["float32", "float16", "bfloat16", "int8"]
DTYPE_BYTES: dict[str, int] = {"float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}
assert set(DTYPE_BYTES) == set(get_args(Dtype))

Shape = tuple[int, ...]
#: No tensor may hold more values than this: 2^48 values is a petabyte at float32, beyond any device.
MAX_NUMEL = 2**48


@dataclass(frozen=True)
class ReceptiveField:
    """Input pixels seen by one output value (``size``) and the step between outputs (``stride``)."""

    size: tuple[int, int]
    stride: tuple[int, int]


@dataclass(frozen=True)
class Row:
    """One row of the report: the input (index 0) or one layer."""

    index: int
    name: str
    kind: str
    detail: str
    input_shape: Shape | None
    output_shape: Shape
    weights: int = 0
    biases: int = 0
    params_non_trainable: int = 0
    macs: int = 0
    activations: int = 0
    activation_bytes: int = 0
    receptive_field: ReceptiveField | None = None
    path: Path = ()

    @property
    def params_trainable(self) -> int:
        return self.weights + self.biases

    @property
    def params(self) -> int:
        return self.params_trainable + self.params_non_trainable

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass(frozen=True)
class Totals:
    """Sums over the rows; ``param_bytes`` and memory at the report's dtype."""

    params: int
    params_trainable: int
    params_non_trainable: int
    param_bytes: int
    macs: int
    flops: int
    activations: int
    activation_bytes: int
    forward_backward_bytes_estimate: int


@dataclass(frozen=True)
class Report:
    """What :func:`analyze` finds: one row per layer, totals derived from them, and warnings."""

    name: str
    input_shape: Shape
    batch: int
    dtype: str
    rows: tuple[Row, ...]
    warnings: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def totals(self) -> Totals:
        rows = self.rows
        params = sum(r.params for r in rows)
        activation_bytes = sum(r.activation_bytes for r in rows)
        return Totals(
            params=params,
            params_trainable=sum(r.params_trainable for r in rows),
            params_non_trainable=sum(r.params_non_trainable for r in rows),
            param_bytes=params * self.dtype_bytes,
            macs=sum(r.macs for r in rows),
            flops=sum(r.flops for r in rows),
            activations=sum(r.activations for r in rows),
            activation_bytes=activation_bytes,
            forward_backward_bytes_estimate=2 * activation_bytes,
        )


# --- the walk ----------------------------------------------------------------


class _Stop(Exception):
    """A problem after which later shapes are unknown."""


@dataclass
class _RF:
    """Receptive-field state: size r and jump j per axis, and the last spatial grid."""

    r: tuple[int, int] = (1, 1)
    j: tuple[int, int] = (1, 1)
    grid: tuple[int, int] = (1, 1)
    whole: bool = False  # an earlier layer already saw the whole plane

    def window(self, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        self.r = (self.r[0] + (kernel[0] - 1) * self.j[0], self.r[1] + (kernel[1] - 1) * self.j[1])
        self.j = (self.j[0] * stride[0], self.j[1] * stride[1])

    def see_all(self) -> None:
        if not self.whole:
            self.window(self.grid, (1, 1))
            self.whole = True


@dataclass
class _Out:
    """What one rule returns about its layer (per image; the walk scales by batch)."""

    shape: Shape
    detail: str
    weights: int = 0
    biases: int = 0
    non_trainable: int = 0
    macs: int = 0
    activations: int = 0


@dataclass
class _Ctx:
    index: int
    inst: LayerInstance
    shape: Shape
    strict: bool
    batch: int
    rf: _RF
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    def _problem(self, message: str, key: str | None) -> Problem:
        path = self.inst.path if key is None else (*self.inst.path, key)
        layer = self.inst.layer
        return Problem(f"layer {self.index} {layer.kind} '{self.inst.name}': {message}", path)

    def error(self, message: str, key: str | None = None) -> None:
        self.errors.append(self._problem(message, key))

    def fail(self, message: str, key: str | None = None) -> NoReturn:
        self.error(message, key)
        raise _Stop

    def warn(self, message: str, key: str | None = None) -> None:
        self.warnings.append(self._problem(message, key))

    def check_fit(self, axes: list[tuple[str, str | None]], key: str | None) -> None:
        """Warn (or, strict, fail) for each axis where (W - F + 2P)/S is not whole."""
        texts: dict[str, list[str]] = {}
        for axis, text in axes:
            if text is not None:
                texts.setdefault(text, []).append(axis)
        for text, names in texts.items():
            message = f"{' and '.join(names)}: {text}"
            if self.strict:
                self.error(message, key)
            else:
                self.warn(message, key)

    def spatial(self) -> tuple[int, int, int]:
        if len(self.shape) != 3:
            what = self.inst.layer.kind
            self.fail(
                f"{what} needs a C x H x W input, got {_fmt(self.shape)} (flat); it cannot follow flatten or linear"
            )
        c, h, w = self.shape
        return c, h, w


def _fmt(shape: Sequence[int]) -> str:
    return "x".join(str(s) for s in shape)


def _hw(pair: tuple[int, int]) -> str:
    return f"{pair[0]}" if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _window(
    ctx: _Ctx,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    *,
    ceil_mode: bool = False,
    pool: bool = False,
) -> tuple[int, int]:
    """Output H, W of a sliding window (conv or pool), with the zero and fit checks."""
    _, h, w = ctx.spatial()
    out = tuple(
        output_size(size, k, s, p, d, ceil_mode)
        for size, k, s, p, d in zip((h, w), kernel, stride, padding, dilation, strict=True)
    )
    for axis, size, o, k, p, d in zip(("height", "width"), (h, w), out, kernel, padding, dilation, strict=True):
        if o <= 0:
            k_text = f"{_fmt(kernel)}" + (f" dilated to {effective_kernel(k, d)}" if d > 1 else "")
            ctx.fail(
                f"output {axis} would be {o} (input {_fmt(ctx.shape)}, kernel {k_text}, padding {p}): "
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
        )
    ctx.rf.window((effective_kernel(kernel[0], dilation[0]), effective_kernel(kernel[1], dilation[1])), stride)
    return out[0], out[1]


def _activation_values(numel: int, activation: str | None) -> int:
    """Values a conv/linear row allocates: its output, plus a fused activation's if not in place."""
    extra = 0 if activation is None or activation in INPLACE_ACTIVATIONS else numel
    return numel + extra


def _conv(ctx: _Ctx, layer: Conv2d) -> _Out:
    c, h, w = ctx.spatial()
    if layer.in_ is not None and layer.in_ != c:
        ctx.error(f"in: {layer.in_}, but the input has {c} channels ({_fmt(ctx.shape)})", "in")
    g = layer.groups
    if c % g:
        ctx.error(f"groups={g} does not divide the {c} input channels", "groups")
    if layer.out % g:
        ctx.error(f"groups={g} does not divide the {layer.out} output channels (out)", "groups")
    k, d = layer.kernel, layer.dilation
    if layer.padding == "same":
        if layer.stride != (1, 1):
            ctx.error(
                f"padding 'same' needs stride 1 (PyTorch refuses it for strided convolutions), got stride {_hw(layer.stride)}",
                "padding",
            )
        # PyTorch pads D*(F-1) in total, the odd pixel on the bottom/right: the size is kept
        ctx.rf.window((effective_kernel(k[0], d[0]), effective_kernel(k[1], d[1])), (1, 1))
        oh, ow, pad_text = h, w, "same"
    else:
        padding = (0, 0) if layer.padding == "valid" else layer.padding
        oh, ow = _window(ctx, k, layer.stride, padding, d)
        pad_text = f"p{_hw(padding)}"
    cin = c // g
    out = layer.out * oh * ow
    detail = f"{k[0]}x{k[1]} s{_hw(layer.stride)} {pad_text}"
    detail += "".join(
        [
            f" d{_hw(d)}" if d != (1, 1) else "",
            f" g{g}" if g != 1 else "",
            "" if layer.bias else " nobias",
            f" +{layer.activation}" if layer.activation else "",
        ]
    )
    return _Out(
        shape=(layer.out, oh, ow),
        detail=detail,
        weights=layer.out * cin * k[0] * k[1],
        biases=layer.out if layer.bias else 0,
        macs=out * cin * k[0] * k[1],
        activations=_activation_values(out, layer.activation),
    )


def _pool(ctx: _Ctx, layer: MaxPool2d | AvgPool2d) -> _Out:
    c, _, _ = ctx.spatial()
    stride = layer.stride or layer.kernel
    dilation = layer.dilation if isinstance(layer, MaxPool2d) else (1, 1)
    for k, p, d in zip(layer.kernel, layer.padding, dilation, strict=True):
        if p > k // 2 or p > effective_kernel(k, d) // 2:
            ctx.error(
                f"padding {p} is more than half the kernel {k} (PyTorch allows at most {min(k, effective_kernel(k, d)) // 2})",
                "padding",
            )
            break
    oh, ow = _window(ctx, layer.kernel, stride, layer.padding, dilation, ceil_mode=layer.ceil_mode, pool=True)
    detail = f"{layer.kernel[0]}x{layer.kernel[1]} s{_hw(stride)}"
    detail += "".join(
        [
            f" p{_hw(layer.padding)}" if layer.padding != (0, 0) else "",
            f" d{_hw(dilation)}" if dilation != (1, 1) else "",
            " ceil" if layer.ceil_mode else "",
        ]
    )
    return _Out(shape=(c, oh, ow), detail=detail, activations=c * oh * ow)


def _adaptive_window(size: int, out: int) -> int:
    """The widest of PyTorch's adaptive windows ``[floor(i*In/Out), ceil((i+1)*In/Out))``.

    >>> _adaptive_window(13, 6), _adaptive_window(12, 6), _adaptive_window(3, 5)
    (3, 2, 2)
    """
    if size % out == 0:
        return size // out
    if out > 4096:  # past this, ceil(In/Out) + 1 bounds the windows without visiting them all
        return -(-size // out) + 1
    return max(-(-(i + 1) * size // out) - (i * size) // out for i in range(out))


def _adaptive(ctx: _Ctx, output: tuple[int, int]) -> _Out:
    c, h, w = ctx.spatial()
    if output == (1, 1):
        ctx.rf.see_all()
    else:
        # the widest window and the largest step between windows
        kernel = tuple(_adaptive_window(n, o) for n, o in zip((h, w), output, strict=True))
        step = tuple(-(-n // o) for n, o in zip((h, w), output, strict=True))
        ctx.rf.window((kernel[0], kernel[1]), (step[0], step[1]))
    return _Out(shape=(c, *output), detail=f"-> {output[0]}x{output[1]}", activations=c * prod(output))


def _zeropad(ctx: _Ctx, layer: ZeroPad2d) -> _Out:
    c, h, w = ctx.spatial()
    left, right, top, bottom = layer.padding
    shape = (c, h + top + bottom, w + left + right)
    detail = f"pad {left}" if len(set(layer.padding)) == 1 else f"pad l{left} r{right} t{top} b{bottom}"
    return _Out(shape=shape, detail=detail, activations=prod(shape))


def _linear(ctx: _Ctx, layer: Linear) -> _Out:
    if len(ctx.shape) != 1:
        ctx.fail(
            f"linear needs a flat input, got {_fmt(ctx.shape)}; add '- flatten' before it "
            "(PyTorch's nn.Linear would act on the last dimension only)"
        )
    (n,) = ctx.shape
    if layer.in_ is not None and layer.in_ != n:
        ctx.error(f"in: {layer.in_}, but the input has {n} features", "in")
    ctx.rf.see_all()
    detail = (
        f"{n} -> {layer.out}"
        + ("" if layer.bias else " nobias")
        + (f" +{layer.activation}" if layer.activation else "")
    )
    return _Out(
        shape=(layer.out,),
        detail=detail,
        weights=n * layer.out,
        biases=layer.out if layer.bias else 0,
        macs=n * layer.out,
        activations=_activation_values(layer.out, layer.activation),
    )


def _batchnorm(ctx: _Ctx, layer: BatchNorm2d | BatchNorm1d) -> _Out:
    if isinstance(layer, BatchNorm2d):
        c, _, _ = ctx.spatial()
    else:
        if len(ctx.shape) != 1:
            ctx.fail(f"batchnorm1d needs a flat input, got {_fmt(ctx.shape)}; use batchnorm2d on C x H x W")
        c = ctx.shape[0]
    per_channel = ctx.batch * prod(ctx.shape[1:])
    if not layer.track_running_stats and per_channel < 2:
        # without running stats PyTorch normalises with batch statistics, even at inference
        ctx.error(
            f"without running stats the batch statistics need more than 1 value per channel,"
            f" got {per_channel} (batch {ctx.batch} x {_fmt(ctx.shape[1:]) or '1'})",
            "track_running_stats",
        )
    affine = c if layer.affine else 0
    detail = "".join(["" if layer.affine else "no affine ", "" if layer.track_running_stats else "no running stats"])
    return _Out(
        shape=ctx.shape,
        detail=detail.strip() or f"{c} channels",
        weights=affine,
        biases=affine,
        non_trainable=2 * c if layer.track_running_stats else 0,
        activations=prod(ctx.shape),
    )


def _elementwise(ctx: _Ctx, detail: str, *, inplace: bool) -> _Out:
    return _Out(shape=ctx.shape, detail=detail, activations=0 if inplace else prod(ctx.shape))


def _rule(ctx: _Ctx, layer: AnyLayer) -> _Out:
    """The one dispatch over layer kinds; ``assert_never`` proves every kind is handled."""
    match layer:
        case Conv2d():
            return _conv(ctx, layer)
        case MaxPool2d() | AvgPool2d():
            return _pool(ctx, layer)
        case AdaptiveAvgPool2d() | AdaptiveMaxPool2d():
            return _adaptive(ctx, layer.output)
        case GlobalAvgPool2d():
            return _adaptive(ctx, (1, 1))
        case ZeroPad2d():
            return _zeropad(ctx, layer)
        case Linear():
            return _linear(ctx, layer)
        case Flatten():
            return _Out(shape=(prod(ctx.shape),), detail="view" if len(ctx.shape) == 3 else "already flat")
        case BatchNorm2d() | BatchNorm1d():
            return _batchnorm(ctx, layer)
        case LRN():
            ctx.spatial()
            return _elementwise(ctx, f"size {layer.size}", inplace=False)
        case Dropout():
            # identity at inference: nothing allocated (training adds the output and a mask)
            return _Out(shape=ctx.shape, detail=f"p={layer.p:g}")
        case ReLU():
            return _elementwise(ctx, "in place" if layer.inplace else "", inplace=layer.inplace)
        case LeakyReLU():
            detail = f"slope {layer.negative_slope:g}" + (", in place" if layer.inplace else "")
            return _elementwise(ctx, detail, inplace=layer.inplace)
        case Tanh() | Sigmoid():
            return _elementwise(ctx, "", inplace=False)
        case Softmax():
            return _elementwise(ctx, "over channels" if len(ctx.shape) == 3 else "over features", inplace=False)
        case _:
            assert_never(layer)


def analyze(
    spec: Spec,
    *,
    batch: int = 1,
    dtype: str = "float32",
    input_shape: Sequence[int] | None = None,
    strict: bool = False,
) -> Report:
    """Walk ``spec`` layer by layer and return its :class:`Report`.

    ``input_shape`` overrides the spec's input; ``strict`` turns every "does not
    fit" warning into an error. Raises :class:`SpecError` listing every problem
    found (located in the YAML file when the spec was loaded from one).
    """
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_BYTES)}, got {dtype!r}")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    size = DTYPE_BYTES[dtype]
    shape: Shape = tuple(input_shape) if input_shape is not None else spec.input
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise ValueError(f"input shape must be C x H x W or N, all at least 1, got {_fmt(shape)}")
    rf = _RF(grid=(shape[1], shape[2])) if len(shape) == 3 else None
    rows = [
        Row(
            index=0,
            name="input",
            kind="input",
            detail="",
            input_shape=None,
            output_shape=shape,
            activations=batch * prod(shape),
            activation_bytes=batch * prod(shape) * size,
            receptive_field=ReceptiveField((1, 1), (1, 1)) if rf else None,
            path=("input",),
        )
    ]
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for index, inst in enumerate(spec.expanded(), start=1):
        ctx = _Ctx(index, inst, shape, strict, batch, rf or _RF())
        try:
            out = _rule(ctx, inst.layer)
            if prod(out.shape) * batch > MAX_NUMEL:
                ctx.fail(
                    f"the output {_fmt(out.shape)} x batch {batch} holds more than 2^48 values: too large for any tensor"
                )
        except _Stop:
            errors += ctx.errors
            break
        finally:
            warnings += ctx.warnings
        errors += ctx.errors
        if rf is not None and len(out.shape) == 3:
            rf.grid = (out.shape[1], out.shape[2])
        rows.append(
            Row(
                index=index,
                name=inst.name,
                kind=inst.layer.kind,
                detail=out.detail,
                input_shape=shape,
                output_shape=out.shape,
                weights=out.weights,
                biases=out.biases,
                params_non_trainable=out.non_trainable,
                macs=batch * out.macs,
                activations=batch * out.activations,
                activation_bytes=batch * out.activations * size,
                receptive_field=ReceptiveField(rf.r, rf.j) if rf else None,
                path=inst.path,
            )
        )
        shape = out.shape
    if errors:
        raise SpecError(locate(spec, errors))
    return Report(
        name=spec.name,
        input_shape=rows[0].output_shape,
        batch=batch,
        dtype=dtype,
        rows=tuple(rows),
        warnings=tuple(locate(spec, warnings)),
        notes=spec.notes,
    )
