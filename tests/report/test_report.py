"""The study report renders from a results folder, self-contained, with small cells suppressed."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from disclosure_attacks import every_attack

from accord.models import fit_growth, write_model_result
from accord.report import render_report
from accord.report.figures import share_histogram, to_plot

CONFIG = {
    "studies": {"fixture": {"path": "data/fixture"}},
    "analysis": {"primary_outcome": "phq9", "primary_exposure": "joint_goal_share"},
    "privacy": {"min_cell": 11},
}
RUN_DATE = "2026-01-15"


def client_ids(n: int, prefix: str = "PSEUDO") -> list[str]:
    return [f"{prefix}{i:03d}X" for i in range(n)]


def write_results(
    root: Path,
    *,
    arms: dict[str, int],
    sessions: int = 6,
    seed: int = 1,
    fit_model: bool = True,
) -> Path:
    """A results folder as the pipeline writes it, for clients split over `arms`."""
    rng = np.random.default_rng(seed)
    n = sum(arms.values())
    ids = client_ids(n)
    arm = np.repeat(list(arms), list(arms.values()))
    x = rng.uniform(0, 1, n)
    therapist = np.array([f"THER{j}" for j in rng.integers(0, 6, n)])
    dropout = rng.uniform(size=n) < 0.3
    clients = pd.DataFrame(
        {
            "client_id": ids,
            "arm": arm,
            "joint_goal_share": x,
            "attendance_rate": rng.uniform(0.5, 1, n),
            "sessions_attended": rng.integers(2, sessions + 1, n),
            "dropout": dropout,
        }
    )
    rows = []
    for i in range(n):
        base = rng.normal(15, 4)
        slope = -0.5 - 0.5 * x[i] + rng.normal(0, 0.2)
        for s in range(sessions + 1):
            rows.append((ids[i], s, therapist[i], arm[i], base + slope * s + rng.normal(0, 2)))
    panel = pd.DataFrame(
        rows, columns=["client_id", "session_number", "therapist_id", "arm", "phq9"]
    )
    (root / "validation").mkdir(parents=True)
    (root / "models").mkdir()
    clients.to_parquet(root / "client_measures.parquet")
    panel.to_parquet(root / "session_panel.parquet")
    summary = {
        "tables": {
            "clients": {
                "rows_in": n + 3,
                "rows_accepted": n,
                "rows_quarantined": 3,
                "missing_codes_replaced": 0,
            },
            "sessions": {
                "rows_in": 500,
                "rows_accepted": 500,
                "rows_quarantined": 0,
                "missing_codes_replaced": 12,
            },
        }
    }
    (root / "validation" / "summary.json").write_text(json.dumps(summary))
    pd.DataFrame(
        {
            "table": ["clients"] * 3,
            "row_number": [4, 9, 17],
            "client_id": ["QUARANTINED1", "QUARANTINED2", "QUARANTINED3"],
            "rule": ["pattern", "pattern", "unique"],
            "column": ["client_id", "client_id", "client_id"],
        }
    ).to_csv(root / "validation" / "quarantine.csv", index=False)
    if fit_model:
        result = fit_growth(panel, clients, therapist_effect=False)
        write_model_result(
            result, root / "models" / "coefficients.csv", root / "models" / "diagnostics.json"
        )
    return root


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name == "id":
                self.ids.add(value)
            elif name == "href":
                self.hrefs.append(value)
            elif name == "src":
                self.srcs.append(value)


def parse(html: str) -> _Links:
    links = _Links()
    links.feed(html)
    return links


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> tuple[Path, str]:
    root = write_results(
        tmp_path_factory.mktemp("large") / "results", arms={"collaborative": 30, "usual_care": 30}
    )
    out = root.parent / "report.html"
    render_report(root, out, study="fixture", config=CONFIG, run_date=RUN_DATE)
    return root, out.read_text(encoding="utf-8")


def test_report_has_every_section_and_working_contents_links(large):
    _, html = large
    links = parse(html)
    for section in ("summary", "data", "sample", "engagement", "outcomes", "models", "provenance"):
        assert section in links.ids
        assert f"#{section}" in links.hrefs
    assert all(h.startswith("#") and h[1:] in links.ids for h in links.hrefs)


def test_report_is_self_contained(large):
    _, html = large
    links = parse(html)
    assert "http:" not in html and "https:" not in html and "//" not in "".join(links.hrefs)
    assert links.srcs and all(s.startswith("data:image/svg+xml;base64,") for s in links.srcs)
    assert "script" not in links.tags and "link" not in links.tags


def test_report_never_prints_a_client_id(large):
    root, html = large
    ids = pd.read_parquet(root / "client_measures.parquet")["client_id"]
    assert not any(i in html for i in ids)
    assert "QUARANTINED" not in html
    assert "THER" not in html


def test_report_states_the_primary_estimate_and_the_model_table(large):
    root, html = large
    coefficients = pd.read_csv(root / "models" / "coefficients.csv")
    primary = coefficients.loc[coefficients["primary"]].iloc[0]
    # APA: two decimals for an estimate whose SE is not below .01, in the Summary and the table.
    assert primary["std_error"] >= 0.01
    b = f"{primary['estimate']:.2f}".replace("-", "\u2212")
    assert f"b = {b}" in html
    assert "Outcome (Growth;" in html
    assert "Time \u00d7 Joint goal-setting share (primary)" in html
    # Only the primary row is emphasised, once in the whole report.
    assert html.count('class="primary"') == 1
    assert "Client slope (time)" in html
    assert "Converged: yes" in html


def test_data_section_shows_data_quality_counts_whole(large):
    _, html = large
    # clients: 63 in = 60 accepted + 3 quarantined; rows are records, not people's
    # attributes, so 3 is shown (60 clients validated is no small count).
    assert "<td>clients</td><td>63</td><td>60</td><td>3</td><td>0</td>" in html
    assert "<td>sessions</td><td>500</td><td>500</td><td>0</td><td>12</td>" in html
    # Two rows broke the pattern rule and one the uniqueness rule: shown as they are.
    assert re.search(
        r"<td class=\"text\">pattern</td><td class=\"text\">client_id</td><td>2</td>",
        html,
    )


def test_rendering_is_deterministic_and_the_run_date_is_pinned(large, tmp_path, monkeypatch):
    root, html = large
    again = tmp_path / "again.html"
    render_report(root, again, study="fixture", config=CONFIG, run_date=RUN_DATE)
    assert again.read_text(encoding="utf-8") == html
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # 2026-01-01T00:00:00Z
    dated = tmp_path / "dated.html"
    render_report(root, dated, study="fixture", config=CONFIG)
    assert "Run date 2026-01-01" in dated.read_text(encoding="utf-8")


def test_small_cell_study_shows_less_than_11_and_draws_no_small_group(tmp_path):
    root = write_results(tmp_path / "results", arms={"collaborative": 40, "pilot": 6})
    out = tmp_path / "report.html"
    render_report(root, out, study="small", config=CONFIG, run_date=RUN_DATE)
    html = out.read_text(encoding="utf-8")
    # Clients by arm: 6 is small; 40 is withheld too, since 46 - 40 would give it away.
    assert '<td class="text">Clients, n</td><td>*</td><td>&lt;11</td><td>46</td>' in html
    # The pilot arm's engagement statistics and trajectory are withheld at every session.
    pilot_row = re.search(r"<tr><td>pilot</td>(.*?)</tr>", html.split('id="engagement"')[1])
    assert pilot_row is not None
    assert pilot_row.group(1).count("&lt;11") == 3
    outcome_rows = re.findall(
        r"<tr><td>\d+</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", html
    )
    assert len(outcome_rows) == 7  # sessions 0..6
    assert all(pilot == "&lt;11" for _, pilot, _ in outcome_rows)
    assert all(collab.count("[") == 1 for collab, _, _ in outcome_rows)
    assert all(assessed == "46" for _, _, assessed in outcome_rows)


def test_model_estimates_from_fewer_than_11_clients_are_withheld(tmp_path):
    root = write_results(tmp_path / "results", arms={"a": 5, "b": 4}, fit_model=True)
    out = tmp_path / "report.html"
    render_report(root, out, study="tiny", config=CONFIG, run_date=RUN_DATE)
    html = out.read_text(encoding="utf-8")
    assert "The primary estimate is withheld" in html
    assert "Clients: &lt;11." in html
    assert "b = " not in html
    assert "No session had 11 or more clients" in html


def test_study_without_arms_and_with_per_model_diagnostics(tmp_path):
    root = write_results(tmp_path / "results", arms={"all": 30})
    for name in ("client_measures.parquet", "session_panel.parquet"):
        pd.read_parquet(root / name).drop(columns="arm").to_parquet(root / name)
    (root / "models" / "growth").mkdir()
    diagnostics = json.loads((root / "models" / "diagnostics.json").read_text())
    diagnostics["warnings"] = [
        "3 client(s) left out for a missing exposure or covariate",
        "therapist variance not estimated: 4 therapist(s) with known id, fewer than 5",
    ]
    (root / "models" / "growth" / "diagnostics.json").write_text(json.dumps(diagnostics))
    (root / "models" / "diagnostics.json").unlink()
    out = tmp_path / "report.html"
    render_report(root, out, study="single", config=CONFIG, run_date=RUN_DATE)
    html = out.read_text(encoding="utf-8")
    assert "<caption>Clients by arm</caption>" not in html
    assert "<tr><td>All clients</td>" in html
    assert "Client slope (time)" in html  # diagnostics found under models/growth/
    assert "models/growth/diagnostics.json" in html
    assert "&lt;11 client(s) left out for a missing exposure" in html
    assert "&lt;11 therapist(s) with known id, fewer than 5" in html


def test_missing_optional_files_are_reported_not_fatal(tmp_path):
    root = tmp_path / "results"
    (root / "validation").mkdir(parents=True)
    (root / "validation" / "summary.json").write_text(json.dumps({"tables": {}}))
    out = tmp_path / "report.html"
    render_report(root, out, study="empty", config={}, run_date=RUN_DATE)
    html = out.read_text(encoding="utf-8")
    assert "No model results were found" in html
    assert "No client measures were found" in html
    assert "No primary model estimate was found" in html
    assert "validation/summary.json" in html  # listed under files read


def test_missing_results_folder_is_a_clear_error(tmp_path):
    from accord.core.errors import AccordError

    with pytest.raises(AccordError, match="does not exist"):
        render_report(tmp_path / "nope", tmp_path / "r.html", study="x", config={})


# -- measures, alliance, goal-setting and clinical change ----------------------------------
#
# A hand-made results folder: 48 clients in the collaborative arm and 46 in usual care, with
# client measures whose counts and means are worked out below, the measure and scoring
# settings, a reliability table and a session panel.

MINUS = "\u2212"


def _flags(yes: int, no: int, undefined: int = 0) -> list:
    return [True] * yes + [False] * no + [None] * undefined


def _arm_measures(n: int, *, x: list[float], spec: dict) -> pd.DataFrame:
    return pd.DataFrame({"joint_goal_share": x, **spec}, index=range(n))


def write_measures_results(root: Path) -> Path:
    """Client measures, panel, metadata and reliability with hand-chosen values.

    Jacobson-Truax categories (primary outcome PHQ-9):
        collaborative 14 recovered, 12 improved, 20 unchanged, 0 deteriorated (46; 2 undefined)
        usual_care    11 recovered, 13 improved, 15 unchanged, 5 deteriorated (44; 2 undefined)
    NHS recovery: 18 of 36 cases and 12 of 30 cases; reliable recovery 15 of 36 and 5 of 30.
    Joint goal share alternates 0.25/0.75 (collaborative) and 0/1 (usual care), attendance rate
    is 1 minus it (r = -1), early alliance is 4 for everyone (r undefined) and PHQ-9 change is
    known for 8 clients only (r withheld).
    """
    arms = {"collaborative": 48, "usual_care": 46}
    parts = []
    for arm, n in arms.items():
        collaborative = arm == "collaborative"
        x = [0.25, 0.75] * (n // 2) if collaborative else [0.0, 1.0] * (n // 2)
        categories = (
            ["recovered"] * 14 + ["improved"] * 12 + ["unchanged"] * 20 + [None] * 2
            if collaborative
            else ["recovered"] * 11
            + ["improved"] * 13
            + ["unchanged"] * 15
            + ["deteriorated"] * 5
            + [None] * 2
        )
        cases = 36 if collaborative else 30
        recovered = 18 if collaborative else 12
        reliably_recovered = 15 if collaborative else 5
        ruptured = 24 if collaborative else 23
        repaired = 12 if collaborative else 3
        spec = {
            "arm": arm,
            "sessions_attended": [6] * n,
            "attendance_rate": [1 - v for v in x],
            "homework_rate": [0.4, 0.6] * (n // 2) if collaborative else [0.5] * n,
            "goal_review_rate": [0.5] * n if collaborative else [0.5] * 9 + [None] * (n - 9),
            "dropout": [False] * n,
            "early_alliance": [4.0] * n,
            "mean_alliance": [4.0] * n,
            "alliance_slope": [0.0] * n,
            "ruptures_1sd": [1] * ruptured + [0] * (n - ruptured),
            "ruptures_repaired_1sd": [1] * repaired + [0] * (n - repaired),
            "goal_consensus": [3 + v for v in x]
            if collaborative
            else [3 + v for v in x[:10]] + [None] * (n - 10),
            "goal_agreement": [0.9] * n,
            "smart_quality": [0.6] * n,
            "gas_t": [50.0] * n,
            "phq9_change": [-5.0, -3.0, -1.0, -7.0] + [None] * (n - 4),
            "phq9_category": categories,
            "nhs_finished": [True] * n,
            "nhs_caseness": _flags(cases, n - cases),
            "nhs_recovery": _flags(recovered, cases - recovered, n - cases),
            "nhs_reliable_improvement": _flags(20, n - 20),
            "nhs_reliable_recovery": _flags(
                reliably_recovered, cases - reliably_recovered, n - cases
            ),
            "nhs_reliable_deterioration": [False] * n,
        }
        parts.append(_arm_measures(n, x=x, spec=spec))
    clients = pd.concat(parts, ignore_index=True)
    clients.insert(0, "client_id", client_ids(len(clients), prefix="GOAL"))
    for column in clients.columns:
        if column.startswith("nhs_") or column == "dropout":
            clients[column] = clients[column].astype("boolean")
    clients["phq9_category"] = clients["phq9_category"].astype("string")
    for column in ("ruptures_1sd", "ruptures_repaired_1sd", "sessions_attended"):
        clients[column] = clients[column].astype("Int64")

    rows = []
    for cid, arm in zip(clients["client_id"], clients["arm"], strict=True):
        for s in range(6):
            alliance = 3.5 + 0.1 * s if s % 2 == 1 else None  # assessed every other session
            rows.append((cid, s, arm, 15.0 - s, alliance))
    panel = pd.DataFrame(rows, columns=["client_id", "session_number", "arm", "phq9", "alliance"])

    root.mkdir(parents=True)
    clients.to_parquet(root / "client_measures.parquet")
    panel.to_parquet(root / "session_panel.parquet")
    metadata = {
        "dropout_definition": "min_sessions",
        "outcome_instruments": ["phq9"],
        "change_thresholds": {
            "phq9": {
                "cutoff": 10.0,
                "cutoff_source": "registry",
                "higher_is": "worse",
                "reliability": 0.89,
                "reliable_change": 6.0,
                "reliable_change_method": "rci",
                "rci_threshold_points": 5.55,
                "rci_z": 1.96,
                "sd_pre": 5.0,
                "sd_source": "intake",
            }
        },
        "settings": {
            "dropout_definition": "min_sessions",
            "dropout_min_sessions": 3,
            "change_method": "rci",
            "clinical_cutoff": "registry",
            "alliance_instrument": "wai_sr",
            "alliance_scale": "total",
            "alliance_rater": "client",
            "early_sessions": 3,
            "rupture_sds": [1],
            "rupture_repair_window": 3,
        },
    }
    (root / "measures_metadata.json").write_text(json.dumps(metadata))
    scoring = {
        "scoring": {"gas_rho": 0.3, "gas_weights": "importance"},
        "summary": [
            {
                "instrument": "phq9",
                "rater": "client",
                "scale": "total",
                "scored": 400,
                "prorated": 25,
                "not_scored": 3,
            }
        ],
    }
    scores = pa.Table.from_pandas(pd.DataFrame({"score": [1.0]}), preserve_index=False)
    scores = scores.replace_schema_metadata({"accord": json.dumps(scoring)})
    pq.write_table(scores, root / "scores.parquet")
    pd.DataFrame(
        {
            "instrument": ["phq9"] * 3,
            "scale": ["total"] * 3,
            "rater": ["client"] * 3,
            "wave": [0, 1, 2],
            "n": [90, 8, 60],
            "k_items": [9, 9, 9],
            "alpha": [0.8512, 0.70, 0.7801],
            "alpha_ci_low": [0.801, 0.2, 0.70],
            "alpha_ci_high": [0.894, 0.9, 0.85],
            "omega": [0.861, 0.71, None],
            "reason": [None, None, "omega: the one-factor model did not converge"],
        }
    ).to_csv(root / "reliability.csv", index=False)
    return root


def section(html: str, section_id: str) -> str:
    """The part of the report from the heading with `section_id` to the next heading."""
    part = html.split(f'id="{section_id}"', 1)[1].split("</section>", 1)[0]
    return part.split("<h3 id=", 1)[0]


def tables(html: str) -> list[dict[str, list[str]]]:
    """The body rows of each table in `html`, as first cell -> the other cells' text."""
    found = []
    for table in re.findall(r"<table[^>]*>(.*?)</table>", html, flags=re.S):
        rows = {}
        for row in re.findall(r"<tr><td>(.*?)</tr>", table, flags=re.S):
            cells = re.findall(r"<td>(.*?)</td>", "<td>" + row)
            rows[cells[0]] = [re.sub(r"<[^>]+>", " ", c).strip() for c in cells[1:]]
        found.append(rows)
    return found


