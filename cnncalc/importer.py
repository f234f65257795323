"""From a PyTorch module to a spec: ``cnncalc.from_torch(module, input_shape)`` (``cnncalc import``).

The module is traced with ``torch.fx`` (every module a layer kind describes is a leaf; containers such as
torchvision's ``Conv2dNormActivation`` are traced through), run once on zeros to learn every tensor's shape,
and its graph is read back as entries:

* a module becomes the entry its kind's :meth:`~cnncalc.layers.base.Kind.from_torch` gives; the functions
  torchvision's CNNs call (``F.relu``, ``F.max_pool2d``, ``F.dropout`` ...) become the module they stand for
  first, so that the kinds alone decide what is expressible;
* where the graph forks and joins again, the join says the structure: an add is a ``residual``, a
  ``torch.cat`` a ``concat`` (a ``split`` after ``chunk``), a product with the fork's own tensor a ``multiply``;
* rows are named after the module tree, through nested ``sequential`` entries, so that the model's
  ``state_dict`` loads into ``build(spec)`` by name.

Anything else is a problem, one line each, located at its module and source line: nothing is dropped or
counted as 0 in silence. Torch is imported here only inside the functions.
"""

from __future__ import annotations

import contextlib
import io
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain, count
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import Problem, SpecError
from .fields import INPLACE_ACTIVATIONS
from .layers import KINDS
from .layers.base import fmt
from .machine import out_of_memory
from .spec import RESERVED_ARGS, Spec, parse_spec

if TYPE_CHECKING:
    from torch import fx, nn

#: Progress callback: (what is being done, the step it is, out of how many steps).
Progress = Callable[[str, int, int], None]

#: The steps of an import, for progress.
_STEPS = 5

#: Reading the graph reports progress every this many operations.
_EVERY = 50


def entry_for(module: nn.Module) -> dict[str, Any] | None:
    """The entry of the kind that describes ``module``: where several do, the shortest (``global_avgpool2d`` over
    ``adaptive_avgpool2d`` with output 1)."""
    found = [e for kind in KINDS.values() if (e := kind.from_torch(module)) is not None]
    return min(found, key=len) if found else None


# --- the graph, as cnncalc reads it ---------------------------------------------------------------


@dataclass
class _Op:
    """One tensor of the traced graph and how it is made."""

    what: str  # entry, add, cat, mul, chunk, part, input
    inputs: list[Any]  # fx nodes
    entries: list[dict[str, Any]] = field(default_factory=list)
    scope: tuple[str, ...] = ()  # the module path the op runs in
    module: str | None = None  # a leaf module's qualified name
    inplace: bool = False
    index: int = 0  # a part's index


@dataclass
class _Leaf:
    op: _Op
    node: Any = None  # the fx node it makes
    reads: Any = None  # the node it reads by name (from:), where it does not read the item before it


@dataclass
class _Part:
    index: int
    node: Any = None  # the fx node of the part (getitem of the chunk)


@dataclass
class _Struct:
    what: str  # residual, concat, split, multiply
    branches: list[list[Any]]  # residual: [body, shortcut]; multiply: [body], or [a, b] for a product of two
    scope: tuple[str, ...]
    inplace: bool = False
    reshapes: bool = False  # its output's shape is not its input's
    node: Any = None  # the join's node
    fork: Any = None  # the node its branches start from
    reads: Any = None
    flat: bool = False  # nesting cannot say it: written as its branches' rows and a join of them (from:)
    sections: list[int] | None = None  # a split's channels per branch, where torch.chunk's parts are unequal
    parts: list[Any] = field(default_factory=list)  # a split's parts (fx nodes), one per branch


@dataclass
class _Join:
    """A join of named rows (``{kind: add, from: [a, b]}``): a structure written flat."""

    what: str  # add, concat, multiply
    inputs: list[Any]  # the nodes it joins
    scope: tuple[str, ...]
    node: Any
    inplace: bool = False
    reads: Any = None  # unused: a join names what it reads


class _Refused(Exception):
    pass


class _Unreturned(_Refused):
    """An output no row of the spec holds, to name in ``outputs``."""

    def __init__(self, node: Any) -> None:
        super().__init__()
        self.node = node


def _frame(node: Any) -> tuple[str, int] | None:
    """The model's own line that made ``node`` (the last frame of its stack outside torch)."""
    found = [f for f in re.findall(r'File "([^"]+)", line (\d+)', node.stack_trace or "") if not _in_torch(f[0])]
    return (found[-1][0], int(found[-1][1])) if found else None


def _source_line(node: Any) -> str:
    where = _frame(node)
    return f" ({where[0]}:{where[1]})" if where else ""


def _augmented(node: Any) -> bool:
    """Whether an add is the ``+=`` of the model's ``out += identity``, which PyTorch computes in place: torch.fx
    records it as ``out + identity``, so the source says it (the line is an augmented assignment, and the add is
    the last operation it makes)."""
    import linecache

    where = _frame(node)
    if where is None or (node.next.op != "output" and _frame(node.next) == where):
        return False
    return re.match(r"\s*[A-Za-z_][\w.]*\s*\+=", linecache.getline(*where)) is not None


def _in_torch(filename: str) -> bool:
    import torch

    # torch's folder and what is in it, not torchvision's beside it (site-packages/torchvision starts the same)
    return Path(filename).is_relative_to(Path(torch.__file__).parent)


def _scope_of(node: Any) -> tuple[str, ...]:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ()
    path = list(stack.values())[-1][0]
    return tuple(path.split(".")) if path else ()


_POOLS: dict[str, list[str]] = {
    "max_pool2d": ["kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"],
    "avg_pool2d": ["kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"],
    "adaptive_avg_pool2d": ["output_size"],
    "adaptive_max_pool2d": ["output_size", "return_indices"],
    "dropout": ["p", "training", "inplace"],
}


