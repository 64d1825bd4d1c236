"""Therapist effects in the usual design: the post score adjusted for intake (analyses.md).

    post_ij = b0 + b1 (intake_ij - mean intake) + covariates + v_j + e_ij,
    v_j ~ N(0, s2_therapist), e_ij ~ N(0, s2_residual),

one row per client i of therapist j with an observed end-of-treatment (post) score, fitted by
REML. The therapist ICC is the therapist share of the outcome variance left after intake,

    icc_therapist = s2_therapist / (s2_therapist + s2_residual),

the quantity behind the "about 5 %" of Wampold & Brown (2005), Baldwin & Imel (2013) and
Schiefele et al. (2017), with a 95% percentile CI from a cluster bootstrap (therapists drawn
with replacement with all their clients; a therapist drawn twice enters as two). Therapists may
also differ in how post scores follow intake severity (Saxon & Barkham 2012): the slopes model
adds a therapist random slope on centred intake, correlated with the intercept,

    post_ij = ... + v0_j + v1_j (intake_ij - mean intake) + e_ij,

and reports its variances and correlation (``var_therapist_slope``; no p-value for a
variance). The null three-level model over all assessments (`accord.models.therapist`, option
``design: null``) is a labelled descriptive: it mixes intake differences into the therapist
share and is not the quantity the published figures estimate.

How it is fitted: lme4's profiled REML criterion, written for two levels with the
relative covariance factor L of the therapist effects (V_j = s2 (I + Z_j L L' Z_j')) and the
clients' sufficient statistics per therapist (Z'Z, Z'X, Z'y; Bates et al. 2015, eq. 34-42).
The deviance is minimised over the elements of L (L-BFGS-B from lme4's start, then from the
boundary, best kept); s2 and the fixed effects are profiled out. Estimates agree with
``lme4::lmer`` (tests/data/reference/therapist_post). A cluster-bootstrap replicate refits the
intercept model from resampled therapist sums; replicate r draws from
``replicate_rng(seed, model_id, r)``, so replicates can be spread over jobs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from accord.core.errors import ConfigError, NotEstimableError
from accord.models.bootstrap import check_replicates, replicate_indices, replicate_rng
from accord.models.tidy import ModelResult, coefficient_frame, ranked_effects, wald_from_variance

MIN_THERAPISTS = 5
REPLICATE_COLUMNS = ["var_therapist", "var_residual", "icc_therapist"]
_LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class TherapistSums:
    """Per therapist: Z'Z (q x q), Z'X (q x p), Z'y (q), X'X, X'y, y'y and its number of
    clients, where Z is the therapist design (intercept, or intercept and intake slope)."""

    zz: np.ndarray
    zx: np.ndarray
    zy: np.ndarray
    xx: np.ndarray
    xy: np.ndarray
    yy: np.ndarray
    n: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, X: np.ndarray, Z: np.ndarray, group: np.ndarray) -> TherapistSums:
        """From client rows: outcome `y`, fixed design `X`, therapist design `Z`, and each
        row's therapist code `group` (0 .. k - 1)."""
        k = int(group.max()) + 1

        def summed(values: np.ndarray) -> np.ndarray:
            out = np.zeros((k, *values.shape[1:]))
            np.add.at(out, group, values)
            return out

        return cls(
            zz=summed(Z[:, :, None] * Z[:, None, :]),
            zx=summed(Z[:, :, None] * X[:, None, :]),
            zy=summed(Z * y[:, None]),
            xx=summed(X[:, :, None] * X[:, None, :]),
            xy=summed(X * y[:, None]),
            yy=summed(y * y),
            n=np.bincount(group, minlength=k).astype(float),
        )

    def take(self, drawn: np.ndarray) -> TherapistSums:
        """The sums of the therapists `drawn` (with repeats: a cluster-bootstrap sample)."""
        return TherapistSums(*(getattr(self, f)[drawn] for f in self.__dataclass_fields__))


def relative_factor(theta: np.ndarray, q: int) -> np.ndarray:
    """L (q x q, lower triangular) from theta in lme4's order (column-wise lower triangle)."""
    L = np.zeros((q, q))
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))
    L[rows[order], cols[order]] = theta
    return L


