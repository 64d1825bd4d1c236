"""The study report as a Word document (``report.docx``), for pasting into a manuscript.

The document holds what the HTML report shows, in the same order: each section under a
numbered heading, its text and lists, every table shown in the HTML as a real Word table with
its caption above ("Table N. ...", numbered by a SEQ field so Word can cross-reference it) and
its note below, and every figure as its PNG with the figure's alt text and its caption below
("Figure N. ..."). Tables are in APA style: rules above and below the header and below the
last row, no vertical lines. The cells are the report's display text, so the document shows
exactly the values the HTML shows.

The same sections and run date give the same bytes: the document's dates are the run date and
every member of the file is stamped with one fixed time.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import docx
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Inches, Pt

from accord.core.io import atomic_path
from accord.report.parts import Bullets, Heading, Plot, Preformatted, Section, Table, Text

FIGURE_WIDTH = Inches(6.0)
TABLE_FONT = Pt(9)
#: The time every member of the .docx archive is stamped with (the ZIP format's earliest).
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_docx(
    sections: Sequence[Section],
    path: Path,
    *,
    title: str,
    subtitle: str,
    preface: str,
    run_date: dt.date | str,
) -> Path:
    """Write `sections` as a Word document to `path` (module docstring); returns `path`."""
    document = docx.Document()
    _set_properties(document, title, run_date)
    document.add_heading(title, level=0)
    document.add_paragraph(subtitle)
    document.add_paragraph(preface).runs[0].font.size = Pt(9)
    counts = {"Table": 0, "Figure": 0}
    for number, section in enumerate(sections, start=1):
        document.add_heading(f"{number}. {section.title}", level=1)
        for block in section.blocks:
            _add_block(document, block, counts)
    buffer = io.BytesIO()
    document.save(buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(_fixed_zip(buffer.getvalue()))
    return Path(path)


def _add_block(document, block, counts: dict[str, int]) -> None:
    if isinstance(block, Heading):
        document.add_heading(block.text, level=2)
    elif isinstance(block, Text):
        paragraph = document.add_paragraph(block.text)
        if not paragraph.runs:
            return
        if block.style == "lead":
            paragraph.runs[0].bold = True
        elif block.style == "note":
            paragraph.runs[0].font.size = Pt(9)
    elif isinstance(block, Bullets):
        for label, text in block.items:
            item = document.add_paragraph(style="List Bullet")
            if label:
                item.add_run(f"{label}: ").bold = True
            item.add_run(text)
    elif isinstance(block, Preformatted):
        run = document.add_paragraph().add_run(block.text)
        run.font.name = "Courier New"
        run.font.size = Pt(8)
    elif isinstance(block, Table) and block.in_html:
        counts["Table"] += 1
        _caption(document, "Table", counts["Table"], block.caption)
        _add_table(document, block)
        if block.note:
            note = document.add_paragraph()
            note.add_run("Note. ").italic = True
            note.add_run(block.note)
            for run in note.runs:
                run.font.size = Pt(9)
    elif isinstance(block, Plot):
        counts["Figure"] += 1
        _add_figure(document, block)
        _caption(document, "Figure", counts["Figure"], block.caption)


def _caption(document, kind: str, number: int, text: str) -> None:
    """A caption paragraph "<kind> N. text" whose N is a SEQ field (Word renumbers it)."""
    paragraph = document.add_paragraph(style="Caption")
    paragraph.add_run(f"{kind} ").bold = True
    _field_char(paragraph.add_run(), "begin")
    instruction = OxmlElement("w:instrText")
    instruction.set(qn("xml:space"), "preserve")
    instruction.text = f" SEQ {kind} \\* ARABIC "
    paragraph.add_run()._r.append(instruction)
    _field_char(paragraph.add_run(), "separate")
    paragraph.add_run(str(number)).bold = True
    _field_char(paragraph.add_run(), "end")
    paragraph.add_run(". ").bold = True
    paragraph.add_run(text)
    paragraph.paragraph_format.keep_with_next = kind == "Table"


def _field_char(run, kind: str) -> None:
    char = OxmlElement("w:fldChar")
    char.set(qn("w:fldCharType"), kind)
    run._r.append(char)


def _add_table(document, t: Table) -> None:
    header_rows = 2 if t.spans else 1
    grid = document.add_table(rows=header_rows + len(t.rows), cols=len(t.columns))
    grid.alignment = WD_TABLE_ALIGNMENT.LEFT
    _apa_borders(grid, t.caption)
    if t.spans:
        for label, start, n in t.header_groups:
            if label:
                cell = grid.cell(0, start).merge(grid.cell(0, start + n - 1))
                _write_cell(cell, label, bold=True, align=WD_ALIGN_PARAGRAPH.CENTER)
                for j in range(start, start + n):
                    _write_cell(grid.cell(1, j), t.columns[j], bold=True, align=_align(t, j))
            else:
                for j in range(start, start + n):
                    cell = grid.cell(0, j).merge(grid.cell(1, j))
                    _write_cell(cell, t.columns[j], bold=True, align=_align(t, j))
    else:
        for j, name in enumerate(t.columns):
            _write_cell(grid.cell(0, j), name, bold=True, align=_align(t, j))
    for i in range(header_rows):
        _repeat_as_header(grid.rows[i])
    for j in range(len(t.columns)):
        _rule(grid.cell(header_rows - 1, j), "bottom")
    for i, row in enumerate(t.rows):
        for j, value in enumerate(row):
            cell = grid.cell(header_rows + i, j)
            _write_cell(cell, value, bold=i in t.highlight, align=_align(t, j))


def _align(t: Table, column: int):
    text = column == 0 or column in t.text_columns
    return WD_ALIGN_PARAGRAPH.LEFT if text else WD_ALIGN_PARAGRAPH.RIGHT


def _write_cell(cell, text: str, *, bold: bool, align) -> None:
    paragraph = cell.paragraphs[0]
    paragraph.alignment = align
    run = paragraph.add_run(text)
    run.bold = bold
    run.font.size = TABLE_FONT


def _repeat_as_header(row) -> None:
    """Mark a row as a header row: repeated on every page, read as headers by screen readers."""
    properties = row._tr.get_or_add_trPr()
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    properties.append(header)


#: Children of a table's properties that come after its borders, in the schema's order.
_AFTER_BORDERS = ("w:shd", "w:tblLayout", "w:tblCellMar", "w:tblLook", "w:tblCaption")


def _apa_borders(grid, caption: str) -> None:
    """Rules above and below the table, none between rows or columns; the caption as the
    table's alternative text."""
    properties = grid._tbl.tblPr
    borders = OxmlElement("w:tblBorders")
    for edge in ("top", "left", "bottom", "right", "insideH", "insideV"):
        element = OxmlElement(f"w:{edge}")
        ruled = edge in ("top", "bottom")
        element.set(qn("w:val"), "single" if ruled else "nil")
        if ruled:
            element.set(qn("w:sz"), "8")
            element.set(qn("w:space"), "0")
            element.set(qn("w:color"), "000000")
        borders.append(element)
    later = [child for child in properties if child.tag in {qn(t) for t in _AFTER_BORDERS}]
    if later:
        later[0].addprevious(borders)
    else:
        properties.append(borders)
    alt = OxmlElement("w:tblCaption")
    alt.set(qn("w:val"), caption)
    properties.append(alt)


