"""Step 2 of an import: each operation of the recorded run as the row of a layer kind, or a join.

A module a layer kind describes exactly (``nn.Conv2d``, ``nn.BatchNorm2d``, ``nn.ReLU`` ...) is one row, named
after it, and the operations it ran are its; it is checked by running: built as its kind at its input and given
its weights, it must give exactly its output. Any other module is read through, operation by operation. An ATen
operation is the module it stands for, which its kind then reads (``relu_`` is ``nn.ReLU(inplace=True)``,
``max_pool2d_with_indices`` is ``nn.MaxPool2d``), so that the kinds alone decide what is expressible; an
operation on a module's own parameters (``F.batch_norm(x, self.weight, ...)`` in timm's ``BatchNormAct2d``,
``F.conv2d`` after a padding computed from the size) is the row of that module, named after it. Adds,
concatenations, products and splits are joins, nested in the next step.

Anything else is refused, one line each, with the operation's ATen name, its module and the model's source line.
Torch is imported here only inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ..layers import KINDS
from ..layers.base import fmt
from .graph import COPY, Graph, Op, Refused, describe, holds_state
from .record import Node, Recording

if TYPE_CHECKING:
    from torch import nn

#: Reading the run reports progress every this many operations.
EVERY = 200


def entry_for(module: nn.Module) -> dict[str, Any] | None:
    """The entry of the kind that describes ``module``: where several do, the shortest (``global_avgpool2d`` over
    ``adaptive_avgpool2d`` with output 1)."""
    found = [e for kind in KINDS.values() if (e := kind.from_torch(module)) is not None]
    return min(found, key=len) if found else None


def arguments(node: Node) -> dict[str, Any]:
    """An ATen operation's arguments by the names of its schema, defaults filled in."""
    schema = node.target._schema
    out: dict[str, Any] = {}
    for i, arg in enumerate(schema.arguments):
        if i < len(node.args) and not arg.kwarg_only:
            out[arg.name] = node.args[i]
        elif arg.name in node.kwargs:
            out[arg.name] = node.kwargs[arg.name]
        elif arg.has_default_value():
            out[arg.name] = arg.default_value
        else:
            out[arg.name] = None
    return out


def _ints(value: Any) -> tuple[int, int]:
    """An ``int[2]`` argument as a pair (ATen passes a single number for both)."""
    if isinstance(value, int):
        return (value, value)
    values = [int(v) for v in value]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _scalar(value: Any) -> float | int:
    return value if isinstance(value, int | float) else float(value)


class _Cache:
    """What was checked by running, by the entry and its input's shape: each once."""

    def __init__(self) -> None:
        self.same: dict[tuple[str, tuple[int, ...], str], bool] = {}


def same_computation(
    module: nn.Module, found: dict[str, Any], shape: tuple[int, ...], cache: _Cache | None = None
) -> bool:
    """Whether ``found``'s module, built at an input of ``shape`` and given ``module``'s weights, computes exactly
    what ``module`` does there (an nn.LayerNorm over the width of a plane does not compute a ``layernorm``). The
    same entry at the same shape is checked once."""
    import torch

    from ..torch_backend import PaddedSame

    key = (repr(found), shape, type(module).__qualname__)
    if cache is not None and key in cache.same:
        return cache.same[key]
    kind = KINDS[found["kind"]]
    try:
        built = kind.torch_module(kind.model.model_validate(found), shape[1:]).eval()
        # a padding wrapper lends its conv's names to the row: the weights are the conv's
        holder = built.inner if isinstance(built, PaddedSame) else built
        source = module.inner if isinstance(module, PaddedSame) else module
        holder.load_state_dict(source.state_dict())
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            same = torch.equal(built(x.clone()), module(x.clone()))
    except Exception:  # a module its kind cannot rebuild at this input is not that kind
        same = False
    if cache is not None:
        cache.same[key] = same
    return same


def _activations() -> dict[str, Callable[[dict[str, Any]], nn.Module | None]]:
    """ATen's elementwise activations, each as the module it stands for (its kind reads the module)."""
    from torch import nn

    table: dict[str, Callable[[dict[str, Any]], nn.Module | None]] = {}
    makers: list[tuple[str, Callable[[dict[str, Any], bool], nn.Module | None]]] = [
        ("relu", lambda a, inplace: nn.ReLU(inplace)),
        ("silu", lambda a, inplace: nn.SiLU(inplace)),
        ("hardswish", lambda a, inplace: nn.Hardswish(inplace)),
        ("hardsigmoid", lambda a, inplace: nn.Hardsigmoid(inplace)),
        ("mish", lambda a, inplace: nn.Mish(inplace)),
        ("leaky_relu", lambda a, inplace: nn.LeakyReLU(_scalar(a["negative_slope"]), inplace)),
        ("hardtanh", lambda a, inplace: _hardtanh(a, inplace)),
        ("elu", lambda a, inplace: _elu(a, inplace)),
        ("sigmoid", lambda a, inplace: nn.Sigmoid() if not inplace else None),
        ("tanh", lambda a, inplace: nn.Tanh() if not inplace else None),
        ("gelu", lambda a, inplace: nn.GELU(a["approximate"]) if not inplace else None),
        (
            "softplus",
            lambda a, inplace: nn.Softplus(_scalar(a["beta"]), _scalar(a["threshold"])) if not inplace else None,
        ),
    ]
    for name, make in makers:
        table[name] = _bound(make, False)
        table[f"{name}_"] = _bound(make, True)
    return table


def _bound(
    make: Callable[[dict[str, Any], bool], nn.Module | None], inplace: bool
) -> Callable[[dict[str, Any]], nn.Module | None]:
    return lambda args: make(args, inplace)


def _hardtanh(args: dict[str, Any], inplace: bool) -> nn.Module | None:
    from torch import nn

    return nn.ReLU6(inplace) if (_scalar(args["min_val"]), _scalar(args["max_val"])) == (0, 6) else None


