"""``cnncalc validate``: every problem of every file, as lines, GitHub annotations or JSON."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from ..render import (
    problem_dict,
)
from . import common
from .common import Format

if TYPE_CHECKING:
    from ..validate import FileResult


def _github_escape(text: str, *, prop: bool = False) -> str:
    """GitHub Actions workflow-command escaping (``%``, newlines; ``:`` and ``,`` in properties)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def validation_lines(results: list[FileResult], fmt: str) -> list[str]:
    """One line per problem: ``path:line:col: message`` (text) or a ``::error``/``::warning`` annotation."""
    lines = []
    for result in results:
        problems = [(p, "error") for p in result.errors] + [(p, "warning") for p in result.warnings]
        problems.sort(key=lambda item: (item[0].line or 0, item[0].column or 0))
        for p, severity in problems:
            if fmt == "github":
                props = [f"file={_github_escape(p.file or result.path, prop=True)}"]
                props += [f"{k}={v}" for k, v in (("line", p.line), ("col", p.column)) if v is not None]
                lines.append(f"::{severity} {','.join(props)}::{_github_escape(p.message)}")
            else:
                located = p if p.file else p.located(result.path, p.line, p.column)
                lines.append(located.warning_line() if severity == "warning" else str(located))
    return lines


def validation_dict(results: list[FileResult]) -> dict[str, Any]:
    return {
        "ok": all(r.ok for r in results),
        "files": [
            {
                "path": r.path,
                "ok": r.ok,
                "errors": [problem_dict(p) for p in r.errors],
                "warnings": [problem_dict(p) for p in r.warnings],
            }
            for r in results
        ],
        "errors": sum(r.error_count for r in results),
        "warnings": sum(r.warning_count for r in results),
    }


def validation_summary(results: list[FileResult]) -> str:
    bad = sum(not r.ok for r in results)
    errors = sum(r.error_count for r in results)
    warnings = sum(r.warning_count for r in results)
    return (
        f"{len(results)} file(s) checked: {len(results) - bad} valid, {bad} invalid"
        f" ({errors} error(s), {warnings} warning(s))"
    )


def run(paths: list[str], *, strict: bool, quiet: bool, format: Format) -> None:
    import dataclasses

    import typer

    from ..validate import validate_paths

    results = validate_paths(paths, strict=strict)
    if quiet:
        results = [dataclasses.replace(r, warnings=()) for r in results]
    if format is Format.json:
        common.out(json.dumps(validation_dict(results), indent=2))
    else:
        for line in validation_lines(results, format.value):
            sys.stdout.write(line + "\n")
        common.console(stderr=True).print(validation_summary(results), highlight=False, soft_wrap=True)
    if not all(r.ok for r in results):
        raise typer.Exit(1)
