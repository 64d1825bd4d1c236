"""Lagged model: pairing of consecutive sessions, detrending, recovery of the planted
within-person alliance effect on next session's PHQ-9, baseline covariates and time coding."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from conftest import simulated_measures

from accord.core.errors import AccordError, ConfigError
from accord.models.lagged import fit_lagged, fit_lagged_spec, lagged_model_data, lagged_pairs
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import COEFFICIENT_COLUMNS


@pytest.fixture(scope="module")
def study() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return simulated_measures(n_clients=600, n_therapists=30, seed=7)


@pytest.fixture(scope="module")
def small_study() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return simulated_measures(n_clients=150, n_therapists=10, seed=11)


def tiny_panel() -> pd.DataFrame:
    """Client A: intake, 1 attended, 2 no-show, 3 attended, 4 attended without PHQ-9,
    5 attended. Client B: intake and one attended session (no pair with an alliance)."""
    return pd.DataFrame(
        {
            "client_id": ["A"] * 6 + ["B"] * 2,
            "session_number": [0, 1, 2, 3, 4, 5, 0, 1],
            "attended": [False, True, False, True, True, True, False, True],
            "therapist_id": ["T1"] * 6 + ["T2"] * 2,
            "phq9": [20.0, 18.0, np.nan, 15.0, np.nan, 12.0, 10.0, 9.0],
            "alliance_within": [np.nan, -0.2, np.nan, 0.1, 0.3, -0.2, np.nan, 0.0],
            "alliance_between": [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, -0.1, -0.1],
        }
    )


def test_pairs_follow_attended_sessions_and_skip_missed_appointments() -> None:
    data, prep = lagged_pairs(tiny_panel(), outcome="phq9", predictor="alliance")
    # Pairs (1 -> 3) across the no-show and (3 -> 4) without a PHQ-9 at 4, left out, not
    # bridged to 5; session 4 has no PHQ-9 itself, so it starts no pair; B has one session
    # with an alliance and nothing after it.
    assert data["session_number"].tolist() == [1.0]
    assert data["next_session_number"].tolist() == [3.0]
    assert data["phq9"].tolist() == [18.0]
    assert data["phq9_next"].tolist() == [15.0]
    assert data["alliance_within"].tolist() == [-0.2]
    assert prep["n_pairs"] == 1
    assert prep["pairs_missing_next_outcome"] == 1
    assert prep["pairs_across_missed_appointments"] == 1
    assert len(prep["warnings"]) == 1


def test_unsorted_panel_gives_the_same_pairs() -> None:
    panel = tiny_panel()
    shuffled = panel.sample(frac=1.0, random_state=3)
    a, _ = lagged_pairs(panel, outcome="phq9", predictor="alliance")
    b, _ = lagged_pairs(shuffled, outcome="phq9", predictor="alliance")
    pd.testing.assert_frame_equal(a, b)


def test_without_attended_column_scored_rows_are_the_occasions() -> None:
    panel = tiny_panel().drop(columns="attended")
    data, _ = lagged_pairs(panel, outcome="phq9", predictor="alliance")
    # Occasions of A: 0, 1, 3, 5 (rows with PHQ-9); pairs with an alliance: 1 -> 3, 3 -> 5.
    assert data["session_number"].tolist() == [1.0, 3.0]
    assert data["phq9_next"].tolist() == [15.0, 12.0]


def test_detrending_removes_each_clients_linear_trend() -> None:
    # Client A's alliance deviations lie on a line in time (slope 0.1 around the mean time 2):
    # the residuals are 0. Client B has deviations (-0.1, 0.3, -0.2) at times 1, 2, 3: the
    # slope is (-1 * -0.1 + 1 * -0.2) / 2 = -0.05, residuals -0.15, 0.3, -0.15.
    panel = pd.DataFrame(
        {
            "client_id": ["A"] * 3 + ["B"] * 3 + ["C"],
            "session_number": [1, 2, 3, 1, 2, 3, 1],
            "attended": [True] * 7,
            "phq9": [10.0, 9.0, 8.0, 12.0, 11.0, 10.0, 5.0],
            "alliance_within": [-0.1, 0.0, 0.1, -0.1, 0.3, -0.2, 0.0],
            "alliance_between": [0.0] * 7,
        }
    )
    data, _ = lagged_pairs(panel, outcome="phq9", predictor="alliance", detrend=True)
    got = data.set_index(["client", "session_number"])["alliance_within"]
    assert got.loc[("A", 1.0)] == pytest.approx(0.0, abs=1e-12)
    assert got.loc[("A", 2.0)] == pytest.approx(0.0, abs=1e-12)
    assert got.loc[("B", 1.0)] == pytest.approx(-0.15)
    assert got.loc[("B", 2.0)] == pytest.approx(0.3)


def test_recovers_the_within_person_effect(study) -> None:
    panel, _, truth = study
    result = fit_lagged(panel)
    table = result.coefficients.set_index("term")
    within = table.loc["alliance_within"]
    true_value = truth["lagged"]["within_alliance"]
    assert within["ci_low"] <= true_value <= within["ci_high"]
    assert within["estimate"] < 0
    assert within["p_value"] < 0.001
    assert bool(within["primary"])
    assert table["primary"].sum() == 1
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS
    assert set(table.index) == {
        "Intercept",
        "phq9",
        "alliance_within",
        "alliance_between",
        "session_number",
    }
    diag = result.diagnostics
    assert diag["converged"] is True
    assert diag["method"] == "REML"
    assert set(diag["random_effects"]) == {"client_intercept", "residual"}
    assert diag["n_obs"] == diag["extras"]["n_pairs"] == int(table.loc["phq9", "n_obs"])
    assert diag["n_therapists"] == 30
    assert diag["n_clients"] <= 600
    assert math.isfinite(diag["log_likelihood"])
    assert diag["formula"] == (
        "phq9_next ~ phq9 + alliance_within + alliance_between + session_number"
    )


def test_detrended_sensitivity_also_covers_the_truth(study) -> None:
    panel, client_measures, truth = study
    spec = ModelSpec(
        id="lagged_detrended",
        kind="lagged",
        outcome="phq9",
        exposure="joint_goal_share",
        primary=False,
        options={"detrend": True},
    )
    result = fit_lagged_spec(panel, client_measures, spec, ModelContext())
    within = result.coefficients.set_index("term").loc["alliance_within"]
    assert within["ci_low"] <= truth["lagged"]["within_alliance"] <= within["ci_high"]
    assert not result.coefficients["primary"].any()
    assert result.diagnostics["extras"]["detrend"] is True
    assert result.model == "lagged_detrended"


def test_goal_alliance_client_as_predictor(study) -> None:
    panel, client_measures, _ = study
    spec = ModelSpec(
        id="lagged_goal",
        kind="lagged",
        outcome="phq9",
        exposure="goal_alliance_client",
        options={"predictor": "goal_alliance_client"},
    )
    result = fit_lagged_spec(panel, client_measures, spec, ModelContext())
    assert "goal_alliance_client_within" in set(result.coefficients["term"])
    assert result.exposure == "goal_alliance_client"


def test_errors() -> None:
    with pytest.raises(ConfigError, match="no column 'wai_within'"):
        fit_lagged(tiny_panel(), predictor="wai")
    with pytest.raises(AccordError, match="at least 3"):
        fit_lagged(tiny_panel())


def with_baseline_covariate(client_measures: pd.DataFrame, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return client_measures.assign(z=rng.normal(size=len(client_measures)))


def test_covariate_shift_moves_only_its_own_coefficient(study) -> None:
    # Adding delta * z_i to every score of client i adds delta * z to both the response and
    # this session's score, both in the span of the model's columns, so the residuals (and
    # hence the variance estimates) are unchanged and the fit moves exactly: the z coefficient
    # by delta * (1 - b_phq9), every other coefficient not at all.
    panel, client_measures, _ = study
    client_measures = with_baseline_covariate(client_measures)
    delta = 3.0
    z = client_measures.set_index(client_measures["client_id"].astype(str))["z"]
    shifted = panel.assign(phq9=panel["phq9"] + delta * panel["client_id"].astype(str).map(z))
    before = fit_lagged(panel, client_measures, covariates=["z"]).coefficients.set_index("term")
    after = fit_lagged(shifted, client_measures, covariates=["z"]).coefficients.set_index("term")
    b_phq9 = before.loc["phq9", "estimate"]
    assert after.loc["z", "estimate"] == pytest.approx(
        before.loc["z", "estimate"] + delta * (1 - b_phq9), abs=1e-4
    )
    for term in ("phq9", "alliance_within", "alliance_between", "session_number"):
        assert after.loc[term, "estimate"] == pytest.approx(before.loc[term, "estimate"], abs=1e-4)
    # A baseline covariate unrelated to the outcome: its CI covers 0.
    assert before.loc["z", "ci_low"] <= 0 <= before.loc["z", "ci_high"]


def test_clients_missing_a_covariate_are_left_out_and_counted(small_study) -> None:
    panel, client_measures, _ = small_study
    client_measures = with_baseline_covariate(client_measures)
    all_pairs, _, _ = lagged_model_data(
        panel, client_measures, outcome="phq9", predictor="alliance", covariates=["z"]
    )
    dropped = sorted(all_pairs["client"].unique())[:7]
    client_measures.loc[client_measures["client_id"].astype(str).isin(dropped), "z"] = np.nan
    data, formula, prep = lagged_model_data(
        panel, client_measures, outcome="phq9", predictor="alliance", covariates=["z"]
    )
    assert prep["clients_excluded_missing_covariate"] == 7
    assert data["client"].nunique() == all_pairs["client"].nunique() - 7
    assert prep["n_pairs"] == len(data) == (~all_pairs["client"].isin(dropped)).sum()
    assert formula == "phq9_next ~ phq9 + alliance_within + alliance_between + session_number + z"
    assert any("missing covariate" in w for w in prep["warnings"])


def test_log_time_coding(small_study) -> None:
    panel, client_measures, _ = small_study
    data, formula, _ = lagged_model_data(
        panel, client_measures, outcome="phq9", predictor="alliance", time_coding="log"
    )
    assert formula.endswith("+ log_session_number")
    assert data["log_session_number"].to_numpy() == pytest.approx(
        np.log(data["session_number"].to_numpy() + 1.0)
    )
    spec = ModelSpec(
        id="lagged_log",
        kind="lagged",
        outcome="phq9",
        exposure="alliance",
        covariates=("phq9_first",),
        time_coding="log",
    )
    result = fit_lagged_spec(panel, client_measures, spec, ModelContext())
    table = result.coefficients.set_index("term")
    assert {"log_session_number", "phq9_first"} <= set(table.index)
    assert "session_number" not in table.index
    assert result.diagnostics["extras"]["time_coding"] == "log"
    # The same model fitted by statsmodels (Powell: its BFGS and L-BFGS fits stop short of the
    # optimum on these data). Estimates and the REML log-likelihood agree; the SEs are
    # lme4's (X'V^-1X)^-1 here and statsmodels' Hessian-based ones there, which differ.
    first = client_measures.set_index(client_measures["client_id"].astype(str))["phq9_first"]
    direct = data.assign(phq9_first=data["client"].map(first)).dropna(subset=["phq9_first"])
    reference = smf.mixedlm(
        "phq9_next ~ phq9 + alliance_within + alliance_between + log_session_number + phq9_first",
        direct,
        groups="client",
    ).fit(reml=True, method=["powell"])
    assert reference.converged
    for term in ("log_session_number", "phq9_first", "alliance_within"):
        assert table.loc[term, "estimate"] == pytest.approx(reference.fe_params[term], rel=1e-4)
    assert result.diagnostics["log_likelihood"] == pytest.approx(reference.llf, abs=1e-4)
    assert table.loc["phq9_first", "n_obs"] == len(direct)


def test_covariate_and_time_coding_errors(small_study) -> None:
    panel, client_measures, _ = small_study
    with pytest.raises(ConfigError, match="no column 'intake_weight'"):
        fit_lagged(panel, client_measures, covariates=["intake_weight"])
    with pytest.raises(ConfigError, match="'alliance_within' cannot be used"):
        fit_lagged(panel, client_measures, covariates=["alliance_within"])
    with pytest.raises(ConfigError, match="time_coding must be 'linear' or 'log'"):
        fit_lagged(panel, client_measures, time_coding="sqrt")
    varying = panel.assign(visit_mood=np.arange(len(panel), dtype=float))
    with pytest.raises(ConfigError, match="'visit_mood' varies within client"):
        fit_lagged(varying, client_measures, covariates=["visit_mood"])


def test_an_uncertified_profiled_fit_falls_back_to_statsmodels(small_study, monkeypatch) -> None:
    # An engine fit that cannot be certified (made so here, 1 log-likelihood unit short) is
    # replaced by statsmodels' converged fit, and the warnings say so.
    import dataclasses

    import accord.models.lagged as lagged_module

    real = lagged_module.fit_lmm

    def uncertified(*args, **kwargs):
        fit = real(*args, **kwargs)
        return dataclasses.replace(fit, converged=False, log_likelihood=fit.log_likelihood - 1)

    panel, client_measures, _ = small_study
    certified = fit_lagged(panel, client_measures)
    monkeypatch.setattr(lagged_module, "fit_lmm", uncertified)
    result = fit_lagged(panel, client_measures)
    assert result.diagnostics["converged"]
    assert result.diagnostics["optimizer"].startswith("statsmodels")
    assert any("could not certify" in w for w in result.diagnostics["warnings"])
    assert result.diagnostics["log_likelihood"] == pytest.approx(
        certified.diagnostics["log_likelihood"], abs=1e-4
    )
