"""Reading a rendered study report the way a reader sees it: its tables, figures and text.

The checks here know the report's published layout (reports/<study>/report.html, tables/*.csv,
figures/*.svg and *.png) and the disclosure rules of privacy.md, section 2, but not how the
report is produced, so they hold whatever the renderer does inside. Tables are parsed with the
standard library's HTML parser: headers are flattened to one path per column (a cell spanning
two columns names both), and every cell is its visible text with whitespace collapsed.
"""

from __future__ import annotations

import ast
import html as html_lib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

COMPLEMENTARY = "*"
NOT_AVAILABLE = "–"
# Row labels and column headers that mark the total of the other rows or columns.
TOTAL_LABELS = {"total", "all clients", "all", "overall"}
# Columns whose whole numbers are positions or codes, not counts of people or rows.
INDEX_HEADERS = re.compile(
    r"^(session|session number|wave|first wave|week|year|intake year|df|items?|k|order)$"
)
# Structural and data-quality counts (docs/disclosure.md): shown whole, never suppressed.
STRUCTURAL_HEADERS = re.compile(
    r"^(therapists|sites|instruments|received|validated|quarantined|rows|"
    r"missing codes replaced|cells emptied|duplicates)$"
)
# Columns of model bookkeeping: a whole number there counts messages, not people.
BOOKKEEPING_HEADERS = re.compile(r"^(warnings?|converged|boundary|iterations?)$")
# Columns of statistics: a whole number there (a rounded SD, say) is not a count.
STATISTIC_HEADERS = re.compile(
    r"\b(b|se|sd|mean|median|variance|estimate|ci|p|p value|alpha|omega|r|icc|"
    r"α.*|ω|sha-256|sha256|version)\b"
)
_WHOLE = re.compile(r"^\d+$")
_COUNT_WITH_PERCENT = re.compile(r"^(\d+) \(\s*[\d.]+\s*%\s*\)$")
_THRESHOLD_BEFORE = re.compile(
    r"\b(fewer than|less than|more than|at least|at most|from \d+ to)\s*$"
)
# "12.3 (4.5)" or "85% (14%)": a mean with its SD, or a mean rate.
_MEAN_SD = re.compile(r"^[−-]?\d+(\.\d+)?%? \([\d.]+%?\)$")
_N_EQUALS = re.compile(r"\bn\s*=\s*(\d+)\b")
# Prose such as "150 clients" or "Clients: 150" (therapists and sites are structural counts).
_COUNT_IN_PROSE = re.compile(
    r"(?<![\d.,])(\d+)(?: of (\d+))? (clients?|assessments|dropouts?)\b"
    r"|\b([Cc]lients): (\d+)\b"
)


def suppressed_label(min_cell: int) -> str:
    """The text a reader sees in place of a small count, e.g. ``"<11"``."""
    return f"<{min_cell}"


def is_hidden(cell: str, min_cell: int) -> bool:
    """True for a cell withheld by primary or complementary suppression."""
    return cell in (suppressed_label(min_cell), COMPLEMENTARY)


@dataclass
class Table:
    """One table as a reader sees it: where it is, its caption, column paths and body rows."""

    source: str
    caption: str
    columns: list[tuple[str, ...]]
    rows: list[list[str]]
    section: str = ""

    def header(self, j: int) -> str:
        """The innermost header of column `j`, normalised (lower case, spaces for '_')."""
        if j >= len(self.columns) or not self.columns[j]:
            return ""
        return _normalise(self.columns[j][-1])

    def name(self) -> str:
        """How a failure message names the table (file or caption, never a cell value)."""
        where = f"{self.source}#{self.section}" if self.section else self.source
        return f"{where} table {self.caption!r}" if self.caption else f"{where} table"


def _normalise(text: str) -> str:
    return " ".join(str(text).replace("_", " ").split()).lower()


