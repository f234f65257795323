"""Plain text for the terminal: tables, aligned columns and wrapped lines, in time linear in their size.

rich measured and rendered a whole table several times to fit it to the terminal (seconds for
20,000 rows), and cut the cells that did not fit ("bottleneck x…"). Here each column's width is
computed once from its cells; a text column wraps at word boundaries (spaces, and after a ``-``
or ``_`` inside a word), never inside a word; a table too wide even so says so (:meth:`Table.fits`)
so that its caller can shorten its numbers, and otherwise overflows rather than cut; no line ends in
spaces. rich only colours the finished lines, on a terminal that has colours.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rich.cells import cell_len
from rich.console import COLOR_SYSTEMS, Console
from rich.style import Style

#: Where a text may wrap: after spaces, and after a hyphen or underscore between two words of two or more
#: letters ("multiply-" / "accumulates", "global_" / "avgpool2d"; not "A-" / "LRN"); never between a number
#: and its unit ("164.37 kB", "(0.19 MiB)", "8.83 MMAC").
WORDS = re.compile(
    r"\s*(?:\S*?[A-Za-z0-9]{2}[-_](?=[A-Za-z]{2})|\S*\d (?:[kMGTP]?i?B|[kMGT]?MAC|[kMGT]?FLOP)\b\S*|\S+)\s*"
)
#: A row's name, as a last resort: after a hyphen or underscore between two words ("scale_" / "activation").
NAMES = re.compile(r"\s*(?:\S*?[A-Za-z0-9][-_](?=[A-Za-z]{2})|\S+)\s*")
#: A receptive field ("1311x1247/32") may wrap after its height and before its stride.
FIELDS = re.compile(r"\s*(?:[^/x\s]+x(?=\d)|[^/\s]+(?=/)|\S+)\s*")
#: Dotted names may also wrap after each dot ("layer4.2." / "downsample.0").
DOTTED = re.compile(r"\s*(?:\S*?[-_.](?=[A-Za-z0-9])|\S+)\s*")

#: Text and its rich style ("bold", "green"; None: the row's).
Styled = tuple[str, str | None]
#: A cell: text, styled text, or paragraphs each with its style; ``\n`` starts a paragraph.
Cell = str | Styled | list[Styled]
#: A finished line: plain text, or segments of text and style.
Line = str | list[Styled]


def width_of(text: str) -> int:
    return len(text) if text.isascii() else cell_len(text)


def chunks(text: str, breaks: re.Pattern[str]) -> list[str]:
    """``text`` cut where it may wrap, each piece with the spaces that follow it."""
    return breaks.findall(text) or [text]


def wrap(text: str, width: int, breaks: re.Pattern[str] | None = WORDS) -> list[str]:
    """Greedy wrapping at ``breaks`` (as rich wraps words); a piece wider than ``width`` overflows, uncut.

    >>> wrap("conv2d 7x7 s2 p3 nobias", 10)
    ['conv2d 7x7', 's2 p3', 'nobias']
    >>> wrap("2 FLOPs per multiply-accumulate", 12)
    ['2 FLOPs per', 'multiply-', 'accumulate']
    >>> wrap("or 164.37 kB (Adam)", 10)
    ['or', '164.37 kB', '(Adam)']
    """
    if breaks is None or width_of(text) <= width:
        return [text]
    lines: list[str] = []
    line, used = "", 0
    for piece in chunks(text, breaks):
        size = width_of(piece.rstrip())
        if line and used + size > width:
            lines.append(line.rstrip())
            line, used = "", 0
        line += piece
        used += width_of(piece)
    lines.append(line.rstrip())
    return lines


@dataclass(frozen=True)
class Column:
    """A column: its header, alignment, where its cells may wrap (``None``: never), footer and widest."""

    header: str
    right: bool = False
    breaks: re.Pattern[str] | None = None
    footer: str = ""
    max_width: int | None = None
    #: wrapped only when no other column can narrow any more, each line under the first's indentation
    last: bool = False


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def hang(text: str, width: int, breaks: re.Pattern[str] | None) -> list[str]:
    """:func:`wrap`, continuation lines indented as the first (a nested row's name).

    >>> hang("    scale_activation", 14, NAMES)
    ['    scale_', '    activation']
    """
    if breaks is None or width_of(text) <= width:
        return [text]
    n = _indent(text)
    return [" " * n + line for line in wrap(text[n:], width - n, breaks)]


def _paragraphs(cell: Cell, style: str | None = None) -> list[Styled]:
    parts = [(cell, None)] if isinstance(cell, str) else [cell] if isinstance(cell, tuple) else cell
    return [(p, s or style) for text, s in parts for p in text.split("\n")]


class Table:
    """Rows of cells under a title and a header with a rule, optionally a footer; or, without ``box``, a grid.

    A row with fewer cells than columns ends in a cell that spans the remaining columns (a block's
    header, say), wrapped to their joint width.
    """

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        title: str = "",
        box: bool = True,
        sep: int = 3,
        footer: bool = False,
        lines_between: bool = False,
    ) -> None:
        self.columns = list(columns)
        self.title = title
        self.box = box
        self.sep = sep
        self.edge = 1 if box else 0
        self.footer = footer
        self.lines_between = lines_between
        self.rows: list[tuple[Sequence[Cell], str | None]] = []
        self._layouts: dict[int, tuple[list[int], bool]] = {}

    def add_row(self, *cells: Cell, style: str | None = None) -> None:
        self.rows.append((cells, style))
        self._layouts.clear()

    # -- widths

    def _texts(self) -> list[set[str]]:
        """Each column's distinct texts (not those of a cell that spans on from it), in one pass over the rows."""
        n = len(self.columns)
        out: list[set[str]] = [set() for _ in self.columns]
        for cells, _ in self.rows:
            for i, cell in enumerate(cells if len(cells) == n else cells[:-1]):
                if isinstance(cell, str) and "\n" not in cell:
                    out[i].add(cell)
                else:
                    out[i].update(text for text, _ in _paragraphs(cell))
        return out

    def _bounds(self) -> tuple[list[int], list[int]]:
        """Each column's natural width (its widest cell, at most ``max_width``) and its narrowest (its widest word)."""
        natural, floor = [], []
        for c, cells in zip(self.columns, self._texts(), strict=True):
            texts = [*cells, c.header, *([c.footer] if self.footer else [])]
            widest = max(map(width_of, texts))
            if c.breaks is None:
                natural.append(widest)
                floor.append(widest)
                continue
            if c.last:
                least = max(
                    _indent(t) + max(width_of(p.rstrip()) for p in chunks(t.lstrip(" "), c.breaks)) for t in texts
                )
            else:
                least = max(width_of(p.rstrip()) for t in texts for p in chunks(t, c.breaks))
            natural.append(max(least, widest if c.max_width is None else min(widest, c.max_width)))
            floor.append(least)
        return natural, floor

    def _total(self, widths: Sequence[int]) -> int:
        return 2 * self.edge + sum(widths) + self.sep * (len(widths) - 1)

    def layout(self, width: int) -> tuple[list[int], bool]:
        """Column widths within ``width``, narrowing the widest text column first; and whether they fit."""
        if width not in self._layouts:
            self._layouts[width] = self._layout(width)
        return self._layouts[width]

    def _layout(self, width: int) -> tuple[list[int], bool]:
        widths, floor = self._bounds()
        for _ in range(self._total(widths) - width):
            shrinkable = [i for i, w in enumerate(widths) if w > floor[i]]
            first = [i for i in shrinkable if not self.columns[i].last]
            if not shrinkable:
                return widths, False
            shrinkable = first or shrinkable
            widths[max(shrinkable, key=lambda i: widths[i])] -= 1
        return widths, True

    def fits(self, width: int) -> bool:
        return self.layout(width)[1]

    # -- lines

    def _row(self, cells: Sequence[Cell], style: str | None, widths: Sequence[int], heads: bool = False) -> list[Line]:
        n, sep, margin = len(self.columns), " " * self.sep, " " * self.edge
        if style is None and len(cells) == n and all(isinstance(c, str) for c in cells):
            texts: list[str] = cells  # type: ignore[assignment]
            joined = "".join(texts)
            if joined.isascii() and "\n" not in joined:  # the common case: one line, each cell within its width
                parts = [
                    t.rjust(w) if c.right else t.ljust(w) for t, w, c in zip(texts, widths, self.columns, strict=True)
                ]
                if sum(map(len, parts)) == sum(widths):  # no cell was wider than its column
                    return [margin + sep.join(parts)]
        blocks: list[tuple[list[Styled], int, bool]] = []
        for i, cell in enumerate(cells):
            column = self.columns[i]
            breaks: re.Pattern[str] | None = column.breaks
            if i == len(cells) - 1 and len(cells) < n:  # spans the remaining columns
                w, right, breaks = sum(widths[i:]) + self.sep * (n - 1 - i), False, WORDS
            else:
                w, right = widths[i], column.right
            fold = hang if column.last and not (i == len(cells) - 1 and len(cells) < n) else wrap
            cell_lines = [(line, st) for text, st in _paragraphs(cell, style) for line in fold(text, w, breaks)]
            blocks.append((cell_lines, w, right))
        height = max(len(b[0]) for b in blocks)
        if heads:  # a header that wraps grows upwards, as rich's do
            blocks = [([("", None)] * (height - len(b[0])) + b[0], b[1], b[2]) for b in blocks]
        lines: list[Line] = []
        for k in range(height):
            segments: list[Styled] = [(margin, None)]
            for j, (cell_lines, w, right) in enumerate(blocks):
                text, cell_style = cell_lines[k] if k < len(cell_lines) else ("", None)
                gap = max(0, w - width_of(text))
                segments += [(sep if j else "", None), (" " * gap if right else "", None), (text, cell_style)]
                segments.append(("" if right else " " * gap, None))
            lines.append(segments)
        return lines

    def lines(self, width: int) -> list[Line]:
        """The table, laid out within ``width`` if it can be (else as narrow as it goes, uncut)."""
        widths, _ = self.layout(width)
        total = self._total(widths)
        out: list[Line] = []
        if self.title:  # wrapped to the terminal, not to the table: a narrow table needs no narrow title
            out += [[(t, "italic")] for t in wrap(self.title, width)]
        if self.box:
            out.append("")
            out += self._row([c.header for c in self.columns], "bold", widths, heads=True)
            out.append(" " * self.edge + "─" * (total - 2 * self.edge))
        for k, (cells, style) in enumerate(self.rows):
            if k and self.lines_between:
                out.append("")
            out += self._row(cells, style, widths)
        if self.footer:
            out.append("")
            out += self._row([c.footer for c in self.columns], "bold", widths)
        if self.box:
            out.append("")
        return out


@lru_cache(maxsize=64)
def _style(name: str, no_color: bool) -> Style:
    style = Style.parse(name)
    return style.without_color if no_color else style


class Page:
    """Lines for one console, written at once: wrapped to its width, styled where it has colours."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.width = console.width
        self.out: list[Line] = []

    def text(self, text: str, style: str | None = None) -> None:
        """A paragraph, wrapped to the width (continuation lines start at the margin, as rich's do)."""
        self.out += [[(line, style)] for line in wrap(text, self.width)]

    def line(self, text: str, style: str | None = None) -> None:
        """One line as it is, however long (the terminal wraps it)."""
        self.out.append([(text, style)])

    def blank(self) -> None:
        self.out.append("")

    def table(self, table: Table) -> None:
        self.out += table.lines(self.width)

    def write(self) -> None:
        console = self.console
        system = COLOR_SYSTEMS.get(console.color_system or "")
        legacy = console.legacy_windows
        rendered = []
        for line in self.out:
            if isinstance(line, str):
                rendered.append(line.rstrip(" "))
                continue
            text = "".join(t for t, _ in line).rstrip(" ")
            if system is None or all(s is None for _, s in line):
                rendered.append(text)
                continue
            keep, parts = len(text), []
            for t, s in line:  # the trailing spaces go from the end, styled or not
                t = t[:keep]
                keep -= len(t)
                parts.append(
                    _style(s, console.no_color).render(t, color_system=system, legacy_windows=legacy) if s else t
                )
            rendered.append("".join(parts))
        self.out = []
        if rendered:
            console.file.write("\n".join(rendered) + "\n")
            console.file.flush()