def _functional_modules() -> dict[Any, tuple[Callable[..., nn.Module], list[str]]]:
    """The functions (and methods, by name) torchvision's CNNs call, as the module each stands for and the names
    of its arguments after the input."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    table: dict[Any, tuple[Callable[..., nn.Module], list[str]]] = {}
    cls: type[nn.Module]
    for fn, cls in (
        (F.relu, nn.ReLU),
        (torch.relu, nn.ReLU),
        ("relu", nn.ReLU),
        (F.relu6, nn.ReLU6),
        (F.hardswish, nn.Hardswish),
        (F.hardsigmoid, nn.Hardsigmoid),
        (F.silu, nn.SiLU),
    ):
        table[fn] = (cls, ["inplace"])
    table[torch.relu_] = table["relu_"] = (lambda: nn.ReLU(inplace=True), [])
    for fn, cls in (
        (torch.sigmoid, nn.Sigmoid),
        ("sigmoid", nn.Sigmoid),
        (F.sigmoid, nn.Sigmoid),
        (torch.tanh, nn.Tanh),
        ("tanh", nn.Tanh),
    ):
        table[fn] = (cls, [])
    table[F.gelu] = (nn.GELU, ["approximate"])
    table[F.max_pool2d] = (nn.MaxPool2d, _POOLS["max_pool2d"])
    table[F.avg_pool2d] = (nn.AvgPool2d, _POOLS["avg_pool2d"])
    table[F.adaptive_avg_pool2d] = (nn.AdaptiveAvgPool2d, _POOLS["adaptive_avg_pool2d"])
    table[F.adaptive_max_pool2d] = (nn.AdaptiveMaxPool2d, _POOLS["adaptive_max_pool2d"])
    table[F.dropout] = (lambda p=0.5, training=True, inplace=False: nn.Dropout(p, inplace), _POOLS["dropout"])
    return table


def _holds_state(module: nn.Module, recurse: bool = True) -> bool:
    """Whether a module holds parameters or buffers (a batch norm's running statistics): what a state_dict loads."""
    return any(True for _ in module.parameters(recurse)) or any(True for _ in module.buffers(recurse))


def _shared_modules(module: nn.Module) -> list[Problem]:
    """A module with state registered under two names (``self.b = self.a``): the state_dict holds its weights
    twice, and a spec's rows each have their own, so one of the names would not load."""
    names: dict[int, list[str]] = {}
    for name, child in module.named_modules(remove_duplicate=False):
        if name and _holds_state(child, recurse=False):
            names.setdefault(id(child), []).append(name)
    return [
        Problem(f"{both[0]}: the same module is also '{both[1]}'; a spec's rows each have their own weights")
        for both in names.values()
        if len(both) > 1
    ]


def _writes_in_place(node: Any, gm: Any) -> bool:
    """Whether a traced operation writes into its first input: a method or function named with a trailing
    underscore (``y.sigmoid_()``, ``torch.relu_``), an augmented operator, ``inplace=True``, or a module so built."""
    if node.op == "call_method":
        return str(node.target).endswith("_") and not str(node.target).startswith("__")
    if node.op == "call_function":
        name = getattr(node.target, "__name__", "")
        return (
            bool(node.kwargs.get("inplace"))
            or (name.endswith("_") and not name.startswith("__"))
            or (node.target in (operator.iadd, operator.imul, operator.isub, operator.itruediv))
        )
    if node.op == "call_module":
        return bool(getattr(gm.get_submodule(node.target), "inplace", False))
    return False


def _check_dropout(key: Any, kwargs: dict[str, Any], node: Any) -> None:
    """``F.dropout`` drops values whenever ``training`` is true, its default: in the model's eval mode too,
    where a spec's dropout (nn.Dropout's) passes its input on."""
    import torch.nn.functional as F

    if key is F.dropout and kwargs.get("training", True) and kwargs.get("p", 0.5) > 0:
        raise _Refused(
            f"{_describe(node)} with training=True (its default) drops values at inference too; a spec's dropout"
            " is nn.Dropout's, off in eval mode: pass training=self.training"
        )


def _shape(node: Any) -> tuple[int, ...] | None:
    meta = getattr(node, "meta", {}).get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(shape) if shape is not None else None


class _Reader:
    """Reads the traced, shape-propagated graph into ops, and the ops into nested items."""

    def __init__(self, gm: fx.GraphModule, root: nn.Module) -> None:
        self.gm = gm
        self.root = root
        self.ops: dict[Any, _Op] = {}
        self.refused: dict[Any, str] = {}
        self.problems: list[Problem] = []
        #: an operation in place whose input something read before it: only the model's order keeps those values
        self.order_bound = False
        self.calls: dict[str, int] = {}
        self.table = _functional_modules()
        self.empty_names: dict[tuple[str, ...], set[str]] = {}
        self.last_ref: str | None = "input"  # the name a later entry reads the last one's output by
        self.same: dict[Any, Any] = {}  # a node that is another's tensor (x.contiguous(), torch.cat([x]))
        self.cats: dict[tuple[Any, ...], Any] = {}  # each concatenation, by what it concatenates
        self.order = {node: i for i, node in enumerate(gm.graph.nodes)}
        self.where: list[int] = []  # each problem's node, by its place in the graph
        self.explained: set[Any] = set()  # refused nodes whose reader's problem says what they are
        self.cl: set[Any] = set()  # nodes that are a plane's channels-last view (ConvNeXt's permute)
        self.paths: dict[Any, list[tuple[str, ...]]] = {}  # where the spec holds a node's tensor (rows, blocks)
        self.known: set[tuple[str, ...]] = {("input",)}  # every name the spec has made so far
        self.unnamed: dict[Any, tuple[dict[str, Any], tuple[str, ...]]] = {}  # rows a name can be given

    def sorted_problems(self) -> list[Problem]:
        """The problems in the model's order, each once."""
        ordered = sorted(zip(self.where, self.problems, strict=True), key=lambda p: p[0])
        return list(dict.fromkeys(p for _, p in ordered))

    # -- ops

    def problem(self, node: Any, what: str) -> None:
        where = ".".join(_scope_of(node)) or "(the model)"
        self.problems.append(Problem(f"{where}: {what}{_source_line(node)}"))
        self.where.append(self.order.get(node, -1))

    def read(self, progress: Callable[[int, int], None] | None = None) -> Any:
        output = None
        total = len(self.order)
        for i, node in enumerate(self.gm.graph.nodes):
            if progress is not None and i % _EVERY == 0:
                progress(i, total)
            if node.op == "output":
                output = node
                continue
            try:
                op = self.op(node)
            except _Refused as exc:
                self.refused[node] = str(exc)
                continue
            if op is not None:
                if op.module is None:
                    op.scope = _scope_of(node)
                if op.entries == [COPY] and op.inputs[0] in self.ops:  # (a refused input is refused on its own)
                    # a row without parameters, where its input and its code both are: the module whose code runs it
                    # (DenseNet's layer) holds the rows that read it, as a branch of its name
                    op.scope = _common([op.scope, self.ops[op.inputs[0]].scope])
                self.ops[node] = op
        assert output is not None
        results = self.results(output)
        self.check_reached(results)
        self.check_in_place(results)
        return results

    def check_in_place(self, results: list[Any]) -> None:
        """An operation in place (``relu(inplace=True)``, ``x.add_(y)``) whose input another operation reads after
        it, or the model returns, changes what that one reads; a spec's rows read what their inputs' rows give, and
        its build may run them in another order: refused, not written with other values."""
        store = {t: self.storage(t) for t in self.ops}
        for node, op in self.ops.items():
            if not op.inputs or not self.writes(node):
                continue
            x = op.inputs[0]
            # what reads the storage it writes into, as it was: x, or another tensor that is x's storage (a dropout
            # or an identity at inference, a view), but not what the write makes (its result, and what is made of it)
            before = {t for t in self.ops if store[t] == store[x] and node not in self.chain_of(t)}
            later = [n for n, o in self.ops.items() if before & set(o.inputs) and self.order[n] > self.order[node]]
            self.order_bound |= any(x in o.inputs and self.order[n] < self.order[node] for n, o in self.ops.items())
            readers = list(dict.fromkeys(_describe(n) for n in later)) + (
                ["the model's return"] if before & set(results) else []
            )
            if readers:
                written = "the input" if self.ops[x].what == "input" else _describe(x)
                self.problem(
                    node,
                    f"{_describe(node)} writes in place into {written}, which {', '.join(readers)} reads after it;"
                    " a spec's rows read the values their inputs give: compute it out of place (inplace=False)",
                )
        # an operation refused on its own (sigmoid_, clamp_) that writes in place into a tensor read after it, or
        # returned: its result may be read by nothing, but the write is (it was left out in silence)
        for node, why in self.refused.items():
            into: Any = self.same.get(node.args[0], node.args[0]) if node.args else None
            if not self.writes(node) or not hasattr(into, "op"):
                continue
            after = [u for u in into.users if u is not node and self.order.get(u, -1) > self.order.get(node, -1)]
            if into in results or after:
                self.problem(node, why)
        if self.problems:
            raise _Refused

    def aliased(self, node: Any) -> Any:
        """The node whose storage ``node``'s output is (the input of an operation in place, of an identity at
        inference or of a view), or None: its values are its own."""
        op = self.ops.get(node)
        if op is None or not op.inputs:
            return None
        kind = op.entries[0].get("kind") if op.entries else None
        shares = self.writes(node) or op.what in ("chunk", "part") or kind in _NO_VALUES
        return op.inputs[0] if shares else None

    def chain_of(self, node: Any) -> list[Any]:
        """``node`` and each node whose storage it is, in turn."""
        links = [node]
        while (up := self.aliased(links[-1])) is not None:
            links.append(up)
        return links

    def storage(self, node: Any) -> Any:
        return self.chain_of(node)[-1]

    def results(self, output: Any) -> list[Any]:
        """The tensors the model returns, in order: one, or each of a tuple, a list or a dict (in the dict's
        order). One tensor in a container is that tensor (torchvision's segmentation models return
        ``{"out": ...}``)."""
        returned = output.args[0]
        if isinstance(returned, dict | tuple | list):
            keys = [repr(k) for k in returned] if isinstance(returned, dict) else [str(i) for i in range(len(returned))]
            values = list(returned.values()) if isinstance(returned, dict) else list(returned)
            what = "dict" if isinstance(returned, dict) else "list" if isinstance(returned, list) else "tuple"
        else:
            keys, values, what = ["0"], [returned], ""
        if not values:
            self.problem(output, f"the model returns an empty {what}; cnncalc imports at least one tensor")
            raise _Refused
        for key, value in zip(keys, values, strict=True):
            if not hasattr(value, "op"):
                kind = type(value).__name__
                nested = isinstance(value, dict | tuple | list)
                said = (
                    f"the model returns {kind}" if not what else f"the model returns a {what} holding {kind} at {key}"
                )
                hint = "return tensors side by side, not nested" if nested else "cnncalc imports tensors"
                self.problem(output, f"{said}; {hint}")
                raise _Refused
        results: list[Any] = []
        for key, value in zip(keys, values, strict=True):
            if value in self.cl:
                at = f" at {key}" if len(values) > 1 else ""
                self.problem(
                    value, f"the model returns a channels-last view (x.permute(0, 2, 3, 1)){at}; cnncalc a plane"
                )
                raise _Refused
            results.append(self.same.get(value, value))
        twice = [k for k, r in zip(keys, results, strict=True) if results.count(r) > 1]
        if twice:
            # the engine keeps each row once among the outputs, so build(spec) would return fewer tensors
            self.problem(
                output,
                f"the model returns the same tensor at {' and '.join(twice)}; a spec's outputs name each row once:"
                " return it once",
            )
            raise _Refused
        if all(self.ops.get(r) is not None and self.ops[r].what == "input" for r in results):
            self.problem(output, "the model returns its input; a spec has at least one row")
            raise _Refused
        return results

    def check_reached(self, results: list[Any]) -> None:
        seen: set[Any] = set()
        todo = list(results)
        while todo:
            node = todo.pop()
            if node in seen:
                continue
            seen.add(node)
            if node in self.explained:
                continue
            if node in self.refused:
                self.problem(node, self.refused[node])
                ins = [self.same.get(n, n) for n in node.all_input_nodes]
                todo.extend(n for n in ins if n in self.ops or n in self.refused)
            elif node in self.ops:
                todo.extend(self.ops[node].inputs)
            else:
                self.problem(node, f"'{node.format_node()}' is not a tensor cnncalc can follow")
        live = self.live()
        for node in self.gm.graph.nodes:
            if node not in live and self.unused(node):
                self.problem(
                    node,
                    f"{_describe(node)} computes {fmt(_shape(node) or ())} values that nothing the model returns is computed from; a"
                    " spec's rows are each read by a later row or returned, so it would leave them out in silence:"
                    " remove it, or return it",
                )
        if self.problems:
            raise _Refused

    def live(self) -> set[Any]:
        """What the model's return is computed from, in the traced graph itself (the operations a pattern read as
        one row skips, a channel shuffle's view and transpose, are on the way), and what a write in place into a
        tensor read after it there is computed from (``y.mul_(torch.sigmoid(x))`` on a returned ``y``)."""
        nodes = list(self.gm.graph.nodes)
        store = {n: self.storage(self.same.get(n, n)) for n in nodes}
        live: set[Any] = set()
        todo = [n for n in nodes if n.op == "output"]
        while todo:
            while todo:
                node = todo.pop()
                if node not in live:
                    live.add(node)
                    todo.extend(node.all_input_nodes)
            last_read: dict[Any, int] = {}  # per storage, the last live operation (or the return) that reads it
            for i, node in enumerate(nodes):
                if node in live:
                    for x in node.all_input_nodes:
                        last_read[store[x]] = i
            for i, node in enumerate(nodes):
                into = node.args[0] if node not in live and node.args and hasattr(node.args[0], "op") else None
                if into is not None and last_read.get(store[into], -1) > i and self.writes(node):
                    todo.append(node)
        return live

    def writes(self, node: Any) -> bool:
        """Whether ``node`` writes in place into its input (as read, or as traced where it was refused)."""
        op = self.ops.get(node)
        if op is not None:
            return bool(op.inplace or any(e.get("inplace") for e in op.entries[:1]))
        return node.op != "output" and (_writes_in_place(node, self.gm) or _augmented(node))

    def unused(self, node: Any) -> bool:
        """Whether ``node``, which no returned tensor is computed from, computes values of its own for nothing:
        not written into its input (``relu_``, ``out += y``), not its input itself at inference (identity,
        dropout) or a view of it, and not a module with parameters (:func:`_idle` says those, with their
        count)."""
        if node.op not in ("call_module", "call_function", "call_method") or _shape(node) is None:
            return False  # the output, a placeholder, or no tensor (x.size(), torch._assert)
        if node in self.same or (node.op == "call_module" and _holds_state(self.gm.get_submodule(str(node.target)))):
            return False
        if self.writes(node):
            return False
        op = self.ops.get(node)
        if op is None:
            return node in self.refused
        kind = op.entries[0].get("kind") if op.entries else None
        return op.what in ("add", "cat", "mul") or kind not in (None, *_NO_VALUES)

    def tensor(self, arg: Any, node: Any) -> Any:
        arg = self.same.get(arg, arg)
        if not hasattr(arg, "op") or (arg not in self.ops and arg not in self.refused):
            raise _Refused(f"{_describe(node)} takes {arg!r} where cnncalc expects a tensor of the graph")
        return arg

    def op(self, node: Any) -> _Op | None:
        import torch

        if node.op == "placeholder":
            return _Op("input", [])
        if node.op == "get_attr":
            raise _Refused(f"the code reads the tensor '{node.target}' directly, not through a module")
        if any(a in self.cl for a in node.all_input_nodes):
            self.cl.add(node)  # until it is the permute back: what reads a refused op here is on the view too
            return self.channels_last(node)
        if node.op == "call_module":
            module = self.gm.get_submodule(str(node.target))
            found = entry_for(module)
            if found is None:
                raise _Refused(f"module '{node.target}' ({type(module).__name__}) is no layer kind of cnncalc")
            _same_computation(module, found, _shape(node.args[0]), str(node.target))
            name = str(node.target)
            self.calls[name] = self.calls.get(name, 0) + 1
            path = tuple(name.split("."))
            return _Op("entry", [self.tensor(node.args[0], node)], [found], path[:-1], name)
        shape = _shape(node)
        target = node.target
        key: Any = target if node.op == "call_function" else str(target)
        if key in self.table and node.kwargs.get("dim") is None:
            make, names = self.table[key]
            kwargs = dict(zip(names, node.args[1:], strict=False))
            kwargs.update(node.kwargs)
            if any(hasattr(v, "op") for v in kwargs.values()):
                raise _Refused(f"{_describe(node)} with arguments computed in the graph")
            _check_dropout(key, kwargs, node)
            found = entry_for(make(**kwargs))
            if found is None:
                raise _Refused(f"{_describe(node)} with {kwargs} is no layer kind of cnncalc")
            return _Op("entry", [self.tensor(node.args[0], node)], [found])
        if key is torch.nn.functional.interpolate:
            return self.interpolate(node, shape)
        if key in (operator.add, torch.add, "add", operator.iadd, "add_"):
            inputs = [self.tensor(a, node) for a in node.args[:2]]
            if node.kwargs or len(node.args) != 2:
                raise _Refused(f"{_describe(node)} with a scale (alpha) or other arguments")
            a, b = (_shape(t) for t in node.args[:2])
            if a is not None and b is not None and a != b:
                raise _Refused(
                    f"{_describe(node)} of {fmt(a[1:])} and {fmt(b[1:])}: it broadcasts; cnncalc adds tensors of one shape"
                )
            return _Op("add", inputs, inplace=key in (operator.iadd, "add_") or _augmented(node))
        if key in (operator.mul, torch.mul, "mul", operator.imul, "mul_"):
            if any(getattr(a, "op", None) == "get_attr" for a in node.args[:2]):
                return self.layer_scale(node)
            inplace = key in (operator.imul, "mul_") or _augmented(node)
            return _Op("mul", [self.tensor(a, node) for a in node.args[:2]], inplace=inplace)
        if key in (torch.permute, "permute"):
            if _dims(node) != [0, 2, 3, 1] or len(_shape(node.args[0]) or ()) != 4:
                raise _Refused(
                    f"{_describe(node)} to {_dims(node)}; cnncalc reads a permute to channels-last (0, 2, 3, 1)"
                    " and back, around a layer norm or a linear over the channels (ConvNeXt)"
                )
            self.alias(node)
            self.cl.add(node)
            return None
        if key in (torch.cat, torch.concat):
            dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
            rank = len(_shape(node.args[0][0]) or ())
            # the channels of N x C x H x W, or the features of N x F (a flat network's concat)
            if (rank, dim) not in ((4, 1), (4, -3), (2, 1), (2, -1)):
                raise _Refused(
                    f"{_describe(node)} along dim {dim}; cnncalc concatenates the channels of C x H x W"
                    " or the features of a flat N"
                )
            return self.cat(node)
        if key in (torch.chunk, "chunk"):
            dim = node.kwargs.get("dim", node.args[2] if len(node.args) > 2 else 0)
            if dim != 1:
                raise _Refused(f"{_describe(node)} along dim {dim}; cnncalc splits the channels")
            return _Op("chunk", [self.tensor(node.args[0], node)])
        if key is operator.getitem and node.args[0] in self.ops and self.ops[node.args[0]].what == "chunk":
            return _Op("part", [node.args[0]], index=int(node.args[1]))
        if key == "contiguous":
            self.alias(node)
            return None
        if key in (torch.flatten, "flatten", "view", "reshape", torch.reshape):
            return self.reshape(node, shape)
        if key == "mean":
            return self.mean(node, shape)
        if node.op in ("call_function", "call_method") and shape is None:
            return None  # a size or a number: it matters only where a tensor op reads it, and is refused there
        raise _Refused(f"{_describe(node)} is not an operation cnncalc imports")

    def plane(self, node: Any) -> tuple[int, ...] | None:
        """A node's shape as the spec's row has it: a plane's, where the model computes it channels-last."""
        shape = _shape(node)
        return (shape[0], shape[3], shape[1], shape[2]) if node in self.cl and shape is not None else shape

    def channels_last(self, node: Any) -> _Op | None:
        """An operation on a channels-last view of a plane (``x.permute(0, 2, 3, 1)``), as ConvNeXt computes over
        the channels: a module (nn.LayerNorm, nn.Linear) or ``F.layer_norm`` there is the kind that computes it
        between the permutes (``layernorm``, ``channel_linear``), a GELU right after such a linear its
        ``activation``, and the permute back the plane again. Anything else on it is refused."""
        import torch
        import torch.nn.functional as F

        from .torch_backend import ChannelsLast

        x = node.args[0] if node.args else None
        if [a for a in node.all_input_nodes if a in self.cl] != [x]:
            raise _Refused(
                f"{_describe(node)} on a channels-last view (x.permute(0, 2, 3, 1)) is not one cnncalc reads"
            )
        key: Any = node.target if node.op == "call_function" else str(node.target)
        if key in (torch.permute, "permute") and _dims(node) == [0, 3, 1, 2]:
            self.cl.discard(node)
            self.alias(node)  # the plane again
            return None
        plane = self.plane(x)
        assert plane is not None
        if key is F.layer_norm:
            module, name = self.layer_norm(node)
        elif node.op == "call_module":
            module, name = self.gm.get_submodule(str(node.target)), str(node.target)
            if entry_for(ChannelsLast(module)) is None:
                if any(True for _ in module.parameters()):
                    raise _Refused(
                        f"module '{name}' ({type(module).__name__}) on a channels-last view is no layer kind of cnncalc"
                    )
                self.after_linear(node, x, module)
                return None
        elif key in self.table:
            make, names = self.table[key]
            kwargs = dict(zip(names, node.args[1:], strict=False)) | dict(node.kwargs)
            if any(hasattr(v, "op") for v in kwargs.values()):
                raise _Refused(f"{_describe(node)} with arguments computed in the graph")
            _check_dropout(key, kwargs, node)
            self.after_linear(node, x, make(**kwargs))
            return None
        else:
            raise _Refused(
                f"{_describe(node)} on a channels-last view (x.permute(0, 2, 3, 1)) is not one cnncalc reads"
            )
        wrapped = ChannelsLast(module)
        found = entry_for(wrapped)
        assert found is not None
        _same_computation(wrapped, found, plane, name)
        self.calls[name] = self.calls.get(name, 0) + 1
        self.cl.add(node)
        return _Op("entry", [self.tensor(x, node)], [found], tuple(name.split("."))[:-1], name)

    def after_linear(self, node: Any, x: Any, act: nn.Module) -> None:
        """An activation on a channels-last linear's output that nothing else reads: that row's ``activation``
        (ConvNeXt's GELU), where the kind takes it."""
        from .torch_backend import ChannelsLast

        made = self.ops.get(x)
        found = None
        alone = made is not None and made.module is not None and len(x.users) == 1 and len(made.entries) == 1
        if made is not None and made.module is not None and alone and "activation" not in made.entries[0]:
            found = entry_for(ChannelsLast(self.gm.get_submodule(made.module), act))
        if found is None:
            raise _Refused(
                f"{_describe(node)} on a channels-last view (x.permute(0, 2, 3, 1)) is no row of cnncalc;"
                " it reads a GELU there only right after a linear"
            )
        made.entries = [found]  # type: ignore[union-attr]
        self.alias(node, x)
        self.cl.add(node)
        return None

    def layer_norm(self, node: Any) -> tuple[Any, str]:
        """``F.layer_norm(x, shape, weight, bias, eps)`` with a module's own weight and bias (torchvision's
        LayerNorm2d) as that nn.LayerNorm, named after the module."""
        import torch
        from torch import nn

        names = ["normalized_shape", "weight", "bias", "eps"]
        kwargs = dict(zip(names, node.args[1:], strict=False)) | dict(node.kwargs)
        weight, bias = kwargs.get("weight"), kwargs.get("bias")
        params = [p for p in (weight, bias) if p is not None]
        owners = {str(p.target).rpartition(".")[0] for p in params if getattr(p, "op", None) == "get_attr"}
        if len(owners) != 1 or len(params) != sum(getattr(p, "op", None) == "get_attr" for p in params):
            raise _Refused(f"{_describe(node)} with a weight and bias not of one module")
        (owner,) = owners
        held = dict(self.gm.get_submodule(owner).named_parameters(recurse=False))
        if [str(p.target).rpartition(".")[2] for p in params] != list(held) or list(held) not in (
            ["weight", "bias"],
            ["weight"],
        ):
            raise _Refused(f"{_describe(node)} with parameters its module '{owner}' holds otherwise")
        shape = kwargs.get("normalized_shape")
        norm = nn.LayerNorm(list(shape or ()), kwargs.get("eps", 1e-5), weight is not None, bias is not None)
        with torch.no_grad():
            for key, value in held.items():
                getattr(norm, key).copy_(value)
        return norm, owner

    def layer_scale(self, node: Any) -> _Op:
        """A parameter times a tensor (ConvNeXt's ``self.layer_scale * x``): a ``layer_scale`` row named after the
        parameter, in its module, where the parameter is the C x 1 x 1 factors the kind holds."""
        import torch

        from .torch_backend import LayerScaleModule

        a, b = node.args[:2]
        param, x = (a, b) if getattr(a, "op", None) == "get_attr" else (b, a)
        if getattr(x, "op", None) == "get_attr" or len(node.args) != 2 or node.kwargs:
            raise _Refused(f"{_describe(node)} of two tensors read directly, not through modules")
        name = str(param.target)
        try:
            value = self.gm.get_parameter(name)
        except AttributeError:
            raise _Refused(f"the code reads the tensor '{name}' directly, not through a module") from None
        shape = _shape(x)
        if shape is None or tuple(value.shape) != (shape[1], *(1 for _ in shape[2:])):
            self.explained.add(param)  # this problem says what the parameter's read is
            raise _Refused(
                f"{_describe(node)}: the parameter '{name}' of shape {list(value.shape)} times a tensor of"
                f" {list(shape or ())[1:]}; cnncalc's layer_scale is one factor per channel"
            )
        module = LayerScaleModule(tuple(value.shape), 0.0)
        with torch.no_grad():
            module.parameter.copy_(value)
        found = entry_for(module)
        assert found is not None
        self.calls[name] = self.calls.get(name, 0) + 1
        return _Op("entry", [self.tensor(x, node)], [found], tuple(name.split("."))[:-1], name)

    def interpolate(self, node: Any, shape: tuple[int, ...] | None) -> _Op:
        """F.interpolate as nn.Upsample; a size computed from a tensor's shape (``x.shape[-2:]``) is the size it
        has for this input, as the spec's input is fixed."""
        from torch import nn

        names = ["size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias"]
        kwargs = dict(zip(names, node.args[1:], strict=False))
        kwargs.update(node.kwargs)
        if kwargs.pop("antialias", False):
            raise _Refused(f"{_describe(node)} with antialias")
        if hasattr(kwargs.get("size"), "op") or (
            isinstance(kwargs.get("size"), list | tuple) and any(hasattr(v, "op") for v in kwargs["size"])
        ):
            if shape is None or len(shape) != 4:
                raise _Refused(f"{_describe(node)} to a size cnncalc cannot know")
            kwargs["size"] = tuple(shape[2:])
        if any(hasattr(v, "op") for v in kwargs.values()):
            raise _Refused(f"{_describe(node)} with arguments computed in the graph")
        found = entry_for(nn.Upsample(**kwargs))
        if found is None:
            raise _Refused(f"{_describe(node)} with {kwargs} is no layer kind of cnncalc")
        return _Op("entry", [self.tensor(node.args[0], node)], [found])

    def alias(self, node: Any, x: Any = None) -> None:
        """``node`` is the tensor ``x`` (by default its first argument) itself: readers of it read that."""
        self.same[node] = self.tensor(node.args[0] if x is None else x, node)

    def cat(self, node: Any) -> _Op:
        """torch.cat along the channels. DenseNet's layers each concatenate every earlier output again: a
        concatenation of what an earlier one holds, and one more, is that one and the new tensor (the same values),
        which nests as a concat with an identity branch."""
        inputs = [self.tensor(a, node) for a in node.args[0]]
        earlier = self.cats.get(tuple(inputs[:-1]))
        self.cats[tuple(inputs)] = node  # (one computed again is a concat again: torch allocates it again)
        if len(inputs) == 1:  # a copy of it (DenseNet's layers begin with one): a concat of one identity branch
            return _Op("entry", inputs, [dict(COPY)])
        return _Op("cat", [earlier, inputs[-1]] if earlier is not None else inputs)

    def reshape(self, node: Any, shape: tuple[int, ...] | None) -> _Op | None:
        x = node.args[0]
        before = _shape(x)
        if shape is not None and before is not None and len(before) == 4:
            if shape == (before[0], before[1] * before[2] * before[3]):
                return _Op("entry", [self.tensor(x, node)], [{"kind": "flatten"}])
            if shape == before:
                self.alias(node)
                return None
        shuffle = self.shuffle(node, shape)
        if shuffle is not None:
            return shuffle
        raise _Refused(f"{_describe(node)} to {list(shape or ())} from {list(before or ())}")

    def shuffle(self, node: Any, shape: tuple[int, ...] | None) -> _Op | None:
        """torchvision's channel_shuffle: view as N x g x C/g x H x W, transpose(1, 2), contiguous, view back."""
        import torch

        x = node.args[0]
        if getattr(x, "target", None) == "contiguous":
            x = x.args[0]
        if getattr(x, "target", None) not in ("transpose", torch.transpose) or tuple(x.args[1:3]) not in (
            (1, 2),
            (2, 1),
        ):
            return None
        grouped = x.args[0]
        if getattr(grouped, "target", None) not in ("view", "reshape"):
            return None
        source, five = grouped.args[0], _shape(grouped)
        if five is None or len(five) != 5 or shape is None or _shape(source) != shape:
            return None
        return _Op("entry", [self.tensor(source, node)], [{"kind": "channel_shuffle", "groups": five[1]}])

    def mean(self, node: Any, shape: tuple[int, ...] | None) -> _Op:
        x = node.args[0]
        before = _shape(x)
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
        if before is None or len(before) != 4 or sorted(d % 4 for d in (dims or ())) != [2, 3]:
            raise _Refused(f"{_describe(node)} over {dims}; cnncalc imports a mean over H and W")
        entries: list[dict[str, Any]] = [{"kind": "global_avgpool2d"}]
        if not keep:
            entries.append({"kind": "flatten"})
        return _Op("entry", [self.tensor(x, node)], entries)

    # -- nesting

    def nest(self, results: list[Any]) -> list[Any]:
        """The graph as nested items, each join's branches from the fork that dominates it; raises _Refused where
        nesting cannot say it (then :meth:`flat` does). Of several outputs, the first the model computes is the
        chain from the input; each other one, where it is not on that chain, the rows from the nearest tensor
        already written that it depends on (read by name), after them."""
        order = {node: i for i, node in enumerate(self.gm.graph.nodes)}
        self.idom: dict[Any, Any] = {}
        depth: dict[Any, int] = {}
        for node in sorted(self.ops, key=order.__getitem__):
            inputs = self.ops[node].inputs
            if not inputs:
                self.idom[node], depth[node] = None, 0
                continue
            d = inputs[0]
            for other in inputs[1:]:
                a, b = d, other
                while a is not b:
                    if depth[a] >= depth[b]:
                        a = self.idom[a]
                    else:
                        b = self.idom[b]
                d = a
            self.idom[node], depth[node] = d, depth[d] + 1
        self.emitted: set[Any] = set()
        start = next(n for n, op in self.ops.items() if op.what == "input")
        self.paths[start] = [("input",)]
        first, *others = sorted((r for r in results if r is not start), key=self.order.__getitem__)
        items = self.chain(start, first)
        for out in others:
            if out in self.emitted:
                continue  # a tensor of the rows written already: the output names it
            src = self.idom[out]
            while src is not None and src is not start and src not in self.emitted:
                src = self.idom[src]
            if src is None or self.ops[src].what in ("chunk", "part"):
                raise _Refused  # no row holds the tensor it starts from: written flat
            side = self.chain(src, out)
            if isinstance(side[0], _Part):
                raise _Refused
            items += [replace(side[0], reads=src), *side[1:]]
        return items

    def flat(self, results: list[Any]) -> list[Any]:
        """The graph nesting cannot say (a tensor read inside two branches of a join), written flat: every op the
        result needs in the model's order, each reading by name (``from:``) what is not the row before it, each
        join a join of named rows, and each part of a chunk a ``slice`` of its input."""
        self.problems.clear()  # nesting's, which this way says
        self.where.clear()
        needed: set[Any] = set()
        todo = list(results)
        while todo:
            node = todo.pop()
            if node not in needed:
                needed.add(node)
                todo.extend(self.ops[node].inputs)
        items: list[Any] = []
        before = None
        for node in sorted(needed, key=self.order.__getitem__):
            op = self.ops[node]
            if op.what == "chunk":
                continue  # its parts are slices of its input
            if op.what == "input":
                self.paths[node] = [("input",)]
            elif op.what == "part":
                x = self.ops[op.inputs[0]].inputs[0]
                items.append(_Leaf(self.part_slice(node), node, None if x is before else x))
            elif op.what == "entry":
                x = op.inputs[0]
                items.append(_Leaf(op, node, None if x is before else x))
            else:
                what = {"add": "add", "cat": "concat", "mul": "multiply"}[op.what]
                items.append(_Join(what, list(op.inputs), op.scope, node, op.inplace))
            before = node
        return items

    def chunk_sizes(self, chunk: Any) -> list[int]:
        """The channels of each part ``torch.chunk`` gives: ceil(C / chunks) each, the last the rest (fewer parts
        than asked where C is small)."""
        channels = (self.plane(self.ops[chunk].inputs[0]) or (0, 0))[1]  # N x C x ...
        asked = int(chunk.kwargs.get("chunks", chunk.args[1] if len(chunk.args) > 1 else 0))
        size = -(-channels // asked) if channels and asked else 0
        return [min(size, channels - start) for start in range(0, channels, size)] if size else []

    def part_slice(self, node: Any) -> _Op:
        """A part of a chunk as the row that makes it: a ``slice`` of the chunk's input."""
        op = self.ops[node]
        sizes = self.chunk_sizes(op.inputs[0])
        start = sum(sizes[: op.index])
        part = {"kind": "slice", "start": start, "stop": start + sizes[op.index]}
        return _Op("entry", [self.ops[op.inputs[0]].inputs[0]], [part], op.scope)

    def emit(self, node: Any) -> None:
        if node in self.emitted:
            raise _Refused  # read inside two branches: nesting cannot say it (the model is written flat)
        self.emitted.add(node)

    def chain(self, src: Any, dst: Any) -> list[Any]:
        items: list[Any] = []
        cur = dst
        while cur is not src:
            if cur is None:
                raise _Refused
            op = self.ops[cur]
            self.emit(cur)
            if op.what == "entry":
                items.append(_Leaf(op, cur))
                cur = op.inputs[0]
            elif op.what == "part":
                items.append(_Part(op.index, cur))
                cur = op.inputs[0]
            elif op.what in ("add", "cat", "mul"):
                fork = self.idom[cur]
                items.append(self.join(cur, op, fork))
                cur = self.ops[fork].inputs[0] if self.ops[fork].what == "chunk" else fork
            else:
                raise _Refused  # a chunk whose parts do not meet again in one concat
        items.reverse()
        return items

    def join(self, node: Any, op: _Op, fork: Any) -> _Struct:
        scope = op.scope
        if self.ops[fork].what == "chunk":
            self.emit(fork)
            branches = [self.chain(fork, i) for i in op.inputs]
            parts = [b[0].index if b and isinstance(b[0], _Part) else None for b in branches]
            if op.what != "cat" or parts != list(range(len(branches))):
                raise _Refused  # the parts of a chunk joined out of order or otherwise
            sizes = self.chunk_sizes(fork)
            if len(sizes) != len(branches):
                raise _Refused  # some of the parts joined: written flat, each a slice
            return _Struct(
                "split",
                [b[1:] for b in branches],
                scope,
                node=node,
                fork=fork,
                sections=sizes if len(set(sizes)) > 1 else None,
                parts=[b[0].node for b in branches],
            )
        branches = [self.chain(fork, i) for i in op.inputs]
        what = {"cat": "concat", "add": "residual", "mul": "multiply"}[op.what]
        if not any(branches):  # one tensor joined with itself (x + x): no branch to nest, a join of it by name
            return _Struct(what, branches, scope, inplace=op.inplace, node=node, fork=fork, flat=True)
        if op.what == "cat":
            return _Struct("concat", branches, scope, node=node, fork=fork)
        if op.what == "add":
            if len(branches) != 2:
                raise _Refused
            a, b = branches
            # the body is the longer side, or the side an add in place writes into (out += shortcut): a residual's
            # inplace writes into its body's output, so the add allocates nothing, as in the model
            body, shortcut = (a, b) if (op.inplace and a) or _size(a) >= _size(b) else (b, a)
            reshapes = _shape(node) != self.plane(fork)
            inplace = op.inplace and body is a
            # a shortcut no module holds apart from the body (bare leaf modules beside it): no name says it as a
            # block, so it is written as rows beside the body's and an add of the two by name
            bare = bool(shortcut) and self.bare(shortcut, body)
            return _Struct(
                "residual", [body, shortcut], scope, inplace=inplace, reshapes=reshapes, node=node, fork=fork, flat=bare
            )
        a, b = branches
        if a and b:  # f(x) * g(x): no body says it; the two branches' last rows, multiplied by name
            return _Struct("multiply", [a, b], scope, node=node, fork=fork, flat=True)
        return _Struct("multiply", [a or b], scope, node=node, fork=fork)

    # -- entries named after the module tree

    def written(self, items: list[Any], results: list[Any]) -> tuple[list[dict[str, Any]], list[str] | None]:
        """The rows of ``items``, and where the model returns several tensors, each's name, in order (a row that
        has none gets one, as a row read by ``from:`` does)."""
        layers = self.entries(items, ())
        if len(results) == 1:
            return layers, None
        for node in results:
            if node not in self.paths and node not in self.unnamed:
                raise _Unreturned(node)
        return layers, [self.ref(node, ()) for node in results]

    def forget_names(self) -> None:
        """Forget the rows written, to write them again (flat)."""
        self.paths.clear()
        self.known = {("input",)}
        self.unnamed.clear()
        self.empty_names.clear()
        self.last_ref = "input"

    def entries(self, items: Sequence[Any], prefix: tuple[str, ...]) -> list[dict[str, Any]]:
        items = self.spliced(list(items), prefix)
        out: list[dict[str, Any]] = []
        groups: set[str] = set()
        i = 0
        while i < len(items):
            scope = self.scope(items[i])
            if len(scope) > len(prefix) and scope[: len(prefix)] == prefix:
                head = scope[len(prefix)]
                j = i
                while j < len(items) and self.scope(items[j])[: len(prefix) + 1] == (*prefix, head):
                    j += 1
                if head in groups:
                    raise _Names(
                        f"{'.'.join((*prefix, head))}: the module runs twice, apart; its rows cannot share one block"
                    )
                groups.add(head)
                cls = type(self.root.get_submodule(".".join((*prefix, head)))).__name__
                layers = self.entries(items[i:j], (*prefix, head))
                group: dict[str, Any] = {"kind": "sequential", "name": head}
                if layers and isinstance(layers[0].get("from"), str):  # the block reads what its first row reads
                    group["from"] = layers[0].pop("from")  # (a join's names stay its own: a block reads one input)
                out.append({**group, "layers": layers, CLASS: cls, IN: self.in_channels(items[i])})
                self.made(self.node_of(items[j - 1]), (*prefix, head))
                self.last_ref = head
                i = j
                continue
            made = self.entry(items[i], prefix)
            reads = getattr(items[i], "reads", None)
            if made and reads is not None:
                first = made[0]
                made[0] = {"kind": first["kind"], **({"name": first["name"]} if "name" in first else {})}
                made[0] |= {"from": self.ref(reads, prefix), **first}
            out.extend(made)
            if made:
                self.made(self.node_of(items[i]), prefix, made[-1])
            self.last_ref = made[-1].get("name") if made else self.last_ref
            i += 1
        folded = _fold_activations(out)
        kept = {id(e) for e in folded}
        for node, (e, _) in list(self.unnamed.items()):
            if id(e) not in kept and any(e is x for x in out):
                del self.unnamed[node]  # a relu folded into its residual: no row of its own to read by name
        return folded

    # -- structures written flat, and rows read by name

    def spliced(self, items: list[Any], prefix: tuple[str, ...]) -> list[Any]:
        """``items`` with each structure nesting cannot say here written flat: a product of two computed tensors,
        or a structure whose branches run modules that rows outside it run too (LR-ASPP's head adds a row of the
        backbone's middle to one of its end: the backbone's rows would come apart)."""
        while True:
            heads = [self.heads(item, prefix) for item in items]
            for k, item in enumerate(items):
                if not isinstance(item, _Struct) or item.what == "split" or len(self.scope(item)) > len(prefix):
                    continue
                others = set().union(*(h for n, h in enumerate(heads) if n != k))
                if item.flat or heads[k] & others:
                    items = [*items[:k], *self.splice(item), *items[k + 1 :]]
                    break
            else:
                return items

    def splice(self, item: _Struct) -> list[Any]:
        """A structure as its branches' rows, in the model's order, each branch after the first reading the fork
        by name, then a join of the branches' last rows by name (``{kind: add, from: [a, b]}``)."""
        op = self.ops[item.node]
        out: list[Any] = []
        for branch in sorted((b for b in item.branches if b), key=self.first):
            reads = item.reads if not out else item.fork
            out += [replace(branch[0], reads=reads), *branch[1:]]
        what = {"residual": "add", "concat": "concat", "multiply": "multiply"}[item.what]
        inputs = op.inputs if what != "multiply" or len(op.inputs) == 2 else [op.inputs[0], op.inputs[0]]
        return [*out, _Join(what, list(inputs), item.scope, item.node, item.inplace)]

    def first(self, branch: list[Any]) -> int:
        """Where a branch starts in the model's graph."""
        return min(
            self.order[x.node]
            if isinstance(x, _Leaf) or not any(x.branches)  # a tensor joined with itself: where the join is
            else self.first([y for b in x.branches for y in b])
            for x in branch
            if isinstance(x, _Leaf | _Struct)
        )

    def heads(self, item: Any, prefix: tuple[str, ...]) -> set[str]:
        """The names ``item``'s rows and blocks take in the block ``prefix`` (the module under it that holds them)."""
        if isinstance(item, _Struct):
            return set().union(*(self.heads(x, prefix) for b in item.branches for x in b))
        if isinstance(item, _Leaf) and item.op.module is not None:
            path = tuple(item.op.module.split("."))
            if len(path) == len(prefix) + 1 and self.calls[item.op.module] > 1:
                return set()  # a module without parameters that runs several times: unnamed rows
        elif isinstance(item, _Leaf | _Join):
            path = item.op.scope if isinstance(item, _Leaf) else item.scope
            if len(path) == len(prefix):
                return set()
        else:
            return set()
        return {path[len(prefix)]} if len(path) > len(prefix) and path[: len(prefix)] == prefix else set()

    def in_channels(self, item: Any) -> int | None:
        """The channels (or features) coming into ``item``: what a block's ``in_channels`` is at its use."""
        if isinstance(item, _Leaf):
            x = item.reads if item.reads is not None else item.op.inputs[0]
        elif isinstance(item, _Struct):
            x = item.reads if item.reads is not None else item.fork
        else:
            return None
        shape = self.plane(x)
        return shape[1] if shape is not None and len(shape) in (2, 4) else None

    def node_of(self, item: Any) -> Any:
        return item.node if isinstance(item, _Leaf | _Struct | _Join) else None

    def made(self, node: Any, path: tuple[str, ...], entry: dict[str, Any] | None = None) -> None:
        """Where the spec holds ``node``'s tensor: the block ``path``, or ``entry``, a row in the block ``path``
        (one without a name is named when a row reads it)."""
        if entry is None:
            self.paths.setdefault(node, []).append(path)
            self.known.add(path)
        elif "name" in entry:
            self.paths.setdefault(node, []).append((*path, str(entry["name"])))
            self.known.add((*path, str(entry["name"])))
        elif _one_row(entry) or (entry.get("kind") in ("concat", "multiply") and "from" in entry):
            self.unnamed[node] = (entry, path)  # (a structure that reads by name, refused as such when read)

    def ref(self, node: Any, prefix: tuple[str, ...]) -> str:
        """The name a row in the block ``prefix`` reads ``node``'s tensor by: the shortest that finds it there."""
        if node not in self.paths and node in self.unnamed:
            if not _one_row(self.unnamed[node][0]):
                # a name on a structure would go before its rows' names too (multiply.conv): the state_dict would
                # not load; the graph is written flat, where the join is a row of its own
                raise _Unnameable(f"{_describe(node)}: a structure read by name")
            entry, at = self.unnamed.pop(node)
            # a name no row of its block has, nor any module there (the rows after it take their modules' names)
            taken = {p[-1] for p in self.known if p[:-1] == at}
            taken |= {n for n, _ in self.root.get_submodule(".".join(at)).named_children()}
            base = str(entry["kind"])
            name = _free(base, taken)
            rest = {k: v for k, v in entry.items() if k != "kind"}
            entry.clear()
            entry.update({"kind": base, "name": name, **rest})
            self.made(node, at, entry)
        if node not in self.paths:
            if node in self.ops and self.ops[node].what in ("add", "mul"):
                # a residual's add or a product, nested, has no row of its own to read by name: written flat,
                # where the join is a row of its own
                raise _Unnameable(f"{_describe(node)}: a join read by name")
            self.problem(node, f"{_describe(node)} is read by name, and no one row or block of the spec holds it")
            raise _Refused
        target = min(self.paths[node], key=len)
        k = 0
        while k < min(len(prefix), len(target) - 1) and prefix[k] == target[k]:
            k += 1
        for j in range(k, -1, -1):  # a name found nearer the reader would hide it: then a longer one
            parts = target[j:]
            if not any((*prefix[:m], *parts) in self.known for m in range(j + 1, len(prefix) + 1)):
                return ".".join(parts)
        raise _Names(f"{'.'.join(target)}: no name reads it from {'.'.join(prefix) or 'the top'}")

    def entry(self, item: Any, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
        if isinstance(item, _Join):
            join: dict[str, Any] = {"kind": item.what, "from": [self.ref(n, prefix) for n in item.inputs]}
            return [{**join, "inplace": True} if item.inplace else join]
        if isinstance(item, _Leaf):
            op = item.op
            entries = [dict(e) for e in op.entries]
            if op.module is not None and self.calls[op.module] == 1:
                entries[0] = {"kind": entries[0]["kind"], "name": op.module.rsplit(".", 1)[-1], **entries[0]}
            elif op.module is not None and self.has_params(op.module):
                raise _Names(
                    f"{op.module}: the module runs {self.calls[op.module]} times with the same weights (or running"
                    " statistics); a spec's rows each have their own"
                )
            return entries
        assert isinstance(item, _Struct)
        if item.what == "multiply":
            return [{"kind": "multiply", "body": self.entries(item.branches[0], prefix)}]
        if item.what == "residual":
            body, shortcut = item.branches
            entry: dict[str, Any] = {"kind": "residual", "body": self.entries(body, prefix)}
            if shortcut:
                entry["shortcut"] = self.named(shortcut, prefix, "shortcut")
                if item.reshapes and _is_projection(entry["shortcut"], _projection_stride(item)):
                    entry["shortcut"] = "auto"  # what torchvision's ResNets do: a downsample where the shape changes
            elif not item.reshapes:
                entry["shortcut"] = "auto"  # the same: identity where the shape stays
            if item.inplace:
                entry["inplace"] = True
            return [entry]
        fork = self.ref(item.reads, prefix) if item.reads is not None else self.last_ref
        try:
            return self.branches(item, prefix)
        except _Names:
            if item.what == "split":
                # a part in no module of its own (a bare leaf module): each branch a slice of the chunk's input read
                # by name, its rows, and a concat of the branches' last rows
                x = self.ops[item.fork].inputs[0]
                fork = self.ref(item.reads if item.reads is not None else x, prefix)
                branches = [[_Leaf(self.part_slice(p), p), *b] for p, b in zip(item.parts, item.branches, strict=True)]
                return self.flat_concat(replace(item, what="concat", branches=branches), prefix, fork)
            if item.what != "concat":
                raise
            if item.reads is None and item.fork is not None:
                # the tensor the branches start from, by the name that finds it here (last_ref may be a name from
                # another block, which here finds another row); an unnamed row is named now (torch.relu)
                fork = self.ref(item.fork, prefix)
            if fork is None:
                raise
            return self.flat_concat(item, prefix, fork)

    def flat_concat(self, item: _Struct, prefix: tuple[str, ...], fork: str) -> list[dict[str, Any]]:
        """A concat whose branches no module each holds (SqueezeNet's Fire, Inception v3's blocks) written flat in
        its module, as the model holds it: each branch after the first reads the fork with ``from:``, and a
        concat of the branches' last rows (``from: [...]``)."""
        out: list[dict[str, Any]] = []
        refs: list[str] = []
        for i, branch in enumerate(item.branches):
            if not branch:
                refs.append(fork)
                continue
            self.last_ref = fork
            rows = self.entries(branch, prefix)
            last = rows[-1]
            if last.get("kind") == "concat" and isinstance(last.get("branches"), dict) and "name" not in last:
                # a branch that ends in a concat of its own (Inception v3's 3x3 into 1x3 and 3x1): flat too
                before = rows[-2].get("name") if len(rows) > 1 else fork
                if before is None:
                    raise _Names(f"{'.'.join(prefix) or '(the model)'}: a branch's concat reads an unnamed row")
                rows = rows[:-1] + _flat_named(last, before)
            if out:
                rows[0] = {**rows[0], "from": fork}
            last = rows[-1]
            if "name" not in last:
                if not _one_row(last):  # a row, a join of named rows, or a copy
                    raise _Names(f"{'.'.join(prefix) or '(the model)'}: a branch ends in an unnamed structure")
                # a row without parameters: any free name, after its kind as every row's
                rows[-1] = last = {"kind": last["kind"], "name": f"{last['kind']}_branch{i + 1}", **last}
            refs.append(last["name"])
            out += rows
        return [*out, {"kind": "concat", "from": refs}]

    def branches(self, item: _Struct, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
        branches: dict[str, Any] = {}
        for branch in item.branches:
            if branch:
                ((head, entries),) = self.named(branch, prefix, "branch").items()
                if head in branches:
                    modules = [m for b in item.branches for m in self.modules(b)]
                    raise _Names(
                        f"{'.'.join((*prefix, head))}: the branches of a {item.what} run {', '.join(modules)};"
                        " cnncalc names each branch's rows after one module that holds them, and these have none,"
                        " so the state_dict would not load"
                    )
                branches[head] = entries
            else:
                # a name no other branch of this block takes (DenseNet's block has one identity per layer)
                taken = self.empty_names.setdefault(prefix, set())
                name = _free("identity", taken)
                taken.add(name)
                branches[name] = []
        sections = {"sections": item.sections} if item.sections else {}
        return [{"kind": item.what, "branches": branches, **sections}]

    def named(self, items: list[Any], prefix: tuple[str, ...], what: str) -> dict[str, Any]:
        """A branch or shortcut, a block of its own: named after the module that holds all of its rows."""
        scopes = [self.scope(i) for i in items]
        heads = {s[len(prefix)] if len(s) > len(prefix) and s[: len(prefix)] == prefix else None for s in scopes}
        if len(heads) != 1 or None in heads:
            where = ".".join(prefix) or "(the model)"
            raise _Names(
                f"{where}: a {what} runs {', '.join(self.modules(items)) or 'no module'};"
                f" cnncalc names each {what}'s rows after one module that holds them, and these have none,"
                " so the state_dict would not load"
            )
        (head,) = heads
        assert head is not None
        return {head: self.entries(items, (*prefix, head))}

    def scope(self, item: Any) -> tuple[str, ...]:
        if isinstance(item, _Leaf):
            return item.op.scope
        if isinstance(item, _Join):
            return item.scope
        if isinstance(item, _Part):
            return ()
        # the modules it runs say where it belongs (the join's own code, an add or a cat, may sit a level above),
        # a level above a branch's or a shortcut's, which are named after a module of their own
        if item.what in ("concat", "split"):
            inner = [_common([self.scope(x) for x in b]) for b in item.branches if b]
            common = _common(inner) if inner else item.scope
            heads = [s[len(common)] if len(s) > len(common) else None for s in inner]
            if None not in heads and len(set(heads)) == len(heads):
                return common  # each branch in a module of its own, all in this one (DeepLab's ASPP.convs)
            return _common([*inner, item.scope])  # else where its code runs: its branches flat there, or named
        scopes: list[tuple[str, ...]] = []
        for i, branch in enumerate(item.branches):
            if branch:
                inner_scope = _common([self.scope(x) for x in branch])
                # a shortcut in a module of its own (torchvision's downsample) sits in the block a level above it
                held = item.what == "residual" and i == 1 and not item.flat
                scopes.append(inner_scope[:-1] if held else inner_scope)
        return _common(scopes or [item.scope])

    def bare(self, shortcut: list[Any], body: list[Any]) -> bool:
        """Whether a residual's shortcut runs in no module of its own: where its rows run is where the body's do,
        or a block around them (a projection conv and its norm beside the body's modules)."""
        inner = _common([self.scope(x) for x in shortcut])
        return _common([self.scope(x) for x in body])[: len(inner)] == inner

    def modules(self, items: Sequence[Any]) -> list[str]:
        """The modules ``items`` run, by qualified name."""
        found: list[str] = []
        for item in items:
            if isinstance(item, _Leaf):
                found += [f"'{item.op.module}'"] if item.op.module else []
            elif isinstance(item, _Struct):
                found += [m for branch in item.branches for m in self.modules(branch)]
        return found

    def has_params(self, name: str) -> bool:
        """Whether a module holds state its rows would each need their own of: parameters, or buffers (a batch
        norm's running statistics, in the state_dict too)."""
        try:
            module = self.gm.get_submodule(name)
        except AttributeError:
            return True  # a parameter read directly (a layer scale)
        return _holds_state(module)


#: The keys that carry a module's class, and the channels coming into it, on a ``sequential`` entry until blocks
#: are found (then dropped).
CLASS = "_class"
IN = "_in"


def _projection_stride(item: _Struct) -> int | None:
    """The stride the engine's projection shortcut takes from the residual's input to its output (the
    smallest that gives the output's size), None where there is none."""
    from .engine import _one_stride

    a, b = _shape(item.fork), _shape(item.node)
    if a is None or b is None or len(a) != 4 or len(b) != 4:
        return None
    return _one_stride((a[2], a[3]), (b[2], b[3]))


def _is_projection(shortcut: dict[str, Any], stride: int | None) -> bool:
    """Whether a named shortcut is what ``shortcut: projection`` builds: ``downsample``, a 1x1 conv without bias
    (``0``) with the stride the engine takes (``stride``), then a batch norm at its defaults (``1``)."""
    ((name, entries),) = shortcut.items()
    if name != "downsample" or len(entries) != 2 or stride is None:
        return False
    conv, norm = entries
    given = conv.get("stride", 1)
    if (list(given) if isinstance(given, list | tuple) else [given, given]) != [stride, stride]:
        return False
    conv_keys = {"kind", "name", "out", "kernel", "stride", "padding", "dilation", "groups", "bias"}
    plain = {
        "padding": [0, 0],
        "dilation": [1, 1],
        "groups": 1,
        "bias": False,
        "kernel": [1, 1],
        "name": "0",
        "kind": "conv2d",
    }
    return (
        conv.get("kind") == "conv2d"
        and set(conv) <= conv_keys
        and all(conv.get(k) == v for k, v in plain.items())
        and norm == {"kind": "batchnorm2d", "name": "1", **_BN_DEFAULTS}
    )


_BN_DEFAULTS = {"eps": 1e-5, "momentum": 0.1, "affine": True, "track_running_stats": True}


def _fold_activations(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A residual's add followed by an unnamed in-place relu (torchvision's ``out += identity; out = relu(out)``)
    written as the residual's ``activation``, as the shipped specs do."""
    out: list[dict[str, Any]] = []
    for e in entries:
        last = out[-1] if out else None
        fused = e.get("kind") in INPLACE_ACTIVATIONS and e.get("inplace") and set(e) == {"kind", "inplace"}
        if last is not None and last["kind"] == "residual" and "activation" not in last and fused:
            last["activation"] = e["kind"]
            continue
        out.append(e)
    return out


#: torch.cat of one tensor, which copies it: a concat of one identity branch.
COPY: dict[str, Any] = {"kind": "concat", "branches": [[]]}


def _one_row(entry: dict[str, Any]) -> bool:
    """Whether ``entry`` makes one row, so that a name on it names that row only: a layer, a join of named rows
    or a copy. A name on a structure would go before its rows' names too (multiply.conv): a state_dict would not
    load."""
    if any(k in entry for k in ("body", "shortcut", "layers")):
        return False
    if "branches" in entry:
        branches = entry["branches"]
        return entry.get("kind") == "concat" and not any(branches.values() if isinstance(branches, dict) else branches)
    return entry.get("kind") in KINDS or (entry.get("kind") in ("add", "concat", "multiply") and "from" in entry)


def _free(base: str, taken: set[str]) -> str:
    """``base``, or the first of ``base_2``, ``base_3`` ... that ``taken`` lacks."""
    return next(n for n in chain([base], (f"{base}_{i}" for i in count(2))) if n not in taken)


#: Kinds whose row makes no values at inference: its input itself, or a view of it.
_NO_VALUES = ("identity", "dropout", "stochastic_depth", "flatten")


class _Names(Exception):
    """Rows that cannot be named as the model names them."""


class _Unnameable(_Names):
    """A structure without a name is read by name: the graph is written flat instead."""


def _flat_named(concat: dict[str, Any], fork: str) -> list[dict[str, Any]]:
    """A concat of named branches as its branches' blocks one after the other, each reading ``fork``, and a
    concat of them (``from:``): the same rows under the same names."""
    out: list[dict[str, Any]] = []
    refs: list[str] = []
    for head, rows in concat["branches"].items():
        if not rows:
            refs.append(fork)
            continue
        block: dict[str, Any] = {"kind": "sequential", "name": head, "layers": rows}
        if out:
            block["from"] = fork
        out.append(block)
        refs.append(head)
    return [*out, {"kind": "concat", "from": refs}]


def _same_computation(module: nn.Module, found: dict[str, Any], shape: tuple[int, ...] | None, name: str) -> None:
    """Refuse an entry whose module, built at the traced input and given ``module``'s weights, does not compute
    exactly what ``module`` does there (an nn.LayerNorm over the width of a plane, not its channels)."""
    import torch

    if shape is None:
        return
    kind = KINDS[found["kind"]]
    try:
        built = kind.torch_module(kind.model.model_validate(found), shape[1:]).eval()
        built.load_state_dict(module.state_dict())
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            same = torch.equal(built(x.clone()), module(x.clone()))
    except Exception:  # a module its kind cannot rebuild at this input is not that kind
        same = False
    if not same:
        raise _Refused(
            f"module '{name}' ({type(module).__name__}) on a {'x'.join(map(str, shape[1:]))} input"
            f" does not compute what {found['kind']} does"
        )


def _common(scopes: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The longest module path that starts every one of ``scopes``."""
    common = scopes[0]
    for s in scopes[1:]:
        n = 0
        while n < min(len(common), len(s)) and common[n] == s[n]:
            n += 1
        common = common[:n]
    return common


def _size(items: Sequence[Any]) -> int:
    return sum(_size(b) for i in items if isinstance(i, _Struct) for b in i.branches) + len(items)


def _dims(node: Any) -> list[int]:
    """A permute's dimensions (``x.permute(0, 2, 3, 1)``, ``torch.permute(x, [0, 2, 3, 1])``)."""
    dims = node.kwargs.get("dims", node.args[1:] if len(node.args) > 2 else node.args[1] if len(node.args) > 1 else ())
    return [int(d) for d in dims] if all(isinstance(d, int) for d in dims) else []


def _describe(node: Any) -> str:
    target = node.target
    if getattr(target, "__name__", None) == "getattr" and len(node.args) == 2 and isinstance(node.args[1], str):
        return f"the attribute x.{node.args[1]}"  # x.real, x.shape: fx records reading it as getattr(x, name)
    name = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
    return f"{'x.' if node.op == 'call_method' else ''}{name}()" if node.op != "call_module" else f"'{target}'"


def trace(module: nn.Module, input_shape: Sequence[int]) -> tuple[fx.GraphModule, list[Problem]]:
    """The module traced with torch.fx (leaves: what a kind describes, and modules with no children), with every
    tensor's shape from one run on zeros; or the one problem that stopped the trace."""
    import torch
    from torch import fx
    from torch.fx.passes.shape_prop import ShapeProp

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            # torch's own modules that no kind describes stay whole, to be refused by name; another module without
            # children is traced through (torchvision's Permute, ConvNeXt's LayerNorm2d), its operations then
            # read (or refused) one by one
            childless = not any(True for _ in m.children())
            return entry_for(m) is not None or (childless and type(m).__module__.startswith("torch.nn"))

    tracer = Tracer()
    tracer.record_stack_traces = True
    try:
        graph = tracer.trace(module)
    except Exception as exc:
        return fx.GraphModule(torch.nn.Module(), fx.Graph()), [_trace_problem(exc)]
    gm = fx.GraphModule(module, graph)
    try:
        # ShapeProp prints the traceback of an operation that fails, then raises its own error from it
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(torch.zeros(1, *input_shape))
    except Exception as raised:
        cause: BaseException = raised
        while cause.__cause__ is not None:  # what failed, not ShapeProp's dump of the node
            cause = cause.__cause__
        size = fmt(input_shape)
        if out_of_memory(cause):
            why = "running it once to learn every shape needs more memory than this machine has free"
            hint = "import at a smaller --input, then set the spec's input"
            return gm, [Problem(f"(the model): on a 1 x {size} input, {why}: {hint}")]
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        return gm, [Problem(f"(the model): it does not run on a 1 x {size} input: {first}")]
    return gm, []


def _idle(module: nn.Module, gm: fx.GraphModule, shape: tuple[int, ...], unread: bool = False) -> list[Problem]:
    """A problem for each module whose parameters the traced model never reads (GoogLeNet's and Inception v3's
    auxiliary classifiers, which run in training only): the spec would leave them out, in silence. With
    ``unread``, also each that runs but from whose output no returned tensor is computed."""
    called = {str(n.target) for n in gm.graph.nodes if n.op in ("call_module", "get_attr")}
    live: set[Any] = set()  # what the outputs are computed from: a module whose output nothing reads is idle too
    todo = [n for n in gm.graph.nodes if n.op == "output"]
    while todo:
        node = todo.pop()
        if node not in live:
            live.add(node)
            todo.extend(node.all_input_nodes)
    used = {str(n.target) for n in live if n.op in ("call_module", "get_attr")} if unread else called

    def runs(name: str, among: set[str] = used) -> bool:
        parts = name.split(".")
        return any(".".join(parts[:k]) in among for k in range(1, len(parts) + 1))

    names: dict[int, list[str]] = {}  # a parameter shared by two modules runs where either runs
    for name, value in module.named_parameters(remove_duplicate=False):
        names.setdefault(id(value), []).append(name)
    idle = [name for name, value in module.named_parameters() if not any(runs(n) for n in names[id(value)])]
    if not idle:
        return []
    counts = dict(module.named_parameters())
    out: list[Problem] = []
    said: set[str] = set()
    for name in idle:
        parts = name.split(".")
        # the outermost module all of whose parameters are idle
        owner = (
            next(
                p
                for p in (".".join(parts[:k]) for k in range(1, len(parts)))
                if all(not runs(n) for n in counts if n.startswith(p + "."))
            )
            if len(parts) > 1
            else name
        )
        if owner in said:
            continue
        said.add(owner)
        held = sum(v.numel() for n, v in counts.items() if n == owner or n.startswith(owner + "."))
        what = type(module.get_submodule(owner)).__name__ if len(parts) > 1 else "a parameter"
        size = "x".join(map(str, shape))
        if any(c == owner or c.startswith(owner + ".") for c in called):  # it runs (or a module in it does), but
            # no output is computed from what it gives
            out.append(
                Problem(
                    f"{owner}: {what} holds {held:,} parameters whose output the model does not use on a {size}"
                    " input; cnncalc imports what the outputs are computed from: return it, or build the model"
                    " without it"
                )
            )
            continue
        out.append(
            Problem(
                f"{owner}: {what} holds {held:,} parameters that do not run on a"
                f" {size} input at inference; cnncalc imports what runs: build the model"
                " without it (torchvision's GoogLeNet and Inception v3: --arg aux_logits=False)"
            )
        )
    return out


def _trace_problem(exc: BaseException) -> Problem:
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _in_torch(f.filename)]
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return Problem(f"(the model): torch.fx cannot trace it: {first}{where}")


def from_torch(
    module: nn.Module, input_shape: Sequence[int], *, name: str | None = None, progress: Progress | None = None
) -> Spec:
    """The spec of ``module`` on a C x H x W input, named after its module tree (its ``state_dict`` loads into
    ``build(spec)``); raises :class:`~cnncalc.errors.SpecError` with one problem per line where it cannot."""
    shape = tuple(int(n) for n in input_shape)
    say: Progress = progress or (lambda what, step, steps: None)
    was_training = module.training
    module.eval()
    try:
        say(f"tracing {type(module).__name__} with torch.fx", 0, _STEPS)
        gm, problems = trace(module, shape)
        if problems:
            raise SpecError(problems)
        shared = _shared_modules(module)
        if shared:
            raise SpecError(shared)
        idle = _idle(module, gm, shape)
        if idle:
            raise SpecError(idle)
        reader = _Reader(gm, module)
        try:
            # each module is checked here too: built as its kind, given its weights, it must give its output
            results = reader.read(lambda done, total: say(f"reading operations: {done} of {total}", 1, _STEPS))
            say("nesting the joins and naming the rows", 2, _STEPS)
            try:
                # nesting writes branches in the order they are joined, not run: where an in-place write follows a
                # read of its input, the graph is written flat, in the model's order
                if reader.order_bound:
                    raise _Refused
                items: list[Any] | None = reader.nest(results)
            except _Refused:
                items = None
            if items is not None:
                try:
                    layers, outputs = reader.written(items, results)
                except (_Refused, _Names) as exc:
                    if len(results) == 1 and not isinstance(exc, _Unnameable):
                        raise
                    # an output, or the tensor an output's rows start from, that no nested row holds (a residual's
                    # add has no row of its own), or an output's rows that split a module's apart: written flat
                    reader.forget_names()
                    items = None
            if items is None:
                try:
                    layers, outputs = reader.written(reader.flat(results), results)
                except _Unreturned as exc:
                    reader.problem(exc.node, f"the model returns {_describe(exc.node)}, which no row of the spec holds")
                    raise _Refused from None
        except _Refused:
            raise SpecError(reader.sorted_problems() or [Problem("(the model): cannot be imported")]) from None
        except _Names as exc:
            raise SpecError(Problem(str(exc))) from None
    finally:
        module.train(was_training)
    unread = _idle(module, gm, shape, unread=True)  # after what the outputs are: a model returning its input
    if unread:  # (or nothing) is refused as such, a clearer line
        raise SpecError(unread)
    say("finding repeated blocks", 3, _STEPS)
    blocks, layers = fold_blocks(layers)
    layers = [_walk(e, _clean) for e in layers]
    for block in blocks.values():
        block["layers"] = [_walk(e, _clean) for e in block["layers"]]
        if "args" in block:
            block["args"] = {k: _compact(v) for k, v in block["args"].items()}
    defaults = _lift_defaults(layers + [e for b in blocks.values() for e in b["layers"]])
    data: dict[str, Any] = {"name": name or type(module).__name__, "input": list(shape)}
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
    say("checking the spec", 4, _STEPS)
    spec = parse_spec(data)
    from .engine import analyze

    try:  # what the engine refuses is not written: a graph the DSL says otherwise than the model runs it
        analyze(spec)
    except SpecError as exc:
        raise SpecError(
            [Problem(f"(the model): the spec written for it does not check: {p.message}") for p in exc.problems]
        ) from None
    return spec


# --- repeated modules as blocks ------------------------------------------------------------------------


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
            own = {a: _compact(v[p]) for p, a in args.items() if repr(v[p]) != repr(defaults[a])}
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
    rest = [{k: v for k, v in e.items() if k != "name"} for e in inner[1:]]
    if any(repr(r) != repr(rest[0]) for r in rest):
        return stage
    first = {k: v for k, v in inner[0].items() if k not in ("name", "use") and repr(rest[0].get(k)) != repr(v)}
    block_args = {k: v for k, v in rest[0].items() if k != "use"}
    # an argument the later uses set but the first leaves at the block's default: the first says the default
    defaults = blocks[inner[0]["use"]].get("args", {})
    first |= {k: _compact(defaults[k]) for k in block_args if k not in inner[0]}
    use: dict[str, Any] = {"use": inner[0]["use"], "name": stage["name"], "repeat": len(inner), **block_args}
    if first:
        use["first"] = first
    return use


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


# --- entries as a person writes them ----------------------------------------------------------------


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
        out[key] = _compact(value)
    return out


def _at_default(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        whole = isinstance(value, int) and not isinstance(value, bool) and all(d == value for d in default)
        return whole or (isinstance(value, list | tuple) and list(value) == list(default))
    if isinstance(default, bool) or isinstance(value, bool):
        return value is default
    return bool(value == default)


def _compact(value: Any) -> Any:
    """A pair (or four sides) of one number as that number."""
    if isinstance(value, list) and len(value) in (2, 4) and len(set(value)) == 1 and isinstance(value[0], int):
        return value[0]
    return value


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
