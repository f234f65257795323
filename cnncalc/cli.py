"""The ``cnncalc`` command line: thin adapters over the library.

Exit codes: 0 success, 1 a bad spec (one line per problem, never a traceback),
2 a usage error. This module must never import torch.
"""

from __future__ import annotations

import gc
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from . import __version__, safe_text, zoo
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
from .spec import Spec, json_schema

if TYPE_CHECKING:  # summary needs no fit
    from .fit import Fit


def _plain_help() -> None:
    """Help without Python type placeholders beside arguments and flags (``<str>``, ``<bool>``, ``<list[str]>``).

    Recent typer prints them; each argument's metavar and help already say what it takes.
    Options keep theirs where they inform (choices such as ``<table|json>``, numeric ranges).
    """
    core = getattr(typer, "core", None)
    for cls, keep in ((getattr(core, "TyperArgument", None), lambda p: False),
                      (getattr(core, "TyperOption", None), lambda p: not getattr(p, "is_flag", False))):  # fmt: skip
        original = getattr(cls, "display_type_rich", None)
        if cls is None or original is None or getattr(original, "_cnncalc", False):
            continue

        def display(self: object, ctx: object, _original: Any = original, _keep: Any = keep) -> str | None:
            return _original(self, ctx=ctx) if _keep(self) else None

        display._cnncalc = True  # type: ignore[attr-defined]
        cls.display_type_rich = display


_plain_help()

app = typer.Typer(
    name="cnncalc",
    help="Size a CNN from a YAML spec: shapes, params, MACs/FLOPs, memory, receptive field.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Short names people type for the dtypes (PyTorch's own aliases among them).
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
#: What profile accepts: PyTorch cannot run convolutions in int8 eagerly.
PROFILE_DTYPES = ("float32", "float16", "bfloat16")


def _dtype_option(choices: tuple[str, ...]) -> Any:
    def check(value: str) -> str:
        name = DTYPE_ALIASES.get(value.lower(), value.lower())
        if name not in choices:
            aliases = ", ".join(f"{a} = {n}" for a, n in DTYPE_ALIASES.items() if n in choices)
            raise typer.BadParameter(f"expected one of {', '.join(choices)} ({aliases}), got '{value}'")
        return name

    return typer.Option(
        "--dtype",
        metavar="[" + "|".join(choices) + "]",
        callback=check,
        help="Bytes per value for memory figures; fp32, fp16 and bf16 work too.",
    )


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


class TextFormat(StrEnum):
    """Output of the commands that print a text report or its JSON (specs, fit, peers)."""

    text = "text"
    json = "json"


TextFormatOpt = Annotated[TextFormat, typer.Option("--format", "-f", help="Output format.")]

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


def _load(spec: str) -> Spec:
    """The spec a command's argument names (a file, a shipped spec's name, or - for standard input)."""
    try:
        return zoo.load(spec)
    except SpecError as exc:
        fail(exc.problems)


def _analyze(spec: str, batch: int, dtype: str, input_shape: str | None, strict: bool) -> Report:
    shape = _parse_input(input_shape)
    loaded = _load(spec)
    try:
        return analyze(loaded, batch=batch, dtype=dtype, input_shape=shape, strict=strict)
    except SpecError as exc:
        fail(exc.problems)


def _warn(found: Report | Fit, quiet: bool) -> None:
    """The spec's warnings on stderr, for output that has no place for them (csv, compare, fit, peers, profile)."""
    if quiet:
        return
    err = _console(stderr=True)
    for w in found.warnings:
        err.print(Text(w.warning_line(), style="yellow"), soft_wrap=True)


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


SpecArg = Annotated[
    str,
    typer.Argument(
        metavar="SPEC",
        help="A YAML spec file, a shipped spec's name (cnncalc specs lists them) or - for standard input.",
        show_default=False,
    ),
]
BatchOpt = Annotated[
    int, typer.Option("--batch", "-b", min=1, metavar="N", help="Images per batch (MACs and memory scale with it).")
]
DtypeOpt = Annotated[str, _dtype_option(tuple(DTYPE_BYTES))]
InputOpt = Annotated[
    str | None,
    typer.Option(
        "--input", "-i", metavar="CxHxW", callback=_check_input, help="Override the spec's input, e.g. 3x227x227."
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Hide the spec's warnings.")]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Make a layer that leaves real input unread ((W - F + 2P)/S not whole) an error, not a warning.",
    ),
]


@app.command()
def summary(
    spec: SpecArg,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth", "-d", min=1, metavar="N", help="Fold blocks nested this deep into one row each (1: top level)."
        ),
    ] = None,
) -> None:
    """Print one row per layer (shape, activations, memory, params, MACs, receptive field) and the totals.

    Example: cnncalc summary specs/resnet50.yaml --depth 1 --batch 32 --dtype bfloat16
    """
    report = _analyze(spec, batch, dtype, input, strict)
    if depth is not None:
        report = report.folded(depth)
    if format is Format.table:
        print_table(report, _console(), quiet=quiet)
        return
    if format is Format.csv:
        _warn(report, quiet)
    if format is Format.markdown:
        text = to_markdown(report, quiet=quiet)
    else:
        text = {Format.json: to_json, Format.csv: to_csv}[format](report)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


