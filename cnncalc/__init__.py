"""cnncalc: size a convolutional network from a YAML spec, exactly and instantly.

>>> from cnncalc import load_spec, analyze
>>> report = analyze(load_spec("specs/vgg16.yaml"))  # doctest: +SKIP
>>> report.totals.params  # doctest: +SKIP
138357544
"""

from .engine import analyze
from .errors import Problem, SpecError
from .importer import from_torch
from .report import Report, Row, Totals
from .spec import Spec, load_spec, parse_spec

__version__ = "0.1.0"

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
