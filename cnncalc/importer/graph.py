"""What the steps of an import share: the recognised operations of a recorded run, and the problems found.

:class:`Graph` is filled by :mod:`.recognise` (an :class:`Op` per tensor the spec computes), checked by
:mod:`.flow`, nested by :mod:`.nest` into :class:`Leaf`, :class:`Part`, :class:`Struct` and :class:`Join`
items, and written by :mod:`.name`. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, count
from typing import TYPE_CHECKING, Any

from ..errors import Problem
from .record import Node

if TYPE_CHECKING:
    from torch import nn


@dataclass
class Op:
    """One tensor of the run as the spec computes it, and how it is made."""

    what: str  # entry, add, cat, mul, chunk, part, input
    inputs: list[Node]
    entries: list[dict[str, Any]] = field(default_factory=list)
    scope: tuple[str, ...] = ()  # the module path the op runs in
    module: str | None = None  # the qualified name of the module (or parameter) whose row it is
    inplace: bool = False
    index: int = 0  # a part's index
    sizes: list[int] = field(default_factory=list)  # a chunk's channels per part
    stack: bool = False  # an add computed as torch.stack(inputs).sum(0)


@dataclass
class Leaf:
    op: Op
    node: Any = None  # the node it makes
    reads: Any = None  # the node it reads by name (from:), where it does not read the item before it


@dataclass
class Part:
    index: int
    node: Any = None  # the node of the part


@dataclass
class Struct:
    what: str  # residual, concat, split, multiply
    branches: list[list[Any]]  # residual: [body, shortcut]; multiply: [body], or [a, b] for a product of two
    scope: tuple[str, ...]
    inplace: bool = False
    reshapes: bool = False  # its output's shape is not its input's
    node: Any = None  # the join's node
    fork: Any = None  # the node its branches start from
    reads: Any = None
    flat: bool = False  # nesting cannot say it: written as its branches' rows and a join of them (from:)
    sections: list[int] | None = None  # a split's channels per branch, where the parts are unequal
    parts: list[Any] = field(default_factory=list)  # a split's parts (nodes), one per branch


@dataclass
class Join:
    """A join of named rows (``{kind: add, from: [a, b]}``): a structure written flat."""

    what: str  # add, concat, multiply
    inputs: list[Any]  # the nodes it joins
    scope: tuple[str, ...]
    node: Any
    inplace: bool = False
    reads: Any = None  # unused: a join names what it reads
    stack: bool = False  # an add computed as torch.stack(inputs).sum(0)


@dataclass(frozen=True)
class Refusal:
    """One problem of an import, as ``--format json`` lists it: the module it ran in, the operation (its ATen
    name, or the module's path), the model's source line, and what is wrong."""

    module: str
    operation: str
    source: str | None
    message: str


def operation(node: Node | None) -> str:
    """An operation's name in a refusal: ATen's (``cumsum``), or what :func:`describe` calls a module or tensor."""
    if node is None:
        return "(the model)"
    if node.op == "call":
        return str(node.name)
    return describe(node)


class Refused(Exception):
    pass


class Unreturned(Refused):
    """An output no row of the spec holds, to name in ``outputs``."""

    def __init__(self, node: Any) -> None:
        super().__init__()
        self.node = node


class Names(Exception):
    """Rows that cannot be named as the model names them."""


class Unnameable(Names):
    """A structure without a name is read by name: the graph is written flat instead."""


#: The keys that carry a module's class, and the channels coming into it, on a ``sequential`` entry until blocks
#: are found (then dropped).
CLASS = "_class"
IN = "_in"

#: torch.cat of one tensor, or a contiguous copy, which copies it: a concat of one identity branch.
COPY: dict[str, Any] = {"kind": "concat", "branches": [[]]}

#: Kinds whose row makes no values at inference: its input itself, or a view of it.
NO_VALUES = ("identity", "dropout", "stochastic_depth", "flatten")


class Graph:
    """The recognised run: an :class:`Op` per node the spec computes, and what the steps found wrong."""

    def __init__(self, root: nn.Module, nodes: list[Node], output: Node) -> None:
        self.root = root
        self.nodes = nodes
        self.output = output
        self.ops: dict[Node, Op] = {}
        self.refused: dict[Node, str] = {}
        #: what the steps found wrong: each problem's node's place in the run, its line, and what it is about
        self.problems: list[tuple[int, Problem, Refusal]] = []
        #: an operation in place whose input something read before it: only the model's order keeps those values
        self.order_bound = False
        self.calls: dict[str, int] = {}  # how often each module's (or parameter's) row is made
        self.same: dict[Node, Node] = {}  # a node that is another's tensor (a view it reads the same, a module's end)
        self.cl: set[Node] = set()  # nodes that are a plane's channels-last view (ConvNeXt's permute)
        self.explained: set[Node] = set()  # refused nodes whose reader's problem says what they are
        #: modules whose parameters run in no row: left out, each said in a warning
        self.warnings: list[Problem] = []

    def order(self, node: Node) -> int:
        return node.index

    def resolve(self, node: Any) -> Any:
        """The node whose tensor ``node`` is (itself, or what a view or a module's end stands for)."""
        while node in self.same:
            node = self.same[node]
        return node

    def problem(self, node: Node | None, what: str) -> None:
        where = ".".join(node.scope) if node is not None and node.scope else "(the model)"
        place = node.where if node is not None else None
        source = f"{place[0]}:{place[1]}" if place else None
        refusal = Refusal(module=where, operation=operation(node), source=source, message=what)
        problem = Problem(f"{where}: {what}{source_line(node)}")
        self.problems.append((node.index if node is not None else -1, problem, refusal))

    def sorted_problems(self) -> dict[Problem, Refusal]:
        """The problems in the model's order, each once, with what each is about."""
        ordered: dict[Problem, Refusal] = {}
        for _, problem, refusal in sorted(self.problems, key=lambda p: p[0]):
            ordered.setdefault(problem, refusal)
        return ordered

    def plane(self, node: Node) -> tuple[int, ...] | None:
        """A node's shape as the spec's row has it: a plane's, where the model computes it channels-last."""
        shape = node.shape
        return (shape[0], shape[3], shape[1], shape[2]) if node in self.cl and shape is not None else shape

    def writes(self, node: Node) -> bool:
        """Whether ``node`` writes in place into its input (as read, or as run where it was refused)."""
        op = self.ops.get(node)
        if op is not None:
            return bool(op.inplace or any(e.get("inplace") for e in op.entries[:1]))
        return writes_in_place(node)

    def aliased(self, node: Node) -> Node | None:
        """The node whose storage ``node``'s output is (the input of an operation in place, of an identity at
        inference or of a view), or None: its values are its own."""
        op = self.ops.get(node)
        if op is None or not op.inputs:
            return None
        kind = op.entries[0].get("kind") if op.entries else None
        shares = self.writes(node) or op.what in ("chunk", "part") or kind in NO_VALUES
        return op.inputs[0] if shares else None

    def chain_of(self, node: Node) -> list[Node]:
        """``node`` and each node whose storage it is, in turn."""
        links = [node]
        while (up := self.aliased(links[-1])) is not None:
            links.append(up)
        return links

    def storage(self, node: Node) -> Node:
        return self.chain_of(node)[-1]

    def has_params(self, name: str) -> bool:
        """Whether a module holds state its rows would each need their own of: parameters, or buffers (a batch
        norm's running statistics, in the state_dict too)."""
        try:
            module = self.root.get_submodule(name)
        except AttributeError:
            return True  # a parameter read directly (a layer scale)
        return holds_state(module)


def writes_in_place(node: Node) -> bool:
    """Whether an operation of the run writes into its first input: an ATen operation in place (``relu_``,
    ``add_``), or a module built so (``inplace=True``)."""
    if node.op == "module":
        return bool(getattr(node.module, "inplace", False))
    return node.writes


def holds_state(module: nn.Module, recurse: bool = True) -> bool:
    """Whether a module holds parameters or buffers (a batch norm's running statistics): what a state_dict loads."""
    return any(True for _ in module.parameters(recurse)) or any(True for _ in module.buffers(recurse))


def source_line(node: Node | None) -> str:
    where = node.where if node is not None else None
    return f" ({where[0]}:{where[1]})" if where else ""


def describe(node: Node) -> str:
    """An operation as messages name it: a module by its path, an ATen operation by its name (``cumsum()``)."""
    if node.op == "module":
        return f"'{node.target}'"
    if node.op == "param":
        return f"the tensor '{node.target}'"
    if node.op == "input":
        return "the input"
    if node.op == "item":
        return describe(node.args[0])
    return f"{node.name}()"


def common(scopes: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """The longest module path that starts every one of ``scopes``."""
    found = scopes[0]
    for s in scopes[1:]:
        n = 0
        while n < min(len(found), len(s)) and found[n] == s[n]:
            n += 1
        found = found[:n]
    return found


def size(items: Sequence[Any]) -> int:
    return sum(size(b) for i in items if isinstance(i, Struct) for b in i.branches) + len(items)


def free(base: str, taken: set[str]) -> str:
    """``base``, or the first of ``base_2``, ``base_3`` ... that ``taken`` lacks."""
    return next(n for n in chain([base], (f"{base}_{i}" for i in count(2))) if n not in taken)


def scope_of(item: Any) -> tuple[str, ...]:
    """Where an item belongs in the module tree: a row's module, a join's code, or what a structure's branches run
    (the join's own code, an add or a cat, may sit a level above), a level above a branch's or a shortcut's, which
    are named after a module of their own."""
    if isinstance(item, Leaf):
        return item.op.scope
    if isinstance(item, Join):
        return item.scope
    if isinstance(item, Part):
        return ()
    if item.what in ("concat", "split"):
        inner = [common([scope_of(x) for x in b]) for b in item.branches if b]
        shared = common(inner) if inner else item.scope
        heads = [s[len(shared)] if len(s) > len(shared) else None for s in inner]
        if None not in heads and len(set(heads)) == len(heads):
            return shared  # each branch in a module of its own, all in this one (DeepLab's ASPP.convs)
        return common([*inner, item.scope])  # else where its code runs: its branches flat there, or named
    scopes: list[tuple[str, ...]] = []
    for i, branch in enumerate(item.branches):
        if branch:
            inner_scope = common([scope_of(x) for x in branch])
            # a shortcut in a module of its own (torchvision's downsample) sits in the block a level above it
            held = item.what == "residual" and i == 1 and not item.flat
            scopes.append(inner_scope[:-1] if held else inner_scope)
    return common(scopes or [item.scope])


def row_name(op: Op) -> str:
    """A row's name in its block: its module's path below the block (``conv1``; ``convs.0`` where a module
    list's modules run between others', written into the block around the list)."""
    assert op.module is not None
    inside = ".".join(op.scope)
    return op.module[len(inside) + 1 :] if inside and op.module.startswith(inside + ".") else op.module