@pytest.fixture(scope="module")
def measures_report(tmp_path_factory) -> tuple[Path, str]:
    root = write_measures_results(tmp_path_factory.mktemp("measures") / "results")
    out = root.parent / "report.html"
    render_report(root, out, study="fixture", config=CONFIG, run_date=RUN_DATE)
    return root, out.read_text(encoding="utf-8")


def test_new_sections_are_in_the_contents(measures_report):
    _, html = measures_report
    links = parse(html)
    for anchor in ("measures", "alliance", "goal-setting", "clinical-change"):
        assert anchor in links.ids
        assert f"#{anchor}" in links.hrefs
    assert all(h.startswith("#") and h[1:] in links.ids for h in links.hrefs)


def test_reliability_shows_intake_and_first_wave_and_suppresses_a_small_wave(measures_report):
    _, html = measures_report
    (rows,) = tables(section(html, "reliability"))
    # Intake: n 90, alpha .85 [.80, .89], omega .86; wave 1 has 8 forms, so it is withheld;
    # the range of alpha covers waves 0 and 2 only.
    assert rows["PHQ-9"] == [
        "90",
        ".85 [.80, .89]",
        ".86",
        "1",
        "&lt;11",
        "&lt;11",
        "&lt;11",
        ".78\u2013.85 (2 waves)",
    ]
    assert "PHQ-9, wave 2: omega: the one-factor model did not converge" in html


