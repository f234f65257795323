"""The ``cnncalc`` command line: thin adapters over the library.

Exit codes: 0 success, 1 a bad spec (one line per problem, never a traceback),
2 a usage error. This module must never import torch.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from . import __version__, safe_text
from .engine import DTYPE_BYTES, Report, analyze, check_input_shape
from .errors import Problem, SpecError, capped
from .render import (
    compare_dict,
    compare_markdown,
    fit_dict,
    peers_dict,
    print_compare,
    print_fit,
    print_peers,
    print_profile,
    print_table,
    profile_dict,
    to_csv,
    to_json,
    to_markdown,
    validation_dict,
    validation_lines,
    validation_summary,
)
from .shapes import parse_shape
from .spec import json_schema, load_spec
from .validate import validate_paths

app = typer.Typer(
    name="cnncalc",
    help="Size a CNN from a YAML spec: shapes, params, MACs/FLOPs, memory, receptive field.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DtypeChoice = Enum("DtypeChoice", {name: name for name in DTYPE_BYTES}, type=str)  # type: ignore[misc]


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


#: Narrower terminals (COLUMNS=0 would print nothing) are treated as this wide.
MIN_WIDTH = 20


def _width() -> int | None:
    """COLUMNS when set, at least MIN_WIDTH; rich's own guess on a terminal; 120 when piped."""
    columns = os.environ.get("COLUMNS", "")
    if columns.strip().isascii() and columns.strip().isdigit():
        return max(MIN_WIDTH, int(columns))
    return None if sys.stdout.isatty() else 120


def _console(stderr: bool = False) -> Console:
    # piped output gets a width that fits the table rather than rich's default 80; user text (a spec's
    # names, notes and arguments) is printed as written: no markup ([link=...]) and no emoji codes
    return Console(stderr=stderr, width=_width(), highlight=False, markup=False, emoji=False)


def fail(problems: tuple[Problem, ...] | list[Problem]) -> NoReturn:
    """Print one line per problem to stderr and exit 1."""
    err = _console(stderr=True)
    for p in capped(problems):
        err.print(Text.assemble(("error:", "bold red"), f" {p}"), soft_wrap=True)
    raise typer.Exit(1)


def _check_input(value: str | None) -> str | None:
    if value is not None:
        _parse_input(value)
    return value