@app.command("specs")
def specs_command(
    format: TextFormatOpt = TextFormat.text,
) -> None:
    """List the shipped specs with their input, params and MACs; any command takes their names.

    Example: cnncalc specs
    """
    from .commands.specs import entries, print_specs, to_dict

    found = entries()
    if format is TextFormat.json:
        sys.stdout.write(json.dumps(to_dict(found), indent=2) + "\n")
    else:
        print_specs(found, _console())


class RooflineFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


@app.command()
def roofline(
    spec: SpecArg,
    device: Annotated[
        str | None,
        typer.Option(
            "--device",
            metavar="NAME",
            help="h100-sxm, h100-pcie, h200, a100-40gb, a100-80gb, l4, t4, rtx-4090, or measure (this machine,"
            " needs torch).",
        ),
    ] = None,
    peak: Annotated[
        float | None,
        typer.Option("--peak", metavar="TFLOPS", min=0.0, help="The device's peak, overriding the table's."),
    ] = None,
    bandwidth: Annotated[
        float | None,
        typer.Option(
            "--bandwidth", metavar="GB/s", min=0.0, help="The device's memory bandwidth, overriding the table's."
        ),
    ] = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    depth: Annotated[
        int | None,
        typer.Option("--depth", "-d", min=1, metavar="N", help="Fold blocks nested this deep into one row each."),
    ] = None,
    quiet: QuietOpt = False,
    format: Annotated[RooflineFormat, typer.Option("--format", "-f", help="Output format.")] = RooflineFormat.table,
) -> None:
    """Per layer: FLOPs, bytes moved, intensity, and whether compute or memory bounds it on a device.

    A lower bound on the time: each row at the device's published dense peak or bandwidth.

    Example: cnncalc roofline specs/resnet50.yaml --device h100-sxm --dtype bfloat16 --batch 64
    """
    import math

    from .commands import roofline as command
    from .roofline import roofline as compute

    for value, name in ((peak, "--peak"), (bandwidth, "--bandwidth")):
        if value is not None and not (0 < value < math.inf):
            raise typer.BadParameter(f"expected a positive, finite number, got {value}", param_hint=name)
    report = _analyze(spec, batch, dtype, input, strict=False)
    _warn(report, quiet)
    try:
        if device is not None and device.lower() == "measure":
            try:
                from . import torch_backend as tb
            except ImportError:
                raise ValueError("--device measure needs PyTorch: python3 -m pip install 'cnncalc[torch]'") from None
            if dtype == "int8":
                raise ValueError("--device measure times float matmuls: use float32, float16 or bfloat16")
            name, measured_peak, measured_bandwidth = tb.measure_device(tb.resolve_device("auto"), dtype)
            name, peak_flops, bytes_per_s = command.resolve(
                None, dtype, peak if peak is not None else measured_peak / 1e12,
                bandwidth if bandwidth is not None else measured_bandwidth / 1e9,
            )  # fmt: skip
            name = "this machine, measured" if name == "custom" else name
        else:
            name, peak_flops, bytes_per_s = command.resolve(device, dtype, peak, bandwidth)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    roof = compute(report, device=name, peak_flops=peak_flops, bandwidth=bytes_per_s, depth=depth)
    if format is RooflineFormat.json:
        sys.stdout.write(json.dumps(command.to_dict(roof), indent=2) + "\n")
    elif format is RooflineFormat.csv:
        sys.stdout.write(command.to_csv(roof))
    else:
        command.print_roofline(report, roof, _console())


