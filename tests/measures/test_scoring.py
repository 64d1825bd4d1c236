"""Scoring rules from measures.md, each checked against a value worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from accord.core.errors import ConfigError, StudyError
from accord.core.instruments import load_registry
from accord.measures.scoring import (
    DISAGREEMENT_COLUMNS,
    SCORE_COLUMNS,
    ScoringSettings,
    gas_t_score,
    score_measures,
    score_measures_with_summary,
)

REGISTRY = load_registry()
STRING_COLUMNS = ("client_id", "instrument", "rater", "item", "phase")


def form(client, session, instrument, responses, rater="client"):
    """Rows of one form; `responses` maps item (1-based number, "total" or goal id) to value."""
    phase = "intake" if session == 0 else "treatment"
    return [
        (client, session, instrument, rater, str(item), value, phase)
        for item, value in responses.items()
    ]


def items(*values):
    """Responses to items 1..k; None leaves that item unanswered (no row)."""
    return {i: v for i, v in enumerate(values, start=1) if v is not None}


def measures(*forms, categorical=False):
    rows = [row for f in forms for row in f]
    columns = ["client_id", "session_number", "instrument", "rater", "item", "value", "phase"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["session_number"] = frame["session_number"].astype("int64")
    frame["value"] = frame["value"].astype("float64")
    if categorical:
        for column in STRING_COLUMNS:
            frame[column] = frame[column].astype("category")
    return frame


def score_of(scores, session=1, instrument="phq9", scale="total", rater="client", client="c1"):
    hit = scores[
        (scores["client_id"] == client)
        & (scores["session_number"] == session)
        & (scores["instrument"] == instrument)
        & (scores["scale"] == scale)
        & (scores["rater"] == rater)
    ]
    assert len(hit) <= 1
    return hit.iloc[0] if len(hit) else None


@pytest.fixture(params=[False, True], ids=["object", "categorical"])
def categorical(request):
    return request.param


# ---------------------------------------------------------------------------------------------
# PHQ-9: 1-2 missing items replaced by the mean of the answered items; more than 2: no score


def test_phq9_missing_items(categorical):
    data = measures(
        # 0 missing: 3+3+2+2+1+1+0+0+1 = 13
        form("c1", 1, "phq9", items(3, 3, 2, 2, 1, 1, 0, 0, 1)),
        # 1 missing (item 9): 3+3+2+2+1+1+0+0 = 12 over 8 answered -> 12 * 9 / 8 = 13.5
        form("c1", 2, "phq9", items(3, 3, 2, 2, 1, 1, 0, 0, None)),
        # 2 missing (items 1, 5): items 2, 3, 4, 6, 7, 8, 9 = 3+2+2+1+0+0+1 = 9 over 7 answered
        # -> 9 * 9 / 7 = 81 / 7 = 11.571428...
        form("c1", 3, "phq9", items(None, 3, 2, 2, None, 1, 0, 0, 1)),
        # 3 missing: 6 answered -> not scored
        form("c1", 4, "phq9", items(3, 3, 2, None, None, None, 0, 0, 1)),
        categorical=categorical,
    )
    result = score_measures_with_summary(data, REGISTRY)
    scores = result.scores

    row = score_of(scores, session=1)
    assert row["score"] == 13
    assert row["items_answered"] == 9
    assert not row["prorated"]
    assert row["source"] == "items"

    row = score_of(scores, session=2)
    assert row["score"] == 13.5
    assert row["items_answered"] == 8
    assert row["prorated"]

    row = score_of(scores, session=3)
    assert row["score"] == pytest.approx(81 / 7)
    assert row["items_answered"] == 7
    assert row["prorated"]

    assert score_of(scores, session=4) is None
    summary = result.summary.set_index(["instrument", "scale"]).loc[("phq9", "total")]
    assert summary["forms"] == 4
    assert summary["scored"] == 3
    assert summary["prorated"] == 2
    assert summary["not_scored"] == 1


def test_phq9_one_missing_example_from_the_brief():
    # 8 answered items summing to 12 -> 12 * 9 / 8 = 13.5
    data = measures(form("c1", 0, "phq9", items(2, 2, 2, 2, 1, 1, 1, 1, None)))
    scores, _ = score_measures(data, REGISTRY)
    assert score_of(scores, session=0)["score"] == 13.5


# ---------------------------------------------------------------------------------------------
# GAD-7: at most 1 missing item prorated


def test_gad7_missing_items(categorical):
    data = measures(
        # 1 missing (item 7): 3+2+1+0+1+2 = 9 over 6 answered -> 9 * 7 / 6 = 10.5
        form("c1", 1, "gad7", items(3, 2, 1, 0, 1, 2, None)),
        # 2 missing -> not scored
        form("c1", 2, "gad7", items(3, 2, 1, 0, 1, None, None)),
        categorical=categorical,
    )
    scores, _ = score_measures(data, REGISTRY)
    row = score_of(scores, session=1, instrument="gad7")
    assert row["score"] == 10.5
    assert row["items_answered"] == 6
    assert row["prorated"]
    assert score_of(scores, session=2, instrument="gad7") is None


# ---------------------------------------------------------------------------------------------
# WAI-SR: subscale and total = item mean; a subscale needs its 4 items, the total all 12


def test_wai_sr_subscales_and_total(categorical):
    # item:      1  2  3  4  5  6  7  8  9 10 11 12
    responses = (5, 4, 3, 2, 1, 5, 4, 3, 2, 1, 5, 4)
    data = measures(form("c1", 1, "wai_sr", items(*responses)), categorical=categorical)
    scores, _ = score_measures(data, REGISTRY)
    # goal = items 4, 6, 8, 11 = 2, 5, 3, 5 -> 15 / 4 = 3.75
    assert score_of(scores, instrument="wai_sr", scale="goal")["score"] == 3.75
    # task = items 1, 2, 10, 12 = 5, 4, 1, 4 -> 14 / 4 = 3.5
    assert score_of(scores, instrument="wai_sr", scale="task")["score"] == 3.5
    # bond = items 3, 5, 7, 9 = 3, 1, 4, 2 -> 10 / 4 = 2.5
    assert score_of(scores, instrument="wai_sr", scale="bond")["score"] == 2.5
    # total = 39 / 12 = 3.25
    total = score_of(scores, instrument="wai_sr", scale="total")
    assert total["score"] == 3.25
    assert total["items_answered"] == 12
    assert total["items_expected"] == 12
    assert score_of(scores, instrument="wai_sr", scale="goal")["items_expected"] == 4
    # Scales are sorted by name within a form.
    assert scores["scale"].tolist() == ["bond", "goal", "task", "total"]


def test_wai_sr_missing_item_drops_its_subscale_and_the_total():
    responses = [5, 4, 3, 2, 1, 5, 4, 3, 2, 1, 5, 4]
    responses[3] = None  # item 4 belongs to goal
    data = measures(form("c1", 1, "wai_sr", items(*responses)))
    result = score_measures_with_summary(data, REGISTRY)
    assert sorted(result.scores["scale"]) == ["bond", "task"]
    summary = result.summary.set_index("scale")
    assert summary.loc["goal", "not_scored"] == 1
    assert summary.loc["total", "not_scored"] == 1
    assert summary.loc["bond", "scored"] == 1


# ---------------------------------------------------------------------------------------------
# CORE-10: items 2 and 3 reverse-keyed (4 - x), prorate 10 * sum / answered with <= 1 missing


def test_core10_reverse_keying(categorical):
    # item:    1  2  3  4  5  6  7  8  9 10
    raw = [1, 0, 4, 2, 2, 1, 3, 0, 1, 2]
    complete = form("c1", 1, "core10", items(*raw))
    # keyed: item 2 -> 4 - 0 = 4, item 3 -> 4 - 4 = 0;
    # total = 1 + 4 + 0 + 2 + 2 + 1 + 3 + 0 + 1 + 2 = 16
    no_item10 = form("c1", 2, "core10", items(*raw[:9], None))
    # item 10 missing: 16 - 2 = 14 over 9 answered -> 10 * 14 / 9 = 15.555...
    no_item2 = form("c1", 3, "core10", items(1, None, *raw[2:]))
    # item 2 (a reversed one) missing: 16 - 4 = 12 over 9 -> 10 * 12 / 9 = 13.333...
    two_missing = form("c1", 4, "core10", items(None, None, *raw[2:]))
    data = measures(complete, no_item10, no_item2, two_missing, categorical=categorical)
    scores, _ = score_measures(data, REGISTRY)
    assert score_of(scores, 1, instrument="core10")["score"] == 16
    assert not score_of(scores, 1, instrument="core10")["prorated"]
    assert score_of(scores, 2, instrument="core10")["score"] == pytest.approx(140 / 9)
    assert score_of(scores, 2, instrument="core10")["prorated"]
    assert score_of(scores, 3, instrument="core10")["score"] == pytest.approx(120 / 9)
    assert score_of(scores, 4, instrument="core10") is None


# ---------------------------------------------------------------------------------------------
# SRS and ORS: all 4 items needed


@pytest.mark.parametrize("instrument", ["srs", "ors"])
def test_srs_ors_need_all_four_items(instrument):
    data = measures(
        # 9.1 + 8.5 + 9.0 + 9.4 = 36.0
        form("c1", 1, instrument, items(9.1, 8.5, 9.0, 9.4)),
        form("c1", 2, instrument, items(9.1, 8.5, 9.0, None)),
    )
    scores, _ = score_measures(data, REGISTRY)
    assert score_of(scores, 1, instrument=instrument)["score"] == pytest.approx(36.0)
    assert score_of(scores, 2, instrument=instrument) is None


def test_decimal_ratings_sum_without_float_noise():
    # 8.6 + 9.7 + 9.9 + 7.8 = 36.0 exactly; summed in binary floating point it is 35.99999999999999,
    # which would wrongly count as an SRS alliance concern (< 36).
    data = measures(form("c1", 1, "srs", items(8.6, 9.7, 9.9, 7.8)))
    scores, _ = score_measures(data, REGISTRY)
    assert scores["score"].tolist() == [36.0]
    assert REGISTRY["srs"].clinical(scores["score"]).tolist() == [False]


# ---------------------------------------------------------------------------------------------
# Supplied totals


def test_supplied_totals(categorical):
    data = measures(
        # total only: used as is, not prorated, items_answered unknown
        form("c1", 1, "gad7", {"total": 9}),
        # items sum to 1+1+2+2+1+1+2 = 10, supplied 11: items win, disagreement reported
        form("c1", 2, "gad7", {**items(1, 1, 2, 2, 1, 1, 2), "total": 11}),
        # items and a matching supplied total: no disagreement
        form("c1", 3, "gad7", {**items(1, 1, 2, 2, 1, 1, 2), "total": 10}),
        # too many items missing for an item score: the supplied total is used
        form("c1", 4, "gad7", {**items(1, 1, 2, None, None, 1, 2), "total": 10}),
        # prorated item total 9 * 7 / 6 = 10.5 against a hand-rounded 11: reported too
        form("c1", 5, "gad7", {**items(3, 2, 1, 0, 1, 2, None), "total": 11}),
        categorical=categorical,
    )
    scores, disagreements = score_measures(data, REGISTRY)
    row = score_of(scores, 1, instrument="gad7")
    assert row["score"] == 9
    assert row["source"] == "supplied_total"
    assert not row["prorated"]
    assert pd.isna(row["items_answered"])

    row = score_of(scores, 2, instrument="gad7")
    assert row["score"] == 10
    assert row["source"] == "items"
    assert score_of(scores, 3, instrument="gad7")["score"] == 10
    row = score_of(scores, 4, instrument="gad7")
    assert row["score"] == 10
    assert row["source"] == "supplied_total"

    assert list(disagreements.columns) == list(DISAGREEMENT_COLUMNS)
    assert disagreements[["session_number", "supplied_total", "item_total"]].values.tolist() == [
        [2, 11.0, 10.0],
        [5, 11.0, 10.5],
    ]
    assert disagreements["prorated"].tolist() == [False, True]
    assert set(disagreements["client_id"]) == {"c1"}
    assert set(disagreements["instrument"]) == {"gad7"}


def test_supplied_mean_total_for_wai_sr():
    data = measures(form("c1", 1, "wai_sr", {"total": 4.25}))
    scores, _ = score_measures(data, REGISTRY)
    assert scores[["scale", "score", "source"]].values.tolist() == [
        ["total", 4.25, "supplied_total"]
    ]


def test_total_tolerance_setting():
    data = measures(form("c1", 1, "gad7", {**items(1, 1, 2, 2, 1, 1, 2), "total": 10.4}))
    _, loose = score_measures(data, REGISTRY, settings=ScoringSettings(total_tolerance=0.5))
    _, strict = score_measures(data, REGISTRY)
    assert loose.empty
    assert len(strict) == 1


# ---------------------------------------------------------------------------------------------
# GAS: Kiresuk-Sherman T over the goals rated at a session


def test_gas_t_scores_from_measures_md(categorical):
    data = measures(
        # 3 goals, weights 1, sum x = 1 + 0 + 1 = 2:
        # T = 50 + 10 * 2 / sqrt(0.7 * 3 + 0.3 * 9) = 50 + 20 / sqrt(4.8) = 59.1287...
        form("c1", 1, "gas", {"g1": 1, "g2": 0, "g3": 1}),
        # 1 goal, x = 1: T = 50 + 10 * 1 / sqrt(0.7 + 0.3) = 60
        form("c2", 1, "gas", {"g9": 1}),
        categorical=categorical,
    )
    scores, _ = score_measures(data, REGISTRY)
    row = score_of(scores, client="c1", instrument="gas", scale="t_score")
    assert round(row["score"], 2) == 59.13
    assert row["score"] == pytest.approx(50 + 20 / math.sqrt(4.8))
    assert row["items_answered"] == 3
    assert pd.isna(row["items_expected"])
    assert not row["prorated"]
    assert score_of(scores, client="c2", instrument="gas", scale="t_score")["score"] == 60


def test_gas_unrated_goal_is_left_out():
    data = measures(form("c1", 1, "gas", {"g1": 1, "g2": np.nan}))
    scores, _ = score_measures(data, REGISTRY)
    # only g1 rated: T = 60
    assert score_of(scores, instrument="gas", scale="t_score")["score"] == 60
    assert score_of(scores, instrument="gas", scale="t_score")["items_answered"] == 1


def test_gas_importance_weights():
    data = measures(
        form("c1", 1, "gas", {"g1": 1, "g2": -1}),
        form("c2", 1, "gas", {"g1": 2, "g3": 0}),
    )
    goals = pd.DataFrame(
        {
            "client_id": ["c1", "c1", "c2", "c2"],
            "goal_id": ["g1", "g2", "g1", "g3"],
            "client_importance": pd.array([2, 1, 3, None], dtype="Int64"),
        }
    )
    settings = ScoringSettings(gas_weights="importance")
    result = score_measures_with_summary(data, REGISTRY, settings=settings, goals=goals)
    # c1: w = (2, 1), x = (1, -1): sum wx = 1, sum w^2 = 5, sum w = 3;
    # T = 50 + 10 * 1 / sqrt(0.7 * 5 + 0.3 * 9) = 50 + 10 / sqrt(6.2) = 54.0161...
    row = score_of(result.scores, client="c1", instrument="gas", scale="t_score")
    assert row["score"] == pytest.approx(50 + 10 / math.sqrt(6.2))
    assert round(row["score"], 2) == 54.02
    # c2: goal g3 has no importance rating, so its session is not scored
    assert score_of(result.scores, client="c2", instrument="gas", scale="t_score") is None
    assert result.summary.set_index("instrument").loc["gas", "not_scored"] == 1
    # Equal weights (the default) score both.
    scores, _ = score_measures(data, REGISTRY)
    # c1 unweighted: sum x = 0 -> T = 50
    assert score_of(scores, client="c1", instrument="gas", scale="t_score")["score"] == 50


def test_gas_importance_needs_goals():
    data = measures(form("c1", 1, "gas", {"g1": 1}))
    with pytest.raises(ConfigError, match="gas_weights"):
        score_measures(data, REGISTRY, settings=ScoringSettings(gas_weights="importance"))


def test_gas_rho_setting():
    data = measures(form("c1", 1, "gas", {"g1": 1, "g2": 1}))
    scores, _ = score_measures(data, REGISTRY, settings=ScoringSettings(gas_rho=0.0))
    # rho = 0: T = 50 + 10 * 2 / sqrt(2) = 64.142...
    assert score_of(scores, instrument="gas", scale="t_score")["score"] == pytest.approx(
        50 + 20 / math.sqrt(2)
    )


def test_gas_t_score_helper():
    assert round(gas_t_score([1, 0, 1]), 2) == 59.13
    assert gas_t_score([1]) == 60
    assert gas_t_score([1, -1], weights=[2, 1]) == pytest.approx(50 + 10 / math.sqrt(6.2))
    assert gas_t_score([1, np.nan]) == 60
    assert math.isnan(gas_t_score([]))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gas_rho": 1.0}, "gas_rho"),
        ({"gas_rho": -0.1}, "gas_rho"),
        ({"gas_weights": "goal_count"}, "gas_weights"),
        ({"total_tolerance": -1}, "total_tolerance"),
    ],
)
def test_invalid_settings(fields, message):
    with pytest.raises(ConfigError, match=message):
        ScoringSettings(**fields)


def test_settings_are_recordable():
    recorded = ScoringSettings().as_dict()
    assert recorded["gas_rho"] == 0.3
    assert recorded["gas_weights"] == "equal"


# ---------------------------------------------------------------------------------------------
# Custom instruments defined in short YAML


CUSTOM_YAML = """
bdi2:
  items: 21
  item_min: 0
  item_max: 3
  higher_is: worse
  cutoff: 14
  reliable_change: 8
