"""Not on track: cross-fitting keeps a client's data out of its own curve, bands, flags and
check-in events worked by hand, and a planted check-in association recovered."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from accord.models.not_on_track import (
    check_in_events,
    client_folds,
    cross_fitted_expectations,
    fit_check_in,
    fit_not_on_track_spec,
    flag_not_on_track,
    reviewed_after_first_flag,
    severity_bands,
)
from accord.models.spec import ModelContext, ModelSpec

PHQ9_BANDS = [("minimal", 0, 4), ("mild", 5, 9), ("moderate", 10, 14), ("severe", 15, 27)]


def trajectories(n_clients: int = 200, seed: int = 1) -> pd.DataFrame:
    r = np.random.default_rng(seed)
    intake = r.integers(10, 25, n_clients).astype(float)
    rows = []
    for i in range(n_clients):
        for s in range(1, 9):
            score = intake[i] - 3 * np.log1p(s) + r.normal(0, 2)
            rows.append((f"C{i:03d}", s, score, intake[i]))
    frame = pd.DataFrame(rows, columns=["client_id", "session_number", "score", "intake"])
    frame["severity"] = np.where(frame["intake"] >= 15, "severe", "moderate")
    return frame


def test_a_clients_own_data_never_enter_its_own_curve():
    data = trajectories()
    before = cross_fitted_expectations(data, k=5, seed=7)
    folds = client_folds(data["client_id"], 5, 7)
    client = "C010"
    changed = data.copy()
    own = changed["client_id"] == client
    changed.loc[own, "score"] += 40  # the client's own scores change a lot
    after = cross_fitted_expectations(changed, k=5, seed=7)
    columns = ["expected", "lower", "upper"]
    pd.testing.assert_frame_equal(before.loc[own, columns], after.loc[own, columns])
    # The same change moves the curves of clients of the same band in other folds.
    band = data.loc[own, "severity"].iloc[0]
    others = (data["severity"] == band) & (data["client_id"].map(folds) != folds[client])
    assert not np.allclose(before.loc[others, "expected"], after.loc[others, "expected"])


def test_folds_are_seeded_balanced_and_cover_every_client_once():
    ids = [f"C{i}" for i in range(23)]
    folds = client_folds(ids, 5, 3)
    assert folds == client_folds(list(reversed(ids)), 5, 3)
    assert sorted(folds) == sorted(ids)
    assert sorted(np.bincount(list(folds.values()))) == [4, 4, 5, 5, 5]


def test_the_tolerance_band_holds_its_share_of_residuals():
    data = trajectories(400, 2)
    out = cross_fitted_expectations(data, k=5, seed=1, band=0.8)
    inside = (out["score"] >= out["lower"]) & (out["score"] <= out["upper"])
    assert inside.mean() == pytest.approx(0.8, abs=0.02)
    # Curve a + b log(1 + s) + c intake recovers the planted b = -3 and c = 1.
    fitted = out["expected"].to_numpy()
    truth = out["intake"] - 3 * np.log1p(out["session_number"])
    assert np.abs(fitted - truth).max() < 0.6


def test_bands_merge_small_neighbours_by_hand():
    intake = pd.Series([2, 3, 6, 11, 12, 13, 16, 17, 20, np.nan], dtype=float)
    # Counts minimal 2, mild 1, moderate 3, severe 3; with at least 3: minimal merges with
    # mild (3), then every band holds 3.
    bands = severity_bands(intake, PHQ9_BANDS, min_band_clients=3)
    assert bands.tolist()[:9] == ["minimal-mild"] * 3 + ["moderate"] * 3 + ["severe"] * 3
    assert pd.isna(bands.iloc[9])
    # With at least 4: minimal-mild (3) takes in moderate (6), then severe (3; the missing
    # intake is not counted) joins the band before it.
    bands = severity_bands(intake, PHQ9_BANDS, min_band_clients=4)
    assert set(bands.dropna()) == {"minimal-mild-moderate-severe"}


def test_flags_and_check_in_events_by_hand():
    flags = pd.DataFrame(
        {
            "client_id": ["A"] * 5 + ["B"] * 3,
            "session_number": [1, 2, 4, 6, 7, 1, 2, 3],
            "score": [9, 15, 14, 8, 9, 20, 21, 10],
            "expected": [10.0] * 8,
            "lower": [6.0] * 8,
            "upper": [12.0] * 8,
        }
    )
    flags["not_on_track"] = flag_not_on_track(flags, "worse")
    assert flags["not_on_track"].tolist() == [False, True, True, False, False, True, True, False]
    sessions = pd.DataFrame(
        {
            "client_id": ["A"] * 6 + ["B"] * 3,
            "session_number": [1, 2, 3, 4, 5, 6, 1, 2, 3],
            "attended": [True, True, False, True, True, True, True, True, True],
            "goal_review": [False, False, True, True, False, pd.NA, False, True, False],
        }
    )
    events = check_in_events(flags, sessions)
    # A flagged at 2: next attended session 4 (3 was missed), reviewed; next judged assessment
    # after 4 is 6, on track. A flagged at 4: next attended 5, not reviewed; at 6 on track.
    # B flagged at 1: session 2 reviewed, back on track at 3. B flagged at 2: session 3 not
    # reviewed, no judged assessment after 3, left out.
    assert events[["client_id", "session_number", "review_session"]].values.tolist() == [
        ["A", 2.0, 4.0],
        ["A", 4.0, 5.0],
        ["B", 1.0, 2.0],
    ]
    assert events["goal_review"].tolist() == [1.0, 0.0, 1.0]
    assert events["back_on_track"].tolist() == [1.0, 1.0, 1.0]
    # First flags: A at 2 (next attended 4, reviewed), B at 1 (next attended 2, reviewed).
    assert reviewed_after_first_flag(flags, sessions).to_dict() == {"A": 1.0, "B": 1.0}
    sessions.loc[3, "goal_review"] = pd.NA  # A's session 4 records no review
    assert np.isnan(reviewed_after_first_flag(flags, sessions)["A"])


def test_a_planted_check_in_association_is_recovered():
    r = np.random.default_rng(4)
    client = np.repeat(np.arange(600), 3)
    review = (r.random(client.size) < 0.5).astype(float)
    back = (r.random(client.size) < 1 / (1 + np.exp(-(-0.3 + 0.7 * review)))).astype(float)
    events = pd.DataFrame(
        {"client_id": client.astype(str), "goal_review": review, "back_on_track": back}
    )
    values, notes = fit_check_in(events)
    assert values["ci_low"] < 0.7 < values["ci_high"] and values["ci_low"] > 0
    assert notes["n_clients"] == 600


def test_declared_model_fits_a_simulated_study():
    from conftest import simulated_measures

    from accord.simulate import simulate_study

    panel, clients, _ = simulated_measures(n_clients=400, seed=5)
    sessions = simulate_study(n_clients=400, seed=5).sessions
    spec = ModelSpec(id="not_on_track", kind="not_on_track", outcome="phq9", exposure="arm")
    start = time.perf_counter()
    result = fit_not_on_track_spec(panel, clients, spec, ModelContext(), sessions=sessions)
    assert time.perf_counter() - start < 15
    extras = result.diagnostics["extras"]
    assert {row["group"] for row in extras["rates"]} == {"collaborative", "usual_care"}
    assert result.coefficients["term"].tolist() == [
        "back_on_track:goal_review",
        "recovery:reviewed_after_flag",
    ]
    assert set(result.coefficients["model"]) == {"not_on_track"}
    assert extras["check_in"]["n_events"] > 50
    again = fit_not_on_track_spec(panel, clients, spec, ModelContext(), sessions=sessions)
    pd.testing.assert_frame_equal(again.coefficients, result.coefficients)


def test_band_trajectories_leave_out_small_cells_and_draw():
    from accord.models.not_on_track import band_trajectories
    from accord.report.surface import not_on_track_figure

    data = trajectories(60, 3)
    out = cross_fitted_expectations(data, k=3, seed=1)
    cells = band_trajectories(out, min_cell=11)
    n_by_cell = out.groupby(["severity", "session_number"])["client_id"].nunique()
    assert {(c["severity"], c["session_number"]) for c in cells} == {
        key for key, n in n_by_cell.items() if n >= 11
    }
    first = next(c for c in cells if c["severity"] == "severe" and c["session_number"] == 1)
    part = out[(out["severity"] == "severe") & (out["session_number"] == 1)]
    assert first["observed"] == pytest.approx(part["score"].mean())
    assert band_trajectories(out, min_cell=10_000) == []
    assert not_on_track_figure([], outcome_label="PHQ-9") is None
    fig = not_on_track_figure(cells, outcome_label="PHQ-9")
    assert len(fig.axes[0].get_lines()) == 2 * len({c["severity"] for c in cells})


PUBLISHED = {
    "source": "a hand-made curve for the test",
    "bands": {
        "moderate": {
            "intercept": 2.0,
            "log_session": -3.0,
            "intake": 0.8,
            "lower": -4.0,
            "upper": 4.0,
        },
        "severe": {
            "intercept": 1.0,
            "log_session": -2.0,
            "intake": 0.9,
            "lower": -5.0,
            "upper": 3.0,
        },
    },
}


def test_a_published_curve_gives_expected_scores_and_limits_by_hand():
    from accord.models.not_on_track import published_expectations

    rows = pd.DataFrame(
        {
            "client_id": ["A", "A", "B", "C"],
            "session_number": [3, 7, 1, 2],
            "score": [18.0, 10.0, 19.0, 5.0],
            "intake": [20.0, 20.0, 22.0, 3.0],
            "severity": ["moderate", "moderate", "severe", "minimal"],
        }
    )
    out = published_expectations(rows, PUBLISHED)
    # A at 3: 2 - 3 log 4 + 0.8 * 20 = 13.841117; upper 17.841117, lower 9.841117.
    # A at 7: 2 - 3 log 8 + 16 = 11.761675. B at 1: 1 - 2 log 2 + 0.9 * 22 = 19.413706.
    np.testing.assert_allclose(
        out["expected"].to_numpy()[:3], [13.841117, 11.761675, 19.413706], atol=1e-6
    )
    assert out["upper"].iloc[0] == pytest.approx(17.841117, abs=1e-6)
    assert out["lower"].iloc[2] == pytest.approx(14.413706, abs=1e-6)
    assert np.isnan(out["expected"].iloc[3])  # no minimal band in the curve: not judged
    flags = flag_not_on_track(out)
    # 18 > 17.84 (A at 3) and 19 <= 22.41 (B at 1).
    assert flags.tolist()[:3] == [True, False, False] and pd.isna(flags.iloc[3])


def test_a_declared_published_curve_replaces_the_cross_fitted_ones():
    from conftest import simulated_measures

    from accord.config import validate_config
    from accord.core.errors import ConfigError

    panel, clients, _ = simulated_measures(n_clients=200, seed=5)
    options = {"curve": PUBLISHED}
    config = {
        "studies": {"s": {"path": "x"}},
        "models": [{"id": "not_on_track", "kind": "not_on_track", "options": options}],
    }
    validate_config(config)
    spec = ModelSpec(
        id="not_on_track", kind="not_on_track", outcome="phq9", exposure="arm", options=options
    )
    result = fit_not_on_track_spec(panel, clients, spec, ModelContext())
    extras = result.diagnostics["extras"]
    assert extras["curve"] == "published" and extras["curve_source"] == PUBLISHED["source"]
    assert "folds" not in extras
    assert any("no band" in w for w in result.diagnostics["warnings"])
    bad = {**PUBLISHED, "bands": {"severe": {"intercept": 1.0}}}
    with pytest.raises(ConfigError, match="log_session"):
        validate_config({**config, "models": [{**config["models"][0], "options": {"curve": bad}}]})
    with pytest.raises(ConfigError, match="log_session"):
        fit_not_on_track_spec(
            panel,
            clients,
            ModelSpec(**{**spec.__dict__, "options": {"curve": bad}}),
            ModelContext(),
        )


def test_report_names_a_published_curve_instead_of_cross_fitting():
    from accord.report.sections.goals import _curve_sentence

    published = _curve_sentence({"curve": "published", "curve_source": "Lambert 2010"}, 0.8)
    assert "as published (Lambert 2010)" in published and "cross-fitted" not in published
    fitted = _curve_sentence({"curve": "a + b log(1 + session)", "folds": 5}, 0.8)
    assert "cross-fitted over 5 folds" in fitted and "central 80% band" in fitted
