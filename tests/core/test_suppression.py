"""Disclosure control on a study built to have small cells, run through the real workflow.

privacy.md, section 2: a shared report shows aggregates only; every count from 1 to
``min_cell - 1`` reads "<11" (the threshold is a setting), as does any statistic from fewer
than ``min_cell`` clients; a hidden cell is never recoverable from a shown total; figures plot
no group of fewer than ``min_cell`` clients; and no row of input data (so no client or
therapist id) is ever printed. The study below plants each kind of small cell on purpose and the
tests read the rendered report, its table CSVs and its figures as a reader would.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import snakemake
from disclosure_attacks import every_attack
from report_checks import (
    INDEX_HEADERS,
    NOT_AVAILABLE,
    Table,
    csv_table,
    group_sizes_shown,
    html_tables,
    is_hidden,
    overall_statistics_shown,
    recoverable_cells,
    report_files,
    require_figures,
    require_tables,
    revealed_sizes,
    small_counts,
    small_counts_in_prose,
    svg_text,
    visible_text,
)

from accord.simulate import simulate_study, write_study

STUDY = "cells"
MIN_CELL = 11
# The small cells planted in the study (clients per category), all below MIN_CELL.
SMALL_ARM = ("stepped_care", 4)
SMALL_THERAPIST = ("TQXZWV", 3)
ONE_CLIENT_THERAPIST = ("TQXZWB", 1)
SMALL_SITE = ("SQXZW", 4)  # the clients of the two therapists above
RARE_GENDER = ("agender", 2)
RARE_AGE_BAND = ("65-89", 3)
RARE_END_REASONS = {"referred": 3, "other": 1}
QUARANTINED_MEASURE_ROWS = 3
N_CLIENTS = 120
# The primary model, whose results the report's summary and models section show; one model
# rather than the analysis plan keeps this run short.
MODELS = [
    {"id": "growth", "kind": "growth", "primary": True},
]


def write_small_cell_study(folder: Path) -> None:
    """A simulated study edited to hold the small cells named at the top of this module."""
    study = simulate_study(n_clients=N_CLIENTS, n_therapists=8, n_sites=2, max_sessions=8, seed=5)
    write_study(study, folder)
    clients = pd.read_csv(folder / "clients.csv", dtype=str, keep_default_na=False)
    rows = iter(range(len(clients)))

    def take(n: int) -> list[int]:
        return [next(rows) for _ in range(n)]

    clients.loc[take(SMALL_ARM[1]), "arm"] = SMALL_ARM[0]
    small_site = take(SMALL_THERAPIST[1])
    clients.loc[small_site, "therapist_id"] = SMALL_THERAPIST[0]
    lone = take(ONE_CLIENT_THERAPIST[1])
    clients.loc[lone, "therapist_id"] = ONE_CLIENT_THERAPIST[0]
    clients.loc[small_site + lone, "site_id"] = SMALL_SITE[0]
    # Rare categories replace whatever the simulator drew, so their sizes are exact.
    for column, value, n in (
        ("gender", *RARE_GENDER),
        ("age_band", *RARE_AGE_BAND),
        *(("end_reason", reason, n) for reason, n in RARE_END_REASONS.items()),
    ):
        clients.loc[clients[column] == value, column] = _common(clients[column], value)
        clients.loc[take(n), column] = value
    # Ages agree with the bands: 70 in the rare band, and no one else is 65 or older.
    in_band = clients["age_band"] == RARE_AGE_BAND[0]
    older = ~in_band & (pd.to_numeric(clients["age"], errors="coerce") >= 65)
    clients.loc[in_band, "age"] = "70"
    clients.loc[older, ["age", "age_band"]] = ["60", "55-64"]
    clients.to_csv(folder / "clients.csv", index=False)

    # A few out-of-range item values: validation quarantines those rows.
    measures = pd.read_csv(folder / "measures.csv", dtype=str, keep_default_na=False)
    phq9 = measures.index[measures["instrument"] == "phq9"][:QUARANTINED_MEASURE_ROWS]
    measures.loc[phq9, "value"] = "9"
    measures.to_csv(folder / "measures.csv", index=False)


def _common(column: pd.Series, avoid: str) -> str:
    """The most frequent value of `column` other than `avoid`."""
    counts = column[column != avoid].value_counts()
    return str(counts.index[0])


def _config(min_cell: int) -> dict:
    return {
        # The rare gender is a declared category (undeclared labels would read as "other").
        "studies": {
            STUDY: {
                "path": f"data/{STUDY}",
                "categories": {"gender": ["female", "male", "non_binary", RARE_GENDER[0]]},
            }
        },
        "privacy": {"min_cell": min_cell},
        "models": MODELS,
    }


@pytest.fixture(scope="module")
def small_cell_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workflow run on the small-cell study with the default threshold of 11."""
    workdir = tmp_path_factory.mktemp("small_cells")
    write_small_cell_study(workdir / "data" / STUDY)
    (workdir / "config.yaml").write_text(yaml.safe_dump(_config(MIN_CELL)))
    done = snakemake(workdir, "--configfile", "config.yaml")
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir


@pytest.fixture(scope="module")
def report(small_cell_run: Path) -> tuple[str, list[Table], list[Table]]:
    """The report's HTML, its HTML tables and its table CSVs (possibly none)."""
    files = report_files(small_cell_run / "reports" / STUDY)
    html = files.html.read_text(encoding="utf-8")
    return html, html_tables(html), [csv_table(p) for p in files.tables]


LEAKY_PAGE = """
<section id="sample"><p>The sample holds 40 clients seen by 4 therapists; 4 clients have no arm.</p>
<table><caption>Clients by arm</caption>
<thead><tr><th>Arm</th><th>Clients</th><th>Mean age (SD)</th></tr></thead>
<tbody><tr><td>a</td><td>&lt;11</td><td>&lt;11</td></tr>
<tr><td>b</td><td>33</td><td>40.1 (9.0)</td></tr>
<tr><td>c</td><td>3 (7.5%)</td><td>&lt;11</td></tr>
<tr><td>Total</td><td>40</td><td>39.0 (9.5)</td></tr></tbody></table>
<table><caption>Sexes by arm</caption>
<thead><tr><th>Arm</th><th>Female</th><th>Male</th><th>Total</th></tr></thead>
<tbody><tr><td>b</td><td>20 (60.6%)</td><td>13 (39.4%)</td><td>*</td></tr></tbody></table>
</section>
"""


def test_the_checks_find_each_kind_of_leak_in_a_page_built_to_leak():
    """The readers of the report catch what they look for (so a pass is not vacuous)."""
    arms, sexes = html_tables(LEAKY_PAGE)
    assert [row[0] for row in arms.rows] == ["a", "b", "c", "Total"]
    assert small_counts(arms, MIN_CELL) == [
        "report.html#sample table 'Clients by arm': row 3, column Clients"
    ]
    # Column Clients: a is the only withheld cell under a shown Total, so a = 40 - 33 - 3.
    assert len(recoverable_cells(arms, MIN_CELL)) == 1
    # Mean age: only a and c withheld (two cells), so the overall mean is not flagged.
    assert overall_statistics_shown(arms, MIN_CELL) == []
    # 20 is 60.6% of 33: the withheld total of arm b follows from its percentages.
    assert len(revealed_sizes(sexes, MIN_CELL)) == 1
    text = visible_text(LEAKY_PAGE, prose_only=True)
    assert small_counts_in_prose(text, MIN_CELL) == ["4 clients"]  # therapists: structural


def test_the_study_holds_the_small_cells_it_was_built_with(small_cell_run: Path):
    clients = pd.read_parquet(small_cell_run / "results" / STUDY / "validated" / "clients.parquet")
    assert len(clients) == N_CLIENTS
    assert (clients["arm"] == SMALL_ARM[0]).sum() == SMALL_ARM[1]
    assert (clients["therapist_id"] == SMALL_THERAPIST[0]).sum() == SMALL_THERAPIST[1]
    assert (clients["site_id"] == SMALL_SITE[0]).sum() == SMALL_SITE[1]
    assert (clients["gender"] == RARE_GENDER[0]).sum() == RARE_GENDER[1]
    assert (clients["age_band"] == RARE_AGE_BAND[0]).sum() == RARE_AGE_BAND[1]
    for reason, n in RARE_END_REASONS.items():
        assert (clients["end_reason"] == reason).sum() == n
    # Clinical-change categories by arm include small cells of their own (none planted).
    measures = pd.read_parquet(small_cell_run / "results" / STUDY / "client_measures.parquet")
    by_arm = measures.groupby("arm")["phq9_category"].value_counts()
    assert ((by_arm > 0) & (by_arm < MIN_CELL)).any()
    quarantine = pd.read_csv(small_cell_run / "results" / STUDY / "validation" / "quarantine.csv")
    assert (quarantine["table"] == "measures").sum() == QUARANTINED_MEASURE_ROWS