class _TableParser(HTMLParser):
    """Collects every <table> with its caption, header grid (spans expanded) and body rows."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.tables: list[Table] = []
        self._sections: list[str] = []
        self._open: list[dict] = []
        self._cell: dict | None = None
        self._caption: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section":
            self._sections.append(a.get("id") or "")
        if tag == "table":
            self._open.append({"caption": "", "head": [], "body": [], "row": None})
        elif not self._open:
            return
        elif tag == "caption":
            self._caption = []
        elif tag == "tr":
            self._open[-1]["row"] = []
        elif tag in ("td", "th"):
            self._cell = {
                "kind": tag,
                "text": [],
                "colspan": int(a.get("colspan") or 1),
                "rowspan": int(a.get("rowspan") or 1),
            }
        elif tag == "br" and self._cell is not None:
            self._cell["text"].append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self._sections:
            self._sections.pop()
        if not self._open:
            return
        table = self._open[-1]
        if tag == "caption" and self._caption is not None:
            table["caption"] = " ".join("".join(self._caption).split())
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None and table["row"] is not None:
            self._cell["text"] = " ".join("".join(self._cell["text"]).split())
            table["row"].append(self._cell)
            self._cell = None
        elif tag == "tr" and table["row"] is not None:
            row = table.pop("row")
            table["row"] = None
            if row and all(c["kind"] == "th" for c in row) and not table["body"]:
                table["head"].append(row)
            elif row:
                table["body"].append(row)
        elif tag == "table":
            self._open.pop()
            self.tables.append(self._finish(table))

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell["text"].append(data)
        elif self._caption is not None:
            self._caption.append(data)

    def _finish(self, table: dict) -> Table:
        grid = _expand(table["head"])
        width = max([len(r) for r in grid] + [sum(c["colspan"] for c in r) for r in table["body"]])
        columns = []
        for j in range(width):
            path: list[str] = []
            for row in grid:
                text = row[j] if j < len(row) else ""
                if text and (not path or path[-1] != text):
                    path.append(text)
            columns.append(tuple(path))
        rows = [[t for c in r for t in [c["text"]] * c["colspan"]] for r in table["body"]]
        section = next((s for s in reversed(self._sections) if s), "")
        return Table(self.source, table["caption"], columns, rows, section)


def _expand(rows: list[list[dict]]) -> list[list[str]]:
    """Header rows as a rectangular grid of texts, row and column spans filled in."""
    grid: list[list[str]] = []
    pending: dict[tuple[int, int], str] = {}
    for i, row in enumerate(rows):
        out: list[str] = []
        cells = iter(row)
        j = 0
        while True:
            if (i, j) in pending:
                out.append(pending.pop((i, j)))
                j += 1
                continue
            cell = next(cells, None)
            if cell is None:
                break
            for dj in range(cell["colspan"]):
                out.append(cell["text"])
                for di in range(1, cell["rowspan"]):
                    pending[(i + di, j + dj)] = cell["text"]
            j += cell["colspan"]
        while (i, j) in pending:
            out.append(pending.pop((i, j)))
            j += 1
        grid.append(out)
    return grid


def html_tables(html: str, source: str = "report.html") -> list[Table]:
    """Every table of a report page, in document order."""
    parser = _TableParser(source)
    parser.feed(html)
    parser.close()
    return parser.tables


def csv_table(path: Path) -> Table:
    """A table CSV of the report as text, exactly as written (no type conversion)."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    # A two-level header is flattened to "outer: inner" in the CSV.
    columns = [tuple(str(c).split(": ")) for c in frame.columns]
    rows = [[str(v).strip() for v in r] for r in frame.itertuples(index=False)]
    return Table(f"tables/{path.name}", "", columns, rows)


