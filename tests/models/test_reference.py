"""Agreement with R on fixed datasets: the growth model against lme4, Cox and log-rank against
the survival package.

The datasets (tests/data/reference/*.csv) are made by make_datasets.py and the R results beside
them by make_reference.R (R and package versions in versions.json and in each result file's
first line). The tests need no R: they read the stored results.

Tolerances, chosen from the agreement measured on growth_interaction, whose intercept-slope
covariance is near zero (so both programs reach the same REML optimum however the client
slope is centred), and then measured on all three growth datasets:

* fixed-effect estimates, relative 2e-4 (measured at most 5.5e-5 over the three datasets);
* fixed-effect standard errors, relative 1e-2. lme4's SEs come from (X'V^-1X)^-1 at the
  estimated variances; statsmodels inverts the Hessian of all parameters, whose fixed-effect
  block also reflects the uncertainty of the variances. At the same optimum the two differ
  by up to 2.2e-3 (growth_interaction), 4e-5 (growth_negcorr) and 7.0e-3 (growth_sparse);
* variances, relative 5e-3 (measured at most 1.1e-3, the therapist variance: the REML
  surface is flat in it); the intercept-slope covariance is compared as a correlation,
  absolute 5e-3 (measured at most 6.3e-5), since its reference value can be near zero;
* REML log-likelihood, absolute 1e-3 (measured at most 1.5e-6);
* the centre of the client slope (the point where client intercepts and slopes are
  uncorrelated), absolute 1e-3 SDs of time (measured at most 2.2e-4 time units);
* Cox (Efron ties) coefficients, SEs and log partial likelihood, relative 1e-8, and the
  log-rank chi-square, relative 1e-8 (measured at most 1.9e-10).

growth_negcorr (intercept-slope correlation -0.84) and growth_sparse (-0.22, 2-4 scores per
client) are the cases where the centre matters: a centre taken from a client-level model
without the therapist term (4.352 and 0.987 against lme4's 4.627 and 1.246) left the
log-likelihood 0.378 and 0.035 below lme4's.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import survdiff

from accord.models.growth import fit_growth

HERE = Path(__file__).resolve().parents[1] / "data" / "reference"

ESTIMATE_RTOL = 2e-4
SE_RTOL = 1e-2
VARIANCE_RTOL = 5e-3
CORRELATION_ATOL = 5e-3
LOGLIK_ATOL = 1e-3
COX_RTOL = 1e-8
LOGRANK_RTOL = 1e-8

TERMS = {
    "(Intercept)": "Intercept",
    "session_number": "time",
    "joint_goal_share": "joint_goal_share",
    "session_number:joint_goal_share": "time:joint_goal_share",
}
VARIANCES = ["client_intercept", "client_slope", "therapist_intercept", "residual"]

GROWTH_DATASETS = ["growth_interaction", "growth_negcorr", "growth_sparse"]


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(HERE / name, comment="#")


@functools.cache
def _dataset(name: str) -> pd.DataFrame:
    return _read(f"{name}.csv")


@functools.cache
def _growth(name: str):
    panel = _dataset(name)
    client_measures = panel.groupby("client_id", as_index=False)["joint_goal_share"].first()
    return fit_growth(panel, client_measures, outcome="phq9", exposure="joint_goal_share")


def _r_fixed(name: str) -> pd.DataFrame:
    fixed = _read("growth_fixed.csv")
    fixed = fixed[fixed["dataset"] == name].copy()
    fixed["term"] = fixed["term"].map(TERMS)
    return fixed.set_index("term")


def _r_random(name: str) -> pd.Series:
    random = _read("growth_random.csv")
    return random[random["dataset"] == name].set_index("quantity")["value"]


def _ours_vs_r(name: str, column: str) -> pd.DataFrame:
    ours = _growth(name).coefficients.set_index("term")[column]
    r = _r_fixed(name)[column]
    assert set(ours.index) == set(r.index)
    return pd.DataFrame({"accord": ours, "lme4": r.reindex(ours.index)})


def test_reference_files_state_versions() -> None:
    versions = json.loads((HERE / "versions.json").read_text())
    assert {"R", "lme4", "survival"} <= set(versions)
    for name in ("growth_fixed.csv", "growth_random.csv", "cox.csv", "logrank.csv"):
        first = (HERE / name).read_text().splitlines()[0]
        assert first.startswith("# made by make_reference.R with R ")


@pytest.mark.parametrize("name", GROWTH_DATASETS)
def test_growth_fixed_effects_match_lme4(name: str) -> None:
    result = _growth(name)
    assert result.diagnostics["converged"]
    both = _ours_vs_r(name, "estimate")
    relative = (both["accord"] / both["lme4"] - 1).abs()
    assert (relative <= ESTIMATE_RTOL).all(), both.assign(relative=relative)


@pytest.mark.parametrize("name", GROWTH_DATASETS)
def test_growth_standard_errors_match_lme4(name: str) -> None:
    both = _ours_vs_r(name, "std_error")
    relative = (both["accord"] / both["lme4"] - 1).abs()
    assert (relative <= SE_RTOL).all(), both.assign(relative=relative)


@pytest.mark.parametrize("name", GROWTH_DATASETS)
def test_growth_variance_components_match_lme4(name: str) -> None:
    ours = _growth(name).diagnostics["random_effects"]
    r = _r_random(name)
    for component in VARIANCES:
        assert ours[component] == pytest.approx(r[component], rel=VARIANCE_RTOL), component

    def correlation(v: dict | pd.Series) -> float:
        return v["client_intercept_slope_covariance"] / math.sqrt(
            v["client_intercept"] * v["client_slope"]
        )

    assert correlation(ours) == pytest.approx(correlation(r), abs=CORRELATION_ATOL)


@pytest.mark.parametrize("name", GROWTH_DATASETS)
def test_growth_reml_log_likelihood_matches_lme4(name: str) -> None:
    ours = _growth(name).diagnostics["log_likelihood"]
    assert ours == pytest.approx(_r_random(name)["reml_log_likelihood"], abs=LOGLIK_ATOL)


@pytest.mark.parametrize("name", ["growth_negcorr", "growth_sparse"])
def test_nested_parametrisation_reaches_lme4_at_its_centre(name: str) -> None:
    """The growth model's statsmodels form (therapist groups, independent client intercept and
    slope components around a centre c) reaches lme4's optimum when c is lme4's uncorrelated
    point, without the centre search of the growth model: the model form itself can reach
    lme4's optimum."""
    data = _dataset(name).copy()
    r = _r_random(name)
    centre = -r["client_intercept_slope_covariance"] / r["client_slope"]
    data["time_cs"] = (data["session_number"] - centre) / data["session_number"].std(ddof=0)
    model = smf.mixedlm(
        "phq9 ~ session_number * joint_goal_share",
        data,
        groups="therapist_id",
        re_formula="1",
        vc_formula={
            "client_intercept": "0 + C(client_id)",
            "client_slope": "0 + C(client_id):time_cs",
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(reml=True, method=["lbfgs"])
    assert fit.converged
    assert fit.llf == pytest.approx(r["reml_log_likelihood"], abs=LOGLIK_ATOL)
    r_fixed = _read("growth_fixed.csv").query("dataset == @name")
    reference = pd.Series(
        r_fixed["estimate"].to_numpy(), index=r_fixed["term"].replace("(Intercept)", "Intercept")
    )
    np.testing.assert_allclose(fit.fe_params[reference.index], reference, rtol=ESTIMATE_RTOL)


@pytest.mark.parametrize("name", GROWTH_DATASETS)
def test_growth_centre_is_lme4s_uncorrelated_point(name: str) -> None:
    extras = _growth(name).diagnostics["extras"]
    search = extras["centre_search"]
    assert search["converged"]
    assert 1 <= search["refits"] <= search["max_refits"]
    assert len(search["centres"]) == len(search["log_likelihoods"]) == search["refits"] + 1
    assert np.all(np.diff(search["log_likelihoods"]) > -1e-8)
    r = _r_random(name)
    time_sd = _dataset(name)["session_number"].std(ddof=0)
    lme4_centre = -r["client_intercept_slope_covariance"] / r["client_slope"]
    assert extras["time_centre_for_client_effects"] == pytest.approx(
        lme4_centre, abs=1e-3 * time_sd
    )


@pytest.mark.parametrize("rhs", ["x", "x + z"])
def test_cox_efron_matches_survival(rhs: str) -> None:
    data = _dataset("survival")
    reference = _read("cox.csv")
    reference = reference[reference["model"] == rhs].set_index("term")
    model = PHReg.from_formula(f"time ~ {rhs}", data, status=data["event"], ties="efron")
    fit = model.fit()
    params = pd.Series(np.asarray(fit.params), index=model.exog_names)
    bse = pd.Series(np.asarray(fit.bse), index=model.exog_names)
    assert list(params.index) == list(reference.index)
    np.testing.assert_allclose(params, reference["estimate"], rtol=COX_RTOL)
    np.testing.assert_allclose(bse, reference["std_error"], rtol=COX_RTOL)
    assert fit.llf == pytest.approx(reference["log_likelihood"].iloc[0], rel=COX_RTOL)


def test_logrank_matches_survdiff() -> None:
    data = _dataset("survival")
    reference = _read("logrank.csv").iloc[0]
    chisq, p_value = survdiff(data["time"], data["event"], data["x"])
    assert chisq == pytest.approx(reference["chisq"], rel=LOGRANK_RTOL)
    assert p_value == pytest.approx(reference["p_value"], rel=1e-6)
