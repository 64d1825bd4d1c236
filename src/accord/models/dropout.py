"""Dropout models: does collaborative goal-setting keep clients in treatment? (analyses.md)

Three kinds, each on the per-client table (one row per client):

``logistic``
    GLM binomial (logit link, IRLS) of a yes/no client outcome, by default ``dropout`` (the
    definition chosen in config, measures.md), on the exposure and baseline covariates named in
    config. For dropout the default is intake severity ``phq9_first`` only: the total
    association. Early alliance lies on the path from goal-setting to dropout, so adjusting for
    it removes part of what the exposure is associated with; it is added only in a sensitivity
    model labelled as such::

        logit P(y_i = 1) = b0 + b1 x_i + covariates_i

    Estimates are log-odds; ``ratio`` is the odds ratio exp(b) with its Wald 95% CI.
``cox``
    Cause-specific proportional hazards regression (statsmodels PHReg) of
    ``sessions_to_dropout`` (attended sessions; time to dropout, or to the last attended session
    for a censored client) with status ``dropout_event``: completers are censored, so the hazard
    ratio compares the rate of dropout among clients still in treatment, not the cumulative
    incidence (`accord.models.competing`). Tied times (many clients leave after the same
    session) are handled by Efron's approximation, R's ``survival::coxph`` default, so the
    estimates match a coxph fit; statsmodels' own default is Breslow's, which shrinks hazard
    ratios towards 1 when ties are heavy. Estimates are log-hazards; ``ratio`` is the hazard ratio.
``kaplan_meier``
    Product-limit (Kaplan-Meier) curves of the same time and status by group (trial arm, or
    exposure tertile) with the log-rank test of equal curves. Completion is censored, so one
    minus the curve overstates dropout: the cumulative incidence with completion competing
    (`accord.models.competing`) is the default dropout curve. Rows name the grouping (the
    column, or the exposure whose tertiles form the groups) in ``exposure``. Only aggregates
    leave the fit: step points of each curve, numbers at risk at chosen times and median times;
    a group with fewer than ``min_cell`` clients is left out of all of them (and of the log-rank
    test).

Clients with a missing outcome, time, status, exposure or covariate are left out and counted
in the diagnostics. Warnings raised while fitting (perfect separation, overflow, a singular
matrix) are recorded in the diagnostics, and a fit whose optimizer did not converge is reported
as not converged (never refitted another way). Wald 95% CIs and p-values use the normal
distribution, as R's ``summary.glm`` (z tests for the binomial family) and ``coxph`` do.

In simulated data (`accord.simulate`) dropout depends on the exposure and on early dips of the
client's within-person alliance, which no observed column measures (``early_alliance`` mixes
the dip with the client's stable alliance level, itself related to the exposure). Logistic
models are not collapsible, so with the default dip effect the exposure's log-odds from the
observed data are smaller in size than the planted ``truth["dropout"]["log_odds_exposure"]``
(with 4,000 simulated clients and a planted -1.0: about -0.45 with intake severity and
early alliance as covariates, -0.7 without); with the dip effect set to 0 the planted value is
recovered (tests/models/test_dropout.py).

Fit times (one core, 4,000 clients): logistic about 0.1 s, Cox about 0.2 s, Kaplan-Meier
with the log-rank test about 0.1 s.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.base.model import LikelihoodModel
from statsmodels.duration.hazard_regression import PHReg, PHRegResults
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from accord.core.errors import AccordError, ConfigError, NotEstimableError
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, capture_fit, coefficient_frame, model_diagnostics

_Z = float(stats.norm.ppf(0.975))
# Fewer events than this per estimated coefficient (besides the intercept) makes logistic and
# Cox estimates unstable and biased away from zero (Peduzzi et al. 1996, 1995).
EVENTS_PER_VARIABLE = 10
INTERCEPT = "Intercept"


# ---------------------------------------------------------------------------------------------
# Shared preparation
# ---------------------------------------------------------------------------------------------


def client_level_column(client_measures: pd.DataFrame, column: str, what: str) -> pd.Series:
    """A column of the per-client table, or ConfigError naming the model that needs it."""
    if column not in client_measures.columns:
        raise ConfigError(f"{what}: no column {column!r} in the client measures")
    return client_measures[column]


def binary_values(values: pd.Series, name: str, what: str) -> pd.Series:
    """A yes/no column as floats 1.0 / 0.0 (missing stays missing).

    Accepts booleans (nullable or not) and numbers that are all 0 or 1; anything else is a
    ConfigError, so a count or a score is never silently modelled as a probability."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean").astype("Float64").astype(float)
    if pd.api.types.is_numeric_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        if numbers.dropna().isin([0.0, 1.0]).all():
            return numbers
    raise ConfigError(f"{what}: {name!r} must be yes/no (boolean or 0/1)")