def visible_text(html: str, *, prose_only: bool = False) -> str:
    """The page's text outside <style>, <script> and tags, whitespace collapsed; with
    `prose_only`, also without tables and preformatted blocks (the config listing)."""
    dropped = "style|script|table|pre" if prose_only else "style|script"
    html = re.sub(rf"<({dropped})\b.*?</\1>", " ", html, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", html)
    text = html_lib.unescape(text).replace("\xa0", " ")
    return " ".join(text.split())


# -- counts --------------------------------------------------------------------------------


def count_cells(table: Table) -> Iterator[tuple[int, int, int]]:
    """(row, column, count) for every cell that shows a count of clients, rows or forms.

    A count is a whole number in a column that is not an index (session, wave, ...) or a
    statistic (b, SD, ...), a count with its percentage ("12 (8.0%)"), or an "n = 12". The
    first column holds row labels and is skipped.
    """
    for i, row in enumerate(table.rows):
        for j, cell in enumerate(row):
            if j == 0:
                continue
            header = table.header(j)
            if _WHOLE.match(cell):
                if (
                    INDEX_HEADERS.match(header)
                    or BOOKKEEPING_HEADERS.match(header)
                    or STRUCTURAL_HEADERS.match(header)
                    or STATISTIC_HEADERS.search(header)
                ):
                    continue
                yield i, j, int(cell)
                continue
            match = _COUNT_WITH_PERCENT.match(cell)
            if match:
                yield i, j, int(match.group(1))
                continue
            for n in _N_EQUALS.findall(cell):
                yield i, j, int(n)


def small_counts(table: Table, min_cell: int) -> list[str]:
    """Where a count from 1 to ``min_cell - 1`` is shown (cell positions, not the values)."""
    return [
        f"{table.name()}: row {i + 1}, column {'/'.join(table.columns[j]) or j + 1}"
        for i, j, n in count_cells(table)
        if 0 < n < min_cell
    ]


def small_counts_in_prose(text: str, min_cell: int) -> list[str]:
    """Phrases of running text that state a count from 1 to ``min_cell - 1`` of people, such
    as "5 therapists" (a threshold, "fewer than 5 clients", is not a count)."""
    found = []
    for match in _COUNT_IN_PROSE.finditer(text):
        counts = [int(g) for g in (match.group(1), match.group(2), match.group(5)) if g]
        # "fewer than 5 clients" states a threshold, not how many there are.
        if _THRESHOLD_BEFORE.search(text[: match.start()]):
            continue
        if any(0 < n < min_cell for n in counts):
            found.append(match.group(0))
    return found


# -- complementary suppression -------------------------------------------------------------


def _is_total_label(text: str) -> bool:
    return _normalise(text) in TOTAL_LABELS


def additive_lines(table: Table) -> list[tuple[list[tuple[int, int]], tuple[int, int]]]:
    """The table's lines that a reader can add up: (cells, total cell) pairs.

    A row labelled Total or All clients totals each column over the other rows. A column
    headed Total totals the row's other columns; a column whose outer header is Total or All
    clients (with inner headers such as n) totals the columns with the same inner header.
    """
    lines = []
    total_rows = [i for i, r in enumerate(table.rows) if r and _is_total_label(r[0])]
    width = len(table.columns)
    for r in total_rows:
        others = [i for i in range(len(table.rows)) if i not in total_rows]
        for j in range(1, width):
            cells = [(i, j) for i in others if j < len(table.rows[i])]
            if cells and j < len(table.rows[r]):
                lines.append((cells, (r, j)))
    for t, path in enumerate(table.columns):
        if t == 0 or not path or not _is_total_label(path[0]):
            continue
        if len(path) == 1:
            # The columns before a Total column add up to it (those after it, such as a
            # missing-values count or an SMD, do not).
            members = [
                j
                for j in range(1, t)
                if table.columns[j] and not _is_total_label(table.columns[j][0])
            ]
        else:
            members = [
                j
                for j, other in enumerate(table.columns)
                if j != t
                and len(other) == len(path)
                and other[1:] == path[1:]
                and not _is_total_label(other[0])
            ]
        if not members:
            continue
        for i, row in enumerate(table.rows):
            if t < len(row):
                lines.append(([(i, j) for j in members if j < len(row)], (i, t)))
    return lines


def _is_count_text(cell: str) -> bool:
    return bool(_WHOLE.match(cell) or _COUNT_WITH_PERCENT.match(cell))


def recoverable_cells(table: Table, min_cell: int) -> list[str]:
    """Lines of counts with exactly one withheld value among their cells and total.

    Such a value is the total minus the shown cells (or the sum of the cells), so complementary
    suppression should have withheld a second one. Only lines whose shown cells are all counts
    are read; lines of statistics are `overall_statistics_shown`'s business.
    """
    problems = []
    for cells, total in additive_lines(table):
        members = [*cells, total]
        texts = [table.rows[i][j] for i, j in members]
        if not all(_is_count_text(t) or is_hidden(t, min_cell) or t in ("", "–") for t in texts):
            continue
        hidden = [c for c in members if is_hidden(table.rows[c[0]][c[1]], min_cell)]
        if len(hidden) == 1:
            i, j = hidden[0]
            label = table.rows[i][0]
            problems.append(
                f"{table.name()}: the withheld cell in row {label!r}, column "
                f"{'/'.join(table.columns[j])!r} follows from its total and the shown cells"
            )
    return problems


def overall_statistics_shown(table: Table, min_cell: int) -> list[str]:
    """Means shown for all clients where exactly one group's mean is withheld.

    With the other groups' means and sizes, the overall mean gives the withheld one away (up to
    rounding), so the overall mean is withheld too. Medians and other order statistics do not
    add up and are not read.
    """
    problems = []
    for cells, total in additive_lines(table):
        texts = [table.rows[i][j] for i, j in [*cells, total]]
        shown = [t for t in texts if not is_hidden(t, min_cell) and t not in ("", "–")]
        means = [_MEAN_SD.match(t) and not _COUNT_WITH_PERCENT.match(t) for t in shown]
        if not shown or not all(means):
            continue
        hidden = [c for c in cells if is_hidden(table.rows[c[0]][c[1]], min_cell)]
        if len(hidden) == 1 and not is_hidden(table.rows[total[0]][total[1]], min_cell):
            i, j = hidden[0]
            problems.append(
                f"{table.name()}: row {table.rows[i][0]!r}, column "
                f"{'/'.join(table.columns[j])!r} is withheld but the overall mean is shown"
            )
    return problems


_PERCENT_OF = re.compile(r"^(\d+) \(\s*(\d+(?:\.(\d+))?)\s*%\s*\)$")
_SIZE_LABELS = {"clients, n", "clients", "n", "clients (n)", "n clients", "total"}


def _denominator(cell: str, upper: int) -> int | None:
    """The one whole denominator from 1 to `upper` that gives "k (p%)" when rounded, if any."""
    match = _PERCENT_OF.match(cell)
    if not match or int(match.group(1)) == 0:
        return None
    k, p = int(match.group(1)), float(match.group(2))
    digits = len(match.group(3) or "")
    fits = [n for n in range(k, upper + 1) if round(100 * k / n, digits) == p]
    return fits[0] if len(fits) == 1 else None


def revealed_sizes(table: Table, min_cell: int, upper: int = 100_000) -> list[str]:
    """Groups whose size the table withholds but whose "k (p%)" cells give it away as k / p.

    Reads a row of group sizes (labelled "Clients, n", "n", ...) with the groups as columns,
    and a size column (headed "Total", "n", ...) with the groups as rows.
    """
    problems = []
    size_rows = [
        r for r, row in enumerate(table.rows) if row and _normalise(row[0]) in _SIZE_LABELS
    ]
    for r in size_rows:
        row = table.rows[r]
        for j in range(1, len(row)):
            if not is_hidden(row[j], min_cell):
                continue
            for i, other in enumerate(table.rows):
                if i != r and j < len(other) and _denominator(other[j], upper):
                    problems.append(
                        f"{table.name()}: the withheld size of {'/'.join(table.columns[j])!r} "
                        f"follows from the percentage in row {other[0]!r}"
                    )
                    break
    # With the groups as columns, a row's percentages are of the column, not of the row.
    for j in range(1, len(table.columns)) if not size_rows else ():
        if table.header(j) not in _SIZE_LABELS:
            continue
        for row in table.rows:
            hidden = j < len(row) and is_hidden(row[j], min_cell)
            if hidden and any(_denominator(c, upper) for c in row[1:j] + row[j + 1 :]):
                problems.append(
                    f"{table.name()}: the withheld size of row {row[0]!r} follows from "
                    "a percentage in that row"
                )
    return problems


def group_sizes_shown(table: Table, groups: set[str], min_cell: int) -> dict[str, int]:
    """The group sizes a reader can read off the table: a row of sizes with the groups as
    columns ("Clients, n"), a size column with the groups as rows in the sample section, or
    the number at risk at time 0 of a survival table (its first column headed 0).

    Elsewhere a "Clients" column counts the clients with a value, which need not be the
    group's size, so it is not read."""
    sizes: dict[str, int] = {}
    columns = [table.columns[j][-1] if table.columns[j] else "" for j in range(len(table.columns))]
    for row in table.rows:
        if row and _normalise(row[0]) in _SIZE_LABELS:
            for j, cell in enumerate(row):
                if columns[j] in groups and _WHOLE.match(cell):
                    sizes[columns[j]] = int(cell)
    size_columns = [
        j
        for j in range(1, len(columns))
        if table.header(j) in _SIZE_LABELS and table.section == "sample"
    ]
    at_risk = len(columns) > 2 and columns[1] == "0" and all(_WHOLE.match(c) for c in columns[1:])
    if at_risk:
        size_columns = [1]
    for row in table.rows:
        if row and row[0] in groups:
            for j in size_columns:
                if j < len(row) and _WHOLE.match(row[j]):
                    sizes[row[0]] = int(row[j])
    return sizes


# -- figures and files ---------------------------------------------------------------------


def png_problems(path: Path, expected_size: tuple[int, int] | None = None) -> list[str]:
    """What is wrong with a figure's PNG: unreadable, wrong size, or a single flat colour."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            size = image.size
            pixels = np.asarray(image.convert("RGB"))
    except Exception as error:
        return [f"{path.name}: not a readable PNG ({type(error).__name__})"]
    problems = []
    if expected_size is not None and size != tuple(expected_size):
        problems.append(f"{path.name}: {size[0]}x{size[1]} px, expected {expected_size}")
    if expected_size is None and (size[0] <= 300 or size[1] <= 300):
        problems.append(f"{path.name}: {size[0]}x{size[1]} px, expected more than 300x300")
    if not (pixels != pixels[0, 0]).any():
        problems.append(f"{path.name}: a single flat colour")
    return problems


def svg_problems(path: Path) -> list[str]:
    """What is wrong with a figure's SVG: not XML, or its root is not an <svg> element."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        return [f"{path.name}: not well-formed XML ({error})"]
    if root.tag.rsplit("}", 1)[-1] != "svg":
        return [f"{path.name}: the root element is <{root.tag}>, not <svg>"]
    return []


def svg_text(path: Path) -> str:
    """The words an SVG shows (titles, labels, legend entries), joined by spaces.

    Text kept as text is read from the elements; text drawn as glyph outlines (matplotlib's
    ``svg.fonttype = "path"``) is read from the comment matplotlib writes before each string.
    """
    parser = ET.XMLParser(target=ET.TreeBuilder(insert_comments=True))
    root = ET.parse(path, parser=parser).getroot()
    return " ".join(
        " ".join(t.split()) for el in root.iter() for t in (el.text, el.tail) if t and t.strip()
    )


@dataclass
class ReportFiles:
    """The files of one study's report, found on disk."""

    folder: Path
    html: Path
    tables: list[Path] = field(default_factory=list)
    svgs: list[Path] = field(default_factory=list)
    pngs: list[Path] = field(default_factory=list)

    def every_text_file(self) -> list[Path]:
        """Every file a reader can open as text: the page, the table CSVs and the SVGs."""
        return sorted(
            p
            for p in self.folder.rglob("*")
            if p.is_file() and p.suffix in {".html", ".csv", ".svg"}
        )


def report_files(folder: Path) -> ReportFiles:
    """The report of one study in `folder` (reports/<study>), with clear messages for what is
    missing from the published layout."""
    html = folder / "report.html"
    assert html.is_file(), f"{html} was not written"
    found = ReportFiles(
        folder,
        html,
        tables=sorted((folder / "tables").glob("*.csv")),
        svgs=sorted((folder / "figures").glob("*.svg")),
        pngs=sorted((folder / "figures").glob("*.png")),
    )
    return found


def require_tables(files: ReportFiles) -> list[Path]:
    """The report's table CSVs; fails naming the folder when there are none."""
    assert files.tables, (
        f"no table CSVs in {files.folder / 'tables'}: every report table should also be "
        "written there as <name>.csv, suppressed as in the HTML"
    )
    return files.tables


def require_figures(files: ReportFiles) -> tuple[list[Path], list[Path]]:
    """The report's figures as (svgs, pngs); fails unless each figure has both files."""
    folder = files.folder / "figures"
    assert files.svgs or files.pngs, (
        f"no figures in {folder}: each figure should be written as <name>.svg and <name>.png"
    )
    svg_names = {p.stem for p in files.svgs}
    png_names = {p.stem for p in files.pngs}
    assert svg_names == png_names, (
        f"{folder}: figures without both formats: svg only {sorted(svg_names - png_names)}, "
        f"png only {sorted(png_names - svg_names)}"
    )
    return files.svgs, files.pngs


def documented_png_size() -> tuple[int, int] | None:
    """The PNG size in pixels that accord.report.figures documents, if it states one.

    Reads a module constant such as ``FIGURE_SIZE_PX = (width, height)`` from the source
    (importing the report package would load every model library); None while the module
    states no size.
    """
    source = Path(__file__).resolve().parents[1] / "src" / "accord" / "report" / "figures.py"
    if not source.is_file():
        return None
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if not isinstance(node, ast.Assign | ast.AnnAssign):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = {t.id for t in targets if isinstance(t, ast.Name)}
        if names & {"FIGURE_SIZE_PX", "PNG_SIZE_PX", "PNG_SIZE"} and node.value is not None:
            value = ast.literal_eval(node.value)
            if isinstance(value, tuple | list) and len(value) == 2:
                return int(value[0]), int(value[1])
    return None
