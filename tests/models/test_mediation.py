"""Mediation as R's mediation package: recovery of a planted indirect effect (ACME = a b), point
estimates from the original sample, one resample for both models, p-values at their resolution,
sensitivity to sequential ignorability (medsens), determinism, the config entry point."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from conftest import simulated_measures

from accord.core.errors import ConfigError
from accord.models.bootstrap import replicate_rng
from accord.models.mediation import (
    RHO_GRID,
    fit_mediation,
    fit_mediation_spec,
    mediation_replicates,
)
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import COEFFICIENT_COLUMNS

A, B, C_DIRECT = 0.5, -2.0, -1.0  # x -> m, m -> y, x -> y directly


@functools.cache
def linear_data(n: int = 600, seed: int = 4) -> pd.DataFrame:
    """m = 1 + a x + 0.1 z + u, y = c' x + b m + 0.3 z + e; ACME = a b = -1, ADE = c' = -1,
    total = -2, proportion mediated = 0.5."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    z = rng.normal(0, 1, n)
    m = 1 + A * x + 0.1 * z + rng.normal(0, 0.5, n)
    y = C_DIRECT * x + B * m + 0.3 * z + rng.normal(0, 1, n)
    return pd.DataFrame({"client_id": [f"C{i}" for i in range(n)], "x": x, "m": m, "y": y, "z": z})


def fit(**kwargs):
    args = dict(
        mediator="m",
        outcome="y",
        outcome_column="y",
        exposure="x",
        covariates=["z"],
        n_boot=200,
        seed=3,
    )
    return fit_mediation(linear_data(), **{**args, **kwargs})


def test_recovers_planted_effects():
    result = fit()
    rows = result.coefficients.set_index("term")
    assert rows.index.tolist() == ["acme", "ade", "total_effect", "proportion_mediated"]
    truth = {
        "acme": A * B,
        "ade": C_DIRECT,
        "total_effect": A * B + C_DIRECT,
        "proportion_mediated": A * B / (A * B + C_DIRECT),
    }
    for term, value in truth.items():
        assert rows.loc[term, "ci_low"] < value < rows.loc[term, "ci_high"], term
    assert rows.loc["acme", "p_value"] < 0.05
    products = result.diagnostics["extras"]["product_of_coefficients"]
    assert products["indirect_ab"] == pytest.approx(
        products["a_exposure_to_mediator"] * products["b_mediator_to_outcome"]
    )
    # point estimates from the original sample (as mediate with boot = TRUE), not the mean of
    # the replicates
    assert rows.loc["acme", "estimate"] == pytest.approx(products["indirect_ab"], rel=1e-12)
    assert rows.loc["ade", "estimate"] == pytest.approx(products["c_direct"], rel=1e-12)
    full_m = smf.ols("m ~ x + z", linear_data()).fit()
    full_y = smf.ols("y ~ x + m + z", linear_data()).fit()
    assert products["indirect_ab"] == pytest.approx(full_m.params["x"] * full_y.params["m"])
    assert result.diagnostics["extras"]["mediator_formula"] == "m ~ x + z"
    assert result.diagnostics["extras"]["outcome_formula"] == "y ~ x + m + z"
    assert result.diagnostics["converged"]


def test_each_replicate_refits_both_models_on_one_resample():
    data = linear_data()
    drawn = mediation_replicates(
        data, mediator="m", replicates=[0, 7], outcome_column="y", exposure="x",
        covariates=["z"], model_id="mediation", seed=3,
    )  # fmt: skip
    for _, row in drawn.iterrows():
        r = int(row["replicate"])
        resample = data.iloc[replicate_rng(3, "mediation", r).integers(0, len(data), len(data))]
        a = smf.ols("m ~ x + z", resample).fit().params["x"]
        fitted = smf.ols("y ~ x + m + z", resample).fit().params
        assert row["acme_control"] == pytest.approx(a * fitted["m"], rel=1e-9)
        assert row["ade_treated"] == pytest.approx(fitted["x"], rel=1e-9)


def test_bootstrap_p_value_is_never_below_its_resolution():
    # every replicate ACME is negative (a b = -1, far from 0): p = 2 (1 + 0) / (1 + 200)
    rows = fit().coefficients.set_index("term")
    assert rows.loc["acme", "p_value"] == pytest.approx(2 / 201)


