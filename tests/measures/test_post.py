"""The end-of-treatment (post) score: missing when the client was not assessed at the end.

Expected values worked out by hand from measures.md (outcome change).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_change import GAD7, PHQ9, scores_from

from accord.core.errors import ConfigError
from accord.measures.build import MeasureSettings, build_client_measures
from accord.measures.engagement import engagement_measures

NA = pd.NA
# PHQ-9 at sessions 0, 1, 2, ... (intake = 0).
SERIES = {
    "a": [14, 12, 9, 7],  # completed at session 3, assessed there: post 7, change -7
    "b": [20, 18],  # dropped out after session 1: no post; last 18 (LOCF)
    "c": [12, 10, 8],  # completed at session 3 but not assessed there (score at 0-2 only)
    "d": [16, 15, 12, 10],  # still in treatment: no post
}
END = {"a": "completed", "b": "dropout", "c": "completed", "d": "ongoing"}
ATTENDED = {"a": 3, "b": 1, "c": 3, "d": 3}


def study(end_of_treatment: int | str = "completed") -> pd.DataFrame:
    clients = pd.DataFrame(
        {"client_id": list(SERIES), "therapist_id": "T1", "end_reason": list(END.values())}
    )
    sessions = pd.DataFrame(
        [(c, s, "attended") for c, n in ATTENDED.items() for s in range(1, n + 1)],
        columns=["client_id", "session_number", "status"],
    )
    return build_client_measures(
        clients,
        sessions,
        None,
        scores_from("phq9", SERIES),
        {"phq9": PHQ9, "gad7": GAD7},
        MeasureSettings(outcome_instruments=("phq9",), end_of_treatment=end_of_treatment),
    ).set_index("client_id")


def test_post_is_missing_unless_assessed_at_the_end_of_a_completed_treatment():
    out = study()
    assert out["phq9_post"].tolist()[:1] == [7.0]
    assert np.isnan(out["phq9_post"].iloc[1:]).all()
    assert out["phq9_post_session"].tolist() == [3, NA, NA, NA]
    # last observed stays (LOCF), for every client with a score
    assert out["phq9_last"].tolist() == [7.0, 18.0, 8.0, 10.0]
    # change (= change_post) is post - first; change_last is last - first
    assert out["phq9_change"].iloc[0] == -7.0
    assert out["phq9_change_post"].iloc[0] == -7.0
    assert np.isnan(out["phq9_change"].iloc[1:]).all()
    assert out["phq9_change_last"].tolist() == [-7.0, -2.0, -4.0, -6.0]
    # category from first and post: 14 -> 7 is -7 (reliable, >= 6), clinical -> not: recovered
    assert out["phq9_category"].tolist() == ["recovered", NA, NA, NA]
    # the LOCF category from first and last: b -2, c -4 and d -6 (reliable; 10 still clinical)
    assert out["phq9_category_last"].tolist() == ["recovered", "unchanged", "unchanged", "improved"]


def test_post_at_a_planned_session_number():
    out = study(end_of_treatment=2)
    # the score at session 2 whatever the ending; b was not assessed at session 2
    assert out["phq9_post"].fillna(-1).tolist() == [9.0, -1, 8.0, 12.0]
    assert out["phq9_change"].fillna(0).tolist() == [-5.0, 0, -4.0, -4.0]


@pytest.mark.parametrize("value", [0, "last", True, 2.5])
def test_end_of_treatment_must_be_a_session_or_completed(value):
    with pytest.raises(ConfigError, match="end_of_treatment"):
        MeasureSettings(end_of_treatment=value)


def test_last_score_before_the_end_assessment():
    out = study()
    # a: end session 3, last score before it at session 2 (9); the others have no end
    # session, so it is their last score.
    assert out["phq9_last_before_post"].tolist() == [9.0, 18.0, 8.0, 10.0]
    assert out["phq9_last_before_post_session"].tolist() == [2, 1, 2, 3]


def test_early_window_engagement_mediators():
    sessions = pd.DataFrame(
        {
            "client_id": "a",
            "session_number": [1, 2, 3, 4],
            "status": ["attended", "no_show", "attended", "attended"],
            "homework_assigned": [1, 0, 1, 1],
            "homework_completion": [0.5, np.nan, 1.0, 0.0],
        }
    )
    out = engagement_measures(sessions, pd.Index(["a"], name="client_id"), early_sessions=3)
    # sessions 1-3: attended 2 of 3; homework 0.5 and 1.0 -> 0.75 (all four: 1.5 / 3 = 0.5)
    assert out.loc["a", "early_attendance_rate"] == pytest.approx(2 / 3)
    assert out.loc["a", "early_homework_rate"] == pytest.approx(0.75)
    assert out.loc["a", "homework_rate"] == pytest.approx(0.5)
