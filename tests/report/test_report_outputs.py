"""The report's tables as CSV and figures as SVG/PNG, Table 1, dropout, therapist effects,
forest plot and methods, on a hand-made results folder whose values are worked out below."""

from __future__ import annotations

import html as html_lib
import json
import re
import struct
from pathlib import Path

import matplotlib.collections
import numpy as np
import pandas as pd
import pytest

from accord.core.disclosure import suppress_counts_in
from accord.report import render_report
from accord.report.figures import FIGURE_SIZE_PX, prepost_figure
from accord.report.parts import Plot, Section, table
from accord.report.sections.dropout import cif_curve
from accord.report.sections.therapist import drawable_effects

RUN_DATE = "2026-02-01"
CONFIG = {
    "studies": {"hand": {"path": "data/hand"}},
    "analysis": {"primary_outcome": "phq9", "primary_exposure": "joint_goal_share"},
    "privacy": {"min_cell": 11},
}
#: Therapist effects as the therapist model records them (sorted, no ids); the third has
#: 6 clients and must not be drawn.
EFFECTS = [
    {"rank": 1, "effect": -1.0, "std_error": 0.4, "ci_low": -1.8, "ci_high": -0.2, "n_clients": 12},
    {"rank": 2, "effect": -0.2, "std_error": 0.5, "ci_low": -1.2, "ci_high": 0.8, "n_clients": 15},
    {"rank": 3, "effect": 0.1, "std_error": 0.9, "ci_low": -1.7, "ci_high": 1.9, "n_clients": 6},
    {"rank": 4, "effect": 0.9, "std_error": 0.4, "ci_low": 0.1, "ci_high": 1.7, "n_clients": 17},
]


def _coefficient(model, outcome, exposure, term, estimate, ci, p, n, **extra):
    se = (ci[1] - ci[0]) / 3.92
    return {
        "model": model,
        "outcome": outcome,
        "exposure": exposure,
        "term": term,
        "estimate": estimate,
        "std_error": se,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "p_value": p,
        "n_obs": n,
        "n_clients": n,
        "converged": True,
        "primary": extra.pop("primary", False),
        "ratio": extra.pop("ratio", np.nan),
        "ratio_ci_low": extra.pop("ratio_ci_low", np.nan),
        "ratio_ci_high": extra.pop("ratio_ci_high", np.nan),
        "exposure_effect": extra.pop("exposure_effect", False),
        "p_fdr": extra.pop("p_fdr", np.nan),
    }


