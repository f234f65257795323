"""YAML text to plain data, remembering where every key and value stands.

Loading is safe: only plain YAML scalars, lists and mappings are built (no
object construction from tags), and the work is bounded so that an alias
bomb, deep nesting or a huge file ends in a clear error instead of a hang.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Path, Problem, SpecError

#: Larger spec files are refused: VGG-16 is well under 2 kB.
MAX_FILE_BYTES = 1_000_000
#: Values built from the YAML, counting each alias expansion again.
MAX_NODES = 200_000
#: Nesting deeper than this is refused before the YAML parser can recurse.
MAX_DEPTH = 100

Position = tuple[int, int]
_PLAIN_TAGS = ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map")


@dataclass(frozen=True)
class SourceMap:
    """Where each value (and each mapping key) of the data stands in the file."""

    file: str | None
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> Position | None:
        """The position of ``path``, or of its nearest ancestor that the file holds."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return None

    def locate(self, problem: Problem, *, key: bool = False) -> Problem:
        pos = self.position(problem.path, key=key)
        return problem.located(self.file, *(pos if pos else (None, None)))


def _mark(node: yaml.Node) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _error(file: str | None, message: str, pos: Position = (1, 1)) -> SpecError:
    """A problem with the text itself; one without a better place is put at its start."""
    return SpecError(Problem(message, file=file, line=pos[0], column=pos[1]))


def decode(raw: bytes, file: str | None) -> str:
    """Bytes of a spec file to text, refusing what is not a small UTF-8 text file."""
    if len(raw) > MAX_FILE_BYTES:
        raise _error(file, f"file is {len(raw):,} bytes; specs over {MAX_FILE_BYTES:,} bytes are refused")
    if b"\x00" in raw:
        raise _error(file, "not a text file (it contains NUL bytes)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _error(file, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} cannot be decoded)", (line, col)) from None


def _check_depth(text: str, file: str | None) -> None:
    # PyYAML composes recursively; refuse deep flow nesting before it can overflow.
    depth = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        for col, ch in enumerate(line, 1):
            if ch in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise _error(file, f"nesting deeper than {MAX_DEPTH} levels", (lineno, col))
            elif ch in "]}":
                depth = max(0, depth - 1)
        indent = len(line) - len(line.lstrip(" -"))
        if indent > 2 * MAX_DEPTH:
            raise _error(file, f"nesting deeper than {MAX_DEPTH} levels", (lineno, 1))


class _Builder:
    def __init__(self, file: str | None) -> None:
        self.file = file
        self.smap = SourceMap(file)
        self.count = 0
        self.constructor = yaml.SafeLoader("")  # only its scalar constructors are used

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _error(self.file, f"the YAML expands to more than {MAX_NODES:,} values (an alias bomb?)", _mark(node))
        if depth > MAX_DEPTH:
            raise _error(self.file, f"nesting deeper than {MAX_DEPTH} levels", _mark(node))
        self.smap.values.setdefault(path, _mark(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if isinstance(node, yaml.SequenceNode | yaml.MappingNode) and node.tag not in _PLAIN_TAGS:
            raise _error(
                self.file, f"cannot read this value: the tag '{node.tag}' is not allowed in a spec", _mark(node)
            )
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        raise _error(self.file, "unsupported YAML node", _mark(node))  # pragma: no cover

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise _error(self.file, f"cannot read this value: {_yaml_message(exc)}", _mark(node)) from None

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merges: list[yaml.Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merges.append(value_node)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _error(self.file, "a mapping key must be a plain name", _mark(key_node))
            key = str(self._scalar(key_node))
            if key in out:
                raise _error(self.file, f"duplicate key '{key}'", _mark(key_node))
            self.smap.keys[(*path, key)] = _mark(key_node)
            out[key] = self.build(value_node, (*path, key), depth + 1)
        for merge in merges:  # YAML merge keys (<<: *defaults): explicit keys win
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    raise _error(self.file, "'<<' must merge a mapping", _mark(src))
                for key, value in self._mapping(src, path, depth).items():
                    out.setdefault(key, value)
        return out


def _yaml_message(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return str(problem)


def load_yaml(text: str, file: str | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML document to plain data and its :class:`SourceMap`."""
    _check_depth(text, file)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise _error(file, f"not valid YAML: {_yaml_message(exc)}", pos) from None
    except yaml.YAMLError as exc:
        raise _error(file, f"not valid YAML: {_yaml_message(exc)}") from None
    except RecursionError:
        raise _error(file, f"nesting deeper than {MAX_DEPTH} levels") from None
    if node is None:
        raise _error(file, "the file is empty; a spec needs at least 'name', 'input' and 'layers'")
    builder = _Builder(file)
    return builder.build(node, (), 0), builder.smap
