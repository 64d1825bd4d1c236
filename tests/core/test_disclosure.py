"""Small-cell suppression (privacy.md, section 2), on tables worked out by hand."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from accord.core.disclosure import (
    WITHHELD_TEXT,
    coarsened_steps,
    deducible_interval,
    is_protected,
    protection_width,
    shareable_coefficients,
    shareable_record,
    structural_count,
    suppress_count,
    suppress_proportion,
    suppress_statistic,
    suppress_table,
    suppression_mask,
)


@pytest.mark.parametrize(
    ("n", "shown"),
    [(0, "0"), (1, "<11"), (10, "<11"), (11, "11"), (250, "250"), (np.int64(7), "<11")],
)
def test_counts_from_1_to_10_are_shown_as_less_than_11(n, shown):
    assert suppress_count(n) == shown


def test_count_threshold_is_a_setting():
    assert suppress_count(4, min_cell=5) == "<5"
    assert suppress_count(5, min_cell=5) == "5"


def test_missing_count_is_a_dash_and_a_non_count_is_refused():
    assert suppress_count(math.nan) == "–"
    assert suppress_count(None) == "–"
    with pytest.raises(ValueError, match="whole number"):
        suppress_count(-1)
    with pytest.raises(ValueError, match="whole number"):
        suppress_count(2.5)


def test_statistics_from_fewer_than_11_clients_are_suppressed():
    assert suppress_statistic(12.345, n_clients=10) == "<11"
    assert suppress_statistic(12.345, n_clients=11) == "12.3"
    assert suppress_statistic(0.4567, n_clients=40, fmt="{:.0%}") == "46%"
    assert suppress_statistic(3.0, n_clients=0) == "–"
    assert suppress_statistic(math.nan, n_clients=50) == "–"


def test_a_percentage_that_would_give_a_small_count_away_is_suppressed():
    assert suppress_proportion(20, 80) == "25.0%"
    assert suppress_proportion(0, 80) == "0.0%"
    assert suppress_proportion(80, 80) == "100.0%"
    assert suppress_proportion(5, 80) == "<11"  # 5 dropouts of 80
    assert suppress_proportion(75, 80) == "<11"  # 5 stayed
    assert suppress_proportion(0, 8) == "<11"  # fewer than 11 clients
    assert suppress_proportion(0, 0) == "–"
    with pytest.raises(ValueError, match="between 0 and n_clients"):
        suppress_proportion(9, 8)


def test_table_without_totals_gets_primary_suppression_only():
    table = pd.DataFrame({"group": list("abcde"), "n": [0, 3, 11, 10, 25]})
    shown = suppress_table(table, ["n"])
    assert shown["n"].tolist() == ["0", "<11", "11", "<11", "25"]
    assert shown["group"].tolist() == list("abcde")


def test_single_small_cell_in_a_column_with_a_total_hides_the_next_smallest():
    # 8 could be recovered as 48 - 40, so 40 is hidden as well.
    table = pd.DataFrame({"n": [8, 40, 48]}, index=["collaborative", "usual_care", "total"])
    shown = suppress_table(table, ["n"], total_row="total")
    assert shown["n"].tolist() == ["<11", "*", "48"]


def test_complementary_suppression_in_rows_and_columns_until_stable():
    # By hand: 5 is small. Its row (total 55) then hides 20, its column (total 19) hides 14;
    # 20 leaves the 'recovered' column with one hidden cell, so 25 goes too. Every line now
    # holds two hidden cells (or none), and the four hidden cells cannot be solved for.
    table = pd.DataFrame(
        {
            "recovered": [20, 25, 45],
            "improved": [5, 14, 19],
            "unchanged": [30, 12, 42],
            "total": [55, 51, 106],
        },
        index=["collaborative", "usual_care", "total"],
    )
    columns = ["recovered", "improved", "unchanged", "total"]
    shown = suppress_table(table, columns, total_row="total", total_column="total")
    assert shown.loc["collaborative"].tolist() == ["*", "<11", "30", "55"]
    assert shown.loc["usual_care"].tolist() == ["*", "*", "12", "51"]
    assert shown.loc["total"].tolist() == ["45", "19", "42", "106"]
    mask = suppression_mask(table, columns, total_row="total", total_column="total")
    assert int(mask.to_numpy().sum()) == 4


def test_a_shown_zero_is_hidden_when_it_would_give_a_small_cell_away():
    # By hand: 5 is small; hiding the zero beside it leaves a + b = 35 - 30 = 5, so a reader
    # places a in 1..5 (b >= 0): five values, narrower than the protection width of 5 steps
    # (1..6). Hiding 30 as well leaves a + b + c = 35 and a anywhere in 1..10.
    table = pd.DataFrame({"a": [5], "b": [0], "c": [30], "total": [35]})
    shown = suppress_table(table, ["a", "b", "c", "total"], total_column="total")
    assert shown.iloc[0].tolist() == ["<11", "*", "*", "35"]


def test_two_cells_of_one_beside_a_known_total_are_not_pinned():
    # 48 + 1 + 1 = 50. With only the two 1s hidden, each is 1..10 and they add up to 2, so
    # both are exactly 1; hiding 48 leaves x + y + z = 50 with y and z anywhere in 1..10.
    table = pd.DataFrame({"n": [48, 1, 1, 50]}, index=["a", "b", "c", "total"])
    shown = suppress_table(table, ["n"], total_row="total")
    assert shown["n"].tolist() == ["*", "<11", "<11", "50"]


def test_the_protection_width_is_half_the_range_of_a_withheld_count():
    assert protection_width(11) == 5 and protection_width(2) == 0
    assert is_protected(1, 6) and not is_protected(1, 5.5)
    assert is_protected(1, math.inf)


def test_the_deducible_interval_uses_relations_and_percentages():
    # Clients validated 100 (shown), analysed 94 (shown), left out hidden as "<11":
    # left = 100 - 94 exactly.
    knowledge = {"valid": (100, 100), "analysed": (94, 94), "left": (1, 10)}
    relation = {"valid": 1.0, "analysed": -1.0, "left": -1.0}
    assert deducible_interval("left", knowledge, [relation]) == pytest.approx((6, 6))
    # "48 (26.8%)": 48 / d in [0.2675, 0.2685], so d in [178.8, 179.4]: 179 exactly.
    knowledge = {"recovered": (48, 48), "cases": (0, math.inf)}
    low, high = deducible_interval(
        "cases", knowledge, ratios=[("recovered", "cases", 0.2675, 0.2685)]
    )
    assert math.ceil(low) == math.floor(high) == 179


def test_small_total_needs_no_complement():
    table = pd.DataFrame({"a": [4], "b": [3], "total": [7]})
    shown = suppress_table(table, ["a", "b", "total"], total_column="total")
    assert shown.iloc[0].tolist() == ["<11", "<11", "<11"]


def test_a_table_of_only_a_small_total_is_suppressed_and_settles():
    table = pd.DataFrame({"n": [7]}, index=["total"])
    assert suppress_table(table, ["n"], total_row="total")["n"].tolist() == ["<11"]


def test_bad_table_arguments_are_refused():
    table = pd.DataFrame({"n": [1, 2]})
    with pytest.raises(KeyError, match="not in the table"):
        suppress_table(table, ["m"])
    with pytest.raises(KeyError, match="total_row"):
        suppress_table(table, ["n"], total_row="total")
    with pytest.raises(ValueError, match="whole numbers"):
        suppress_table(pd.DataFrame({"n": [1.5]}), ["n"])


# -- more cases, and an audit of complementary suppression ----------------------------------


def test_two_small_cells_in_a_line_protect_each_other():
    # 5 + 3 = 48 - 40: the pair is known, neither cell is, so nothing else is hidden.
    table = pd.DataFrame({"a": [5], "b": [3], "c": [40], "total": [48]})
    shown = suppress_table(table, ["a", "b", "c", "total"], total_column="total")
    assert shown.iloc[0].tolist() == ["<11", "<11", "40", "48"]


def test_table_labels_follow_the_threshold():
    table = pd.DataFrame({"n": [4, 5, 30, 39]}, index=["a", "b", "c", "total"])
    shown = suppress_table(table, ["n"], min_cell=5, total_row="total")
    # 4 is small at min_cell 5; 5 is the next smallest and is hidden to protect it.
    assert shown["n"].tolist() == ["<5", "*", "30", "39"]
    assert suppress_proportion(4, 40, min_cell=5) == "<5"
    assert suppress_proportion(5, 40, min_cell=5) == "12.5%"


@pytest.mark.parametrize("min_cell", [0, -3, 2.5])
def test_a_threshold_that_is_not_a_positive_whole_number_is_refused(min_cell):
    with pytest.raises(ValueError, match="min_cell"):
        suppress_count(3, min_cell=min_cell)
    with pytest.raises(ValueError, match="min_cell"):
        suppress_table(pd.DataFrame({"n": [3]}), ["n"], min_cell=min_cell)


def _bounds(table: np.ndarray, hidden: np.ndarray, cell: tuple[int, int]) -> tuple[float, float]:
    """The least and greatest value of a hidden `cell` that a reader can deduce.

    `table` holds the interior cells with each row's total in the last column and each
    column's total in the last row; the reader knows every shown value, that every line adds
    up to its total and that counts are not negative. Solved as two linear programmes over the
    hidden cells (an independent check of `suppression_mask`, which works line by line).
    """
    from scipy.optimize import linprog

    unknowns = {c: k for k, c in enumerate(zip(*np.nonzero(hidden), strict=True))}
    rows, cols = table.shape
    # Each line: its cells and the cell holding their total (the last of the row or column).
    lines = [([(i, j) for j in range(cols - 1)], (i, cols - 1)) for i in range(rows)]
    lines += [([(i, j) for i in range(rows - 1)], (rows - 1, j)) for j in range(cols)]
    a_eq, b_eq = [], []
    for cells, total in lines:
        coefficients, rhs = np.zeros(len(unknowns)), 0.0
        for member, sign in [*((c, 1.0) for c in cells), (total, -1.0)]:
            if member in unknowns:
                coefficients[unknowns[member]] += sign
            else:
                rhs -= sign * table[member]
        a_eq.append(coefficients)
        b_eq.append(rhs)
    target = np.zeros(len(unknowns))
    target[unknowns[cell]] = 1.0
    # A small cell ("<11") lies in 1..10, any other hidden cell is not negative.
    bounds = [(1, 10) if 0 < table[c] < 11 else (0, None) for c in unknowns]
    kwargs = {"A_eq": np.array(a_eq), "b_eq": b_eq, "bounds": bounds, "method": "highs"}
    low = linprog(target, **kwargs).fun
    high = -linprog(-target, **kwargs).fun
    return low, high


def _with_totals(interior: np.ndarray) -> pd.DataFrame:
    rows, cols = interior.shape
    full = np.zeros((rows + 1, cols + 1), dtype=int)
    full[:rows, :cols] = interior
    full[:rows, cols] = interior.sum(axis=1)
    full[rows, :cols] = interior.sum(axis=0)
    full[rows, cols] = interior.sum()
    columns = [f"c{j}" for j in range(cols)] + ["total"]
    return pd.DataFrame(full, columns=columns, index=[f"r{i}" for i in range(rows)] + ["total"])


def _recovered_small_cells(table: pd.DataFrame, min_cell: int = 11) -> list[tuple]:
    columns = list(table.columns)
    mask = suppression_mask(table, columns, min_cell, total_row="total", total_column="total")
    values, hidden = table.to_numpy(dtype=float), mask.to_numpy()
    small = (values > 0) & (values < min_cell)
    found = []
    for cell in zip(*np.nonzero(small), strict=True):
        low, high = _bounds(values, hidden, cell)
        if math.floor(high + 1e-6) - math.ceil(low - 1e-6) < 5:
            found.append((table.index[cell[0]], columns[cell[1]], low))
    return found


def test_the_audit_finds_a_cell_left_alone_and_passes_a_protected_one():
    table = _with_totals(np.array([[5, 20, 30], [14, 25, 12]]))
    assert _recovered_small_cells(table) == []
    # The same table with only the small cell hidden: 5 = 55 - 20 - 30.
    values = table.to_numpy(dtype=float)
    hidden = np.zeros_like(values, dtype=bool)
    hidden[0, 0] = True
    assert _bounds(values, hidden, (0, 0)) == pytest.approx((5.0, 5.0))


def test_a_zero_pinned_by_its_column_total_is_no_complement():
    # By hand: 6 is small, so row r0 hides one more cell; the smallest shown there is c2 = 0.
    # But column c2 totals 0, so both of its cells are 0 whatever is hidden, and then
    # r0: c0 = 51 - 45 - 0 = 6. A complement must be a cell whose value stays uncertain.
    table = _with_totals(np.array([[6, 45, 0], [14, 51, 0]]))
    assert _recovered_small_cells(table) == []


def test_no_small_cell_can_be_deduced_from_a_suppressed_table_with_totals():
    """Random count tables with row and column totals, audited cell by cell."""
    rng = np.random.default_rng(2026)
    recovered = []
    for _ in range(40):
        rows, cols = rng.integers(2, 5, size=2)
        interior = np.where(
            rng.random((rows, cols)) < 0.35,
            rng.integers(1, 11, (rows, cols)),
            rng.integers(11, 60, (rows, cols)),
        )
        interior[rng.random((rows, cols)) < 0.15] = 0
        table = _with_totals(interior)
        found = _recovered_small_cells(table)
        if found:
            recovered.append((interior.tolist(), found))
    assert recovered == [], f"small cells a reader can work out: {recovered[:3]}"


# -- files a site shares ---------------------------------------------------------------------


def test_a_shared_diagnostics_record_withholds_small_counts_and_their_statistics():
    diagnostics = {
        "km": {
            "n_events": 33,
            "rows_excluded_missing": 2,
            "risk_table": [
                {"group": "a", "n_at_risk": 70, "time": 2.0},
                {"group": "a", "n_at_risk": 5, "time": 12.0},
            ],
            "curves": {"a": [{"time": 1.0, "n_at_risk": 75, "n_events": 5, "survival": 0.93}]},
        },
        "therapist": {
            "n_therapists": 7,
            "converged": True,
            "therapist_effects": [
                {"rank": 1, "n_clients": 7, "effect": 0.4, "ci_low": -0.1, "ci_high": 0.9},
                {"rank": 2, "n_clients": 43, "effect": -0.2, "ci_low": -0.5, "ci_high": 0.1},
            ],
        },
        "lagged": {"n_clients": 94, "aic": 12.5, "rows_missing_by_column": {"alliance": 6}},
    }
    shared = shareable_record(diagnostics)
    km = shared["km"]
    assert km["n_events"] == 33 and km["rows_excluded_missing"] == "<11"
    assert km["risk_table"][0] == {"group": "a", "n_at_risk": 70, "time": 2.0}
    assert km["risk_table"][1] == {"group": "a", "n_at_risk": "<11", "time": 12.0}
    assert km["curves"] == WITHHELD_TEXT
    effects = shared["therapist"]["therapist_effects"]
    assert effects[0] == {
        "rank": 1,
        "n_clients": "<11",
        "effect": "<11",
        "ci_low": "<11",
        "ci_high": "<11",
    }
    # The therapists' clients add up to the model's: the other therapist (43) is withheld as
    # a complement, with its effect, or 7 would follow by subtraction.
    assert effects[1] == {
        "rank": 2,
        "n_clients": "*",
        "effect": "*",
        "ci_low": "*",
        "ci_high": "*",
    }
    # Structural counts and flags stay: the consortium reads them.
    assert shared["therapist"]["n_therapists"] == 7 and shared["therapist"]["converged"] is True
    assert shared["lagged"] == {
        "n_clients": 94,
        "aic": 12.5,
        "rows_missing_by_column": {"alliance": "<11"},
    }


def test_shared_coefficients_lose_the_numbers_of_a_model_of_few_clients():
    coefficients = pd.DataFrame(
        {
            "model": ["big", "tiny"],
            "term": ["x", "x"],
            "estimate": [0.5, 2.0],
            "n_clients": [120, 6],
            "converged": [True, True],
        }
    )
    shared = shareable_coefficients(coefficients)
    assert shared.loc[0].tolist() == ["big", "x", 0.5, 120, True]
    assert shared.loc[1, ["model", "term", "converged"]].tolist() == ["tiny", "x", True]
    assert shared.loc[1, ["estimate", "n_clients"]].isna().all()


@pytest.mark.parametrize(
    ("n", "shown"), [(0, "0"), (3, "3"), (10, "10"), (42, "42"), (None, "\u2013")]
)
def test_structural_and_data_quality_counts_are_shown_whole(n, shown):
    # Therapists, sites, rows quarantined: not counts of people's attributes (privacy.md, 2).
    assert structural_count(n) == shown
    with pytest.raises(ValueError):
        structural_count(2.5)


def test_the_flow_table_shows_records_and_withholds_only_a_small_clients_count():
    from accord.report.sections.data import _flow_row

    def row(table, rows_in, accepted, quarantined, replaced):
        return pd.Series(
            {
                "table": table,
                "rows_in": rows_in,
                "rows_accepted": accepted,
                "rows_quarantined": quarantined,
                "missing_codes_replaced": replaced,
            }
        )

    # 3 sessions quarantined and 4 cells emptied: data-quality counts, shown as they are.
    assert _flow_row(row("sessions", 503, 500, 3, 4), 11) == ("sessions", "503", "500", "3", "4")
    assert _flow_row(row("clients", 52, 50, 2, 0), 11) == ("clients", "52", "50", "2", "0")
    # 8 clients validated is a count of people: withheld, and the rows received with it
    # (8 = 10 received - 2 quarantined otherwise).
    assert _flow_row(row("clients", 10, 8, 2, 0), 11) == ("clients", "*", "<11", "2", "0")


def test_numbers_at_risk_are_published_only_where_no_small_count_left_in_between():
    # At risk 57 then 52: 5 clients left, a small count; the time is skipped and the next is
    # compared with 57 (57 - 40 = 17 left). A group's count at 0 or below 11 is shown as
    # "0" or "<11" and ends nothing: 40 - 9 is only known to lie between 30 and 39.
    assert coarsened_steps([[57, 52, 40, 9, 9, 0]], 11) == [0, 2, 3, 4, 5]
    # Every group must pass: the second group's 60 -> 58 blocks time 1 for both.
    assert coarsened_steps([[57, 57, 40], [60, 58, 45]], 11) == [0, 2]
    assert coarsened_steps([[57, 57, 57]], 11) == [0, 1, 2]  # nobody left: 0 may be shown
    assert coarsened_steps([], 11) == []


def test_a_shared_record_protects_category_counts_shares_and_warnings():
    categories = [
        {"category": c, "group": "a", "n": n, "n_group": 48, "share": n / 48}
        for c, n in (("recovered", 13), ("improved", 5), ("unchanged", 30), ("deteriorated", 0))
    ] + [
        {"category": c, "group": "b", "n": n, "n_group": 52, "share": n / 52}
        for c, n in (("recovered", 15), ("improved", 12), ("unchanged", 25), ("deteriorated", 0))
    ]
    diagnostics = {
        "clinical_change": {"extras": {"categories": categories}},
        "not_on_track": {
            "rates": [
                {"group": "T1", "n_clients": 63, "n_not_on_track": 4, "share_clients": 4 / 63}
            ]
        },
        "recovery": {"warnings": ["recovery model: 4 row(s) left out (reviewed_after_flag: 4)"]},
    }
    shared = shareable_record(diagnostics)
    a = {e["category"]: e for e in shared["clinical_change"]["extras"]["categories"][:4]}
    # improved (5) reads "<11", its share (of 48 clients, but 5 / 48) "*"; 48 - 13 - 30 - 0
    # would give it back, so the smallest other nonzero count of group a (13) is withheld
    # too; group b is untouched.
    assert a["improved"]["n"] == "<11" and a["improved"]["share"] == "*"
    assert a["recovered"]["n"] == "*" and a["recovered"]["share"] == "*"
    assert a["unchanged"]["n"] == 30 and a["deteriorated"]["n"] == 0
    assert shared["clinical_change"]["extras"]["categories"][4:] == categories[4:]
    # 4 of 63 clients not on track: the count is small and its share would give it back.
    assert shared["not_on_track"]["rates"][0] == {
        "group": "T1",
        "n_clients": 63,
        "n_not_on_track": "<11",
        "share_clients": "*",
    }
    assert shared["recovery"]["warnings"] == [
        "recovery model: <11 row(s) left out (reviewed_after_flag: <11)"
    ]


#: A reader's view of a shared record: keys that count clients, and sentences that do.
_PEOPLE_KEY = re.compile(
    r"^n$|client|^n_(?!therapists|parameters|iterations|starts)|event|"
    r"censor|at_risk|missing|excluded|^rows|sizes"
)
_PEOPLE_TEXT = re.compile(r"(?<![\d.])([1-9]|10) (client|row|observation|assessment)")


def _small_counts_of_people(node: object, path: str = "", counting: bool = False) -> list[str]:
    if isinstance(node, dict):
        return [
            found
            for key, value in node.items()
            for found in _small_counts_of_people(
                value, f"{path}.{key}", counting or bool(_PEOPLE_KEY.search(str(key)))
            )
        ]
    if isinstance(node, list):
        return [f for item in node for f in _small_counts_of_people(item, path, counting)]
    if isinstance(node, str):
        return [f"{path}: {node[:80]}"] if _PEOPLE_TEXT.search(node) else []
    if counting and isinstance(node, int | float) and not isinstance(node, bool):
        return [f"{path} = {node}"] if 0 < node < 11 and float(node).is_integer() else []
    return []


def test_the_shared_diagnostics_of_the_full_plan_hold_no_small_count_of_people(workflow_run):
    # Every model of the analysis plan, as a consortium site would share it.
    fitted = json.loads(
        (workflow_run / "results" / "small" / "models" / "diagnostics.json").read_text()
    )
    shared = shareable_record(fitted)

    def small(record: dict) -> list[str]:  # model by model (an id is not a count's key)
        return [f for model, entry in record.items() for f in _small_counts_of_people(entry, model)]

    assert small(fitted), "the study has small counts to withhold"
    assert small(shared) == []