def test_no_small_count_is_shown_in_the_html_tables(report):
    _, tables, _ = report
    assert len(tables) >= 5, f"the report shows only {len(tables)} tables"
    shown = [problem for table in tables for problem in small_counts(table, MIN_CELL)]
    assert shown == [], "counts from 1 to 10 shown at:\n" + "\n".join(shown)


def test_no_small_count_is_shown_in_the_table_csvs(small_cell_run: Path, report):
    require_tables(report_files(small_cell_run / "reports" / STUDY))
    _, _, csvs = report
    shown = [problem for table in csvs for problem in small_counts(table, MIN_CELL)]
    assert shown == [], "counts from 1 to 10 shown at:\n" + "\n".join(shown)


def test_every_html_table_is_in_tables_as_shown(small_cell_run: Path, report):
    """tables/<name>.csv holds each table of the page with the same, already suppressed, cells."""
    require_tables(report_files(small_cell_run / "reports" / STUDY))
    _, tables, csvs = report
    written = [[tuple(row) for row in table.rows] for table in csvs]
    missing = [t.name() for t in tables if [tuple(row) for row in t.rows] not in written]
    assert missing == [], f"tables of the page with no identical CSV in tables/: {missing}"


def test_no_small_count_of_people_is_stated_in_the_text(report):
    html, _, _ = report
    stated = small_counts_in_prose(visible_text(html, prose_only=True), MIN_CELL)
    assert stated == [], f"running text states a count below {MIN_CELL} of: {stated}"


def test_small_cells_read_less_than_min_cell(report):
    html, tables, _ = report
    label = f"<{MIN_CELL}"
    cells = [c for t in tables for row in t.rows for c in row[1:]]
    assert label in cells, f"no table cell reads {label!r}"
    arm_rows = _rows_labelled(tables, SMALL_ARM[0])
    assert arm_rows, f"no table has a row for the arm {SMALL_ARM[0]!r}"
    # The arm's own count (4 clients) is shown as "<11" wherever a count of its clients is.
    by_arm = [
        row[j]
        for table, row in arm_rows
        for j in range(1, len(row))
        if table.header(j) in ("clients", "n", "n clients")
    ]
    assert by_arm and set(by_arm) == {label}, f"the small arm's client count reads {by_arm}"
    # The page tells the reader what the label means.
    assert label in visible_text(html, prose_only=True)


def test_quarantined_rows_are_shown_as_data_quality_counts(report):
    """Rows quarantined are records, not people's attributes (privacy.md, section 2): the
    study's few quarantined measures rows are shown whole, and the flow adds up."""
    _, tables, _ = report
    found = False
    for table in tables:
        headers = [table.header(j) for j in range(len(table.columns))]
        if not {"received", "validated", "quarantined"} <= set(headers):
            continue
        for row in table.rows:
            if row[0] == "measures":
                found = True
                received, validated, quarantined = (
                    row[headers.index(h)] for h in ("received", "validated", "quarantined")
                )
                assert quarantined.isdigit() and 0 < int(quarantined) < MIN_CELL
                assert int(received) == int(validated) + int(quarantined)
    assert found, "no table shows received, validated and quarantined rows of measures"


def test_no_hidden_cell_can_be_recovered_from_a_total(report):
    _, tables, csvs = report
    problems = [p for table in tables + csvs for p in recoverable_cells(table, MIN_CELL)]
    assert problems == [], "\n".join(problems)


def test_the_arm_sizes_hide_a_second_arm_to_protect_the_small_one(report):
    _, tables, _ = report
    arms = _arms()
    for table in tables:
        line = _arm_size_line(table, arms)
        if line is None:
            continue
        # 4 of 120 clients: with the total shown, the next smallest arm is withheld too.
        assert line[SMALL_ARM[0]] == f"<{MIN_CELL}", f"{table.name()}: {line}"
        hidden = [arm for arm in arms if is_hidden(line[arm], MIN_CELL)]
        assert len(hidden) >= 2, f"{table.name()}: clients by arm reads {line}"
        assert line["Total"] == str(N_CLIENTS), f"{table.name()}: clients by arm reads {line}"
        return
    pytest.fail("no table gives the clients per arm with their total")


def test_the_overall_mean_is_withheld_when_one_group_mean_is(report):
    """The report's rule for its by-arm tables: with one arm's mean withheld, the overall mean
    would let a reader work it out from the others, so it is withheld as well."""
    _, tables, csvs = report
    problems = [p for table in tables + csvs for p in overall_statistics_shown(table, MIN_CELL)]
    assert problems == [], "\n".join(problems)


