"""Checking spec files completely: YAML, schema and the geometry of every layer.

Used by ``cnncalc validate`` in CI and editors; reads files, never writes one.
Folders and globs are walked without following links, and the walk stops after
:data:`MAX_ENTRIES` files and folders: ``validate '/proc/**/*.yaml'`` ends.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import safe_text, zoo
from .engine import analyze
from .errors import MAX_PATH, MAX_PROBLEMS, Problem, SpecError, capped
from .spec import load_spec

SPEC_SUFFIXES = (".yaml", ".yml")
#: Files and folders one argument's walk may look at, at most.
MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class FileResult:
    """What validating one file found; ``ok`` when it has no errors (warnings allowed).

    ``errors`` and ``warnings`` hold at most :data:`~cnncalc.errors.MAX_PROBLEMS` each, then one line
    that counts the rest; ``counts`` says how many there were in all.
    """

    path: str
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    counts: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def error_count(self) -> int:
        return self.counts[0] if self.counts else len(self.errors)

    @property
    def warning_count(self) -> int:
        return self.counts[1] if self.counts else len(self.warnings)


def _result(path: str, errors: Sequence[Problem] = (), warnings: Sequence[Problem] = ()) -> FileResult:
    """A file's result with its path made inert and at most :data:`MAX_PROBLEMS` errors and warnings each kept."""
    shown = safe_text.text(path, MAX_PATH)
    return FileResult(
        shown, tuple(capped(errors, MAX_PROBLEMS)), tuple(capped(warnings, MAX_PROBLEMS)), (len(errors), len(warnings))
    )


class _TooMany(Exception):
    """A walk that looked at more than :data:`MAX_ENTRIES` files and folders."""


def _entries(folder: str, seen: list[int]) -> Iterator[os.DirEntry[str]]:
    """The entries of ``folder`` (none when it cannot be read), each counted in ``seen``."""
    try:
        with os.scandir(folder) as it:
            for entry in it:
                seen[0] += 1
                if seen[0] > MAX_ENTRIES:
                    raise _TooMany
                yield entry
    except OSError:
        return


def _is_dir(entry: os.DirEntry[str], *, follow: bool = False) -> bool:
    try:
        return entry.is_dir(follow_symlinks=follow)
    except OSError:
        return False


def _walk(folder: str, seen: list[int] | None = None) -> list[str]:
    """Spec files below ``folder`` in os.walk's order, names sorted in each folder; hidden files and folders
    (.git, .github) are skipped, links to folders not followed."""
    seen = seen if seen is not None else [0]
    found, todo = [], [folder]
    while todo:
        root = todo.pop()
        entries = sorted(_entries(root, seen), key=lambda e: e.name)
        visible = [e for e in entries if not e.name.startswith(".")]
        found += [e.path for e in visible if e.name.endswith(SPEC_SUFFIXES) and not _is_dir(e, follow=True)]
        todo += reversed([e.path for e in visible if _is_dir(e)])  # the first folder is walked next, as os.walk does
    return found


def _glob(pattern: str, seen: list[int]) -> list[str]:
    """What ``glob.glob(pattern, recursive=True)`` matches, but ``**`` never follows a link (``/proc/self/root``
    leads back to ``/``) and every entry looked at is counted."""
    parts = [p for p in pattern.split(os.sep) if p not in ("", ".")]
    root = os.sep if pattern.startswith(os.sep) else ""
    found: set[str] = set()
    todo = [(root, 0)]
    while todo:
        base, i = todo.pop()
        if i == len(parts):
            found.add(base)
            continue
        part, here = parts[i], base or os.curdir
        if part == "**":
            todo.append((base, i + 1))  # no folder at all
            for entry in _entries(here, seen):
                if entry.name.startswith("."):
                    continue
                if _is_dir(entry):
                    todo.append((os.path.join(base, entry.name), i))
                elif i + 1 == len(parts):
                    found.add(os.path.join(base, entry.name))
        elif not glob.has_magic(part):
            path = os.path.join(base, part)
            if os.path.lexists(path):
                todo.append((path, i + 1))
        else:
            hidden = part.startswith(".")
            todo += [
                (os.path.join(base, entry.name), i + 1)
                for entry in _entries(here, seen)
                if (hidden or not entry.name.startswith(".")) and fnmatch.fnmatchcase(entry.name, part)
            ]
    return sorted(found)


def expand_paths(args: Sequence[str]) -> tuple[list[str], list[FileResult]]:
    """Files named, found below folders, or matched by globs (``**`` included).

    Returns the files to check and a failed result for each argument that names none.
    """
    files: list[str] = []
    missing: list[FileResult] = []
    for arg in args:
        seen = [0]
        try:
            if glob.has_magic(arg):
                matches = _glob(arg, seen)
                found = [
                    f
                    for m in matches
                    for f in ([m] if os.path.isfile(m) else _walk(m, seen) if os.path.isdir(m) else [])
                ]
                reason = "no file matches this pattern"
            elif os.path.isdir(arg):
                found, reason = _walk(arg, seen), "no .yaml or .yml files in this folder"
            elif os.path.lexists(arg):
                found, reason = [arg], ""
            elif zoo.shipped(arg) is not None:
                found, reason = [str(zoo.shipped(arg))], ""
            else:
                found, reason = [], "no such file or folder, nor a shipped spec of that name"
        except _TooMany:
            found, reason = [], f"more than {MAX_ENTRIES:,} files and folders to look at; name a smaller folder"
        if not found:
            missing.append(_result(arg, [Problem(reason, file=arg)]))
        files += found
    unique = list(dict.fromkeys(os.path.normpath(f) for f in files))
    return unique, missing


def validate_file(path: str | Path, *, strict: bool = False, text: str | None = None) -> FileResult:
    """Every problem of one spec: its YAML and schema, else the geometry through the whole network."""
    name = str(path)
    try:
        report = analyze(load_spec(path, text=text), strict=strict)
    except SpecError as exc:
        return _result(name, exc.problems)
    return _result(name, warnings=report.warnings)


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
