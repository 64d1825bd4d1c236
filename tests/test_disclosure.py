"""Small-cell suppression (privacy.md, section 2), on tables worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from accord.disclosure import (
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
    table = pd.DataFrame({"a": [5], "b": [0], "c": [30], "total": [35]})
    shown = suppress_table(table, ["a", "b", "c", "total"], total_column="total")
    assert shown.iloc[0].tolist() == ["<11", "*", "30", "35"]


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
