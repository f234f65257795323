"""cnncalc: size a convolutional network from a YAML spec, exactly and instantly.

>>> from cnncalc import load_spec, analyze
>>> report = analyze(load_spec("specs/vgg16.yaml"))  # doctest: +SKIP
>>> report.totals.params  # doctest: +SKIP
138357544
"""

from typing import TYPE_CHECKING, Any

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
