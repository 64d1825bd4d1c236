"""Alliance measures, with every expected value worked out by hand from measures.md."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accord.measures.alliance import alliance_measures

CLIENTS = pd.Index(["P", "Q", "R", "S", "U"], name="client_id")


def score_rows(client, instrument, values, *, sessions=None, scale="total", rater="client"):
    sessions = sessions or list(range(1, len(values) + 1))
    return [
        {
            "client_id": client,
            "session_number": s,
            "instrument": instrument,
            "rater": rater,
            "scale": scale,
            "score": float(v),
            "items_answered": 12,
            "prorated": False,
        }
        for s, v in zip(sessions, values, strict=True)
    ]


@pytest.fixture
def scores() -> pd.DataFrame:
    rows = []
    # P: level and slope
    rows += score_rows("P", "wai_sr", [3.0, 3.5, 4.0, 4.5], sessions=[1, 2, 4, 6])
    rows += score_rows("P", "wai_sr", [2.5, 3.0, 1.0], sessions=[1, 4, 5], rater="therapist")
    rows += score_rows("P", "wai_sr", [1.0, 1.0, 1.0, 1.0], sessions=[1, 2, 4, 6], scale="goal")
    # Q: one 2-SD rupture, repaired
    rows += score_rows("Q", "wai_sr", [4, 2, 3, 4])
    # R: a 2-SD rupture not repaired within 3 sessions, and a 1-SD rupture at the end
    rows += score_rows("R", "wai_sr", [5, 5, 2, 4, 4, 4, 5, 3])
    # S: a single assessment, plus SRS
    rows += score_rows("S", "wai_sr", [3.25])
    rows += score_rows("S", "srs", [38, 37, 37, 35, 39, 38.5])
    # U: nothing
    frame = pd.DataFrame(rows)
    return frame.iloc[::-1].reset_index(drop=True)  # row order must not matter


def test_early_mean_and_slope(scores):
    out = alliance_measures(scores, CLIENTS)
    # P: first 3 assessed sessions (1, 2, 4) -> (3 + 3.5 + 4) / 3 = 3.5; all 4 -> 15 / 4 = 3.75
    assert out.loc["P", "early_alliance"] == pytest.approx(3.5)
    assert out.loc["P", "mean_alliance"] == pytest.approx(3.75)
    # slope over x = 1, 2, 4, 6 (mean 3.25), y mean 3.75:
    # Sxy = (-2.25)(-.75) + (-1.25)(-.25) + (.75)(.25) + (2.75)(.75) = 4.25
    # Sxx = 5.0625 + 1.5625 + .5625 + 7.5625 = 14.75 -> slope = 4.25 / 14.75
    assert out.loc["P", "alliance_slope"] == pytest.approx(4.25 / 14.75)
    # S: one assessment -> early = mean = 3.25, no slope
    assert out.loc["S", "early_alliance"] == 3.25
    assert out.loc["S", "mean_alliance"] == 3.25
    assert np.isnan(out.loc["S", "alliance_slope"])
    # U: nothing
    assert out.loc["U", ["early_alliance", "mean_alliance", "alliance_slope"]].isna().all()


def test_early_sessions_is_a_setting(scores):
    out = alliance_measures(scores, CLIENTS, early_sessions=2)
    assert out.loc["P", "early_alliance"] == pytest.approx(3.25)  # (3 + 3.5) / 2


def test_ruptures_and_repairs(scores):
    out = alliance_measures(scores, CLIENTS)
    # R: 5, 5, 2, 4, 4, 4, 5, 3; mean 32/8 = 4; squared deviations 1+1+4+0+0+0+1+1 = 8;
    #    SD = sqrt(8/7) = 1.0690; 2 SD = 2.1381.
    #    drops from the previous session: s3 5-2 = 3 (>= 2 SD), s8 5-3 = 2 (>= 1 SD, < 2 SD).
    #    s3: pre-rupture level 5; the next 3 sessions are 4, 4, 4 -> not repaired (the 5 at s7 is
    #    the 4th session after); s8: no later session -> not repaired.
    assert out.loc["R", ["ruptures_1sd", "ruptures_2sd"]].tolist() == [2, 1]
    assert out.loc["R", ["ruptures_repaired_1sd", "ruptures_repaired_2sd"]].tolist() == [0, 0]
    # Q: 4, 2, 3, 4; mean 3.25; squared deviations .5625 + 1.5625 + .0625 + .5625 = 2.75;
    #    SD = sqrt(2.75/3) = .9574; 2 SD = 1.9149. s2 drops 2 (>= 2 SD): a rupture at 1 and 2 SD.
    #    pre-rupture level 4; next sessions 3, 4 -> back to 4 at s4: repaired.
    assert out.loc["Q", ["ruptures_1sd", "ruptures_2sd"]].tolist() == [1, 1]
    assert out.loc["Q", ["ruptures_repaired_1sd", "ruptures_repaired_2sd"]].tolist() == [1, 1]
    # P rises steadily: no rupture
    assert out.loc["P", ["ruptures_1sd", "ruptures_2sd"]].tolist() == [0, 0]
    # S (one assessment) and U (none): no SD, so undefined
    assert out.loc[["S", "U"], "ruptures_1sd"].isna().all()
    assert str(out["ruptures_1sd"].dtype) == "Int64"


def test_repair_window_is_a_setting(scores):
    out = alliance_measures(scores, CLIENTS, repair_window=4)
    # R: with 4 sessions the s3 rupture is repaired at s7 (5 >= 5); s8 still has no later session
    assert out.loc["R", ["ruptures_repaired_1sd", "ruptures_repaired_2sd"]].tolist() == [1, 1]


def test_discrepancy_client_minus_therapist(scores):
    out = alliance_measures(scores, CLIENTS)
    # P: both rated sessions 1 (3.0 vs 2.5) and 4 (4.0 vs 3.0) -> diffs .5 and 1.0 -> .75;
    #    the therapist's rating at session 5 has no client rating and is left out
    assert out.loc["P", "alliance_discrepancy"] == pytest.approx(0.75)
    assert np.isnan(out.loc["Q", "alliance_discrepancy"])


def test_therapist_ratings_do_not_enter_client_alliance(scores):
    out = alliance_measures(scores[scores["rater"] == "client"], CLIENTS)
    assert out.loc["P", "mean_alliance"] == pytest.approx(3.75)


def test_srs_alerts(scores):
    out = alliance_measures(scores, CLIENTS)
    # S: 38 (first, >= 36), 37 (1 below 38: alert), 37 (no drop), 35 (< 36: alert),
    #    39, 38.5 (drop .5 < 1) -> 2 alerts
    assert out.loc["S", "srs_alerts"] == 2
    assert out["srs_alerts"].isna().tolist() == [True, True, True, False, True]


def test_srs_alert_rules_are_settings(scores):
    out = alliance_measures(scores, CLIENTS, srs_threshold=38, srs_drop=0.5)
    # below 38: 37, 37, 35; drops of >= .5: 38->37, 35 (from 37), 38.5 (from 39)
    # alerts at sessions 2, 3, 4, 6 -> 4
    assert out.loc["S", "srs_alerts"] == 4


def test_srs_as_the_alliance_instrument(scores):
    out = alliance_measures(scores, CLIENTS, instrument="srs")
    # S: first 3 SRS sessions (38 + 37 + 37) / 3 = 37.333
    assert out.loc["S", "early_alliance"] == pytest.approx(112 / 3)
    assert np.isnan(out.loc["P", "early_alliance"])