def test_choices_list_names_the_dropout_definition_and_the_change_rules(measures_report):
    _, html = measures_report
    measures = section(html, "scoring-choices")
    assert (
        '<td class="text">Dropout</td><td class="text">Fewer than 3 sessions attended '
        "(dropout_definition = min_sessions).</td>" in measures
    )
    assert (
        "PHQ-9 |RCI| &gt; 1.96, i.e. 5.55 points (Jacobson-Truax with r_xx = .89 and "
        "SD_pre = 5.00 from intake)." in measures
    )
    assert (
        '<td class="text">Clinical cut-offs (clinical_cutoff = registry)</td>'
        '<td class="text">PHQ-9 \u2265 10.</td>' in measures
    )
    # Prorating from the registry (PHQ-9: up to 2 of 9 items), counts from the scoring summary.
    assert (
        "Total prorated (sum \u00d7 9 / answered) when at most 2 of 9 items are missing" in measures
    )
    # Forms prorated or not scored are data-quality counts, shown whole (3 not scored).
    assert "(25 of 400 scored forms prorated; 3 not scored)" in measures
    assert "\u03c1 = 0.30 and the client&#39;s importance ratings as goal weights" in measures
    assert "k = 1; repaired when the alliance is back" in measures
    # The engagement note uses the same definition.
    assert "Dropout: fewer than 3 sessions attended" in section(html, "engagement")


