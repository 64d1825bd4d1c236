"""Goal-level attainment: are goals set jointly, and goals meeting SMART criteria, attained more?

One row per goal (goals nested in clients, clients in therapists). The goal's attainment is

* ``gas_level``: its GAS level (-2..2) at the goal's last rating (the measures table's ``gas``
  rows, item = goal_id), modelled as a number by a linear mixed model (REML, the profiled
  engine of accord.models.engine.lmm, as lme4's ``lmer(gas_level ~ x + (1 | therapist) +
  (1 | client))``) with random intercepts per client and per therapist, or per client alone
  where there are no therapists;
* ``achieved``: goal status achieved, by GEE (binomial, logit link, exchangeable correlation,
  clustered by client, robust SEs; statsmodels' estimator, computed a whole table at a time by
  accord.models.gee), odds ratios in the ratio columns.

Predictors (all recorded when the goal was set, so none follows from attainment): who set the
goal (``set_by``, coded against ``client``: terms ``set_by[joint]`` and
``set_by[therapist]``), each SMART criterion (0/1), importance agreement
(1 - |client_importance - therapist_importance| / 4, as goal_agreement in measures.md) and
set_session. Goals with a missing predictor or outcome are left out and counted. Estimates are
associations: who set a goal was not randomised.

Role for multiplicity: secondary by default, so the two set_by terms (the exposure effect,
who set the goal) join the Benjamini-Hochberg family; the default plan fits GAS levels as the
secondary model and goal status achieved as its sensitivity analysis (the same question on
another outcome). SMART and the other predictors are adjustment terms, not tests.

Fit time (400 clients, about 1,200 goals): under a second for each outcome; at a million
clients the achieved model's job, reading its tables included, takes under two minutes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from accord.core.errors import AccordError, ConfigError, NotEstimableError
from accord.models.gee import fit_exchangeable_logistic
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import (
    ModelResult,
    capture_fit,
    coefficient_frame,
    model_diagnostics,
    wald_from_variance,
)

SMART = ("specific", "measurable", "achievable", "relevant", "time_bound")
SET_BY_LEVELS = ("client", "joint", "therapist")
PREDICTORS = (
    "set_by[joint]",
    "set_by[therapist]",
    *(f"smart_{c}" for c in SMART),
    "importance_agreement",
    "set_session",
)
OUTCOMES = ("gas_level", "achieved")


def last_gas_levels(measures: pd.DataFrame, instrument: str = "gas") -> pd.Series:
    """Each goal's GAS level at its last rated session (index client_id, goal_id)."""
    rows = measures.loc[
        (measures["instrument"] == instrument) & measures["value"].notna(),
        ["client_id", "item", "session_number", "value"],
    ].astype({"client_id": str, "item": str})
    rows = rows.sort_values(["client_id", "item", "session_number"], kind="stable")
    last = rows.groupby(["client_id", "item"], sort=True)["value"].last().astype(float)
    last.index.names = ["client_id", "goal_id"]
    return last.rename("gas_level")


