"""PyTorch as the oracle: build a spec as an ``nn.Module``, measure it, time it.

The only module of cnncalc that imports torch as it loads. ``build`` asks every
layer kind (:mod:`cnncalc.layers`) for its exact PyTorch module; ``measure`` runs
one inference forward pass and reads, per row, what torch itself says (output
shape, parameters, FLOPs from ``FlopCounterMode``, bytes of newly allocated outputs); ``measure_saved`` runs
one training forward and reads the bytes autograd keeps for backward per row;
``compare`` sets all that against the engine's :class:`~cnncalc.engine.Report`;
``time_model`` times inference or training steps and, on CUDA, peak memory.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

with warnings.catch_warnings():
    # a torch without NumPy beside it warns once at import; nothing here needs NumPy
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

from .engine import analyze
from .fields import Layer
from .layers import row_kind
from .layers.fused import activation_module
from .report import ROW_QUANTITIES, Join, Report, Row
from .spec import Spec
from .training import Device, saved_for_backward

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


def module_for(layer: Layer | Join, shape: tuple[int, ...]) -> nn.Module:
    """The exact PyTorch module for one layer (or join), given its input shape (per image): its kind's."""
    return row_kind(layer).torch_module(layer, shape)


class _AddOp(nn.Module):
    """``a + b``, or ``a += b`` in place (torchvision ResNet's ``out += identity``). Of more than two inputs the
    first sum is added to in place, one tensor allocated; ``stack`` sums as ``torch.stack(inputs).sum(0)``
    (smp's FPN)."""

    def __init__(self, inplace: bool, stack: bool = False) -> None:
        super().__init__()
        self.inplace = inplace
        self.stack = stack

    def forward(self, a: torch.Tensor, b: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        if self.stack:
            return torch.stack((a, b, *rest)).sum(0)
        out = a.add_(b) if self.inplace else a + b
        for x in rest:
            out = out.add_(x)
        return out


class Add(nn.Module):
    """Where a residual's body and shortcut meet (or rows named in ``from``): the add, then an optional
    activation."""

    def __init__(self, inplace: bool, activation: str | None, stack: bool = False) -> None:
        super().__init__()
        self.add = _AddOp(inplace, stack)
        self.act = activation_module(activation) if activation else None

    def forward(self, a: torch.Tensor, b: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.add(a, b, *rest)
        return self.act(out) if self.act is not None else out


class Concat(nn.Module):
    """Branches joined along the channels."""

    def forward(self, *branches: torch.Tensor) -> torch.Tensor:
        return torch.cat(branches, dim=1)


class Multiply(nn.Module):
    """Where a product's factors meet: ``a * b``, a C x 1 x 1 factor broadcast over C x H x W (squeeze-and-excitation)."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a * b


class ChannelSlice(nn.Module):
    """Channels ``start`` to ``stop`` of the input: a view (a split's part, as ``Tensor.chunk`` gives)."""

    def __init__(self, start: int, stop: int | None) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start : self.stop]


class Crop(nn.Module):
    """A centred crop (U-Net's copy and crop): a slice of the input, a view that copies nothing."""

    def __init__(self, top: int, left: int, height: int, width: int) -> None:
        super().__init__()
        self.top, self.left, self.height, self.width = top, left, height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if (
            min(self.top, self.left) < 0
            or min(self.height, self.width) < 1
            or self.top + self.height > h
            or (self.left + self.width > w)
        ):
            raise ValueError(f"a crop of {self.height}x{self.width} at ({self.top}, {self.left}) is not inside {h}x{w}")
        return x[..., self.top : self.top + self.height, self.left : self.left + self.width]

    def extra_repr(self) -> str:
        return f"top={self.top}, left={self.left}, height={self.height}, width={self.width}"


class Lends(nn.Module):
    """A row module that puts something else than itself under the row's name in the module tree.

    :class:`SpecModule` calls :meth:`lend` with the module that holds the row and the row's leaf name, and keeps
    this module out of the tree; it still runs it, with the per-row hooks of ``measure``, ``measure_kept`` and
    ``time_rows``. What it lends is shared, so ``.to()``, ``train()`` and ``load_state_dict`` on the network
    reach it.
    """

    def lend(self, owner: nn.Module, name: str) -> None:
        raise NotImplementedError


class ChannelsLast(Lends):
    """``inner`` over the channels at each position of a C x H x W plane, as ConvNeXt computes it: permuted to
    channels-last, ``inner`` (nn.LayerNorm or nn.Linear), permuted back.

    The tree holds ``inner`` itself under the row's name: its type and parameter names are torchvision's, and the
    peer tools, which hook modules by type, see what they see in torchvision's ConvNeXt (a channels-last input).
    """

    def __init__(self, inner: nn.Module, after: nn.Module | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.after = after  # an activation on the channels-last result (an elementwise op on the permuted-back view
        # takes another path through PyTorch's kernels, and GELU's last bits differ there)

    def lend(self, owner: nn.Module, name: str) -> None:
        owner.add_module(name, self.inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x.permute(0, 2, 3, 1))
        if self.after is not None:
            out = self.after(out)
        return out.permute(0, 3, 1, 2)


class PaddedSame(Lends):
    """TensorFlow's "same" padding before a conv or a max pool (``inner``, without padding of its own), as timm's
    ``Conv2dSame`` and ``MaxPool2dSame`` run it: ``F.pad`` by ``pads`` ([left, right, top, bottom], the input's
    size's) with ``value`` (0, or -inf before a max), then ``inner``.

    The tree holds ``inner`` itself under the row's name: its parameter names are a plain conv's, and the peer
    tools, which hook modules by type, see an ``nn.Conv2d`` or ``nn.MaxPool2d`` on the padded input.
    """

    def __init__(self, inner: nn.Module, pads: tuple[int, ...], value: float) -> None:
        super().__init__()
        self.inner = inner
        self.pads = tuple(pads)
        self.value = value

    def lend(self, owner: nn.Module, name: str) -> None:
        owner.add_module(name, self.inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pads):
            x = torch.nn.functional.pad(x, self.pads, value=self.value)
        out: torch.Tensor = self.inner(x)
        return out

    def extra_repr(self) -> str:
        return f"pads={list(self.pads)}, value={self.value}"


class LentParameter(Lends):
    """A row module whose one parameter belongs to the module that holds the row, under the row's own name.

    torchvision's ConvNeXt block holds its layer scale as a parameter, ``features.1.0.layer_scale``, not as a
    module with a ``weight``: :meth:`lend` registers the parameter on the row's owner, and the module reads it
    from there.
    """

    def __init__(self, parameter: nn.Parameter) -> None:
        super().__init__()
        self.own = parameter
        self.owner: tuple[nn.Module, str] | None = None  # a tuple: not registered as a submodule

    def lend(self, owner: nn.Module, name: str) -> None:
        owner.register_parameter(name, self._parameters.pop("own"))
        self.owner = (owner, name)

    @property
    def parameter(self) -> nn.Parameter:
        if self.owner is None:
            return self.own
        owner, name = self.owner
        return getattr(owner, name)  # type: ignore[no-any-return]


class LayerScaleModule(LentParameter):
    """Its input times a learnable factor per channel (C x 1 x 1 on a plane), as ``layer_scale * x``; the factors
    held as ``shape`` (C x 1 x 1, or C as timm's ``gamma``) and viewed as ``view`` to multiply (``()``: one factor,
    NF-Nets' ``skipinit_gain``); ``x.mul_(factors)`` in place."""

    def __init__(
        self, shape: tuple[int, ...], init: float, view: tuple[int, ...] | None = None, inplace: bool = False
    ) -> None:
        super().__init__(nn.Parameter(torch.full(shape, init)))
        self.view = view if view is not None else shape
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        held = self.parameter
        factors = held if tuple(held.shape) == self.view else held.view(self.view)
        return x.mul_(factors) if self.inplace else factors * x


class ScaleModule(nn.Module):
    """Its input times a constant: ``x * factor``, or ``x.mul_(factor)`` in place."""

    def __init__(self, factor: float, inplace: bool = False) -> None:
        super().__init__()
        self.factor, self.inplace = factor, inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul_(self.factor) if self.inplace else x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}{', inplace=True' if self.inplace else ''}"


class RMSNorm2d(nn.Module):
    """RMS normalisation over the channels of a plane, as timm's ``RmsNorm2d`` computes it (its eager path)."""

    def __init__(self, channels: int, eps: float, affine: bool) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels)) if affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.rsqrt(torch.mean(x.pow(2), dim=1, keepdim=True) + self.eps)
        return x * self.weight.reshape(1, -1, 1, 1) if self.weight is not None else x