def write_hand_results(root: Path) -> Path:
    """50 clients, 25 per arm.

    Age: collaborative alternates 30/40 (mean 35, SD sqrt(25 x 25 / 24) = 5.10), usual care
    40/50 (mean 45, same SD), so the SMD is 10 / 5.10 = 1.96. Gender: collaborative 14 female
    and 11 male, usual care 20 female and 5 male. Dropout: times and events below.
    """
    root.mkdir(parents=True)
    (root / "validation").mkdir()
    (root / "validated").mkdir()
    (root / "models").mkdir()
    n = 50
    ids = [f"HAND{i:03d}Q" for i in range(n)]
    arm = ["collaborative"] * 25 + ["usual_care"] * 25
    age = [30, 40] * 12 + [30] + [40, 50] * 12 + [40]
    # The alternation leaves one extra value per arm: recompute the expected SMD from it.
    gender = ["female"] * 14 + ["male"] * 11 + ["female"] * 20 + ["male"] * 5
    rng = np.random.default_rng(3)
    clients = pd.DataFrame(
        {
            "client_id": ids,
            "therapist_id": [f"TH{i % 4}" for i in range(n)],
            "arm": arm,
            "joint_goal_share": rng.uniform(0, 1, n),
            "phq9_first": rng.integers(5, 25, n).astype(float),
            "phq9_last": rng.integers(0, 25, n).astype(float),
            "phq9_n_assessments": pd.array([3] * n, dtype="Int64"),
            "sessions_to_dropout": pd.array([2, 4, 6, 8, 10] * 10, dtype="Int64"),
            "dropout_event": pd.array([True, False] * 25, dtype="boolean"),
            "end_event": pd.array(["dropout", "completion"] * 25, dtype="string"),
            "dropout": pd.array([True, False] * 25, dtype="boolean"),
        }
    )
    clients.to_parquet(root / "client_measures.parquet")
    pd.DataFrame(
        {"client_id": ids, "arm": arm, "age": age, "gender": gender, "age_band": ["25-44"] * n}
    ).to_parquet(root / "validated" / "clients.parquet")
    panel = pd.DataFrame(
        [(cid, s, a, 15.0 - s) for cid, a in zip(ids, arm, strict=True) for s in range(3)],
        columns=["client_id", "session_number", "arm", "phq9"],
    )
    panel.to_parquet(root / "session_panel.parquet")
    summary = {
        "tables": {"clients": {"rows_in": 50, "rows_accepted": 50, "rows_quarantined": 0}},
        "input_checksums_sha256": {"clients.csv": "ab" * 32},
        "identifier_guard": {
            "warnings": [
                {
                    "table": "clients",
                    "columns": ["age_band", "gender"],
                    "combinations": 3,
                    "clients": 7,
                    "k": 5,
                }
            ]
        },
    }
    (root / "validation" / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame(columns=["table", "rule", "column"]).to_csv(
        root / "validation" / "quarantine.csv", index=False
    )
    rows = [
        _coefficient(
            "growth", "phq9", "joint_goal_share", "Intercept", 15.0, (14.0, 16.0), 1e-9, 50
        ),
        _coefficient(
            "growth",
            "phq9",
            "joint_goal_share",
            "time:joint_goal_share",
            -0.25,
            (-0.4, -0.1),
            0.002,
            50,
            primary=True,
            exposure_effect=True,
            p_fdr=0.002,
        ),
        _coefficient(
            "dropout",
            "dropout",
            "joint_goal_share",
            "joint_goal_share",
            -0.5,
            (-1.2, 0.2),
            0.16,
            50,
            ratio=0.61,
            ratio_ci_low=0.30,
            ratio_ci_high=1.22,
            exposure_effect=True,
            p_fdr=0.2,
        ),
        _coefficient(
            "dropout_cox",
            "sessions_to_dropout",
            "joint_goal_share",
            "joint_goal_share",
            -0.3,
            (-0.9, 0.3),
            0.33,
            50,
            ratio=0.74,
            ratio_ci_low=0.41,
            ratio_ci_high=1.35,
            exposure_effect=True,
            p_fdr=0.33,
        ),
        _coefficient(
            "therapist", "phq9", "therapist", "icc_therapist", 0.05, (0.01, 0.09), np.nan, 50
        ),
        _coefficient(
            "mediation_alliance", "phq9", "joint_goal_share", "acme", -0.4, (-0.7, -0.1), 0.01, 48
        ),
        _coefficient(
            "mediation_alliance", "phq9", "joint_goal_share", "ade", -1.0, (-2.0, 0.0), 0.05, 48
        ),
    ]
    pd.DataFrame(rows).to_csv(root / "models" / "coefficients.csv", index=False)
    diagnostics = {
        "growth": {
            "model": "growth",
            "converged": True,
            "method": "REML",
            "optimizer": "lbfgs",
            "formula": "phq9 ~ time * joint_goal_share",
            "n_therapists": 4,
            "warnings": ["4 row(s) left out for a missing value (early_alliance: 4)"],
            "random_effects": {
                "therapist_intercept": 1.0,
                "client_intercept": 6.0,
                "residual": 3.0,
            },
            "extras": {"structure": "therapist random intercept"},
        },
        "dropout": {
            "model": "dropout",
            "converged": True,
            "method": "ML (GLM binomial, logit link)",
        },
        "dropout_cox": {
            "model": "dropout_cox",
            "converged": True,
            "method": "partial likelihood, ties: efron",
        },
        "therapist": {
            "model": "therapist",
            "converged": True,
            "method": "REML",
            "n_therapists": 4,
            "extras": {"therapist_effects": EFFECTS, "bootstrap": {"replicates": 200}},
        },
        "mediation_alliance": {
            "model": "mediation_alliance",
            "converged": True,
            "method": "causal mediation (Imai et al. 2010)",
            "extras": {"mediator": "early_alliance", "n_boot": 500},
        },
    }
    (root / "models" / "diagnostics.json").write_text(json.dumps(diagnostics))
    return root


@pytest.fixture(scope="module")
def hand_report(tmp_path_factory) -> tuple[Path, str, list[Section]]:
    folder = tmp_path_factory.mktemp("hand")
    root = write_hand_results(folder / "results")
    out = folder / "report" / "report.html"
    sections = render_report(root, out, study="hand", config=CONFIG, run_date=RUN_DATE)
    return out.parent, out.read_text(encoding="utf-8"), sections


def html_tables(text: str) -> dict[str, list[list[str]]]:
    """Body rows of every table in the HTML, by the table's id (table-<name>)."""
    found = {}
    for name, body in re.findall(r'<table id="table-([\w-]+)">(.*?)</table>', text, flags=re.S):
        tbody = body.split("<tbody>", 1)[1]
        rows = []
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", tbody, flags=re.S):
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)
            rows.append([html_lib.unescape(c) for c in cells])
        found[name] = rows
    return found