def test_engagement_shows_homework_and_goal_review_rates(measures_report):
    _, html = measures_report
    (rows,) = tables(section(html, "engagement"))
    # Homework 0.4/0.6 alternating: mean 50%, SD sqrt(48 x 0.01 / 47) = 10%.
    assert rows["collaborative"][2] == "50% (10%)"
    assert rows["usual_care"][2] == "50% (0%)"
    # Goal reviews known for 9 usual-care clients: withheld, and so is the overall mean,
    # from which the usual-care mean could otherwise be worked out.
    assert rows["collaborative"][3] == "50% (0%)"
    assert rows["usual_care"][3] == "&lt;11"
    assert rows["All clients"][3] == "&lt;11"


def test_alliance_section_has_table_trajectory_and_ruptures(measures_report):
    _, html = measures_report
    alliance = section(html, "alliance")
    levels, rows = tables(alliance)
    assert levels["collaborative"][:2] == ["48", "4.00 (0.00)"]
    assert alliance.count("data:image/svg+xml;base64,") == 1  # every other session, one line
    # Ruptures: 24 of 48 and 23 of 46 clients; repaired 12 of 24 and 3 of 23. The small
    # usual-care count is withheld, and the collaborative one with it (the total is shown).
    assert rows["collaborative"][-2:] == ["24 (50.0%)", "*"]
    assert rows["usual_care"][-2:] == ["23 (50.0%)", "&lt;11"]
    assert rows["All clients"][-2:] == ["47 (50.0%)", "15 (31.9%)"]