def design(
    frame: pd.DataFrame,
    exposure: str,
    covariates: Sequence[str],
    *,
    what: str,
    exposure_reference: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Numeric predictor columns for `exposure` and `covariates` (no intercept), and notes.

    Numbers are used as given and booleans as 0/1. A text exposure must have two levels and is
    coded 1 for the level that is not `exposure_reference` (default: the first in sorted
    order), keeping its own name as the term. A text covariate is dummy coded against its
    first level in sorted order, as R's treatment contrasts, with terms ``name[T.level]``.
    Rows with any missing predictor are kept here (as NaN) for the caller to count and drop.
    """
    columns: dict[str, pd.Series] = {}
    coding: dict[str, str] = {}
    for name in [exposure, *covariates]:
        if name not in frame.columns:
            raise ConfigError(f"{what}: no column {name!r} in the client measures")
        values = frame[name]
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype(object)
        if pd.api.types.is_bool_dtype(values):
            columns[name] = values.astype("boolean").astype("Float64").astype(float)
            coding[name] = "1 = true, 0 = false"
        elif pd.api.types.is_numeric_dtype(values):
            columns[name] = pd.to_numeric(values, errors="coerce").astype(float)
        else:
            present = values.dropna().astype(str)
            levels = sorted(present.unique())
            if name == exposure:
                if len(levels) != 2:
                    raise ConfigError(
                        f"{what}: the exposure {name!r} is text with {len(levels)} levels; "
                        "a text exposure must have exactly two"
                    )
                reference = exposure_reference if exposure_reference is not None else levels[0]
                if reference not in levels:
                    raise ConfigError(f"{what}: exposure_reference {reference!r} is not a level")
                other = next(lv for lv in levels if lv != reference)
                columns[name] = (values.astype(str) == other).astype(float).where(values.notna())
                coding[name] = f"1 = {other}, 0 = {reference}"
            else:
                for level in levels[1:]:
                    columns[f"{name}[T.{level}]"] = (
                        (values.astype(str) == level).astype(float).where(values.notna())
                    )
                coding[name] = f"treatment contrasts against {levels[0]!r}"
    return pd.DataFrame(columns, index=frame.index), coding


def _complete_rows(
    frame: pd.DataFrame, required: Sequence[str]
) -> tuple[pd.Series, dict[str, int]]:
    """Which rows have every `required` column, and how many rows miss each one."""
    missing = {name: int(frame[name].isna().sum()) for name in required}
    return frame[list(required)].notna().all(axis=1), {k: v for k, v in missing.items() if v}


def _wald(estimate: float, se: float) -> dict[str, float]:
    """Estimate, SE, normal 95% CI, two-sided p, and the exponentiated estimate and CI."""
    ok = math.isfinite(se) and se > 0 and math.isfinite(estimate)
    se = se if ok else math.nan
    low, high = estimate - _Z * se, estimate + _Z * se
    z = estimate / se if ok else math.nan

    def expo(v: float) -> float:
        return math.exp(v) if math.isfinite(v) and v < 700 else math.nan

    return {
        "estimate": estimate,
        "std_error": se,
        "ci_low": low,
        "ci_high": high,
        "p_value": float(2 * stats.norm.sf(abs(z))) if math.isfinite(z) else math.nan,
        "ratio": expo(estimate),
        "ratio_ci_low": expo(low),
        "ratio_ci_high": expo(high),
    }


def _n_therapists(frame: pd.DataFrame) -> int | None:
    if "therapist_id" not in frame.columns:
        return None
    return int(frame["therapist_id"].dropna().nunique())


def _client_count(frame: pd.DataFrame) -> int:
    if "client_id" in frame.columns:
        return int(frame["client_id"].nunique())
    return len(frame)


@dataclass
class _Sample:
    """The complete rows a client-level model is fitted to, the clients they are, and what was
    left out (rows missing each column, as the warning names them)."""

    data: pd.DataFrame
    kept: pd.DataFrame
    complete: pd.Series
    missing: dict[str, int]
    coding: dict[str, Any]

    @property
    def excluded(self) -> int:
        """The number of rows left out for a missing value."""
        return int((~self.complete).sum())

    def left_out_warnings(self) -> list[str]:
        """A warning counting the rows left out, by column, if any were."""
        if not self.excluded:
            return []
        detail = ", ".join(f"{k}: {v}" for k, v in self.missing.items())
        return [f"{self.excluded} row(s) left out for a missing value ({detail})"]


def _complete_sample(
    client_measures: pd.DataFrame,
    frame: pd.DataFrame,
    labels: dict[str, str],
    coding: dict[str, Any],
) -> _Sample:
    """The rows of `frame` with every column, the same clients' rows of the client measures,
    and the rows missing each column (named by `labels` where given)."""
    complete, missing = _complete_rows(frame, list(frame.columns))
    missing = {labels.get(k, k): v for k, v in missing.items()}
    return _Sample(
        data=frame.loc[complete],
        kept=client_measures.loc[complete],
        complete=complete,
        missing=missing,
        coding=coding,
    )


def _wald_rows(
    terms: Sequence[str],
    params: pd.Series,
    bse: pd.Series,
    common: dict[str, Any],
    primary_term: str | None,
    term_prefix: str = "",
) -> list[dict[str, Any]]:
    """One coefficient row per term with its Wald CI and ratio; the row of `primary_term`
    (the exposure of a primary model, else None) is marked primary."""
    return [
        {
            **common,
            "term": f"{term_prefix}{term}",
            **_wald(float(params[term]), float(bse[term])),
            "primary": primary_term is not None and term == primary_term,
        }
        for term in terms
    ]


def _events_per_variable_warnings(fewest: int, n_coef: int, what: str) -> list[str]:
    """A warning when there are fewer than `EVENTS_PER_VARIABLE` of `what` per coefficient."""
    if n_coef and fewest / n_coef < EVENTS_PER_VARIABLE:
        return [
            f"{fewest} {what} for {n_coef} coefficient(s): fewer than {EVENTS_PER_VARIABLE} "
            "per coefficient, estimates may be unstable"
        ]
    return []


# ---------------------------------------------------------------------------------------------
# Logistic regression
# ---------------------------------------------------------------------------------------------


def fit_logistic(
    client_measures: pd.DataFrame,
    *,
    outcome: str = "dropout",
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    model_id: str = "dropout_logistic",
    primary: bool = False,
    exposure_reference: str | None = None,
    term_prefix: str = "",
) -> ModelResult:
    """Logistic regression (GLM binomial, logit link, IRLS) of the yes/no `outcome` on
    `exposure` + `covariates`, one row per client (see the module docstring).

    Coefficient rows (one per term, the intercept first) hold log-odds with Wald 95% CIs and
    the odds ratios; the exposure's row is marked primary when `primary`. `term_prefix` is put
    before every term name (e.g. ``"recovery:"``). Diagnostics add the AIC, the number of
    events, rows left out for each missing column, and flags for perfect separation and for
    fewer than `EVENTS_PER_VARIABLE` events (or non-events) per coefficient.

    Raises ConfigError for a missing column or an outcome that is not yes/no, and AccordError
    when there is nothing to fit (fewer than 3 complete rows, or an outcome or exposure that
    does not vary).
    """
    what = f"logistic model {model_id!r}"
    covariates = list(covariates)
    sample = _logistic_sample(
        client_measures, outcome, exposure, covariates, what, exposure_reference
    )
    data, n_obs = sample.data, len(sample.data)
    exog = pd.concat(
        [pd.Series(1.0, index=data.index, name=INTERCEPT), data.drop(columns="__y__")], axis=1
    )
    model_terms = list(exog.columns)
    formula = f"{outcome} ~ " + " + ".join([exposure, *covariates])
    warn = sample.left_out_warnings()
    result, fit_warnings, error = capture_fit(
        lambda: sm.GLM(data["__y__"], exog, family=sm.families.Binomial()).fit(
            method="IRLS", maxiter=100
        )
    )
    warn += fit_warnings + ([f"fit failed: {error}"] if error else [])
    fitted = result if result is not None and not error else None
    converged = bool(fitted is not None and fitted.converged)
    params, bse, llf, aic = _glm_estimates(fitted, model_terms)
    events = int(data["__y__"].sum())
    smaller_group = "client(s) in the smaller outcome group"
    warn += _events_per_variable_warnings(
        min(events, n_obs - events), len(model_terms) - 1, smaller_group
    )
    n_clients = _client_count(sample.kept)
    common = {"model": model_id, "outcome": outcome, "exposure": exposure}
    common |= {"n_obs": n_obs, "n_clients": n_clients, "converged": converged}
    diagnostics = model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=formula,
        method="ML (GLM binomial, logit link)",
        optimizer="IRLS",
        converged=converged,
        warn=warn,
        log_likelihood=llf,
        n_obs=n_obs,
        n_clients=n_clients,
        n_therapists=_n_therapists(sample.kept),
        extras=_logistic_extras(sample, fitted, aic, events, fit_warnings),
    )
    rows = _wald_rows(model_terms, params, bse, common, exposure if primary else None, term_prefix)
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=exposure,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def _logistic_sample(
    client_measures: pd.DataFrame,
    outcome: str,
    exposure: str,
    covariates: list[str],
    what: str,
    exposure_reference: str | None,
) -> _Sample:
    """The clients with the yes/no outcome (as ``__y__``) and every predictor; raises
    NotEstimableError for fewer than 3 of them or an outcome or exposure that does not vary."""
    y = binary_values(client_level_column(client_measures, outcome, what), outcome, what)
    x, coding = design(
        client_measures, exposure, covariates, what=what, exposure_reference=exposure_reference
    )
    frame = pd.concat([y.rename("__y__"), x], axis=1)
    sample = _complete_sample(client_measures, frame, {"__y__": "outcome " + outcome}, coding)
    data, n_obs = sample.data, len(sample.data)
    if n_obs < 3:
        raise NotEstimableError(f"{what}: {n_obs} complete row(s); at least 3 needed")
    if data["__y__"].nunique() < 2:
        raise NotEstimableError(
            f"{what}: the outcome {outcome!r} does not vary among complete rows"
        )
    if data[exposure].nunique() < 2:
        raise NotEstimableError(f"{what}: the exposure {exposure!r} does not vary")
    return sample


def _logistic_extras(
    sample: _Sample, fitted: Any | None, aic: float, events: int, fit_warnings: list[str]
) -> dict[str, Any]:
    """The logistic fit's AIC, events, rows left out, separation flag, iterations and how the
    predictors were coded."""
    return {
        "aic": aic,
        "n_events": events,
        "event_rate": events / len(sample.data),
        "rows_excluded_missing": sample.excluded,
        "rows_missing_by_column": sample.missing,
        "perfect_separation": any("PerfectSeparation" in w for w in fit_warnings),
        "iterations": (int(fitted.fit_history.get("iteration", 0)) if fitted is not None else None),
        "predictor_coding": sample.coding,
    }


def _no_estimates(terms: list[str]) -> tuple[pd.Series, pd.Series, float, float]:
    """NaN estimates, SEs, log-likelihood and AIC: those of a fit that failed."""
    return pd.Series(np.nan, index=terms), pd.Series(np.nan, index=terms), math.nan, math.nan


def _glm_estimates(
    result: Any | None, terms: list[str]
) -> tuple[pd.Series, pd.Series, float, float]:
    """Estimates, SEs, log-likelihood and AIC of a GLM fit; NaN for a fit that failed."""
    if result is None:
        return _no_estimates(terms)
    params = result.params.astype(float)
    bse = result.bse.astype(float)
    return params, bse, float(result.llf), float(result.aic)


def fit_logistic_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_logistic` for a model declared in config: outcome, exposure and covariates from the
    entry (for dropout set ``outcome: dropout``, covariates ``phq9_first``);
    option ``exposure_reference`` (the reference level of a two-level text exposure)."""
    del panel, context  # one row per client: the session panel is not needed
    return fit_logistic(
        client_measures,
        outcome=spec.outcome,
        exposure=spec.exposure,
        covariates=spec.covariates,
        model_id=spec.id,
        primary=spec.primary,
        exposure_reference=spec.options.get("exposure_reference"),
    )


# ---------------------------------------------------------------------------------------------
# Cox proportional hazards
# ---------------------------------------------------------------------------------------------


def fit_cox(
    client_measures: pd.DataFrame,
    *,
    time: str = "sessions_to_dropout",
    event: str = "dropout_event",
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    model_id: str = "dropout_cox",
    primary: bool = False,
    exposure_reference: str | None = None,
    ties: str = "efron",
) -> ModelResult:
    """Cox proportional hazards model of `time` with status `event` on `exposure` +
    `covariates` (statsmodels PHReg, Newton-Raphson on the partial likelihood; ties by Efron's
    method unless `ties` is ``"breslow"``). See the module docstring.

    Coefficient rows hold log-hazards with Wald 95% CIs and hazard ratios. The outcome is
    reported under the name of `time`. Diagnostics add the AIC (from the partial likelihood),
    the number of events and a flag for fewer than `EVENTS_PER_VARIABLE` events per
    coefficient.
    """
    what = f"Cox model {model_id!r}"
    if ties not in ("efron", "breslow"):
        raise ConfigError(f"{what}: ties must be 'efron' or 'breslow', not {ties!r}")
    covariates = list(covariates)
    sample = _survival_sample(
        client_measures, time, event, exposure, covariates, what, exposure_reference
    )
    data, n_obs = sample.data, len(sample.data)
    events = int(data["__event__"].sum())
    exog = data.drop(columns=["__time__", "__event__"])
    model_terms = list(exog.columns)
    formula = f"Surv({time}, {event}) ~ " + " + ".join([exposure, *covariates])
    warn = sample.left_out_warnings()
    out, fit_warnings, error = capture_fit(lambda: _fit_phreg(data, exog, ties))
    warn += fit_warnings
    if error:
        warn.append(f"fit failed: {error}")
    converged, params, bse, llf, aic = _cox_estimates(
        out if out is not None and not error else None, model_terms
    )
    warn += _events_per_variable_warnings(events, len(model_terms), "event(s)")
    if not np.all(np.isfinite(bse.to_numpy())):
        warn.append("some standard errors are not finite (singular information matrix)")
    n_clients = _client_count(sample.kept)
    common = {"model": model_id, "outcome": time, "exposure": exposure}
    common |= {"n_obs": n_obs, "n_clients": n_clients, "converged": converged}
    diagnostics = model_diagnostics(
        model_id=model_id,
        outcome=time,
        exposure=exposure,
        formula=formula,
        method=f"cause-specific Cox, partial likelihood, ties: {ties}",
        optimizer="newton",
        converged=converged,
        warn=warn,
        log_likelihood=llf,
        n_obs=n_obs,
        n_clients=n_clients,
        n_therapists=_n_therapists(sample.kept),
        extras={
            "aic": aic,
            "ties": ties,
            "time": time,
            "event": event,
            "n_events": events,
            "n_censored": n_obs - events,
            "rows_excluded_missing": sample.excluded,
            "rows_missing_by_column": sample.missing,
            "predictor_coding": sample.coding,
        },
    )
    rows = _wald_rows(model_terms, params, bse, common, exposure if primary else None)
    return ModelResult(
        model=model_id,
        outcome=time,
        exposure=exposure,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def _survival_sample(
    client_measures: pd.DataFrame,
    time: str,
    event: str,
    exposure: str,
    covariates: list[str],
    what: str,
    exposure_reference: str | None,
) -> _Sample:
    """The clients with a time (as ``__time__``), a status (``__event__``) and every
    predictor; raises AccordError for a negative time and NotEstimableError for fewer than 3
    clients, no event or an exposure that does not vary."""
    durations = pd.to_numeric(
        client_level_column(client_measures, time, what), errors="coerce"
    ).astype(float)
    status = binary_values(client_level_column(client_measures, event, what), event, what)
    x, coding = design(
        client_measures, exposure, covariates, what=what, exposure_reference=exposure_reference
    )
    frame = pd.concat([durations.rename("__time__"), status.rename("__event__"), x], axis=1)
    labels = {"__time__": f"time {time}", "__event__": f"event {event}"}
    sample = _complete_sample(client_measures, frame, labels, coding)
    data, n_obs = sample.data, len(sample.data)
    if (data["__time__"] < 0).any():
        raise AccordError(f"{what}: {time!r} has negative values")
    events = int(data["__event__"].sum())
    if n_obs < 3 or events == 0:
        raise NotEstimableError(f"{what}: {n_obs} complete row(s) with {events} event(s); too few")
    if data[exposure].nunique() < 2:
        raise NotEstimableError(f"{what}: the exposure {exposure!r} does not vary")
    return sample


def _fit_phreg(data: pd.DataFrame, exog: pd.DataFrame, ties: str) -> tuple[PHRegResults, bool]:
    """The Cox fit by Newton-Raphson on the partial likelihood, and whether it converged."""
    model = PHReg(
        data["__time__"].to_numpy(),
        exog.to_numpy(),
        status=data["__event__"].to_numpy(),
        ties=ties,
    )
    # PHReg.fit drops the optimizer's convergence flag, so the likelihood fit it wraps is
    # run here and its result put into PHRegResults in the same way.
    raw = LikelihoodModel.fit(model, method="newton", maxiter=100, disp=False)
    converged = bool(raw.mle_retvals.get("converged", False))
    return PHRegResults(model, raw.params, raw.cov_params()), converged


def _cox_estimates(
    out: tuple[PHRegResults, bool] | None, terms: list[str]
) -> tuple[bool, pd.Series, pd.Series, float, float]:
    """Whether the Cox fit converged, its estimates, SEs, log partial likelihood and AIC; not
    converged and NaN for a fit that failed."""
    if out is None:
        return False, *_no_estimates(terms)
    result, converged = out
    params = pd.Series(np.asarray(result.params, dtype=float), index=terms)
    bse = pd.Series(np.asarray(result.bse, dtype=float), index=terms)
    llf = float(result.llf)
    return converged, params, bse, llf, -2 * llf + 2 * len(terms)


def fit_cox_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_cox` for a model declared in config: exposure and covariates from the entry;
    options ``time`` (default sessions_to_dropout), ``event`` (default dropout_event), ``ties``
    (default efron) and ``exposure_reference``. The entry's outcome is not used (the time and
    event columns are the outcome); rows are primary only when the entry names the time or
    event column as its outcome."""
    del panel, context
    time = spec.options.get("time", "sessions_to_dropout")
    event = spec.options.get("event", "dropout_event")
    return fit_cox(
        client_measures,
        time=time,
        event=event,
        exposure=spec.exposure,
        covariates=spec.covariates,
        model_id=spec.id,
        primary=bool(spec.primary and spec.outcome in (time, event)),
        exposure_reference=spec.options.get("exposure_reference"),
        ties=spec.options.get("ties", "efron"),
    )


# ---------------------------------------------------------------------------------------------
# Kaplan-Meier curves and the log-rank test
# ---------------------------------------------------------------------------------------------


def exposure_tertiles(values: pd.Series) -> tuple[pd.Series, list[dict[str, Any]]]:
    """Exposure tertile per row ("T1 (low)", "T2", "T3 (high)"; missing stays missing) and the
    ranges of each, for the report.

    Cut at the 1/3 and 2/3 quantiles (numpy's default, R's type 7); a value on a cut point
    goes to the lower group. With heavy ties (a share of 2-4 goals takes few values) the
    groups are unequal, and cut points that coincide give fewer than three groups."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    present = numbers.dropna()
    if present.empty:
        return pd.Series(pd.NA, index=values.index, dtype=object), []
    cuts = np.unique(np.quantile(present.to_numpy(), [1 / 3, 2 / 3]))
    edges = [-np.inf, *cuts.tolist(), np.inf]
    names = (
        ["T1 (low)", "T2", "T3 (high)"]
        if len(edges) == 4
        else [f"T{i + 1}" for i in range(len(edges) - 1)]
    )
    codes = pd.cut(numbers, bins=edges, labels=False, right=True)
    labels = pd.Series(
        [names[int(c)] if pd.notna(c) else pd.NA for c in codes], index=values.index, dtype=object
    )
    ranges = []
    for i, name in enumerate(names):
        inside = present[(present > edges[i]) & (present <= edges[i + 1])]
        if len(inside):
            ranges.append({"group": name, "min": float(inside.min()), "max": float(inside.max())})
    return labels, ranges


def grouping(
    client_measures: pd.DataFrame, group: str, exposure: str, what: str
) -> tuple[pd.Series, dict[str, Any]]:
    """Group labels per client: a column (e.g. ``arm``) or ``exposure_tertile``."""
    if group == "exposure_tertile":
        labels, ranges = exposure_tertiles(client_level_column(client_measures, exposure, what))
        return labels, {"grouping": f"tertiles of {exposure}", "tertile_ranges": ranges}
    values = client_level_column(client_measures, group, what)
    labels = values.astype(object).where(values.notna())
    return labels.map(lambda v: v if pd.isna(v) else str(v)), {"grouping": group}


def _km_points(sf: SurvfuncRight, n: int) -> list[dict[str, Any]]:
    """Step points of one KM curve: a start at time 0 and one point per event time.

    Pointwise 95% CIs on the log scale, S exp(+-1.96 SE(S) / S), with Greenwood's SE (R's
    survfit default, ``conf.type = "log"``), the upper limit capped at 1."""
    points = [
        {"time": 0.0, "survival": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n_at_risk": n, "n_events": 0}
    ]
    for t, s, se, risk, ev in zip(
        sf.surv_times, sf.surv_prob, sf.surv_prob_se, sf.n_risk, sf.n_events, strict=True
    ):
        if s > 0 and np.isfinite(se):
            half = _Z * se / s
            low, high = s * math.exp(-half), min(1.0, s * math.exp(half))
        else:
            low, high = math.nan, math.nan
        points.append(
            {
                "time": float(t),
                "survival": float(s),
                "ci_low": low,
                "ci_high": high,
                "n_at_risk": int(risk),
                "n_events": int(ev),
            }
        )
    return points


def _median(sf: SurvfuncRight) -> tuple[float, float, float]:
    """Median time (the first time the curve is at or below 0.5, as R's survfit) and its CI
    (statsmodels' Brookmeyer-Crowley interval on the log scale, as R's default); NaN where
    not reached."""
    s = np.asarray(sf.surv_prob)
    below = np.flatnonzero(s <= 0.5)
    median = float(np.asarray(sf.surv_times)[below[0]]) if below.size else math.nan
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            low, high = sf.quantile_ci(0.5, method="log")
        low = float(low) if low is not None and np.isfinite(low) else math.nan
        high = float(high) if high is not None and np.isfinite(high) else math.nan
    except (ValueError, IndexError, FloatingPointError):
        low, high = math.nan, math.nan
    return median, low, high


def _km_analysis_set(
    client_measures: pd.DataFrame,
    labels: pd.Series,
    time: str,
    event: str,
    what: str,
    warn: list[str],
) -> tuple[pd.DataFrame, int]:
    """Group, time and status of every client with all three known, and how many were left
    out for a missing one (with a warning)."""
    durations = pd.to_numeric(
        client_level_column(client_measures, time, what), errors="coerce"
    ).astype(float)
    status = binary_values(client_level_column(client_measures, event, what), event, what)
    frame = pd.DataFrame({"group": labels, "time": durations, "event": status})
    complete = frame.notna().all(axis=1)
    excluded = int((~complete).sum())
    if excluded:
        warn.append(f"{excluded} row(s) left out for a missing group, time or event")
    return frame.loc[complete], excluded


def _groups_of_min_cell(
    data: pd.DataFrame, min_cell: int, what: str, warn: list[str]
) -> tuple[pd.Series, list[str], list[str]]:
    """Clients per group, the groups with at least `min_cell` clients (kept) and those with
    fewer (left out, with a warning). Raises NotEstimableError when no group is kept."""
    sizes = data["group"].value_counts().sort_index()
    small = [str(g) for g, n in sizes.items() if n < min_cell]
    if small:
        warn.append(
            f"{len(small)} group(s) with fewer than {min_cell} clients left out of the curves, "
            "medians and log-rank test"
        )
    keep = [str(g) for g, n in sizes.items() if n >= min_cell]
    if not keep:
        raise NotEstimableError(f"{what}: no group has at least {min_cell} clients")
    return sizes, keep, small


def _product_limit_by_group(
    data: pd.DataFrame, keep: list[str]
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, tuple[float, float, float]]]:
    """Each kept group's product-limit curve (step points) and median time with its 95% CI."""
    curves: dict[str, list[dict[str, Any]]] = {}
    medians: dict[str, tuple[float, float, float]] = {}
    for name in keep:
        part = data.loc[data["group"] == name]
        sf = SurvfuncRight(part["time"].to_numpy(), part["event"].to_numpy())
        curves[name] = _km_points(sf, len(part))
        medians[name] = _median(sf)
    return curves, medians


def _numbers_at_risk(
    data: pd.DataFrame, keep: list[str], risk_times: Sequence[float] | None
) -> list[dict[str, Any]]:
    """Clients at risk (time >= t) per kept group at each of `risk_times`, by default every
    second session from 0 to the last time."""
    if risk_times is None:
        last = float(data["time"].max())
        risk_times = [float(t) for t in np.arange(0.0, last + 1.0, 2.0)]
    return [
        {"group": name, "time": float(t), "n_at_risk": int((part["time"] >= t).sum())}
        for name in keep
        for part in [data.loc[data["group"] == name]]
        for t in risk_times
    ]


def _logrank(data: pd.DataFrame, keep: list[str], warn: list[str]) -> tuple[float, float]:
    """The log-rank chi-square and its p-value over the kept groups; both missing (with a
    warning) for one group only or when the event times have no variance."""
    if len(keep) < 2:
        warn.append("one group only: no log-rank test")
        return math.nan, math.nan
    try:
        chi2, p_value = survdiff(
            data["time"].to_numpy(), data["event"].to_numpy(), data["group"].to_numpy()
        )
        return float(chi2), float(p_value)
    except np.linalg.LinAlgError:
        # Every client has the event at one and the same time: the test has no variance.
        warn.append("no log-rank test: the groups' event times have no variance")
        return math.nan, math.nan


def _km_rows(
    common: dict[str, Any],
    logrank: tuple[float, float],
    data: pd.DataFrame,
    medians: dict[str, tuple[float, float, float]],
    warn: list[str],
) -> list[dict[str, Any]]:
    """Coefficient rows: the log-rank statistic, then each group's median time with its CI
    and the group's size (a warning when some group's median is not reached)."""
    chi2, p_value = logrank
    rows: list[dict[str, Any]] = [
        {**common, "term": "logrank_chi2", "estimate": chi2, "p_value": p_value}
    ]
    for name, (median, low, high) in medians.items():
        part_n = int((data["group"] == name).sum())
        rows.append(
            {
                **common,
                "term": f"median:{name}",
                "estimate": median,
                "ci_low": low,
                "ci_high": high,
                "n_obs": part_n,
                "n_clients": part_n,
            }
        )
    if any(math.isnan(m[0]) for m in medians.values()):
        warn.append("the median is not reached (survival stays above 0.5) in some group(s)")
    return rows


def fit_kaplan_meier(
    client_measures: pd.DataFrame,
    *,
    group: str = "arm",
    time: str = "sessions_to_dropout",
    event: str = "dropout_event",
    exposure: str = "joint_goal_share",
    model_id: str = "dropout_km",
    min_cell: int = 11,
    risk_times: Sequence[float] | None = None,
) -> ModelResult:
    """Kaplan-Meier curves of `time` with status `event` by `group` (a client column, or
    ``"exposure_tertile"`` for tertiles of `exposure`) and the log-rank test.

    Coefficient rows: ``logrank_chi2`` (the chi-square statistic as estimate, its p-value;
    degrees of freedom = groups - 1 in diagnostics) and ``median:<group>`` per group (median
    time with its 95% CI; missing when the curve never reaches 0.5). Diagnostics ``extras``:
    ``curves`` ({group: step points}), ``risk_table`` (numbers at risk, i.e. with time >= t, at
    `risk_times`, by default every second session from 0 to the last time) and
    ``group_sizes``. Groups with fewer than `min_cell` clients are left out of everything
    (with a warning). Raises AccordError when fewer than one group is left.
    """
    what = f"Kaplan-Meier model {model_id!r}"
    labels, group_info = grouping(client_measures, group, exposure, what)
    # Every row names what the curves are grouped by: the column, or the exposure whose
    # tertiles form the groups.
    named = exposure if group == "exposure_tertile" else group
    warn: list[str] = []
    data, excluded = _km_analysis_set(client_measures, labels, time, event, what, warn)
    sizes, keep, small = _groups_of_min_cell(data, min_cell, what, warn)
    data = data.loc[data["group"].isin(keep)]
    curves, medians = _product_limit_by_group(data, keep)
    risk_table = _numbers_at_risk(data, keep, risk_times)
    logrank = _logrank(data, keep, warn)
    n_obs = len(data)
    n_clients = _client_count(client_measures.loc[data.index])
    common = {
        "model": model_id,
        "outcome": time,
        "exposure": named,
        "n_obs": n_obs,
        "n_clients": n_clients,
        "converged": True,
        "primary": False,
    }
    rows = _km_rows(common, logrank, data, medians, warn)
    diagnostics = model_diagnostics(
        model_id=model_id,
        outcome=time,
        exposure=named,
        formula=f"Surv({time}, {event}) ~ {group}",
        method="Kaplan-Meier (product-limit); log-rank test",
        optimizer="none",
        converged=True,
        warn=warn,
        log_likelihood=math.nan,
        n_obs=n_obs,
        n_clients=n_clients,
        n_therapists=_n_therapists(client_measures.loc[data.index]),
        extras={
            **group_info,
            "time": time,
            "event": event,
            "logrank_df": len(keep) - 1,
            "group_sizes": {name: int(sizes[name]) for name in keep},
            "groups_left_out": len(small),
            "rows_excluded_missing": excluded,
            "n_events": int(data["event"].sum()),
            "curves": curves,
            "curve_ci": "pointwise 95%, log scale, Greenwood SE",
            "risk_table": risk_table,
        },
    )
    return ModelResult(
        model=model_id,
        outcome=time,
        exposure=named,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def fit_kaplan_meier_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_kaplan_meier` for a model declared in config; options ``group`` (default arm, or
    exposure_tertile), ``time``, ``event`` and ``risk_times``; min_cell from the study."""
    del panel
    risk_times = spec.options.get("risk_times")
    return fit_kaplan_meier(
        client_measures,
        group=spec.options.get("group", "arm"),
        time=spec.options.get("time", "sessions_to_dropout"),
        event=spec.options.get("event", "dropout_event"),
        exposure=spec.exposure,
        model_id=spec.id,
        min_cell=context.min_cell,
        risk_times=None if risk_times is None else [float(t) for t in risk_times],
    )