def test_every_html_table_has_its_csv_with_the_same_cells(hand_report):
    folder, text, sections = hand_report
    shown = html_tables(text)
    names = {t.name for s in sections for t in s.tables}
    assert {p.stem for p in (folder / "tables").glob("*.csv")} == names
    assert set(shown) == {t.name for s in sections for t in s.tables if t.in_html}
    for name, rows in shown.items():
        frame = pd.read_csv(folder / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)
        assert frame.values.tolist() == rows, name


def test_every_figure_is_embedded_and_written_as_svg_and_png(hand_report):
    folder, text, sections = hand_report
    figures = [f for s in sections for f in s.figures]
    assert figures
    for figure in figures:
        svg = (folder / "figures" / f"{figure.name}.svg").read_bytes()
        png = (folder / "figures" / f"{figure.name}.png").read_bytes()
        assert svg == figure.svg and figure.data_uri in text
        assert f'alt="{figure.alt}"' in text
        # PNG header: width and height in the IHDR chunk.
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert struct.unpack(">II", png[16:24]) == FIGURE_SIZE_PX
        assert b"Date" not in svg and b"Software" not in png


def test_outputs_are_byte_identical_on_a_second_run(hand_report, tmp_path):
    folder, text, _ = hand_report
    root = folder.parent / "results"
    again = tmp_path / "report.html"
    render_report(root, again, study="hand", config=CONFIG, run_date=RUN_DATE)
    assert again.read_text(encoding="utf-8") == text
    for sub in ("tables", "figures"):
        for path in (folder / sub).iterdir():
            assert (tmp_path / sub / path.name).read_bytes() == path.read_bytes(), path.name


def test_table1_has_smd_and_complementary_suppression(hand_report):
    _, text, _ = hand_report
    rows = {r[0]: r[1:] for r in html_tables(text)["table1_sample"]}
    # Age: 30/40 alternating with one extra 30 in 25 clients, and 40/50 with one extra 40.
    a = np.array([30, 40] * 12 + [30], dtype=float)
    b = a + 10
    smd = 10 / np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    assert rows["Clients, n"][:3] == ["25", "25", "50"]
    assert rows["Age, years, mean (SD)"] == [
        f"{a.mean():.1f} ({a.std(ddof=1):.1f})",
        f"{b.mean():.1f} ({b.std(ddof=1):.1f})",
        f"{np.r_[a, b].mean():.1f} ({np.r_[a, b].std(ddof=1):.1f})",
        f"{smd:.2f}",
        "0",
    ]
    # 5 usual-care men: "<11"; their column (adding up to 25) and row (adding up to 16)
    # each lose another cell, and so does the collaborative column in turn.
    assert rows["\u2003male"] == ["*", "<11", "16 (32.0%)", "<11", ""]
    assert rows["\u2003female"] == ["*", "*", "34 (68.0%)", "<11", ""]


def test_cumulative_incidence_curve_by_hand_and_cut_where_few_are_at_risk():
    # cause 1 dropout, 2 completion, 0 censored
    part = pd.DataFrame({"time": [1.0, 2, 2, 3, 4], "cause": [1, 1, 2, 1, 0]})
    curve = cif_curve(part, min_cell=3)
    # t = 1: 5 at risk, F = 1/5, S = 4/5; t = 2: 4 at risk, a dropout and a completion:
    # F = .2 + .8 x 1/4 = .4, S = .8 x 2/4 = .4; at time 3 only 2 clients are at risk: cut.
    assert curve["time"].tolist() == [0.0, 1.0, 2.0]
    assert curve["incidence"].tolist() == pytest.approx([0.0, 0.2, 0.4])
    assert curve["at_risk"].tolist() == [5, 5, 4]
    assert 0 < curve["ci_low"].iloc[2] < 0.4 < curve["ci_high"].iloc[2] < 1


