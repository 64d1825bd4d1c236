"""The whole-table logistic GEE: worked by hand, and equal to statsmodels' GEE."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from accord.models.gee import fit_exchangeable_logistic


def test_intercept_only_worked_by_hand():
    """Five clients of two rows: [1,1], [1,1], [0,0], [0,0], [1,0]. The mean is 1/2, so the
    log-odds is 0 and every Pearson residual is ±1. Pairs within clients: +1 four times and -1
    once, sum 3; scale = 10 / (10 - 1); correlation = 3 / (10/9) / (5 pairs - 1) = 27/40.
    With one parameter and equal clusters the sandwich reduces to Σ_g R_g² / (N·v)², with
    R_g the clients' residual sums (1, 1, -1, -1, 0) and v = 1/4: 4 / 2.5² = 0.64."""
    y = pd.Series([1, 1, 1, 1, 0, 0, 0, 0, 1, 0], dtype=float)
    x = pd.DataFrame({"Intercept": np.ones(10)})
    groups = np.repeat(np.arange(5), 2)
    fit = fit_exchangeable_logistic(y, x, groups)
    assert fit.params["Intercept"] == pytest.approx(0.0, abs=1e-12)
    assert fit.working_correlation == pytest.approx(27 / 40, abs=1e-12)
    assert fit.cov_params().loc["Intercept", "Intercept"] == pytest.approx(0.64, abs=1e-12)
    assert fit.bse["Intercept"] == pytest.approx(0.8, abs=1e-12)
    assert fit.converged


def _clustered(n_clients: int, seed: int) -> tuple[pd.Series, pd.DataFrame, np.ndarray]:
    """Clients of 1 to 5 rows with a shared random intercept, labelled out of order."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 6, n_clients)
    groups = rng.permutation(n_clients)[np.repeat(np.arange(n_clients), sizes)]
    n = len(groups)
    x = pd.DataFrame(
        {
            "Intercept": 1.0,
            "x1": rng.normal(size=n),
            "x2": (rng.random(n) < 0.4).astype(float),
        }
    )
    lp = -0.3 + 0.5 * x["x1"] - 0.7 * x["x2"] + rng.normal(size=n_clients)[groups]
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-lp))).astype(float))
    return y, x, groups


@pytest.mark.parametrize(("n_clients", "seed"), [(30, 1), (400, 2)])
def test_equals_statsmodels_gee_exchangeable(n_clients: int, seed: int):
    y, x, groups = _clustered(n_clients, seed)
    reference = sm.GEE(
        y, x, groups=groups, family=sm.families.Binomial(), cov_struct=sm.cov_struct.Exchangeable()
    ).fit(maxiter=100)
    fit = fit_exchangeable_logistic(y, x, groups, maxiter=100)
    np.testing.assert_allclose(fit.params, reference.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fit.cov_params(), reference.cov_params(), rtol=0, atol=1e-10)
    assert fit.working_correlation == pytest.approx(reference.model.cov_struct.dep_params, 1e-10)


def test_clients_of_one_row_give_the_logistic_regression_with_sandwich_errors():
    """No pairs: no correlation to estimate, so the GEE is the logistic regression and its
    robust covariance the HC0 sandwich."""
    y, x, _ = _clustered(300, 5)
    groups = np.arange(len(y))
    fit = fit_exchangeable_logistic(y, x, groups)
    glm = sm.GLM(y, x, family=sm.families.Binomial()).fit(cov_type="HC0")
    assert fit.working_correlation == 0.0
    np.testing.assert_allclose(fit.params, glm.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fit.cov_params(), glm.cov_params(), rtol=0, atol=1e-10)


def test_an_unsettled_fit_warns_and_says_so():
    y, x, groups = _clustered(200, 7)
    with pytest.warns(UserWarning, match="Iteration limit"):
        fit = fit_exchangeable_logistic(y, x, groups, maxiter=2)
    assert not fit.converged
