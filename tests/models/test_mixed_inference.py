"""The mixed-model extras (accord.models.engine.inference) against R, and R^2 by hand.

Reference values: tests/data/reference/mixed_inference/, made by
make_mixed_inference_reference.R (lme4 1.1-31, lmerTest 3.1-3, R 4.2.2) from the growth
datasets one folder up, fitted by REML with bobyqa to rhoend 1e-10.

Tolerances, from the agreement measured on the three datasets:

* Satterthwaite df, relative 1e-3 (measured at most 2.7e-4, the intercept of
  growth_interaction, whose therapist SD is on the boundary; elsewhere below 1e-5); the
  p-values, relative 2e-2 below 1e-10 (where a df difference moves the far tail) and 1e-4
  above (measured at most 1.3e-5);
* R^2 and its three variances, relative 1e-5 (measured at most 2e-7);
* profile limits, relative 5e-3 (measured at most 3.4e-3, the upper limit of the therapist
  SD in growth_interaction; most agree to 1e-5). lme4 interpolates zeta by a spline through
  profiled points and optimises each point from the previous one; here each limit is a root
  of zeta. Three of lme4's limits are off its own profile, and are checked for the reason
  instead (`LME4_OFF_PROFILE`): lme4's deviance function at the points found here gives the
  same deviance to 1e-10 (checked in R by hand), so the profile is lower there than lme4's
  interpolation says.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from accord.models.engine import inference as mi
from accord.models.engine.lmm import fit_lmm
from accord.models.growth import fit_growth

HERE = Path(__file__).resolve().parents[1] / "data" / "reference"
REFERENCE = HERE / "mixed_inference"
DATASETS = ["growth_interaction", "growth_negcorr", "growth_sparse"]
DF_RTOL = 1e-3
R2_RTOL = 1e-5
PROFILE_RTOL = 5e-3
TERMS = {
    "(Intercept)": "Intercept",
    "session_number": "session_number",
    "joint_goal_share": "joint_goal_share",
    "session_number:joint_goal_share": "session_number:joint_goal_share",
}
# (dataset, parameter, limit): lme4's limit lies inside the profile interval. Its residual-SD
# upper limits are spline interpolations across a point where an SD reaches zero (zeta
# measured here at lme4's limits: 1.74 and 1.75); its correlation lower limit in
# growth_sparse is a local optimum: its own slope-SD interval reaches 0, and at a slope SD of
# 0 every correlation gives the same model, so the profile of the correlation stays below
# that model's deviance (zeta -1.93 at lme4's limit) and the interval reaches -1.
LME4_OFF_PROFILE = {
    ("growth_interaction", "residual_sd", "ci_high"),
    ("growth_sparse", "residual_sd", "ci_high"),
    ("growth_sparse", "client_intercept_slope_correlation", "ci_low"),
}


def _reference(name: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE / name, comment="#")


@functools.cache
def _design(name: str) -> mi._Design:
    data = pd.read_csv(HERE / f"{name}.csv")
    fixed = smf.ols("phq9 ~ session_number * joint_goal_share", data)
    return mi._Design(
        np.asarray(fixed.endog, dtype=float),
        np.asarray(fixed.exog, dtype=float),
        data["client_id"].to_numpy(dtype=object),
        data["session_number"].to_numpy(dtype=float),
        data["therapist_id"].to_numpy(dtype=object),
        "correlated",
    )


@functools.cache
def _fit(name: str):
    d = _design(name)
    names = ["Intercept", "session_number", "joint_goal_share", "session_number:joint_goal_share"]
    return fit_lmm(
        d.y, d.X, d.client, time=d.time, therapist=d.therapist, fe_names=names, reml=True
    )


@functools.cache
def _profile(name: str) -> pd.DataFrame:
    return mi.profile_intervals(_design(name), _fit(name)).set_index("term")


@pytest.mark.parametrize("name", DATASETS)
def test_satterthwaite_df_and_p_match_lmertest(name: str) -> None:
    d = _design(name)
    out = mi.mixed_model_inference(
        _fit(name), d.y, d.X, d.client, time=d.time, therapist=d.therapist, profile=False
    )
    ours = out["satterthwaite"].set_index("term")
    r = _reference("satterthwaite.csv").query("dataset == @name")
    for row in r.itertuples():
        term = TERMS[row.term]
        assert ours.loc[term, "df"] == pytest.approx(row.df, rel=DF_RTOL), term
        rel = 2e-2 if row.p_value < 1e-10 else 1e-4
        assert ours.loc[term, "p_value"] == pytest.approx(row.p_value, rel=rel), term


@pytest.mark.parametrize("name", DATASETS)
def test_r_squared_matches_the_published_formula_in_r(name: str) -> None:
    d = _design(name)
    ours = mi.nakagawa_r_squared(_fit(name), d.X, d.time)
    r = _reference("r_squared.csv").query("dataset == @name").iloc[0]
    for key, column in [
        ("marginal", "r2_marginal"),
        ("conditional", "r2_conditional"),
        ("var_fixed", "var_fixed"),
        ("var_random", "var_random"),
        ("var_residual", "var_residual"),
    ]:
        assert ours[key] == pytest.approx(r[column], rel=R2_RTOL), key


def test_r_squared_by_hand() -> None:
    """X b = (1, 3, 5, 7): variance 20/3 (n - 1). time (0, 1, 2, 3): mean 1.5, mean square
    3.5; client random part 4 + 2(-1)(1.5) + 0.5(3.5) = 2.75, therapist 1, so 3.75; residual
    2; total 12.4167: marginal (20/3)/12.4167 = 0.53691, conditional 10.4167/12.4167 =
    0.83893."""
    X = np.column_stack([np.ones(4), np.arange(4.0)])
    fit = SimpleNamespace(
        fe_params=np.array([1.0, 2.0]),
        client_covariance=np.array([[4.0, -1.0], [-1.0, 0.5]]),
        therapist_variance=1.0,
        residual_variance=2.0,
    )
    out = mi.nakagawa_r_squared(fit, X, np.arange(4.0))
    assert out["var_fixed"] == pytest.approx(20 / 3)
    assert out["var_random"] == pytest.approx(3.75)
    assert out["marginal"] == pytest.approx(0.536913, abs=1e-6)
    assert out["conditional"] == pytest.approx(0.838926, abs=1e-6)


def _check_profile(name: str) -> None:
    ours = _profile(name)
    r = _reference("profile_ci.csv").query("dataset == @name").set_index("parameter")
    assert set(ours.index) == set(r.index)
    for parameter, row in r.iterrows():
        assert ours.loc[parameter, "method"] == mi.PROFILE_METHOD
        for limit in ("ci_low", "ci_high"):
            if (name, parameter, limit) in LME4_OFF_PROFILE:
                continue
            assert ours.loc[parameter, limit] == pytest.approx(
                row[limit], rel=PROFILE_RTOL, abs=1e-9
            ), (parameter, limit)


@pytest.mark.parametrize("name", ["growth_negcorr", "growth_sparse"])
def test_profile_intervals_match_lme4(name: str) -> None:
    _check_profile(name)


@pytest.mark.slow
def test_profile_intervals_match_lme4_with_therapist_sd_on_the_boundary() -> None:
    _check_profile("growth_interaction")


def test_where_lme4_is_off_its_profile_the_interval_is_wider_for_the_reason_given() -> None:
    """growth_sparse: lme4's slope-SD interval reaches 0, so the correlation's profile never
    reaches the cut-off (the interval is [-1, 1]) and lme4's -0.589 is inside it; lme4's
    residual-SD upper limit is inside the interval found here."""
    ours = _profile("growth_sparse")
    r = _reference("profile_ci.csv").query("dataset == 'growth_sparse'").set_index("parameter")
    assert r.loc["client_slope_sd", "ci_low"] == 0
    assert ours.loc["client_slope_sd", "ci_low"] == 0
    correlation = ours.loc["client_intercept_slope_correlation"]
    assert (correlation["ci_low"], correlation["ci_high"]) == (-1.0, 1.0)
    assert ours.loc["residual_sd", "ci_high"] > r.loc["residual_sd", "ci_high"]


def test_profile_limit_has_zeta_at_the_normal_quantile() -> None:
    """zeta (the signed root of the ML deviance increase, others profiled out) is -+1.96 at
    the limits, and 0 at the ML estimate."""
    d = _design("growth_negcorr")
    ml = fit_lmm(d.y, d.X, d.client, time=d.time, therapist=d.therapist, reml=False)
    scale = mi._SdScale(mi._model(d, reml=False))
    profile = mi._Profile(scale, scale.from_fit(ml))
    ours = _profile("growth_negcorr")
    k = scale.names.index("therapist_intercept_sd")
    low, high = ours.loc["therapist_intercept_sd", ["ci_low", "ci_high"]]
    assert profile.zeta(k, float(low)) == pytest.approx(-1.959964, abs=1e-3)
    assert profile.zeta(k, float(high)) == pytest.approx(1.959964, abs=1e-3)
    assert abs(profile.zeta(k, float(scale.from_fit(ml)[k]))) < 1e-3


def test_growth_model_reports_df_r_squared_and_variance_intervals() -> None:
    panel = pd.read_csv(HERE / "growth_negcorr.csv")
    client_measures = panel.groupby("client_id", as_index=False)["joint_goal_share"].first()
    result = fit_growth(
        panel,
        client_measures,
        outcome="phq9",
        exposure="joint_goal_share",
        time_interactions=(),
        variance_intervals=True,
    )
    coefficients = result.coefficients.set_index("term")
    r = _reference("satterthwaite.csv").query("dataset == 'growth_negcorr'")
    growth_terms = r["term"].str.replace("session_number", "time").map(_growth_term)
    for term, expected in zip(growth_terms, r["df"], strict=True):
        assert coefficients.loc[term, "df"] == pytest.approx(expected, rel=DF_RTOL)
    assert coefficients["p_satterthwaite"].notna().all()
    r2 = _reference("r_squared.csv").query("dataset == 'growth_negcorr'").iloc[0]
    assert result.diagnostics["r_squared"]["marginal"] == pytest.approx(
        r2["r2_marginal"], rel=R2_RTOL
    )
    rows = pd.DataFrame(result.diagnostics["variance_parameters"]).set_index("term")
    assert list(rows.columns) == [c for c in mi.VARIANCE_COLUMNS if c != "term"]
    ci = _reference("profile_ci.csv").query("dataset == 'growth_negcorr'").set_index("parameter")
    for parameter in ci.index:
        assert rows.loc[parameter, "ci_low"] == pytest.approx(
            ci.loc[parameter, "ci_low"], rel=PROFILE_RTOL
        )
    # The reported estimate is the REML fit's, inside its ML profile interval.
    sd = math.sqrt(result.diagnostics["random_effects"]["therapist_intercept"])
    assert rows.loc["therapist_intercept_sd", "estimate"] == pytest.approx(sd)


def _growth_term(term: str) -> str:
    return {"(Intercept)": "Intercept"}.get(term, term)


def test_satterthwaite_df_of_the_mean_in_a_balanced_one_way_design_is_clients_minus_one():
    """Balanced random-intercept model y_ij = b + u_i + e_ij (20 clients x 5 sessions): the
    variance of b-hat is MS_between / (5 x 20), an estimate on 20 - 1 df, so Satterthwaite's
    df is exactly 19 (when the client variance estimate is positive), and the p-value is
    that of t on 19 df."""
    rng = np.random.default_rng(3)
    client = np.repeat(np.arange(20), 5)
    y = 2.0 + rng.normal(0, 1.0, 20)[client] + rng.normal(0, 1.0, 100)
    X = np.ones((100, 1))
    fit = fit_lmm(y, X, client, client_effects="intercept", fe_names=["Intercept"])
    assert fit.client_covariance[0, 0] > 0
    out = mi.mixed_model_inference(fit, y, X, client, client_effects="intercept", profile=False)
    df = float(out["satterthwaite"]["df"].iloc[0])
    assert df == pytest.approx(19.0, rel=1e-5)
    t = fit.fe_params[0] / math.sqrt(fit.fe_cov[0, 0])
    expected_p = 2 * stats.t.sf(abs(t), 19)
    assert float(out["satterthwaite"]["p_value"].iloc[0]) == pytest.approx(expected_p, rel=1e-4)


def test_lagged_model_reports_df_r_squared_and_variance_intervals() -> None:
    from conftest import simulated_measures

    from accord.models.lagged import fit_lagged

    panel, _, _ = simulated_measures(n_clients=60, n_therapists=6, seed=11)
    result = fit_lagged(panel, variance_intervals=True)
    table = result.coefficients.set_index("term")
    assert table["df"].gt(0).all()
    within = table.loc["alliance_within"]
    assert within["p_satterthwaite"] >= within["p_value"]  # t on finite df vs normal
    r2 = result.diagnostics["r_squared"]
    assert 0 < r2["marginal"] < r2["conditional"] < 1
    rows = pd.DataFrame(result.diagnostics["variance_parameters"]).set_index("term")
    assert list(rows.index) == ["client_intercept_sd", "residual_sd"]
    residual_sd = math.sqrt(result.diagnostics["random_effects"]["residual"])
    assert rows.loc["residual_sd", "ci_low"] < residual_sd < rows.loc["residual_sd", "ci_high"]


def test_wald_intervals_carry_the_deviance_curvature_to_the_sd_scale_by_hand():
    # A random-intercept model: sd_client = sigma * theta and sd_residual = sigma, so with A
    # the covariance of (theta, sigma), var(sd_client) = sigma^2 A_tt + theta^2 A_ss +
    # 2 sigma theta A_ts and var(sd_residual) = A_ss (the delta method, worked by hand).
    d = _design("growth_negcorr")
    fit = fit_lmm(d.y, d.X, d.client, client_effects="intercept", reml=True)
    model = mi.ProfiledDeviance(d.y, d.X, d.client, client_effects="intercept", reml=True)
    phi, A = mi.variance_parameter_covariance(model, fit)
    theta, sigma = phi
    table = mi.wald_intervals(model, fit, phi, A).set_index("term")
    se_client = math.sqrt(sigma**2 * A[0, 0] + theta**2 * A[1, 1] + 2 * sigma * theta * A[0, 1])
    se_residual = math.sqrt(A[1, 1])
    z = stats.norm.ppf(0.975)
    client = table.loc["client_intercept_sd"]
    assert client["estimate"] == pytest.approx(sigma * theta, rel=1e-12)
    assert client["ci_low"] == pytest.approx(sigma * theta - z * se_client, rel=1e-6)
    assert client["ci_high"] == pytest.approx(sigma * theta + z * se_client, rel=1e-6)
    residual = table.loc["residual_sd"]
    assert residual["ci_low"] == pytest.approx(sigma - z * se_residual, rel=1e-6)
    assert residual["ci_high"] == pytest.approx(sigma + z * se_residual, rel=1e-6)
    assert set(table["method"]) == {mi.WALD_METHOD}


def test_above_the_profile_limit_the_variance_parameters_get_wald_intervals(monkeypatch):
    # Each profile limit costs dozens of refits, so a study of more clients than the limit gets
    # Wald intervals; with a limit of 10 clients these three datasets are "large". Where the
    # profile interval stays clear of the parameter's bounds, the two cover much the same range.
    monkeypatch.setattr(mi, "PROFILE_MAX_CLIENTS", 10)
    for name in DATASETS:
        d, fit = _design(name), _fit(name)
        extras = mi.mixed_model_inference(
            fit, d.y, d.X, d.client, time=d.time, therapist=d.therapist
        )
        wald = extras["variance_parameters"].set_index("term")
        profile = _profile(name)
        for term, row in wald.iterrows():
            if row["method"] != mi.WALD_METHOD:
                assert "on its bound" in row["method"]
                continue
            assert row["ci_low"] <= row["estimate"] <= row["ci_high"]
            low, high = profile.loc[term, ["ci_low", "ci_high"]]
            at_bound = (low <= -1 or high >= 1) if "correlation" in term else low <= 0
            if at_bound:
                continue  # a profile reaching a bound: far from quadratic, no large study
            overlap = min(high, row["ci_high"]) - max(low, row["ci_low"])
            assert overlap > 0.5 * (high - low), (name, term)
