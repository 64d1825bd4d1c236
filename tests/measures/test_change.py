"""Outcome change, clinical significance and the NHS Talking Therapies indicators.

Every expected value is worked out by hand from measures.md (Jacobson & Truax 1991).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from accord.measures.build import MeasureSettings, build_client_measures
from accord.measures.change import (
    jacobson_truax_cutoffs,
    nhs_indicators,
    outcome_change,
    response_remission,
)

NA = pd.NA


@dataclass(frozen=True)
class Instrument:
    key: str
    higher_is: str
    cutoff: float | None = None
    caseness: float | None = None
    reliable_change: float | None = None
    reliability: float | None = None
    norms: dict | None = None


PHQ9 = Instrument("phq9", "worse", cutoff=10, caseness=10, reliable_change=6, reliability=0.89)
GAD7 = Instrument("gad7", "worse", cutoff=8, caseness=8, reliable_change=4, reliability=0.92)
ORS = Instrument("ors", "better", cutoff=25, reliable_change=5, reliability=0.93)
# No published reliable-change value: the RCI decides. Norms give a = 20 - 2*5 = 10,
# b = 6 + 2*4 = 14, c = (5*6 + 4*20) / (5 + 4) = 110/9.
DEP = Instrument(
    "dep",
    "worse",
    cutoff=15,
    reliability=0.84,
    norms={"clinical": {"mean": 20, "sd": 5}, "functional": {"mean": 6, "sd": 4}},
)


def scores_from(instrument: str, series: dict[str, list[float]]) -> pd.DataFrame:
    """Scores at sessions 0, 1, ... for each client."""
    rows = [
        (client, session, instrument, "client", "total", float(value))
        for client, values in series.items()
        for session, value in enumerate(values)
    ]
    return pd.DataFrame(
        rows, columns=["client_id", "session_number", "instrument", "rater", "scale", "score"]
    )


def ids(*names: str) -> pd.Index:
    return pd.Index(sorted(names), name="client_id")


# ---------------------------------------------------------------- Jacobson & Truax


DEP_SERIES = {
    "c1": [10, 2],  # change -8
    "c2": [14, 20],  # +6
    "c3": [18, 12, 8],  # -10 (first and last; the middle score does not matter)
    "c4": [22, 30],  # +8
    "c5": [26, 16],  # -10
}


def test_cutoffs_a_b_c():
    cut = jacobson_truax_cutoffs(DEP.norms, "worse")
    assert cut["a"] == pytest.approx(10.0)
    assert cut["b"] == pytest.approx(14.0)
    assert cut["c"] == pytest.approx(110 / 9)
    # higher is better: a lies below the clinical mean, b above the functional mean
    better = {"clinical": {"mean": 20, "sd": 5}, "functional": {"mean": 32, "sd": 4}}
    cut = jacobson_truax_cutoffs(better, "better")
    assert cut["a"] == pytest.approx(30.0)  # 20 + 2*5
    assert cut["b"] == pytest.approx(24.0)  # 32 - 2*4
    assert cut["c"] == pytest.approx((5 * 32 + 4 * 20) / 9)
    assert all(math.isnan(v) for v in jacobson_truax_cutoffs(None).values())


def test_rci_on_a_constructed_sample():
    frame, info = outcome_change(scores_from("dep", DEP_SERIES), ids(*DEP_SERIES, "c6"), DEP)
    # first scores 10, 14, 18, 22, 26: mean 18, squared deviations 64+16+0+16+64 = 160,
    # SD_pre = sqrt(160 / 4) = sqrt(40) = 6.3246 (c6 has no scores and does not count)
    assert info["n_pre"] == 5
    assert info["sd_pre"] == pytest.approx(math.sqrt(40))
    # SE = sqrt(40) * sqrt(1 - .84) = sqrt(6.4); S_diff = sqrt(2 * 6.4) = sqrt(12.8) = 3.5777
    assert info["se_measurement"] == pytest.approx(math.sqrt(6.4))
    assert info["s_diff"] == pytest.approx(math.sqrt(12.8))
    assert info["rci_threshold_points"] == pytest.approx(1.96 * math.sqrt(12.8))  # 7.0123
    assert info["reliable_change_method"] == "rci"
    assert (info["a"], info["b"]) == pytest.approx((10.0, 14.0))
    # RCI = change / 3.5777: -8 -> -2.236, +6 -> 1.677, -10 -> -2.795, +8 -> 2.236
    expected = np.array([-8, 6, -10, 8, -10]) / math.sqrt(12.8)
    assert frame["rci"].iloc[:5].to_numpy() == pytest.approx(expected)
    assert frame.loc["c3", "first_session"] == 0
    assert frame.loc["c3", "last_session"] == 2
    assert frame.loc["c3", "n_assessments"] == 3
    assert frame["reliable_improvement"].tolist() == [True, False, True, False, True, NA]
    assert frame["reliable_deterioration"].tolist() == [False, False, False, True, False, NA]


@pytest.mark.parametrize(
    ("cutoff", "categories"),
    [
        # registry cut-off 15: c1 10 -> 2 not clinical at first -> improved; c3 18 -> 8 recovered;
        # c5 26 -> 16 still clinical -> improved
        ("registry", ["improved", "unchanged", "recovered", "deteriorated", "improved"]),
        # a = 10: c1 starts at 10 (clinical, >= 10) and ends at 2 -> recovered; c5 ends at 16
        ("a", ["recovered", "unchanged", "recovered", "deteriorated", "improved"]),
        # b = 14: c1 10 is not clinical -> improved; c5 ends at 16 >= 14 -> improved
        ("b", ["improved", "unchanged", "recovered", "deteriorated", "improved"]),
        # c = 12.22: c1 not clinical at first; c3 ends at 8 -> recovered; c5 ends at 16
        ("c", ["improved", "unchanged", "recovered", "deteriorated", "improved"]),
    ],
)
def test_categories_by_cutoff(cutoff, categories):
    frame, info = outcome_change(
        scores_from("dep", DEP_SERIES), ids(*DEP_SERIES), DEP, clinical_cutoff=cutoff
    )
    assert frame["category"].tolist() == categories
    assert info["cutoff_source"] == cutoff
    assert info["cutoff"] == pytest.approx({"registry": 15, "a": 10, "b": 14, "c": 110 / 9}[cutoff])


def test_cutoff_without_norms_falls_back_to_registry():
    frame, info = outcome_change(
        scores_from("phq9", {"p1": [12, 6]}), ids("p1"), PHQ9, clinical_cutoff="c"
    )
    assert info["cutoff_source"] == "registry"
    assert info["cutoff"] == 10
    assert frame.loc["p1", "category"] == "recovered"


def test_published_reliable_change_and_each_category():
    series = {
        "p1": [12, 9, 6],  # -6: reliable (>= 6); 12 clinical -> 6 not -> recovered
        "p2": [15, 10],  # -5: not reliable -> unchanged
        "p3": [20, 13],  # -7: reliable; 13 still clinical -> improved
        "p4": [8, 14],  # +6: reliable worsening -> deteriorated
        "p5": [7],  # one assessment: first = last = 7, no change
    }
    frame, info = outcome_change(scores_from("phq9", series), ids(*series), PHQ9)
    assert info["reliable_change_method"] == "published"
    assert frame["change"].iloc[:4].tolist() == [-6.0, -5.0, -7.0, 6.0]
    assert frame["category"].tolist() == ["recovered", "unchanged", "improved", "deteriorated", NA]
    assert frame["clinical_first"].tolist() == [True, True, True, False, False]
    assert frame["clinical_last"].tolist() == [False, True, True, True, False]
    assert frame.loc["p5", ["first", "last"]].tolist() == [7.0, 7.0]
    assert frame.loc["p5", "n_assessments"] == 1
    assert np.isnan(frame.loc["p5", "change"])
    assert frame["reliable_improvement"].isna().tolist() == [False] * 4 + [True]


def test_rci_chosen_instead_of_published_value():
    series = {"p1": [12, 6], "p2": [20, 10], "p3": [4, 12], "p4": [16, 16]}
    frame, info = outcome_change(scores_from("phq9", series), ids(*series), PHQ9, method="rci")
    # first scores 12, 20, 4, 16: mean 13, squared deviations 1 + 49 + 81 + 9 = 140,
    # SD = sqrt(140/3) = 6.8313; S_diff = sqrt(2) * 6.8313 * sqrt(.11) = 3.2042;
    # 1.96 * S_diff = 6.280 points: -6 not reliable, -10 and +8 reliable
    s_diff = math.sqrt(2 * (140 / 3) * (1 - 0.89))
    assert info["s_diff"] == pytest.approx(s_diff)
    assert info["reliable_change_method"] == "rci"
    assert frame["category"].tolist() == ["unchanged", "improved", "deteriorated", "unchanged"]


def test_higher_is_better_direction():
    series = {
        "o1": [20, 26],  # +6 >= 5 better; 20 < 25 clinical, 26 not -> recovered
        "o2": [30, 24],  # -6: reliable worsening -> deteriorated
        "o3": [18, 22],  # +4 < 5 -> unchanged
        "o4": [28, 34],  # +6, never clinical -> improved
    }
    frame, _ = outcome_change(scores_from("ors", series), ids(*series), ORS)
    assert frame["category"].tolist() == ["recovered", "deteriorated", "unchanged", "improved"]
    assert frame["clinical_first"].tolist() == [True, False, True, False]


def test_phq9_response_and_remission():
    series = {
        "r1": [12, 6],  # 6 <= 12/2: response; 6 >= 5: no remission
        "r2": [20, 4],  # response and remission
        "r3": [16, 9],  # 9 > 8: no response
        "r4": [8, 3],  # baseline 8 < 10: not a case, so neither is defined (measures.md)
        "r5": [14],  # one assessment: both undefined
    }
    out = build_client_measures(
        pd.DataFrame({"client_id": list(series), "therapist_id": "T1"}),
        pd.DataFrame(columns=["client_id", "session_number", "status"]),
        None,
        scores_from("phq9", series),
        {"phq9": PHQ9, "gad7": GAD7},
        # the end-of-treatment assessment is session 1: the second score of each series
        MeasureSettings(outcome_instruments=("phq9",), end_of_treatment=1),
    ).set_index("client_id")
    assert out["phq9_response"].tolist() == [True, True, False, NA, NA]
    # Remission only among baseline cases: the denominator is r1, r2, r3 (3 clients), not 4.
    assert out["phq9_remission"].tolist() == [False, True, False, NA, NA]
    assert out["phq9_remission"].notna().sum() == 3


def test_response_and_remission_at_the_named_score():
    change = pd.DataFrame(
        {"first": [12.0, 12.0], "last": [4.0, 4.0], "post": [8.0, np.nan], "n_assessments": 3}
    )
    at_post = response_remission(change, at="post")
    # 8 > 6 (half of 12): no response; 8 >= 5: no remission; no post score: undefined
    assert at_post["response"].tolist() == [False, NA]
    assert at_post["remission"].tolist() == [False, NA]
    assert response_remission(change, at="last")["remission"].tolist() == [True, True]


# ---------------------------------------------------------------- NHS Talking Therapies

NHS_PHQ9 = {
    "n1": [8, 5],  # not a case at intake (8 < 10, GAD-7 6 < 8)
    "n2": [15, 6],  # -9 reliable; both below caseness at last -> reliable recovery
    "n3": [20, 12],  # -8 reliable; PHQ-9 still 12 -> reliably improved, not recovered
    "n4": [12, 5],  # -7 reliable, but GAD-7 deteriorates
    "n5": [11, 8],  # -3; recovered without reliable improvement
    "n6": [18, 6],  # attended one session: not finished
    "n7": [18, 6],  # GAD-7 only once: no paired scores on both measures
}
NHS_GAD7 = {
    "n1": [6, 4],
    "n2": [10, 5],  # -5 reliable
    "n3": [12, 10],  # -2
    "n4": [6, 11],  # +5 reliable deterioration; 11 >= 8 at last
    "n5": [9, 7],  # -2
    "n6": [15, 3],
    "n7": [15],
}
NHS_ATTENDED = {"n1": 4, "n2": 6, "n3": 8, "n4": 5, "n5": 2, "n6": 1, "n7": 3}
NHS_END = {r: "completed" for r in NHS_PHQ9}


def nhs_frame(end_reason: dict[str, str | None] = NHS_END) -> pd.DataFrame:
    client_ids = ids(*NHS_PHQ9)
    phq9, _ = outcome_change(scores_from("phq9", NHS_PHQ9), client_ids, PHQ9)
    gad7, _ = outcome_change(scores_from("gad7", NHS_GAD7), client_ids, GAD7)
    return nhs_indicators(phq9, gad7, pd.Series(NHS_ATTENDED), pd.Series(end_reason))


def test_nhs_finished_needs_an_ended_episode():
    # n2 attended 6 sessions but is still in treatment; n3's end is not recorded; n4 dropped
    # out after 5 sessions, which ends the episode (NHS: finished = ended with >= 2 sessions).
    ends = {**NHS_END, "n2": "ongoing", "n3": None, "n4": "dropout"}
    out = nhs_frame(ends)
    assert out["nhs_finished"].tolist() == [True, False, False, True, True, False, True]
    assert out.loc[["n2", "n3"], "nhs_recovery"].isna().all()
    assert nhs_frame({})["nhs_finished"].sum() == 0


def test_nhs_branches():
    out = nhs_frame()
    assert out["nhs_finished"].tolist() == [True, True, True, True, True, False, True]
    assert out["nhs_caseness"].tolist() == [False, True, True, True, True, NA, NA]
    # recovery is defined only for cases
    assert out["nhs_recovery"].tolist() == [NA, True, False, False, True, NA, NA]
    assert out["nhs_reliable_improvement"].tolist() == [False, True, True, False, False, NA, NA]
    assert out["nhs_reliable_recovery"].tolist() == [NA, True, False, False, False, NA, NA]
    assert out["nhs_reliable_deterioration"].tolist() == [False, False, False, True, False, NA, NA]


def nhs_study(method: str) -> pd.DataFrame:
    clients = pd.DataFrame(
        {"client_id": list(NHS_PHQ9), "therapist_id": "T1", "end_reason": "completed"}
    )
    sessions = pd.DataFrame(
        [(client, s, "attended") for client, n in NHS_ATTENDED.items() for s in range(1, n + 1)],
        columns=["client_id", "session_number", "status"],
    )
    scores = pd.concat([scores_from("phq9", NHS_PHQ9), scores_from("gad7", NHS_GAD7)])
    return build_client_measures(
        clients,
        sessions,
        None,
        scores,
        {"phq9": PHQ9, "gad7": GAD7},
        MeasureSettings(outcome_instruments=("phq9", "gad7"), change_method=method),
    ).set_index("client_id")


def test_nhs_indicators_in_client_measures_use_published_values():
    expected = nhs_frame()
    published = nhs_study("published")
    rci = nhs_study("rci")
    pd.testing.assert_frame_equal(published[expected.columns], expected)
    # NHS indicators keep the published 6 / 4 points when the RCI is chosen for the categories
    pd.testing.assert_frame_equal(rci[expected.columns], expected)