def _rule(cell, edge: str) -> None:
    properties = cell._tc.get_or_add_tcPr()
    borders = OxmlElement("w:tcBorders")
    element = OxmlElement(f"w:{edge}")
    for key, value in (("val", "single"), ("sz", "6"), ("space", "0"), ("color", "000000")):
        element.set(qn(f"w:{key}"), value)
    borders.append(element)
    properties.append(borders)


def _add_figure(document, plot: Plot) -> None:
    paragraph = document.add_paragraph()
    paragraph.paragraph_format.keep_with_next = True
    shape = paragraph.add_run().add_picture(io.BytesIO(plot.png), width=FIGURE_WIDTH)
    properties = shape._inline.docPr
    properties.set("descr", plot.alt)
    properties.set("title", plot.name)


def _set_properties(document, title: str, run_date: dt.date | str) -> None:
    when = dt.datetime.combine(dt.date.fromisoformat(str(run_date)), dt.time(), dt.UTC)
    props = document.core_properties
    props.title = title
    props.author = "accord"
    props.last_modified_by = "accord"
    props.created = when
    props.modified = when
    props.revision = 1


def _fixed_zip(data: bytes) -> bytes:
    """The .docx archive `data` with every member stamped with `ZIP_TIME`, so the same
    document gives the same bytes."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            info = zipfile.ZipInfo(member.filename, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, source.read(member.filename))
    return out.getvalue()
