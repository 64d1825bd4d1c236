"""Multiple imputation by chained equations, and Rubin's rules with Barnard-Rubin df.

Imputation (van Buuren 2018, Flexible Imputation of Missing Data, ch. 3-4; as R's ``mice``)
    Every column with missing values is imputed from all the other columns, one column after
    the other (in the order of fewer missing values first), over ``n_iterations`` cycles; each
    of the ``m`` imputed data sets is its own chain started from random draws of the observed
    values. A column is imputed by Bayesian linear regression (``norm``, as
    ``mice.impute.norm``): with the least-squares fit beta_hat on the observed rows (ridge
    1e-5 x diag(X'X), as mice), sigma*^2 = RSS / chi^2(n_obs - p) and
    beta* = beta_hat + sigma* L z (L the Cholesky factor of (X'X)^-1, z standard normal), the
    imputations are X_mis beta* + N(0, sigma*^2). With ``pmm`` (predictive mean matching, as
    ``mice.impute.pmm``, type-1 matching) each missing value takes the observed value of one
    of the 5 observed rows whose X beta_hat is closest to its X_mis beta*. A column with two
    observed values (a 0/1 exposure) is always imputed by ``pmm``, so it stays 0/1.
    All draws come from one numpy generator: the same seed gives the same imputations.

Pooling (Rubin 1987; Barnard & Rubin 1999, Biometrika 86:948; as ``mice::pool``)
    For m estimates Q_l with complete-data variances U_l: Q = mean Q_l, U = mean U_l,
    B = var(Q_l) (m - 1 denominator), T = U + (1 + 1/m) B; riv = (1 + 1/m) B / U,
    lambda = (1 + 1/m) B / T (at least 1e-4); df_old = (m - 1) / lambda^2,
    df_obs = (df_com + 1) / (df_com + 3) df_com (1 - lambda), df = df_old df_obs /
    (df_old + df_obs), with df_com the complete-data residual df; fmi = (riv + 2 / (df + 3)) /
    (1 + riv). Intervals and p-values use the t distribution with df (not the normal).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from accord.core.errors import ConfigError

METHODS = ("norm", "pmm")
RIDGE = 1e-5
DONORS = 5
MIN_LAMBDA = 1e-4


@dataclass(frozen=True)
class Pooled:
    """Rubin's rules for each term: estimate, within, between and total variance, df, ..."""

    terms: list[str]
    estimate: np.ndarray
    ubar: np.ndarray
    b: np.ndarray
    t: np.ndarray
    df_com: float
    df: np.ndarray
    riv: np.ndarray
    lambda_: np.ndarray
    fmi: np.ndarray
    m: int

    @property
    def std_error(self) -> np.ndarray:
        return np.sqrt(self.t)

    def p_value(self) -> np.ndarray:
        statistic = self.estimate / self.std_error
        return 2.0 * stats.t.sf(np.abs(statistic), self.df)

    def conf_int(self, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
        half = stats.t.ppf(1.0 - alpha / 2.0, self.df) * self.std_error
        return self.estimate - half, self.estimate + half


def barnard_rubin_df(m: int, b: np.ndarray, t: np.ndarray, df_com: float) -> np.ndarray:
    """Barnard & Rubin (1999) degrees of freedom, as ``mice:::barnard.rubin``."""
    lam = np.maximum((1.0 + 1.0 / m) * np.asarray(b, float) / np.asarray(t, float), MIN_LAMBDA)
    df_old = (m - 1) / lam**2
    if not math.isfinite(df_com):
        return df_old
    df_obs = (df_com + 1.0) / (df_com + 3.0) * df_com * (1.0 - lam)
    return df_old * df_obs / (df_old + df_obs)


def pool(
    estimates: np.ndarray, variances: np.ndarray, df_com: float, terms: Sequence[str]
) -> Pooled:
    """Pool m sets of estimates and their (complete-data) variances, m x k each."""
    q = np.asarray(estimates, dtype=float)
    u = np.asarray(variances, dtype=float)
    m = q.shape[0]
    if m < 2:
        raise ConfigError("multiple imputation: pooling needs at least 2 imputations")
    qbar, ubar = q.mean(axis=0), u.mean(axis=0)
    b = q.var(axis=0, ddof=1)
    t = ubar + (1.0 + 1.0 / m) * b
    with np.errstate(divide="ignore", invalid="ignore"):
        riv = (1.0 + 1.0 / m) * b / ubar
        lam = (1.0 + 1.0 / m) * b / t
    df = barnard_rubin_df(m, b, t, df_com)
    fmi = (riv + 2.0 / (df + 3.0)) / (riv + 1.0)
    return Pooled(list(terms), qbar, ubar, b, t, float(df_com), df, riv, lam, fmi, m)


def impute(
    data: pd.DataFrame,
    m: int,
    rng: np.random.Generator,
    *,
    n_iterations: int = 10,
    method: str = "norm",
) -> list[pd.DataFrame]:
    """`m` completed copies of `data` (all columns numeric), by chained equations."""
    if method not in METHODS:
        raise ConfigError(f"multiple imputation: method must be one of {list(METHODS)}")
    values = data.to_numpy(dtype=float)
    missing = np.isnan(values)
    counts = missing.sum(axis=0)
    if (counts == len(values)).any():
        empty = data.columns[counts == len(values)][0]
        raise ConfigError(f"multiple imputation: the column {empty!r} has no observed value")
    order = [j for j in np.argsort(counts, kind="stable") if counts[j] > 0]
    binary = [len(np.unique(values[~missing[:, j], j])) <= 2 for j in range(values.shape[1])]
    completed = []
    for _ in range(int(m)):
        filled = values.copy()
        for j in order:
            observed = values[~missing[:, j], j]
            filled[missing[:, j], j] = rng.choice(observed, size=int(counts[j]))
        for _ in range(int(n_iterations)):
            for j in order:
                draw = _pmm if method == "pmm" or binary[j] else _norm
                filled[missing[:, j], j] = _impute_column(filled, j, missing[:, j], rng, draw)
        completed.append(pd.DataFrame(filled, columns=data.columns, index=data.index))
    return completed


Draw = Callable[..., np.ndarray]


def _impute_column(
    filled: np.ndarray, j: int, miss: np.ndarray, rng: np.random.Generator, draw: Draw
) -> np.ndarray:
    x = np.column_stack([np.ones(len(filled)), np.delete(filled, j, axis=1)])
    # Constant predictors (e.g. a column equal for every client) add nothing and make X'X
    # singular; the ridge handles near-collinearity as mice does.
    keep = np.r_[True, np.ptp(x[:, 1:], axis=0) > 0]
    x = x[:, keep]
    return draw(x[~miss], filled[~miss, j], x[miss], rng)


def _posterior(
    x_obs: np.ndarray, y_obs: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """beta_hat, a posterior draw beta* and sigma* (``mice:::.norm.draw``)."""
    xtx = x_obs.T @ x_obs
    xtx = xtx + np.diag(RIDGE * np.diag(xtx))
    v = np.linalg.inv(xtx)
    v = (v + v.T) / 2.0
    beta_hat = v @ x_obs.T @ y_obs
    residual = y_obs - x_obs @ beta_hat
    df = max(len(y_obs) - x_obs.shape[1], 1)
    sigma = math.sqrt(float(residual @ residual) / rng.chisquare(df))
    beta = beta_hat + sigma * np.linalg.cholesky(v) @ rng.standard_normal(len(beta_hat))
    return beta_hat, beta, sigma


def _norm(x_obs, y_obs, x_mis, rng) -> np.ndarray:
    _, beta, sigma = _posterior(x_obs, y_obs, rng)
    return x_mis @ beta + rng.normal(0.0, sigma, len(x_mis))


def _pmm(x_obs, y_obs, x_mis, rng) -> np.ndarray:
    beta_hat, beta, _ = _posterior(x_obs, y_obs, rng)
    predicted_obs, predicted_mis = x_obs @ beta_hat, x_mis @ beta
    k = min(DONORS, len(y_obs))
    # The k nearest observed predictions lie within k places either side of the insertion
    # point in sorted order: no n_mis x n_obs distance matrix.
    order = np.argsort(predicted_obs, kind="stable")
    ranked = predicted_obs[order]
    start = np.searchsorted(ranked, predicted_mis)
    window = np.clip(start[:, None] + np.arange(-k, k)[None, :], 0, len(ranked) - 1)
    distance = np.abs(ranked[window] - predicted_mis[:, None])
    nearest = np.take_along_axis(window, np.argsort(distance, axis=1, kind="stable"), axis=1)
    pick = nearest[np.arange(len(x_mis)), rng.integers(0, k, len(x_mis))]
    return y_obs[order[pick]]