def reml_profile(theta: np.ndarray, sums: TherapistSums) -> dict[str, Any]:
    """The profiled REML deviance at `theta` with the fixed effects, their covariance factor
    and the residual variance (module docstring)."""
    q = sums.zz.shape[1]
    L = relative_factor(np.asarray(theta, dtype=float), q)
    LZZL = np.einsum("ji,gjk,kl->gil", L, sums.zz, L)
    M = np.eye(q)[None, :, :] + LZZL
    chol = np.linalg.cholesky(M)
    logdet_m = 2.0 * float(np.log(np.diagonal(chol, axis1=1, axis2=2)).sum())
    LZX = np.einsum("ji,gjk->gik", L, sums.zx)
    LZy = np.einsum("ji,gj->gi", L, sums.zy)
    solve_x = np.linalg.solve(M, LZX)
    solve_y = np.linalg.solve(M, LZy[:, :, None])[:, :, 0]
    xwx = sums.xx.sum(axis=0) - np.einsum("gik,gil->kl", LZX, solve_x)
    xwy = sums.xy.sum(axis=0) - np.einsum("gik,gi->k", LZX, solve_y)
    ywy = float(sums.yy.sum()) - float(np.einsum("gi,gi->", LZy, solve_y))
    beta = np.linalg.solve(xwx, xwy)
    dof = float(sums.n.sum()) - len(beta)
    sigma2 = (ywy - float(beta @ xwy)) / dof
    _, logdet_x = np.linalg.slogdet(xwx)
    deviance = logdet_m + logdet_x + dof * (1.0 + _LOG_2PI + math.log(sigma2))
    return {
        "deviance": float(deviance),
        "beta": beta,
        "beta_cov": sigma2 * np.linalg.inv(xwx),
        "sigma2": float(sigma2),
        "covariance": sigma2 * (L @ L.T),
    }


def fit_reml(sums: TherapistSums) -> dict[str, Any]:
    """Minimise the profiled REML deviance over theta (module docstring)."""
    q = sums.zz.shape[1]
    rows, cols = np.tril_indices(q)
    order = np.lexsort((rows, cols))
    diagonal = rows[order] == cols[order]
    bounds = [(0.0, None) if d else (None, None) for d in diagonal]
    starts = [np.where(diagonal, 1.0, 0.0), np.where(diagonal, 0.1, 0.0), np.zeros(len(diagonal))]

    def deviance(theta: np.ndarray) -> float:
        return reml_profile(theta, sums)["deviance"]

    if q == 1:
        return _fit_scalar(sums)
    best = None
    for start in starts:
        result = optimize.minimize(deviance, start, method="L-BFGS-B", bounds=bounds)
        if best is None or result.fun < best.fun - 1e-10:
            best = result
    polished = optimize.minimize(deviance, best.x, method="Powell", bounds=bounds)
    if polished.fun < best.fun:
        best = polished
    theta = np.asarray(best.x, dtype=float)
    out = reml_profile(theta, sums)
    out.update(theta=theta, converged=bool(best.success), message=str(best.message))
    out["log_likelihood"] = -0.5 * out["deviance"]
    return out


def _fit_scalar(sums: TherapistSums) -> dict[str, Any]:
    """The intercept model: theta = tau / sigma >= 0 by a bounded scalar search, the boundary
    (theta = 0) kept when no better."""

    def deviance(theta: float) -> float:
        return reml_profile(np.array([theta]), sums)["deviance"]

    result = optimize.minimize_scalar(
        deviance, bounds=(0.0, 100.0), method="bounded", options={"xatol": 1e-10}
    )
    theta = float(result.x) if result.fun <= deviance(0.0) else 0.0
    out = reml_profile(np.array([theta]), sums)
    out.update(theta=np.array([theta]), converged=bool(result.success), message=str(result.message))
    out["log_likelihood"] = -0.5 * out["deviance"]
    return out


def therapist_effects(
    residual: np.ndarray, group: np.ndarray, tau2: float, sigma2: float
) -> list[dict[str, float]]:
    """The therapists' conditional modes (BLUPs) v_j = tau2 sum_i r_ij / (sigma2 + n_j tau2)
    with conditional SEs sqrt(1 / (1 / tau2 + n_j / sigma2)) (the fixed effects taken as
    known, as lme4's condVar), ranked, without therapist ids
    (`accord.models.tidy.ranked_effects`)."""

    n = np.bincount(group).astype(float)
    total = np.bincount(group, weights=residual)
    if tau2 <= 0:
        values, ses = np.zeros(len(n)), np.zeros(len(n))
    else:
        values = tau2 * total / (sigma2 + n * tau2)
        ses = np.sqrt(1.0 / (1.0 / tau2 + n / sigma2))
    return ranked_effects(values, ses, n.astype(int))


