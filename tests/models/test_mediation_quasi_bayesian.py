"""Mediation by the quasi-Bayesian Monte Carlo approximation, as R's mediate(boot = FALSE):
the classical OLS covariance, R's quantiles and p-value, the draws' moments against the delta
method, recovery of planted paths, determinism, and the choice between it and the bootstrap
(option method, analysis.mediation.bootstrap_max_clients) in the fit, the workflow's jobs and
the report's words."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from test_mediation import C_DIRECT, A, B, linear_data

from accord.config import validate_config
from accord.core.errors import ConfigError
from accord.models.bootstrap import choose_method, needs_client_count, scattered_chunks
from accord.models.mediation import (
    fit_mediation,
    fit_mediation_spec,
    mediation_replicates,
    ols_covariance,
    quasi_bayesian_rows,
    r_p_value,
    simulation_rng,
)
from accord.models.spec import ModelContext, ModelSpec, model_context, model_specs


def fit(data: pd.DataFrame | None = None, **kwargs):
    args = dict(
        mediator="m",
        outcome="y",
        outcome_column="y",
        exposure="x",
        covariates=["z"],
        seed=3,
        model_id="mediation_m",
        method="quasi_bayesian",
    )
    return fit_mediation(linear_data() if data is None else data, **{**args, **kwargs})


def test_classical_ols_covariance_worked_by_hand():
    # y on (1, x) for x = 0..3, y = 1, 3, 2, 5: x-bar 1.5, Sxx 5, Sxy 5.5, so slope 1.1 and
    # intercept 2.75 - 1.65 = 1.1; residuals -0.1, 0.8, -1.3, 0.6, RSS 2.7, s^2 = 2.7 / 2 =
    # 1.35; var(slope) = s^2 / Sxx = 0.27, var(intercept) = s^2 (1/4 + 1.5^2 / 5) = 0.945,
    # cov = -x-bar s^2 / Sxx = -0.405 (R: vcov(lm(y ~ x))).
    x = np.column_stack([np.ones(4), np.arange(4.0)])
    beta, cov = ols_covariance(x, np.array([1.0, 3.0, 2.0, 5.0]))
    np.testing.assert_allclose(beta, [1.1, 1.1], rtol=1e-12)
    np.testing.assert_allclose(cov, [[0.945, -0.405], [-0.405, 0.27]], rtol=1e-12)
    with pytest.raises(np.linalg.LinAlgError, match="rank-deficient"):
        ols_covariance(np.column_stack([x, 2 * x[:, 1]]), np.array([1.0, 3.0, 2.0, 5.0]))


def test_r_p_value_and_type_7_percentiles_by_hand():
    draws = np.array([-2.0, -1.0, 1, 2, 3, 4, 5, 6, 7, 8])
    # pval: 2 min(#> 0, #< 0) / sims = 2 * 2 / 10; 1 at an estimate of 0; 0 on one side
    assert r_p_value(draws, float(draws.mean())) == pytest.approx(0.4)
    assert r_p_value(draws, 0.0) == 1.0
    assert r_p_value(np.arange(1.0, 11.0), 5.5) == 0.0
    assert r_p_value(np.array([-1.0, 1.0, 2.0]), 1.0) == pytest.approx(2 / 3)
    # ACME draws 1..10, ADE 0: quantile type 7 at 0.025 is x1 + (9 * 0.025) (x2 - x1) = 1.225,
    # at 0.975 x9 + 0.775 (x10 - x9) = 9.775; the estimate is the mean 5.5; the proportion
    # mediated is 1 in every draw (its median).
    acme = np.arange(1.0, 11.0)
    drawn = pd.DataFrame(
        {"acme_control": acme, "acme_treated": acme, "ade_control": 0.0, "ade_treated": 0.0}
    )
    rows = {row["term"]: row for row in quasi_bayesian_rows(drawn)}
    assert rows["acme"]["estimate"] == pytest.approx(5.5)
    assert rows["acme"]["ci_low"] == pytest.approx(1.225)
    assert rows["acme"]["ci_high"] == pytest.approx(9.775)
    assert rows["acme"]["p_value"] == 0.0
    assert rows["acme"]["std_error"] == pytest.approx(math.sqrt(55 / 6))  # var of 1..10
    assert rows["ade"]["p_value"] == 1.0  # estimate 0
    assert rows["proportion_mediated"]["estimate"] == 1.0
    assert rows["total_effect"]["estimate"] == pytest.approx(5.5)


def test_draws_approach_the_delta_method_moments():
    """With a_j ~ N(a, se_a^2) from the mediator model and (b_j, c_j) ~ N from the outcome
    model, drawn independently: E[a_j b_j] = a b and Var(a_j b_j) = a^2 se_b^2 + b^2 se_a^2 +
    se_a^2 se_b^2 (the product of independent normals; the delta-method (Sobel) variance
    drops the last term); the ADE's draws have mean c' and SD se_c; the total a_j b_j + c_j
    has variance Var(ab) + se_c^2 + 2 a cov(b, c')."""
    data = linear_data(n=200, seed=9)
    sims = 200_000
    rows = fit(data, sims=sims).coefficients.set_index("term")
    m_fit = smf.ols("m ~ x + z", data).fit()
    y_fit = smf.ols("y ~ x + m + z", data).fit()
    a, se_a = m_fit.params["x"], m_fit.bse["x"]
    b, se_b = y_fit.params["m"], y_fit.bse["m"]
    c, se_c = y_fit.params["x"], y_fit.bse["x"]
    cov_bc = y_fit.cov_params().loc["m", "x"]
    var_ab = a**2 * se_b**2 + b**2 * se_a**2 + se_a**2 * se_b**2
    sobel = math.sqrt(a**2 * se_b**2 + b**2 * se_a**2)
    sd_ab = math.sqrt(var_ab)
    # means within 4 Monte Carlo SEs; SDs within 1 % (their relative MC error is ~0.2 %)
    assert abs(rows.loc["acme", "estimate"] - a * b) < 4 * sd_ab / math.sqrt(sims)
    assert rows.loc["acme", "std_error"] == pytest.approx(sd_ab, rel=0.01)
    assert rows.loc["acme", "std_error"] == pytest.approx(sobel, rel=0.02)
    assert abs(rows.loc["ade", "estimate"] - c) < 4 * se_c / math.sqrt(sims)
    assert rows.loc["ade", "std_error"] == pytest.approx(se_c, rel=0.01)
    sd_total = math.sqrt(var_ab + se_c**2 + 2 * a * cov_bc)
    assert rows.loc["total_effect", "std_error"] == pytest.approx(sd_total, rel=0.01)
    # the ADE's draws are normal: their percentile CI approaches c' -+ 1.96 se_c
    assert rows.loc["ade", "ci_low"] == pytest.approx(c - 1.959964 * se_c, abs=0.02 * se_c)
    assert rows.loc["ade", "ci_high"] == pytest.approx(c + 1.959964 * se_c, abs=0.02 * se_c)


def test_recovers_planted_paths_and_agrees_with_the_bootstrap():
    data = linear_data(n=4000, seed=21)
    qb = fit(data).coefficients.set_index("term")
    truth = {
        "acme": A * B,
        "ade": C_DIRECT,
        "total_effect": A * B + C_DIRECT,
        "proportion_mediated": A * B / (A * B + C_DIRECT),
    }
    for term, value in truth.items():
        row = qb.loc[term]
        assert row["estimate"] == pytest.approx(value, abs=3 * row["std_error"]), term
        # near-normal draws: the percentile CI spans about 2 x 1.96 SDs
        width = row["ci_high"] - row["ci_low"]
        assert width == pytest.approx(2 * 1.96 * row["std_error"], rel=0.1), term
        assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert qb.loc["acme", "p_value"] == 0.0  # every draw below zero, as R's pval gives
    # both forms estimate the same sampling distribution: SEs within 15 %
    boot = fit(data, method="bootstrap", n_boot=300).coefficients.set_index("term")
    for term in ("acme", "ade", "total_effect"):
        assert qb.loc[term, "std_error"] == pytest.approx(boot.loc[term, "std_error"], rel=0.15)


def test_same_seed_same_table_and_global_state_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first, second = fit(), fit()
    assert (np.random.get_state()[1] == before).all()
    assert first.coefficients.to_csv(index=False) == second.coefficients.to_csv(index=False)
    assert first.diagnostics == second.diagnostics
    for other in (fit(seed=4), fit(model_id="mediation_other")):
        assert not other.coefficients["ci_low"].equals(first.coefficients["ci_low"])
    # a stream of its own: not bootstrap replicate 0's
    own = simulation_rng(3, "mediation_m").random(3)
    assert not np.array_equal(own, np.random.default_rng([3, 0]).random(3))


def test_auto_bootstraps_up_to_the_threshold_and_draws_above_it():
    above = fit(method="auto", bootstrap_max_clients=599, sims=200)  # 600 clients
    at = fit(method="auto", bootstrap_max_clients=600, n_boot=60)
    assert "quasi-Bayesian Monte Carlo" in above.diagnostics["method"]
    assert "200 draws" in above.diagnostics["method"]
    assert "600 clients (above bootstrap_max_clients 599)" in above.diagnostics["method"]
    assert "nonparametric bootstrap n=60" in at.diagnostics["method"]
    assert "600 clients (at most bootstrap_max_clients 600)" in at.diagnostics["method"]
    qb, boot = above.diagnostics["extras"], at.diagnostics["extras"]
    assert qb["uncertainty"] == {
        "setting": "auto",
        "method": "quasi_bayesian",
        "reason": "as the study has 600 clients (above bootstrap_max_clients 599)",
        "study_clients": 600,
        "threshold": 599,
    }
    assert qb["uncertainty"]["method"] == "quasi_bayesian" and qb["sims"] == 200
    assert qb["p_value_resolution"] == pytest.approx(2 / 200) and "n_boot" not in qb
    assert boot["uncertainty"]["method"] == "bootstrap" and boot["n_boot"] == 60
    assert boot["p_value_resolution"] == pytest.approx(2 / 61) and "sims" not in boot
    # the bootstrap's estimates come from the sample, the quasi-Bayesian from the draws
    products = boot["product_of_coefficients"]
    assert at.coefficients.set_index("term").loc["acme", "estimate"] == pytest.approx(
        products["indirect_ab"], rel=1e-12
    )
    assert choose_method("auto", 10, 9).method == "quasi_bayesian"
    assert choose_method("auto", 9, 9).method == "bootstrap"
    assert choose_method("bootstrap", 10**6, 9).method == "bootstrap"
    assert choose_method("quasi_bayesian", 1, 9).method == "quasi_bayesian"


def mediation_spec(**options) -> ModelSpec:
    return ModelSpec(
        id="mediation_m",
        kind="mediation",
        outcome="y",
        exposure="x",
        covariates=("z",),
        options={"mediator": "m", "outcome_column": "y", "n_boot": 500, **options},
    )


def test_no_bootstrap_jobs_for_a_mediation_fitted_quasi_bayesian():
    auto = mediation_spec()
    assert needs_client_count(auto)
    assert not needs_client_count(mediation_spec(method="bootstrap"))
    # 4 chunks of 125 replicates up to the threshold; no job above it
    assert [len(r) for r in scattered_chunks(auto, 4, n_clients=600, max_clients=600)] == [125] * 4
    assert scattered_chunks(auto, 4, n_clients=601, max_clients=600) == []
    assert scattered_chunks(mediation_spec(method="quasi_bayesian"), 4) == []
    assert len(scattered_chunks(mediation_spec(method="bootstrap"), 4, n_clients=10**6)) == 4
    therapist = ModelSpec(id="t", kind="therapist", outcome="phq9", exposure="none")
    assert len(scattered_chunks(therapist, 4, n_clients=10**6, max_clients=1)) == 4
    # the model's job decides on the same count (rows of the client measures)
    context = ModelContext(seed=3, mediation_bootstrap_max_clients=599)
    result = fit_mediation_spec(pd.DataFrame(), linear_data(), auto, context)
    assert result.diagnostics["extras"]["uncertainty"]["method"] == "quasi_bayesian"
    assert result.diagnostics["extras"]["sims"] == 1000
    # replicates drawn for a bootstrap cannot be pooled into a quasi-Bayesian fit
    drawn = mediation_replicates(
        linear_data(), mediator="m", outcome="y", outcome_column="y", exposure="x",
        replicates=60, model_id="mediation_m", seed=3,
    )  # fmt: skip
    with pytest.raises(ConfigError, match="quasi-Bayesian"):
        fit(n_boot=60, replicates=drawn)


def test_a_bad_method_or_threshold_names_the_setting():
    with pytest.raises(ConfigError, match=r"options\.method 'bayes'"):
        fit(method="bayes")
    with pytest.raises(ConfigError, match="sims must be at least"):
        fit(sims=10)
    config = {"studies": {"s": {"path": "x"}}}
    entry = {"id": "med", "kind": "mediation", "options": {"mediator": "m", "method": "bayes"}}
    with pytest.raises(ConfigError, match=r"config key 'models\[0\]\.options\.method'"):
        validate_config({**config, "models": [entry]})
    with pytest.raises(ConfigError, match=r"'med': options\.method 'bayes' is not one of"):
        model_specs({"models": [entry]})
    with pytest.raises(
        ConfigError, match=r"config key 'analysis\.mediation\.bootstrap_max_clients'"
    ):
        validate_config({**config, "analysis": {"mediation": {"bootstrap_max_clients": -1}}})
    with pytest.raises(
        ConfigError, match=r"config key 'analysis\.mediation\.max_clients': unknown setting"
    ):
        validate_config({**config, "analysis": {"mediation": {"max_clients": 5}}})
    # another kind's option method is its own (ancova_mice's imputation method)
    mice = {"id": "mice", "kind": "ancova_mice", "options": {"method": "pmm"}}
    validate_config({**config, "models": [mice]})
    threshold = {"analysis": {"mediation": {"bootstrap_max_clients": 5000}}}
    assert model_context(validate_config({**config, **threshold})) == ModelContext(
        mediation_bootstrap_max_clients=5000
    )
    assert model_context(validate_config(config)).mediation_bootstrap_max_clients == 100_000


def test_a_rank_deficient_design_is_a_failed_fit_not_a_crash():
    data = linear_data().assign(z2=lambda d: 2 * d["z"])
    result = fit(data, covariates=["z", "z2"])
    assert not result.diagnostics["converged"]
    assert any("rank-deficient" in w for w in result.diagnostics["warnings"])


CAUSAL_WORDS = ("works through", "runs through", "reduces", "because")


def test_the_report_names_the_method_and_why():
    from accord.report.sections.therapist import mediation_inference

    qb = fit(method="auto", bootstrap_max_clients=500).diagnostics["extras"]
    text = mediation_inference(qb)
    assert "1,000 quasi-Bayesian Monte Carlo draws" in text
    assert "the study has more than 500 clients, the most the bootstrap is used for" in text
    assert not any(word in text for word in CAUSAL_WORDS)
    fixed = mediation_inference(fit().diagnostics["extras"])
    assert "quasi-Bayesian" in fixed and "the study has" not in fixed
    boot = mediation_inference(fit(method="bootstrap", n_boot=60).diagnostics["extras"])
    assert "60 nonparametric bootstrap replicates" in boot
    # results written before the choice existed read as the bootstrap they were
    assert "500 nonparametric bootstrap" in mediation_inference({"n_boot": 500})


def test_the_report_says_which_model_used_which_method():
    from accord.report.sections.therapist import mediation_inference, mediation_inferences

    qb = {"extras": fit().diagnostics["extras"]}  # mediator m
    boot = {"extras": {"mediator": "early_alliance", "n_boot": 500}}
    both = mediation_inferences({"a": qb, "b": boot, "c": boot}, ["a", "b", "c"])
    # named by mediator; by model where two models share one
    assert both == (
        f"for m, {mediation_inference(qb['extras'])}; for b and c, "
        f"{mediation_inference(boot['extras'])}"
    )
    same = mediation_inferences({"b": boot, "c": boot}, ["b", "c"])
    assert same == mediation_inference(boot["extras"])