@app.command()
def sizes(
    spec: SpecArg,
    format: TextFormatOpt = TextFormat.text,
) -> None:
    """The input sizes a network takes: valid, with the same params, read without losing pixels.

    Per axis: the smallest and largest input every layer has an output for, the range keeping every
    parameter count, the sizes no layer leaves real input unread at, and the output size as a formula.

    Example: cnncalc sizes specs/vgg16.yaml
    """
    from .commands.sizes import print_sizes, to_dict
    from .sizes import analyze_sizes

    report = _analyze(spec, 1, "float32", None, strict=False)
    try:
        axes = analyze_sizes(report)
    except ValueError as exc:
        fail([Problem(str(exc), file=spec)])
    if format is TextFormat.json:
        sys.stdout.write(json.dumps(to_dict(report, axes), indent=2) + "\n")
    else:
        print_sizes(report, axes, _console())


class PlotWhat(StrEnum):
    memory = "memory"
    params = "params"
    macs = "macs"
    roofline = "roofline"


@app.command()
def plot(
    spec: SpecArg,
    other: Annotated[
        str | None,
        typer.Argument(metavar="[SPEC_B]", help="A second spec, overlaid (by stage for bars).", show_default=False),
    ] = None,
    what: Annotated[PlotWhat, typer.Option("--what", "-w", help="The chart.")] = PlotWhat.memory,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE", help="Where to write it: .png, .svg or .pdf.")
    ] = "",
    device: Annotated[
        str | None, typer.Option("--device", metavar="NAME", help="With --what roofline: the device (see roofline).")
    ] = None,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    depth: Annotated[
        int | None,
        typer.Option("--depth", "-d", min=1, metavar="N", help="Fold blocks nested this deep into one bar each."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Draw per-layer memory, params or MACs, two specs by stage, or the roofline chart, to a file.

    Needs matplotlib (cnncalc[plot]).

    Example: cnncalc plot specs/resnet50.yaml --what macs --depth 1 -o resnet50_macs.png
    """
    from pathlib import Path

    from .commands import plot as charts

    out = Path(output)
    if out.suffix.lower() not in charts.SUFFIXES:
        raise typer.BadParameter(f"expected a file name ending in .png, .svg or .pdf, got '{output}'", param_hint="-o")
    if not out.parent.is_dir():
        raise typer.BadParameter(f"no folder '{out.parent}' to write '{out.name}' into", param_hint="-o")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        _console(stderr=True).print(Text.assemble(("error:", "bold red"), f" {charts.MISSING}"), soft_wrap=True)
        raise typer.Exit(2) from None
    reports = [_analyze(s, batch, dtype, input, strict=False) for s in (spec, other) if s is not None]
    for report in reports:
        _warn(report, quiet)
    if what is PlotWhat.roofline:
        from .commands.roofline import resolve
        from .roofline import roofline as compute

        try:
            name, peak_flops, bandwidth = resolve(device or "h100-sxm", dtype, None, None)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--device") from None
        roofs = [compute(r, device=name, peak_flops=peak_flops, bandwidth=bandwidth, depth=depth) for r in reports]
        second = (reports[1], roofs[1]) if len(reports) > 1 else None
        fig = charts.roofline_chart(reports[0], roofs[0], second)
    elif len(reports) > 1:
        fig = charts.compare_bars(reports[0], reports[1], what.value)
    else:
        report = reports[0]
        if depth is None and len(report.rows) > charts.MAX_BARS and report.blocks:
            depth = 1
            _console(stderr=True).print(
                Text(f"{len(report.rows):,} rows are too many bars to read: drawn by blocks (--depth 1)"),
                soft_wrap=True,
            )
        fig = charts.bars(report.folded(depth) if depth else report, what.value)
    charts.save(fig, out)
    _console(stderr=True).print(Text(f"wrote {out}"), soft_wrap=True)


@app.command()
def report(
    spec: SpecArg,
    output: Annotated[str, typer.Option("--output", "-o", metavar="FILE.html", help="Where to write the page.")] = "",
    device: Annotated[
        str, typer.Option("--device", metavar="NAME", help="The roofline's device (see roofline).")
    ] = "h100-sxm",
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Write one self-contained HTML page: the summary with foldable blocks, totals, charts, roofline.

    Nothing in it is fetched from the network; the charts (inline SVG) need matplotlib (cnncalc[plot]).

    Example: cnncalc report specs/resnet50.yaml -o resnet50.html --device a100-80gb
    """
    from pathlib import Path

    from .commands import report as page
    from .commands.roofline import resolve
    from .roofline import roofline as compute

    out = Path(output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise typer.BadParameter(f"expected a file name ending in .html, got '{output}'", param_hint="-o")
    if not out.parent.is_dir():
        raise typer.BadParameter(f"no folder '{out.parent}' to write '{out.name}' into", param_hint="-o")
    try:
        name, peak_flops, bandwidth = resolve(device, dtype, None, None)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    analysed = _analyze(spec, batch, dtype, input, strict=False)
    _warn(analysed, quiet)
    roof = compute(analysed, device=name, peak_flops=peak_flops, bandwidth=bandwidth)
    try:
        charts = page.chart_svgs(analysed, roof)
    except ImportError:
        charts = []
        _console(stderr=True).print(Text("no charts: they need matplotlib (cnncalc[plot])"), soft_wrap=True)
    out.write_text(page.page(analysed, roof, charts), encoding="utf-8")
    _console(stderr=True).print(Text(f"wrote {out}"), soft_wrap=True)


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
    quiet: QuietOpt = False,
    format: Annotated[
        ValidateFormat, typer.Option("--format", "-f", help="text: path:line:col lines; github: annotations; json.")
    ] = ValidateFormat.text,
) -> None:
    """Check spec files completely and report every problem of every file, one line each.

    Checks the YAML, the schema and the geometry of every layer through the whole network.
    Exits 0 when all are valid, 1 when any is not.

    Example: cnncalc validate specs/ --format github
    """
    from .validate import validate_paths

    results = validate_paths(paths, strict=strict)
    if quiet:
        results = [replace(r, warnings=()) for r in results]
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
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    quiet: QuietOpt = False,
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
            _load(spec),
            budget,
            train=train,
            optimizer=optimizer.value,
            dtype=dtype,
            input_shape=_parse_input(input),
        )
    except SpecError as exc:
        fail(exc.problems)
    _warn(result, quiet)
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
    quiet: QuietOpt = False,
    format: TextFormatOpt = TextFormat.text,
) -> None:
    """What torchvision, FlopCounterMode, torchinfo, ptflops and thop print for this network, and why.

    Each tool's counting rules (read in its source) applied to the spec, term by term beyond
    cnncalc's MACs; the test suite runs the tools themselves on every shipped spec.

    Example: cnncalc peers specs/resnet50.yaml
    """
    from .peers import peer_counts

    report = _analyze(spec, batch, "float32", input, strict=False)
    _warn(report, quiet)
    counts = peer_counts(report)
    if format is TextFormat.json:
        sys.stdout.write(json.dumps(peers_dict(report, counts), indent=2) + "\n")
    else:
        print_peers(report, counts, _console())


class CompareFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    markdown = "markdown"


@app.command()
def compare(
    a: Annotated[
        str, typer.Argument(metavar="A", help="The spec before (a file or a shipped name).", show_default=False)
    ],
    b: Annotated[
        str, typer.Argument(metavar="B", help="The spec after (a file or a shipped name).", show_default=False)
    ],
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    format: Annotated[
        CompareFormat, typer.Option("--format", "-f", help="markdown suits a pull-request comment.")
    ] = CompareFormat.table,
) -> None:
    """Two specs side by side: params, MACs and activations per stage (where the resolution
    changes) and in total, with the difference B - A.

    Example: cnncalc compare specs/vgg16.yaml specs/vgg19.yaml --format markdown
    """
    ra = _analyze(a, batch, dtype, input, strict)
    rb = _analyze(b, batch, dtype, input, strict)
    for report in (ra, rb):
        _warn(report, quiet)
    files = (safe_text.text(str(a)), safe_text.text(str(b)))
    if format is CompareFormat.table:
        print_compare(ra, rb, files, _console())
    elif format is CompareFormat.markdown:
        sys.stdout.write(compare_markdown(ra, rb, files))
    elif format is CompareFormat.csv:
        from .compare import to_csv as compare_csv

        sys.stdout.write(compare_csv(ra, rb))
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
    device: Annotated[Device, typer.Option("--device", help="auto picks CUDA when present.")] = Device.auto,
    batch: BatchOpt = 1,
    dtype: Annotated[str, _dtype_option(PROFILE_DTYPES)] = "float32",
    input: InputOpt = None,
    quiet: QuietOpt = False,
    train: Annotated[
        bool,
        typer.Option(
            "--train",
            help="Time forward + backward instead of inference, and check what each layer keeps for backward.",
        ),
    ] = False,
    warmup: Annotated[
        int, typer.Option("--warmup", min=0, max=10_000, metavar="N", help="Untimed iterations first.")
    ] = 3,
    iters: Annotated[
        int | None,
        typer.Option(
            "--iters",
            min=1,
            max=100_000,
            metavar="N",
            help="Timed iterations; by default as many as a stable median needs (at least 20 and 1 s of them).",
        ),
    ] = None,
    peak_tflops: Annotated[
        float | None,
        typer.Option(
            "--peak-tflops",
            min=0.0,
            metavar="TFLOPS",
            callback=_finite,
            help="Your device's peak, to print the share achieved.",
        ),
    ] = None,
    roofline: Annotated[
        bool,
        typer.Option("--roofline", help="Time each layer too, beside its roof: the fraction of the ideal it reaches."),
    ] = False,
    roofline_device: Annotated[
        str | None,
        typer.Option(
            "--roofline-device", metavar="NAME", help="The roof for --roofline (see roofline); default: measured here."
        ),
    ] = None,
    format: Annotated[ProfileFormat, typer.Option("--format", "-f", help="Output format.")] = ProfileFormat.table,
) -> None:
    """Build the spec in PyTorch, check every number against cnncalc's, then time it.

    Checks every shape, param count, FLOP count and activation byte (with --train also the
    bytes each layer keeps for backward). Exits 1 if any number disagrees.

    Example: cnncalc profile specs/vgg16.yaml --device cuda --dtype bfloat16 --batch 32
    """
    try:
        from . import torch_backend as tb
    except ImportError:
        _console(stderr=True).print(Text.assemble(("error:", "bold red"), f" {TORCH_MISSING}"), soft_wrap=True)
        raise typer.Exit(2) from None
    report = _analyze(spec, batch, dtype, input, strict=False)
    _warn(report, quiet)
    try:
        where = tb.resolve_device(device.value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    show = format is ProfileFormat.table
    try:
        with _phase(f"building {report.name} in PyTorch on {where}", show):
            model = tb.build(report, device=where, dtype=dtype)
        with _phase(f"checking {len(report.rows)} rows against PyTorch", show):
            saved = tb.measure_saved(model, report.input_shape, batch) if train else None
            # per-row kept-for-backward checks where the rules are verified (the CPU); CUDA compares the total
            checked = saved if where == "cpu" else None
            comparisons = tb.compare(report, tb.measure(model, report.input_shape, batch), checked, device=where)
        with _progress(warmup + iters if iters else None, show) as tick:
            timing = tb.time_model(
                model, report.input_shape, batch=batch, train=train, warmup=warmup, iters=iters, tick=tick
            )
        if saved is not None:
            timing.saved_bytes = sum(saved.values())
        roof_rows = None
        if roofline:
            from .commands import roofline as roof_command
            from .roofline import roofline as compute_roof

            with _phase("timing each layer against its roof", show):
                if roofline_device is None:
                    name, peak_flops, bytes_per_s = tb.measure_device(where, dtype)
                else:
                    name, peak_flops, bytes_per_s = roof_command.resolve(roofline_device, dtype, None, None)
                roof = compute_roof(report, device=name, peak_flops=peak_flops, bandwidth=bytes_per_s)
                roof_rows = roof_command.measured(roof, tb.time_rows(model, report.input_shape, batch))
    except (RuntimeError, ValueError) as exc:  # torch refused the network: say so in one line
        fail([Problem(f"PyTorch failed on this network: {str(exc).splitlines()[0]}", file=str(spec))])
    ok = all(c.ok for c in comparisons)
    if format is ProfileFormat.json:
        result = profile_dict(report, comparisons, timing, peak_tflops)
        if roof_rows is not None:
            result["roofline"] = roof_command.measured_dict(roof, roof_rows)
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        print_profile(report, comparisons, timing, _console(), peak_tflops)
        if roof_rows is not None:
            _console().print()
            roof_command.print_measured(roof, roof_rows, _console())
    if not ok:
        raise typer.Exit(1)


def run() -> None:
    """The ``cnncalc`` command (and ``python -m cnncalc``): :data:`app`, in a process that knows it is short."""
    # What a command builds (YAML nodes, rows, lines of text) is freed by reference counting; the cyclic
    # collector, at its defaults, traversed it again and again with everything imported (40% of a
    # 20,000-row summary). The imports are frozen out of its sight, and it runs a hundredth as often.
    gc.freeze()
    gc.set_threshold(70_000, 10, 10)
    app(prog_name="cnncalc")


@contextmanager
def _phase(what: str, show: bool) -> Iterator[None]:
    """A spinner on stderr naming a phase that takes time (hidden when not a terminal)."""
    console = _console(stderr=True)
    if not (show and console.is_terminal):
        yield
        return
    with console.status(Text(what)):
        yield


@contextmanager
def _progress(total: int | None, show: bool) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr over warm-up and timed iterations (hidden when not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = _console(stderr=True)
    with Progress(
        TextColumn("timing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True, disable=not (show and console.is_terminal),
    ) as bar:  # fmt: skip
        task = bar.add_task("timing", total=total)
        yield lambda: bar.advance(task)