class ECAModule(nn.Module):
    """Efficient channel attention, as timm's ``EcaModule`` computes it: the channels' means, a 1-D convolution across
    them, a sigmoid, and the input scaled by it."""

    atomic = True  # one row: what it allocates inside is freed within it (measure counts its output alone)

    def __init__(self, kernel: int, bias: bool) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 1, kernel, padding=(kernel - 1) // 2, bias=bias)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.gate(self.conv(x.mean((2, 3)).view(x.shape[0], 1, -1)))
        return x * y.view(x.shape[0], -1, 1, 1).expand_as(x)


class StdConv2dModule(nn.Conv2d):
    """A conv whose filters are standardized first, as timm's ``StdConv2d`` computes it (a batch norm over each
    filter's weights); with ``gain``, scaled by gain x gamma / sqrt(fan-in) in the norm, as ``ScaledStdConv2d``."""

    def __init__(self, *args: Any, eps: float, gain: bool, gamma: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eps = eps
        self.gamma = gamma
        self.scale = gamma * self.weight[0].numel() ** -0.5
        self.gain = nn.Parameter(torch.ones(self.out_channels, 1, 1, 1)) if gain else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = (self.gain * self.scale).view(-1) if self.gain is not None else None
        weight = nn.functional.batch_norm(
            self.weight.reshape(1, self.out_channels, -1),
            None,
            None,
            weight=factor,
            training=True,
            momentum=0.0,
            eps=self.eps,
        ).reshape_as(self.weight)
        return nn.functional.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class GlobalResponseNorm(nn.Module):
    """Global response normalisation of N x C x H x W, as timm's ``GlobalResponseNorm`` computes it."""

    def __init__(self, channels: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.spatial_dim = (2, 3)
        self.weight = nn.Parameter(torch.zeros(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norms = x.norm(p=2, dim=self.spatial_dim, keepdim=True)
        factors = norms / (norms.mean(dim=1, keepdim=True) + self.eps)
        return x + torch.addcmul(self.bias.view(1, -1, 1, 1), self.weight.view(1, -1, 1, 1), x * factors)


class BlurPool(nn.Module):
    """Anti-aliased downsampling as timm's ``BlurPool2d`` computes it: reflect padding, then a depthwise conv with
    a fixed binomial filter (a buffer outside the state_dict)."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        from math import comb

        self.channels, self.filt_size, self.stride, self.pad_mode = channels, kernel, stride, "reflect"
        self.padding = [(stride - 1 + kernel - 1) // 2] * 4
        coeffs = torch.tensor([comb(kernel - 1, k) for k in range(kernel)], dtype=torch.float32) / 2 ** (kernel - 1)
        blur = (coeffs[:, None] * coeffs[None, :])[None, None, :, :].repeat(channels, 1, 1, 1)
        self.register_buffer("filt", blur, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, self.padding, mode="reflect")
        filt = self.get_buffer("filt")
        return nn.functional.conv2d(x, filt, stride=self.stride, groups=self.channels)


class SpaceToDepthModule(nn.Module):
    """TResNet's space-to-depth, as timm's ``SpaceToDepth`` computes it: each r x r patch to r^2 x C channels,
    ordered by the patch position first."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.bs = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.size()
        x = x.view(n, c, h // self.bs, self.bs, w // self.bs, self.bs)
        x = x.permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(n, c * self.bs * self.bs, h // self.bs, w // self.bs)


class StochasticDepth(nn.Module):
    """Drops its input for a whole image (``row``) or the whole batch (``batch``) with probability ``p`` in
    training, scaling what it keeps by 1 / (1 - p); its input itself at inference (torchvision's StochasticDepth)."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1) if self.mode == "row" else (1,) * x.dim()
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        if keep > 0.0:
            noise.div_(keep)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


class SpecModule(nn.Module):
    """The network of a report: one module per row, registered under the row's dotted name (or, for a
    :class:`Lends`, what it lends under that name).

    ``forward`` runs the rows in order, each on the outputs of the rows it reads, and
    lets go of every tensor after its last reader, as eager PyTorch code would.
    """

    def __init__(self, steps: list[tuple[int, str, nn.Module, tuple[int, ...]]], outputs: tuple[int, ...] = ()) -> None:
        super().__init__()
        for _, name, module, _ in steps:
            *parents, leaf = name.split(".")
            owner: nn.Module = self
            for part in parents:
                if part not in owner._modules:
                    owner.add_module(part, nn.Module())
                owner = owner._modules[part]  # type: ignore[assignment]
            if isinstance(module, Lends):
                module.lend(owner, leaf)
            else:
                owner.add_module(leaf, module)
        self.steps = steps  # a plain list: the modules are registered once, above
        #: the rows it returns: a spec's ``outputs`` (a tuple of tensors when several), else its last row
        self.outputs = outputs or ((steps[-1][0],) if steps else (0,))
        last: dict[int, int] = {}
        for index, _, _, inputs in steps:
            for i in inputs:
                last[i] = index
        for i in self.outputs:
            last[i] = len(steps) + 1  # kept to the end
        self.last_use = last

    def run(self, x: torch.Tensor, each: Callable[[int, nn.Module, torch.Tensor], None] | None = None) -> Any:
        env = {0: x}
        for index, _, module, inputs in self.steps:
            out = module(*(env[i] for i in inputs))
            if each is not None:
                each(index, module, out)
            env[index] = out
            for i in set(inputs):  # a row may read one tensor twice (x + x)
                if self.last_use.get(i) == index:
                    del env[i]
        outs = tuple(env[i] for i in self.outputs)
        return outs if len(outs) > 1 else outs[0]

    def forward(self, x: torch.Tensor) -> Any:
        """The network's output; a tuple of them, in ``outputs`` order, when the spec declares several."""
        return self.run(x)


def _row_module(row: Row) -> nn.Module:
    assert row.layer is not None and row.input_shape is not None
    return module_for(row.layer, row.input_shape)


def build(net: Spec | Report, *, device: str | torch.device = "cpu", dtype: str = "float32") -> SpecModule:
    """A spec's network as a :class:`SpecModule`: every row a module named as the row.

    Give a :class:`Spec` (it is analysed first) or the :class:`Report` that
    :func:`cnncalc.analyze` made of it: the report supplies each layer's input
    channels, which PyTorch needs and the spec leaves implicit.
    """
    report = analyze(net) if isinstance(net, Spec) else net
    with torch.device(device):
        steps = [(row.index, row.name, _row_module(row), row.inputs) for row in report.rows[1:]]
        model = SpecModule(steps, report.outputs)
    return model.to(dtype=TORCH_DTYPES[dtype]).eval()


# --- measurement ------------------------------------------------------------------


@dataclass
class MeasuredRow:
    """What torch says about one row."""

    name: str
    output_shape: tuple[int, ...] = ()
    weights: int = 0
    biases: int = 0
    params_trainable: int = 0
    params_non_trainable: int = 0
    flops: int = 0
    activation_bytes: int = 0


@dataclass
class Measured:
    rows: list[MeasuredRow]
    input_bytes: int


def _storage(t: torch.Tensor) -> int:
    return int(t.untyped_storage().data_ptr())


def _leaves(module: nn.Module) -> Iterator[nn.Module]:
    """The modules that compute: those without children, and a row's module that computes its output itself from
    the modules it holds (``atomic``: an ECA gate's product is its own, its conv's output is not the row's)."""
    children = list(module.children())
    if not children or getattr(module, "atomic", False):
        yield module
        return
    for child in children:
        yield from _leaves(child)


def _param_counts(module: nn.Module, row: MeasuredRow) -> None:
    params = list(module.named_parameters())
    if isinstance(module, LentParameter):
        params.append(("weight", module.parameter))  # a factor, counted with the weights
    for name, p in params:
        n = p.numel()
        if p.requires_grad:
            row.params_trainable += n
        if name.endswith(("weight", "gain")):  # a std_conv2d's gain is a factor of its weights
            row.weights += n
        elif name.endswith("bias"):
            row.biases += n
    for name, b in module.named_buffers():
        # running statistics are state; num_batches_tracked is a counter, not a parameter
        if name.endswith(("running_mean", "running_var")):
            row.params_non_trainable += b.numel()


def measure(model: SpecModule, input_shape: tuple[int, ...], batch: int = 1) -> Measured:
    """One inference forward pass: shapes, params, FLOPs and new output bytes per row, as torch sees them.

    New bytes are read by hooks on the modules that compute (those without
    children): an output counts when its storage is new, so in-place ops and
    views, which reuse their input's, count nothing. Hooks are removed and the
    module's mode restored however the pass ends.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    rows = {index: MeasuredRow(name) for index, name, _, _ in model.steps}
    handles = []
    was_training = model.training

    def bytes_hook(row: MeasuredRow) -> Callable[..., None]:
        def hook(_: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            if all(_storage(output) != _storage(i) for i in inputs if isinstance(i, torch.Tensor)):
                row.activation_bytes += output.numel() * output.element_size()

        return hook

    try:
        model.eval()
        for index, _, module, _ in model.steps:
            _param_counts(module, rows[index])
            for leaf in _leaves(module):
                handles.append(leaf.register_forward_hook(bytes_hook(rows[index])))
        x = torch.zeros((batch, *input_shape), device=device, dtype=dtype)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            seen = [0]

            def each(index: int, _: nn.Module, out: torch.Tensor) -> None:
                total = int(counter.get_total_flops())
                rows[index].flops = total - seen[0]
                rows[index].output_shape = tuple(out.shape[1:])
                seen[0] = total

            model.run(x, each)
        return Measured(list(rows.values()), x.numel() * x.element_size())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def measure_kept(model: SpecModule, input_shape: tuple[int, ...], batch: int = 1) -> tuple[dict[int, int], int]:
    """One training forward: per row, the bytes of tensors autograd saves for backward that no earlier row saved;
    and the bytes of the output when no saved tensor holds its storage (the loss reads it all the same).

    ``saved_tensors_hooks`` sees every tensor an op saves; a pre-hook on each row's
    module says which row is running. Storages count once (a ReLU's output that the
    next conv saves again is not new), parameters and buffers not at all.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    state = {_storage(t) for t in (*model.parameters(), *model.buffers())}
    saved = {index: 0 for index, _, _, _ in model.steps}
    current = [0]
    handles = []

    def enter(index: int) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            current[0] = index

        return hook

    held: list[torch.Tensor] = []

    def pack(t: torch.Tensor) -> None:
        ptr = _storage(t)
        if ptr not in state:
            state.add(ptr)
            saved[current[0]] += t.untyped_storage().nbytes()
        # kept alive as autograd would keep it (so no later tensor reuses its address), but detached: a saved
        # tensor that is packed as itself makes a cycle through its grad_fn that nothing frees (a GB per network)
        held.append(t.detach())

    def unpack(_: None) -> torch.Tensor:
        raise RuntimeError("measure_kept's forward pass is not for backward")

    try:
        for index, _, module, _ in model.steps:
            handles.append(module.register_forward_pre_hook(enter(index)))
        x = torch.zeros((batch, *input_shape), device=device, dtype=dtype)
        with _mode(model, True), torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            y = model(x)
        outs = {_storage(t): t for t in (y if isinstance(y, tuple) else (y,))}  # each storage once
        return saved, sum(t.untyped_storage().nbytes() for ptr, t in outs.items() if ptr not in state)
    finally:
        for h in handles:
            h.remove()


def measure_saved(model: SpecModule, input_shape: tuple[int, ...], batch: int = 1) -> dict[int, int]:
    """Per row, the bytes of tensors a training forward saves for backward (see :func:`measure_kept`)."""
    return measure_kept(model, input_shape, batch)[0]


# --- comparison -------------------------------------------------------------------

#: The exact quantities that the engine and torch must agree on, per row.
QUANTITIES = ("output_shape", *(q.name for q in ROW_QUANTITIES if q.checked))


@dataclass(frozen=True)
class Check:
    quantity: str
    analytic: Any
    measured: Any

    @property
    def ok(self) -> bool:
        return bool(self.analytic == self.measured)


@dataclass(frozen=True)
class RowComparison:
    row: Row
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, quantity: str) -> Check:
        return next(c for c in self.checks if c.quantity == quantity)


def compare(
    report: Report, measured: Measured, saved: dict[int, int] | None = None, device: str = "cpu"
) -> list[RowComparison]:
    """Row by row, every exact quantity of the engine against torch's measurement.

    With ``saved`` (from :func:`measure_saved`), each row also checks the bytes it keeps
    for backward, by the rules of ``device`` (they differ for dropout).
    """
    first = report.rows[0]
    out = [RowComparison(first, (Check("activation_bytes", first.activation_bytes, measured.input_bytes),))]
    if saved is not None:
        rules: Device = "cuda" if device == "cuda" else "cpu"
        kept = saved_for_backward(report.rows, dtype_bytes=report.dtype_bytes, batch=report.batch, device=rules)
    for row, m in zip(report.rows[1:], measured.rows, strict=True):
        checks = tuple(Check(q, getattr(row, q), getattr(m, q)) for q in QUANTITIES)
        if saved is not None:
            checks += (Check("saved_bytes", kept[row.index], saved[row.index]),)
        out.append(RowComparison(row, checks))
    return out


# --- timing -------------------------------------------------------------------------


@dataclass
class Timing:
    mode: str
    device: str
    device_name: str
    warmup: int
    seconds: list[float] = field(default_factory=list)
    flops_per_iter: int = 0
    peak_bytes: int | None = None
    baseline_bytes: int | None = None
    saved_bytes: int | None = None  #: with --train: what measure_saved found, set by the caller that measured it

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def quartiles(self) -> tuple[float, float]:
        """The 25th and 75th percentiles of the latencies: the spread around the median."""
        if len(self.seconds) < 2:
            return self.seconds[0], self.seconds[0]
        q1, _, q3 = statistics.quantiles(self.seconds, n=4, method="inclusive")
        return q1, q3

    @property
    def threads(self) -> int:
        return torch.get_num_threads()


def resolve_device(device: str) -> str:
    """``auto`` to ``cuda`` or ``cpu``; ValueError when CUDA is asked for and missing."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device is available to this torch")
    return device


@contextmanager
def _mode(model: nn.Module, train: bool) -> Iterator[None]:
    was = model.training
    model.train(train)
    try:
        yield
    finally:
        model.train(was)


#: With no --iters, timing goes on until this many steps and a second of them (at most MAX_ITERS).
MIN_ITERS = 20
MAX_ITERS = 10_000


def time_model(
    model: SpecModule,
    input_shape: tuple[int, ...],
    *,
    batch: int,
    train: bool,
    warmup: int,
    iters: int | None,
    tick: Callable[[], None] = lambda: None,
    min_seconds: float = 1.0,
) -> Timing:
    """Latencies of ``iters`` steps after ``warmup``: a forward pass, or forward + backward.

    ``iters=None`` times until the median is worth reading: at least :data:`MIN_ITERS` steps and
    ``min_seconds`` of them, at most :data:`MAX_ITERS`. Inference runs under ``torch.inference_mode``.
    CUDA steps are timed with CUDA events; CPU steps with ``perf_counter``.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    cuda = device.type == "cuda"
    x = torch.randn((batch, *input_shape), device=device, dtype=dtype)
    timing = Timing(
        mode="train" if train else "inference",
        device=device.type,
        device_name=torch.cuda.get_device_name(device) if cuda else f"{torch.get_num_threads()} threads",
        warmup=warmup,
    )

    def step() -> None:
        if train:
            model.zero_grad(set_to_none=True)
            y = model(x)
            sum(t.float().sum() for t in (y if isinstance(y, tuple) else (y,))).backward()
        else:
            with torch.inference_mode():
                model(x)

    with _mode(model, train):
        with FlopCounterMode(display=False) as counter:
            step()
        timing.flops_per_iter = int(counter.get_total_flops())
        for _ in range(warmup):
            step()
            tick()
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            timing.baseline_bytes = torch.cuda.memory_allocated(device)
        spent = 0.0
        while len(timing.seconds) < (iters or MAX_ITERS):
            if iters is None and len(timing.seconds) >= MIN_ITERS and spent >= min_seconds:
                break
            if cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                start.record()
                step()
                end.record()
                end.synchronize()
                timing.seconds.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                step()
                timing.seconds.append(time.perf_counter() - t0)
            spent += timing.seconds[-1]
            tick()
        if cuda:
            timing.peak_bytes = torch.cuda.max_memory_allocated(device)
    return timing


def measure_device(device: str, dtype: str) -> tuple[str, float, float]:
    """This machine's roof: (name, matmul FLOP/s, copy bandwidth in bytes/s), each the best of a few runs.

    The peak is a square matmul's (2 n^3 FLOPs), the bandwidth a large copy's (reads + writes).
    """
    where = torch.device(device)
    torch_dtype = TORCH_DTYPES[dtype]
    cuda = where.type == "cuda"
    n, numel = (8192, 2**28) if cuda else (2048, 2**24)

    def best(fn: Callable[[], object], repeats: int = 5) -> float:
        fn()  # warm up
        times = []
        for _ in range(repeats):
            if cuda:
                torch.cuda.synchronize(where)
            t0 = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize(where)
            times.append(time.perf_counter() - t0)
        return min(times)

    a = torch.randn((n, n), device=where).to(torch_dtype)
    b = torch.randn((n, n), device=where).to(torch_dtype)
    with torch.inference_mode():
        peak = 2 * n**3 / best(lambda: torch.mm(a, b))
        x = torch.empty(numel, device=where, dtype=torch_dtype)
        y = torch.empty_like(x)
        bandwidth = 2 * x.untyped_storage().nbytes() / best(lambda: y.copy_(x))
    name = torch.cuda.get_device_name(where) if cuda else f"this CPU ({torch.get_num_threads()} threads)"
    return f"{name}, measured", peak, bandwidth


def time_rows(
    model: SpecModule, input_shape: tuple[int, ...], batch: int, *, warmup: int = 2, iters: int = 10
) -> dict[int, float]:
    """Per row, the median seconds its module takes in an inference forward (CUDA events on CUDA).

    Hooks before and after each row's module mark its start and end; on CUDA the marks are
    events read once the pass is done, so the rows run as they would without them.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    cuda = device.type == "cuda"
    marks: dict[int, list[Any]] = {}
    handles = []

    def mark(index: int, at: int) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            if cuda:
                event = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
                event.record()
                marks[index][at] = event
            else:
                marks[index][at] = time.perf_counter()

        return hook

    samples: dict[int, list[float]] = {index: [] for index, _, _, _ in model.steps}
    x = torch.randn((batch, *input_shape), device=device, dtype=dtype)
    try:
        for index, _, module, _ in model.steps:
            marks[index] = [None, None]
            handles.append(module.register_forward_pre_hook(mark(index, 0)))
            handles.append(module.register_forward_hook(mark(index, 1)))
        with _mode(model, False), torch.inference_mode():
            for i in range(warmup + iters):
                model(x)
                if cuda:
                    torch.cuda.synchronize(device)
                if i < warmup:
                    continue
                for index, (start, end) in marks.items():
                    seconds = start.elapsed_time(end) / 1e3 if cuda else end - start
                    samples[index].append(seconds)
        return {index: statistics.median(times) for index, times in samples.items()}
    finally:
        for h in handles:
            h.remove()
