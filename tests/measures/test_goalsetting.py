"""Goal-setting exposures, with every expected value worked out by hand from measures.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accord.core.errors import ConfigError
from accord.measures.build import MeasureSettings
from accord.measures.goalsetting import GOAL_COLUMNS, goal_measures
from accord.models.spec import model_specs

CLIENTS = pd.Index(["G1", "G2", "G3"], name="client_id")
SMART = ["smart_specific", "smart_measurable", "smart_achievable", "smart_relevant"]


@pytest.fixture
def goals() -> pd.DataFrame:
    rows = [
        # goal, set_by, client / therapist importance, SMART (5 criteria), status
        ("g1", "joint", 5, 4, [True, True, True, True, False], "active"),
        ("g2", "client", 3, 1, [True, False, None, None, None], "revised"),
        ("g3", "joint", 2, None, [None, None, None, None, None], "revised"),
        ("g4", "therapist", None, None, [False, False, False, False, False], "achieved"),
    ]
    frame = pd.DataFrame(
        {
            "client_id": "G1",
            "goal_id": [r[0] for r in rows],
            "set_session": 1,
            "set_by": [r[1] for r in rows],
            "client_importance": pd.array([r[2] for r in rows], dtype="Int64"),
            "therapist_importance": pd.array([r[3] for r in rows], dtype="Int64"),
            "status": [r[5] for r in rows],
        }
    )
    for i, column in enumerate([*SMART, "smart_time_bound"]):
        frame[column] = pd.array([r[4][i] for r in rows], dtype="boolean")
    return frame


@pytest.fixture
def scores() -> pd.DataFrame:
    rows = [
        # client, session, instrument, rater, scale, score
        ("G1", 1, "wai_sr", "client", "goal", 2.0),
        ("G1", 2, "wai_sr", "client", "goal", 3.0),
        ("G1", 3, "wai_sr", "client", "goal", 4.0),
        ("G1", 4, "wai_sr", "client", "goal", 5.0),
        ("G1", 1, "wai_sr", "therapist", "goal", 1.0),
        ("G1", 1, "wai_sr", "client", "total", 1.0),
        ("G1", 2, "gas", "client", "t_score", 40.0),
        ("G1", 5, "gas", "client", "t_score", 55.0),
        ("G1", 8, "gas", "client", "t_score", 60.0),
        ("G2", 3, "gas", "client", "t_score", 59.13),
    ]
    return pd.DataFrame(
        rows, columns=["client_id", "session_number", "instrument", "rater", "scale", "score"]
    )


def test_goal_table_exposures(goals, scores):
    out = goal_measures(goals, scores, CLIENTS)
    assert list(out.columns) == list(GOAL_COLUMNS)
    assert out.loc["G1", "n_goals"] == 4
    # 2 of 4 goals set jointly
    assert out.loc["G1", "joint_goal_share"] == pytest.approx(0.5)
    # rated by both: g1 |5 - 4| = 1, g2 |3 - 1| = 2 -> mean 1.5 -> 1 - 1.5 / 4 = 0.625
    assert out.loc["G1", "goal_agreement"] == pytest.approx(0.625)
    # g1 4 of 5 met = .8; g2 1 of 2 recorded = .5; g3 none recorded (left out); g4 0 of 5
    # -> (.8 + .5 + 0) / 3
    assert out.loc["G1", "smart_quality"] == pytest.approx(1.3 / 3)
    # g2 and g3 revised
    assert out.loc["G1", "goal_revisions"] == 2


def test_client_without_goals(goals, scores):
    out = goal_measures(goals, scores, CLIENTS)
    assert out.loc["G2", "n_goals"] == 0
    assert out.loc["G2", "goal_revisions"] == 0
    assert out.loc["G2", ["joint_goal_share", "goal_agreement", "smart_quality"]].isna().all()


@pytest.mark.parametrize("table", [None, "empty"])
def test_no_goals_table_leaves_goal_measures_undefined(goals, scores, table):
    out = goal_measures(goals.iloc[:0] if table else None, scores, CLIENTS)
    assert out["n_goals"].isna().all()
    assert out["joint_goal_share"].isna().all()
    assert out["goal_revisions"].isna().all()
    # the goal alliance and consensus come from the WAI-SR, not from the goals table
    assert out.loc["G1", "goal_alliance_client"] == pytest.approx(3.0)
    assert out.loc["G1", "goal_consensus"] == pytest.approx(1.0)


def test_goal_alliance_client_is_early_client_rated_goal_subscale(goals, scores):
    out = goal_measures(goals, scores, CLIENTS)
    # client-rated goal subscale at sessions 1-3: (2 + 3 + 4) / 3 = 3; the therapist's 1.0 and
    # the total's 1.0 are other scales, session 4 is past the first 3
    assert out.loc["G1", "goal_alliance_client"] == pytest.approx(3.0)
    assert np.isnan(out.loc["G2", "goal_alliance_client"])


def test_goal_consensus_is_client_therapist_divergence_in_the_early_window():
    rows = [
        # client 1: both rate sessions 1 and 3 (|4 - 3| = 1, |2 - 4.5| = 2.5); session 5 is
        # past the client's first 3 ratings (sessions 1, 2, 3), so |5 - 1| is left out
        ("C1", 1, "client", 4.0),
        ("C1", 2, "client", 3.0),
        ("C1", 3, "client", 2.0),
        ("C1", 5, "client", 5.0),
        ("C1", 1, "therapist", 3.0),
        ("C1", 3, "therapist", 4.5),
        ("C1", 5, "therapist", 1.0),
        # client 2: the therapist rated only a session the client did not: no consensus
        ("C2", 1, "client", 4.0),
        ("C2", 2, "therapist", 4.0),
        # client 3: client ratings at 1, 4, 6 make the window end at session 6
        ("C3", 1, "client", 3.0),
        ("C3", 4, "client", 3.0),
        ("C3", 6, "client", 3.5),
        ("C3", 6, "therapist", 3.5),
    ]
    scores = pd.DataFrame(
        [(c, s, "wai_sr", r, "goal", v) for c, s, r, v in rows],
        columns=["client_id", "session_number", "instrument", "rater", "scale", "score"],
    )
    clients = pd.Index(["C1", "C2", "C3"], name="client_id")
    out = goal_measures(None, scores, clients)
    assert out.loc["C1", "goal_consensus"] == pytest.approx((1.0 + 2.5) / 2)
    assert np.isnan(out.loc["C2", "goal_consensus"])
    assert out.loc["C3", "goal_consensus"] == pytest.approx(0.0)
    # the client-only measure is a different construct: C1's early mean (4 + 3 + 2) / 3
    assert out.loc["C1", "goal_alliance_client"] == pytest.approx(3.0)


def test_exposures_use_only_goals_set_in_the_early_window(goals, scores):
    # g2 (client) and g4 (therapist) set at session 5, after the early window (3): the early
    # goals are g1 (joint) and g3 (joint), so the joint share is 2 / 2 = 1 (all goals: 2 / 4)
    # and the late share 2 / 4.
    goals = goals.assign(set_session=pd.array([0, 5, 3, 5], dtype="Int64"))
    out = goal_measures(goals, scores, CLIENTS)
    assert out.loc["G1", "n_goals"] == 4
    assert out.loc["G1", "late_goal_share"] == pytest.approx(0.5)
    assert out.loc["G1", "joint_goal_share"] == pytest.approx(1.0)
    # SMART from g1 (4 of 5 = .8; g3 has none recorded); revisions: g3 only; importance
    # rated by both only for g1: 1 - |5 - 4| / 4
    assert out.loc["G1", "smart_quality"] == pytest.approx(0.8)
    assert out.loc["G1", "goal_revisions"] == 1
    assert out.loc["G1", "goal_agreement"] == pytest.approx(0.75)
    # a window of 5 sessions takes every goal in
    wider = goal_measures(goals, scores, CLIENTS, early_sessions=5)
    assert wider.loc["G1", "joint_goal_share"] == pytest.approx(0.5)
    assert wider.loc["G1", "late_goal_share"] == pytest.approx(0.0)


def test_goal_attainment_is_never_an_exposure():
    with pytest.raises(ConfigError, match="goal-attainment outcome"):
        MeasureSettings(primary_exposure="gas_t")
    with pytest.raises(ConfigError, match="never an exposure"):
        model_specs({"models": [{"id": "g", "kind": "growth", "exposure": "gas_change"}]})


def test_gas_t_and_change(goals, scores):
    out = goal_measures(goals, scores, CLIENTS)
    # G1: T at sessions 2, 5, 8 = 40, 55, 60 -> last 60, last - first = 20
    assert out.loc["G1", "gas_t"] == pytest.approx(60.0)
    assert out.loc["G1", "gas_change"] == pytest.approx(20.0)
    # G2: one rated session -> T known, no change
    assert out.loc["G2", "gas_t"] == pytest.approx(59.13)
    assert np.isnan(out.loc["G2", "gas_change"])
    assert np.isnan(out.loc["G3", "gas_t"])
