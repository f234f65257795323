"""The ``cnncalc`` command line: typer's wiring, and nothing else.

Each command's options are declared here; what it does and how it prints lives in its module in
``cnncalc/commands/`` (imported when the command runs, so a command loads only what it needs).
Exit codes: 0 success, 1 a bad spec (one line per problem, never a traceback), 2 a usage error.
This module must never import torch.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib
import inspect
import io
import os
import sys
import types
from enum import StrEnum
from typing import Annotated, Any

from . import __version__, _collector_paused

with _collector_paused():
    import typer

    from .commands.common import PROFILE_DTYPES, Format, check_input, choice, dtypes, finite
    from .report import DTYPE_BYTES


def _plain_help() -> None:
    """Help without Python type placeholders beside arguments and flags (``<str>``, ``<bool>``, ``<list[str]>``).

    Recent typer prints them; each argument's metavar and help already say what it takes.
    Options keep theirs where they inform (numeric ranges).
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


def _format_option(*accepted: Format, help: str = "Output format.") -> Any:
    """One ``--format`` for every command, offering (and accepting) only that command's formats."""
    return typer.Option("--format", "-f", metavar="[" + "|".join(accepted) + "]", parser=choice(accepted), help=help)


def _dtype_option(choices: tuple[str, ...]) -> Any:
    """``--dtype``: the choices are listed in its help, not its metavar, which an 80-column help page
    would break mid-word (``bfloat16|i`` / ``nt8]``)."""
    listed = ", ".join(choices[:-1]) + " or " + choices[-1]
    return typer.Option(
        "--dtype",
        metavar="DTYPE",
        callback=dtypes(choices),
        help=f"Bytes per value for memory figures: {listed} (fp32, fp16 and bf16 work too).",
    )


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
        "--input", "-i", metavar="CxHxW", callback=check_input, help="Override the spec's input, e.g. 3x227x227."
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
DepthOpt = Annotated[
    int | None,
    typer.Option(
        "--depth", "-d", min=1, metavar="N", help="Fold blocks nested this deep into one row each (1: top level)."
    ),
]
DeviceNameOpt = Annotated[
    str | None,
    typer.Option(
        "--device",
        metavar="NAME",
        help="h100-sxm, h100-pcie, h200, a100-40gb, a100-80gb, l4, t4, rtx-4090, or measure (this machine,"
        " needs torch).",
    ),
]
TextOrJson = Annotated[Format, _format_option(Format.text, Format.json)]


@app.command()
def summary(
    spec: SpecArg,
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    strict: StrictOpt = False,
    quiet: QuietOpt = False,
    format: Annotated[Format, _format_option(Format.table, Format.json, Format.csv, Format.markdown)] = Format.table,
    depth: DepthOpt = None,
) -> None:
    """Print one row per layer (shape, activations, memory, params, MACs, receptive field) and the totals.

    Example: cnncalc summary specs/resnet50.yaml --depth 1 --batch 32 --dtype bfloat16
    """
    from .commands import summary as command

    command.run(spec, batch=batch, dtype=dtype, input=input, strict=strict, quiet=quiet, format=format, depth=depth)


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
        Format,
        _format_option(
            Format.text, Format.json, Format.github, help="text: path:line:col lines; github: annotations; json."
        ),
    ] = Format.text,
) -> None:
    """Check spec files completely and report every problem of every file, one line each.

    Checks the YAML, the schema and the geometry of every layer through the whole network.
    Exits 0 when all are valid, 1 when any is not.

    Example: cnncalc validate specs/ --format github
    """
    from .commands import validate as command

    command.run(paths, strict=strict, quiet=quiet, format=format)


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
        Format,
        _format_option(
            Format.table, Format.json, Format.csv, Format.markdown, help="markdown suits a pull-request comment."
        ),
    ] = Format.table,
) -> None:
    """Two specs side by side, per stage and in total, with the difference B - A.

    Params, MACs and activations per stage (where the output resolution changes) and in total.

    Example: cnncalc compare specs/vgg16.yaml specs/vgg19.yaml --format markdown
    """
    from .commands import compare as command

    command.run(a, b, batch=batch, dtype=dtype, input=input, strict=strict, quiet=quiet, format=format)


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
        typer.Option(
            "--optimizer",
            metavar="<sgd|momentum|adam>",
            parser=choice(tuple(OptimizerChoice)),
            help="With --train: the state it keeps (sgd none, momentum 1x, adam 2x).",
        ),
    ] = OptimizerChoice.adam,
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    quiet: QuietOpt = False,
    format: TextOrJson = Format.text,
) -> None:
    """The largest batch whose counted memory fits a budget, for inference or a training step.

    Inference: params + peak activations; --train: params + grads + optimizer state + what
    autograd keeps for backward. Exits 1 when not even one image fits.

    Example: cnncalc fit specs/resnet50.yaml --memory 80GB --train --dtype bfloat16
    """
    from .commands import fit as command

    command.run(
        spec, memory=memory, train=train, optimizer=optimizer.value, dtype=dtype, input=input, quiet=quiet,
        format=format,
    )  # fmt: skip