def _elu(args: dict[str, Any], inplace: bool) -> nn.Module | None:
    from torch import nn

    alpha, scale, input_scale = (_scalar(args[k]) for k in ("alpha", "scale", "input_scale"))
    if (scale, input_scale) == (1, 1):
        return nn.ELU(alpha, inplace)
    # torch.selu runs elu with SELU's constants
    if (alpha, scale, input_scale) == (1.6732632423543772, 1.0507009873554805, 1):
        return nn.SELU(inplace)
    return None


class Recogniser:
    """Reads a recorded run into the :class:`Graph`'s ops."""

    def __init__(self, rec: Recording, graph: Graph) -> None:
        self.rec = rec
        self.graph = graph
        self.root = graph.root
        self.cache = _Cache()
        self.activations = _activations()
        self.rows: dict[int, dict[str, Any]] = {}  # module nodes read as one row, by index: their entries
        self.inside: set[int] = set()  # indices of the nodes those modules ran
        self.items: dict[Node, list[Node]] = {}  # the results of a call that returns several
        self.cats: dict[tuple[Node, ...], Node] = {}  # each concatenation, by what it concatenates
        self.masks: set[Node] = set()  # a dropout's mask in eval mode, and what is made of it
        self.stacks: dict[Node, tuple[list[Node], int]] = {}  # torch.stack's tensors and dimension, to be summed
        self.param_views: dict[Node, tuple[Node, str]] = {}  # a view of a parameter: the parameter and the view
        #: the ATen operations read here, by name, each with the method that reads it
        self.handlers: dict[str, Callable[[Node, dict[str, Any]], Op | None]] = {
            "convolution": self._convolution,
            "native_batch_norm": self._batch_norm,
            "_native_batch_norm_legit_no_training": self._batch_norm,
            "_native_batch_norm_legit": self._batch_norm,
            "native_group_norm": self._native_group_norm,
            "native_layer_norm": self._native_layer_norm,
            "t": self._t,
            "addmm": self._addmm,
            "mm": self._mm,
            "max_pool2d_with_indices": self._max_pool2d_with_indices,
            "avg_pool2d": self._avg_pool2d,
            "_adaptive_avg_pool2d": self._adaptive_avg_pool2d,
            "adaptive_max_pool2d": self._adaptive_max_pool2d,
            "mean": self._mean,
            "constant_pad_nd": self._constant_pad_nd,
            "upsample_nearest2d": self._upsample_nearest2d,
            "upsample_bilinear2d": self._upsample_bilinear2d,
            "add": self._add,
            "add_": self._add,
            "mul": self._mul,
            "mul_": self._mul,
            "cat": self._cat,
            "stack": self._stack,
            "sum": self._sum,
            "split": self._split,
            "split_with_sizes": self._split,
            "slice": self._slice,
            "alias": self._alias,
            "view": self._view,
            "_unsafe_view": self._view,
            "reshape": self._view,
            "transpose": self._transpose,
            "clone": self._clone,
            "expand": self._expand,
            "permute": self._permute,
            "native_dropout": self._dropout,
            "bernoulli_": self._dropout,
        }

    # -- the run

    def read(self, progress: Callable[[int, int], None] | None = None) -> None:
        g = self.graph
        self.whole_modules()
        for node in self.rec.nodes:
            if node.op == "item":
                self.items.setdefault(node.args[0], []).append(node)
        total = len(self.rec.nodes)
        for i, node in enumerate(self.rec.nodes):
            if progress is not None and i % EVERY == 0:
                progress(i, total)
            if node.index in self.inside or node.op in ("param", "const", "output", "item"):
                continue
            try:
                op = self.op(node)
            except Refused as exc:
                why = str(exc)
                masks = [a for a in node.all_input_nodes if a in self.masks]
                if masks and node not in self.masks:  # made of a dropout's mask: said by the mask
                    self.masks.add(node)
                    why = g.refused[masks[0]]
                g.refused[node] = why
                for item in self.items.get(node, []):
                    g.refused[item] = why
                continue
            if op is None:
                continue
            target = self.items[node][0] if node in self.items and op.what != "chunk" else node
            if op.module is None:
                op.scope = node.scope
            if op.entries == [COPY] and op.inputs[0] in g.ops:
                # a row without parameters, where its input and its code both are: the module whose code runs it
                # (DenseNet's layer) holds the rows that read it, as a branch of its name
                from .graph import common

                op.scope = common([op.scope, g.ops[op.inputs[0]].scope])
            g.ops[target] = op
            if node in self.items and op.what != "chunk":
                for item in self.items[node][1:]:
                    g.refused[item] = f"the {item.args[1] + 1}. result of {describe(node)}, which cnncalc does not read"
                    g.explained.add(item)
        self.out_of_rows()

    def out_of_rows(self) -> None:
        """What runs inside a module that is a row itself (timm's ``BatchNormAct2d`` normalises with its own weight,
        then runs its ``act``; ``Conv2dSame`` pads, then convolves with its own weight) is written beside that row,
        unnamed: the row takes the module's name, and a block of the same name cannot hold the rest."""
        g = self.graph
        rows = {
            tuple(op.module.split(".")) for op in g.ops.values() if op.module is not None and g.has_params(op.module)
        }
        if not rows:
            return
        for op in g.ops.values():
            module = tuple(op.module.split(".")) if op.module is not None else None
            if module in rows:
                continue
            inside = [r for r in rows if op.scope[: len(r)] == r]
            if not inside:
                continue
            row = min(inside, key=len)
            if op.module is not None and g.has_params(op.module):
                continue  # a row of its own inside another's module: refused when named (its names cannot load)
            op.scope = row[:-1]
            op.module = None

    def whole_modules(self) -> None:
        """The modules a kind describes, each one row (the outermost, where one is in another)."""
        end = -1
        modules = sorted((n for n in self.rec.nodes if n.op == "module"), key=lambda n: (n.inner[0], -n.index))
        for node in modules:
            start = node.inner[0]
            if start < end:
                continue  # inside a module read whole
            assert node.module is not None
            shape = node.args[0].shape if isinstance(node.args[0], Node) else None
            found = entry_for(node.module) or self.resembling(node.module, shape)
            if found is None:
                continue
            self.rows[node.index] = found
            self.inside.update(range(start, node.index))
            end = node.index

    def resembling(self, module: nn.Module, shape: tuple[int, ...] | None) -> dict[str, Any] | None:
        """The entry of a kind that may describe a module of another class (timm's ``EcaModule``), where the kind's
        module, given the module's weights, computes exactly what it does at the input it ran on (``shape``)."""
        if shape is None:
            return None
        for kind in KINDS.values():
            found = kind.resembles(module)
            if found is not None and same_computation(module, found, shape, self.cache):
                return found
        return None

    # -- one node

    def tensor(self, arg: Any, node: Node) -> Node:
        g = self.graph
        if isinstance(arg, Node):
            arg = g.resolve(arg)
        if not isinstance(arg, Node) or (arg not in g.ops and arg not in g.refused):
            if isinstance(arg, Node) and arg.op == "param":
                raise Refused(f"the code reads the tensor '{arg.target}' directly, not through a module")
            if isinstance(arg, Node) and arg.op == "const":
                raise Refused(
                    f"{describe(node)} reads {arg.target} that is neither the input, a parameter or buffer of the"
                    " model, nor computed from them"
                )
            raise Refused(f"{describe(node)} takes {arg!r} where cnncalc expects a tensor of the run")
        return arg

    def shape(self, x: Node) -> tuple[int, ...] | None:
        """A tensor's shape as the spec's row has it (a plane's, where the model holds it channels-last)."""
        return self.graph.plane(x)

    def alias(self, node: Node, x: Any = None) -> None:
        """``node`` is the tensor ``x`` (by default its first argument) itself: readers of it read that (and a
        channels-last view's readers read a channels-last view)."""
        raw = node.args[0] if x is None else x
        self.graph.same[node] = self.tensor(raw, node)
        if raw in self.graph.cl:
            self.graph.cl.add(node)

    def op(self, node: Node) -> Op | None:
        g = self.graph
        if node.op == "input":
            return Op("input", [])
        if node.op == "module":
            return self.module(node)
        assert node.op == "call"
        if any(a in g.cl for a in node.all_input_nodes):
            # on the view until the permute back: what reads a refused operation here is on the view too
            g.cl.update([node, *self.items.get(node, [])])
            return self.channels_last(node)
        name = node.target._opname
        args = arguments(node)
        if name in self.activations:
            return self.activation(node, name, args)
        handler = self.handlers.get(name)
        if handler is not None:
            return handler(node, args)
        if node.shape is not None and not node.all_input_nodes and 0 in node.shape:
            return None  # an empty tensor made for an operation's own use (a batch norm's reserve)
        self.unknown(node)

    def unknown(self, node: Node, hint: str = "") -> NoReturn:
        """An operation no kind reads: refused, naming the parameter it reads where it reads one."""
        params = [a for a in node.all_input_nodes if a.op == "param"]
        if params:
            raise Refused(f"{describe(node)} reads the tensor '{params[0].target}' directly, not through a module")
        raise Refused(f"{describe(node)} is not an operation cnncalc imports{hint}")

    def module(self, node: Node) -> Op | None:
        g = self.graph
        found = self.rows.get(node.index)
        if found is None:
            self.alias(node, node.args[1])  # read through: its end is what it returned
            return None
        assert node.module is not None
        name = str(node.target)
        if node.args[0] in g.cl:
            return self.module_channels_last(node, node.args[0])
        x = self.tensor(node.args[0], node)
        shape = self.shape(x)
        if shape is not None and not same_computation(node.module, found, shape, self.cache):
            raise Refused(
                f"module '{name}' ({type(node.module).__name__}) on a {fmt(shape[1:])} input"
                f" does not compute what {found['kind']} does"
            )
        if found["kind"] == "identity":
            self.alias(node, node.args[0])  # nn.Identity, as timm holds one for every option left out: no row
            return None
        same = self.same_module(node, found)
        if same is not None:
            found, x = same
        g.calls[name] = g.calls.get(name, 0) + 1
        path = tuple(name.split("."))
        return Op("entry", [x], [found], path[:-1], name)

    def same_module(self, node: Node, found: dict[str, Any]) -> tuple[dict[str, Any], Node] | None:
        """A conv or a max pool without padding of its own after TensorFlow's 'same' padding (cnncalc's build of
        ``padding: same`` lends them so): the window with ``padding: same``, and what the padding read."""
        module = node.module
        unpadded = found.get("padding") not in (None, "same", "valid") and _ints(found["padding"]) == (0, 0)
        if found["kind"] == "conv2d" and unpadded:
            kernel, value = module.kernel_size, 0.0  # type: ignore[union-attr]
        elif found["kind"] == "maxpool2d" and unpadded and not found.get("ceil_mode"):
            kernel, value = module.kernel_size, float("-inf")  # type: ignore[union-attr]
        else:
            return None
        stride, dilation = _ints(found.get("stride") or kernel), _ints(found.get("dilation", 1))
        source = self.padded_same(node, node.args[0], kernel, stride, dilation, value)
        return None if source is None else ({**found, "padding": "same"}, source)

    def entry(self, node: Node, module: nn.Module, what: str = "") -> Op:
        """The row of the kind that describes the module an operation stands for."""
        found = entry_for(module)
        if found is None:
            raise Refused(f"{describe(node)}{what} is no layer kind of cnncalc")
        return Op("entry", [self.tensor(node.args[0], node)], [found])

    def activation(self, node: Node, name: str, args: dict[str, Any]) -> Op:
        module = self.activations[name](args)
        if module is None:
            settings = {k: v for k, v in args.items() if k != "self"}
            if not settings or node.writes:  # sigmoid_(): no kind computes it in place
                raise Refused(f"{describe(node)} is not an operation cnncalc imports")
            raise Refused(f"{describe(node)} with {settings} is no layer kind of cnncalc")
        return self.entry(node, module)

    # -- operations on a module's own parameters: the row of that module

    def owner(self, node: Node, params: list[Node | None], names: tuple[str, ...]) -> tuple[str, nn.Module]:
        """The module whose own parameters (and buffers) an operation reads as ``names`` (``weight``, ``bias`` ...):
        the row it makes is that module's, under its name, so that its state_dict loads."""
        read = [p for p in params if p is not None]
        bad = [p for p in read if p.op != "param"]
        if bad:
            computed = self.param_views.get(bad[0])
            what = f"'{computed[0].target}' as {computed[1]}" if computed else "a tensor computed in the model"
            raise Refused(f"{describe(node)} with a weight that is {what}; cnncalc reads a module's own parameters")
        owners = {str(p.target).rpartition(".")[0] for p in read}
        if len(owners) != 1:
            raise Refused(f"{describe(node)} with parameters of several modules: {', '.join(sorted(owners))}")
        (owner,) = owners
        if not owner:
            raise Refused(f"{describe(node)} reads the model's own parameters; cnncalc names a row after its module")
        module = self.root.get_submodule(owner)
        given = [str(p.target).rpartition(".")[2] if p is not None else None for p in params]
        wanted = [n for n, p in zip(names, params, strict=True) if p is not None]
        own = [k for k, _ in module.named_parameters(recurse=False)] + [
            k for k, _ in module.named_buffers(recurse=False)
        ]
        if [g for g in given if g is not None] != wanted or sorted(own) != sorted(
            {*wanted, *(("num_batches_tracked",) if "num_batches_tracked" in own else ())}
        ):
            raise Refused(
                f"{describe(node)} reads {', '.join(repr(str(p.target)) for p in read)}; a row of cnncalc holds its"
                f" module's {', '.join(wanted)}, and '{owner}' holds {', '.join(own)}"
            )
        return owner, module

    def owned(self, node: Node, x: Node, found: dict[str, Any] | None, owner: str) -> Op:
        if found is None:
            raise Refused(f"{describe(node)} is no layer kind of cnncalc with these settings")
        g = self.graph
        g.calls[owner] = g.calls.get(owner, 0) + 1
        return Op("entry", [x], [found], tuple(owner.split("."))[:-1], owner)

    def _convolution(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        x = self.tensor(a["input"], node)
        weight, bias = a["weight"], a["bias"]
        owner, _ = self.owner(node, [weight, bias], ("weight", "bias"))
        if len(weight.shape) != 4:
            raise Refused(f"{describe(node)} of a {len(weight.shape) - 2}-D kernel; cnncalc imports 2-D convolutions")
        stride, padding, dilation = _ints(a["stride"]), _ints(a["padding"]), _ints(a["dilation"])
        groups = int(a["groups"])
        source = (
            None
            if a["transposed"] or padding != (0, 0)
            else self.padded_same(node, x, weight.shape[2:], stride, dilation, 0.0)
        )
        conv: nn.Module
        if a["transposed"]:
            conv = nn.ConvTranspose2d(
                weight.shape[0],
                weight.shape[1] * groups,
                _ints(weight.shape[2:]),
                stride,
                padding,
                _ints(a["output_padding"]),
                groups,
                bias is not None,
                dilation,
                device="meta",
            )
        else:
            conv = nn.Conv2d(
                weight.shape[1] * groups,
                weight.shape[0],
                _ints(weight.shape[2:]),
                stride,
                padding,
                dilation,
                groups,
                bias is not None,
                device="meta",
            )
        found = entry_for(conv)
        if source is None:
            return self.owned(node, x, found, owner)
        # TensorFlow's 'same' (timm's Conv2dSame): the padding the size needs (from ``source``), then the conv
        return self.owned(node, source, None if found is None else {**found, "padding": "same"}, owner)

    def _batch_norm(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        x = self.tensor(a["input"], node)
        params = [a["weight"], a["bias"], a["running_mean"], a["running_var"]]
        owner, module = self.owner(node, params, ("weight", "bias", "running_mean", "running_var"))
        rank = len(self.shape(x) or ())
        if rank not in (2, 4):
            raise Refused(
                f"{describe(node)} of a {fmt(self.shape(x) or ())} tensor; cnncalc's batch norms take N x C x H x W or N x C"
            )
        tracked = a["running_mean"] is not None
        if a.get("training", not tracked) == tracked:
            raise Refused(f"{describe(node)} with batch statistics though the module holds running ones")
        momentum = getattr(module, "momentum", a["momentum"])
        made = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(
            self.shape(x)[1],  # type: ignore[index]
            float(a["eps"]),
            momentum,
            a["weight"] is not None,
            tracked,
            device="meta",
        )
        return self.owned(node, x, entry_for(made), owner)

    def _native_group_norm(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        x = self.tensor(a["input"], node)
        owner, _ = self.owner(node, [a["weight"], a["bias"]], ("weight", "bias"))
        if len(self.shape(x) or ()) != 4:
            raise Refused(
                f"{describe(node)} of a {fmt(self.shape(x) or ())} tensor; cnncalc's group norm takes N x C x H x W"
            )
        made = nn.GroupNorm(int(a["group"]), int(a["C"]), float(a["eps"]), a["weight"] is not None, device="meta")
        return self.owned(node, x, entry_for(made), owner)

    def _native_layer_norm(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        x = self.tensor(a["input"], node)
        if len(self.shape(x) or ()) != 2 or list(a["normalized_shape"]) != [self.shape(x)[1]]:  # type: ignore[index]
            raise Refused(
                f"{describe(node)} over {list(a['normalized_shape'])} of a {fmt(self.shape(x) or ())} tensor; cnncalc's"
                " layernorm normalises the channels of a plane (on its channels-last view) or the features of N x F"
            )
        owner, _ = self.owner(node, [a["weight"], a["bias"]], ("weight", "bias"))
        made = nn.LayerNorm(
            list(a["normalized_shape"]), float(a["eps"]), a["weight"] is not None, a["bias"] is not None, device="meta"
        )
        return self.owned(node, x, entry_for(made), owner)

    def _t(self, node: Node, a: dict[str, Any]) -> None:
        """A parameter transposed (``F.linear``'s weight): read by the matrix product after it."""
        source = a["self"]
        if isinstance(source, Node) and source.op == "param":
            self.param_views[node] = (source, "its transpose")
            return None
        raise Refused(f"{describe(node)} of a computed tensor is not an operation cnncalc imports")

    def _addmm(self, node: Node, a: dict[str, Any]) -> Op:
        return self.linear(node, a["mat1"], a["mat2"], a["self"])

    def _mm(self, node: Node, a: dict[str, Any]) -> Op:
        return self.linear(node, a["self"], a["mat2"], None)

    def linear(self, node: Node, x: Any, weight_t: Any, bias: Any) -> Op:
        """``F.linear`` on N x F features: a matrix product with a module's weight transposed, and its bias."""
        from torch import nn

        x = self.tensor(x, node)
        view = self.param_views.get(weight_t)
        if view is None or view[1] != "its transpose":
            raise Refused(f"{describe(node)} of two computed tensors; cnncalc reads a linear layer's weight")
        weight = view[0]
        owner, _ = self.owner(node, [weight, bias], ("weight", "bias"))
        made = nn.Linear(weight.shape[1], weight.shape[0], bias is not None, device="meta")  # type: ignore[index]
        return self.owned(node, x, entry_for(made), owner)

    # -- pools, padding, resampling

    def _max_pool2d_with_indices(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        stride = a["stride"] or a["kernel_size"]
        x = a["self"]
        if isinstance(x, Node) and _ints(a["padding"]) == (0, 0) and not a["ceil_mode"]:
            k, s, d = _ints(a["kernel_size"]), _ints(stride), _ints(a["dilation"])
            source = self.padded_same(node, x, k, s, d, float("-inf"))
            if source is not None:
                # TensorFlow's 'same' (timm's MaxPool2dSame): padded with -inf as the size needs, then the pool
                found = entry_for(nn.MaxPool2d(k, s, 0, d))
                assert found is not None
                return Op("entry", [source], [{**found, "padding": "same"}])
        return self.entry(
            node, nn.MaxPool2d(a["kernel_size"], stride, a["padding"], a["dilation"], ceil_mode=a["ceil_mode"])
        )

    def _avg_pool2d(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        stride = a["stride"] or a["kernel_size"]
        return self.entry(
            node,
            nn.AvgPool2d(
                a["kernel_size"], stride, a["padding"], a["ceil_mode"], a["count_include_pad"], a["divisor_override"]
            ),
        )

    def padded_same(
        self, node: Node, x: Node, kernel: Any, stride: tuple[int, int], dilation: tuple[int, int], value: float
    ) -> Node | None:
        """The tensor ``x`` pads, where ``x`` is a ``constant_pad_nd`` by ``value`` that only ``node`` reads and whose
        padding is TensorFlow's 'same' for ``node``'s window at this size (that padding is the window's own)."""
        from ..layers.base import same_pads

        g = self.graph
        pad = g.resolve(x)
        if pad.op != "call" or pad.target._opname != "constant_pad_nd" or pad.index in self.inside:
            return None
        args = arguments(pad)
        readers = [u for u in pad.users if u.op != "module" and u.index not in self.inside]
        if (
            readers != ([] if node.op == "module" else [node])
            or _scalar(args["value"]) != value
            or len(args["pad"]) != 4
        ):
            return None
        source: Node = g.resolve(args["self"])
        shape = g.plane(source)
        if shape is None or len(shape) != 4:
            return None
        pads = tuple(int(p) for p in args["pad"])
        if pads != same_pads(shape[1:], _ints(kernel), stride, dilation) or not any(pads):
            return None  # (a padding by nothing copies: 'same' pads only where the size needs it)
        if value == 0.0 and stride == (1, 1):
            return None  # PyTorch's own 'same' computes otherwise at stride 1: the zero padding stays a row
        g.ops.pop(pad, None)
        g.refused.pop(pad, None)
        return source

    def _adaptive_avg_pool2d(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        return self.entry(node, nn.AdaptiveAvgPool2d(tuple(a["output_size"])))

    def _adaptive_max_pool2d(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        return self.entry(node, nn.AdaptiveMaxPool2d(tuple(a["output_size"])))

    def _mean(self, node: Node, a: dict[str, Any]) -> Op:
        x = self.tensor(a["self"], node)
        before = self.shape(x)
        dims = a.get("dim")
        if before is None or len(before) != 4 or sorted(d % 4 for d in (dims or ())) != [2, 3]:
            raise Refused(f"{describe(node)} over {dims}; cnncalc imports a mean over H and W")
        entries: list[dict[str, Any]] = [{"kind": "global_avgpool2d"}]
        if not a.get("keepdim"):
            entries.append({"kind": "flatten"})
        return Op("entry", [x], entries)

    def _constant_pad_nd(self, node: Node, a: dict[str, Any]) -> Op:
        from torch import nn

        pad = [int(p) for p in a["pad"]]
        if len(pad) != 4 or _scalar(a["value"]) != 0:
            raise Refused(
                f"{describe(node)} by {pad} with {a['value']}; cnncalc pads the height and width with zeros"
                " ([left, right, top, bottom])"
            )
        return self.entry(node, nn.ZeroPad2d((pad[0], pad[1], pad[2], pad[3])))

    def _upsample_nearest2d(self, node: Node, a: dict[str, Any]) -> Op:
        return self.upsample(node, a, "nearest", None)

    def _upsample_bilinear2d(self, node: Node, a: dict[str, Any]) -> Op:
        return self.upsample(node, a, "bilinear", bool(a["align_corners"]))

    def upsample(self, node: Node, a: dict[str, Any], mode: str, align_corners: bool | None) -> Op:
        """``F.interpolate`` as nn.Upsample: by its scale where the code gives one (PyTorch computes the source
        index from it), else to the size it gives (computed from a tensor's size or not: the size it has at this
        input, as the spec's input is fixed)."""
        from torch import nn

        scales = (a.get("scales_h"), a.get("scales_w"))
        if scales[0] is not None and scales[1] is not None:
            factors = (float(scales[0]), float(scales[1]))
            made = nn.Upsample(scale_factor=factors, mode=mode, align_corners=align_corners)
        else:
            made = nn.Upsample(size=tuple(int(s) for s in a["output_size"]), mode=mode, align_corners=align_corners)
        return self.entry(node, made)

    # -- joins

    def _add(self, node: Node, a: dict[str, Any]) -> Op | None:
        g = self.graph
        other = a["other"]
        if not isinstance(other, Node) and other == 0 and _scalar(a.get("alpha", 1)) == 1:
            # ``out = 0; out = out + f(x)`` (timm's MobileOne) adds nothing: a copy, or in place the tensor itself
            if node.writes:
                self.alias(node)
                return None
            return Op("entry", [self.tensor(a["self"], node)], [dict(COPY)])
        if not isinstance(other, Node):
            raise Refused(f"{describe(node)} of a tensor and the number {other}; cnncalc adds tensors")
        if _scalar(a.get("alpha", 1)) != 1:
            raise Refused(f"{describe(node)} with a scale (alpha={a['alpha']})")
        inputs = [self.tensor(a["self"], node), self.tensor(other, node)]
        shapes = [g.plane(t) for t in inputs]
        if shapes[0] != shapes[1]:
            raise Refused(
                f"{describe(node)} of {fmt((shapes[0] or ())[1:])} and {fmt((shapes[1] or ())[1:])}: it broadcasts;"
                " cnncalc adds tensors of one shape"
            )
        return Op("add", inputs, inplace=node.writes)

    def _mul(self, node: Node, a: dict[str, Any]) -> Op:
        other = a["other"]
        if not isinstance(other, Node):
            from ..torch_backend import ScaleModule

            return self.entry(node, ScaleModule(float(other), node.writes))  # Inception-ResNet's 0.17 * f(x)
        pair = [a["self"], other]
        if any(p.op == "param" or p in self.param_views for p in pair):
            return self.layer_scale(node, pair)
        if node.writes:
            raise Refused(
                f"{describe(node)} writes a product into its input; cnncalc's multiply allocates its result:"
                " compute it out of place (x * y)"
            )
        return Op("mul", [self.tensor(p, node) for p in pair], inplace=node.writes)

    def layer_scale(self, node: Node, pair: list[Node]) -> Op:
        """A parameter times a tensor (ConvNeXt's ``self.layer_scale * x``): a ``layer_scale`` row named after the
        parameter, in its module, where the parameter is the C x 1 x 1 factors the kind holds."""
        import torch

        from ..torch_backend import LayerScaleModule

        params = [p for p in pair if p.op == "param" or p in self.param_views]
        if len(params) != 1 or (node.writes and pair[0] is params[0]):
            raise Refused(f"{describe(node)} of two tensors read directly, not through modules")
        (read,) = params
        x = self.tensor(pair[1] if pair[0] is read else pair[0], node)
        param = self.param_views[read][0] if read in self.param_views else read  # (a view of it: ``gamma.view``)
        name = str(param.target)
        value = param.value
        assert value is not None and read.shape is not None
        shape = self.shape(x) or ()
        factors = (shape[1], *(1 for _ in shape[2:])) if len(shape) > 1 else ()
        # what the product sees must be one factor per channel, broadcast over the rest (N x C x 1 x 1 or C x 1 x 1),
        # or one number (NF-Nets' skipinit gain, a 0-d parameter)
        seen = tuple(read.shape[1:]) if len(read.shape) == len(shape) and read.shape[0] == 1 else tuple(read.shape)
        if value.numel() == 1 and seen in ((), (1,)) and tuple(value.shape) in ((), (1,)) and node.shape == shape:
            factors = ()
        elif not factors or seen != factors or value.numel() != factors[0] or node.shape != shape:
            self.graph.explained.add(param)
            raise Refused(
                f"{describe(node)}: the parameter '{name}' of shape {list(value.shape)} times a tensor of"
                f" {list(shape)[1:]}; cnncalc's layer_scale is one factor per channel"
            )
        if factors and tuple(value.shape) not in (factors, (factors[0],)):
            raise Refused(
                f"{describe(node)}: the parameter '{name}' of shape {list(value.shape)} is read as"
                f" {list(factors)}; cnncalc's layer_scale holds C x 1 x 1 factors, or C"
            )
        # factors held as C and viewed as C x 1 x 1 (timm's ``x.mul(self.gamma.reshape(1, -1, 1, 1))``)
        module = LayerScaleModule(tuple(value.shape), 0.0, factors, node.writes)
        with torch.no_grad():
            module.parameter.copy_(value)
        found = entry_for(module)
        assert found is not None
        g = self.graph
        g.calls[name] = g.calls.get(name, 0) + 1
        return Op("entry", [x], [found], tuple(name.split("."))[:-1], name)

    def _cat(self, node: Node, a: dict[str, Any]) -> Op:
        """torch.cat along the channels. DenseNet's layers each concatenate every earlier output again: a
        concatenation of what an earlier one holds, and one more, is that one and the new tensor (the same
        values), which nests as a concat with an identity branch."""
        tensors = list(a["tensors"])
        dim = int(a["dim"])
        rank = len(self.graph.plane(tensors[0]) or ())
        # the channels of N x C x H x W, or the features of N x F (a flat network's concat)
        if (rank, dim) not in ((4, 1), (4, -3), (2, 1), (2, -1)):
            raise Refused(
                f"{describe(node)} along dim {dim}; cnncalc concatenates the channels of C x H x W"
                " or the features of a flat N"
            )
        inputs = [self.tensor(t, node) for t in tensors]
        earlier = self.cats.get(tuple(inputs[:-1]))
        self.cats[tuple(inputs)] = node  # (one computed again is a concat again: torch allocates it again)
        if len(inputs) == 1:  # a copy of it (DenseNet's layers begin with one): a concat of one identity branch
            return Op("entry", inputs, [dict(COPY)])
        return Op("cat", [earlier, inputs[-1]] if earlier is not None else inputs)

    def _stack(self, node: Node, a: dict[str, Any]) -> None:
        """``torch.stack(xs)``: read only where it is summed over the new dimension (smp's FPN merges so)."""
        tensors = [self.tensor(t, node) for t in a["tensors"]]
        self.stacks[node] = (tensors, int(a.get("dim") or 0))
        self.unknown(node, "; cnncalc reads torch.stack(xs).sum(0), an add")

    def _sum(self, node: Node, a: dict[str, Any]) -> Op:
        """``torch.stack(xs).sum(0)``: an add of the tensors, ``stack: true`` (the stack is a copy of every one)."""
        g = self.graph
        x = g.resolve(a["self"]) if isinstance(a["self"], Node) else None
        stacked = self.stacks.get(x) if x is not None else None
        dims = [int(d) for d in (a.get("dim") or [])]
        if x is None or stacked is None or stacked[1] != 0 or dims != [0] or a.get("keepdim"):
            self.unknown(node, "" if stacked is None else "; cnncalc reads torch.stack(xs).sum(0), an add")
        tensors, _ = stacked
        shapes = {g.plane(t) for t in tensors}
        if len(shapes) != 1 or len(tensors) < 2:
            raise Refused(f"{describe(node)} of {len(tensors)} tensors of shapes {sorted(map(str, shapes))}")
        if [u for u in x.users if u.index not in self.inside and u.op != "module"] != [node]:
            raise Refused(f"{describe(node)}: the stack it sums is read by other operations too")
        g.refused.pop(x, None)
        return Op("add", tensors, stack=True)

    def _split(self, node: Node, a: dict[str, Any]) -> Op:
        """``torch.chunk`` (ATen's split by a size) and ``torch.split`` along the channels: each part a view."""
        x = self.tensor(a["self"], node)
        dim = int(a["dim"])
        shape = self.graph.plane(x) or ()
        if len(shape) != 4 or dim % 4 != 1:
            raise Refused(f"{describe(node)} along dim {dim}; cnncalc splits the channels")
        sizes = [int(item.shape[1]) for item in self.items.get(node, []) if item.shape is not None]
        for i, item in enumerate(self.items.get(node, [])):
            self.graph.ops[item] = Op("part", [node], index=i, scope=node.scope)
        return Op("chunk", [x], sizes=sizes)

    def _slice(self, node: Node, a: dict[str, Any]) -> Op | None:
        """``x[:, start:stop]``: a ``slice`` of the channels (a view); all of them, the tensor itself."""
        x = self.tensor(a["self"], node)
        shape = self.shape(x) or ()
        dim = int(a["dim"]) % max(len(shape), 1)
        size = shape[dim] if dim < len(shape) else 0
        start = min(max(int(a["start"] or 0) + (size if (a["start"] or 0) < 0 else 0), 0), size)
        stop = min(max(int(a["end"] if a["end"] is not None else size) + (size if (a["end"] or 0) < 0 else 0), 0), size)
        if (start, stop) == (0, size) and int(a["step"]) == 1:
            self.alias(node)
            return None
        if dim != 1 or int(a["step"]) != 1 or len(shape) != 4 or x in self.graph.cl:
            raise Refused(
                f"{describe(node)} of {fmt(shape[1:])} along dim {dim} ({start}:{stop}:{a['step']}); cnncalc slices"
                " the channels"
            )
        return Op("entry", [x], [{"kind": "slice", "start": start, "stop": stop}])

    def _alias(self, node: Node, a: dict[str, Any]) -> None:
        self.alias(node)

    # -- views and copies

    def _view(self, node: Node, a: dict[str, Any]) -> Op | None:
        g = self.graph
        source = a["self"]
        if isinstance(source, Node) and source.op == "param":
            self.param_views[node] = (source, f"a view {fmt(node.shape or ())}")
            return None
        x = self.tensor(source, node)
        before, shape = self.shape(x), node.shape
        if shape is not None and before is not None and len(before) == 4:
            if shape == (before[0], before[1] * before[2] * before[3]):
                return Op("entry", [x], [{"kind": "flatten"}])
            if shape == before:
                self.alias(node)
                return None
        if shape is not None and before is not None and shape == before and len(shape) == 2:
            self.alias(node)
            return None
        shuffle = self.shuffle(node, x)
        if shuffle is not None:
            return shuffle
        del g
        raise Refused(f"{describe(node)} to {list(shape or ())} from {list(before or ())}")

    def shuffle(self, node: Node, x: Node) -> Op | None:
        """torchvision's channel_shuffle: view as N x g x C/g x H x W, transpose(1, 2), a contiguous copy, view back
        (the copy is the shuffle's one allocation)."""
        copy = x
        if copy.op != "call" or copy.target._opname != "clone":
            return None
        transposed = copy.args[0]
        if transposed.op != "call" or transposed.target._opname != "transpose":
            return None
        if tuple(sorted(int(d) % 5 for d in transposed.args[1:3])) != (1, 2):
            return None
        grouped = transposed.args[0]
        if grouped.op != "call" or grouped.target._opname not in ("view", "_unsafe_view"):
            return None
        source, five = self.graph.resolve(grouped.args[0]), grouped.shape
        if five is None or len(five) != 5 or node.shape is None or source.shape != node.shape:
            return None
        for step in (grouped, transposed, copy):
            self.graph.refused.pop(step, None)
        return Op("entry", [self.tensor(source, node)], [{"kind": "channel_shuffle", "groups": five[1]}])

    def _transpose(self, node: Node, a: dict[str, Any]) -> None:
        raise Refused(f"{describe(node)} of dims {a['dim0']} and {a['dim1']} is not an operation cnncalc imports")

    def _clone(self, node: Node, a: dict[str, Any]) -> Op:
        """A copy (``x.contiguous()`` of a view laid out otherwise, ``x.clone()``): a copy row, which allocates."""
        x = self.tensor(a["self"], node)
        if len(self.shape(x) or ()) not in (2, 4):
            raise Refused(f"{describe(node)} of a {fmt(self.shape(x) or ())} tensor")
        return Op("entry", [x], [dict(COPY)])

    def _expand(self, node: Node, a: dict[str, Any]) -> None:
        raise Refused(f"{describe(node)} to {list(node.shape or ())} is not an operation cnncalc imports")

    def _permute(self, node: Node, a: dict[str, Any]) -> None:
        dims = [int(d) for d in a["dims"]]
        x = self.tensor(a["self"], node)
        if dims != [0, 2, 3, 1] or len(self.shape(x) or ()) != 4:
            raise Refused(
                f"{describe(node)} to {dims}; cnncalc reads a permute to channels-last (0, 2, 3, 1)"
                " and back, around a layer norm or a linear over the channels (ConvNeXt)"
            )
        self.alias(node)
        self.graph.cl.add(node)
        return None

    def _dropout(self, node: Node, a: dict[str, Any]) -> None:
        """``F.dropout`` with ``training=True`` (its default) in eval mode: a mask drawn (``bernoulli_``), scaled
        and multiplied in; the mask and what is made of it are said once, here."""
        self.masks.add(node)
        self.graph.explained.update(node.all_input_nodes)  # (the empty tensor the mask is drawn into)
        raise Refused(
            f"{describe(node)}: F.dropout with training=True (its default) drops values at inference too; a"
            " spec's dropout is nn.Dropout's, off in eval mode: pass training=self.training"
        )

    # -- a plane's channels-last view (ConvNeXt)

    def channels_last(self, node: Node) -> Op | None:
        """An operation on a channels-last view of a plane (``x.permute(0, 2, 3, 1)``), as ConvNeXt computes over
        the channels: ``F.layer_norm`` with a module's own weight and bias is a ``layernorm``, a GELU right after
        a linear over the channels its ``activation``, and the permute back the plane again. Anything else on it
        is refused."""
        from torch import nn

        from ..torch_backend import ChannelsLast

        g = self.graph
        views = [a for a in node.all_input_nodes if a in g.cl]
        x = node.args[0] if node.args and isinstance(node.args[0], Node) else None
        name = node.target._opname
        if views != [node.args[0]] if node.args else True:
            raise Refused(f"{describe(node)} on a channels-last view (x.permute(0, 2, 3, 1)) is not one cnncalc reads")
        assert x is not None
        a = arguments(node)
        if name == "permute" and [int(d) for d in a["dims"]] == [0, 3, 1, 2]:
            self.alias(node)
            g.cl.discard(node)  # the plane again
            return None
        if name == "native_layer_norm":
            plane = g.plane(x)
            assert plane is not None
            if list(a["normalized_shape"]) != [plane[1]]:
                raise Refused(f"{describe(node)} over {list(a['normalized_shape'])} of a channels-last view")
            owner, module = self.owner(node, [a["weight"], a["bias"]], ("weight", "bias"))
            norm = nn.LayerNorm(
                list(a["normalized_shape"]), float(a["eps"]), a["weight"] is not None, a["bias"] is not None
            )
            norm.load_state_dict(module.state_dict())
            found = entry_for(ChannelsLast(norm))
            op = self.owned(node, self.tensor(x, node), found, owner)
            g.cl.add(self.items[node][0] if node in self.items else node)
            return op
        if name in self.activations:
            made = self.activations[name](a)
            if made is not None:
                self.after_linear(node, x, made)
                return None
        raise Refused(f"{describe(node)} on a channels-last view (x.permute(0, 2, 3, 1)) is not one cnncalc reads")

    def module_channels_last(self, node: Node, x: Node) -> Op | None:
        """A module on a channels-last view: ``nn.LayerNorm`` (a ``layernorm``) or ``nn.Linear`` (a
        ``channel_linear``) over the channels, or an activation right after such a linear."""
        from ..torch_backend import ChannelsLast

        g = self.graph
        module = node.module
        assert module is not None
        name = str(node.target)
        found = entry_for(ChannelsLast(module))
        plane = g.plane(x)
        assert plane is not None
        if found is None:
            if holds_state(module):
                raise Refused(
                    f"module '{name}' ({type(module).__name__}) on a channels-last view is no layer kind of cnncalc"
                )
            self.after_linear(node, x, module)
            return None
        if not same_computation(ChannelsLast(module), found, plane, self.cache):
            raise Refused(
                f"module '{name}' ({type(module).__name__}) on a {fmt(plane[1:])} input does not compute what"
                f" {found['kind']} does"
            )
        g.calls[name] = g.calls.get(name, 0) + 1
        g.cl.add(node)
        return Op("entry", [self.tensor(x, node)], [found], tuple(name.split("."))[:-1], name)

    def after_linear(self, node: Node, x: Node, act: nn.Module) -> None:
        """An activation on a channels-last linear's output that nothing else reads: that row's ``activation``
        (ConvNeXt's GELU), where the kind takes it."""
        from ..torch_backend import ChannelsLast

        g = self.graph
        linear = g.resolve(x)
        made = g.ops.get(linear)
        found = None
        readers = [u for u in linear.users if u.index not in self.inside and u.op != "module"]
        alone = made is not None and made.module is not None and len(readers) <= 1 and len(made.entries) == 1
        if made is not None and made.module is not None and alone and "activation" not in made.entries[0]:
            try:
                module = self.root.get_submodule(made.module)
            except AttributeError:
                module = None
            if module is not None:
                found = entry_for(ChannelsLast(module, act))
        if found is None:
            raise Refused(
                f"{describe(node)} on a channels-last view (x.permute(0, 2, 3, 1)) is no row of cnncalc;"
                " it reads a GELU there only right after a linear"
            )
        made.entries = [found]  # type: ignore[union-attr]
        self.alias(node, x)
        g.cl.add(node)