def _parse_input(value: str | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        shape = parse_shape(value)
        check_input_shape(shape)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return shape


def _finite(value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"expected a finite number, got {value}")
    return value


def _analyze(spec_path: Path, batch: int, dtype: str, input_shape: str | None, strict: bool) -> Report:
    shape = _parse_input(input_shape)
    try:
        return analyze(load_spec(spec_path), batch=batch, dtype=dtype, input_shape=shape, strict=strict)
    except SpecError as exc:
        fail(exc.problems)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnncalc {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Size a CNN from a YAML spec: shapes, params, MACs/FLOPs, memory, receptive field."""


SpecArg = Annotated[Path, typer.Argument(metavar="SPEC", help="The YAML spec file.", show_default=False)]
BatchOpt = Annotated[
    int, typer.Option("--batch", "-b", min=1, help="Images per batch (MACs and memory scale with it).")
]
DtypeOpt = Annotated[DtypeChoice, typer.Option("--dtype", help="Bytes per value for memory figures.")]
InputOpt = Annotated[
    str | None,
    typer.Option(
        "--input", "-i", metavar="CxHxW", callback=_check_input, help="Override the spec's input, e.g. 3x227x227."
    ),
]
StrictOpt = Annotated[
    bool, typer.Option("--strict", help="Make '(W - F + 2P)/S is not a whole number' an error, not a warning.")
]


@app.command()
def summary(
    spec: SpecArg,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = DtypeChoice.float32,  # type: ignore[attr-defined]
    input: InputOpt = None,
    strict: StrictOpt = False,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    depth: Annotated[
        int | None,
        typer.Option("--depth", "-d", min=1, help="Fold blocks nested this deep into one row each (1: top level)."),
    ] = None,
) -> None:
    """Print one row per layer (shape, activations, memory, params, MACs, receptive field) and the totals.

    Example: cnncalc summary specs/resnet50.yaml --depth 1 --batch 32 --dtype bfloat16
    """
    report = _analyze(spec, batch, dtype.value, input, strict)
    if depth is not None:
        report = report.folded(depth)
    if format is Format.table:
        print_table(report, _console())
        return
    text = {Format.json: to_json, Format.csv: to_csv, Format.markdown: to_markdown}[format](report)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


class ValidateFormat(StrEnum):
    text = "text"
    json = "json"
    github = "github"


@app.command()
def validate(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="PATH...", help="Spec files, folders (every .yaml/.yml below) or globs.", show_default=False
        ),
    ],
    strict: StrictOpt = False,
    format: Annotated[
        ValidateFormat, typer.Option("--format", "-f", help="text: path:line:col lines; github: annotations; json.")
    ] = ValidateFormat.text,
) -> None:
    """Check spec files completely and report every problem of every file, one line each.

    Checks the YAML, the schema and the geometry of every layer through the whole network.
    Exits 0 when all are valid, 1 when any is not.

    Example: cnncalc validate specs/ --format github
    """
    results = validate_paths(paths, strict=strict)
    if format is ValidateFormat.json:
        sys.stdout.write(json.dumps(validation_dict(results), indent=2) + "\n")
    else:
        for line in validation_lines(results, format.value):
            sys.stdout.write(line + "\n")
        _console(stderr=True).print(validation_summary(results), highlight=False, soft_wrap=True)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec DSL, for editors (yaml-language-server) and other tools.

    Example: cnncalc schema > cnncalc.schema.json
    """
    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


class TextFormat(StrEnum):
    """Output of the commands that print a text report or its JSON (fit, peers)."""

    text = "text"
    json = "json"


TextFormatOpt = Annotated[TextFormat, typer.Option("--format", "-f", help="Output format.")]


class OptimizerChoice(StrEnum):
    sgd = "sgd"
    momentum = "momentum"
    adam = "adam"


@app.command()
def fit(
    spec: SpecArg,
    memory: Annotated[
        str,
        typer.Option("--memory", "-m", metavar="SIZE", help="The budget: 80GB, 24GiB, 512MB (GB = 10^9, GiB = 2^30)."),
    ],
    train: Annotated[
        bool, typer.Option("--train", help="A training step: params, grads, optimizer state, kept for backward.")
    ] = False,
    optimizer: Annotated[
        OptimizerChoice,
        typer.Option("--optimizer", help="With --train: the state it keeps (sgd none, momentum 1x, adam 2x)."),
    ] = OptimizerChoice.adam,
    dtype: DtypeOpt = DtypeChoice.float32,  # type: ignore[attr-defined]
    input: InputOpt = None,
    format: TextFormatOpt = TextFormat.text,
) -> None:
    """The largest batch whose counted memory fits a budget, for inference or a training step.

    Inference: params + peak activations; --train: params + grads + optimizer state + what
    autograd keeps for backward. Exits 1 when not even one image fits.

    Example: cnncalc fit specs/resnet50.yaml --memory 80GB --train --dtype bfloat16
    """
    from .fit import largest_batch, parse_bytes

    try:
        budget = parse_bytes(memory)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--memory") from None
    try:
        result = largest_batch(
            load_spec(spec),
            budget,
            train=train,
            optimizer=optimizer.value,
            dtype=dtype.value,
            input_shape=_parse_input(input),
        )
    except SpecError as exc:
        fail(exc.problems)
    if format is TextFormat.json:
        sys.stdout.write(json.dumps(fit_dict(result, safe_text.text(str(spec))), indent=2) + "\n")
    else:
        print_fit(result, safe_text.text(str(spec)), _console())
    if result.best is None:
        raise typer.Exit(1)


@app.command()
def peers(
    spec: SpecArg,
    batch: BatchOpt = 1,
    input: InputOpt = None,
    format: TextFormatOpt = TextFormat.text,
) -> None:
    """What torchvision, FlopCounterMode, torchinfo, ptflops and thop print for this network, and why.

    Each tool's counting rules (read in its source) applied to the spec, term by term beyond
    cnncalc's MACs; the test suite runs the tools themselves on every shipped spec.

    Example: cnncalc peers specs/resnet50.yaml
    """
    from .peers import peer_counts

    report = _analyze(spec, batch, "float32", input, strict=False)
    counts = peer_counts(report)
    if format is TextFormat.json:
        sys.stdout.write(json.dumps(peers_dict(report, counts), indent=2) + "\n")
    else:
        print_peers(report, counts, _console())


class CompareFormat(StrEnum):
    table = "table"
    json = "json"
    markdown = "markdown"


@app.command()
def compare(
    a: Annotated[Path, typer.Argument(metavar="A", help="The spec before.", show_default=False)],
    b: Annotated[Path, typer.Argument(metavar="B", help="The spec after.", show_default=False)],
    batch: BatchOpt = 1,
    dtype: DtypeOpt = DtypeChoice.float32,  # type: ignore[attr-defined]
    input: InputOpt = None,
    strict: StrictOpt = False,
    format: Annotated[
        CompareFormat, typer.Option("--format", "-f", help="markdown suits a pull-request comment.")
    ] = CompareFormat.table,
) -> None:
    """Two specs side by side: params, MACs and activations per stage (where the resolution
    changes) and in total, with the difference B - A.

    Example: cnncalc compare specs/vgg16.yaml specs/vgg19.yaml --format markdown
    """
    ra = _analyze(a, batch, dtype.value, input, strict)
    rb = _analyze(b, batch, dtype.value, input, strict)
    files = (safe_text.text(str(a)), safe_text.text(str(b)))
    if format is CompareFormat.table:
        print_compare(ra, rb, files, _console())
    elif format is CompareFormat.markdown:
        sys.stdout.write(compare_markdown(ra, rb, files))
    else:
        sys.stdout.write(json.dumps(compare_dict(ra, rb, files), indent=2) + "\n")


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class ProfileFormat(StrEnum):
    table = "table"
    json = "json"


TORCH_MISSING = (
    "profile needs PyTorch, which is not installed: python3 -m pip install 'cnncalc[torch]'"
    " (on a GPU machine, install a CUDA build of torch first: https://pytorch.org/get-started)"
)


@app.command()
def profile(
    spec: SpecArg,
    device: Annotated[Device, typer.Option("--device", "-d", help="auto picks CUDA when present.")] = Device.auto,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = DtypeChoice.float32,  # type: ignore[attr-defined]
    input: InputOpt = None,
    train: Annotated[
        bool,
        typer.Option(
            "--train",
            help="Time forward + backward instead of inference, and check what each layer keeps for backward.",
        ),
    ] = False,
    warmup: Annotated[int, typer.Option("--warmup", min=0, max=10_000, help="Untimed iterations first.")] = 3,
    iters: Annotated[int, typer.Option("--iters", min=1, max=100_000, help="Timed iterations.")] = 10,
    peak_tflops: Annotated[
        float | None,
        typer.Option(
            "--peak-tflops", min=0.0, callback=_finite, help="Your device's peak, to print the share achieved."
        ),
    ] = None,
    format: Annotated[ProfileFormat, typer.Option("--format", "-f", help="Output format.")] = ProfileFormat.table,
) -> None:
    """Build the spec in PyTorch, check every number against cnncalc's, then time it.

    Checks every shape, param count, FLOP count and activation byte (with --train also the
    bytes each layer keeps for backward). Exits 1 if any number disagrees.

    Example: cnncalc profile specs/vgg16.yaml --device cuda --dtype bfloat16 --batch 32
    """
    if dtype.value == "int8":
        raise typer.BadParameter(
            "PyTorch cannot run convolutions in int8 eagerly; use float32, float16 or bfloat16", param_hint="--dtype"
        )
    try:
        from . import torch_backend as tb
    except ImportError:
        _console(stderr=True).print(Text.assemble(("error:", "bold red"), f" {TORCH_MISSING}"), soft_wrap=True)
        raise typer.Exit(2) from None
    report = _analyze(spec, batch, dtype.value, input, strict=False)
    try:
        where = tb.resolve_device(device.value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    try:
        model = tb.build(report, device=where, dtype=dtype.value)
        saved = tb.measure_saved(model, report.input_shape, batch) if train else None
        # per-row kept-for-backward checks where the rules are verified (the CPU); CUDA compares the total
        checked = saved if where == "cpu" else None
        comparisons = tb.compare(report, tb.measure(model, report.input_shape, batch), checked, device=where)
        with _progress(warmup + iters, format is ProfileFormat.table) as tick:
            timing = tb.time_model(
                model, report.input_shape, batch=batch, train=train, warmup=warmup, iters=iters, tick=tick
            )
        if saved is not None:
            timing.saved_bytes = sum(saved.values())
    except (RuntimeError, ValueError) as exc:  # torch refused the network: say so in one line
        fail([Problem(f"PyTorch failed on this network: {str(exc).splitlines()[0]}", file=str(spec))])
    ok = all(c.ok for c in comparisons)
    if format is ProfileFormat.json:
        sys.stdout.write(json.dumps(profile_dict(report, comparisons, timing, peak_tflops), indent=2) + "\n")
    else:
        print_profile(report, comparisons, timing, _console(), peak_tflops)
    if not ok:
        raise typer.Exit(1)


@contextmanager
def _progress(total: int, show: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr over warm-up and timed iterations (hidden when not a terminal)."""
    console = _console(stderr=True)
    with Progress(
        TextColumn("timing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not (show and console.is_terminal),
    ) as bar:  # fmt: skip
        task = bar.add_task("timing", total=total)
        yield lambda: bar.advance(task)
