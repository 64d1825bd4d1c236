"""The study report: one self-contained HTML file built from a study's results folder, with
every table also written as CSV and every figure as SVG and PNG.

The report reads only files under ``results/<study>/`` and shows aggregates only: every count
from 1 to ``min_cell - 1`` reads ``"<11"``, every statistic from fewer than ``min_cell`` clients
is withheld, and no client id or row of data is ever printed (privacy.md, section 2; the rules
live in `accord.core.disclosure`). Styles and figures are inline (SVG as data URIs), so the file
opens anywhere without a network. The same results, config and run date give the same bytes;
the run date is a parameter, else the ``SOURCE_DATE_EPOCH`` environment variable, else today
(UTC).

Sections, in order (each a module under `accord.report.sections`): summary, data, sample,
measures, engagement/alliance/goal-setting, outcomes, models, dropout, therapist effects and
mediation, goals (agreement, attainment and check-ins), methods, provenance.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2

from accord.core.disclosure import suppressed_label
from accord.core.io import write_text_atomic
from accord.report.context import ReportContext, load_context
from accord.report.export import (
    report_figures,
    report_tables,
    write_figures,
    write_tables,
    write_tidy_tables,
)
from accord.report.figures import PLOT_CACHE
from accord.report.labels import using_labels
from accord.report.parts import Section
from accord.report.sections import (
    data,
    dropout,
    engagement,
    goals,
    measures,
    methods,
    models,
    outcomes,
    provenance,
    sample,
    summary,
    therapist,
)
from accord.report.word import write_docx

TEMPLATE = "report.html.j2"


def render_report(
    results_dir: Path,
    out_html: Path,
    *,
    study: str,
    config: Mapping[str, Any],
    min_cell: int = 11,
    run_date: dt.date | str | None = None,
    tables_dir: Path | None = None,
    figures_dir: Path | None = None,
    tidy_dir: Path | None = None,
    out_docx: Path | None = None,
) -> list[Section]:
    """Write the study report for `study` from the files in `results_dir` to `out_html`, its
    tables to `tables_dir` (default: ``tables/`` beside the HTML) and as numbers to `tidy_dir`
    (default ``tidy/``), its figures to `figures_dir` (default ``figures/``) and the whole
    report as a Word document to `out_docx` (default ``report.docx`` beside the HTML). Returns
    the sections rendered.

    Every results file is optional: a section whose input is missing says so. Raises
    AccordError if `results_dir` does not exist.
    """
    out_html = Path(out_html)
    ctx = load_context(
        Path(results_dir), study=study, config=config, min_cell=min_cell, run_date=run_date
    )
    with using_labels(config):
        sections = _audited_sections(ctx)
    tables = report_tables(sections)
    figures = report_figures(sections)
    html = (
        _environment()
        .get_template(TEMPLATE)
        .render(
            study=study,
            min_cell=ctx.min_cell,
            suppressed=suppressed_label(ctx.min_cell),
            run_date=ctx.run_date,
            accord_version=_accord_version(),
            sections=sections,
        )
    )
    write_tables(tables, tables_dir or out_html.parent / "tables")
    write_tidy_tables(tables, tidy_dir or out_html.parent / "tidy", ctx.min_cell)
    write_figures(figures, figures_dir or out_html.parent / "figures")
    write_docx(
        sections,
        out_docx or out_html.with_suffix(".docx"),
        title=f"accord study report: {study}",
        subtitle=(
            "Collaborative goal-setting, engagement and outcomes. "
            f"Run date {ctx.run_date}; accord {_accord_version()}."
        ),
        preface=_preface(ctx.min_cell),
        run_date=ctx.run_date,
    )
    write_text_atomic(out_html, html)
    return sections


def _preface(min_cell: int) -> str:
    """The disclosure note at the head of the Word document (as at the head of the HTML)."""
    hidden = suppressed_label(min_cell)
    return (
        f"Aggregates only. A count from 1 to {min_cell - 1}, and any statistic from fewer than "
        f"{min_cell} clients, is shown as \u201c{hidden}\u201d; \u201c*\u201d marks a cell "
        "withheld so that such a value cannot be worked out from a total, another table or a "
        "percentage, and a range such as \u201c140\u2013149\u201d a count withheld for that "
        "reason; \u201c\u2013\u201d means not available. Figures do not draw groups or cells "
        f"of fewer than {min_cell} clients. Every table is also in tables/ (as shown) and "
        "tidy/ (as numbers), and every figure in figures/ (SVG and PNG), beside this file."
    )


#: Builds of the report at most: one, and two more when the audit withholds counts.
MAX_BUILDS = 8


def _audited_sections(ctx: ReportContext) -> list[Section]:
    """The report's sections, built until the disclosure audit over every count published
    together exposes no withheld count (see `accord.report.ledger`)."""
    token = PLOT_CACHE.set({})
    try:
        for _ in range(MAX_BUILDS):
            sections = _sections(ctx)
            if not ctx.ledger.protect():
                break
            ctx.ledger = ctx.ledger.next_build()
    finally:
        PLOT_CACHE.reset(token)
    return sections


def _sections(ctx: ReportContext) -> list[Section]:
    body = [
        data.build(ctx),
        sample.build(ctx),
        measures.build(ctx),
        engagement.build(ctx),
        outcomes.build(ctx),
        models.build(ctx),
        dropout.build(ctx),
        therapist.build(ctx),
        goals.build(ctx),
        methods.build(ctx),
    ]
    sections = [summary.build(ctx), *body]
    sections.append(provenance.build(ctx))  # last: it lists every file the others read
    return sections


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _accord_version() -> str:
    import accord

    return accord.__version__
