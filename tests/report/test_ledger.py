"""The audit over every count a report publishes together (accord.report.ledger), on the
cross-table attacks worked out by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from disclosure_attacks import every_attack, pinned_denominator

from accord.report import aggregate as agg
from accord.report.ledger import SIZE, Ledger


def _build_until_protected(build) -> Ledger:
    """Run `build(ledger)` as the report does: again while the audit withholds more."""
    ledger = Ledger(11)
    for _ in range(8):
        build(ledger)
        if not ledger.protect():
            return ledger
        ledger = ledger.next_build()
    raise AssertionError("the audit did not settle")


def test_a_model_n_beside_the_clients_validated_gives_the_left_out_count_away():
    # 100 validated, 94 analysed: "left out" 6 is withheld in its table, but the model table
    # printing 94 gives 100 - 94 = 6. The model's n is withheld and reads as the range the
    # rest gives away anyway: 100 - 10 .. 100 - 1.
    printed = {}

    def build(ledger: Ledger) -> None:
        ledger.count("clients", 100, role=SIZE)
        ledger.count("model[lagged].left", 6)
        ledger.relate("clients", ["model[lagged].clients", "model[lagged].left"])
        printed["models table"] = ledger.model_clients("lagged", 94)
        printed["summary"] = ledger.model_clients("lagged", 94)

    first = Ledger(11)
    build(first)
    assert [e.key for e in first.exposures()] == ["model[lagged].left"]
    ledger = _build_until_protected(build)
    assert printed == {"models table": "90\u201399", "summary": "90\u201399"}
    assert ledger.exposures() == []


def test_the_observations_of_a_model_of_clients_are_audited_as_clients():
    # Clinical change: a row per client and outcome, 36 rows against up to 39 clients of 40
    # validated. 36 printed as observations gives 40 - 36 = 4 clients left out, so it is
    # withheld; a reader still knows it is 40 minus 1..10: 30..39.
    printed = {}

    def build(ledger: Ledger) -> None:
        ledger.count("clients", 40, role=SIZE)
        printed["observations"] = ledger.model_observations("clinical_change", 36, 39)

    ledger = _build_until_protected(build)
    assert printed == {"observations": "30\u201339"}
    assert ledger.exposures() == []


def test_clients_with_a_measure_beside_the_arm_sizes_give_the_missing_away():
    # Arms of 50 and 50; GAS for 48 and 47: 2 and 3 clients without it, counts of people
    # withheld when small. Both arms' n and the total's are withheld. What a reader can still
    # deduce, by hand: each arm's n is 50 minus 1..10, so 40..49, and the total is 100 minus
    # 1..10 and at most 49 + 49, so 90..98; then an arm is at least 90 - 49 = 41.
    clients = pd.DataFrame(
        {
            "arm": ["a"] * 50 + ["b"] * 50,
            "gas_t": [50.0] * 48 + [None] * 2 + [50.0] * 47 + [None] * 3,
        }
    )
    grouped = agg.groups(clients)
    cells = {}

    def build(ledger: Ledger) -> None:
        for name, part in grouped:
            ledger.count(agg.group_key(name), len(part), role=SIZE)
        ledger.relate("clients", ["clients[a]", "clients[b]"])
        cells["n"] = agg.n_cells(grouped, "gas_t", 11, ledger=ledger)

    ledger = _build_until_protected(build)
    assert cells["n"] == ["41\u201349", "41\u201349", "90\u201398"]
    assert ledger.exposures() == []


def test_a_percentage_gives_its_denominator_away():
    # "Recovery 48 (26.8%)" of cases: 48 / d rounds to 26.8% only for d = 179, so a withheld
    # caseness count of 179 is known, and with 185 finished, 6 not at caseness.
    assert pinned_denominator(48, "26.8") == 179
    ledger = Ledger(11)
    ledger.count("finished", 185, role=SIZE)
    ledger.count("cases", 179, "*")
    ledger.unpublished("not_cases", 6)
    ledger.relate("finished", ["cases", "not_cases"])
    ledger.count("recovered", 48)
    ledger.percentage("recovered", "cases", "48 (26.8%)")
    assert [e.key for e in ledger.exposures()] == ["not_cases"]
    assert ledger.protect()
    assert ledger.is_withheld("recovered")
    assert ledger.exposures() == []


def test_the_attacks_find_each_leak_in_a_report_built_to_leak(tmp_path: Path):
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame(
        {
            "Characteristic": ["Clients, n"],
            "a": ["50"],
            "b": ["50"],
            "Total": ["100"],
        }
    ).to_csv(tables / "table1_sample.csv", index=False)
    pd.DataFrame(
        {"Model": ["lagged"], "Clients validated": ["100"], "Analysed": ["*"], "Left out": ["<11"]}
    ).to_csv(tables / "data_clients_analysed.csv", index=False)
    pd.DataFrame({"Model": ["lagged"], "Clients": ["94"], "Observations": ["500"]}).to_csv(
        tables / "models_fit.csv", index=False
    )
    pd.DataFrame({"Exposure": ["GAS"], "a: n": ["48"], "b: n": ["47"]}).to_csv(
        tables / "goals.csv", index=False
    )
    pd.DataFrame({"Group": ["a"], "Recovery (% of cases)": ["12 (26.7%)"]}).to_csv(
        tables / "nhs.csv", index=False
    )
    found = every_attack(tmp_path, 11)
    assert len(found) == 4, found
    assert "lagged: 100 validated - 94" in found[0]
    assert "a: 50 - 48" in found[1] and "b: 50 - 47" in found[2]
    assert "gives 45; a has 50 so 5 are outside" in found[3]


def _table1_rows(clients: pd.DataFrame) -> dict[str, list[str]]:
    """Table 1 of `clients` by arm, built until the audit settles; rows by label."""
    from accord.report.sections.sample import _table1

    built = {}

    def build(ledger: Ledger) -> None:
        groups = sorted(clients["arm"].unique())
        built["table"] = _table1(clients, groups, clients["arm"], 11, ledger)

    ledger = _build_until_protected(build)
    assert ledger.exposures() == []
    return {row[0].strip("\u2003 "): list(row[1:]) for row in built["table"].rows}


def test_a_table1_percentage_does_not_give_an_arms_missing_count_away():
    # Arm a: 50 clients, 2 without a gender; 24 of the 48 with one are female. "24 (50.0%)"
    # fits 24 / d only for d = 48 (47.95..48.05), so a reader would know 50 - 48 = 2 have
    # no gender, a count Table 1 withholds ("<11" in Missing). Arm b: 50, all with a value.
    clients = pd.DataFrame(
        {
            "client_id": [f"C{i:03d}" for i in range(100)],
            "arm": ["a"] * 50 + ["b"] * 50,
            "gender": ["female"] * 24
            + ["male"] * 24
            + [None] * 2
            + ["female"] * 25
            + ["male"] * 25,
        }
    )
    rows = _table1_rows(clients)
    pinned = [
        cell
        for label in ("female", "male")
        for cell in rows[label][:1]
        if (m := re.match(r"^(\d+) \((\d+\.\d)%\)$", cell))
        and pinned_denominator(int(m.group(1)), m.group(2)) == 48
    ]
    assert pinned == [], rows
    # The SMD of a withheld level's proportions would give its count back as well.
    assert rows["female"][3] == rows["male"][3] == "*"
    assert rows["Gender, n (%)"][-1] == "<11"  # the Missing column, all clients


def test_table1_percentages_are_shown_where_nothing_small_follows_from_them():
    # 50 and 50, everyone with a gender: no count is withheld, so nothing needs protecting.
    clients = pd.DataFrame(
        {
            "client_id": [f"C{i:03d}" for i in range(100)],
            "arm": ["a"] * 50 + ["b"] * 50,
            "gender": ["female"] * 30 + ["male"] * 20 + ["female"] * 25 + ["male"] * 25,
        }
    )
    rows = _table1_rows(clients)
    assert rows["female"][:3] == ["30 (60.0%)", "25 (50.0%)", "55 (55.0%)"]
    assert rows["male"][:3] == ["20 (40.0%)", "25 (50.0%)", "45 (45.0%)"]


def test_the_at_risk_attack_finds_successive_counts_that_differ_by_a_few(tmp_path: Path):
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame({"Characteristic": ["Clients, n"], "a": ["50"], "Total": ["50"]}).to_csv(
        tables / "table1_sample.csv", index=False
    )
    # 50 in arm a, 48 at risk at 0 (2 without a time), 48 then 43 (5 left), 43 then "<11".
    pd.DataFrame({"Arm": ["a"], "0": ["48"], "2": ["48"], "4": ["43"], "6": ["<11"]}).to_csv(
        tables / "dropout_number_at_risk.csv", index=False
    )
    found = every_attack(tmp_path, 11)
    assert found == [
        "dropout_number_at_risk, a: size 50 - 48 at 0",
        "dropout_number_at_risk, a: 48 at 2 - 43 at 4 left",
    ]


def test_a_row_total_gives_a_withheld_cell_away_only_when_it_pins_one(tmp_path: Path):
    # Rows of a category table with its total. Worked by hand, each withheld cell 1..10:
    # a: 27 - 19 - 0 = 8 in two cells: each 1..7, none known (and 19 (70.4%) of the printed
    #    27 adds nothing); b: 27 - 19 = 8 in one cell: known; c: 13 - 11 = 2 in two cells:
    #    both 1; d: 40 - 20 = 20 in two cells: both 10.
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame(
        {
            "Group": ["a", "b", "c", "d"],
            "Recovered": ["<11", "<11", "<11", "<11"],
            "Improved": ["<11", "19 (70.4%)", "<11", "<11"],
            "Unchanged": ["19 (70.4%)", "0 (0.0%)", "11", "20"],
            "Total": ["27", "27", "13", "40"],
        }
    ).to_csv(tables / "outcomes_change_categories.csv", index=False)
    assert every_attack(tmp_path, 11) == [
        "outcomes_change_categories, b: 27 - shown = 8 in 1 cell(s)",
        "outcomes_change_categories, c: 13 - shown = 2 in 2 cell(s)",
        "outcomes_change_categories, d: 40 - shown = 20 in 2 cell(s)",
    ]
