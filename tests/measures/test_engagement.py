"""Engagement measures, with every expected value worked out by hand from measures.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accord.measures.engagement import engagement_measures
from accord.measures.panel import client_index

NA = pd.NA


@pytest.fixture
def clients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": ["E", "D", "C", "B", "A"],  # deliberately unsorted
            "therapist_id": ["T1"] * 5,
            "end_reason": [None, "ongoing", "completed", "dropout", "completed"],
        }
    )


@pytest.fixture
def sessions() -> pd.DataFrame:
    rows = [
        # client, session, status, day, homework_assigned, homework_completion, goal_review
        ("A", 1, "attended", 0, True, 1.0, True),
        ("A", 2, "cancelled", 7, False, np.nan, True),
        ("A", 3, "attended", 14, True, 0.5, False),
        ("A", 4, "no_show", 21, None, np.nan, True),
        ("A", 5, "attended", 35, True, 0.0, True),
        ("B", 1, "attended", 0, False, np.nan, None),
        ("B", 2, "attended", 7, False, np.nan, True),
        ("B", 3, "no_show", 14, False, np.nan, None),
        ("C", 1, "attended", 0, True, np.nan, False),
        ("D", 1, "cancelled", 0, None, np.nan, None),
        # E has no sessions at all
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "client_id",
            "session_number",
            "status",
            "day",
            "homework_assigned",
            "homework_completion",
            "goal_review",
        ],
    )
    frame["day"] = frame["day"].astype("Int64")
    frame["homework_assigned"] = frame["homework_assigned"].astype("boolean")
    frame["goal_review"] = frame["goal_review"].astype("boolean")
    return frame.sample(frac=1.0, random_state=3)  # row order must not matter


def measures(clients, sessions, **kwargs) -> pd.DataFrame:
    end_reason = clients.set_index("client_id")["end_reason"]
    return engagement_measures(sessions, client_index(clients), end_reason, **kwargs)


def test_one_row_per_client_sorted(clients, sessions):
    out = measures(clients, sessions)
    assert list(out.index) == ["A", "B", "C", "D", "E"]


def test_counts_and_attendance_rate(clients, sessions):
    out = measures(clients, sessions)
    # A: 5 scheduled; attended 1, 3, 5; cancelled 2; no-show 4 -> rate 3/5
    assert out.loc["A", ["sessions_scheduled", "sessions_attended"]].tolist() == [5, 3]
    assert out.loc["A", ["cancellations", "no_shows"]].tolist() == [1, 1]
    assert out.loc["A", "attendance_rate"] == pytest.approx(0.6)
    # B: 2 of 3 attended; D: 0 of 1; E: nothing scheduled -> rate undefined
    assert out.loc["B", "attendance_rate"] == pytest.approx(2 / 3)
    assert out.loc["D", "attendance_rate"] == 0.0
    assert out.loc["E", "sessions_scheduled"] == 0
    assert np.isnan(out.loc["E", "attendance_rate"])
    assert str(out["sessions_attended"].dtype) == "Int64"


def test_weeks_in_treatment_and_gaps(clients, sessions):
    out = measures(clients, sessions)
    # A: last attended day 35 - first scheduled day 0 = 35 days = 5 weeks;
    #    attended on days 0, 14, 35 -> gaps 14 and 21 -> mean 17.5
    assert out.loc["A", "weeks_in_treatment"] == pytest.approx(5.0)
    assert out.loc["A", "mean_gap_days"] == pytest.approx(17.5)
    # B: attended days 0 and 7 (the no-show on day 14 does not count) -> 1 week, gap 7
    assert out.loc["B", "weeks_in_treatment"] == pytest.approx(1.0)
    assert out.loc["B", "mean_gap_days"] == pytest.approx(7.0)
    # C: one attended session on day 0 -> 0 weeks, no gap
    assert out.loc["C", "weeks_in_treatment"] == 0.0
    assert np.isnan(out.loc["C", "mean_gap_days"])
    # D never attended
    assert np.isnan(out.loc["D", "weeks_in_treatment"])


def test_weeks_undefined_without_day(clients, sessions):
    out = measures(clients, sessions.drop(columns="day"))
    assert out["weeks_in_treatment"].isna().all()
    assert out["mean_gap_days"].isna().all()


def test_homework_and_goal_review_rates(clients, sessions):
    out = measures(clients, sessions)
    # A: homework assigned in sessions 1, 3, 5 with completion 1.0, 0.5, 0.0 -> 1.5 / 3 = 0.5
    assert out.loc["A", "homework_rate"] == pytest.approx(0.5)
    # A: attended sessions 1, 3, 5 reviewed True, False, True -> 2/3 (the reviews marked in the
    #    cancelled and missed sessions 2 and 4 do not count)
    assert out.loc["A", "goal_review_rate"] == pytest.approx(2 / 3)
    # B: never assigned -> undefined; reviews: session 1 not recorded, session 2 True -> 1/1
    assert np.isnan(out.loc["B", "homework_rate"])
    assert out.loc["B", "goal_review_rate"] == 1.0
    # C: assigned but no completion recorded -> undefined; reviewed False -> 0
    assert np.isnan(out.loc["C", "homework_rate"])
    assert out.loc["C", "goal_review_rate"] == 0.0
    # D: no attended session -> undefined
    assert np.isnan(out.loc["D", "goal_review_rate"])


def test_each_dropout_definition(clients, sessions):
    out = measures(clients, sessions)
    # end_reason: only B recorded a dropout; E has no end reason
    assert out["dropout_end_reason"].tolist() == [False, True, False, False, NA]
    # min_sessions (< 2 attended): A 3, B 2, C 1, D ongoing (undefined), E 0
    assert out["dropout_min_sessions"].tolist() == [False, False, True, NA, True]
    # last_scheduled_missed: A attended session 5, B missed 3, C attended 1, D ongoing, E none
    assert out["dropout_last_scheduled_missed"].tolist() == [False, True, False, NA, NA]
    # B is a dropout by end reason and last session, not by session count; C the other way round
    assert out["dropout"].tolist() == out["dropout_end_reason"].tolist()


@pytest.mark.parametrize("definition", ["end_reason", "min_sessions", "last_scheduled_missed"])
def test_dropout_follows_the_chosen_definition(clients, sessions, definition):
    out = measures(clients, sessions, dropout_definition=definition)
    expected = out[f"dropout_{definition}"]
    assert out["dropout"].equals(expected)
    assert out["dropout_event"].equals(expected)


def test_min_sessions_threshold_is_a_setting(clients, sessions):
    out = measures(clients, sessions, dropout_definition="min_sessions", min_sessions=3)
    # fewer than 3 attended: A 3 no, B 2 yes, C 1 yes, D ongoing, E 0 yes
    assert out["dropout"].tolist() == [False, True, True, NA, True]


def test_sessions_to_dropout_with_censoring(clients, sessions):
    out = measures(clients, sessions, dropout_definition="last_scheduled_missed")
    # B dropped out after attending 2 sessions: event at 2
    assert out.loc["B", "sessions_to_dropout"] == 2
    assert out.loc["B", "dropout_event"]
    # A and C are censored at their attended sessions (3 and 1)
    assert out.loc["A", "sessions_to_dropout"] == 3
    assert not out.loc["A", "dropout_event"]
    assert out.loc["C", "sessions_to_dropout"] == 1
    assert not out.loc["C", "dropout_event"]
    # D is still in treatment: no event status
    assert out["dropout_event"].isna().tolist() == [False, False, False, True, True]


def test_without_end_reason_column(clients, sessions):
    out = engagement_measures(sessions, client_index(clients))
    assert out["dropout_end_reason"].isna().all()
    # nobody is known to be ongoing, so D (0 attended, last session cancelled) counts
    assert out.loc["D", "dropout_min_sessions"]
    assert out.loc["D", "dropout_last_scheduled_missed"]


def test_unknown_definition_is_refused(clients, sessions):
    with pytest.raises(ValueError, match="dropout_definition"):
        measures(clients, sessions, dropout_definition="three_strikes")