@app.command()
def peers(
    spec: SpecArg,
    batch: BatchOpt = 1,
    input: InputOpt = None,
    quiet: QuietOpt = False,
    format: TextOrJson = Format.text,
) -> None:
    """What torchvision, FlopCounterMode, torchinfo, ptflops and thop print for this network, and why.

    Each tool's counting rules (read in its source) applied to the spec, term by term beyond
    cnncalc's MACs; the test suite runs the tools themselves on every shipped spec.

    Example: cnncalc peers specs/resnet50.yaml
    """
    from .commands import peers as command

    command.run(spec, batch=batch, input=input, quiet=quiet, format=format)


@app.command()
def roofline(
    spec: SpecArg,
    device: DeviceNameOpt = None,
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
    depth: DepthOpt = None,
    quiet: QuietOpt = False,
    format: Annotated[Format, _format_option(Format.table, Format.json, Format.csv)] = Format.table,
) -> None:
    """Per layer: FLOPs, bytes moved, intensity, and whether compute or memory bounds it on a device.

    A lower bound on the time: each row at the device's published dense peak or bandwidth.

    Example: cnncalc roofline specs/resnet50.yaml --device h100-sxm --dtype bfloat16 --batch 64
    """
    from .commands import roofline as command

    command.run(
        spec, device=device, peak=peak, bandwidth=bandwidth, batch=batch, dtype=dtype, input=input, depth=depth,
        quiet=quiet, format=format,
    )  # fmt: skip


@app.command()
def sizes(spec: SpecArg, format: TextOrJson = Format.text) -> None:
    """The input sizes a network takes: valid, with the same params, read without losing pixels.

    Per axis: the smallest and largest input every layer has an output for, the range keeping every
    parameter count, the sizes no layer leaves real input unread at, and the output size as a formula.

    Example: cnncalc sizes specs/vgg16.yaml
    """
    from .commands import sizes as command

    command.run(spec, format=format)


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
    what: Annotated[
        PlotWhat,
        typer.Option(
            "--what", "-w", metavar="CHART", parser=choice(tuple(PlotWhat)), help="memory, params, macs or roofline."
        ),
    ] = PlotWhat.memory,
    output: Annotated[
        str, typer.Option("--output", "-o", metavar="FILE", help="Where to write it: .png, .svg or .pdf.")
    ] = ...,  # type: ignore[assignment]
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

    Needs matplotlib (cnncalc\\[plot]).

    Example: cnncalc plot specs/resnet50.yaml --what macs --depth 1 -o resnet50_macs.png
    """
    from .commands import plot as command

    command.run(
        spec, other, what=what.value, output=output, device=device, batch=batch, dtype=dtype, input=input,
        depth=depth, quiet=quiet,
    )  # fmt: skip


@app.command()
def report(
    spec: SpecArg,
    output: Annotated[str, typer.Option("--output", "-o", metavar="FILE.html", help="Where to write the page.")] = ...,  # type: ignore[assignment]
    device: Annotated[
        str, typer.Option("--device", metavar="NAME", help="The roofline's device (see roofline).")
    ] = "h100-sxm",
    batch: BatchOpt = 1,
    dtype: DtypeOpt = "float32",
    input: InputOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Write one self-contained HTML page: the summary with foldable blocks, totals, charts, roofline.

    Nothing in it is fetched from the network; the charts (inline SVG) need matplotlib (cnncalc\\[plot]).

    Example: cnncalc report specs/resnet50.yaml -o resnet50.html --device a100-80gb
    """
    from .commands import report as command

    command.run(spec, output=output, device=device, batch=batch, dtype=dtype, input=input, quiet=quiet)


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


