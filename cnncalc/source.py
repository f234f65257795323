"""YAML text to plain data, remembering where every key and value stands.

Loading is safe: only plain YAML scalars, lists and mappings are built (no
object construction from tags), and the work is bounded so that an alias
bomb, deep nesting or a huge file ends in a clear error instead of a hang.
Only regular files are read, their size checked before reading, and never
more than the limit: a device, a FIFO or a file in /proc cannot make a read
that never ends.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from typing import Any, NamedTuple

import yaml

from . import safe_text
from .errors import Path, Problem, SpecError

#: Larger spec files are refused: VGG-16 is well under 2 kB.
MAX_FILE_BYTES = 1_000_000
#: Values built from the YAML, counting each alias expansion again: 20,000 layers (the most rows a network may
#: have) of five values each. VGG-16 has about 200.
MAX_NODES = 100_000
#: Nesting deeper than this is refused as the YAML is read, before anything can recurse on it.
MAX_DEPTH = 100
#: A number written with more characters is refused before it is converted (Python's int() is quadratic
#: in the digits, and refuses more than 4,300): no size in a spec needs more than ten.
MAX_NUMBER_TEXT = 100

# libyaml's parser is about 20 times faster than PyYAML's; the composing below is ours either way
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
#: The scalar types a spec may hold, by tag, with PyYAML's safe constructor of each.
_SCALARS: dict[str, Any] = {
    tag: yaml.SafeLoader.yaml_constructors[_TAG + tag]
    for tag in ("null", "bool", "int", "float", "str", "binary", "timestamp")
}

Position = tuple[int, int]
_PLAIN_TAGS = ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map")


class SourceMap(NamedTuple):
    """Where each value (and each mapping key) of the data stands in the file."""

    file: str | None
    values: dict[Path, Position]
    keys: dict[Path, Position]

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


def read_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a spec file: a regular file, its size checked before reading, never more than the limit read.

    Opened without blocking (a FIFO would wait for a writer) and checked on the open file (no race with a swap).
    """
    file = os.fspath(path)
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise SpecError(Problem("no such file", file=file)) from None
    except IsADirectoryError:
        raise SpecError(Problem("is a folder, not a spec file", file=file)) from None
    except OSError as exc:
        raise SpecError(Problem(f"cannot read: {exc.strerror}", file=file)) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise SpecError(Problem("is a folder, not a spec file", file=file))
        if not stat.S_ISREG(info.st_mode):
            kind = _file_kind(info.st_mode)
            raise SpecError(Problem(f"not a regular file (it is {kind}); only spec files are read", file=file))
        if info.st_size > MAX_FILE_BYTES:
            raise _error(file, f"file is {info.st_size:,} bytes; specs over {MAX_FILE_BYTES:,} bytes are refused")
        # a file in /proc says 0 bytes and has more: read one byte past the limit, never further
        chunks, size = [], 0
        while size <= MAX_FILE_BYTES:
            chunk = os.read(fd, MAX_FILE_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SpecError(Problem(f"cannot read: {exc.strerror}", file=file)) from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    kinds = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a FIFO"}
    kinds |= {stat.S_ISSOCK: "a socket"}
    return next((what for test, what in kinds.items() if test(mode)), "not a plain file")


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


class _Composer:
    """YAML events to nodes, without recursion: the depth is counted as the events come, and the parse
    stops at the first level too deep (PyYAML's composer recurses, once per level)."""

    def __init__(self, file: str | None, loader: yaml.SafeLoader) -> None:
        self.file = file
        self.resolve: Any = loader.resolve  # the implicit tags: 12 is an int, 2024-01-01 a date
        self.anchors: dict[str, yaml.Node] = {}
        self.count = 0

    # events are typed Any: libyaml's and PyYAML's differ in their marks' classes, not in what is read here
    def compose(self, events: Iterable[Any]) -> yaml.Node | None:
        root: yaml.Node | None = None
        stack: list[list[Any]] = []  # [collection node, its pending mapping key]
        documents = 0
        for event in events:
            # the commonest events first: this loop sees every value of the file
            if isinstance(event, yaml.ScalarEvent):
                node = self._node(event)
                self._anchor(event, node)
            elif isinstance(event, yaml.CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise _error(self.file, f"nesting deeper than {MAX_DEPTH} levels", _event_mark(event))
                node = self._node(event)
                self._anchor(event, node)
                root = self._add(stack, node) or root
                stack.append([node, None])
                continue
            elif isinstance(event, yaml.CollectionEndEvent):
                stack.pop()[0].end_mark = event.end_mark
                continue
            elif isinstance(event, yaml.AliasEvent):
                if event.anchor not in self.anchors:
                    raise _error(
                        self.file, f"found undefined alias '*{safe_text.text(str(event.anchor))}'", _event_mark(event)
                    )
                node = self.anchors[event.anchor]
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _error(self.file, "expected a single document, but found another one", _event_mark(event))
                continue
            else:  # the stream's start and end, a document's end
                continue
            root = self._add(stack, node) or root
        return root

    def _node(self, event: Any) -> yaml.Node:
        tag = event.tag
        start: Any = event.start_mark  # libyaml's mark class, or PyYAML's
        if isinstance(event, yaml.ScalarEvent):
            if tag is None or tag == "!":
                tag = self.resolve(yaml.ScalarNode, event.value, event.implicit)
            end: Any = event.end_mark
            return yaml.ScalarNode(tag, event.value, start, end, style=event.style)
        kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
        if tag is None or tag == "!":
            tag = self.resolve(kind, None, event.implicit)
        return kind(tag, [], start, None, flow_style=event.flow_style)

    def _anchor(self, event: Any, node: yaml.Node) -> None:
        anchor = event.anchor
        if anchor is not None:
            if anchor in self.anchors:
                raise _error(self.file, f"found duplicate anchor '&{safe_text.text(anchor)}'", _event_mark(event))
            self.anchors[anchor] = node

    def _add(self, stack: list[list[Any]], node: yaml.Node) -> yaml.Node | None:
        """Put ``node`` into the collection being built, counting values (not keys); the root when there is none."""
        if not stack:
            return node
        frame = stack[-1]
        parent = frame[0]
        if isinstance(parent, yaml.MappingNode) and frame[1] is None:
            frame[1] = node
            return None
        self.count += 1  # the builder counts again, with aliases expanded; this stops a large file early
        if self.count > MAX_NODES:
            raise _error(self.file, f"the YAML holds more than {MAX_NODES:,} values", _mark(node))
        if isinstance(parent, yaml.SequenceNode):
            parent.value.append(node)
        else:
            parent.value.append((frame[1], node))
            frame[1] = None
        return None


def _event_mark(event: Any) -> Position:
    return event.start_mark.line + 1, event.start_mark.column + 1


class _Builder:
    def __init__(self, file: str | None) -> None:
        self.file = file
        self.smap = SourceMap(file, {}, {})
        self.count = 0
        self.open: set[int] = set()  # the collections being built: an alias to one of them is a cycle
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
                self.file,
                f"cannot read this value: the tag '{safe_text.text(node.tag)}' is not allowed in a spec",
                _mark(node),
            )
        if id(node) in self.open:
            raise _error(self.file, "an alias refers to a value that contains it (a recursive alias)", _mark(node))
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
        finally:
            self.open.discard(id(node))
        raise _error(self.file, "unsupported YAML node", _mark(node))  # pragma: no cover

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag.removeprefix(_TAG)
        if tag in ("int", "float") and len(node.value) > MAX_NUMBER_TEXT:
            raise _error(
                self.file,
                f"cannot read this value: a number written with {len(node.value):,} characters"
                f" (at most {MAX_NUMBER_TEXT} are read)",
                _mark(node),
            )
        construct = _SCALARS.get(tag) if node.tag.startswith(_TAG) else None
        if construct is None:
            raise _error(
                self.file,
                f"cannot read this value: the tag '{safe_text.text(node.tag)}' is not allowed in a spec",
                _mark(node),
            )
        try:
            # the constructor's own function, not construct_object: that one keeps every node it built
            return construct(self.constructor, node)
        except yaml.YAMLError as exc:
            message = _yaml_message(exc)
        except (ValueError, TypeError, OverflowError, KeyError, AttributeError, IndexError) as exc:
            # a tag PyYAML cannot construct from this text: !!int abc, or a date that is none (2024-13-45)
            shown = safe_text.text(node.value, 60)
            if tag == "timestamp" and isinstance(exc, ValueError):
                message = (
                    f"'{shown}' reads as a date but is not one ({safe_text.text(str(exc))}); quote it to mean text"
                )
            else:
                message = f"'{shown}' is not a valid !!{safe_text.text(tag, 60)}"
        raise _error(self.file, f"cannot read this value: {message}", _mark(node)) from None

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
                raise _error(self.file, f"duplicate key '{safe_text.text(key)}'", _mark(key_node))
            self.smap.keys.setdefault((*path, key), _mark(key_node))
            out[key] = self.build(value_node, (*path, key), depth + 1)
        for merge in merges:  # YAML merge keys (<<: *defaults): explicit keys win
            sources = merge.value if isinstance(merge, yaml.SequenceNode) else [merge]
            for src in sources:
                if not isinstance(src, yaml.MappingNode):
                    raise _error(self.file, "'<<' must merge a mapping", _mark(src))
                if id(src) in self.open:
                    raise _error(self.file, "'<<' merges a mapping into itself (a recursive alias)", _mark(src))
                self.count += 1  # a merge re-reads its mapping: count it, and its depth, like any value
                if depth + 1 > MAX_DEPTH or self.count > MAX_NODES:
                    raise _error(self.file, "'<<' merges nest too deep or too often", _mark(src))
                self.open.add(id(src))
                try:
                    merged = self._mapping(src, path, depth + 1)
                finally:
                    self.open.discard(id(src))
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out


def _yaml_message(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or ["?"])[0]
    return safe_text.text(str(problem))


def _compose(text: str, file: str | None, loader: type[yaml.SafeLoader]) -> yaml.Node | None:
    parser = loader(text)
    try:
        return _Composer(file, parser).compose(iter(parser.get_event, None))
    finally:
        parser.dispose()


def load_yaml(text: str, file: str | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML document to plain data and its :class:`SourceMap`."""
    try:
        try:
            node = _compose(text, file, _FAST_LOADER)
        except yaml.YAMLError:
            if _FAST_LOADER is yaml.SafeLoader:
                raise
            # PyYAML's parser says what it expected and what it found: read it again for its message
            node = _compose(text, file, yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise _error(file, f"not valid YAML: {_yaml_message(exc)}", pos) from None
    except yaml.YAMLError as exc:
        raise _error(file, f"not valid YAML: {_yaml_message(exc)}") from None
    if node is None:
        raise _error(file, "the file is empty; a spec needs at least 'name', 'input' and 'layers'")
    builder = _Builder(file)
    return builder.build(node, (), 0), builder.smap
