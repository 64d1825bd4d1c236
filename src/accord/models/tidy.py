"""The shape every model's results take: a tidy coefficient table plus a diagnostics record.

Estimates are on the model's linear-predictor scale (points of the outcome, log-odds,
log-hazard); odds and hazard ratios have their own columns (`ratio`, `ratio_ci_low`,
`ratio_ci_high`) and are missing for linear models (analyses.md). A mixed model's fixed
effects also carry lmerTest's Satterthwaite degrees of freedom (`df`) and the p-value of
t = estimate / SE on them (`p_satterthwaite`); `p_value` and the CI stay the Wald (normal)
ones, as lme4's ``confint(method = "Wald")``. Both columns are missing for other models.

Files are written through `accord.core.io`: atomically, with floats to 10 significant digits (far
beyond any reported precision, and it keeps the last bits of floating-point noise out of the
bytes, so the same inputs give identical files) and JSON with sorted keys.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accord.core.io import write_csv, write_json

COEFFICIENT_COLUMNS = [
    "model",
    "outcome",
    "exposure",
    "term",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "n_obs",
    "n_clients",
    "converged",
    "primary",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "df",
    "p_satterthwaite",
]

SIGNIFICANT_DIGITS = 10

_FLOAT_COLUMNS = [
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "ratio",
    "ratio_ci_low",
    "ratio_ci_high",
    "df",
    "p_satterthwaite",
]


@dataclass
class ModelResult:
    """One fitted model: its tidy coefficients and what a statistician checks about the fit.

    `diagnostics` holds at least: model, converged, optimizer, warnings (list of str),
    log_likelihood, method, random_effects ({component: variance}), boundary (bool),
    boundary_components (list of str), n_obs, n_clients, n_therapists, formula and extras
    (model-specific results, such as a standardized effect). A mixed model fitted by the
    profiled engine also holds ``r_squared`` (marginal and conditional) and
    ``variance_parameters`` (rows of group, term, estimate, ci_low, ci_high, method: the
    profile intervals of its SDs and correlation, or None when not computed); see
    `accord.models.engine.inference`.
    """

    model: str
    outcome: str
    exposure: str
    coefficients: pd.DataFrame
    diagnostics: dict[str, Any] = field(default_factory=dict)


def coefficient_frame(rows: list[Mapping[str, Any]]) -> pd.DataFrame:
    """A coefficient table with exactly `COEFFICIENT_COLUMNS`, in order, from row mappings.

    Columns a row does not give are missing (NaN), so a linear model need not mention ratios.
    """
    frame = pd.DataFrame(list(rows), columns=COEFFICIENT_COLUMNS)
    for column in _FLOAT_COLUMNS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in ("n_obs", "n_clients"):
        frame[column] = frame[column].astype("Int64")
    for column in ("converged", "primary"):
        frame[column] = frame[column].astype("boolean")
    return frame


def write_model_result(
    result: ModelResult, coefficients_csv: str | Path, diagnostics_json: str | Path
) -> None:
    """Write a model's coefficients (CSV) and diagnostics (JSON), each atomically.

    Floats carry 10 significant digits in both files; JSON keys are sorted, and a missing or
    infinite number becomes ``null`` (JSON has no NaN).
    """
    coefficients = result.coefficients.reindex(columns=COEFFICIENT_COLUMNS)
    write_csv(coefficients_csv, coefficients)
    write_json(diagnostics_json, json_ready(result.diagnostics))


def json_ready(value: Any) -> Any:
    """`value` as plain JSON types: floats rounded to 10 significant digits, NaN as None."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round_significant(float(value))
    if value is None or value is pd.NA:
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def round_significant(x: float, digits: int = SIGNIFICANT_DIGITS) -> float | None:
    """`x` rounded to `digits` significant digits; None for NaN or infinity."""
    if not math.isfinite(x):
        return None
    if x == 0:
        return 0.0
    return float(f"{x:.{digits}g}")


def model_diagnostics(
    *,
    model_id: str,
    outcome: str,
    exposure: str,
    formula: str,
    method: str,
    optimizer: str,
    converged: bool,
    warn: list[str],
    log_likelihood: float,
    n_obs: int,
    n_clients: int,
    n_therapists: int | None,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The diagnostics record of a model without random effects (see `ModelResult`)."""
    return {
        "model": model_id,
        "outcome": outcome,
        "exposure": exposure,
        "formula": formula,
        "method": method,
        "optimizer": optimizer,
        "converged": converged,
        "warnings": list(dict.fromkeys(warn)),
        "log_likelihood": log_likelihood,
        "random_effects": {},
        "boundary": False,
        "boundary_components": [],
        "n_obs": n_obs,
        "n_clients": n_clients,
        "n_therapists": n_therapists,
        "extras": extras,
    }


def capture_fit(fit: Callable[[], Any]) -> tuple[Any, list[str], str | None]:
    """Run `fit`, recording every warning and a numerical failure instead of raising.

    Returns (result or None, warning messages, error message or None): a fit that fails is
    reported as not converged, never silently dropped.
    """
    result, error = None, None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fit()
        except (np.linalg.LinAlgError, ValueError, OverflowError, ZeroDivisionError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return result, messages, error


def wald_from_variance(estimate: float, variance: float) -> dict[str, float]:
    """Estimate, SE, normal 95% CI and two-sided p from an estimate and its sampling variance
    (as statsmodels and lmerTest's Wald columns report mixed-model fixed effects)."""
    from scipy import stats  # here, not at the top: the workflow imports this module to plan

    se = math.sqrt(variance) if math.isfinite(variance) and variance > 0 else math.nan
    z = estimate / se
    z_crit = float(stats.norm.ppf(0.975))
    return {
        "estimate": estimate,
        "std_error": se,
        "ci_low": estimate - z_crit * se,
        "ci_high": estimate + z_crit * se,
        "p_value": float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan,
    }


def ranked_effects(
    values: np.ndarray, ses: np.ndarray, sizes: np.ndarray
) -> list[dict[str, float]]:
    """BLUPs of the therapist intercepts with conditional SEs and each therapist's number of
    clients (so a report can leave out effects from too few clients), sorted, ids dropped."""
    order = np.argsort(values, kind="stable")
    z = 1.959963984540054
    return [
        {
            "rank": rank,
            "effect": float(values[k]),
            "std_error": float(ses[k]),
            "ci_low": float(values[k] - z * ses[k]),
            "ci_high": float(values[k] + z * ses[k]),
            "n_clients": int(sizes[k]),
        }
        for rank, k in enumerate(order, start=1)
    ]