@app.command()
def profile(
    spec: SpecArg,
    device: Annotated[
        Device,
        typer.Option(
            "--device", metavar="<auto|cpu|cuda>", parser=choice(tuple(Device)), help="auto picks CUDA when present."
        ),
    ] = Device.auto,
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
            callback=finite,
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
    format: Annotated[Format, _format_option(Format.table, Format.json)] = Format.table,
) -> None:
    """Build the spec in PyTorch, check every number against cnncalc's, then time it.

    Checks every shape, param count, FLOP count and activation byte (with --train also the
    bytes each layer keeps for backward). Exits 1 if any number disagrees.

    Example: cnncalc profile specs/vgg16.yaml --device cuda --dtype bfloat16 --batch 32
    """
    from .commands import profile as command

    command.run(
        spec, device=device.value, batch=batch, dtype=dtype, input=input, quiet=quiet, train=train, warmup=warmup,
        iters=iters, peak_tflops=peak_tflops, roofline=roofline, roofline_device=roofline_device, format=format,
    )  # fmt: skip


@app.command("import")
def import_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="TARGET",
            help="torchvision:NAME (no weights downloaded), package.module:callable or path/to/file.py:Callable"
            " (a class or a function that returns the model).",
            show_default=False,
        ),
    ],
    input: Annotated[
        str,
        typer.Option(
            "--input",
            "-i",
            metavar="CxHxW",
            callback=check_input,
            help="The input the model runs on once, e.g. 3x224x224.",
        ),
    ],
    output: Annotated[
        str | None, typer.Option("--output", "-o", metavar="FILE", help="Write the spec here, not to stdout.")
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", metavar="KEY=VALUE", help="An argument of the model's class or function (repeatable)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", metavar="TEXT", help="The spec's name (default: TARGET's).")
    ] = None,
    format: Annotated[
        Format,
        _format_option(
            Format.text,
            Format.json,
            help="json: the outcome on stdout as JSON: the spec and what was left out, or every operation refused"
            " (module, ATen name, source line), counted by name.",
        ),
    ] = Format.text,
) -> None:
    """Write the spec of a PyTorch model, run once at the input, named as its modules (its state_dict loads).

    Anything the spec cannot say exactly is an error, one line each, and nothing is written; a module whose parameters do not run at the input is left out, a warning line each.

    Example: cnncalc import torchvision:resnet50 --input 3x224x224 -o resnet50.yaml
    """
    from .commands import import_ as command

    command.run(target, input, output, arg or [], name, format == Format.json)


@app.command("specs")
def specs_command(format: TextOrJson = Format.text) -> None:
    """List the shipped specs with their input, params and MACs; any command takes their names.

    Example: cnncalc specs
    """
    from .commands import specs as command

    command.run(format)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec DSL, for editors (yaml-language-server) and other tools.

    Example: cnncalc schema > cnncalc.schema.json
    """
    import json

    from .commands.common import out
    from .spec import json_schema

    out(json.dumps(json_schema(), indent=2))


def _paragraphs(doc: str) -> str:
    """A docstring's paragraphs each on one line: typer 0.29 keeps a paragraph's line breaks after the first
    (rich markup), so a help page broke where the source does ('the range keeping every' / 'parameter count')
    before the terminal's width."""
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