def _design(
    client_measures: pd.DataFrame, outcome: str, covariates: Sequence[str], what: str
) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    post, intake = f"{outcome}_post", f"{outcome}_first"
    for column in ("therapist_id", post, intake, *covariates):
        if column not in client_measures.columns:
            raise ConfigError(f"{what}: no column {column!r} in the client measures")
    frame = client_measures[["therapist_id", post, intake, *covariates]].copy()
    for column in (post, intake, *covariates):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    complete = frame.notna().all(axis=1)
    data = frame.loc[complete].reset_index(drop=True)
    data["therapist_id"] = data["therapist_id"].astype(str)
    n_therapists = data["therapist_id"].nunique()
    if n_therapists < MIN_THERAPISTS:
        raise NotEstimableError(
            f"{what}: {n_therapists} therapist(s) with a post score; at least "
            f"{MIN_THERAPISTS} needed to estimate a therapist variance"
        )
    data["intake_centred"] = data[intake] - data[intake].mean()
    terms = ["Intercept", "intake_centred", *covariates]
    info = {
        "clients_without_post": int(frame[post].isna().sum()),
        "rows_excluded_missing": int((~complete).sum()),
        "intake_mean": float(data[intake].mean()),
    }
    return data, terms, info


def _matrices(data: pd.DataFrame, terms: list[str], outcome: str, slope: bool):
    y = data[f"{outcome}_post"].to_numpy(dtype=float)
    X = np.column_stack([np.ones(len(data)), *(data[t].to_numpy(float) for t in terms[1:])])
    Z = X[:, :2] if slope else X[:, :1]
    group, _ = pd.factorize(data["therapist_id"], sort=True)
    return y, X, Z, group


def post_icc_replicates(
    client_measures: pd.DataFrame,
    outcome: str,
    covariates: Sequence[str],
    seed: int,
    replicates: int | Iterable[int],
    *,
    model_id: str = "therapist",
) -> pd.DataFrame:
    """Cluster-bootstrap replicates of the intercept model's variances and ICC (one row per
    replicate: replicate, var_therapist, var_residual, icc_therapist, converged)."""
    data, terms, _ = _design(client_measures, outcome, covariates, f"therapist model {model_id!r}")
    sums = TherapistSums.of(*_matrices(data, terms, outcome, slope=False))
    k = len(sums.n)
    rows = []
    for r in replicate_indices(replicates):
        drawn = replicate_rng(seed, model_id, r).integers(0, k, k)
        try:
            fit = fit_reml(sums.take(drawn))
            tau2, sigma2 = float(fit["covariance"][0, 0]), fit["sigma2"]
            rows.append(
                {
                    "replicate": r,
                    "var_therapist": tau2,
                    "var_residual": sigma2,
                    "icc_therapist": tau2 / (tau2 + sigma2),
                    "converged": fit["converged"],
                }
            )
        except np.linalg.LinAlgError:
            rows.append({"replicate": r, "converged": False})
    frame = pd.DataFrame(rows, columns=["replicate", *REPLICATE_COLUMNS, "converged"])
    frame["replicate"] = frame["replicate"].astype(np.int64)
    frame[REPLICATE_COLUMNS] = frame[REPLICATE_COLUMNS].astype(float)
    frame["converged"] = frame["converged"].astype(bool)
    return frame


