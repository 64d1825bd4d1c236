"""The session panel, person-mean centring, and the measures built end to end from the settings.

Every expected value is worked out by hand from measures.md and the data contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from accord.core.errors import ConfigError, StudyError
from accord.measures.build import (
    MeasureSettings,
    MeasuresResult,
    build_client_measures,
    build_measures,
    build_session_panel,
)
from accord.measures.panel import scale_column


@dataclass(frozen=True)
class Instrument:
    key: str
    higher_is: str
    cutoff: float | None = None
    caseness: float | None = None
    reliable_change: float | None = None
    reliability: float | None = None
    norms: dict | None = None


REGISTRY = {
    "phq9": Instrument(
        "phq9", "worse", cutoff=10, caseness=10, reliable_change=6, reliability=0.89
    ),
    "gad7": Instrument("gad7", "worse", cutoff=8, caseness=8, reliable_change=4, reliability=0.92),
    "ors": Instrument("ors", "better", cutoff=25, reliable_change=5, reliability=0.93),
    "core10": Instrument("core10", "worse", cutoff=11, reliable_change=6, reliability=0.90),
    "wai_sr": Instrument("wai_sr", "better"),
    "srs": Instrument("srs", "better", cutoff=36),
}


@pytest.fixture
def clients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": ["B", "A", "C"],
            "therapist_id": ["T2", "T1", "T1"],
            "site_id": ["S1", "S1", "S2"],
            "arm": ["usual_care", "collaborative", "collaborative"],
            "end_reason": ["dropout", "completed", "ongoing"],
        }
    )


@pytest.fixture
def sessions() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("A", 1, "attended", 0),
            ("A", 2, "attended", 7),
            ("A", 3, "attended", 14),
            ("B", 1, "attended", 0),
            ("B", 2, "attended", 7),
            ("B", 3, "cancelled", 14),
        ],
        columns=["client_id", "session_number", "status", "day"],
    ).astype({"day": "Int64"})


def rows(client, instrument, values, sessions, scale="total", rater="client"):
    return [
        (client, s, instrument, rater, scale, float(v))
        for s, v in zip(sessions, values, strict=True)
    ]


@pytest.fixture
def scores() -> pd.DataFrame:
    data = (
        rows("A", "phq9", [14, 9], [0, 3])
        + rows("A", "wai_sr", [3, 4, 5], [1, 2, 3])
        + rows("A", "wai_sr", [2, 4], [1, 3], scale="goal")
        + rows("A", "wai_sr", [3.5], [2], rater="therapist")
        + rows("A", "gas", [60], [3], scale="t_score")
        + rows("B", "wai_sr", [2, 3], [1, 2])
        + rows("B", "wai_sr", [5], [1], scale="goal")
        + rows("B", "srs", [30], [2])
        + rows("Z", "phq9", [20], [0])  # not a validated client: ignored
    )
    frame = pd.DataFrame(
        data, columns=["client_id", "session_number", "instrument", "rater", "scale", "score"]
    )
    frame["items_answered"] = 1
    frame["prorated"] = False
    return frame


def test_scale_column_names():
    assert scale_column("phq9", "total") == "phq9"
    assert scale_column("wai_sr", "goal") == "wai_sr_goal"
    assert scale_column("gas", "t_score") == "gas_t"
    assert scale_column("wai_sr", "total", "therapist") == "wai_sr_therapist"
    assert scale_column("wai_sr", "bond", "therapist") == "wai_sr_bond_therapist"


def test_panel_rows_and_keys(clients, sessions, scores):
    panel = build_session_panel(clients, sessions, scores, REGISTRY)
    # A: intake (session 0, scored) + 3 sessions; B: 3 sessions; C: none; Z is not a client
    keys = list(zip(panel["client_id"], panel["session_number"], strict=True))
    assert keys == [("A", 0), ("A", 1), ("A", 2), ("A", 3), ("B", 1), ("B", 2), ("B", 3)]
    intake = panel.iloc[0]
    assert pd.isna(intake["status"]) and pd.isna(intake["day"]) and not intake["attended"]
    assert panel["attended"].tolist() == [False, True, True, True, True, True, False]
    assert panel["day"].tolist() == [pd.NA, 0, 7, 14, 0, 7, 14]
    assert panel["therapist_id"].tolist() == ["T1"] * 4 + ["T2"] * 3
    assert panel["arm"].iloc[-1] == "usual_care"


def test_panel_score_columns(clients, sessions, scores):
    panel = build_session_panel(clients, sessions, scores, REGISTRY)
    fixed = ["client_id", "session_number", "status", "day", "attended"]
    fixed += ["therapist_id", "site_id", "arm"]
    scored = ["gas_t", "phq9", "srs", "wai_sr", "wai_sr_goal", "wai_sr_therapist"]
    centred = ["alliance", "alliance_between", "alliance_within"]
    centred += [
        "goal_alliance_client",
        "goal_alliance_client_between",
        "goal_alliance_client_within",
    ]
    assert list(panel.columns) == fixed + scored + centred
    a = panel[panel["client_id"] == "A"].set_index("session_number")
    assert a["phq9"].tolist()[0] == 14 and a.loc[3, "phq9"] == 9
    assert np.isnan(a.loc[1, "phq9"])
    assert a.loc[2, "wai_sr_therapist"] == 3.5
    assert a.loc[3, "gas_t"] == 60


def test_within_between_decomposition(clients, sessions, scores):
    panel = build_session_panel(clients, sessions, scores, REGISTRY)
    # client means: A (3, 4, 5) -> 4; B (2, 3) -> 2.5; grand mean of client means 3.25
    # (not the mean over 5 sessions, 17/5 = 3.4: each client counts once)
    a = panel[panel["client_id"] == "A"]
    b = panel[panel["client_id"] == "B"]
    assert a["alliance_between"].tolist() == pytest.approx([0.75] * 4)
    assert b["alliance_between"].tolist() == pytest.approx([-0.75] * 3)
    assert a["alliance_within"].tolist()[1:] == pytest.approx([-1.0, 0.0, 1.0])
    assert b["alliance_within"].tolist()[:2] == pytest.approx([-0.5, 0.5])
    # within + between + grand mean = observed, where observed
    seen = panel["alliance"].notna()
    total = panel["alliance_within"] + panel["alliance_between"] + 3.25
    assert total[seen].tolist() == pytest.approx(panel.loc[seen, "alliance"].tolist())
    # goal consensus: A (2, 4) -> 3, B (5) -> 5, grand mean 4 -> between -1 and +1
    assert a["goal_alliance_client_between"].iloc[0] == pytest.approx(-1.0)
    assert b["goal_alliance_client_between"].iloc[0] == pytest.approx(1.0)
    assert a["goal_alliance_client_within"].tolist()[1:] == pytest.approx(
        [-1.0, np.nan, 1.0], nan_ok=True
    )


def test_alliance_instrument_follows_settings(clients, sessions, scores):
    settings = MeasureSettings(alliance_instrument="srs")
    panel = build_session_panel(clients, sessions, scores, REGISTRY, settings)
    assert panel["alliance"].tolist() == pytest.approx(panel["srs"].tolist(), nan_ok=True)


def test_build_measures_end_to_end(clients, sessions, scores):
    result = build_measures(clients, sessions, None, scores, REGISTRY, MeasureSettings())
    assert isinstance(result, MeasuresResult)
    cm = result.client_measures
    assert cm["client_id"].tolist() == ["A", "B", "C"]
    assert cm["arm"].tolist() == ["collaborative", "usual_care", "collaborative"]
    assert cm["dropout"].tolist() == [False, True, False]
    assert cm["early_alliance"].tolist()[:2] == pytest.approx([4.0, 2.5])
    # A: PHQ-9 14 at intake -> 9 at session 3: -5, not reliable (< 6) -> unchanged
    a = cm.set_index("client_id").loc["A"]
    assert (a["phq9_first"], a["phq9_last"], a["phq9_change"]) == (14, 9, -5)
    assert (a["phq9_first_session"], a["phq9_last_session"]) == (0, 3)
    assert a["phq9_category"] == "unchanged"
    assert a["nhs_finished"] and pd.isna(a["nhs_caseness"])  # no GAD-7
    # default outcomes: registry instruments with a cut-off scored in the study; the SRS (scored,
    # with a cut-off) is a process measure, the WAI-SR has no cut-off, GAD-7 etc. are not scored
    assert list(result.change_thresholds["instrument"]) == ["phq9"]
    assert "gad7_category" not in cm.columns and "srs_change" not in cm.columns
    # the metadata is plain JSON and records the choices
    meta = json.loads(json.dumps(result.metadata))
    assert meta["settings"]["dropout_definition"] == "end_reason"
    assert meta["change_thresholds"]["phq9"]["reliable_change"] == 6
    assert meta["grand_means"]["alliance"] == pytest.approx(3.25)
    pd.testing.assert_frame_equal(
        cm, build_client_measures(clients, sessions, None, scores, REGISTRY)
    )
    pd.testing.assert_frame_equal(
        result.session_panel, build_session_panel(clients, sessions, scores, REGISTRY)
    )


def test_named_outcome_instruments_are_kept_even_unscored(clients, sessions, scores):
    settings = MeasureSettings(outcome_instruments=["gad7", "phq9"])
    result = build_measures(clients, sessions, None, scores, REGISTRY, settings)
    assert list(result.change_thresholds["instrument"]) == ["gad7", "phq9"]
    assert result.client_measures["gad7_n_assessments"].tolist() == [0, 0, 0]
    assert result.metadata["outcome_instruments"] == ["gad7", "phq9"]


def test_client_without_any_data(clients, sessions, scores):
    cm = build_client_measures(clients, sessions, None, scores, REGISTRY).set_index("client_id")
    c = cm.loc["C"]
    assert c["sessions_scheduled"] == 0
    assert np.isnan(c["attendance_rate"])
    # still in treatment: not a dropout by the record, undefined by session count
    assert not c["dropout_end_reason"]
    assert pd.isna(c["dropout_min_sessions"])
    assert c["phq9_n_assessments"] == 0
    assert pd.isna(c["phq9_category"]) and np.isnan(c["mean_alliance"])


def test_settings_defaults_and_metadata():
    settings = MeasureSettings()
    meta = settings.to_metadata()
    assert meta["dropout_definition"] == "end_reason"
    assert meta["dropout_min_sessions"] == 2
    assert (meta["alliance_instrument"], meta["alliance_scale"]) == ("wai_sr", "total")
    assert meta["early_sessions"] == 3 and meta["rupture_repair_window"] == 3
    assert (meta["srs_alert_threshold"], meta["srs_alert_drop"]) == (36, 1)
    assert meta["change_method"] == "published" and meta["clinical_cutoff"] == "registry"
    assert meta["rci_sd_source"] == "intake"
    assert meta["primary_exposure"] == "joint_goal_share"
    assert json.loads(json.dumps(meta)) == meta


@pytest.mark.parametrize(
    "change",
    [
        {"dropout_definition": "sometimes"},
        {"change_method": "eyeball"},
        {"clinical_cutoff": "d"},
        {"early_sessions": 0},
        {"rupture_sds": (0,)},
        {"primary_exposure": "phq9_change"},
    ],
)
def test_settings_refuse_bad_choices(change):
    with pytest.raises(ConfigError):
        MeasureSettings(**change)


def test_settings_from_mapping():
    settings = MeasureSettings.from_mapping(
        {"dropout_definition": "min_sessions", "rupture_sds": [1]}
    )
    assert settings.dropout_definition == "min_sessions"
    assert settings.rupture_sds == (1,)
    with pytest.raises(ConfigError, match="unknown setting"):
        MeasureSettings.from_mapping({"dropout": "min_sessions"})


def test_unknown_outcome_instrument_is_a_config_error(clients, sessions, scores):
    settings = MeasureSettings(outcome_instruments=("bdi2",))
    with pytest.raises(ConfigError, match="bdi2"):
        build_client_measures(clients, sessions, None, scores, REGISTRY, settings)


def test_missing_required_column_names_table_and_column(clients, sessions, scores):
    with pytest.raises(StudyError, match="status") as caught:
        build_client_measures(clients, sessions.drop(columns="status"), None, scores, REGISTRY)
    assert (caught.value.file, caught.value.column) == ("sessions", "status")
