"""The one exception type of cnncalc, and the located problems it carries."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import safe_text

#: Characters of a file name echoed in a message.
MAX_PATH = 500
#: Problems printed per file; the rest are counted in one last line.
MAX_PROBLEMS = 100

#: A location inside a spec, as keys and list indices: ("layers", 3, "stride").
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with (or worth a warning about) a spec.

    ``path`` says where in the spec data it is; ``line`` and ``column`` (1-based)
    say where in the YAML text, once the problem has been located against a file.
    """

    message: str
    path: Path = ()
    file: str | None = None
    line: int | None = None
    column: int | None = None
    #: located at the key rather than its value (an unknown key)
    at_key: bool = field(default=False, compare=False, repr=False)
    #: a value the schema refused: when ``defaults`` supplied it, it is located there
    schema: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # the last guard on echoed text: whatever a message quotes, it prints as one bounded, literal line
        object.__setattr__(self, "message", safe_text.text(self.message, safe_text.MAX_MESSAGE))
        if self.file is not None:
            object.__setattr__(self, "file", safe_text.text(self.file, MAX_PATH))

    def located(self, file: str | None, line: int | None, column: int | None) -> Problem:
        return replace(self, file=file, line=line, column=column)

    def __str__(self) -> str:
        where = [str(p) for p in (self.file, self.line, self.column) if p is not None]
        return ":".join([*where, f" {self.message}"]) if where else self.message

    def warning_line(self) -> str:
        """The one form a warning takes in every command: ``path:line:col: warning: message``."""
        where = ":".join(str(p) for p in (self.file, self.line, self.column) if p is not None)
        return f"{where}: warning: {self.message}" if where else f"warning: {self.message}"


class SpecError(Exception):
    """A spec that cannot be analysed: bad YAML, bad schema, or impossible geometry.

    Carries every problem found, each one line with its location when known.
    """

    def __init__(self, problems: Sequence[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ImportRefused(SpecError):
    """An import that cannot be written: every problem, and per problem what ``--format json`` lists (a
    :class:`cnncalc.importer.graph.Refusal`: module, operation, source line, message)."""

    def __init__(self, problems: Sequence[Problem], refusals: Sequence[Any]) -> None:
        super().__init__(problems)
        self.refusals = tuple(refusals)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close.

    Only for words and lists of a size a person types: the comparison costs their product.

    >>> did_you_mean("kernal", ["kernel", "stride"])
    " (did you mean 'kernel'?)"
    """
    options = list(choices)
    if len(word) > 64 or len(options) > 1_000:
        return ""
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def capped(problems: Sequence[Problem], most: int = MAX_PROBLEMS) -> list[Problem]:
    """The first ``most`` problems, then one line that counts the rest, at the first of them.

    >>> [p.message for p in capped([Problem(str(i), line=i) for i in range(5)], most=2)]
    ['0', '1', '... and 3 more']
    """
    if len(problems) <= most:
        return list(problems)
    rest = problems[most]
    return [*problems[:most], replace(rest, message=f"... and {len(problems) - most:,} more")]
