"""Step 3 of an import: what the model returns, what it is computed from, and what nothing reads.

Over the recognised run (:mod:`.recognise`): the tensors the model returns, in order; every refused operation
they are computed from, each a problem; values computed for nothing (the spec would leave them out, and their
memory); writes in place into a tensor that is read after them (a spec's rows read what their inputs give); and
parameters that never run (left out, each said in a warning) or run for nothing (refused). Torch-free but for
the module tree it is handed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import Problem
from ..layers.base import fmt
from .graph import NO_VALUES, Graph, Refused, describe, holds_state
from .record import Node, Recording

if TYPE_CHECKING:
    from torch import nn


def results(g: Graph) -> list[Node]:
    """The tensors the model returns, in order: one, or each of a tuple, a list or a dict (in the dict's order).
    One tensor in a container is that tensor (torchvision's segmentation models return ``{"out": ...}``)."""
    output = g.output
    returned = output.args[0]
    if isinstance(returned, dict | tuple | list):
        keys = [repr(k) for k in returned] if isinstance(returned, dict) else [str(i) for i in range(len(returned))]
        values = list(returned.values()) if isinstance(returned, dict) else list(returned)
        what = "dict" if isinstance(returned, dict) else "list" if isinstance(returned, list) else "tuple"
    else:
        keys, values, what = ["0"], [returned], ""
    if not values:
        g.problem(output, f"the model returns an empty {what}; cnncalc imports at least one tensor")
        raise Refused
    for key, value in zip(keys, values, strict=True):
        if not isinstance(value, Node):
            kind = type(value).__name__
            nested = isinstance(value, dict | tuple | list)
            said = f"the model returns {kind}" if not what else f"the model returns a {what} holding {kind} at {key}"
            hint = "return tensors side by side, not nested" if nested else "cnncalc imports tensors"
            g.problem(output, f"{said}; {hint}")
            raise Refused
    found: list[Node] = []
    for key, value in zip(keys, values, strict=True):
        if value in g.cl:
            at = f" at {key}" if len(values) > 1 else ""
            g.problem(value, f"the model returns a channels-last view (x.permute(0, 2, 3, 1)){at}; cnncalc a plane")
            raise Refused
        value = g.resolve(value)
        if value.op in ("param", "const"):
            g.problem(output, f"the model returns {describe(value)}, which it does not compute from its input")
            raise Refused
        found.append(value)
    twice = [k for k, r in zip(keys, found, strict=True) if found.count(r) > 1]
    if twice:
        # the engine keeps each row once among the outputs, so build(spec) would return fewer tensors
        g.problem(
            output,
            f"the model returns the same tensor at {' and '.join(twice)}; a spec's outputs name each row once:"
            " return it once",
        )
        raise Refused
    if all(g.ops.get(r) is not None and g.ops[r].what == "input" for r in found):
        g.problem(output, "the model returns its input; a spec has at least one row")
        raise Refused
    return found


def check_reached(g: Graph, returned: list[Node], inside: set[int]) -> None:
    """Every refused operation a returned tensor is computed from is a problem, and so is every operation whose
    result nothing returned is computed from (the spec would leave its values out, in silence)."""
    seen: set[Node] = set()
    todo = list(returned)
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in g.explained:
            continue
        if node in g.refused:
            g.problem(node, g.refused[node])
            ins = [g.resolve(n) for n in node.all_input_nodes]
            todo.extend(n for n in ins if n in g.ops or n in g.refused)
        elif node in g.ops:
            todo.extend(g.ops[node].inputs)
        else:
            g.problem(node, f"{describe(node)} is not a tensor cnncalc can follow")
    reached = live(g)
    for node in g.nodes:
        if node not in reached and node.index not in inside and unused(g, node):
            g.problem(
                node,
                f"{describe(node)} computes {fmt(node.shape or ())} values that nothing the model returns is computed"
                " from; a spec's rows are each read by a later row or returned, so it would leave them out in"
                " silence: remove it, or return it",
            )
    if g.problems:
        raise Refused


def live(g: Graph) -> set[Node]:
    """What the model's return is computed from, in the run itself (the operations a pattern read as one row
    skips, a channel shuffle's view and transpose, are on the way), and what a write in place into a tensor read
    after it there is computed from."""
    nodes = g.nodes
    found: set[Node] = set()
    todo = [g.output]
    while todo:
        while todo:
            node = todo.pop()
            if node not in found:
                found.add(node)
                todo.extend(node.all_input_nodes)
        last_read: dict[Any, int] = {}  # per storage, the last live operation (or the return) that reads it
        for i, node in enumerate(nodes):
            if node in found:
                for x in node.all_input_nodes:
                    last_read[x.storage] = i
        for i, node in enumerate(nodes):
            into = node.args[0] if node not in found and node.args and isinstance(node.args[0], Node) else None
            if into is not None and last_read.get(into.storage, -1) > i and g.writes(node):
                todo.append(node)
    return found


def unused(g: Graph, node: Node) -> bool:
    """Whether ``node``, which no returned tensor is computed from, computes values of its own for nothing: not
    written into its input (``relu_``, ``out += y``), not its input itself at inference (identity, dropout) or a
    view of it, and not a module with parameters (:func:`idle` says those, with their count)."""
    if node.op not in ("module", "call", "item") or node.shape is None or 0 in node.shape:
        return False  # the output, a placeholder, a parameter, or no tensor
    if node.op == "item" and node not in g.ops:
        return False  # another result of an operation (a batch norm's statistics)
    if node.op == "call" and any(i.op == "item" for i in node.users):
        return False  # an operation of several results: said by its first
    if node in g.same or (node.op == "module" and node.module is not None and holds_state(node.module)):
        return False
    if g.writes(node):
        return False
    op = g.ops.get(node)
    if op is None:
        return node in g.refused
    kind = op.entries[0].get("kind") if op.entries else None
    return op.what in ("add", "cat", "mul") or kind not in (None, *NO_VALUES)


def check_in_place(g: Graph, returned: list[Node], inside: set[int]) -> None:
    """An operation in place (``relu(inplace=True)``, ``x.add_(y)``) whose input another operation reads after
    it, or the model returns, changes what that one reads; a spec's rows read what their inputs' rows give, and
    its build may run them in another order: refused, not written with other values."""
    store = {t: g.storage(t) for t in g.ops}
    for node, op in g.ops.items():
        if not op.inputs or not g.writes(node):
            continue
        x = op.inputs[0]
        # what reads the storage it writes into, as it was: x, or another tensor that is x's storage (a dropout
        # or an identity at inference, a view), but not what the write makes (its result, and what is made of it)
        before = {t for t in g.ops if store[t] == store[x] and node not in g.chain_of(t)}
        later = [n for n, o in g.ops.items() if before & set(o.inputs) and n.index > node.index]
        g.order_bound |= any(x in o.inputs and n.index < node.index for n, o in g.ops.items())
        readers = list(dict.fromkeys(describe(n) for n in later)) + (
            ["the model's return"] if before & set(returned) else []
        )
        if readers:
            written = "the input" if g.ops[x].what == "input" else describe(x)
            g.problem(
                node,
                f"{describe(node)} writes in place into {written}, which {', '.join(readers)} reads after it;"
                " a spec's rows read the values their inputs give: compute it out of place (inplace=False)",
            )
    # an operation refused on its own (sigmoid_, clamp_) that writes in place into a tensor an operation made
    # before it reads after it (a view of it, taken before the write): the write is read, though no one reads
    # its result
    for node, why in g.refused.items():
        if not g.writes(node) or node.index in inside:
            continue
        earlier = [t for t in g.nodes[: node.index] if t.storage == node.storage and t.index not in inside]
        read = any(
            u.index > node.index and u.index not in inside and u.op not in ("module", "output")
            for t in earlier
            for u in t.users
        )
        if read or any(r in earlier for r in returned):
            g.problem(node, why)
    if g.problems:
        raise Refused


def idle(rec: Recording, g: Graph | None, shape: tuple[int, ...], reached: set[Node] | None = None) -> list[Problem]:
    """A line for each module whose parameters the run never reads (GoogLeNet's and Inception v3's auxiliary
    classifiers, which run in training only; a head the model's ``forward`` skips). With ``reached`` (what the
    outputs are computed from), a line for each module whose parameters run, but from whose output no returned
    tensor is computed, instead."""
    model: nn.Module = rec.root
    read = set(rec.params)
    if reached is not None:
        read = {name for name, node in rec.params.items() if node in reached}
    names: dict[int, list[str]] = {}  # a parameter shared by two modules runs where either runs
    for name, value in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(value), []).append(name)
    idle_params = [name for name, value in model.named_parameters() if not any(n in read for n in names[id(value)])]
    if reached is not None:
        idle_params = [n for n in idle_params if any(m in rec.params for m in names[id(model.get_parameter(n))])]
    if not idle_params:
        return []
    counts = dict(model.named_parameters())
    out: list[Problem] = []
    said: set[str] = set()
    size = fmt(shape)
    for name in idle_params:
        parts = name.split(".")
        # the outermost module all of whose parameters are idle
        owner = (
            next(
                p
                for p in (".".join(parts[:k]) for k in range(1, len(parts)))
                if all(n in idle_params or not n.startswith(p + ".") for n in counts)
            )
            if len(parts) > 1
            else name
        )
        if owner in said:
            continue
        said.add(owner)
        held = sum(v.numel() for n, v in counts.items() if n == owner or n.startswith(owner + "."))
        what = type(model.get_submodule(owner)).__name__ if len(parts) > 1 else "a parameter"
        if reached is not None:
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
                f"{owner}: {what} holds {held:,} parameters that do not run on a {size} input at inference; the"
                " spec leaves them out"
            )
        )
    return out
