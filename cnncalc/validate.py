"""Checking spec files completely: YAML, schema and the geometry of every layer.

Used by ``cnncalc validate`` in CI and editors; reads files, never writes one.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import zoo
from .engine import analyze
from .errors import Problem, SpecError
from .spec import load_spec

SPEC_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class FileResult:
    """What validating one file found; ``ok`` when it has no errors (warnings allowed)."""

    path: str
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def _walk(folder: str) -> list[str]:
    """Spec files below ``folder``, sorted; hidden files and folders (.git, .github) are skipped."""
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if f.endswith(SPEC_SUFFIXES) and not f.startswith(".")]
    return found


def expand_paths(args: Sequence[str]) -> tuple[list[str], list[FileResult]]:
    """Files named, found below folders, or matched by globs (``**`` included).

    Returns the files to check and a failed result for each argument that names none.
    """
    files: list[str] = []
    missing: list[FileResult] = []
    for arg in args:
        if glob.has_magic(arg):
            matches = sorted(glob.glob(arg, recursive=True))
            found = [f for m in matches for f in ([m] if os.path.isfile(m) else _walk(m) if os.path.isdir(m) else [])]
            reason = "no file matches this pattern"
        elif os.path.isdir(arg):
            found, reason = _walk(arg), "no .yaml or .yml files in this folder"
        elif os.path.exists(arg):
            found, reason = [arg], ""
        elif zoo.shipped(arg) is not None:
            found, reason = [str(zoo.shipped(arg))], ""
        else:
            found, reason = [], "no such file or folder, nor a shipped spec of that name"
        if not found:
            missing.append(FileResult(arg, (Problem(reason, file=arg),)))
        files += found
    unique = list(dict.fromkeys(os.path.normpath(f) for f in files))
    return unique, missing


def validate_file(path: str | Path, *, strict: bool = False, text: str | None = None) -> FileResult:
    """Every problem of one spec: its YAML and schema, else the geometry through the whole network."""
    name = str(path)
    try:
        report = analyze(load_spec(path, text=text), strict=strict)
    except SpecError as exc:
        return FileResult(name, exc.problems)
    return FileResult(name, warnings=report.warnings)


def validate_paths(args: Sequence[str], *, strict: bool = False) -> list[FileResult]:
    """:func:`validate_file` on every file that ``args`` name (``-``: standard input), after those that name none."""
    stdin = []
    if "-" in args:
        try:
            stdin = [validate_file(zoo.STDIN, strict=strict, text=zoo.read_stdin())]
        except SpecError as exc:
            stdin = [FileResult(zoo.STDIN, exc.problems)]
    files, missing = expand_paths([a for a in args if a != "-"])
    return missing + stdin + [validate_file(f, strict=strict) for f in files]
