"""What every command shares: consoles, one line per problem, loading and analysing a spec, warnings,
the output formats, and progress on stderr. Never imports torch."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from .. import zoo
from ..engine import analyze, check_input_shape
from ..errors import Problem, SpecError, capped
from ..report import Report
from ..shapes import parse_shape

if TYPE_CHECKING:
    from ..fit import Fit
    from ..spec import Spec


class Format(StrEnum):
    """Every output format of every command; each command accepts the ones it has (:func:`formats`)."""

    table = "table"
    text = "text"
    json = "json"
    csv = "csv"
    markdown = "markdown"
    github = "github"


#: An option's choices: one StrEnum.
E = TypeVar("E", bound=StrEnum)


def choice(accepted: Sequence[E]) -> Callable[[str], E]:
    """An option's parser: one of ``accepted`` (members of one StrEnum) by its value, or exit 2 naming
    them. A parser, not the enum as the option's type: typer 0.29 checks an enum with pydantic, whose
    message reads "Value error, 'x' is not one of ..." and names the values a command does not take."""

    def parse(value: str) -> E:
        member = next((m for m in accepted if m.value == value), None)
        if member is None:
            raise typer.BadParameter(f"expected one of {', '.join(m.value for m in accepted)}, got '{value}'")
        return member

    return parse


#: Short names people type for the dtypes (PyTorch's own aliases among them).
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
#: What profile accepts: PyTorch cannot run convolutions in int8 eagerly.
PROFILE_DTYPES = ("float32", "float16", "bfloat16")


def dtypes(choices: tuple[str, ...]) -> Callable[[str], str]:
    """A ``--dtype`` callback: a dtype's name or alias to its name, or exit 2."""

    def check(value: str) -> str:
        name = DTYPE_ALIASES.get(value.lower(), value.lower())
        if name not in choices:
            aliases = ", ".join(f"{a} = {n}" for a, n in DTYPE_ALIASES.items() if n in choices)
            raise typer.BadParameter(f"expected one of {', '.join(choices)} ({aliases}), got '{value}'")
        return name

    return check


#: Narrower terminals (COLUMNS=0 would print nothing) are treated as this wide.
MIN_WIDTH = 20


def width() -> int | None:
    """COLUMNS when set, at least MIN_WIDTH; rich's own guess on a terminal; 120 when piped."""
    columns = os.environ.get("COLUMNS", "")
    if columns.strip().isascii() and columns.strip().isdigit():
        return max(MIN_WIDTH, int(columns))
    return None if sys.stdout.isatty() else 120


def console(stderr: bool = False) -> Console:
    # piped output gets a width that fits the table rather than rich's default 80; user text (a spec's
    # names, notes and arguments) is printed as written: no markup ([link=...]) and no emoji codes
    return Console(stderr=stderr, width=width(), highlight=False, markup=False, emoji=False)


def fail(problems: tuple[Problem, ...] | list[Problem]) -> NoReturn:
    """Print one line per problem to stderr and exit 1."""
    err = console(stderr=True)
    for p in capped(problems):
        err.print(Text.assemble(("error:", "bold red"), f" {p}"), soft_wrap=True)
    raise typer.Exit(1)


def refuse(message: str) -> NoReturn:
    """One line on stderr and exit 2: something the command needs is not installed."""
    console(stderr=True).print(Text.assemble(("error:", "bold red"), f" {message}"), soft_wrap=True)
    raise typer.Exit(2)


def parse_input(value: str | None) -> tuple[int, ...] | None:
    """``--input``: C x H x W (or N) within the bounds of any tensor, or a usage error."""
    if value is None:
        return None
    try:
        shape = parse_shape(value)
        check_input_shape(shape)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return shape


def check_input(value: str | None) -> str | None:
    parse_input(value)
    return value


def finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"expected a finite number, got {value}")
    return value


def load(spec: str) -> Spec:
    """The spec a command's argument names (a file, a shipped spec's name, or - for standard input)."""
    try:
        return zoo.load(spec)
    except SpecError as exc:
        fail(exc.problems)


def analyze_spec(spec: str, batch: int, dtype: str, input_shape: str | None, strict: bool = False) -> Report:
    """Load and analyse, or exit 1 with one line per problem."""
    shape = parse_input(input_shape)
    loaded = load(spec)
    try:
        return analyze(loaded, batch=batch, dtype=dtype, input_shape=shape, strict=strict)
    except SpecError as exc:
        fail(exc.problems)


def warn(found: Report | Fit, quiet: bool) -> None:
    """The spec's warnings on stderr, for output that has no place for them (csv, compare, fit, peers, profile)."""
    if quiet:
        return
    err = console(stderr=True)
    for w in found.warnings:
        err.print(Text(w.warning_line(), style="yellow"), soft_wrap=True)


def out(text: str) -> None:
    """Text to stdout, ending in one newline."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def wrote(path: object) -> None:
    console(stderr=True).print(Text(f"wrote {path}"), soft_wrap=True)


@contextmanager
def steps(show: bool) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr naming each step of a long command as it comes (hidden when not a terminal)."""
    err = console(stderr=True)
    if not (show and err.is_terminal):
        yield lambda what: None
        return
    with err.status(Text("")) as status:
        yield lambda what: status.update(Text(what))


@contextmanager
def phase(what: str, show: bool) -> Iterator[None]:
    """A spinner on stderr naming a phase that takes time (hidden when not a terminal)."""
    with steps(show) as step:
        step(what)
        yield


@contextmanager
def progress(total: int | None, show: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr over warm-up and timed iterations (hidden when not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = console(stderr=True)
    with Progress(
        TextColumn("timing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=not (show and err.is_terminal),
    ) as bar:  # fmt: skip
        task = bar.add_task("timing", total=total)
        yield lambda: bar.advance(task)