def test_dropout_section_has_number_at_risk_and_ratios(hand_report):
    _, text, _ = hand_report
    tables = html_tables(text)
    # Times 2,4,6,8,10 for 5 clients each per arm: at risk 25, 25, 20, 15, 10, 5 at 0, 2 ... 10.
    # 25 then 20 (or 15) would show 5 (or 10) clients leaving, so sessions 4 and 6 are not
    # published; at 8 the count is withheld itself ("<11": 25 minus 15 to 24 left).
    assert tables["dropout_number_at_risk"] == [
        ["collaborative", "25", "25", "<11", "<11"],
        ["usual_care", "25", "25", "<11", "<11"],
    ]
    ratios = {r[0]: r[1:] for r in tables["dropout_ratios"]}
    exposure = "Joint goal-setting share"
    assert ratios["Dropout"][:4] == [exposure, "OR", "0.61", "[0.30, 1.22]"]
    assert ratios["Dropout Cox"][:4] == [exposure, "HR", "0.74", "[0.41, 1.35]"]


def test_caterpillar_leaves_out_therapists_with_few_clients(hand_report):
    _, text, sections = hand_report
    (figure,) = [f for s in sections for f in s.figures if f.name == "therapist_caterpillar"]
    # The caption says why some are missing but gives no count of therapists (a small count).
    assert "Therapists who saw fewer than 11 clients are not drawn." in figure.caption
    assert "1 of 4" not in figure.caption
    assert drawable_effects(pd.DataFrame(EFFECTS), 11)["rank"].tolist() == [1, 2, 4]
    assert "TH0" not in text


def test_forest_table_lists_exposure_effects_on_their_scales(hand_report):
    _, text, _ = hand_report
    rows = html_tables(text)["models_exposure_effects"]
    assert [r[0] for r in rows] == ["Growth (b)", "Dropout (OR)", "Dropout Cox (HR)"]
    # SE = 0.3 / 3.92 = .077, not below .01: two decimals.
    assert rows[0][3:5] == ["\u22120.25", "[\u22120.40, \u22120.10]"]
    assert rows[1][3] == "0.61"
    assert [r[1] for r in rows] == ["primary", "secondary", "secondary"]


def test_counts_in_model_warnings_and_guard_warnings_are_suppressed(hand_report):
    _, text, _ = hand_report
    assert "&lt;11 row(s) left out for a missing value (Early alliance: &lt;11)" in text
    assert "&lt;11 combinations of (age_band, gender)" in text
    assert "(&lt;11 clients in all)" in text
    assert suppress_counts_in("3 client(s) and 40 rows; x: 12", 11) == (
        "<11 client(s) and 40 rows; x: 12"
    )


def test_methods_paragraph_names_estimation_multiplicity_and_suppression(hand_report):
    _, text, _ = hand_report
    methods = text.split('id="methods"', 1)[1].split("</section>", 1)[0]
    from importlib.metadata import version

    assert f"statsmodels {version('statsmodels')}" in methods
    assert "restricted maximum likelihood (REML)" in methods
    assert "Benjamini\u2013Hochberg" in methods
    assert "counts from 1 to 10" in methods
    assert "the primary model was growth" in methods
    assert "Imai, Keele &amp; Tingley 2010" in methods


def test_summary_states_the_primary_question_and_estimate(hand_report):
    _, text, _ = hand_report
    summary = text.split('id="summary"', 1)[1].split("</section>", 1)[0]
    assert "Primary question:" in summary
    assert "b = \u22120.25, 95% CI [\u22120.40, \u22120.10], p = .002" in summary
    rows = html_tables(text)["summary_primary_estimate"]
    assert rows == [
        [
            "Growth",
            "PHQ-9",
            "Time \u00d7 Joint goal-setting share",
            "\u22120.25",
            "[\u22120.40, \u22120.10]",
            ".002",
            "50",
            "50",
        ]
    ]