def test_percentages_do_not_give_away_a_withheld_group_size(report):
    _, tables, csvs = report
    problems = [p for table in tables + csvs for p in revealed_sizes(table, MIN_CELL)]
    assert problems == [], "\n".join(problems)


def test_arm_sizes_shown_across_tables_do_not_give_the_small_arm_away(report):
    """Sizes read anywhere in the report (a sizes row or column, or the number at risk at the
    start of follow-up) must not pin down the small arm as the total minus the others."""
    _, tables, _ = report
    arms = _arms()
    shown: dict[str, set[int]] = {arm: set() for arm in arms}
    sources: dict[str, list[str]] = {arm: [] for arm in arms}
    total = None
    for table in tables:
        line = _arm_size_line(table, arms)
        if line is not None and total is None and line["Total"].isdigit():
            total = int(line["Total"])
        for arm, n in group_sizes_shown(table, set(arms), MIN_CELL).items():
            shown[arm].add(n)
            sources[arm].append(table.name())
    others = [arm for arm in arms if arm != SMALL_ARM[0]]
    if total is None or not all(len(shown[arm]) == 1 for arm in others):
        return
    worked_out = total - sum(next(iter(shown[arm])) for arm in others)
    assert worked_out != SMALL_ARM[1], (
        f"the {SMALL_ARM[1]}-client arm is the total ({total}) minus arm sizes shown in: "
        + "; ".join(f"{arm}: {', '.join(sorted(set(sources[arm])))}" for arm in others)
    )


def test_statistics_of_a_group_under_min_cell_are_withheld(report):
    """Every number in a row or column of the 4-client arm is withheld (or a shown zero)."""
    _, tables, csvs = report
    leaks = []
    for table, row in _rows_labelled(tables + csvs, SMALL_ARM[0]):
        leaks += [
            f"{table.name()}: row {SMALL_ARM[0]!r}, column {'/'.join(table.columns[j])!r}"
            for j, cell in enumerate(row)
            if cell != SMALL_ARM[0] and _shows_a_number(table, j, cell)
        ]
    for table in tables + csvs:
        for j, path in enumerate(table.columns):
            if SMALL_ARM[0] in path:
                leaks += [
                    f"{table.name()}: row {row[0]!r}, column {'/'.join(path)!r}"
                    for row in table.rows
                    if j < len(row) and _shows_a_number(table, j, row[j])
                ]
    assert leaks == [], "statistics of a 4-client arm are shown at:\n" + "\n".join(leaks)


def test_figures_plot_no_group_under_min_cell(small_cell_run: Path):
    files = report_files(small_cell_run / "reports" / STUDY)
    svgs, _ = require_figures(files)
    texts = {svg.name: svg_text(svg) for svg in svgs}
    drawn = [name for name, text in texts.items() if SMALL_ARM[0] in text]
    assert drawn == [], f"figures that draw the {SMALL_ARM[1]}-client arm: {drawn}"


def test_no_client_or_therapist_id_appears_in_the_report(small_cell_run: Path):
    clients = pd.read_csv(small_cell_run / "data" / STUDY / "clients.csv", dtype=str)
    ids = set(clients["client_id"]) | set(clients["therapist_id"].dropna())
    ids |= set(clients["site_id"].dropna())
    files = report_files(small_cell_run / "reports" / STUDY)
    pattern = re.compile(r"(?<![A-Za-z0-9])([A-Z][A-Z0-9]{3,})(?![A-Za-z0-9])")
    leaked = []
    for path in files.every_text_file():
        text = path.read_text(encoding="utf-8", errors="replace")
        # Inline images are base64 data, not text a reader sees.
        text = re.sub(r"data:[a-z/+.-]+;base64,[A-Za-z0-9+/=]+", " ", text)
        hits = {m for m in pattern.findall(text) if m in ids}
        if hits:
            leaked.append(f"{path.relative_to(files.folder)}: {len(hits)} identifier(s)")
    assert leaked == [], f"study identifiers printed in: {leaked}"