def test_goal_setting_exposures_and_correlations(measures_report):
    _, html = measures_report
    goals = section(html, "goal-setting")
    rows, correlations = tables(goals)
    # 0.25/0.75 alternating: mean 0.50, SD sqrt(48 x 0.0625 / 47) = 0.25; 0/1: SD 0.51;
    # together sqrt((48 x 0.0625 + 46 x 0.25) / 93) = 0.39.
    assert rows["Joint goal share"] == [
        "0.50 (0.25)",
        "48",
        "0.50 (0.51)",
        "46",
        "0.50 (0.39)",
        "94",
    ]
    # Goal consensus for 10 usual-care clients: mean and n withheld, the collaborative n is
    # withheld too (it and the total would give the 10 away), and so is the overall mean.
    # The total is withheld as well: the collaborative n is at most the arm's 48 clients, so
    # 58 would put the usual-care n at 58 - 48 = 10 or more, i.e. exactly 10.
    assert rows["Goal consensus"][:4] == ["3.50 (0.25)", "*", "&lt;11", "&lt;11"]
    assert rows["Goal consensus"][4:] == ["&lt;11", "*"]
    assert goals.count("data:image/svg+xml;base64,") == 1  # the joint goal share histogram
    cells = correlations["Joint goal share"]
    # Early alliance does not vary; attendance is 1 minus the share; PHQ-9 change is known
    # for 8 clients only.
    assert cells[:2] == ["\u2013", "\u2013"]
    assert cells[2].startswith(f"{MINUS}1.00")
    assert cells[4] == "&lt;11"
    assert "(n = 58 to 94)" in goals