def test_no_raw_variable_name_reaches_the_report_text_or_tables(hand_report):
    _, text, _ = hand_report
    shown = re.sub(r"<(style|pre)\b.*?</\1>", " ", text, flags=re.S)  # the config listing
    shown = re.sub(r'<span class="files">.*?</span>', " ", shown)  # figure file names
    shown = html_lib.unescape(re.sub(r"<[^>]+>", " ", shown))
    for name in ("joint_goal_share", "phq9_", "acme", "ade", "growth (", "mediation_alliance"):
        assert not re.search(rf"(?<![\w-]){re.escape(name)}", shown), name
    assert "Indirect association (ACME)" in shown and "Joint goal-setting share" in shown


def test_prepost_grid_draws_no_cell_under_min_cell():
    rng = np.random.default_rng(5)
    first = pd.Series(np.r_[rng.integers(10, 14, 200), [25, 25, 26]].astype(float))
    last = pd.Series(np.r_[rng.integers(2, 6, 200), [1, 1, 2]].astype(float))
    fig = prepost_figure(first, last, label="PHQ-9", reliable_change=6, cutoff=10, min_cell=11)
    mesh = [c for c in fig.axes[0].collections if isinstance(c, matplotlib.collections.QuadMesh)]
    values = np.ma.filled(mesh[0].get_array(), np.nan).astype(float).ravel()
    drawn = values[np.isfinite(values)]
    assert drawn.size and (drawn >= 11).all()
    # Every client is in the grid, and the three far-off clients are not drawn.
    assert drawn.sum() <= 200


