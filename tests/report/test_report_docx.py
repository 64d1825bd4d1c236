"""The study report as a Word document (reports/<study>/report.docx), opened with python-docx
and held against the HTML report of the same run: the same tables under the same captions,
the same figures with their alt text, and the Summary."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import docx
import pandas as pd
import pytest
from report_checks import html_tables

pytestmark = pytest.mark.e2e

CAPTION = re.compile(r"^(Table|Figure) (\d+)\. (.*)$", re.S)


@pytest.fixture(scope="module")
def report(workflow_run: Path):
    folder = workflow_run / "reports" / "small"
    path = folder / "report.docx"
    assert path.is_file(), f"{path} was not written next to report.html"
    html = (folder / "report.html").read_text(encoding="utf-8")
    return folder, docx.Document(str(path)), html


def _captions(document, kind: str) -> list[tuple[int, str]]:
    out = []
    for p in document.paragraphs:
        m = CAPTION.match(p.text)
        if p.style.name == "Caption" and m and m[1] == kind:
            out.append((int(m[2]), m[3]))
    return out


def _cells(row) -> list[str]:
    """The text of each grid cell of a Word table row (a merged cell counted once)."""
    out, seen = [], set()
    for cell in row.cells:
        if id(cell._tc) in seen:
            continue
        seen.add(id(cell._tc))
        out.append(cell.text)
    return out


def test_every_html_table_is_a_word_table_under_its_numbered_caption(report):
    _, document, html = report
    shown = html_tables(html)
    assert len(document.tables) == len(shown) > 5
    captions = _captions(document, "Table")
    assert [n for n, _ in captions] == list(range(1, len(shown) + 1))
    assert [c for _, c in captions] == [t.caption for t in shown]
    for word, page in zip(document.tables, shown, strict=True):
        header_rows = max(len(c) for c in page.columns)
        body = [[" ".join(c.text.split()) for c in row.cells] for row in word.rows[header_rows:]]
        assert body == page.rows, page.caption
        header = [_cells(row) for row in word.rows[:header_rows]]
        assert [c[-1] for c in page.columns] == [
            header[-1][j] if header_rows == 1 else word.cell(header_rows - 1, j).text
            for j in range(len(page.columns))
        ], page.caption


def test_every_figure_is_in_the_document_with_its_alt_text_and_caption(report):
    folder, document, html = report
    alts = re.findall(r'<img src="data:[^"]*" alt="([^"]*)"', html)
    shapes = document.inline_shapes
    assert len(shapes) == len(alts) == len(list((folder / "figures").glob("*.png"))) > 0
    described = [s._inline.docPr.get("descr") for s in shapes]
    assert all(described), "a figure in the .docx has no alt text"
    assert described == [html_lib.unescape(a) for a in alts]
    assert [n for n, _ in _captions(document, "Figure")] == list(range(1, len(alts) + 1))


def test_the_document_opens_with_the_summary_and_shows_no_client_id(report, workflow_run):
    _, document, html = report
    headings = [p.text for p in document.paragraphs if p.style.name == "Heading 1"]
    assert headings[0] == "1. Summary"
    assert len(headings) == len(re.findall(r"<section id=", html))
    summary = html.split('<section id="summary">', 1)[1].split("</section>", 1)[0]
    sentences = [html_lib.unescape(s) for s in re.findall(r"<p[^>]*>([^<]+)</p>", summary)]
    text = "\n".join(p.text for p in document.paragraphs)
    assert sentences and all(s in text for s in sentences)
    every = text + "".join(c.text for t in document.tables for r in t.rows for c in r.cells)
    clients = pd.read_parquet(workflow_run / "results" / "small" / "client_measures.parquet")
    assert not any(cid in every for cid in clients["client_id"])
