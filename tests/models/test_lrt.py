"""Likelihood-ratio tests between nested models: the chi-square arithmetic by hand, the ML fits
against statsmodels and lme4, the config entry, and the row in the gathered table.

The lme4 results (tests/data/reference/lrt/anova.csv) are made by make_lrt_reference.R
beside them: anova(reduced, full) on the growth datasets one folder up. Tolerances: chi-square
and log-likelihoods absolute 1e-3 (measured at most 5e-6, on a fit where lme4 itself warns
that its gradient is 2e-3 from zero), AIC and BIC the same, p-values relative 1e-3.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from conftest import simulated_measures

from accord.core.errors import ConfigError
from accord.models.gather import gather_models
from accord.models.growth import fit_growth
from accord.models.lagged import lagged_pairs
from accord.models.lrt import (
    MLFit,
    RandomStructure,
    fit_lrt_spec,
    fit_ml,
    likelihood_ratio,
    mixture_p_value,
)
from accord.models.spec import ModelContext, find_spec, model_specs
from accord.models.tidy import COEFFICIENT_COLUMNS, ModelResult, write_model_result

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"
LOGLIK_ATOL = 1e-3
P_RTOL = 1e-3


@pytest.fixture(scope="module")
def study() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return simulated_measures(n_clients=150, n_therapists=10, seed=11)


@pytest.fixture(scope="module")
def default_lrt(study) -> ModelResult:
    """The default config's test of the time x exposure term on the simulated study."""
    panel, client_measures, _ = study
    spec = find_spec(model_specs({}), "growth_lrt_interaction")
    return fit_lrt_spec(panel, client_measures, spec, ModelContext())


def stub_fit(log_likelihood: float, n_parameters: int) -> MLFit:
    return MLFit(
        log_likelihood=log_likelihood,
        n_parameters=n_parameters,
        n_obs=100,
        n_clients=10,
        converged=True,
        message="",
        fixed_effects=pd.Series(dtype=float),
        variances={},
        boundary=[],
        terms=[],
        structure=RandomStructure(client_slope=False, therapist_intercept=False),
    )


def lrt_spec(config_models: list[dict], model_id: str):
    return find_spec(model_specs({"models": config_models}), model_id)


def test_chi_square_by_hand() -> None:
    # 2 x (-100 - -101.9207294) = 3.8414588, the 95th percentile of chi-square(1): p = 0.05.
    test = likelihood_ratio(stub_fit(-100.0, 9), stub_fit(-101.9207294, 8))
    assert test["statistic"] == pytest.approx(3.8414588, abs=1e-7)
    assert test["df"] == 1
    assert test["p_value"] == pytest.approx(0.05, rel=1e-6)
    # 2 x 2.9957323 = 5.9914645, the 95th percentile of chi-square(2).
    test = likelihood_ratio(stub_fit(-50.0, 7), stub_fit(-52.9957323, 5))
    assert test["df"] == 2
    assert test["p_value"] == pytest.approx(0.05, rel=1e-6)


def test_boundary_mixture_by_hand() -> None:
    # 50:50 chi-square(0):chi-square(1): half the chi-square(1) tail; 2.7055435 is its 90th
    # percentile, so p = 0.05 (Self & Liang 1987).
    assert mixture_p_value(2.7055435, 1) == pytest.approx(0.05, rel=1e-6)
    assert mixture_p_value(0.0, 1) == pytest.approx(1.0)
    # 50:50 chi-square(1):chi-square(2) at 5.1379 gives 0.05 (Stram & Lee 1994, Table 1).
    assert mixture_p_value(5.1379, 2) == pytest.approx(0.05, abs=5e-5)


def test_ml_fit_matches_statsmodels_with_client_and_therapist_intercepts() -> None:
    # growth_negcorr has a clearly positive therapist variance (statsmodels' fit is regular).
    data = pd.read_csv(REFERENCE / "growth_negcorr.csv")
    data = data.astype({"client_id": str, "therapist_id": str, "session_number": float})
    structure = RandomStructure(client_slope=False, therapist_intercept=True)
    X = np.column_stack([np.ones(len(data)), data["session_number"]])
    loglik, beta, variances, converged, _, _ = fit_ml(
        data["phq9"].to_numpy(),
        X,
        data["client_id"].to_numpy(),
        data["therapist_id"].to_numpy(),
        data["session_number"].to_numpy(),
        structure,
    )
    reference = smf.mixedlm(
        "phq9 ~ session_number",
        data,
        groups="therapist_id",
        re_formula="1",
        vc_formula={"client": "0 + C(client_id)"},
    ).fit(reml=False, method=["lbfgs"])
    assert converged
    assert loglik == pytest.approx(reference.llf, abs=LOGLIK_ATOL)
    assert beta == pytest.approx(reference.fe_params.to_numpy(), rel=1e-4)
    assert variances["residual"] == pytest.approx(reference.scale, rel=1e-3)
    assert variances["client_intercept"] == pytest.approx(float(reference.vcomp[0]), rel=1e-3)
    therapist = float(np.asarray(reference.cov_re)[0, 0])
    assert variances["therapist_intercept"] == pytest.approx(therapist, rel=1e-3)


