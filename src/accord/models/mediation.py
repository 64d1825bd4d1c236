"""Mediation: is collaborative goal-setting associated with the outcome through engagement or
the alliance? (analyses.md; Imai, Keele & Tingley 2010, Psychological Methods 15:309, as R's
``mediation::mediate``, with ``boot = TRUE`` or quasi-Bayesian, and ``medsens``)

    mediator model:  m_i = a0 + a x_i + covariates_i + u_i
    outcome model:   y_i = c0 + c' x_i + b m_i + covariates_i + e_i

for client i, exposure x (e.g. joint_goal_share), mediator m and outcome y, the post score
(``<outcome>_post``, or the column named by ``outcome_column``) adjusted for the intake score
(``<outcome>_first`` is always a covariate of both models). The mediator must be measured
BEFORE the outcome: the early-window measures (early_alliance, early_attendance_rate,
early_homework_rate, over the first sessions) are; attendance or homework over the whole
treatment are not. Both models are OLS on complete cases (clients with a post score).

With both models linear and no exposure x mediator interaction, the average causal mediation
effect (ACME, the indirect effect) of moving the exposure from 0 to 1 is a b, the average direct
effect (ADE) c', the total effect a b + c' and the proportion mediated a b / (a b + c'), the
same under control and treatment (R's ``mediate`` simulates potential mediators with one error
draw per client for both conditions, so its ACME is exactly a b). The contrast is one unit of
the exposure as coded: for joint_goal_share, all goals set jointly against none; a two-level
text exposure (e.g. arm) is coded 1 for the level that is not ``exposure_reference``.

Estimates and uncertainty, by one of two methods (option ``method``; `fit_mediation`):

- ``bootstrap``, as ``mediate(..., boot = TRUE)``: the point estimates come from the original
  sample; each of ``n_boot`` replicates draws ONE resample of clients and refits BOTH models
  on it; the 95 % CI is the 2.5 and 97.5 percentiles of the replicates (R's quantile type 7).
  The p-value is two-sided from the replicates' signs, never below its resolution:
  p = min(1, 2 (1 + k) / (1 + B)), k the number of replicates on the far side of zero
  (Davison & Hinkley 1997), so the smallest possible p is 2 / (1 + B).
- ``quasi_bayesian``, as ``mediate(..., boot = FALSE)``, R's default (King, Tomz & Wittenberg
  2000): ``sims`` draws of each model's coefficient vector from the multivariate normal with
  its OLS estimates and classical covariance s^2 (X'X)^-1 (R's ``vcov`` of an ``lm``); per
  draw the ACME is a b, the ADE c', the total a b + c' and the proportion mediated
  a b / (a b + c'). As in R the estimates are the means of the draws (the proportion
  mediated's the median), the 95 % CI their 2.5 and 97.5 percentiles (type 7) and the p-value
  R's ``pval``: 2 min(#draws > 0, #draws < 0) / sims (1 when the estimate is 0), which is 0
  when every draw lies on one side, so the report reads a p at or below 2 / sims as "<=".
  Fitting each model once, it takes seconds on a million clients where the bootstrap refits
  both models n_boot times.
- ``auto`` (the default): the bootstrap in a study of up to
  ``analysis.mediation.bootstrap_max_clients`` clients (rows of the client measures; default
  100,000), the quasi-Bayesian form above (`accord.models.bootstrap.choose_method`; the
  workflow then starts no bootstrap_model jobs). The diagnostics' ``method`` says which and why.

``std_error`` is the SD of the replicates or draws.

Randomness: replicate r draws its resample from its own generator, seeded from (study seed,
model id, r) (`accord.models.bootstrap.replicate_rng`), so the same inputs give identical
results, numpy's global random state is untouched, and `mediation_replicates` can spread the
replicates over jobs (rule bootstrap_model) that `fit_mediation` pools (``replicates=``) with the
same results as drawing every replicate at once. A replicate is the ACME and ADE under control
and treatment (equal here; the columns keep the shape of the general case). The quasi-Bayesian
draws come from one generator seeded from (study seed, model id) (`simulation_rng`).

Sensitivity to sequential ignorability (Imai, Keele & Yamamoto 2010, Statistical Science 25:51,
Theorem 2; R's ``medsens``): with rho the correlation between the errors of the mediator model
and the outcome model (an unmeasured mediator-outcome confounder makes it non-zero),

    ACME(rho) = a sigma_1 / sigma_2 (rho~ - rho sqrt((1 - rho~^2) / (1 - rho^2)))

where sigma_2 is the residual SD of the mediator model, sigma_1 that of the outcome model
without the mediator and rho~ the correlation of their residuals. ACME(rho) is 0 at rho = rho~:
the size of error correlation that would explain the estimate away. The curve is reported on
rho = -0.9, -0.8, ..., 0.9 (medsens' default grid) with rho~ itself.

Reading: the decomposition has a causal reading only under sequential ignorability, which the
data cannot check: no unmeasured confounding of the exposure and the mediator, of the exposure
and the outcome, and of the mediator and the outcome (the last even in a randomised trial).
For an observed exposure the report says "is associated with".

Fit time (one core): 400 clients, 500 replicates, about 0.5 s. 1,000,000 clients (simulated,
one covariate): quasi-Bayesian with 1,000 draws 2-4 s (about 2 s of it building the design
matrices, 0.5 s the covariances and draws); the bootstrap with 500 replicates about 390 s
(0.5 s a replicate).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg
import statsmodels.formula.api as smf

from accord.core.errors import ConfigError
from accord.models.ancova import (
    check_enough_clients,
    client_level_data,
    client_model_diagnostics,
)
from accord.models.bootstrap import (
    BOOTSTRAP_KINDS,
    MethodChoice,
    check_replicates,
    choose_method,
    replicate_indices,
    replicate_rng,
)
from accord.models.spec import DEFAULT_BOOTSTRAP_MAX_CLIENTS, ModelContext, ModelSpec
from accord.models.tidy import ModelResult, capture_fit, coefficient_frame

DEFAULT_N_BOOT = BOOTSTRAP_KINDS["mediation"][0]
#: Quasi-Bayesian draws, R's default sims.
DEFAULT_SIMS = 1000
MIN_BOOT = 50
TERMS = ("acme", "ade", "total_effect", "proportion_mediated")
# A replicate: the ACME and ADE under control (0) and treatment (1).
REPLICATE_COLUMNS = ["acme_control", "acme_treated", "ade_control", "ade_treated"]
#: medsens' default grid of error correlations (rho.by = 0.1).
RHO_GRID = tuple(round(-0.9 + 0.1 * i, 1) for i in range(19))
ASSUMPTIONS = (
    "no unmeasured confounding of the exposure and the mediator",
    "no unmeasured confounding of the exposure and the outcome",
    "no unmeasured confounding of the mediator and the outcome (not even one affected by the "
    "exposure)",
)


@dataclass(frozen=True)
class _Prepared:
    """The complete cases as design matrices of the two models."""

    data: pd.DataFrame
    mediator_formula: str
    outcome_formula: str
    m_y: np.ndarray
    m_x: np.ndarray
    y_y: np.ndarray
    y_x: np.ndarray
    a_col: int
    c_col: int
    b_col: int
    coding: Any
    notes: list[str]
    n_all: int
    n_incomplete: int


def fit_mediation(
    client_measures: pd.DataFrame,
    *,
    mediator: str,
    outcome: str = "phq9",
    outcome_column: str | None = None,
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    model_id: str = "mediation",
    primary: bool = False,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 2026,
    exposure_reference: str | None = None,
    replicates: pd.DataFrame | None = None,
    method: str = "auto",
    sims: int = DEFAULT_SIMS,
    bootstrap_max_clients: int = DEFAULT_BOOTSTRAP_MAX_CLIENTS,
) -> ModelResult:
    """Estimate the ACME, ADE, total effect and proportion mediated (see the module docstring).

    `client_measures` has one row per client with the exposure, `mediator`, the outcome
    column (`outcome_column`, default ``<outcome>_post``), ``<outcome>_first`` and the
    `covariates`. Clients missing any of them are left out and counted. `method` (bootstrap,
    quasi_bayesian or auto) chooses the uncertainty: auto bootstraps when `client_measures`
    has at most `bootstrap_max_clients` rows and draws `sims` quasi-Bayesian draws above.
    Replicate r draws from ``replicate_rng(seed, model_id, r)``; the quasi-Bayesian draws from
    `simulation_rng`. `replicates`, the replicates already drawn (by `mediation_replicates`,
    possibly in several jobs, pooled), replaces the drawing; it must hold replicates
    0 .. n_boot - 1.

    Raises ConfigError for a missing column, a mediator equal to the exposure or the outcome,
    an unknown method, fewer than `MIN_BOOT` replicates or draws, or replicates given to a
    quasi-Bayesian fit; AccordError when fewer than 5 clients have complete data or the
    exposure does not vary.
    """
    y = outcome_column or f"{outcome}_post"
    choice = choose_method(method, len(client_measures), bootstrap_max_clients, model_id=model_id)
    n_draws = _check_draw_counts(choice, int(n_boot), int(sims), model_id, replicates)
    prepared = _prepare(
        client_measures,
        mediator=mediator,
        y=y,
        intake=f"{outcome}_first",
        exposure=exposure,
        covariates=covariates,
        exposure_reference=exposure_reference,
    )
    if replicates is not None:
        check_replicates(replicates, n_draws, model_id)
    result, fit_warnings, error = capture_fit(
        lambda: _paths_and_draws(prepared, choice, replicates, int(seed), model_id, n_draws)
    )
    warn = prepared.notes + fit_warnings + ([f"fit failed: {error}"] if error else [])
    converged = result is not None and not error
    settings = {
        "names": {"model_id": model_id, "outcome": outcome, "exposure": exposure},
        "mediator": mediator,
        "outcome_column": y,
        "primary": primary,
        "setting": method,
        "choice": choice,
        "n_draws": n_draws,
        "seed": int(seed),
        "study_clients": len(client_measures),
        "bootstrap_max_clients": int(bootstrap_max_clients),
    }
    return _mediation_result(
        prepared, client_measures, settings, result if converged else None, warn
    )


def _mediation_result(
    prepared: _Prepared,
    client_measures: pd.DataFrame,
    settings: dict[str, Any],
    result: tuple[dict[str, float], pd.DataFrame] | None,
    warn: list[str],
) -> ModelResult:
    """The coefficient rows and diagnostics of a fit (`result` None when it failed)."""
    names = settings["names"]
    choice = settings["choice"]
    rows, products, sensitivity = _estimates(result, prepared, choice)
    n_obs, converged = len(prepared.data), result is not None
    common = {"model": names["model_id"], "outcome": names["outcome"]}
    common |= {"exposure": names["exposure"], "n_obs": n_obs, "n_clients": n_obs}
    common |= {"converged": converged}
    primary = bool(settings["primary"])
    rows = [{**common, **row, "primary": primary and row["term"] == "acme"} for row in rows]
    diagnostics = client_model_diagnostics(
        **names,
        formula=f"{prepared.mediator_formula}; {prepared.outcome_formula}",
        method=_method(choice, int(settings["n_draws"])),
        optimizer="least squares",
        converged=converged,
        warn=warn,
        llf=math.nan,
        n_obs=n_obs,
        data=prepared.data,
        client_measures=client_measures,
        extras={
            "mediator": settings["mediator"],
            "outcome_column": settings["outcome_column"],
            **_mediation_extras(prepared, settings, products, sensitivity),
        },
    )
    return ModelResult(
        model=names["model_id"],
        outcome=names["outcome"],
        exposure=names["exposure"],
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def _check_draw_counts(
    choice: MethodChoice,
    n_boot: int,
    sims: int,
    model_id: str,
    replicates: pd.DataFrame | None,
) -> int:
    """The number of replicates (bootstrap) or draws (quasi-Bayesian) the fit uses; ConfigError
    for fewer than `MIN_BOOT` of either, or for replicates given to a quasi-Bayesian fit."""
    for name, value in (("n_boot", n_boot), ("sims", sims)):
        if value < MIN_BOOT:
            raise ConfigError(f"mediation model: {name} must be at least {MIN_BOOT}, not {value}")
    if choice.method == "bootstrap":
        return n_boot
    if replicates is not None:
        raise ConfigError(
            f"mediation model {model_id!r}: bootstrap replicates were given to a quasi-Bayesian "
            "fit; the bootstrap jobs and the model's method disagree"
        )
    return sims


def _method(choice: MethodChoice, n_draws: int) -> str:
    """How the effects were estimated and why, for the diagnostics."""
    if choice.method == "quasi_bayesian":
        return (
            f"causal mediation (Imai et al. 2010), OLS models, quasi-Bayesian Monte Carlo "
            f"(King, Tomz & Wittenberg 2000), {n_draws:,} draws of each model's coefficients "
            "from a normal with the OLS estimates and their covariance, estimates the draws' "
            "means (proportion mediated: median), percentile CIs, "
            f"{choice.reason}"
        )
    return (
        f"causal mediation (Imai et al. 2010), OLS models, point estimates from the "
        f"original sample, nonparametric bootstrap n={n_draws} (one resample for both "
        f"models, percentile CIs), {choice.reason}"
    )


def _paths_and_draws(
    prepared: _Prepared,
    choice: MethodChoice,
    replicates: pd.DataFrame | None,
    seed: int,
    model_id: str,
    n_draws: int,
) -> tuple[dict[str, float], pd.DataFrame]:
    """The paths of the original sample, and the draws of the chosen method in order: the
    bootstrap replicates (those given, or drawn here) or the quasi-Bayesian draws."""
    if choice.method == "quasi_bayesian":
        return _paths(prepared, None), quasi_bayesian_draws(prepared, seed, model_id, n_draws)
    return _estimates_and_replicates(prepared, replicates, seed, model_id, n_draws)


def _estimates_and_replicates(
    prepared: _Prepared,
    replicates: pd.DataFrame | None,
    seed: int,
    model_id: str,
    n_boot: int,
) -> tuple[dict[str, float], pd.DataFrame]:
    """The paths of the original sample, and the bootstrap replicates in order (those given,
    or `n_boot` drawn here)."""
    drawn = replicates
    if drawn is None:
        drawn = _draw(prepared, seed, model_id, range(n_boot))
    return _paths(prepared, None), drawn.sort_values("replicate", kind="stable")


def _estimates(
    result: tuple[dict[str, float], pd.DataFrame] | None,
    prepared: _Prepared,
    choice: MethodChoice,
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, Any]]:
    """From the paths and draws (None when the fit failed): the coefficient rows, the
    product of coefficients and the ACME's sensitivity to the mediator-outcome error
    correlation (all empty when the fit failed)."""
    if result is None:
        return [], {}, {}
    paths, drawn = result
    if choice.method == "quasi_bayesian":
        rows = quasi_bayesian_rows(drawn)
    else:
        rows = _rows(paths, drawn, len(drawn))
    return rows, _product_of_coefficients(paths), acme_sensitivity(prepared)


def _product_of_coefficients(paths: dict[str, float]) -> dict[str, float]:
    """The paths a, b and c, and the product-of-coefficients indirect and total effects."""
    return {
        "a_exposure_to_mediator": paths["a"],
        "b_mediator_to_outcome": paths["b"],
        "c_direct": paths["c"],
        "indirect_ab": paths["a"] * paths["b"],
        "total_ab_plus_c": paths["a"] * paths["b"] + paths["c"],
    }


def _mediation_extras(
    prepared: _Prepared,
    settings: dict[str, Any],
    products: dict[str, float],
    sensitivity: dict[str, Any],
) -> dict[str, Any]:
    """The two models' formulas, the exposure coding, the method and its settings, the product
    of coefficients, the sensitivity analysis, the assumptions and the clients left out."""
    choice: MethodChoice = settings["choice"]
    n_draws = int(settings["n_draws"])
    if choice.method == "quasi_bayesian":
        draws = {
            "sims": n_draws,
            "draw_seed": "default_rng([seed, crc32(model id)])",
            # R's pval is 0 when every draw lies on one side of zero: read as <= 2 / sims.
            "p_value_resolution": 2.0 / n_draws,
        }
    else:
        draws = {
            "n_boot": n_draws,
            "replicate_seed": "default_rng([seed, crc32(model id), replicate])",
            "p_value_resolution": 2.0 / (1 + n_draws),
        }
    return {
        "mediator_formula": prepared.mediator_formula,
        "outcome_formula": prepared.outcome_formula,
        "exposure_coding": prepared.coding,
        "contrast": "exposure 1 vs 0 (as coded)",
        "uncertainty": {
            "setting": settings["setting"],
            "method": choice.method,
            "reason": choice.reason,
            "study_clients": int(settings["study_clients"]),
            # analysis.mediation.bootstrap_max_clients (a setting, not a count of clients)
            "threshold": int(settings["bootstrap_max_clients"]),
        },
        "seed": int(settings["seed"]),
        **draws,
        "product_of_coefficients": products,
        "sensitivity": sensitivity,
        "assumptions": list(ASSUMPTIONS),
        "clients_in_input": prepared.n_all,
        "clients_excluded_missing": prepared.n_incomplete,
    }


def _effect_draws(drawn: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per replicate or draw: the ACME and ADE (averaged over control and treatment, as R's
    d.avg and z.avg), the total effect and the proportion mediated (R's tau and nu.avg)."""
    acme_r = (drawn["acme_control"] + drawn["acme_treated"]).to_numpy(float) / 2
    ade_r = (drawn["ade_control"] + drawn["ade_treated"]).to_numpy(float) / 2
    total_r = acme_r + ade_r
    with np.errstate(divide="ignore", invalid="ignore"):
        prop_r = acme_r / total_r
    return {"acme": acme_r, "ade": ade_r, "total_effect": total_r, "proportion_mediated": prop_r}