def test_stale_outputs_are_removed_and_names_must_be_unique(tmp_path):
    from accord.report.export import report_tables, write_tables

    (tmp_path / "old.csv").write_text("x\n")
    t = table("kept", "Kept", ["a"], [["1"]])
    write_tables([t], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv"]
    with pytest.raises(ValueError, match="two tables are named 'kept'"):
        report_tables([Section("a", "A", [t]), Section("b", "B", [t])])
    assert isinstance(Plot("x", "a", "c", b"<svg/>", b"png").data_uri, str)


def test_workflow_writes_the_report_with_its_tables_and_figures(workflow_run):
    folder = workflow_run / "reports" / "small"
    text = (folder / "report.html").read_text(encoding="utf-8")
    for name in ("table1_sample", "models_coefficients", "dropout_number_at_risk", "mediation"):
        assert (folder / "tables" / f"{name}.csv").is_file(), name
    for name in ("dropout_cumulative_incidence", "models_forest_slope", "outcomes_trajectory_phq9"):
        for suffix in (".svg", ".png"):
            assert (folder / "figures" / f"{name}{suffix}").is_file(), name
    for name, rows in html_tables(text).items():
        frame = pd.read_csv(folder / "tables" / f"{name}.csv", dtype=str, keep_default_na=False)
        assert frame.values.tolist() == rows, name
    clients = pd.read_parquet(workflow_run / "results" / "small" / "client_measures.parquet")
    assert not any(cid in text for cid in clients["client_id"])


def test_cumulative_incidence_curve_runs_on_flat_while_enough_clients_are_at_risk():
    part = pd.DataFrame({"time": [1.0, 2, 3, 4, 5, 6], "cause": [1, 2, 0, 2, 0, 1]})
    curve = cif_curve(part, min_cell=3)
    # F(1) = 1/6; the dropout at 6 has 1 client at risk (cut), and 4 is the last time with 3 or
    # more at risk, so the curve runs flat from 1 to 4.
    assert curve["time"].tolist() == [0.0, 1.0, 4.0]
    assert curve["incidence"].tolist() == pytest.approx([0.0, 1 / 6, 1 / 6])
    assert curve["at_risk"].tolist() == [6, 6, 3]


# Causal phrases a report may use only for a randomised arm (analyses.md, language).
CAUSAL_PHRASES = (
    r"\breduc(?:es|ed|ing)\b",
    r"\bworks? through\b",
    r"\bruns? through\b",
    r"\bleads? to\b",
    r"\bcause[sd]\b",
    r"\bbecause of\b",
    r"\beffects? of (?:joint|goal|collaborative|setting|the exposure)",
)


def test_report_text_uses_observational_wording_for_an_observed_exposure(workflow_run):
    # The small study's primary exposure is joint_goal_share, observed, not randomised.
    page = (workflow_run / "reports" / "small" / "report.html").read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", page)))
    found = [
        text[max(0, m.start() - 60) : m.end() + 40]
        for pattern in CAUSAL_PHRASES
        for m in re.finditer(pattern, text, flags=re.IGNORECASE)
    ]
    assert found == []


def test_goals_section_shows_surface_attainment_and_check_ins_without_small_counts(
    workflow_run,
):
    folder = workflow_run / "reports" / "small"
    text = (folder / "report.html").read_text(encoding="utf-8")
    goals = text.split('id="goals"', 1)[1].split("</section>", 1)[0]
    for name in ("goals_surface", "goals_agreement", "goals_attainment", "goals_not_on_track"):
        assert (folder / "tables" / f"{name}.csv").is_file(), name
    surface = pd.read_csv(folder / "tables" / "goals_surface.csv", dtype=str)
    assert {"a1", "a2", "a3", "a4"} <= {p.split(":")[0] for p in surface["Surface parameter"]}
    # Every figure has alt text; the surface of the first congruence model is drawn.
    alts = re.findall(r'<img[^>]*alt="([^"]*)"', goals)
    assert alts and all(alt.strip() for alt in alts)
    assert (folder / "figures" / "goals_surface_congruence_goal_phq9.svg").is_file()
    # Counts of clients or goals read <11 or a range, never 1 to 10.
    for name in ("goals_surface", "goals_attainment", "goals_check_in"):
        path = folder / "tables" / f"{name}.csv"
        if not path.is_file():
            continue
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for column in {"Clients", "Goals"} & set(frame.columns):
            shown = [int(v) for v in frame[column] if v.isdigit()]
            assert not any(1 <= v <= 10 for v in shown), (name, column)
    plain = html_lib.unescape(re.sub(r"<[^>]+>", " ", goals))
    for causal in ("reduces", "effect of", "works through"):
        assert causal not in plain, causal


def test_table1_says_when_tied_exposure_values_form_fewer_tertiles() -> None:
    from accord.report.ledger import Ledger
    from accord.report.sections.sample import _grouping, _table1

    # A share of jointly set goals is often 0: with 40 of 50 clients at 0, the 1/3 and 2/3
    # quantiles are both 0, and two groups form (0, and above 0).
    share = [0.0] * 40 + [1.0] * 10
    clients = pd.DataFrame(
        {"client_id": [f"C{i:03d}" for i in range(50)], "joint_goal_share": share}
    )
    groups, by = _grouping(clients, "joint_goal_share")
    shown = _table1(clients, groups, by, 11, Ledger())
    assert shown.caption == "Baseline characteristics by Joint goal-setting share tertile"
    assert "tertile cut points coincide: 2 groups instead of three" in shown.note
    # Neither arm nor exposure: one column of all clients, and no "by" in the caption.
    groups, by = _grouping(clients.drop(columns="joint_goal_share"), "joint_goal_share")
    assert _table1(clients, groups, by, 11, Ledger()).caption == "Baseline characteristics"


def test_report_shows_df_r_squared_and_profile_intervals(tmp_path) -> None:
    """The hand-made results of the report tests, with a growth model that carries the
    extras: its table gains df and p (Satterthwaite), its random-effects table the SD
    intervals, the correlation and R^2, and the methods say how each was computed."""
    from accord.core.disclosure import NOT_AVAILABLE
    from accord.models.engine import inference as mi

    root = write_hand_results(tmp_path / "results")
    coefficients = pd.read_csv(root / "models" / "coefficients.csv")
    growth = coefficients["model"] == "growth"
    coefficients.loc[growth, "df"] = [48.26, 47.5]
    coefficients.loc[growth, "p_satterthwaite"] = [2e-9, 0.0031]
    coefficients.to_csv(root / "models" / "coefficients.csv", index=False)
    diagnostics = json.loads((root / "models" / "diagnostics.json").read_text())
    diagnostics["growth"]["random_effects"]["client_intercept_slope_covariance"] = -0.5
    diagnostics["growth"]["r_squared"] = {"marginal": 0.123, "conditional": 0.789}
    diagnostics["growth"]["variance_parameters"] = [
        {"group": "therapist", "term": "therapist_intercept_sd", "estimate": 1.0,
         "ci_low": 0.0, "ci_high": 1.5, "method": mi.PROFILE_METHOD},
        {"group": "client", "term": "client_intercept_slope_correlation", "estimate": -0.31,
         "ci_low": -0.6, "ci_high": 0.05, "method": mi.PROFILE_METHOD},
    ]  # fmt: skip
    (root / "models" / "diagnostics.json").write_text(json.dumps(diagnostics))
    out = tmp_path / "report" / "report.html"
    render_report(root, out, study="hand", config=CONFIG, run_date=RUN_DATE)
    text = out.read_text(encoding="utf-8")
    tables = html_tables(text)
    fixed = tables["models_growth"]
    assert [row[-2:] for row in fixed] == [["48.3", "< .001"], ["47.5", ".003"]]
    random = {row[0]: row for row in tables["models_growth_random_effects"]}
    assert random["Therapist intercept"][1:] == ["1", "1", "[0.00, 1.50]"]
    assert random["Client intercept"][-1] == NOT_AVAILABLE
    assert random["Client intercept-slope correlation"][2:] == ["\u22120.31", "[\u22120.60, 0.05]"]
    assert random["R\u00b2 marginal"][1:3] == [".12", ""]
    assert random["R\u00b2 conditional"][1:3] == [".79", ""]
    methods = text.split('id="methods"', 1)[1].split("</section>", 1)[0]
    assert "Satterthwaite degrees of freedom" in methods
    assert "profile-likelihood intervals" in methods
    supplement = pd.read_csv(out.parent / "tables" / "models_coefficients.csv")
    assert list(supplement.columns[-3:]) == ["df", "p (Satterthwaite)", "Test"]


def test_wald_intervals_of_a_large_study_are_named_as_such(tmp_path) -> None:
    """A growth model of more clients than the profile limit carries Wald intervals: the
    random-effects note and the methods say so, and no profile is claimed."""
    from accord.models.engine import inference as mi

    root = write_hand_results(tmp_path / "results")
    diagnostics = json.loads((root / "models" / "diagnostics.json").read_text())
    diagnostics["growth"]["variance_parameters"] = [
        {"group": "therapist", "term": "therapist_intercept_sd", "estimate": 1.0,
         "ci_low": 0.8, "ci_high": 1.2, "method": mi.WALD_METHOD},
    ]  # fmt: skip
    (root / "models" / "diagnostics.json").write_text(json.dumps(diagnostics))
    out = tmp_path / "report" / "report.html"
    render_report(root, out, study="hand", config=CONFIG, run_date=RUN_DATE)
    text = out.read_text(encoding="utf-8")
    random = {row[0]: row for row in html_tables(text)["models_growth_random_effects"]}
    assert random["Therapist intercept"][-1] == "[0.80, 1.20]"
    methods = text.split('id="methods"', 1)[1].split("</section>", 1)[0]
    assert "are Wald intervals" in methods and "profile-likelihood intervals" not in methods
    assert "more than 100,000 clients" in methods
    assert "95% CI: Wald interval of the SD" in text


def test_dropout_groups_say_when_tied_exposure_values_form_fewer_tertiles(tmp_path) -> None:
    from accord.report.context import Inputs, ReportContext
    from accord.report.sections.dropout import _cumulative_incidence

    # No arm: the groups are tertiles of the exposure; with 40 of 60 clients at 0 both cut
    # points are 0, and two groups form (0, and above 0).
    r = np.random.default_rng(3)
    clients = pd.DataFrame(
        {
            "client_id": [f"C{i:03d}" for i in range(60)],
            "joint_goal_share": [0.0] * 40 + [1.0] * 20,
            "sessions_to_dropout": r.integers(1, 10, 60).astype(float),
            "dropout_event": r.random(60) < 0.3,
        }
    )

    def context(frame: pd.DataFrame) -> ReportContext:
        return ReportContext(
            study="s",
            config={"analysis": {"primary_exposure": "joint_goal_share"}},
            min_cell=11,
            run_date="",
            inputs=Inputs(tmp_path),
            clients=frame,
        )

    parts = _cumulative_incidence(context(clients))
    sentence = "tertile cut points coincide: 2 groups instead of three"
    at_risk = parts[-1]
    assert at_risk.caption.endswith("by tertile of joint_goal_share")
    assert sentence in at_risk.note
    assert sentence in parts[0].caption
    # Three distinct tertiles: no such sentence.
    clients["joint_goal_share"] = np.linspace(0, 1, 60)
    assert sentence not in _cumulative_incidence(context(clients))[-1].note
