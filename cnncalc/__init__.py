"""cnncalc: size a convolutional network from a YAML spec, exactly and instantly.

>>> from cnncalc import load_spec, analyze
>>> report = analyze(load_spec("specs/vgg16.yaml"))  # doctest: +SKIP
>>> report.totals.params  # doctest: +SKIP
138357544
"""

import gc as _gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Imports without the cyclic collector; what they made is moved to its oldest generation after.

    Importing makes some 150 classes (each kind's model, the records) and the command line's libraries
    theirs: the collector, at its defaults, traversed them and everything imported before dozens of
    times (20 ms of a 190 ms summary), to free nothing. Its setting is restored, whatever happens.
    """
    enabled = _gc.isenabled()
    frozen = _gc.get_freeze_count()
    _gc.disable()
    try:
        yield
    finally:
        # freeze then unfreeze: the young objects join the oldest generation without being traversed
        # (not where the host froze objects of its own: unfreezing would give them back to the collector)
        if not frozen:
            _gc.freeze()
            _gc.unfreeze()
        if enabled:
            _gc.enable()


with _collector_paused():
    from .engine import analyze
    from .errors import Problem, SpecError
    from .report import Report, Row, Totals
    from .spec import Spec, load_spec, parse_spec

if TYPE_CHECKING:
    from .importer import from_torch

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``from_torch`` on first use: the importer is for ``cnncalc import`` and notebooks, not every start."""
    if name == "from_torch":
        from .importer import from_torch

        return from_torch
    raise AttributeError(f"module 'cnncalc' has no attribute {name!r}")


__all__ = [
    "Problem",
    "Report",
    "Row",
    "Spec",
    "SpecError",
    "Totals",
    "__version__",
    "analyze",
    "from_torch",
    "load_spec",
    "parse_spec",
]