def test_lagged_lrt_matches_statsmodels_ml_fits(study) -> None:
    panel, client_measures, _ = study
    models = [
        {"id": "lagged", "kind": "lagged", "options": {"predictor": "alliance"}},
        {
            "id": "lagged_lrt",
            "kind": "lrt",
            "options": {"full": "lagged", "drop": "alliance_within"},
        },
    ]
    result = fit_lrt_spec(panel, client_measures, lrt_spec(models, "lagged_lrt"), ModelContext())
    pairs, _ = lagged_pairs(panel, outcome="phq9", predictor="alliance")
    rhs = "phq9 + alliance_within + alliance_between + session_number"
    full = smf.mixedlm(f"phq9_next ~ {rhs}", pairs, groups="client").fit(reml=False)
    reduced = smf.mixedlm(f"phq9_next ~ {rhs} - alliance_within", pairs, groups="client").fit(
        reml=False
    )
    row = result.coefficients.iloc[0]
    assert row["term"] == "LRT: alliance_within"
    assert row["estimate"] == pytest.approx(2 * (full.llf - reduced.llf), abs=LOGLIK_ATOL)
    assert row["n_obs"] == len(pairs)
    extras = result.diagnostics["extras"]
    assert extras["df"] == 1
    assert extras["full"]["n_parameters"] == 7  # 5 fixed effects, client and residual variances
    assert extras["full"]["log_likelihood"] == pytest.approx(full.llf, abs=LOGLIK_ATOL)


def test_full_model_reproduces_the_growth_models_ml_fit(study, default_lrt) -> None:
    panel, client_measures, _ = study
    result = default_lrt
    growth = fit_growth(panel, client_measures, reml=False)
    assert growth.diagnostics["method"] == "ML"
    diagnostics = result.diagnostics
    assert diagnostics["log_likelihood"] == pytest.approx(
        growth.diagnostics["log_likelihood"], abs=LOGLIK_ATOL
    )
    assert diagnostics["n_obs"] == growth.diagnostics["n_obs"]
    assert "refitted with ML" in diagnostics["method"]
    assert "refitted with ML" in diagnostics["extras"]["test"]
    row = result.coefficients.iloc[0]
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS
    assert row["term"] == "LRT: time:joint_goal_share"
    assert math.isnan(row["std_error"]) and math.isnan(row["ci_low"])
    assert not row["primary"]
    extras = diagnostics["extras"]
    assert extras["full"]["n_parameters"] - extras["reduced"]["n_parameters"] == 1
    assert row["estimate"] == pytest.approx(
        2 * (extras["full"]["log_likelihood"] - extras["reduced"]["log_likelihood"])
    )
    # AIC and BIC from their definitions.
    full = extras["full"]
    assert full["aic"] == pytest.approx(-2 * full["log_likelihood"] + 2 * 9)
    assert full["bic"] == pytest.approx(-2 * full["log_likelihood"] + 9 * math.log(full["n_obs"]))


def reference_rows() -> pd.DataFrame:
    return pd.read_csv(REFERENCE / "lrt" / "anova.csv", comment="#")