def goal_level_table(
    goals: pd.DataFrame,
    measures: pd.DataFrame | None = None,
    therapists: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per goal with its attainment and the predictors (module docstring).

    `therapists` maps client_id to therapist_id (e.g. the client measures' column)."""
    for column in ("client_id", "goal_id", "set_by", "set_session"):
        if column not in goals.columns:
            raise ConfigError(f"goal attainment: the goals table has no column {column!r}")
    table = goals[["client_id", "goal_id"]].astype(str).copy()
    set_by = goals["set_by"].astype(str)
    unknown = sorted(set(set_by) - set(SET_BY_LEVELS))
    if unknown:
        raise ConfigError(f"goal attainment: unknown set_by value(s) {unknown}")
    table["set_by[joint]"] = (set_by == "joint").astype(float)
    table["set_by[therapist]"] = (set_by == "therapist").astype(float)
    for criterion in SMART:
        column = f"smart_{criterion}"
        values = goals[column] if column in goals.columns else pd.Series(np.nan, goals.index)
        table[column] = values.astype("boolean").astype("Float64").astype(float)
    importance = [goals.get(c) for c in ("client_importance", "therapist_importance")]
    if all(i is not None for i in importance):
        gap = pd.to_numeric(importance[0], errors="coerce") - pd.to_numeric(importance[1])
        table["importance_agreement"] = 1 - gap.abs().astype(float) / 4
    else:
        table["importance_agreement"] = np.nan
    table["set_session"] = pd.to_numeric(goals["set_session"], errors="coerce").astype(float)
    status = goals["status"] if "status" in goals.columns else pd.Series(pd.NA, goals.index)
    table["achieved"] = np.where(status.isna(), np.nan, (status == "achieved").astype(float))
    if measures is not None:
        levels = last_gas_levels(measures)
        table["gas_level"] = levels.reindex(
            pd.MultiIndex.from_frame(table[["client_id", "goal_id"]])
        ).to_numpy()
    else:
        table["gas_level"] = np.nan
    if therapists is not None:
        table["therapist_id"] = table["client_id"].map(therapists.astype(str))
    return table.reset_index(drop=True)


def _usable_predictors(
    frame: pd.DataFrame, predictors: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The predictors that vary among the goals, and notes on those left out."""
    kept, notes = [], []
    for name in predictors:
        values = frame[name]
        if values.isna().all():
            notes.append(f"{name} not recorded: left out of the model")
        elif values.dropna().nunique() < 2:
            notes.append(f"{name} does not vary: left out of the model")
        else:
            kept.append(name)
    return kept, notes


def _fit_gas_levels(
    data: pd.DataFrame, predictors: list[str]
) -> tuple[Any, list[str], str | None, dict]:
    """Profiled REML (accord.models.engine.lmm) of gas_level with a client random intercept and,
    where every goal's client has a therapist, a therapist random intercept."""
    from accord.models.engine.lmm import fit_lmm

    names = ["Intercept", *predictors]
    y = data["gas_level"].to_numpy(float)
    x = np.column_stack([np.ones(len(data)), data[predictors].to_numpy(float)])
    client = data["client_id"].astype(str).to_numpy()
    therapist = None
    if "therapist_id" in data.columns and data["therapist_id"].notna().all():
        therapist = data["therapist_id"].astype(str).to_numpy()

    def fit(with_therapist: bool) -> Any:
        return fit_lmm(
            y,
            x,
            client,
            therapist=therapist if with_therapist else None,
            client_effects="intercept",
            reml=True,
            fe_names=names,
        )

    fitted, warn, error = capture_fit(lambda: fit(therapist is not None))
    if fitted is None and therapist is not None:
        warn.append(f"fitted without a therapist intercept ({error})")
        fitted, more, error = capture_fit(lambda: fit(False))
        warn += more
    return fitted, warn, error, {"names": {n: n for n in names}}


def _fit_achieved(
    data: pd.DataFrame, predictors: list[str]
) -> tuple[Any, list[str], str | None, dict]:
    """GEE (binomial, exchangeable, clustered by client) of achieved."""
    x = data[predictors].astype(float)
    x.insert(0, "Intercept", 1.0)
    groups = pd.factorize(data["client_id"])[0]
    fitted, warn, error = capture_fit(
        lambda: fit_exchangeable_logistic(data["achieved"], x, groups, maxiter=100)
    )
    return fitted, warn, error, {"names": {c: c for c in x.columns}}


def fit_goal_attainment(
    table: pd.DataFrame,
    *,
    outcome: str = "gas_level",
    predictors: Sequence[str] = PREDICTORS,
    model_id: str = "goal_attainment",
    exposure: str = "set_by",
) -> ModelResult:
    """Attainment of each goal in `table` (from `goal_level_table`) on `predictors`: the
    mixed model for ``gas_level``, GEE for ``achieved`` (module docstring). Raises ConfigError
    for an unknown outcome and NotEstimableError when fewer than 20 goals or 5 clients remain."""
    if outcome not in OUTCOMES:
        raise ConfigError(f"goal attainment: outcome must be one of {OUTCOMES}, not {outcome!r}")
    what = f"goal attainment model {model_id!r}"
    kept, warn = _usable_predictors(table, predictors)
    complete = table[[outcome, *kept]].notna().all(axis=1)
    data = table.loc[complete].reset_index(drop=True)
    n_clients = int(data["client_id"].nunique())
    if len(data) < 20 or n_clients < 5:
        raise NotEstimableError(
            f"{what}: only {len(data)} goal(s) of {n_clients} client(s) with {outcome}; "
            "at least 20 goals of 5 clients needed"
        )
    if int((~complete).sum()):
        warn.append(f"{int((~complete).sum())} goal(s) without {outcome} or a predictor left out")
    fit = _fit_gas_levels if outcome == "gas_level" else _fit_achieved
    fitted, fit_warn, error, info = fit(data, kept)
    if fitted is None:
        raise AccordError(f"{what}: the fit failed ({error})")
    warn += fit_warn
    linear = outcome == "gas_level"
    converged, rows = _coefficient_rows(fitted, info, linear)
    n_therapists = int(data["therapist_id"].nunique()) if "therapist_id" in data.columns else None
    shared = {
        "model": model_id,
        "outcome": outcome,
        "exposure": exposure,
        "n_obs": len(data),
        "n_clients": n_clients,
        "converged": converged,
        "primary": False,
    }
    rows = [{**shared, **row} for row in rows]
    diagnostics = model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=f"{outcome} ~ " + " + ".join(kept),
        method="REML linear mixed model" if linear else "GEE binomial, exchangeable, by client",
        optimizer="L-BFGS-B (profiled deviance)" if linear else "GEE iterations",
        converged=converged,
        warn=warn,
        log_likelihood=float(fitted.log_likelihood) if linear else math.nan,
        n_obs=len(data),
        n_clients=n_clients,
        n_therapists=n_therapists,
        extras={"goals_left_out": int((~complete).sum()), "unit": "goal"},
    )
    if linear:
        diagnostics["random_effects"] = _variances(fitted)
        boundary = [k for k, v in diagnostics["random_effects"].items() if v < 1e-6]
        diagnostics["boundary"], diagnostics["boundary_components"] = bool(boundary), boundary
    else:
        diagnostics["extras"]["working_correlation"] = fitted.working_correlation
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=exposure,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def _coefficient_rows(fitted: Any, info: dict, linear: bool) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the fit converged, and one Wald row per term (odds ratios in the
    ratio columns of a logistic fit)."""
    if linear:
        params = pd.Series(fitted.fe_params, index=fitted.fe_names)
        cov = pd.DataFrame(fitted.fe_cov, index=params.index, columns=params.index)
    else:
        params = fitted.params
        cov = fitted.cov_params().loc[params.index, params.index]
    converged = bool(getattr(fitted, "converged", True) and np.all(np.isfinite(params)))
    rows = []
    for raw in params.index:
        values = wald_from_variance(float(params[raw]), float(cov.loc[raw, raw]))
        term = info["names"][raw]
        row = {"term": term, **values}
        if not linear and term != "Intercept":
            row |= {
                "ratio": math.exp(values["estimate"]),
                "ratio_ci_low": math.exp(values["ci_low"]),
                "ratio_ci_high": math.exp(values["ci_high"]),
            }
        rows.append(row)
    return converged, rows


def _variances(fitted: Any) -> dict[str, float]:
    out = {"residual": float(fitted.residual_variance)}
    out["client"] = float(np.asarray(fitted.client_covariance)[0, 0])
    if fitted.therapist_variance is not None:
        out["therapist"] = float(fitted.therapist_variance)
    return out


def fit_goal_attainment_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    goals: pd.DataFrame | None = None,
    measures: pd.DataFrame | None = None,
) -> ModelResult:
    """`fit_goal_attainment` for a model declared in config: ``outcome`` gas_level (needs the
    validated measures table) or achieved; option ``predictors`` (default all of
    `PREDICTORS`). The validated goals (and measures) tables are passed by the workflow;
    therapists come from the client measures."""
    del panel, context
    if goals is None:
        raise ConfigError(f"models: {spec.id!r} (goal_attainment) needs the goals table")
    outcome = spec.outcome
    if outcome not in OUTCOMES:
        raise ConfigError(
            f"models: {spec.id!r} (goal_attainment) outcome must be gas_level or achieved"
        )
    if outcome == "gas_level" and measures is None:
        raise ConfigError(f"models: {spec.id!r} (goal_attainment) needs the measures table")
    therapists = None
    if "therapist_id" in client_measures.columns:
        therapists = client_measures.set_index(client_measures["client_id"].astype(str))[
            "therapist_id"
        ]
    table = goal_level_table(goals, measures if outcome == "gas_level" else None, therapists)
    if table[outcome].isna().all():
        source = "GAS ratings" if outcome == "gas_level" else "status (achieved or not)"
        raise NotEstimableError(f"no goal in the goals table has a {source}")
    return fit_goal_attainment(
        table,
        outcome=outcome,
        predictors=tuple(spec.options.get("predictors", PREDICTORS)),
        model_id=spec.id,
    )