def _rows(paths: dict[str, float], drawn: pd.DataFrame, n_boot: int) -> list[dict[str, Any]]:
    effects = _effect_draws(drawn)
    acme = paths["a"] * paths["b"]
    total = acme + paths["c"]
    point = {
        "acme": acme,
        "ade": paths["c"],
        "total_effect": total,
        "proportion_mediated": acme / total if total != 0 else math.nan,
    }
    return [
        _summary_row(term, point[term], effects[term], bootstrap_p_value(effects[term], n_boot))
        for term in TERMS
    ]


def _summary_row(term: str, estimate: float, draws: np.ndarray, p: float) -> dict[str, Any]:
    """One coefficient row: the estimate, the draws' SD and 2.5 and 97.5 percentiles (R's
    quantile type 7, draws that are not a number left out as by na.rm) and the p-value."""
    low, high = np.nanquantile(draws, [0.025, 0.975])
    return {
        "term": term,
        "estimate": float(estimate),
        "std_error": float(np.std(draws, ddof=1)),
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": float(p),
    }


def bootstrap_p_value(draws: np.ndarray, n_boot: int) -> float:
    """Two-sided p from the replicates' signs: min(1, 2 (1 + k) / (1 + B)), k the replicates on
    the smaller side of zero."""
    k = min(int(np.sum(draws >= 0)), int(np.sum(draws <= 0)))
    return float(min(1.0, 2.0 * (1 + k) / (1 + n_boot)))


