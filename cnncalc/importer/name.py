"""Step 5 of an import: the nested items written as entries, rows named after the module tree.

Each row is named after its module: its last name, inside ``sequential`` entries for the modules around it
(``layer2`` > ``0`` > ``conv1``), so that the spec's build registers it as ``layer2.0.conv1``, the model's own
name, and the model's ``state_dict`` loads into ``build(spec)`` by name. A branch, a shortcut and a structure whose
rows all lie in one module are named after that module; what nesting cannot name so is written flat, its rows
read by name (``from:``). Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..engine import BLOCK_INPUT
from ..fields import INPLACE_ACTIVATIONS
from ..layers import KINDS
from .graph import (
    CLASS,
    IN,
    Graph,
    Join,
    Leaf,
    Names,
    Refused,
    Struct,
    Unnameable,
    Unreturned,
    describe,
    free,
    holds_state,
    row_name,
    scope_of,
)
from .nest import part_slice


class Namer:
    """Writes items as entries; remembers where the spec holds each tensor, to read it by name."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.empty_names: dict[tuple[str, ...], set[str]] = {}
        self.last_ref: str | None = "input"  # the name a later entry reads the last one's output by
        self.paths: dict[Any, list[tuple[str, ...]]] = {}  # where the spec holds a node's tensor (rows, blocks)
        self.known: set[tuple[str, ...]] = {("input",)}  # every name the spec has made so far
        self.unnamed: dict[Any, tuple[dict[str, Any], tuple[str, ...]]] = {}  # rows a name can be given
        #: the node each block (by its path) starts from: ``from: in`` reads it
        self.block_in: dict[tuple[str, ...], Any] = {}
        #: every module's path: a name a row or block will take
        self.tree = {n for n, _ in g.root.named_modules() if n}
        self.known_names = {"input"}  # the same, as dotted names (a block's part may hold a dot: convs.0)
        start = next(n for n, op in self.g.ops.items() if op.what == "input")
        self.paths[start] = [("input",)]

    def written(self, items: list[Any], results: list[Any]) -> tuple[list[dict[str, Any]], list[str] | None]:
        """The rows of ``items``, and where the model returns several tensors, each's name, in order (a row that
        has none gets one, as a row read by ``from:`` does)."""
        layers = self.entries(items, ())
        if len(results) == 1:
            return layers, None
        for node in results:
            if node not in self.paths and node not in self.unnamed:
                raise Unreturned(node)
        return layers, [self.ref(node, ()) for node in results]

    def entries(self, items: Sequence[Any], prefix: tuple[str, ...]) -> list[dict[str, Any]]:
        items = self.spliced(list(items), prefix)
        while (apart := self.apart(items, prefix)) is not None:
            _merge(items, prefix, apart)
        out: list[dict[str, Any]] = []
        i = 0
        while i < len(items):
            scope = scope_of(items[i])
            if len(scope) > len(prefix) and scope[: len(prefix)] == prefix:
                head = scope[len(prefix)]
                j = i
                while j < len(items) and scope_of(items[j])[: len(prefix) + 1] == (*prefix, head):
                    j += 1
                module = self.g.root.get_submodule(".".join((*prefix, head)))
                cls = type(module).__name__
                # the block reads what its first row reads: by name where that is not the row before it
                reads = getattr(items[i], "reads", None)
                block_from = self.ref(reads, prefix) if reads is not None else None
                inner = list(items[i:j])
                if reads is not None:
                    inner[0] = replace(inner[0], reads=None)
                self.block_in[(*prefix, head)] = reads if reads is not None else self.input_of(items[i])
                layers = self.entries(inner, (*prefix, head))
                if (
                    len(layers) == 1
                    and "name" not in layers[0]
                    and layers[0]["kind"] in KINDS
                    and not holds_state(module)
                ):
                    # a module of one row without state (timm's GELU, which calls F.gelu): that row, named after it
                    row = layers[0]
                    kind, rest = row["kind"], {k: v for k, v in row.items() if k != "kind"}
                    row.clear()
                    row.update({"kind": kind, "name": head, **({"from": block_from} if block_from else {}), **rest})
                    out.append(row)
                    self.made(self.node_of(items[j - 1]), (*prefix, head))
                    self.last_ref = head
                    i = j
                    continue
                group: dict[str, Any] = {"kind": "sequential", "name": head}
                if block_from is not None:
                    group["from"] = block_from
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

    def apart(self, items: list[Any], prefix: tuple[str, ...]) -> str | None:
        """A module under ``prefix`` whose rows come apart: it runs, something else runs, it runs again (the
        modules of a list run between others': Res2Net's ``convs`` and ``bns``, HRNet's ``fuse_layers``)."""
        seen: set[str] = set()
        last = None
        for item in items:
            scope = scope_of(item)
            head = scope[len(prefix)] if len(scope) > len(prefix) and scope[: len(prefix)] == prefix else None
            if head is not None and head != last and head in seen:
                if not any(True for _ in self.g.root.get_submodule(".".join((*prefix, head))).children()):
                    raise Names(
                        f"{'.'.join((*prefix, head))}: the module runs twice, apart; its rows cannot share one block"
                    )
                return head
            if head is not None:
                seen.add(head)
            last = head
        return None

    # -- structures written flat, and rows read by name

    def spliced(self, items: list[Any], prefix: tuple[str, ...]) -> list[Any]:
        """``items`` with each structure nesting cannot say here written flat: a product of two computed tensors,
        or a structure whose branches run modules that rows outside it run too (LR-ASPP's head adds a row of the
        backbone's middle to one of its end: the backbone's rows would come apart)."""
        while True:
            heads = [self.heads(item, prefix) for item in items]
            for k, item in enumerate(items):
                if not isinstance(item, Struct) or item.what == "split" or len(scope_of(item)) > len(prefix):
                    continue
                others = set().union(*(h for n, h in enumerate(heads) if n != k))
                if item.flat or heads[k] & others:
                    items = [*items[:k], *self.splice(item), *items[k + 1 :]]
                    break
            else:
                return items

    def splice(self, item: Struct) -> list[Any]:
        """A structure as its branches' rows, in the model's order, each branch after the first reading the fork
        by name, then a join of the branches' last rows by name (``{kind: add, from: [a, b]}``)."""
        op = self.g.ops[item.node]
        out: list[Any] = []
        for branch in sorted((b for b in item.branches if b), key=self.first):
            reads = item.reads if not out else item.fork
            out += [replace(branch[0], reads=reads), *branch[1:]]
        what = {"residual": "add", "concat": "concat", "multiply": "multiply"}[item.what]
        inputs = op.inputs if what != "multiply" or len(op.inputs) == 2 else [op.inputs[0], op.inputs[0]]
        stack = self.g.ops[item.node].stack
        return [*out, Join(what, list(inputs), item.scope, item.node, item.inplace, stack=stack)]

    def first(self, branch: list[Any]) -> int:
        """Where a branch starts in the model's graph."""
        return min(
            x.node.index
            if isinstance(x, Leaf) or not any(x.branches)  # a tensor joined with itself: where the join is
            else self.first([y for b in x.branches for y in b])
            for x in branch
            if isinstance(x, Leaf | Struct)
        )

    def heads(self, item: Any, prefix: tuple[str, ...]) -> set[str]:
        """The names ``item``'s rows and blocks take in the block ``prefix`` (the module under it that holds them)."""
        if isinstance(item, Struct):
            return set().union(*(self.heads(x, prefix) for b in item.branches for x in b))
        if isinstance(item, Leaf) and item.op.module is not None:
            path = (*item.op.scope, row_name(item.op))
            if len(path) == len(prefix) + 1 and self.g.calls[item.op.module] > 1:
                return set()  # a module without parameters that runs several times: unnamed rows
        elif isinstance(item, Leaf | Join):
            path = item.op.scope if isinstance(item, Leaf) else item.scope
            if len(path) == len(prefix):
                return set()
        else:
            return set()
        return {path[len(prefix)]} if len(path) > len(prefix) and path[: len(prefix)] == prefix else set()

    def in_channels(self, item: Any) -> int | None:
        """The channels (or features) coming into ``item``: what a block's ``in_channels`` is at its use."""
        if isinstance(item, Leaf):
            x = item.reads if item.reads is not None else item.op.inputs[0]
        elif isinstance(item, Struct):
            x = item.reads if item.reads is not None else item.fork
        else:
            return None
        if x in self.g.ops and self.g.ops[x].what == "chunk":
            x = self.g.ops[x].inputs[0]  # a split's parts come from the chunk's input
        shape = self.g.plane(x)
        return shape[1] if shape is not None and len(shape) in (2, 4) else None

    def node_of(self, item: Any) -> Any:
        return item.node if isinstance(item, Leaf | Struct | Join) else None

    def made(self, node: Any, path: tuple[str, ...], entry: dict[str, Any] | None = None) -> None:
        """Where the spec holds ``node``'s tensor: the block ``path``, or ``entry``, a row in the block ``path``
        (one without a name is named when a row reads it)."""
        if entry is None:
            self.paths.setdefault(node, []).append(path)
            self.known.add(path)
            self.known_names.add(".".join(path))
        elif "name" in entry:
            self.paths.setdefault(node, []).append((*path, str(entry["name"])))
            self.known.add((*path, str(entry["name"])))
            self.known_names.add(".".join((*path, str(entry["name"]))))
        elif _one_row(entry) or (entry.get("kind") in ("concat", "multiply") and "from" in entry):
            self.unnamed[node] = (entry, path)  # (a structure that reads by name, refused as such when read)

    def ref(self, node: Any, prefix: tuple[str, ...]) -> str:
        """The name a row in the block ``prefix`` reads ``node``'s tensor by: the shortest that finds it there."""
        if node not in self.paths and node in self.unnamed:
            if not _one_row(self.unnamed[node][0]):
                # a name on a structure would go before its rows' names too (multiply.conv): the state_dict would
                # not load; the graph is written flat, where the join is a row of its own
                raise Unnameable(f"{describe(node)}: a structure read by name")
            entry, at = self.unnamed.pop(node)
            # a name no row of its block has, nor any module there (the rows after it take their modules' names)
            taken = {p[-1] for p in self.known if p[:-1] == at}
            taken |= {n for n, _ in self.g.root.get_submodule(".".join(at)).named_children()}
            base = str(entry["kind"])
            name = free(base, taken)
            rest = {k: v for k, v in entry.items() if k != "kind"}
            entry.clear()
            entry.update({"kind": base, "name": name, **rest})
            self.made(node, at, entry)
        if prefix and self.block_in.get(prefix) is node:
            return BLOCK_INPUT  # what came into the block: the same name in every use of it
        if node not in self.paths:
            if node in self.g.ops and self.g.ops[node].what in ("add", "mul"):
                # a residual's add or a product, nested, has no row of its own to read by name: written flat,
                # where the join is a row of its own
                raise Unnameable(f"{describe(node)}: a join read by name")
            self.g.problem(node, f"{describe(node)} is read by name, and no one row or block of the spec holds it")
            raise Refused
        target = min(self.paths[node], key=len)
        k = 0
        while k < min(len(prefix), len(target) - 1) and prefix[k] == target[k]:
            k += 1
        for j in range(k, -1, -1):  # a name found nearer the reader would hide it: then a longer one
            parts = target[j:]
            # (a module's name there too: its rows, written after this one, take it)
            nearer = ((*prefix[:m], *parts) for m in range(j + 1, len(prefix) + 1))
            if not any(".".join(p) in self.known_names or ".".join(p) in self.tree for p in nearer):
                return ".".join(parts)
        raise Names(f"{'.'.join(target)}: no name reads it from {'.'.join(prefix) or 'the top'}")

    def entry(self, item: Any, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
        if isinstance(item, Join):
            join: dict[str, Any] = {"kind": item.what, "from": [self.ref(n, prefix) for n in item.inputs]}
            return [{**join, **({"inplace": True} if item.inplace else {}), **({"stack": True} if item.stack else {})}]
        if isinstance(item, Leaf):
            op = item.op
            entries = [dict(e) for e in op.entries]
            if op.module is not None and self.g.calls[op.module] == 1:
                entries[0] = {"kind": entries[0]["kind"], "name": row_name(op), **entries[0]}
            elif op.module is not None and self.g.has_params(op.module):
                raise Names(
                    f"{op.module}: the module runs {self.g.calls[op.module]} times with the same weights (or running"
                    " statistics); a spec's rows each have their own"
                )
            return entries
        assert isinstance(item, Struct)
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
        except Names:
            if item.what == "split":
                # a part in no module of its own (a bare leaf module): each branch a slice of the chunk's input read
                # by name, its rows, and a concat of the branches' last rows
                x = self.g.ops[item.fork].inputs[0]
                fork = self.ref(item.reads if item.reads is not None else x, prefix)
                branches = [
                    [Leaf(part_slice(self.g, p), p), *b] for p, b in zip(item.parts, item.branches, strict=True)
                ]
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

    def flat_concat(self, item: Struct, prefix: tuple[str, ...], fork: str) -> list[dict[str, Any]]:
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
                    raise Names(f"{'.'.join(prefix) or '(the model)'}: a branch's concat reads an unnamed row")
                rows = rows[:-1] + _flat_named(last, before)
            if out:
                rows[0] = {**rows[0], "from": fork}
            last = rows[-1]
            if "name" not in last:
                if not _one_row(last):  # a row, a join of named rows, or a copy
                    raise Names(f"{'.'.join(prefix) or '(the model)'}: a branch ends in an unnamed structure")
                # a row without parameters: any free name, after its kind as every row's
                rows[-1] = last = {"kind": last["kind"], "name": f"{last['kind']}_branch{i + 1}", **last}
            refs.append(last["name"])
            out += rows
        return [*out, {"kind": "concat", "from": refs}]

    def branches(self, item: Struct, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
        branches: dict[str, Any] = {}
        for branch in item.branches:
            if branch:
                ((head, entries),) = self.named(branch, prefix, "branch").items()
                if head in branches:
                    modules = [m for b in item.branches for m in self.modules(b)]
                    raise Names(
                        f"{'.'.join((*prefix, head))}: the branches of a {item.what} run {', '.join(modules)};"
                        " cnncalc names each branch's rows after one module that holds them, and these have none,"
                        " so the state_dict would not load"
                    )
                branches[head] = entries
            else:
                # a name no other branch of this block takes (DenseNet's block has one identity per layer)
                taken = self.empty_names.setdefault(prefix, set())
                name = free("identity", taken)
                taken.add(name)
                branches[name] = []
        sections = {"sections": item.sections} if item.sections else {}
        return [{"kind": item.what, "branches": branches, **sections}]

    def named(self, items: list[Any], prefix: tuple[str, ...], what: str) -> dict[str, Any]:
        """A branch or shortcut, a block of its own: named after the module that holds all of its rows."""
        scopes = [scope_of(i) for i in items]
        heads = {s[len(prefix)] if len(s) > len(prefix) and s[: len(prefix)] == prefix else None for s in scopes}
        if len(heads) != 1 or None in heads:
            where = ".".join(prefix) or "(the model)"
            raise Names(
                f"{where}: a {what} runs {', '.join(self.modules(items)) or 'no module'};"
                f" cnncalc names each {what}'s rows after one module that holds them, and these have none,"
                " so the state_dict would not load"
            )
        (head,) = heads
        assert head is not None
        self.block_in[(*prefix, head)] = self.input_of(items[0])
        return {head: self.entries(items, (*prefix, head))}

    def input_of(self, item: Any) -> Any:
        """The node an item reads (a block starting with it reads it): its input, or its structure's fork."""
        if isinstance(item, Leaf):
            return item.reads if item.reads is not None else item.op.inputs[0]
        if isinstance(item, Struct):
            x = item.reads if item.reads is not None else item.fork
            if x in self.g.ops and self.g.ops[x].what == "chunk":
                x = self.g.ops[x].inputs[0]  # a split's parts come from the chunk's input
            return x
        return None

    def modules(self, items: Sequence[Any]) -> list[str]:
        """The modules ``items`` run, by qualified name."""
        found: list[str] = []
        for item in items:
            if isinstance(item, Leaf):
                found += [f"'{item.op.module}'"] if item.op.module else []
            elif isinstance(item, Struct):
                found += [m for branch in item.branches for m in self.modules(branch)]
        return found


def _projection_stride(item: Struct) -> int | None:
    """The stride the engine's projection shortcut takes from the residual's input to its output (the
    smallest that gives the output's size), None where there is none."""
    from ..engine import _one_stride

    a, b = item.fork.shape, item.node.shape
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


def _merge(items: list[Any], prefix: tuple[str, ...], head: str) -> None:
    """Write the modules of ``head`` (a list whose modules run between others') into the block ``prefix``, each
    under a dotted name (``convs.0``): the scopes under ``prefix.head.part`` become ``prefix.head.part`` as one
    part, and what runs in ``head`` itself runs in ``prefix``."""
    into = (*prefix, head)

    def moved(scope: tuple[str, ...]) -> tuple[str, ...]:
        if scope[: len(into)] != into:
            return scope
        if len(scope) == len(into):
            return prefix
        return (*prefix, f"{head}.{scope[len(into)]}", *scope[len(into) + 1 :])

    def walk(item: Any) -> None:
        if isinstance(item, Leaf):
            item.op.scope = moved(item.op.scope)
        elif isinstance(item, Join):
            item.scope = moved(item.scope)
        elif isinstance(item, Struct):
            item.scope = moved(item.scope)
            for branch in item.branches:
                for x in branch:
                    walk(x)

    for item in items:
        walk(item)


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