def test_clinical_change_categories_with_small_and_complementary_cells(measures_report):
    _, html = measures_report
    categories, _ = tables(html.split('id="clinical-change"', 1)[1].split("</section>")[0])
    # Arms of 48 and 46 clients, of whom 46 and 44 have a category: 2 and 2 without one, counts
    # of people withheld when small. So each row's total is withheld, and one cell of each row
    # with it (else the row would sum back to the total); no percentage of a withheld total.
    # What a reader can still deduce, by hand: collaborative n = recovered + 32 with 1..10
    # clients without (so 38..47), and all clients' n is 94 minus 1..10 while usual care's is
    # at most 45, so collaborative n >= 84 - 45 = 39.
    assert categories["collaborative"] == ["*", "12", "20", "0", "39\u201347"]
    assert categories["usual_care"] == ["*", "13", "15", "&lt;11", "37\u201345"]
    assert categories["All clients"] == ["*", "25", "35", "&lt;11", "84\u201392"]


def test_nhs_indicators_use_cases_as_the_recovery_denominator(measures_report):
    _, html = measures_report
    _, nhs = tables(html.split('id="clinical-change"', 1)[1].split("</section>")[0])
    finished, caseness, recovery, improvement, reliable_recovery, deterioration = nhs[
        "collaborative"
    ]
    assert finished == "48 (100.0%)"
    assert caseness == "36 (75.0%)"
    assert recovery == "18 (50.0%)"  # 18 of 36 cases, not of 48 finished
    assert improvement == "20 (41.7%)"
    assert reliable_recovery == "*"  # protects usual care's 5
    assert deterioration == "0 (0.0%)"
    assert nhs["usual_care"][2] == "12 (40.0%)"
    assert nhs["usual_care"][4] == "&lt;11"
    assert nhs["All clients"][2] == "30 (45.5%)"
    assert nhs["All clients"][4] == "20 (30.3%)"


