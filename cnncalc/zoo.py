"""The shipped specs, by name, and where a spec argument comes from: a file, a shipped name or standard input.

Every command that takes a spec resolves it here, so ``cnncalc summary resnet50`` works from
any folder (a file of that name wins when it exists) and ``-`` reads the spec from a pipe.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO

from .errors import Problem, SpecError, did_you_mean
from .source import MAX_FILE_BYTES, decode
from .spec import Spec, load_spec

#: The folder of the shipped specs, inside the package (the repository's ``specs/`` points here).
ZOO = Path(__file__).resolve().parent / "specs"
#: How standard input is named in messages.
STDIN = "<stdin>"


def names() -> list[str]:
    """The shipped specs' names, sorted: ``alexnet``, ..., ``vgg19``."""
    return sorted(p.stem for p in ZOO.glob("*.yaml"))


def shipped(name: str) -> Path | None:
    """The file of the shipped spec ``name`` (``resnet50`` or ``resnet50.yaml``), or None."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    path = ZOO / f"{stem}.yaml"
    return path if "/" not in stem and os.sep not in stem and path.is_file() else None


def resolve(arg: str) -> Path:
    """The file ``arg`` names: a path when one exists, else a shipped spec; SpecError when neither."""
    if os.path.lexists(arg):
        return Path(arg)
    found = shipped(arg)
    if found is not None:
        return found
    hint = did_you_mean(Path(arg).stem, names())
    raise SpecError(
        Problem(f"no such file, nor a shipped spec of that name{hint}; `cnncalc specs` lists them", file=arg)
    )


def read_stdin(stream: IO[bytes] | None = None) -> str:
    """The spec text on standard input, refused past the size limit of a spec file."""
    raw = (stream or sys.stdin.buffer).read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(Problem(f"specs over {MAX_FILE_BYTES:,} bytes are refused", file=STDIN))
    return decode(raw, STDIN)


def load(arg: str | os.PathLike[str], stdin: IO[bytes] | None = None) -> Spec:
    """Load the spec ``arg`` names: ``-`` (standard input), a file, or a shipped spec's name."""
    if str(arg) == "-":
        return load_spec(STDIN, text=read_stdin(stdin))
    if not isinstance(arg, str):
        return load_spec(os.fspath(arg))
    return load_spec(resolve(arg))


def coerce(spec: Spec | str | os.PathLike[str]) -> Spec:
    """A spec from what a notebook user has at hand: a Spec, a path, a shipped name, or YAML text.

    >>> coerce("vgg16").name
    'VGG-16 (D)'
    >>> coerce("name: t\\ninput: [3, 8, 8]\\nlayers: [relu]\\n").name
    't'
    """
    if isinstance(spec, Spec):
        return spec
    if isinstance(spec, str) and "\n" in spec:
        return load_spec(None, text=spec)
    return load(spec)
