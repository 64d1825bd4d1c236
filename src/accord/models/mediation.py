"""Mediation: is collaborative goal-setting associated with the outcome through engagement or
the alliance? (analyses.md; Imai, Keele & Tingley 2010, Psychological Methods 15:309, as R's
``mediation::mediate`` with ``boot = TRUE`` and ``medsens``)

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

Estimates and uncertainty, as ``mediate(..., boot = TRUE)``: the point estimates come from the
original sample; each of ``n_boot`` replicates draws ONE resample of clients and refits BOTH
models on it; the 95 % CI is the 2.5 and 97.5 percentiles of the replicates (R's quantile type
7). The p-value is two-sided from the replicates' signs, never below its resolution:
p = min(1, 2 (1 + k) / (1 + B)), k the number of replicates on the far side of zero (Davison &
Hinkley 1997), so the smallest possible p is 2 / (1 + B). ``std_error`` is the replicates' SD.

Randomness: replicate r draws its resample from its own generator, seeded from (study seed,
model id, r) (`accord.models.bootstrap.replicate_rng`), so the same inputs give identical
results, numpy's global random state is untouched, and `mediation_replicates` can spread the
replicates over jobs (rule bootstrap_model) that `fit_mediation` pools (``replicates=``) with the
same results as drawing every replicate at once. A replicate is the ACME and ADE under control
and treatment (equal here; the columns keep the shape of the general case).

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

Fit time (400 clients, 500 replicates, one core): about 0.5 s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from accord.core.errors import ConfigError
from accord.models.ancova import (
    check_enough_clients,
    client_level_data,
    client_model_diagnostics,
)
from accord.models.bootstrap import (
    BOOTSTRAP_KINDS,
    check_replicates,
    replicate_indices,
    replicate_rng,
)
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, capture_fit, coefficient_frame

DEFAULT_N_BOOT = BOOTSTRAP_KINDS["mediation"][0]
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
) -> ModelResult:
    """Estimate the ACME, ADE, total effect and proportion mediated (see the module docstring).

    `client_measures` has one row per client with the exposure, `mediator`, the outcome
    column (`outcome_column`, default ``<outcome>_post``), ``<outcome>_first`` and the
    `covariates`. Clients missing any of them are left out and counted. Replicate r draws from
    ``replicate_rng(seed, model_id, r)``. `replicates`, the replicates already drawn (by
    `mediation_replicates`, possibly in several jobs, pooled), replaces the drawing; it must
    hold replicates 0 .. n_boot - 1.

    Raises ConfigError for a missing column, a mediator equal to the exposure or the outcome,
    or fewer than `MIN_BOOT` replicates; AccordError when fewer than 5 clients have complete
    data or the exposure does not vary.
    """
    y = outcome_column or f"{outcome}_post"
    if n_boot < MIN_BOOT:
        raise ConfigError(f"mediation model: n_boot must be at least {MIN_BOOT}, not {n_boot}")
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
        check_replicates(replicates, int(n_boot), model_id)
    result, fit_warnings, error = capture_fit(
        lambda: _estimates_and_replicates(prepared, replicates, seed, model_id, int(n_boot))
    )
    warn = prepared.notes + fit_warnings + ([f"fit failed: {error}"] if error else [])
    converged = result is not None and not error
    rows, products, sensitivity = _estimates(result if converged else None, prepared, int(n_boot))
    n_obs = len(prepared.data)
    common = {"model": model_id, "outcome": outcome, "exposure": exposure}
    common |= {"n_obs": n_obs, "n_clients": n_obs, "converged": converged}
    rows = [{**common, **row, "primary": bool(primary and row["term"] == "acme")} for row in rows]
    diagnostics: dict[str, Any] = client_model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=f"{prepared.mediator_formula}; {prepared.outcome_formula}",
        method=_method(int(n_boot)),
        optimizer="least squares",
        converged=converged,
        warn=warn,
        llf=math.nan,
        n_obs=n_obs,
        data=prepared.data,
        client_measures=client_measures,
        extras={
            "mediator": mediator,
            "outcome_column": y,
            **_mediation_extras(prepared, int(n_boot), int(seed), products, sensitivity),
        },
    )
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=exposure,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def _method(n_boot: int) -> str:
    """How the effects were estimated, for the diagnostics."""
    return (
        f"causal mediation (Imai et al. 2010), OLS models, point estimates from the "
        f"original sample, nonparametric bootstrap n={n_boot} (one resample for both "
        "models, percentile CIs)"
    )


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
    result: tuple[dict[str, float], pd.DataFrame] | None, prepared: _Prepared, n_boot: int
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, Any]]:
    """From the paths and replicates (None when the fit failed): the coefficient rows, the
    product of coefficients and the ACME's sensitivity to the mediator-outcome error
    correlation (all empty when the fit failed)."""
    if result is None:
        return [], {}, {}
    paths, drawn = result
    rows = _rows(paths, drawn, n_boot)
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
    n_boot: int,
    seed: int,
    products: dict[str, float],
    sensitivity: dict[str, Any],
) -> dict[str, Any]:
    """The two models' formulas, the exposure coding, the bootstrap's settings, the product of
    coefficients, the sensitivity analysis, the assumptions and the clients left out."""
    return {
        "mediator_formula": prepared.mediator_formula,
        "outcome_formula": prepared.outcome_formula,
        "exposure_coding": prepared.coding,
        "contrast": "exposure 1 vs 0 (as coded)",
        "n_boot": n_boot,
        "seed": seed,
        "replicate_seed": "default_rng([seed, crc32(model id), replicate])",
        "p_value_resolution": 2.0 / (1 + n_boot),
        "product_of_coefficients": products,
        "sensitivity": sensitivity,
        "assumptions": list(ASSUMPTIONS),
        "clients_in_input": prepared.n_all,
        "clients_excluded_missing": prepared.n_incomplete,
    }


def _rows(paths: dict[str, float], drawn: pd.DataFrame, n_boot: int) -> list[dict[str, Any]]:
    acme_r = (drawn["acme_control"] + drawn["acme_treated"]).to_numpy(float) / 2
    ade_r = (drawn["ade_control"] + drawn["ade_treated"]).to_numpy(float) / 2
    total_r = acme_r + ade_r
    with np.errstate(divide="ignore", invalid="ignore"):
        prop_r = acme_r / total_r
    acme = paths["a"] * paths["b"]
    total = acme + paths["c"]
    estimates = {
        "acme": (acme, acme_r),
        "ade": (paths["c"], ade_r),
        "total_effect": (total, total_r),
        "proportion_mediated": (acme / total if total != 0 else math.nan, prop_r),
    }
    rows = []
    for term in TERMS:
        estimate, draws = estimates[term]
        low, high = np.quantile(draws, [0.025, 0.975])
        rows.append(
            {
                "term": term,
                "estimate": float(estimate),
                "std_error": float(np.std(draws, ddof=1)),
                "ci_low": float(low),
                "ci_high": float(high),
                "p_value": bootstrap_p_value(draws, n_boot),
            }
        )
    return rows


def bootstrap_p_value(draws: np.ndarray, n_boot: int) -> float:
    """Two-sided p from the replicates' signs: min(1, 2 (1 + k) / (1 + B)), k the replicates on
    the smaller side of zero."""
    k = min(int(np.sum(draws >= 0)), int(np.sum(draws <= 0)))
    return float(min(1.0, 2.0 * (1 + k) / (1 + n_boot)))


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
    outcome_column (default ``<outcome>_post``), n_boot, exposure_reference; the seed is the
    study seed). The session panel
    is not used. `replicates`: the pooled replicate tables of the model's bootstrap jobs, if
    drawn there."""
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