for _info in app.registered_commands:
    if _info.help is None and _info.callback is not None and _info.callback.__doc__:
        _info.help = _paragraphs(_info.callback.__doc__)


def _command_name(info: Any) -> str:
    return str(info.name or info.callback.__name__.replace("_", "-"))


def only_invoked(argv: list[str]) -> typer.Typer:
    """:data:`app` with only the command ``argv`` names, when it names one: typer builds every registered
    command's click objects (options, callbacks, help) on each run, a third of a small table's own time.
    ``cnncalc --help``, ``cnncalc`` alone and an unknown command get the whole app."""
    name = next((a for a in argv if not a.startswith("-")), None)
    chosen = [c for c in app.registered_commands if _command_name(c) == name]
    if not chosen or argv[0] != name:
        return app
    one = copy.copy(app)  # the same settings and callback (--version)
    one.registered_commands = chosen
    return one


#: pydantic's plugin loader: imported when the first validator is built, to ask it for the plugins.
PLUGIN_LOADER = "pydantic.plugin._loader"
#: The values of PYDANTIC_DISABLE_PLUGINS with which that loader returns none without looking.
_ALL_PLUGINS_OFF = ("__all__", "1", "true")


def _skip_plugin_loader() -> None:
    """With every plugin off, pydantic's loader returns none without looking for any, but importing it
    imports ``importlib.metadata`` (and email, csv, zipfile): 7 ms of a 180 ms summary, for nothing.

    A stand-in takes its place: its ``get_plugins`` returns none, as the loader would; any other name
    asked of it loads the real module (a pydantic that reads more of it keeps working). Nothing changes
    when plugins are on (a user's PYDANTIC_DISABLE_PLUGINS naming some) or the loader is already loaded.
    """
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS") not in _ALL_PLUGINS_OFF or PLUGIN_LOADER in sys.modules:
        return
    stand_in = types.ModuleType(PLUGIN_LOADER, "pydantic's plugin loader while every plugin is off (cnncalc.cli)")

    def get_plugins(*args: Any, **kwargs: Any) -> tuple[()]:
        return ()

    def real(name: str) -> Any:
        if name.startswith("__"):  # what the import system asks of any module (__path__: a package?)
            raise AttributeError(name)
        if sys.modules.get(PLUGIN_LOADER) is stand_in:
            del sys.modules[PLUGIN_LOADER]
        return getattr(importlib.import_module(PLUGIN_LOADER), name)

    stand_in.get_plugins = get_plugins  # type: ignore[attr-defined]
    stand_in.__getattr__ = real  # type: ignore[method-assign]
    sys.modules[PLUGIN_LOADER] = stand_in


def run() -> None:
    """The ``cnncalc`` command (and ``python -m cnncalc``): :data:`app`, in a process that knows it is short."""
    # What a command builds (YAML nodes, rows, lines of text) is freed by reference counting; the cyclic
    # collector, at its defaults, traversed it again and again with everything imported (40% of a
    # 20,000-row summary). The imports are frozen out of its sight, and it runs a hundredth as often.
    gc.freeze()
    gc.set_threshold(70_000, 10, 10)
    # pydantic looks for plugins (observability hooks) in every installed distribution's entry points
    # when it builds its first validator: 10 ms and more with each package installed, for hooks that a
    # calculator's own spec models have no use for. A value the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    _skip_plugin_loader()
    argv = sys.argv[1:]
    if sys.stdout.isatty() or not {"--help", "-h"} & set(argv):
        only_invoked(argv)(prog_name="cnncalc")
        return
    # a help page piped or captured: rich pads every line to the width; it leaves without the padding
    page = io.StringIO()
    try:
        with contextlib.redirect_stdout(page):
            only_invoked(argv)(prog_name="cnncalc")
    finally:
        sys.stdout.write("".join(line.rstrip() + "\n" for line in page.getvalue().splitlines()))