def fit_therapist_post(
    client_measures: pd.DataFrame,
    *,
    outcome: str = "phq9",
    covariates: Sequence[str] = (),
    n_boot: int = 200,
    seed: int = 2026,
    model_id: str = "therapist",
    replicates: pd.DataFrame | None = None,
) -> ModelResult:
    """The post-adjusted therapist model, its ICC with a cluster-bootstrap CI, and the slopes
    model's therapist variance in the intake slope (module docstring)."""
    what = f"therapist model {model_id!r}"
    data, terms, info = _design(client_measures, outcome, covariates, what)
    y, X, Z, group = _matrices(data, terms, outcome, slope=False)
    fit = fit_reml(TherapistSums.of(y, X, Z, group))
    slopes = fit_reml(TherapistSums.of(*_matrices(data, terms, outcome, slope=True)))
    tau2, sigma2 = float(fit["covariance"][0, 0]), fit["sigma2"]
    icc = tau2 / (tau2 + sigma2)
    info["therapist_effects"] = therapist_effects(y - X @ fit["beta"], group, tau2, sigma2)
    n_boot = int(n_boot)
    if replicates is not None:
        check_replicates(replicates, n_boot, model_id)
    elif n_boot > 0:
        replicates = post_icc_replicates(
            client_measures, outcome, covariates, seed, n_boot, model_id=model_id
        )
    warn: list[str] = []
    interval = {"sd": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    if n_boot > 0 and replicates is not None:
        kept = replicates.loc[replicates["converged"], "icc_therapist"].to_numpy(float)
        if len(kept) < n_boot:
            warn.append(f"{n_boot - len(kept)} of {n_boot} bootstrap replicate(s) left out")
        if len(kept) >= 2:
            low, high = np.percentile(kept, [2.5, 97.5])
            interval = {"sd": float(kept.std(ddof=1)), "ci_low": float(low), "ci_high": float(high)}
    boundary = tau2 <= 1e-8 * sigma2
    if boundary:
        warn.append("the therapist variance is estimated at zero (boundary)")
    common = {
        "model": model_id,
        "outcome": f"{outcome}_post",
        "exposure": "therapist",
        "n_obs": len(data),
        "n_clients": len(data),
        "converged": fit["converged"],
        "primary": False,
    }
    rows = [
        {**common, "term": term, **wald_from_variance(float(b), float(fit["beta_cov"][i, i]))}
        for i, (term, b) in enumerate(zip(terms, fit["beta"], strict=True))
    ]
    rows.append(
        {**common, "term": "icc_therapist", "estimate": icc, "p_value": math.nan}
        | {
            "std_error": interval["sd"],
            "ci_low": interval["ci_low"],
            "ci_high": interval["ci_high"],
        }
    )
    slope_cov = slopes["covariance"]
    rows.append(
        {
            **common,
            "term": "var_therapist_slope",
            "estimate": float(slope_cov[1, 1]),
            "converged": slopes["converged"],
        }
    )
    return ModelResult(
        model=model_id,
        outcome=f"{outcome}_post",
        exposure="therapist",
        coefficients=coefficient_frame(rows),
        diagnostics=_diagnostics(
            model_id, outcome, terms, data, fit, slopes, warn, n_boot, seed, info
        ),
    )


def _diagnostics(model_id, outcome, terms, data, fit, slopes, warn, n_boot, seed, info):
    tau2, sigma2 = float(fit["covariance"][0, 0]), fit["sigma2"]
    slope_cov = slopes["covariance"]
    sd = np.sqrt(np.clip(np.diag(slope_cov), 0, None))
    correlation = float(slope_cov[0, 1] / (sd[0] * sd[1])) if sd.min() > 0 else math.nan
    fixed = " + ".join(terms[1:])
    return {
        "model": model_id,
        "outcome": f"{outcome}_post",
        "exposure": "therapist",
        "formula": f"{outcome}_post ~ {fixed} + (1 | therapist)",
        "method": "REML",
        "optimizer": "L-BFGS-B, Powell polish (profiled REML deviance)",
        "converged": fit["converged"],
        "warnings": list(dict.fromkeys(warn)),
        "log_likelihood": fit["log_likelihood"],
        "random_effects": {"therapist_intercept": tau2, "residual": sigma2},
        "boundary": bool(tau2 <= 1e-8 * sigma2),
        "boundary_components": ["therapist_intercept"] if tau2 <= 1e-8 * sigma2 else [],
        "n_obs": len(data),
        "n_clients": len(data),
        "n_therapists": int(data["therapist_id"].nunique()),
        "extras": {
            "design": "post score adjusted for intake (clients in therapists)",
            "structure": "therapist random intercept; one row per client with a post score",
            "icc_therapist": tau2 / (tau2 + sigma2),
            "slopes_model": {
                "formula": f"{outcome}_post ~ {fixed} + (1 + intake_centred | therapist)",
                "var_therapist_intercept": float(slope_cov[0, 0]),
                "var_therapist_slope": float(slope_cov[1, 1]),
                "correlation": correlation,
                "var_residual": slopes["sigma2"],
                "log_likelihood": slopes["log_likelihood"],
                "converged": slopes["converged"],
            },
            "bootstrap": {
                "kind": "cluster (therapists drawn with replacement)",
                "replicates": n_boot,
                "seed": seed,
                "replicate_seed": "default_rng([seed, crc32(model id), replicate])",
                "interval": "95% percentile",
            },
            **info,
        },
    }
