"""The pieces a report section is made of: headings, text, tables and figures.

A section is a list of blocks rendered in order by the template. Tables hold display text only
(every count and statistic already suppressed by `accord.core.disclosure`), so the HTML table
and its CSV under ``tables/`` show the same values. Figures hold their SVG and PNG bytes; the HTML
embeds the SVG, the PNG is written next to it for manuscripts.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd


@dataclass(frozen=True)
class Heading:
    """A sub-heading with an id; it gets an entry in the table of contents."""

    text: str
    id: str
    kind: str = field(default="heading", init=False)


@dataclass(frozen=True)
class Text:
    """A paragraph; ``style`` is a CSS class ("note" for small print, "missing" for absent
    inputs, "lead" for the summary's sentences)."""

    text: str
    style: str = ""
    kind: str = field(default="text", init=False)


@dataclass(frozen=True)
class Bullets:
    """A list of (label, text) items; an empty label gives a plain item."""

    items: tuple[tuple[str, str], ...]
    style: str = ""
    kind: str = field(default="bullets", init=False)


@dataclass(frozen=True)
class Preformatted:
    """Literal text shown as is (the configuration)."""

    text: str
    kind: str = field(default="pre", init=False)


@dataclass(frozen=True)
class Table:
    """A report table of display text, also written to ``tables/<name>.csv``.

    `spans` optionally groups the columns under a first header row: (label, number of columns)
    pairs covering every column in order (an empty label leaves those columns ungrouped). In the
    CSV a grouped column is named ``"<group>: <column>"``. `text_columns` are left-aligned and
    may wrap; `highlight` holds the indexes of rows shown emphasised (a primary estimate).
    A table with `in_html` False is written as CSV only (a combined supplement of tables the
    report shows one by one). `data` optionally holds the table's values before formatting,
    with withheld values empty, for its tidy CSV (``tidy/<name>.csv``; see `accord.report.tidy`).
    """

    name: str
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""
    spans: tuple[tuple[str, int], ...] = ()
    text_columns: frozenset[int] = frozenset()
    highlight: frozenset[int] = frozenset()
    in_html: bool = True
    data: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    kind: str = field(default="table", init=False)

    def __post_init__(self) -> None:
        width = len(self.columns)
        for row in self.rows:
            if len(row) != width:
                raise ValueError(f"table {self.name}: a row has {len(row)} cells, not {width}")
        if self.spans and sum(n for _, n in self.spans) != width:
            raise ValueError(f"table {self.name}: the header groups do not cover every column")

    @property
    def header_groups(self) -> list[tuple[str, int, int]]:
        """(label, first column, number of columns) per header group."""
        out, start = [], 0
        for label, n in self.spans:
            out.append((label, start, n))
            start += n
        return out

    def grouped(self, column: int) -> bool:
        """True when column `column` sits under a labelled header group."""
        return any(label and start <= column < start + n for label, start, n in self.header_groups)

    def frame(self) -> pd.DataFrame:
        """The table as the CSV holds it: every cell as text, grouped columns prefixed."""
        names = list(self.columns)
        for label, start, n in self.header_groups:
            if label:
                for j in range(start, start + n):
                    names[j] = f"{label}: {names[j]}"
        return pd.DataFrame([list(r) for r in self.rows], columns=names, dtype=object)


@dataclass(frozen=True)
class Plot:
    """A figure: alt text, caption and its SVG and PNG bytes (``figures/<name>.svg|.png``);
    `data`, when given, is what it draws, written to ``figures/<name>.csv``."""

    name: str
    alt: str
    caption: str
    svg: bytes
    png: bytes
    data: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    kind: str = field(default="figure", init=False)

    @property
    def data_uri(self) -> str:
        """The SVG as a data URI for an ``<img>``: embedded, sharp on screen and in print."""
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg).decode("ascii")


Block = Heading | Text | Bullets | Preformatted | Table | Plot


@dataclass
class Section:
    """One numbered section of the report: an id for the contents, a title and its blocks."""

    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block | None) -> None:
        """Append blocks in order; None is skipped (an optional figure that was not drawn)."""
        self.blocks.extend(b for b in blocks if b is not None)

    @property
    def tables(self) -> list[Table]:
        return [b for b in self.blocks if isinstance(b, Table)]

    @property
    def figures(self) -> list[Plot]:
        return [b for b in self.blocks if isinstance(b, Plot)]

    @property
    def subsections(self) -> list[Heading]:
        return [b for b in self.blocks if isinstance(b, Heading)]


def table(
    name: str,
    caption: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    **options,
) -> Table:
    """A `Table` from lists (each cell turned into text)."""
    return Table(
        name=name,
        caption=caption,
        columns=tuple(str(c) for c in columns),
        rows=tuple(tuple(str(c) for c in r) for r in rows),
        **options,
    )
