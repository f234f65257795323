"""``cnncalc import``: a PyTorch model (torchvision's, a package's or a file's) written as a spec."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import sys
import warnings
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
import yaml
from rich.text import Text

from ..errors import MAX_PROBLEMS, ImportRefused, Problem, SpecError, capped
from ..machine import out_of_memory, within_free_memory
from . import common

if TYPE_CHECKING:
    from torch import nn

#: Said when import runs where torch is not installed.
NO_TORCH = "import needs PyTorch, which is not installed: python3 -m pip install 'cnncalc[torch]'"


def parse_args(pairs: list[str]) -> dict[str, Any]:
    """``--arg key=value``: the value as Python writes a number, a boolean, None or a string (quotes optional)."""
    import ast

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            common.fail([Problem(f"--arg {pair}: expected key=value, e.g. --arg num_classes=10")])
        try:
            out[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key.strip()] = text
    return out


def model_of(target: str, args: dict[str, Any]) -> nn.Module:
    """The model TARGET names, built with ``args``: ``torchvision:NAME`` (no weights), ``package.module:callable``
    or ``path/to/file.py:Callable`` (a class or a factory)."""
    source, sep, attr = target.rpartition(":")
    if not sep or not source or not attr:
        raise SpecError(f"{target}: expected torchvision:NAME, package.module:callable or path/to/file.py:Callable")
    if source == "torchvision":
        try:
            import torchvision.models as models  # type: ignore[import-untyped]
        except ImportError:
            raise SpecError(f"{target}: torchvision is not installed (python3 -m pip install torchvision)") from None
        try:
            factory = models.get_model_builder(attr)
        except ValueError:
            raise SpecError(f"{target}: torchvision has no model '{attr}' (torchvision.models.list_models())") from None
        # never a download: no weights, and no pretrained backbone where the model takes one (segmentation)
        import inspect

        takes = inspect.signature(factory).parameters
        no_weights = {k: None for k in ("weights", "weights_backbone") if k in takes}
        # torchvision's own notices about its defaults (GoogLeNet's init_weights) say nothing about the spec
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _call(target, factory, {**no_weights, **args})
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise SpecError(f"{target}: no file {source}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        holder = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(path.stem, holder)
        argv = sys.argv
        sys.argv = [source]  # as `python file.py` runs it: a script that parses its arguments finds none of ours
        try:
            spec.loader.exec_module(holder)
        except SystemExit as exc:
            raise SpecError(
                f"{target}: running {source} exited (status {exc.code}) before {attr} could be built;"
                " a script's own work belongs under `if __name__ == '__main__':`"
            ) from None
        except Exception as exc:
            raise SpecError(f"{target}: running {source} failed: {type(exc).__name__}: {exc}") from None
        finally:
            sys.argv = argv
    else:
        try:
            holder = importlib.import_module(source)
        except SystemExit as exc:
            raise SpecError(f"{target}: importing {source} exited (status {exc.code})") from None
        except Exception as exc:
            raise SpecError(f"{target}: cannot import {source}: {type(exc).__name__}: {exc}") from None
    factory = getattr(holder, attr, None)
    if not callable(factory):
        raise SpecError(f"{target}: {source} has no class or function '{attr}'")
    return _call(target, factory, args)


def _call(target: str, factory: Any, args: dict[str, Any]) -> nn.Module:
    from torch import nn

    try:
        model = factory(**args)
    except SystemExit as exc:
        raise SpecError(f"{target}: building it exited (status {exc.code})") from None
    except Exception as exc:
        if out_of_memory(exc):
            raise  # said by run(), as when running it
        raise SpecError(f"{target}: building it failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise SpecError(f"{target}: gives {type(model).__name__}, not a torch.nn.Module")
    return model


def run(target: str, input: str, output: str | None, args: list[str], name: str | None, as_json: bool = False) -> None:
    """Build the model, import it, and write its spec (stdout, or ``output``; nothing on a problem). ``as_json``:
    the outcome as one JSON document on stdout (the spec, unless written to ``output``, and what was left out;
    or every operation refused)."""
    shape = common.parse_input(input)
    assert shape is not None
    try:
        import torch  # noqa: F401
    except ImportError:
        common.refuse(NO_TORCH)
    from ..importer import from_torch

    said: list[Problem] = []
    try:
        # what it does, on stderr where that is a terminal (a big model takes a while); stdout stays the spec,
        # whatever the model's own code prints while it is built and run
        with within_free_memory(), contextlib.redirect_stdout(sys.stderr):
            with common.phase(f"building {target}", show=True):
                model = model_of(target, parse_args(args))
            with common.steps(show=True) as step:

                def progress(what: str, done: int, total: int) -> None:
                    step(f"importing {target}: [{done + 1}/{total}] {what}")

                spec = from_torch(
                    model, shape, name=name or target.rpartition(":")[2], progress=progress, warnings=said
                )
    except ImportRefused as exc:
        if as_json:
            common.out(json.dumps(refused(target, shape, exc), indent=2))
            raise typer.Exit(1) from None
        if len(exc.problems) < 2:
            common.fail(exc.problems)
        common.fail([*capped(exc.problems, MAX_PROBLEMS - 2), Problem(summary(exc))])  # the summary last, always
    except SpecError as exc:
        common.fail(exc.problems)
    except (MemoryError, RuntimeError) as exc:
        if not out_of_memory(exc):
            raise
        common.fail([Problem(f"{target}: building or running it needs more memory than this machine has free")])
    err = common.console(stderr=True)
    for w in said:  # what the spec leaves out (the spec's notes say it too)
        err.print(Text(w.warning_line(), style="yellow"), soft_wrap=True)
    text = spec.to_yaml()
    if as_json:
        data: dict[str, Any] = {"target": target, "input": list(shape), "imported": True}
        data["left_out"] = [w.message for w in said]
        if output is None:
            data["spec"] = yaml.safe_load(text)
    if output is None:
        if as_json:
            common.out(json.dumps(data, indent=2))
        else:
            common.out(text.rstrip("\n"))
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        common.fail([Problem(f"{output}: cannot write it: {exc.strerror}")])
    if as_json:
        common.out(json.dumps({**data, "written": output}, indent=2))
        return
    common.wrote(output)


def refused(target: str, shape: tuple[int, ...], exc: ImportRefused) -> dict[str, Any]:
    """``--format json`` of a refused import: every operation refused, and their count by name."""
    operations = [asdict(r) for r in exc.refusals]
    counts = Counter(r.operation for r in exc.refusals)
    return {
        "target": target,
        "input": list(shape),
        "imported": False,
        "refused": len(operations),
        "by_operation": dict(counts.most_common()),
        "operations": operations,
    }


def summary(exc: ImportRefused) -> str:
    """The last line of a refusal: how many operations, of which names, how far the model is from importing."""
    counts = Counter(r.operation for r in exc.refusals).most_common()
    shown = ", ".join(f"{name} {n}" for name, n in counts[:8]) + (", ..." if len(counts) > 8 else "")
    return f"{len(exc.refusals)} problem(s) ({shown}); --format json lists each with its module and source line"
