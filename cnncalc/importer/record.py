"""Step 1 of an import: run the model once and record what runs.

The model runs once, in eval mode and without gradients, on a seeded random input, under a
``TorchDispatchMode``: every ATen operation that actually runs is recorded with its concrete arguments and
shapes, whatever Python code produced it (control flow, padding computed from the size, a module that calls
``F.batch_norm`` on its own weight). Module hooks keep the module stack, as ``torch.utils.flop_counter``'s
module tracker does, so that each operation knows the module it runs in, and each call of a module is recorded
too (its input, its output and the operations it ran), so that the next step can read a whole module as one
row where a layer kind describes it.

Tensors are told apart by identity: a parameter or buffer of the model is a :class:`Node` of op ``param``
named as ``model.named_parameters()`` names it, a tensor an operation computes is that operation's node, and an
operation in place makes a new node for the tensor it writes (its readers after it read the new values). Torch
is imported here only inside the functions.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable, Sequence
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Problem
from ..layers.base import fmt
from ..machine import out_of_memory

if TYPE_CHECKING:
    import torch
    from torch import nn


class Node:
    """One tensor of the recorded run and what made it.

    ``op`` is ``input`` (the model's input), ``param`` (a parameter or buffer, ``target`` its qualified name),
    ``const`` (a tensor the model holds otherwise, or made before the run), ``call`` (an ATen operation,
    ``target`` its overload), ``item`` (one result of a call that returns several: ``args`` is the call and the
    index), ``module`` (the end of a module's call: ``target`` its qualified name, ``args`` its input's node and
    the node of what it returned) or ``output`` (the model's return, ``args[0]`` it with nodes for tensors).
    """

    __slots__ = (
        "__weakref__",
        "args",
        "index",
        "inner",
        "kwargs",
        "module",
        "op",
        "scope",
        "shape",
        "storage",
        "target",
        "users",
        "value",
        "where",
        "writes",
    )

    def __init__(self, index: int, op: str, target: Any = None, args: tuple[Any, ...] = (), kwargs: Any = None):
        self.index = index
        self.op = op
        self.target = target
        self.args = args
        self.kwargs: dict[str, Any] = kwargs or {}
        self.shape: tuple[int, ...] | None = None  # the tensor's shape (batch first); None where it is no tensor
        self.scope: tuple[str, ...] = ()  # the path of the module it runs in
        self.where: tuple[str, int] | None = None  # the model's own source line that ran it
        self.users: dict[Node, None] = {}
        self.value: torch.Tensor | None = None
        self.storage: int | None = None  # the storage it lives in (views share their base's)
        self.writes = False  # an operation in place: its first argument's storage holds its result
        self.module: nn.Module | None = None  # a ``module`` node's module
        self.inner: tuple[int, int] = (0, 0)  # a ``module`` node's calls: the indices [start, end) of the nodes

    @property
    def all_input_nodes(self) -> list[Node]:
        found: list[Node] = []
        _nodes(self.args, found)
        _nodes(self.kwargs, found)
        return list(dict.fromkeys(found))

    @property
    def name(self) -> str:
        """What the operation is called in messages: ``relu_``, ``convolution``, a module's path."""
        if self.op == "call":
            return str(getattr(self.target, "__name__", self.target)).split(".")[0]
        return str(self.target)

    def __repr__(self) -> str:
        return f"<{self.index} {self.op} {self.name} {fmt(self.shape or ())}>"


def _nodes(value: Any, found: list[Node]) -> None:
    if isinstance(value, Node):
        found.append(value)
    elif isinstance(value, list | tuple):
        for v in value:
            _nodes(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _nodes(v, found)


class Recording:
    """What one run did: its nodes in the order they ran, the model's return, and what stopped the run."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.nodes: list[Node] = []
        self.output: Node | None = None
        self.problems: list[Problem] = []
        #: each parameter's and buffer's names (one tensor may be held under several)
        self.names: dict[int, list[str]] = {}
        #: each module's qualified names, by identity (the first is the one rows take)
        self.paths: dict[int, list[str]] = {}
        #: the ``param`` node of each parameter or buffer read, by its name
        self.params: dict[str, Node] = {}
        #: operations that read a computed tensor's values into Python (``if x.sum() > 0``, ``x.item()``)
        self.values_read: list[Node] = []

    def new(self, op: str, target: Any = None, args: tuple[Any, ...] = (), kwargs: Any = None) -> Node:
        node = Node(len(self.nodes), op, target, args, kwargs)
        self.nodes.append(node)
        for used in node.all_input_nodes:
            used.users[node] = None
        return node


def _torch_dirs() -> tuple[str, ...]:
    import torch

    here = str(Path(__file__).resolve().parent.parent)  # cnncalc's own frames are not the model's either
    return (str(Path(torch.__file__).resolve().parent), here)


def _caller(skip: tuple[str, ...]) -> tuple[str, int] | None:
    """The innermost frame of the model's own code: the first outside torch and cnncalc."""
    frame: Any = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(skip) and not name.startswith("<"):
            return name, frame.f_lineno
        frame = frame.f_back
    return None


def _resolved(name: str) -> str:
    try:
        return str(Path(name).resolve())
    except OSError:
        return name


def record(model: nn.Module, input_shape: Sequence[int], *, seed: int = 0) -> Recording:
    """Run ``model`` once on a 1 x ``input_shape`` input (seeded random values) and record every operation that
    runs."""
    import torch
    from torch.nn.modules import module as module_mod
    from torch.utils._python_dispatch import TorchDispatchMode

    rec = Recording(model)
    for name, value in model.named_parameters(remove_duplicate=False):
        rec.names.setdefault(id(value), []).append(name)
    for name, buffer in model.named_buffers(remove_duplicate=False):
        rec.names.setdefault(id(buffer), []).append(name)
    for name, child in model.named_modules(remove_duplicate=False):
        rec.paths.setdefault(id(child), []).append(name)
    held = {id(t): t for t in (*model.parameters(), *model.buffers())}

    skip = tuple(_resolved(d) for d in _torch_dirs())
    skip = (*skip, *(d for d in _torch_dirs() if d not in skip))
    #: the node of each tensor by identity, with a weak reference to tell a reused id apart
    bound: dict[int, tuple[weakref.ref[torch.Tensor], Node]] = {}
    #: a number for each storage, by the identity of the tensor that made it (a view's base): the run lets go of
    #: each tensor after its last reader, as it would without cnncalc, and a storage made later is another one
    storages: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}
    serials = count()
    stack: list[tuple[str, ...]] = [()]
    calls: list[tuple[nn.Module, Node | None, int]] = []

    def bind(t: torch.Tensor, node: Node) -> None:
        bound[id(t)] = (weakref.ref(t), node)
        node.shape = tuple(t.shape)
        base: torch.Tensor = t._base if t._base is not None else t
        known = storages.get(id(base))
        if known is None or known[0]() is not base:
            known = storages[id(base)] = (weakref.ref(base), next(serials))
        node.storage = known[1]

    def node_of(t: torch.Tensor) -> Node:
        found = bound.get(id(t))
        if found is not None and found[0]() is t:
            return found[1]
        key = id(t)
        if key in held:
            name = rec.names[key][0]
            node = rec.params.get(name)
            if node is None:
                node = rec.params[name] = rec.new("param", name)
                bind(t, node)
                node.value = t
            return node
        node = rec.new("const", f"a {fmt(tuple(t.shape))} tensor")
        node.scope = stack[-1]
        node.where = _caller(skip)
        bind(t, node)
        node.value = t
        return node

    def to_nodes(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return node_of(value)
        if isinstance(value, list | tuple):
            return type(value)(to_nodes(v) for v in value) if not hasattr(value, "_fields") else value
        if isinstance(value, dict):
            return {k: to_nodes(v) for k, v in value.items()}
        return value

    class Mode(TorchDispatchMode):  # type: ignore[no-untyped-call]
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            node = rec.new("call", func, to_nodes(args), to_nodes(kwargs))
            node.scope = stack[-1]
            node.where = _caller(skip)
            schema = func._schema
            node.writes = bool(
                schema.arguments
                and schema.arguments[0].alias_info is not None
                and schema.arguments[0].alias_info.is_write
            )
            if isinstance(out, torch.Tensor):
                bind(out, node)
            elif isinstance(out, list | tuple):
                for i, t in enumerate(out):
                    if isinstance(t, torch.Tensor):
                        item = rec.new("item", None, (node, i))
                        item.scope, item.where = node.scope, node.where
                        bind(t, item)
            elif func is torch.ops.aten._local_scalar_dense.default or func is torch.ops.aten.is_nonzero.default:
                rec.values_read.append(node)
            return out

    def pre(module: nn.Module, args: Any) -> None:
        paths = rec.paths.get(id(module))
        path = tuple(paths[0].split(".")) if paths and paths[0] else stack[-1] if not paths else ()
        stack.append(path)
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        calls.append((module, node_of(x) if x is not None else None, len(rec.nodes)))

    def post(module: nn.Module, args: Any, out: Any) -> None:
        stack.pop()
        called, before, start = calls.pop()
        if called is not module or not isinstance(out, torch.Tensor) or before is None:
            return
        paths = rec.paths.get(id(module))
        if not paths or not paths[0]:
            return  # a module outside the model's tree, or the model itself: its operations are what it is
        inner = node_of(out)
        node = rec.new("module", paths[0], (before, inner))
        node.module = module
        node.scope = stack[-1]
        node.inner = (start, len(rec.nodes) - 1)
        node.where = inner.where
        bind(out, node)  # who reads the module's output reads this node (its input's, where it returns that)
        node.storage = inner.storage

    handles = [
        module_mod.register_module_forward_pre_hook(pre),
        module_mod.register_module_forward_hook(post),
    ]
    try:
        x = torch.randn(1, *input_shape, generator=torch.Generator().manual_seed(seed))
        source = rec.new("input", "input")
        bind(x, source)
        with torch.no_grad(), Mode():  # type: ignore[no-untyped-call]
            returned = model(x)
    except Exception as raised:
        cause: BaseException = raised
        size = fmt(tuple(input_shape))
        if out_of_memory(cause):
            why = "running it once to learn every shape needs more memory than this machine has free"
            hint = "import at a smaller --input, then set the spec's input"
            rec.problems.append(Problem(f"(the model): on a 1 x {size} input, {why}: {hint}"))
        else:
            first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
            where = _where_raised(cause, skip)
            rec.problems.append(Problem(f"(the model): it does not run on a 1 x {size} input: {first}{where}"))
        return rec
    finally:
        for handle in handles:
            handle.remove()
    rec.output = rec.new("output", "output", (_returned(returned, node_of),))
    _values_read(rec)
    return rec


def _values_read(rec: Recording) -> None:
    """A problem where the code read a value computed from the input into Python (``if x.sum() > 0``,
    ``x.item()``): what ran may depend on the input's values, and another input may run otherwise."""
    for node in rec.values_read:
        seen: set[Node] = set()
        todo = list(node.all_input_nodes)
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            if x.op == "input":
                rec.problems.append(
                    Problem(
                        f"{'.'.join(node.scope) or '(the model)'}: the code reads a value computed from the input in"
                        f" Python ({node.name}(), as `if x.sum() > 0` or `x.item()` run it), so what runs depends on"
                        " the input's values; cnncalc imports a network that runs the same for every input"
                        + (f" ({node.where[0]}:{node.where[1]})" if node.where else "")
                    )
                )
                break
            todo.extend(x.all_input_nodes)


def _returned(value: Any, node_of: Callable[[Any], Node]) -> Any:
    """The model's return with nodes for tensors, containers kept (a dict's keys, a tuple, a list)."""
    import torch

    if isinstance(value, torch.Tensor):
        return node_of(value)
    if isinstance(value, dict):
        return {k: _returned(v, node_of) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return (
            type(value)(_returned(v, node_of) for v in value)
            if not hasattr(value, "_fields")
            else tuple(_returned(v, node_of) for v in value)
        )
    return value


def _where_raised(exc: BaseException, skip: tuple[str, ...]) -> str:
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(skip)]
    return f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