def test_the_report_of_the_full_analysis_plan_shows_no_small_count(workflow_run: Path):
    """The shared run fits every model of the analysis plan (therapist effects among them),
    so its report has sections the small-cell study leaves out; it is read the same way."""
    files = report_files(workflow_run / "reports" / "small")
    html = files.html.read_text(encoding="utf-8")
    tables = html_tables(html) + [csv_table(p) for p in require_tables(files)]
    shown = [problem for table in tables for problem in small_counts(table, MIN_CELL)]
    shown += [problem for table in tables for problem in recoverable_cells(table, MIN_CELL)]
    assert shown == [], "\n".join(shown)
    stated = small_counts_in_prose(visible_text(html, prose_only=True), MIN_CELL)
    assert stated == [], f"running text states a count below {MIN_CELL} of: {stated}"


def test_no_withheld_count_is_worked_back_across_tables(small_cell_run: Path, workflow_run: Path):
    """Each report the suite renders, attacked as a reader would: subtract a model's clients
    from the clients validated, an arm's clients with a measure from the arm's size, and solve
    a percentage for its denominator (tests/disclosure_attacks.py)."""
    recovered = []
    for folder in (small_cell_run / "reports" / STUDY, workflow_run / "reports" / "small"):
        recovered += [f"{folder.name}: {leak}" for leak in every_attack(folder, MIN_CELL)]
    assert recovered == [], "\n".join(recovered)


def test_a_different_min_cell_changes_the_label(small_cell_run: Path, tmp_path: Path):
    """The same results rendered with min_cell 5: small cells read "<5", and 4 is still small.

    The report is rendered by the function the workflow's rule calls, with the config the
    workflow would pass (validated, defaults filled in), into a folder of its own.
    """
    from accord.config import validate_config
    from accord.report.render import render_report

    config = validate_config(_config(5))
    out = tmp_path / "reports" / STUDY
    render_report(
        small_cell_run / "results" / STUDY,
        out / "report.html",
        study=STUDY,
        config=config,
        min_cell=config["privacy"]["min_cell"],
    )
    html = (out / "report.html").read_text(encoding="utf-8")
    tables = html_tables(html)
    cells = [c for t in tables for row in t.rows for c in row[1:]]
    assert "<5" in cells
    assert "<11" not in cells and "<11" not in visible_text(html)
    shown = [problem for table in tables for problem in small_counts(table, 5)]
    assert shown == [], "counts from 1 to 4 shown at:\n" + "\n".join(shown)
    arm = [
        row[j]
        for table, row in _rows_labelled(tables, SMALL_ARM[0])
        for j in range(1, len(row))
        if table.header(j) in ("clients", "n", "n clients")
    ] + [
        line[SMALL_ARM[0]]
        for table in tables
        if (line := _arm_size_line(table, _arms())) is not None
    ]
    assert arm and set(arm) == {"<5"}, f"the 4-client arm's count reads {arm}"
    written = [csv_table(p) for p in sorted((out / "tables").glob("*.csv"))]
    assert written, f"no table CSVs in {out / 'tables'}"
    assert "<11" not in {c for t in written for row in t.rows for c in row}


# -- reading arms and groups off the tables ------------------------------------------------


def _arms() -> list[str]:
    return ["collaborative", SMALL_ARM[0], "usual_care"]


def _arm_size_line(table: Table, arms: list[str]) -> dict[str, str] | None:
    """The clients per arm and their total as the table shows them, if it does: a row of
    sizes ("Clients, n") with the arms as columns, or the arms as rows with a clients column
    and a Total row."""
    columns = [path[-1] if path else "" for path in table.columns]
    for row in table.rows:
        sizes = row and row[0].lower() in ("clients, n", "clients", "n")
        if sizes and set(arms) <= set(columns) and "Total" in columns:
            return {name: row[columns.index(name)] for name in [*arms, "Total"]}
    labels = [row[0] for row in table.rows]
    if set(arms) <= set(labels) and "Total" in labels:
        size = [j for j in range(1, len(columns)) if table.header(j) in ("clients", "n")]
        if size:
            return {name: table.rows[labels.index(name)][size[0]] for name in [*arms, "Total"]}
    return None


def _rows_labelled(tables: list[Table], label: str) -> list[tuple[Table, list[str]]]:
    """The rows, over all tables, with a cell equal to `label` (a group's row)."""
    return [(t, row) for t in tables for row in t.rows if label in row]


def _shows_a_number(table: Table, j: int, cell: str) -> bool:
    """True for a cell that shows a number of its own: not withheld, not "–", not a zero and
    not in an index column (such as the session a value belongs to)."""
    if is_hidden(cell, MIN_CELL) or cell in (NOT_AVAILABLE, "", "0"):
        return False
    if INDEX_HEADERS.match(table.header(j)):
        return False
    return bool(re.search(r"\d", cell))
