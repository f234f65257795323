"""cnncalc: size a convolutional network from a YAML spec, exactly and instantly.

>>> from cnncalc import load_spec, analyze
>>> report = analyze(load_spec("specs/vgg16.yaml"))  # doctest: +SKIP
>>> report.totals.params  # doctest: +SKIP
138357544
"""

import gc as _gc
from typing import TYPE_CHECKING, Any

# Importing makes some 150 classes (each kind's model, the records): the cyclic collector, at its
# defaults, ran dozens of times over them and everything imported before (3 ms of a 180 ms summary).
# It waits for the end of the imports; the host's setting is restored, whatever happens.
_threshold = _gc.get_threshold()
_gc.set_threshold(100_000, *_threshold[1:])
try:
    from .engine import analyze
    from .errors import Problem, SpecError
    from .report import Report, Row, Totals
    from .spec import Spec, load_spec, parse_spec
finally:
    _gc.set_threshold(*_threshold)

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
