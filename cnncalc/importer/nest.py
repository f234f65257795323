"""Step 4 of an import: the recognised operations as nested items, each join's branches from the fork that
dominates it; or, where nesting cannot say the graph, flat, every row reading by name what is not the row before.

Where the graph forks and meets again, the meeting says the structure: an add is a ``residual`` (the body the
longer side, or the side an add in place writes into), a concatenation a ``concat`` (a ``split`` where its
branches are a chunk's parts, in order), a product with the fork's own tensor a ``multiply``. Torch-free.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .graph import Graph, Join, Leaf, Op, Part, Refused, Struct, common, scope_of, size


def part_slice(g: Graph, node: Any) -> Op:
    """A part of a chunk as the row that makes it: a ``slice`` of the chunk's input."""
    op = g.ops[node]
    sizes = g.ops[op.inputs[0]].sizes
    start = sum(sizes[: op.index])
    part = {"kind": "slice", "start": start, "stop": start + sizes[op.index]}
    return Op("entry", [g.ops[op.inputs[0]].inputs[0]], [part], op.scope)


class Nester:
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.idom: dict[Any, Any] = {}
        self.emitted: set[Any] = set()

    def nest(self, results: list[Any]) -> list[Any]:
        """The graph as nested items; raises Refused where nesting cannot say it (then :meth:`flat` does). Of
        several outputs, the first the model computes is the chain from the input; each other one, where it is not
        on that chain, the rows from the nearest tensor already written that it depends on (read by name), after
        them."""
        g = self.g
        depth: dict[Any, int] = {}
        for node in sorted(g.ops, key=lambda n: n.index):
            inputs = g.ops[node].inputs
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
        start = next(n for n, op in g.ops.items() if op.what == "input")
        first, *others = sorted((r for r in results if r is not start), key=lambda n: n.index)
        items = self.chain(start, first)
        for out in others:
            if out in self.emitted:
                continue  # a tensor of the rows written already: the output names it
            src = self.idom[out]
            while src is not None and src is not start and src not in self.emitted:
                src = self.idom[src]
            if src is None or g.ops[src].what in ("chunk", "part"):
                raise Refused  # no row holds the tensor it starts from: written flat
            side = self.chain(src, out)
            if isinstance(side[0], Part):
                raise Refused
            items += [replace(side[0], reads=src), *side[1:]]
        return items

    def flat(self, results: list[Any]) -> list[Any]:
        """The graph nesting cannot say (a tensor read inside two branches of a join), written flat: every op the
        result needs in the model's order, each reading by name (``from:``) what is not the row before it, each
        join a join of named rows, and each part of a chunk a ``slice`` of its input."""
        g = self.g
        g.problems.clear()  # nesting's, which this way says
        needed: set[Any] = set()
        todo = list(results)
        while todo:
            node = todo.pop()
            if node not in needed:
                needed.add(node)
                todo.extend(g.ops[node].inputs)
        items: list[Any] = []
        before = None
        for node in sorted(needed, key=lambda n: n.index):
            op = g.ops[node]
            if op.what == "chunk":
                continue  # its parts are slices of its input
            if op.what == "part":
                x = g.ops[op.inputs[0]].inputs[0]
                items.append(Leaf(part_slice(g, node), node, None if x is before else x))
            elif op.what == "entry":
                x = op.inputs[0]
                items.append(Leaf(op, node, None if x is before else x))
            elif op.what != "input":
                what = {"add": "add", "cat": "concat", "mul": "multiply"}[op.what]
                items.append(Join(what, list(op.inputs), op.scope, node, op.inplace, stack=op.stack))
            before = node
        return items

    def emit(self, node: Any) -> None:
        if node in self.emitted:
            raise Refused  # read inside two branches: nesting cannot say it (the model is written flat)
        self.emitted.add(node)

    def chain(self, src: Any, dst: Any) -> list[Any]:
        g = self.g
        items: list[Any] = []
        cur = dst
        while cur is not src:
            if cur is None:
                raise Refused
            op = g.ops[cur]
            self.emit(cur)
            if op.what == "entry":
                items.append(Leaf(op, cur))
                cur = op.inputs[0]
            elif op.what == "part":
                items.append(Part(op.index, cur))
                cur = op.inputs[0]
            elif op.what in ("add", "cat", "mul"):
                fork = self.idom[cur]
                items.append(self.join(cur, op, fork))
                cur = g.ops[fork].inputs[0] if g.ops[fork].what == "chunk" else fork
            else:
                raise Refused  # a chunk whose parts do not meet again in one concat
        items.reverse()
        return items

    def join(self, node: Any, op: Op, fork: Any) -> Struct:
        g = self.g
        scope = op.scope
        if g.ops[fork].what == "chunk":
            self.emit(fork)
            branches = [self.chain(fork, i) for i in op.inputs]
            parts = [b[0].index if b and isinstance(b[0], Part) else None for b in branches]
            if op.what != "cat" or parts != list(range(len(branches))):
                raise Refused  # the parts of a chunk joined out of order or otherwise
            sizes = g.ops[fork].sizes
            if len(sizes) != len(branches):
                raise Refused  # some of the parts joined: written flat, each a slice
            return Struct(
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
            return Struct(what, branches, scope, inplace=op.inplace, node=node, fork=fork, flat=True)
        if op.what == "cat":
            return Struct("concat", branches, scope, node=node, fork=fork)
        if op.what == "add" and op.stack:  # torch.stack(xs).sum(0): a join of named rows, stack: true
            return Struct("residual", branches, scope, node=node, fork=fork, flat=True)
        if op.what == "add":
            if len(branches) != 2:
                raise Refused
            a, b = branches
            # the body is the longer side, or the side an add in place writes into (out += shortcut): a residual's
            # inplace writes into its body's output, so the add allocates nothing, as in the model
            body, shortcut = (a, b) if (op.inplace and a) or size(a) >= size(b) else (b, a)
            reshapes = node.shape != g.plane(fork)
            inplace = op.inplace and body is a
            # a shortcut no module holds apart from the body (bare leaf modules beside it): no name says it as a
            # block, so it is written as rows beside the body's and an add of the two by name
            bare = bool(shortcut) and self.bare(shortcut, body)
            return Struct(
                "residual", [body, shortcut], scope, inplace=inplace, reshapes=reshapes, node=node, fork=fork, flat=bare
            )
        a, b = branches
        if a and b:  # f(x) * g(x): no body says it; the two branches' last rows, multiplied by name
            return Struct("multiply", [a, b], scope, node=node, fork=fork, flat=True)
        return Struct("multiply", [a or b], scope, node=node, fork=fork)

    def bare(self, shortcut: list[Any], body: list[Any]) -> bool:
        """Whether a residual's shortcut runs in no module of its own: where its rows run is where the body's do,
        or a block around them (a projection conv and its norm beside the body's modules)."""
        inner = common([scope_of(x) for x in shortcut])
        return common([scope_of(x) for x in body])[: len(inner)] == inner