def reference_inputs(dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    data = pd.read_csv(REFERENCE / f"{dataset}.csv")
    panel = data[["client_id", "therapist_id", "session_number", "phq9"]]
    client_measures = data[["client_id", "joint_goal_share"]].drop_duplicates("client_id")
    return panel, client_measures


@pytest.mark.parametrize(
    ("dataset", "dropped"),
    [
        ("growth_interaction", "time:exposure"),
        ("growth_negcorr", "therapist_intercept"),
        ("growth_negcorr", "client_slope"),
    ],
)
def test_agrees_with_lme4_anova(dataset: str, dropped: str) -> None:
    expected = reference_rows().set_index(["dataset", "dropped"]).loc[(dataset, dropped)]
    panel, client_measures = reference_inputs(dataset)
    models = [
        {"id": "growth", "kind": "growth"},
        {"id": "test", "kind": "lrt", "options": {"full": "growth", "drop": [dropped]}},
    ]
    result = fit_lrt_spec(panel, client_measures, lrt_spec(models, "test"), ModelContext())
    extras = result.diagnostics["extras"]
    assert result.diagnostics["converged"]
    assert extras["chi_square"] == pytest.approx(expected["chisq"], abs=LOGLIK_ATOL)
    assert extras["df"] == expected["df"]
    assert extras["p_value"] == pytest.approx(expected["p_value"], rel=P_RTOL)
    for which in ("full", "reduced"):
        fit = extras[which]
        assert fit["log_likelihood"] == pytest.approx(expected[f"loglik_{which}"], abs=LOGLIK_ATOL)
        assert fit["n_parameters"] == expected[f"npar_{which}"]
        assert fit["aic"] == pytest.approx(expected[f"aic_{which}"], abs=2 * LOGLIK_ATOL)
        assert fit["bic"] == pytest.approx(expected[f"bic_{which}"], abs=2 * LOGLIK_ATOL)
    boundary_warning = any("conservative" in w for w in result.diagnostics["warnings"])
    assert boundary_warning == (dropped != "time:exposure")
    if dropped != "time:exposure":
        assert extras["p_value_mixture"] == pytest.approx(
            mixture_p_value(expected["chisq"], int(expected["df"])), rel=P_RTOL
        )
        assert extras["p_value_mixture"] < extras["p_value"]


def test_config_errors(study) -> None:
    panel, client_measures, _ = study
    with pytest.raises(ConfigError, match="'nothing' is not the id of a model"):
        model_specs({"models": [{"id": "t", "kind": "lrt", "options": {"full": "nothing"}}]})
    with pytest.raises(ConfigError, match="kind 'logistic'"):
        model_specs(
            {
                "models": [
                    {"id": "d", "kind": "logistic", "outcome": "dropout"},
                    {"id": "t", "kind": "lrt", "options": {"full": "d", "drop": ["x"]}},
                ]
            }
        )
    base = [{"id": "growth", "kind": "growth"}]
    for options, message in [
        ({"full": "growth", "drop": ["age"]}, "drops 'age', which is not a term"),
        ({"full": "growth", "drop": ["time", "client_slope"]}, "fixed and random terms together"),
        ({"full": "growth"}, "exactly one of options.drop and options.reduced"),
    ]:
        spec = lrt_spec([*base, {"id": "t", "kind": "lrt", "options": options}], "t")
        with pytest.raises(ConfigError, match=message):
            fit_lrt_spec(panel, client_measures, spec, ModelContext())


def test_reduced_model_by_id_warns_when_not_nested(study) -> None:
    panel, client_measures, _ = study
    client_measures = client_measures.copy()
    # A covariate missing for some clients: the adjusted model is fitted to fewer rows.
    covariate = client_measures["phq9_first"].astype(float)
    client_measures["intake_severity"] = covariate.where(np.arange(len(covariate)) % 10 != 0)
    models = [
        {"id": "growth", "kind": "growth"},
        {"id": "adjusted", "kind": "growth", "covariates": ["intake_severity"]},
        {"id": "t", "kind": "lrt", "options": {"full": "adjusted", "reduced": "growth"}},
    ]
    result = fit_lrt_spec(panel, client_measures, lrt_spec(models, "t"), ModelContext())
    assert any("may not be nested" in w for w in result.diagnostics["warnings"])
    assert result.coefficients.iloc[0]["term"] == "LRT: adjusted vs growth"
    assert result.diagnostics["extras"]["df"] == 1


def test_gathered_lrt_row_is_not_an_exposure_effect(tmp_path: Path, study, default_lrt) -> None:
    panel, client_measures, _ = study
    result = default_lrt
    growth = fit_growth(panel, client_measures)
    files = []
    for fitted in (growth, result):
        folder = tmp_path / fitted.model
        folder.mkdir()
        write_model_result(fitted, folder / "c.csv", folder / "d.json")
        files.append(folder)
    table, diagnostics = gather_models([f / "c.csv" for f in files], [f / "d.json" for f in files])
    row = table.loc[table["model"] == "growth_lrt_interaction"].iloc[0]
    assert not row["exposure_effect"] and not row["primary"] and pd.isna(row["p_fdr"])
    assert table.loc[table["term"] == "time:joint_goal_share", "primary"].all()
    assert diagnostics["growth_lrt_interaction"]["extras"]["df"] == 1