def _sur_acme(data: pd.DataFrame, rho: float) -> float:
    """medsens' iterative FGLS of the stacked mediator and outcome models with the error
    correlation fixed at rho (mediation/R/medsens.R, continuous mediator and outcome)."""
    n = len(data)
    xm = np.column_stack([np.ones(n), data["x"], data["z"]])
    xy = np.column_stack([np.ones(n), data["x"], data["m"], data["z"]])
    x = np.block([[xm, np.zeros((n, 4))], [np.zeros((n, 3)), xy]])
    yc = np.r_[data["m"], data["y"]]
    beta = np.linalg.lstsq(x, yc, rcond=None)[0]
    for _ in range(200):
        e = yc - x @ beta
        e1, e2 = e[:n], e[n:]
        s1, s2 = np.std(e1, ddof=1), np.std(e2, ddof=1)
        omega = np.array([[e1 @ e1 / (n - 1), rho * s1 * s2], [rho * s1 * s2, e2 @ e2 / (n - 1)]])
        w = np.linalg.inv(omega)
        # X' (W kron I) X and X' (W kron I) y without the 2n x 2n matrix
        blocks = [x[:n], x[n:]]
        ys = [yc[:n], yc[n:]]
        xtwx = sum(w[i, j] * blocks[i].T @ blocks[j] for i in range(2) for j in range(2))
        xtwy = sum(w[i, j] * blocks[i].T @ ys[j] for i in range(2) for j in range(2))
        new = np.linalg.solve(xtwx, xtwy)
        if np.sum((new - beta) ** 2) < 1e-16:
            beta = new
            break
        beta = new
    return float(beta[1] * beta[5])  # a (x in the mediator model) x b (m in the outcome model)


def test_sensitivity_curve_equals_medsens_fgls_and_crosses_zero_at_rho_tilde():
    result = fit()
    sensitivity = result.diagnostics["extras"]["sensitivity"]
    curve = {point["rho"]: point["acme"] for point in sensitivity["curve"]}
    assert list(curve) == list(RHO_GRID)
    products = result.diagnostics["extras"]["product_of_coefficients"]
    # at rho = 0 the curve is the estimate itself
    assert curve[0.0] == pytest.approx(products["indirect_ab"], rel=1e-9)
    for rho in (-0.5, 0.3, 0.6):
        assert curve[rho] == pytest.approx(_sur_acme(linear_data(), rho), rel=1e-6)
    rho_zero = sensitivity["rho_at_zero_acme"]
    assert abs(_sur_acme(linear_data(), rho_zero)) < 1e-6
    # b < 0: the residual correlation that b reflects is negative (about -.70 here), and an
    # error correlation that large would explain the ACME away
    assert -1 < rho_zero < -0.5
    assert len(result.diagnostics["extras"]["assumptions"]) == 3


def test_same_seed_same_results_and_global_state_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first, second = fit(), fit()
    assert (np.random.get_state()[1] == before).all()
    pd.testing.assert_frame_equal(first.coefficients, second.coefficients)
    other = fit(seed=4)
    # the point estimates come from the sample; the intervals from the seeded replicates
    assert other.coefficients["estimate"].equals(first.coefficients["estimate"])
    assert not other.coefficients["ci_low"].equals(first.coefficients["ci_low"])


def test_bad_settings():
    with pytest.raises(ConfigError):
        fit(mediator="x")
    with pytest.raises(ConfigError):
        fit(n_boot=10)
    with pytest.raises(ConfigError):
        fit(mediator="not_a_column")


@functools.cache
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:

    panel, client_measures, _ = simulated_measures(n_clients=400, seed=7)
    return panel, client_measures


def test_spec_entry_point_on_simulated_study():
    panel, client_measures = demo()
    spec = ModelSpec(
        id="mediation_alliance",
        kind="mediation",
        outcome="phq9",
        exposure="joint_goal_share",
        covariates=("phq9_first",),
        primary=False,
        options={"mediator": "early_alliance", "n_boot": 100},
    )
    result = fit_mediation_spec(panel, client_measures, spec, ModelContext(seed=1))
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS
    rows = result.coefficients.set_index("term")
    # in the simulator the exposure raises the alliance and a higher alliance steepens
    # improvement: a negative indirect path to the post score
    assert rows.loc["acme", "estimate"] < 0
    extras = result.diagnostics["extras"]
    assert extras["outcome_column"] == "phq9_post"
    assert extras["outcome_formula"] == "phq9_post ~ joint_goal_share + early_alliance + phq9_first"
    used = client_measures[["phq9_post", "early_alliance", "phq9_first", "joint_goal_share"]]
    assert result.diagnostics["n_clients"] == used.notna().all(axis=1).sum()
    with pytest.raises(ConfigError):
        fit_mediation_spec(
            panel,
            client_measures,
            ModelSpec(id="m", kind="mediation", outcome="phq9", exposure="joint_goal_share"),
            ModelContext(),
        )


CAUSAL_WORDS = ("effect", "runs through", "works through", "reduces", "because")


def test_summary_sentence_is_observational_unless_the_exposure_is_a_randomised_arm():
    from accord.report.sections.summary import _mediation_sentence

    row = {"estimate": -0.4, "ci_low": -0.7, "ci_high": -0.1, "outcome": "phq9"}
    observed = _mediation_sentence({**row, "exposure": "joint_goal_share"}, "early alliance")
    assert "associat" in observed
    assert not any(word in observed.lower() for word in CAUSAL_WORDS)
    randomised = _mediation_sentence({**row, "exposure": "arm"}, "early alliance")
    assert "effect of the randomised arm" in randomised
    assert "randomisation does not ensure" in randomised