oq45:
  items: 45
  item_min: 0
  item_max: 4
  higher_is: worse
  reverse_items: [1, 12, 13, 20, 21, 24, 31, 37, 43]
  cutoff: 63
  reliable_change: 14
"""


def test_custom_bdi2_and_oq45_score():
    registry = load_registry(yaml.safe_load(CUSTOM_YAML))
    data = measures(
        # BDI-II: 21 items, 14 answered 1 and 7 answered 0 -> 14
        form("c1", 1, "bdi2", items(*([1] * 14 + [0] * 7))),
        # OQ-45: every item answered 4; the 9 reversed items become 4 - 4 = 0 -> 36 * 4 = 144
        form("c1", 1, "oq45", items(*([4] * 45))),
        # OQ-45: every item answered 1; reversed items become 3 -> 36 * 1 + 9 * 3 = 63
        form("c1", 2, "oq45", items(*([1] * 45))),
    )
    scores, _ = score_measures(data, registry)
    bdi = score_of(scores, 1, instrument="bdi2")
    assert bdi["score"] == 14
    assert bdi["items_expected"] == 21
    assert score_of(scores, 1, instrument="oq45")["score"] == 144
    assert score_of(scores, 2, instrument="oq45")["score"] == 63
    assert registry["bdi2"].clinical(pd.Series([bdi["score"]])).tolist() == [True]
    assert registry["oq45"].clinical(pd.Series([63.0, 62.0])).tolist() == [True, False]
    # prorate_max_missing defaults to 0: one missing BDI-II item means no score
    one_missing = measures(form("c1", 1, "bdi2", items(*([1] * 20), None)))
    assert score_measures(one_missing, registry)[0].empty


# ---------------------------------------------------------------------------------------------
# Output shape, order and determinism


def test_columns_dtypes_and_order():
    data = measures(
        form("c2", 1, "phq9", items(*[1] * 9)),
        form("c1", 2, "phq9", items(*[1] * 9)),
        form("c1", 1, "wai_sr", items(*[3] * 12)),
        form("c1", 1, "gad7", items(*[1] * 7)),
        form("c1", 1, "gad7", items(*[2] * 7), rater="therapist"),
        form("c1", 0, "phq9", items(*[0] * 9)),
    )
    scores, _ = score_measures(data, REGISTRY)
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    assert list(scores.columns[len(SCORE_COLUMNS) :]) == ["items_expected", "source", "phase"]
    assert str(scores["session_number"].dtype) == "int64"
    assert str(scores["score"].dtype) == "float64"
    assert str(scores["items_answered"].dtype) == "Int64"
    assert str(scores["prorated"].dtype) == "bool"
    keys = scores[["client_id", "session_number", "instrument", "rater", "scale"]]
    assert keys.values.tolist() == [
        ["c1", 0, "phq9", "client", "total"],
        ["c1", 1, "gad7", "client", "total"],
        ["c1", 1, "gad7", "therapist", "total"],
        ["c1", 1, "wai_sr", "client", "bond"],
        ["c1", 1, "wai_sr", "client", "goal"],
        ["c1", 1, "wai_sr", "client", "task"],
        ["c1", 1, "wai_sr", "client", "total"],
        ["c1", 2, "phq9", "client", "total"],
        ["c2", 1, "phq9", "client", "total"],
    ]
    # Raters are scored separately: client 7 * 1 = 7, therapist 7 * 2 = 14.
    assert score_of(scores, instrument="gad7")["score"] == 7
    assert score_of(scores, instrument="gad7", rater="therapist")["score"] == 14
    assert score_of(scores, session=0)["phase"] == "intake"
    assert score_of(scores, session=2)["phase"] == "treatment"


def test_input_order_does_not_matter():
    data = measures(
        form("c1", 1, "phq9", items(3, 3, 2, 2, 1, 1, 0, 0, None)),
        form("c2", 0, "core10", items(1, 0, 4, 2, 2, 1, 3, 0, 1, 2)),
        form("c2", 1, "gas", {"g1": 1, "g2": 0}),
        form("c3", 1, "wai_sr", items(*range(1, 6), *range(1, 6), 1, 2)),
        form("c3", 2, "gad7", {"total": 12}),
    )
    first, _ = score_measures(data, REGISTRY)
    shuffled = data.sample(frac=1, random_state=7).reset_index(drop=True)
    second, _ = score_measures(shuffled, REGISTRY)
    pd.testing.assert_frame_equal(first, second)
    as_categories, _ = score_measures(
        data.astype({column: "category" for column in STRING_COLUMNS}), REGISTRY
    )
    pd.testing.assert_frame_equal(first, as_categories)


def test_phase_defaults_when_absent():
    data = measures(
        form("c1", 0, "gad7", items(*[1] * 7)), form("c1", 3, "gad7", items(*[1] * 7))
    ).drop(columns="phase")
    scores, _ = score_measures(data, REGISTRY)
    assert scores["phase"].tolist() == ["intake", "treatment"]


def test_rater_defaults_when_absent():
    data = measures(form("c1", 1, "gad7", items(*[1] * 7))).drop(columns="rater")
    scores, _ = score_measures(data, REGISTRY)
    assert scores["rater"].tolist() == ["client"]


def test_validated_dtypes_are_accepted():
    # The validated table carries nullable Int64 session numbers and Float64 values.
    data = measures(form("c1", 1, "gad7", items(*[1] * 7)), categorical=True)
    data = data.astype({"session_number": "Int64", "value": "Float64"})
    scores, _ = score_measures(data, REGISTRY)
    assert scores["score"].tolist() == [7.0]


def test_empty_measures():
    scores, disagreements = score_measures(measures(), REGISTRY)
    assert scores.empty and disagreements.empty
    assert list(scores.columns[: len(SCORE_COLUMNS)]) == list(SCORE_COLUMNS)
    assert str(scores["items_answered"].dtype) == "Int64"


# ---------------------------------------------------------------------------------------------
# What the validated table must never contain


def test_unknown_instrument():
    data = measures(form("c1", 1, "bdi2", items(1, 2)))
    with pytest.raises(StudyError, match="bdi2"):
        score_measures(data, REGISTRY)


def test_unknown_item():
    data = measures(form("c1", 1, "gad7", {**items(*[1] * 7), 8: 1}))
    with pytest.raises(StudyError, match="item '8' is not an item of gad7"):
        score_measures(data, REGISTRY)


def test_duplicate_key():
    data = measures(form("c1", 1, "gad7", items(*[1] * 7)), form("c1", 1, "gad7", {3: 2}))
    with pytest.raises(StudyError, match="appears twice"):
        score_measures(data, REGISTRY)


def test_missing_column():
    with pytest.raises(StudyError, match="value"):
        score_measures(measures().drop(columns="value"), REGISTRY)