def simulation_rng(seed: int, model_id: str) -> np.random.Generator:
    """The generator of a model's quasi-Bayesian draws: ``default_rng([seed, crc32(model
    id)])``, a stream of its own beside the bootstrap replicates' (`replicate_rng`)."""
    return np.random.default_rng([int(seed), zlib.crc32(model_id.encode("utf-8"))])


def ols_covariance(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients and their classical covariance s^2 (X'X)^-1 with s^2 = RSS / (n - p),
    R's ``vcov`` of an ``lm``, from the QR decomposition X = QR ((X'X)^-1 = R^-1 R^-T).

    Raises LinAlgError for a rank-deficient design (R's mediate stops on NA coefficients) or
    no residual degrees of freedom."""
    n, p = x.shape
    if n <= p:
        raise np.linalg.LinAlgError(f"{n} clients leave no residual degrees of freedom")
    q, r = np.linalg.qr(x)
    if np.linalg.matrix_rank(r) < p:
        raise np.linalg.LinAlgError("the design is rank-deficient (collinear columns)")
    r_inv = scipy.linalg.solve_triangular(r, np.eye(p))
    beta = r_inv @ (q.T @ y)
    residuals = y - x @ beta
    s2 = float(residuals @ residuals) / (n - p)
    return beta, s2 * (r_inv @ r_inv.T)


def quasi_bayesian_draws(prepared: _Prepared, seed: int, model_id: str, sims: int) -> pd.DataFrame:
    """`sims` quasi-Bayesian draws (King, Tomz & Wittenberg 2000), as ``mediate(boot = FALSE)``:
    each model's coefficient vector drawn from the normal with its OLS estimates and classical
    covariance (`ols_covariance`), the mediator model's first, from `simulation_rng`. With
    both models linear and no interaction, R's per-draw ACME, the mean over clients of
    Y(t, M(1)) - Y(t, M(0)) with simulated mediators M(t) = X(t) alpha + e, is exactly
    a b (the error e is shared by M(1) and M(0) and cancels, so it is not drawn), and its ADE
    c'. Returns one row per draw: draw, acme_control, acme_treated, ade_control, ade_treated."""
    rng = simulation_rng(seed, model_id)
    m_beta, m_cov = ols_covariance(prepared.m_x, prepared.m_y)
    y_beta, y_cov = ols_covariance(prepared.y_x, prepared.y_y)
    m_draws = rng.multivariate_normal(m_beta, m_cov, size=sims, method="eigh")
    y_draws = rng.multivariate_normal(y_beta, y_cov, size=sims, method="eigh")
    acme = m_draws[:, prepared.a_col] * y_draws[:, prepared.b_col]
    ade = y_draws[:, prepared.c_col]
    frame = pd.DataFrame(
        {
            "draw": np.arange(sims, dtype=np.int64),
            "acme_control": acme,
            "acme_treated": acme,
            "ade_control": ade,
            "ade_treated": ade,
        }
    )
    return frame


def quasi_bayesian_rows(drawn: pd.DataFrame) -> list[dict[str, Any]]:
    """The coefficient rows from quasi-Bayesian draws, as R's mediate with boot = FALSE: each
    effect's estimate is the mean of its draws (the proportion mediated's the median), its CI
    the 2.5 and 97.5 percentiles and its p-value R's `r_p_value` around that estimate."""
    effects = _effect_draws(drawn)
    rows = []
    for term in TERMS:
        draws = effects[term]
        summary = np.median if term == "proportion_mediated" else np.mean
        estimate = float(summary(draws))
        rows.append(_summary_row(term, estimate, draws, r_p_value(draws, estimate)))
    return rows


def r_p_value(draws: np.ndarray, estimate: float) -> float:
    """R mediation's ``pval``: 1 when the estimate is 0, else min(1, 2 min(#draws > 0,
    #draws < 0) / #draws). It is 0 when every draw lies on one side of zero; the report reads
    a p at or below 2 / #draws as "<=" that."""
    if estimate == 0:
        return 1.0
    k = min(int(np.sum(draws > 0)), int(np.sum(draws < 0)))
    return float(min(1.0, 2.0 * k / len(draws)))


def acme_sensitivity(prepared: _Prepared, grid: Sequence[float] = RHO_GRID) -> dict[str, Any]:
    """ACME as a function of the error correlation rho (module docstring) and the rho at which
    the ACME is 0."""
    m_fit = _ols(prepared.m_x, prepared.m_y)
    reduced_x = np.delete(prepared.y_x, prepared.b_col, axis=1)
    y_fit = _ols(reduced_x, prepared.y_y)
    u, e = m_fit["residuals"], y_fit["residuals"]
    sigma_m, sigma_y = float(np.std(u, ddof=1)), float(np.std(e, ddof=1))
    rho_tilde = float(np.corrcoef(u, e)[0, 1])
    a = float(m_fit["beta"][prepared.a_col])

    def acme(rho: float) -> float:
        root = math.sqrt((1 - rho_tilde**2) / (1 - rho**2))
        return a * sigma_y / sigma_m * (rho_tilde - rho * root)

    return {
        "rho_at_zero_acme": rho_tilde,
        "r2_product_at_zero_acme": rho_tilde**2,
        "curve": [{"rho": float(r), "acme": acme(float(r))} for r in grid],
        "method": "Imai, Keele & Yamamoto (2010) Theorem 2, as medsens",
    }


def mediation_replicates(
    client_measures: pd.DataFrame,
    *,
    mediator: str,
    replicates: int | Iterable[int],
    outcome: str = "phq9",
    outcome_column: str | None = None,
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    model_id: str = "mediation",
    seed: int = 2026,
    exposure_reference: str | None = None,
) -> pd.DataFrame:
    """Bootstrap replicates of the mediation analysis `fit_mediation` would draw.

    `replicates` is the number of replicates (0 .. n - 1) or the replicate indices to draw;
    replicate r uses ``replicate_rng(seed, model_id, r)``, so any split of the indices over
    jobs, pooled, gives the same table as drawing them all at once. Returns one row per
    replicate: replicate, acme_control, acme_treated, ade_control, ade_treated.
    """
    prepared = _prepare(
        client_measures,
        mediator=mediator,
        y=outcome_column or f"{outcome}_post",
        intake=f"{outcome}_first",
        exposure=exposure,
        covariates=covariates,
        exposure_reference=exposure_reference,
    )
    return _draw(prepared, seed, model_id, replicate_indices(replicates))


def _prepare(
    client_measures: pd.DataFrame,
    *,
    mediator: str,
    y: str,
    intake: str,
    exposure: str,
    covariates: Sequence[str],
    exposure_reference: str | None,
) -> _Prepared:
    if mediator in (exposure, y):
        raise ConfigError(f"mediation model: the mediator {mediator!r} is the exposure or outcome")
    wanted = [intake, *covariates] if intake in client_measures.columns else list(covariates)
    covariates = [c for c in dict.fromkeys(wanted) if c not in (exposure, mediator, y)]
    columns = [y, exposure, mediator, *covariates]
    data, coding = client_level_data(
        client_measures,
        columns,
        exposure=exposure,
        exposure_reference=exposure_reference,
        model_name="mediation model",
    )
    if not pd.api.types.is_numeric_dtype(data[mediator]) or not pd.api.types.is_numeric_dtype(
        data[y]
    ):
        raise ConfigError("mediation model: the mediator and the outcome must be numeric")
    n_all = len(data)
    complete = data[columns].notna().all(axis=1)
    n_incomplete = int((~complete).sum())
    data = data.loc[complete].reset_index(drop=True)
    check_enough_clients(data, exposure, "mediation model")
    notes = []
    if n_incomplete:
        notes.append(f"{n_incomplete} client(s) left out for missing data (complete cases)")
    rhs = [
        c if pd.api.types.is_numeric_dtype(data[c]) else f"C({c})" for c in [exposure, *covariates]
    ]
    m_formula = f"{mediator} ~ {' + '.join(rhs)}"
    y_formula = f"{y} ~ {' + '.join([rhs[0], mediator, *rhs[1:]])}"
    m_model, y_model = smf.ols(m_formula, data), smf.ols(y_formula, data)
    m_names, y_names = list(m_model.exog_names), list(y_model.exog_names)
    return _Prepared(
        data=data,
        mediator_formula=m_formula,
        outcome_formula=y_formula,
        m_y=np.asarray(m_model.endog, float),
        m_x=np.asarray(m_model.exog, float),
        y_y=np.asarray(y_model.endog, float),
        y_x=np.asarray(y_model.exog, float),
        a_col=m_names.index(exposure),
        c_col=y_names.index(exposure),
        b_col=y_names.index(mediator),
        coding=coding,
        notes=notes,
        n_all=n_all,
        n_incomplete=n_incomplete,
    )


def _ols(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    return {"beta": beta, "residuals": y - x @ beta}


def _paths(prepared: _Prepared, rows: np.ndarray | None) -> dict[str, float]:
    """a, b and c' from both models fitted on the same clients (`rows`; None = all)."""
    take = slice(None) if rows is None else rows
    m_beta = _ols(prepared.m_x[take], prepared.m_y[take])["beta"]
    y_beta = _ols(prepared.y_x[take], prepared.y_y[take])["beta"]
    return {
        "a": float(m_beta[prepared.a_col]),
        "b": float(y_beta[prepared.b_col]),
        "c": float(y_beta[prepared.c_col]),
    }


def _draw(prepared: _Prepared, seed: int, model_id: str, indices: Iterable[int]) -> pd.DataFrame:
    """Replicates `indices`: one resample of clients each, both models refitted on it."""
    n = len(prepared.data)
    rows = []
    for r in indices:
        resample = replicate_rng(seed, model_id, r).integers(0, n, n)
        paths = _paths(prepared, resample)
        acme, ade = paths["a"] * paths["b"], paths["c"]
        rows.append(
            {
                "replicate": int(r),
                "acme_control": acme,
                "acme_treated": acme,
                "ade_control": ade,
                "ade_treated": ade,
            }
        )
    frame = pd.DataFrame(rows, columns=["replicate", *REPLICATE_COLUMNS])
    frame["replicate"] = frame["replicate"].astype(np.int64)
    frame[REPLICATE_COLUMNS] = frame[REPLICATE_COLUMNS].astype(float)
    return frame


def fit_mediation_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    replicates: pd.DataFrame | None = None,
) -> ModelResult:
    """`fit_mediation` for a model declared in config (options: mediator (required),
    outcome_column (default ``<outcome>_post``), method (bootstrap, quasi_bayesian or auto, the
    default), n_boot, sims, exposure_reference; the seed is the study seed and auto's threshold
    ``analysis.mediation.bootstrap_max_clients``). The session panel is not used.
    `replicates`: the pooled replicate tables of the model's bootstrap jobs, if drawn there."""
    return fit_mediation(
        client_measures,
        mediator=_mediator_option(spec),
        outcome=spec.outcome,
        outcome_column=spec.options.get("outcome_column"),
        exposure=spec.exposure,
        covariates=spec.covariates,
        model_id=spec.id,
        primary=spec.primary,
        n_boot=int(spec.options.get("n_boot", DEFAULT_N_BOOT)),
        seed=context.seed,
        exposure_reference=spec.options.get("exposure_reference"),
        replicates=replicates,
        method=spec.options.get("method", "auto"),
        sims=int(spec.options.get("sims", DEFAULT_SIMS)),
        bootstrap_max_clients=context.mediation_bootstrap_max_clients,
    )


def mediation_replicates_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    replicates: range,
) -> pd.DataFrame:
    """`mediation_replicates` for one chunk of a model declared in config."""
    return mediation_replicates(
        client_measures,
        mediator=_mediator_option(spec),
        replicates=replicates,
        outcome=spec.outcome,
        outcome_column=spec.options.get("outcome_column"),
        exposure=spec.exposure,
        covariates=spec.covariates,
        model_id=spec.id,
        seed=context.seed,
        exposure_reference=spec.options.get("exposure_reference"),
    )


def _mediator_option(spec: ModelSpec) -> str:
    mediator = spec.options.get("mediator")
    if not mediator:
        raise ConfigError(f"models: {spec.id}: a mediation model needs options.mediator")
    return str(mediator)
