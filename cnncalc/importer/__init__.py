"""From a PyTorch module to a spec: ``cnncalc.from_torch(module, input_shape)`` (``cnncalc import``).

The model runs once, and what ran is written as the spec a person would have written, in steps that each have a
module here:

1. :mod:`.record`: one forward pass at the given input, every ATen operation and every module call recorded;
2. :mod:`.recognise`: each operation (or a whole module a kind describes) as a layer kind's row, or a join;
3. :mod:`.flow`: what the model returns, what it is computed from, what nothing reads, writes in place;
4. :mod:`.nest`: joins nested into residuals, concats, splits and products (or the graph written flat);
5. :mod:`.name`: rows named after the module tree, so that the model's ``state_dict`` loads into ``build(spec)``;
6. :mod:`.blocks`: repeated modules as blocks with arguments;
7. :mod:`.write`: entries as a person writes them, and the spec.

Anything the spec cannot say exactly is a problem, one line each, located at its module and source line: nothing is
dropped or counted as 0 in silence. Torch is imported only inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ImportRefused, Problem, SpecError
from ..spec import Spec, parse_spec
from . import flow
from .blocks import fold_blocks
from .graph import Graph, Names, Refused, Unnameable, Unreturned, describe, holds_state
from .name import Namer
from .nest import Nester
from .recognise import Recogniser, entry_for
from .record import record
from .write import spec_data

if TYPE_CHECKING:
    from torch import nn

__all__ = ["entry_for", "fold_blocks", "from_torch"]

#: Progress callback: (what is being done, the step it is, out of how many steps).
Progress = Callable[[str, int, int], None]

#: The steps of an import, for progress.
_STEPS = 5


def _shared_modules(module: nn.Module) -> list[Problem]:
    """A module with state registered under two names (``self.b = self.a``): the state_dict holds its weights
    twice, and a spec's rows each have their own, so one of the names would not load."""
    names: dict[int, list[str]] = {}
    for name, child in module.named_modules(remove_duplicate=False):
        if name and holds_state(child, recurse=False):
            names.setdefault(id(child), []).append(name)
    return [
        Problem(f"{both[0]}: the same module is also '{both[1]}'; a spec's rows each have their own weights")
        for both in names.values()
        if len(both) > 1
    ]


def from_torch(
    module: nn.Module,
    input_shape: Sequence[int],
    *,
    name: str | None = None,
    progress: Progress | None = None,
    warnings: list[Problem] | None = None,
) -> Spec:
    """The spec of ``module`` on a C x H x W input, named after its module tree (its ``state_dict`` loads into
    ``build(spec)``); raises :class:`~cnncalc.errors.SpecError` with one problem per line where it cannot.

    Parameters that do not run at the input (an auxiliary head that runs in training only) are left out: each
    such module is one line in ``warnings`` (when given) and in the spec's ``notes``."""
    shape = tuple(int(n) for n in input_shape)
    say: Progress = progress or (lambda what, step, steps: None)
    was_training = module.training
    module.eval()
    try:
        shared = _shared_modules(module)
        if shared:
            raise SpecError(shared)
        say(f"running {type(module).__name__} once", 0, _STEPS)
        rec = record(module, shape)
        if rec.problems:
            raise SpecError(rec.problems)
        left_out = flow.idle(rec, None, shape)
        assert rec.output is not None
        g = Graph(module, rec.nodes, rec.output)
        recogniser = Recogniser(rec, g)
        try:
            recogniser.read(lambda done, total: say(f"reading operations: {done} of {total}", 1, _STEPS))
            returned = flow.results(g)
            flow.check_reached(g, returned, recogniser.inside)
            flow.check_in_place(g, returned, recogniser.inside)
            say("nesting the joins and naming the rows", 2, _STEPS)
            layers, outputs = _written(g, returned)
        except Refused:
            if not g.problems:
                raise SpecError(Problem("(the model): cannot be imported")) from None
            problems = g.sorted_problems()
            raise ImportRefused(list(problems), list(problems.values())) from None
        except Names as exc:
            raise SpecError(Problem(str(exc))) from None
        unread = flow.idle(rec, g, shape, reached=flow.live(g))
        if unread:  # after what the outputs are: a model returning its input (or nothing) is said so first
            raise SpecError(unread)
    finally:
        module.train(was_training)
    say("finding repeated blocks", 3, _STEPS)
    notes = [f"Left out of this import: {p.message}" for p in left_out]
    data = spec_data(layers, name or type(module).__name__, shape, outputs, notes)
    say("checking the spec", 4, _STEPS)
    spec = parse_spec(data)
    from ..engine import analyze

    try:  # what the engine refuses is not written: a graph the DSL says otherwise than the model runs it
        analyze(spec)
    except SpecError as exc:
        raise SpecError(
            [Problem(f"(the model): the spec written for it does not check: {p.message}") for p in exc.problems]
        ) from None
    if warnings is not None:
        warnings.extend(left_out)
    return spec


def _written(g: Graph, returned: list[Any]) -> tuple[list[dict[str, Any]], list[str] | None]:
    """The rows, nested where nesting can say the graph, else flat; and the outputs' names where there are several."""
    try:
        # nesting writes branches in the order they are joined, not run: where an in-place write follows a read of
        # its input, the graph is written flat, in the model's order
        if g.order_bound:
            raise Refused
        items: list[Any] | None = Nester(g).nest(returned)
    except Refused:
        items = None
    if items is not None:
        try:
            return Namer(g).written(items, returned)
        except (Refused, Names) as exc:
            if len(returned) == 1 and not isinstance(exc, Unnameable):
                raise
            # an output, or the tensor an output's rows start from, that no nested row holds (a residual's add has
            # no row of its own), or an output's rows that split a module's apart: written flat
    try:
        return Namer(g).written(Nester(g).flat(returned), returned)
    except Unreturned as exc:
        g.problem(exc.node, f"the model returns {describe(exc.node)}, which no row of the spec holds")
        raise Refused from None
