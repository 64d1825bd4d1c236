"""Logistic GEE with an exchangeable working correlation, computed a whole table at a time.

The estimator is statsmodels' ``GEE(family=Binomial(), cov_struct=Exchangeable())`` step for
step: the same start (the independence GLM), the same Fisher-scoring update of the mean
parameters, the same moment estimate of the common correlation after each update, the same
stopping rule (the score's norm below ``ctol`` once the correlation has been updated) and the
same robust (sandwich) covariance. statsmodels visits the clusters one by one in Python, which
takes minutes for a million clients; here every per-cluster quantity is a sum over the
cluster's rows, so each step is a few vector operations over the table.

For a cluster of k rows with working correlation a, V⁻¹ = A^-1/2 R⁻¹ A^-1/2 with
R⁻¹x = x/(1 − a) − c·Σx and c = a / ((1 − a)(1 + (k − 1)a)) (statsmodels'
``Exchangeable.covariance_matrix_solve``). With the logit link D = A·X, so, writing
s_j = √(μ_j(1 − μ_j)), S_g = Σ_{j∈g} x_j s_j and P_g = Σ_{j∈g} (y_j − μ_j)/s_j:

* D'V⁻¹D = Σ_j s_j² x_j x_j' / (1 − a) − Σ_g c_g S_g S_g'
* the cluster's score U_g = Σ_{j∈g} x_j (y_j − μ_j) / (1 − a) − c_g S_g P_g

and the robust covariance is (D'V⁻¹D)⁻¹ (Σ_g U_g U_g') (D'V⁻¹D)⁻¹.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd


class IterationLimitWarning(UserWarning):
    """The mean parameters did not settle within the iteration limit."""


@dataclass(frozen=True)
class ExchangeableLogisticGEE:
    """A fitted logistic GEE: log-odds `params`, their robust covariance, the working
    correlation within a cluster, the iterations taken and whether the score settled."""

    params: pd.Series
    robust_covariance: pd.DataFrame
    working_correlation: float
    iterations: int
    converged: bool

    def cov_params(self) -> pd.DataFrame:
        """The robust (sandwich) covariance of the parameters, as statsmodels names it."""
        return self.robust_covariance

    @property
    def bse(self) -> pd.Series:
        """Robust standard errors."""
        return pd.Series(np.sqrt(np.diag(self.robust_covariance)), index=self.params.index)


class _Clusters:
    """Sums over the rows of each cluster: rows sorted by cluster, summed with reduceat."""

    def __init__(self, groups: np.ndarray) -> None:
        self.order = np.argsort(groups, kind="stable")
        ordered = groups[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        self.sizes = np.diff(np.r_[self.starts, len(ordered)])

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-cluster sums of `values` (rows already in cluster order)."""
        return np.add.reduceat(values, self.starts, axis=0)


def fit_exchangeable_logistic(
    endog: pd.Series,
    exog: pd.DataFrame,
    groups: np.ndarray,
    *,
    maxiter: int = 60,
    ctol: float = 1e-6,
) -> ExchangeableLogisticGEE:
    """Fit logit P(endog = 1) = exog·β with clusters `groups` (module docstring); `endog` is
    0/1. Warns with IterationLimitWarning when the score has not settled after `maxiter`
    steps. Raises numpy's LinAlgError when D'V⁻¹D cannot be inverted."""
    import statsmodels.api as sm

    clusters = _Clusters(np.asarray(groups))
    y = np.asarray(endog, dtype=float)[clusters.order]
    x = np.asarray(exog, dtype=float)[clusters.order]
    n_obs, n_params = x.shape
    n_pairs = float(np.sum(clusters.sizes * (clusters.sizes - 1) / 2))

    start = sm.GLM(
        np.asarray(endog, dtype=float), np.asarray(exog, dtype=float), family=sm.families.Binomial()
    ).fit()
    beta = np.asarray(start.params, dtype=float).copy()
    correlation = 0.0

    def residuals(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw residuals y − μ and the binomial standard deviations √(μ(1 − μ))."""
        mu = 1.0 / (1.0 + np.exp(-(x @ beta)))
        return y - mu, np.sqrt(mu * (1.0 - mu))

    def moments(beta: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
        """D'V⁻¹D and the clusters' scores U_g (module docstring)."""
        resid, sd = residuals(beta)
        c = a / (1.0 - a) / (1.0 + a * (clusters.sizes - 1))
        xs = x * sd[:, None]
        s = clusters.sums(xs)
        bmat = xs.T @ xs / (1.0 - a) - (s * c[:, None]).T @ s
        scores = (
            clusters.sums(x * resid[:, None]) / (1.0 - a)
            - s * (c * clusters.sums(resid / sd))[:, None]
        )
        return bmat, scores

    def solve(bmat: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        try:
            return np.linalg.solve(bmat, rhs)
        except np.linalg.LinAlgError:
            return np.linalg.pinv(bmat) @ rhs

    score_norm, iterations = -1.0, 0
    while iterations < maxiter:
        iterations += 1
        bmat, scores = moments(beta, correlation)
        score = scores.sum(axis=0)
        beta = beta + solve(bmat, score)
        score_norm = float(np.sqrt(np.sum(score**2)))
        # statsmodels stops only after the correlation has been updated once
        if score_norm < ctol and iterations > 1:
            break
        resid, sd = residuals(beta)
        correlation = _exchangeable_correlation(resid / sd, clusters, n_obs, n_params, n_pairs)
    converged = score_norm < ctol
    if not converged:
        warnings.warn(
            "Iteration limit reached prior to convergence", IterationLimitWarning, stacklevel=2
        )
    bmat, scores = moments(beta, correlation)
    try:
        bread = np.linalg.inv(bmat)
    except np.linalg.LinAlgError:
        bread = np.linalg.pinv(bmat)
    robust = bread @ (scores.T @ scores) @ bread
    names = list(exog.columns)
    return ExchangeableLogisticGEE(
        params=pd.Series(beta, index=names),
        robust_covariance=pd.DataFrame(robust, index=names, columns=names),
        working_correlation=float(correlation),
        iterations=iterations,
        converged=converged,
    )


def _exchangeable_correlation(
    pearson: np.ndarray, clusters: _Clusters, n_obs: int, n_params: int, n_pairs: float
) -> float:
    """statsmodels' moment estimate of the common correlation from Pearson residuals: the sum
    over pairs within clusters of their products, over the scale, over (pairs − parameters).
    With no pairs to learn from, 0 (independence)."""
    if n_pairs <= n_params:
        return 0.0
    scale = float(np.sum(pearson**2)) / (n_obs - n_params)
    within = clusters.sums(pearson)
    squares = clusters.sums(pearson**2)
    pair_sum = float(np.sum((within**2 - squares) / 2))
    return pair_sum / scale / (n_pairs - n_params)