def test_measures_report_prints_no_client_id(measures_report):
    root, html = measures_report
    ids = pd.read_parquet(root / "client_measures.parquet")["client_id"]
    assert not any(i in html for i in ids)


def test_histogram_is_not_drawn_when_an_arm_is_small(tmp_path):
    root = write_measures_results(tmp_path / "results")
    clients = pd.read_parquet(root / "client_measures.parquet")
    keep = (clients["arm"] == "collaborative") | (clients.index < 48 + 8)
    clients.loc[keep].to_parquet(root / "client_measures.parquet")
    out = tmp_path / "report.html"
    render_report(root, out, study="fixture", config=CONFIG, run_date=RUN_DATE)
    goals = section(out.read_text(encoding="utf-8"), "goal-setting")
    assert "data:image/svg+xml;base64," not in goals
    assert "an arm has fewer than 11 clients" in goals


def test_share_histogram_needs_min_cell_clients_per_group_and_is_deterministic():
    big = pd.Series([0.1] * 20 + [0.9] * 15 + [0.5] * 3)
    assert share_histogram([("a", big), ("b", big.iloc[:10])], xlabel="x") is None
    first = to_plot(share_histogram([("a", big), ("b", big)], xlabel="x"), "h", alt="", caption="")
    again = to_plot(share_histogram([("a", big), ("b", big)], xlabel="x"), "h", alt="", caption="")
    assert first.png.startswith(b"\x89PNG") and first.svg.startswith(b"<?xml")
    assert (first.png, first.svg) == (again.png, again.svg)
    # Every bin withheld: nothing to draw.
    spread = pd.Series([0.1] * 5 + [0.3] * 5 + [0.5] * 5)
    assert share_histogram([("a", spread)], xlabel="x") is None


def test_missing_measure_files_are_reported(tmp_path):
    root = write_results(tmp_path / "results", arms={"a": 20, "b": 20}, fit_model=False)
    out = tmp_path / "report.html"
    render_report(root, out, study="plain", config=CONFIG, run_date=RUN_DATE)
    html = out.read_text(encoding="utf-8")
    assert "No reliability table was found (reliability.csv)" in html
    assert "No scoring settings (scores.parquet) or measure settings" in html
    assert "No alliance measures were found" in html
    assert "No NHS Talking Therapies indicators were found" in html
    assert "No PHQ-9 change categories were found" in html
    # The dropout definition then comes from the config (default end_reason).
    assert "Dropout: the recorded end reason is dropout" in html


def test_no_withheld_count_is_worked_back_across_tables(large, measures_report):
    """Both fixture reports, attacked by subtraction and by percentages
    (tests/disclosure_attacks.py)."""
    recovered = []
    for root, _ in (large, measures_report):
        recovered += every_attack(root.parent, 11)
    assert recovered == [], "\n".join(recovered)
