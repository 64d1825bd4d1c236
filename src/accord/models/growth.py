"""Growth model: do clients with more collaborative goal-setting improve faster? (analyses.md)

    y_it = b0 + b1 time_it + b2 x_i + b3 time_it x_i + covariates_i
           + v_j + u0_i + u1_i time_it + e_it

for client i of therapist j: a random intercept and time slope per client with an unrestricted
2 x 2 covariance, a therapist random intercept v_j, fitted by REML on every observed session
(valid under missing at random; ML with ``reml=False``, for likelihood-ratio tests). b3, the
time x exposure term, is the primary estimate.

Engines
-------
By default (``engine="profiled"``) the model is fitted by `accord.models.engine.lmm`: lme4's
profiled REML deviance, evaluated exactly for clients nested in therapists in O(clients)
vectorised operations and optimised by L-BFGS-B within the bounds (variances >= 0). It
estimates the correlated client covariance directly, so it needs no centre search; it first
fits the client-level model (step 1 below), which is reported and starts the nested fit.
Fixed-effect SEs are lme4's, s^2 (X'V^-1X)^-1. It agrees with lme4 run to a tight tolerance
to 1e-6 (tests/models/test_lmm.py) and with statsmodels wherever statsmodels fits the same model.
Diagnostics name the engine and optimizer (``accord-profiled-reml (L-BFGS-B)``).

``engine="statsmodels"`` is the earlier path described below (MixedLM with a centre search),
kept as the fallback: the profiled engine hands over to it, with a warning, for data it
cannot fit (an error in the engine, such as a fixed-effects design that is not of full rank)
and for a fit whose optimum it cannot certify (`accord.models.engine.lmm.certify_optimum`), where
statsmodels' fit is reported if it converged at least as high.
Its optimizer is the statsmodels method named by `optimizer`, and its SEs come from the
Hessian of all parameters (up to 1e-2 larger).

Fit times (12 scores per client, 25 or 250 therapists, a 2-core machine): the profiled engine
takes 0.5 s for 1,000 clients, 2.0-2.2 s for 10,000 and 23 s for 100,000 (the deviance
optimisation alone 0.3, 1.2 and 10.5-11.7 s; the rest is data preparation and the
client-level step); lme4 1.1-31 on the same 10,000 clients 19 s, and on 100,000 143-196 s of
CPU. statsmodels takes 12 s (250 therapists) to 62 s (25 therapists) of CPU for 1,000
clients and 40 s for 4,000 clients in 250 therapists; its cost grows steeply with the number
of clients per therapist.

How the model is put to statsmodels
-----------------------------------
Clients are nested in therapists, so the therapist is the grouping factor (``groups``), its
intercept the group-level random effect (``re_formula="1"``) and the client intercept and slope
variance components inside each therapist (``vc_formula``). Grouping by client with the
therapist as a variance component would be wrong: statsmodels nests variance components inside
groups, so each client would get a therapist effect of their own.

statsmodels draws variance components independently, which would force the client intercept
and slope to be uncorrelated. That restriction depends on where time is zero, and with the
usual negative intercept-slope covariance it makes the standard error of the time x exposure
term too small. It costs nothing, though, at the point on the time axis where the two are
uncorrelated, c = -cov(u0, u1) / var(u1): the random part u0 + u1 t is the same family of
lines written as u0' + u1 (t - c) with Cov(u0', u1) = 0. Over all c, the independent model
centred at c covers every correlated model (intercept variance a + c^2 b, slope variance b,
covariance -c b), so maximising its REML log-likelihood over c as well reaches the REML
optimum of the correlated model. The fit runs in three steps, all reported:

1. a client-level model (groups = client, correlated intercept and slope, no therapist term)
   gives a starting c (and, if it does not converge, c starts at the mean time, with a
   warning). This c is not the uncorrelated point of the full model, whose therapist term
   changes the client covariance estimates (in two reference datasets 4.35 against lme4's
   4.63, and 0.99 against 1.25; fitted at these centres, the log-likelihood was 0.378 and
   0.035 below lme4's);
2. the nested model uses ``time - c`` in the client variance components (fixed effects keep
   ``time`` as coded) and a therapist random intercept, starting from step 1's estimates
   (from statsmodels' default start the optimizer can stop at a poor local optimum);
3. the centre search maximises the profile REML log-likelihood p(c) over c by Newton steps,
   each a refit from the previous estimates. By the envelope theorem p'(c) is the partial
   derivative of the log-likelihood in c at the fitted parameters, taken by central
   differences (the model at another c is rebuilt from arrays, in milliseconds). The first
   step divides by the partial second derivative at fixed parameters, which is at least as
   curved as p, so locally it does not overshoot; later steps use the secant of p'. The search stops
   when the next step would move c by less than `CENTRE_TOLERANCE_SD` SDs of time (at most
   `MAX_CENTRE_REFITS` refits; c stays within the observed times widened by their range on
   either side). The extras record the starting and final c (``centre_search``,
   ``time_centre_for_client_effects``), the number of refits, every centre tried and its
   log-likelihood. A search that stops early (a refit that does not converge or lowers the
   log-likelihood, a profile that is not concave, too many refits) reports the last good fit
   with ``converged`` false and a warning saying why; with no client slope variance every c
   gives the same model and there is no search.

The client covariance is translated back to the time origin (intercept variance at intake,
slope variance, covariance), so `random_effects` reads like an lme4
``(1 + time | client) + (1 | therapist)`` fit. On the reference datasets (tests/
test_reference.py; lme4 1.1-31, REML) the search takes 2-3 refits and agrees with lme4 to at
most 5.5e-5 relative in the fixed effects, 1.1e-3 relative in the variances (the therapist
variance, on a flat surface), 6.3e-5 in the intercept-slope correlation, 2.2e-4 time units in c
and 1.5e-6 in the REML log-likelihood, including datasets with intercept-slope correlations of
-0.84 and -0.22; fixed-effect SEs differ by up to 7e-3 relative because statsmodels takes them
from the Hessian of all parameters and lme4 from (X'V^-1X)^-1.

In a simulation with an intercept-slope correlation of -0.6 (400 clients, 20 therapists), the
fit without the centre search (steps 1 and 2) already gave the same time x exposure estimate
and SE as the correlated client-level model, while an uncorrelated fit with time zero at
intake understated the SE by about 9%.

The random slope enters every step per SD of time (estimates are converted back): with session
numbers up to 12 or more, slope and intercept variances differ by orders of magnitude and the
optimizer otherwise often stops early. A variance component whose SD is below
`BOUNDARY_RELATIVE_SD` residual SDs is flagged as on the boundary (`boundary_components`, and
a warning); with the profiled engine, which reaches zero exactly, the client components are
judged at time 0 and a client covariance that is nearly singular (a correlation of +-1) is
flagged as ``client_intercept_slope_correlation``.

statsmodels engine fit times (one core, 12 sessions plus intake per client): 400 clients and
25 therapists about 4 s (the demo study, 3,269 scores: 4.3-5.4 s with two refits of the
centre search); 4,000 clients and 250 therapists (52,000 scores) 52 s with one refit.
statsmodels' cost grows steeply with the number of clients per therapist (4,000 clients in 25
therapists: about 8 minutes).

Without a therapist term (``therapist_effect=False``, or fewer than `MIN_THERAPISTS`
therapists, whose variance could not be estimated), step 1 is the reported model (it has a
correlated intercept and slope, so there is no centre to search).

Time is the session number (``time_coding="linear"``, session 0 = intake) or
log(session_number + 1) (``"log"``: most change early in treatment). Each client with unknown
therapist counts as a therapist of their own. With ``engine="statsmodels"`` the optimizer is
one named method: a fit that does not converge is reported as not converged, not retried with
another.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.regression.mixed_linear_model import MixedLM, MixedLMParams, VCSpec

from accord.core.errors import AccordError, ConfigError, NotEstimableError
from accord.models.engine.inference import mixed_model_inference
from accord.models.engine.lmm import OPTIMIZER, LmmFit, fit_lmm
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, coefficient_frame, wald_from_variance

MIN_THERAPISTS = 5
# A random-effect SD below 5% of the residual SD (a slope's SD per SD of time) is flagged as at
# or next to the boundary (zero variance). lme4 uses 1e-4 with a bounded optimizer that reaches
# zero exactly; statsmodels optimizes SDs without bounds and stops short of zero, at 1e-3 to
# 3e-2 of the residual SD in data whose true variance is zero.
BOUNDARY_RELATIVE_SD = 0.05
# The centre search (see the module docstring) stops when the next step would move the centre
# by less than CENTRE_TOLERANCE_SD SDs of time, or after MAX_CENTRE_REFITS refits; derivatives
# in the centre are central differences with step CENTRE_STEP_SD SDs of time.
CENTRE_TOLERANCE_SD = 1e-4
MAX_CENTRE_REFITS = 10
CENTRE_STEP_SD = 1e-3
_Z = float(stats.norm.ppf(0.975))
_UNKNOWN_THERAPIST = "\x00unknown-therapist:"
_RESERVED = ("time", "time_s", "session", "therapist", "client")


@dataclass
class GrowthModel:
    """A fitted growth model: its tidy result and what predictions need.

    `client_effects` (index: client id as text; columns intercept and slope, per unit of time
    as coded) and `therapist_effects` (index: therapist id as text, including the stand-in
    therapist of each client with no known therapist) are the conditional modes (BLUPs); both
    are None when the statsmodels engine fitted the model. `data` is the model frame (one row
    per session that entered the fit; columns client, therapist, session, time, the outcome
    and the predictors); `model_spec` builds the fixed-effects design for new data.
    `exposure_levels` is (reference, other) for a text exposure, else None."""

    result: ModelResult
    fe_params: pd.Series
    client_effects: pd.DataFrame | None
    therapist_effects: pd.Series | None
    model_spec: Any
    data: pd.DataFrame
    time: str
    time_coding: str
    exposure: str
    exposure_levels: tuple[str, str] | None
    covariates: list[str] = field(default_factory=list)


def fit_growth(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    *,
    outcome: str = "phq9",
    exposure: str = "joint_goal_share",
    time: str = "session_number",
    time_coding: Literal["linear", "log"] = "linear",
    covariates: Sequence[str] = (),
    therapist_effect: bool = True,
    model_id: str = "growth",
    primary: bool = True,
    exposure_reference: str | None = None,
    optimizer: str = "lbfgs",
    reml: bool = True,
    engine: Literal["profiled", "statsmodels"] = "profiled",
    time_interactions: Sequence[str] = (),
    planned_sessions: float | None = None,
    variance_intervals: bool = False,
) -> ModelResult:
    """Fit the growth model of `outcome` on `time` x `exposure` (see the module docstring).

    `panel` is the session panel (client_id, `time`, therapist_id, `outcome`); `exposure` and
    the baseline `covariates` are client-level columns of `client_measures` (or constant
    within client in the panel, e.g. ``arm``). A two-level text exposure is coded 1 for the
    level that is not `exposure_reference` (default: the first in sorted order). Clients with
    a missing exposure or covariate are left out and counted in the diagnostics.

    The standardized effect (diagnostics ``extras``) is Feingold's (2009) d: the time x
    exposure coefficient times the planned duration `planned_sessions` (T; in the time coding)
    for exposure 1 vs 0 (for an exposure within [0, 1], such as a share or an indicator) or one
    SD apart (any other exposure), divided by the SD of the outcome at intake (session 0);
    its 95% CI scales the coefficient's Wald CI, taking the intake SD as known. Without
    `planned_sessions` it is not computed (a warning says so).

    `time_interactions` names covariates that also get their own time slope (a
    ``time:<covariate>`` term each), such as the site in a one-stage multi-site model.

    `reml` False fits by maximum likelihood instead of REML (for likelihood-ratio tests of
    fixed effects); the diagnostics record the method and its log-likelihood. `engine`
    "profiled" (the default) fits by `accord.models.engine.lmm`; "statsmodels" by MixedLM with the
    centre search, whose `optimizer` is the statsmodels method. The profiled engine falls
    back to statsmodels, with a warning, for data it cannot fit.

    With the profiled engine the fixed-effect rows also carry lmerTest's Satterthwaite `df`
    and `p_satterthwaite`, and the diagnostics the marginal and conditional R^2
    (``r_squared``); `variance_intervals` adds profile-likelihood 95% intervals of the
    random-effect SDs, the client intercept-slope correlation and the residual SD
    (``variance_parameters``; `accord.models.engine.inference`), which costs a few seconds
    per model.

    Raises ConfigError for a column that does not exist, and AccordError when there is too
    little data to fit (fewer than 3 clients, or an exposure that does not vary).
    """
    return fit_growth_model(
        panel,
        client_measures,
        outcome=outcome,
        exposure=exposure,
        time=time,
        time_coding=time_coding,
        covariates=covariates,
        therapist_effect=therapist_effect,
        model_id=model_id,
        primary=primary,
        exposure_reference=exposure_reference,
        optimizer=optimizer,
        reml=reml,
        engine=engine,
        time_interactions=time_interactions,
        planned_sessions=planned_sessions,
        variance_intervals=variance_intervals,
    ).result


def fit_growth_model(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    *,
    outcome: str = "phq9",
    exposure: str = "joint_goal_share",
    time: str = "session_number",
    time_coding: Literal["linear", "log"] = "linear",
    covariates: Sequence[str] = (),
    therapist_effect: bool = True,
    model_id: str = "growth",
    primary: bool = True,
    exposure_reference: str | None = None,
    optimizer: str = "lbfgs",
    reml: bool = True,
    engine: Literal["profiled", "statsmodels"] = "profiled",
    time_interactions: Sequence[str] = (),
    planned_sessions: float | None = None,
    variance_intervals: bool = False,
) -> GrowthModel:
    """`fit_growth` (see there for the arguments), returning the fitted model with what
    predictions need (`accord.models.predict`): fixed effects, the conditional modes of every
    client and therapist, and the design."""
    covariates, time_interactions = list(covariates), list(time_interactions)
    _check_options(outcome, exposure, covariates, time_interactions, time_coding, engine)
    data, prep = _model_data(
        panel,
        client_measures,
        outcome=outcome,
        exposure=exposure,
        time=time,
        time_coding=time_coding,
        covariates=covariates,
        exposure_reference=exposure_reference,
    )
    formula = _growth_formula(outcome, exposure, covariates, time_interactions)
    warn: list[str] = list(prep.pop("warnings"))
    exposure_levels = prep.pop("exposure_levels")
    n_known, nested = _therapist_level(data, therapist_effect, warn)
    options = {"nested": nested, "reml": reml, "variance_intervals": variance_intervals}
    fitted = _fit_with_engine(formula, data, engine, optimizer, options, warn)
    interaction = f"time:{exposure}"
    standardized = _standardized_effect(
        data, fitted["fe"], fitted["cov"], outcome, exposure, interaction, planned_sessions,
        time_coding,
    )  # fmt: skip
    if standardized.get("note"):
        warn.append(standardized.pop("note"))
    common = {
        "model": model_id,
        "outcome": outcome,
        "exposure": exposure,
        "n_obs": len(data),
        "n_clients": data["client"].nunique(),
        "converged": fitted["converged"],
    }
    extras = _growth_extras(fitted, nested, time, time_coding, standardized, prep)
    diagnostics = _growth_diagnostics(common, formula, fitted, warn, n_known, extras=extras)
    result = ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=exposure,
        coefficients=_coefficients(common, fitted, interaction if primary else None),
        diagnostics=diagnostics,
    )
    client_effects, therapist_effects = _conditional_modes(fitted["lmm"])
    return GrowthModel(
        result=result,
        fe_params=fitted["fe"].astype(float),
        client_effects=client_effects,
        therapist_effects=therapist_effects,
        model_spec=fitted["model_spec"],
        data=data,
        time=time,
        time_coding=time_coding,
        exposure=exposure,
        exposure_levels=exposure_levels,
        covariates=covariates,
    )


def _growth_formula(
    outcome: str, exposure: str, covariates: list[str], time_interactions: list[str]
) -> str:
    """The fixed part: time, the exposure and their interaction, the covariates, and a time
    slope for each covariate in `time_interactions`."""
    rhs = " + ".join(
        [f"time * {exposure}", *covariates, *(f"time:{name}" for name in time_interactions)]
    )
    return f"{outcome} ~ {rhs}"


def _growth_extras(
    fitted: dict[str, Any],
    nested: bool,
    time: str,
    time_coding: str,
    standardized: dict[str, Any],
    prep: dict[str, Any],
) -> dict[str, Any]:
    """The diagnostics' ``extras``: the random-effects structure, the time coding, the centre
    of time for the client effects and its search, the standardized effect, the engine's own
    extras and the model data's counts (`prep`)."""
    return {
        "structure": (
            "therapist random intercept; client random intercept and slope (correlated)"
            if nested
            else "client random intercept and slope (correlated); no therapist term"
        ),
        "time": time,
        "time_coding": time_coding,
        "time_centre_for_client_effects": fitted["centre"],
        "centre_search": fitted["search"],
        "client_level_step": fitted["client_level_step"],
        "standardized_effect": standardized,
        **fitted["extras"],
        **prep,
    }


def _therapist_level(
    data: pd.DataFrame, therapist_effect: bool, warn: list[str]
) -> tuple[int, bool]:
    """The number of therapists with a known id and whether the model has a therapist term
    (asked for, and at least `MIN_THERAPISTS` of them; a warning in `warn` otherwise)."""
    n_known = sum(not t.startswith(_UNKNOWN_THERAPIST) for t in data["therapist"].unique())
    nested = therapist_effect and n_known >= MIN_THERAPISTS
    if therapist_effect and not nested:
        warn.append(
            f"therapist variance not estimated: {n_known} therapist(s) with known id, "
            f"fewer than {MIN_THERAPISTS}; the model has client random effects only"
        )
    return n_known, nested


def _check_options(
    outcome: str,
    exposure: str,
    covariates: list[str],
    time_interactions: list[str],
    time_coding: str,
    engine: str,
) -> None:
    """ConfigError for an unknown time coding or engine, or an unusable term name."""
    if time_coding not in ("linear", "log"):
        raise ConfigError(
            f"growth model: time_coding must be 'linear' or 'log', not {time_coding!r}"
        )
    if engine not in ("profiled", "statsmodels"):
        raise ConfigError(
            f"growth model: engine must be 'profiled' or 'statsmodels', not {engine!r}"
        )
    for name in [outcome, exposure, *covariates]:
        if not name.isidentifier() or name in _RESERVED:
            raise ConfigError(f"growth model: {name!r} cannot be used as a model term name")
    for name in time_interactions:
        if name not in covariates:
            raise ConfigError(
                f"growth model: the time interaction {name!r} is not one of the covariates"
            )


def _fit_with_engine(
    formula: str,
    data: pd.DataFrame,
    engine: str,
    optimizer: str,
    options: dict[str, bool],
    warn: list[str],
) -> dict[str, Any]:
    """The fitted model from the chosen engine, falling back to statsmodels (with a warning)
    where the profiled engine cannot fit or certify its optimum; the fit's warnings and any
    variance on the boundary are appended to `warn`. `options`: nested, reml and
    variance_intervals (profiled engine only)."""
    nested, reml = options["nested"], options["reml"]
    time_sd = float(data["time"].std(ddof=0))
    fitted: dict[str, Any] | None = None
    if engine == "profiled":
        try:
            fitted = _profiled_growth(
                formula, data, time_sd, nested=nested, reml=reml,
                variance_intervals=options["variance_intervals"],
            )  # fmt: skip
        except (np.linalg.LinAlgError, ValueError) as exc:
            warn.append(
                f"the profiled engine could not fit the model ({type(exc).__name__}: {exc}); "
                "fitted with statsmodels MixedLM instead"
            )
    if fitted is not None and not fitted["converged"]:
        # Never report an uncertified point silently: statsmodels' fit replaces it where that
        # converged at least as high.
        reference = _statsmodels_growth(
            formula, data, time_sd, nested=nested, reml=reml, optimizer=optimizer
        )
        if reference["converged"] and reference["llf"] >= fitted["llf"]:
            warn.append(
                "the profiled engine could not certify its optimum; fitted with statsmodels "
                "MixedLM instead"
            )
            fitted = reference
    if fitted is None:
        fitted = _statsmodels_growth(
            formula, data, time_sd, nested=nested, reml=reml, optimizer=optimizer
        )
    warn += fitted["warnings"]
    if fitted["boundary_components"]:
        warn.append(
            "random-effect variance at or next to zero (on the boundary): "
            + ", ".join(fitted["boundary_components"])
        )
    return fitted


def _coefficients(
    common: dict[str, Any], fitted: dict[str, Any], primary_term: str | None
) -> pd.DataFrame:
    """The tidy fixed-effect rows: Wald estimate, SE, CI and p, and with the profiled engine
    lmerTest's Satterthwaite df and p-value (`accord.models.engine.inference`)."""
    fe, cov = fitted["fe"], fitted["cov"]
    satterthwaite = fitted.get("satterthwaite")
    rows = []
    for term in fe.index:
        row = {
            **common,
            "term": term,
            **wald_from_variance(float(fe[term]), float(cov.loc[term, term])),
            "primary": term == primary_term,
        }
        if satterthwaite is not None:
            row["df"] = float(satterthwaite.loc[term, "df"])
            row["p_satterthwaite"] = float(satterthwaite.loc[term, "p_value"])
        rows.append(row)
    return coefficient_frame(rows)


def _growth_diagnostics(
    common: dict[str, Any],
    formula: str,
    fitted: dict[str, Any],
    warn: list[str],
    n_therapists: int,
    *,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The diagnostics record of a growth model (see `ModelResult`), with the R^2 and the
    variance parameters' intervals when the profiled engine computed them."""
    variance_parameters = fitted.get("variance_parameters")
    return {
        "model": common["model"],
        "outcome": common["outcome"],
        "exposure": common["exposure"],
        "formula": formula,
        "method": "REML" if fitted["reml"] else "ML",
        "optimizer": fitted["optimizer"],
        "engine": fitted["engine"],
        "converged": common["converged"],
        "warnings": list(dict.fromkeys(warn)),
        "log_likelihood": fitted["llf"],
        "random_effects": fitted["random_effects"],
        "boundary": bool(fitted["boundary_components"]),
        "boundary_components": fitted["boundary_components"],
        "n_obs": common["n_obs"],
        "n_clients": common["n_clients"],
        "n_therapists": int(n_therapists),
        "r_squared": fitted.get("r_squared"),
        "variance_parameters": (
            None if variance_parameters is None else variance_parameters.to_dict("records")
        ),
        "extras": extras,
    }


def _conditional_modes(lmm: LmmFit | None) -> tuple[pd.DataFrame | None, pd.Series | None]:
    """Client (intercept, slope) and therapist conditional modes of a profiled fit."""
    if lmm is None:
        return None, None
    client_effects = pd.DataFrame(
        lmm.client_effects,
        index=pd.Index(lmm.client_labels.astype(str), name="client"),
        columns=["intercept", "slope"],
    )
    therapist_effects = pd.Series(
        lmm.therapist_effects if lmm.therapist_effects is not None else [],
        index=pd.Index(
            lmm.therapist_labels.astype(str) if lmm.therapist_labels is not None else [],
            name="therapist",
        ),
        dtype=float,
    )
    return client_effects, therapist_effects


def _profiled_growth(
    formula: str,
    data: pd.DataFrame,
    time_sd: float,
    *,
    nested: bool,
    reml: bool,
    variance_intervals: bool = False,
) -> dict[str, Any]:
    """The growth model by the profiled (RE)ML engine of `accord.models.engine.lmm`.

    The client-level model (correlated client intercept and slope, no therapist term) is
    fitted first, as with statsmodels: it is reported as ``client_level_step`` and its
    estimates, with a tenth of the client covariance moved to the therapist level, start the
    nested fit. The correlated client covariance is estimated directly, so there is no centre
    to search: ``centre_search`` records the centre and log-likelihood at the start and at the
    optimum (one fit), and the centre is where the fitted client intercepts and slopes are
    uncorrelated. The Satterthwaite df, R^2 and (with `variance_intervals`) the profile
    intervals of the variance parameters are computed from the reported fit."""
    design = smf.ols(formula, data)
    if len(design.endog) != len(data):
        raise AccordError("growth model: the fixed-effects design dropped rows")
    names = list(design.exog_names)
    y = np.asarray(design.endog, dtype=float)
    X = np.asarray(design.exog, dtype=float)
    client = data["client"].to_numpy(dtype=object)
    time = data["time"].to_numpy(dtype=float)
    step1 = fit_lmm(y, X, client, time=time, client_effects="correlated", reml=reml, fe_names=names)
    step1_effects = _lmm_variances(step1)
    fit = step1
    centre: float | None = None
    search: dict[str, Any] | None = None
    therapist = data["therapist"].to_numpy(dtype=object) if nested else None
    if nested:
        start = (0.9 * step1.client_covariance, 0.1 * step1.client_covariance[0, 0])
        fit = fit_lmm(
            y,
            X,
            client,
            time=time,
            therapist=therapist,
            client_effects="correlated",
            reml=reml,
            fe_names=names,
            start_variances=(*start, step1.residual_variance),
        )
        centre, search = _profiled_centre(step1, fit, time_sd)
    random_effects = _lmm_variances(fit)
    method = "reml" if reml else "ml"
    inference = mixed_model_inference(
        fit, y, X, client, time=time, therapist=therapist, profile=variance_intervals
    )
    return {
        "engine": "profiled",
        "reml": reml,
        "satterthwaite": inference["satterthwaite"].set_index("term"),
        "r_squared": inference["r_squared"],
        "variance_parameters": inference["variance_parameters"] if variance_intervals else None,
        "optimizer": f"accord-profiled-{method} ({OPTIMIZER})",
        "fe": pd.Series(fit.fe_params, index=names),
        "cov": pd.DataFrame(fit.fe_cov, index=names, columns=names),
        "random_effects": random_effects,
        "boundary_components": _lmm_boundary(fit, time_sd),
        "llf": float(fit.log_likelihood),
        "converged": bool(fit.converged),
        "warnings": [] if fit.converged else [f"the optimizer did not converge: {fit.message}"],
        "centre": centre,
        "search": search,
        "client_level_step": {"converged": step1.converged, "random_effects": step1_effects},
        "extras": {
            "profiled_fit": {
                "n_evaluations": fit.n_evaluations,
                "message": fit.message,
                **{k: v for k, v in fit.extras.items() if k != "time_sd"},
            },
        },
        "lmm": fit,
        "model_spec": design.data.model_spec,
    }


def _lmm_variances(fit: LmmFit) -> dict[str, float]:
    """Variance components of a profiled fit, named as in the diagnostics."""
    cov = fit.client_covariance
    out = {}
    if fit.therapist_variance is not None:
        out["therapist_intercept"] = float(fit.therapist_variance)
    out.update(
        client_intercept=float(cov[0, 0]),
        client_slope=float(cov[1, 1]),
        client_intercept_slope_covariance=float(cov[0, 1]),
        residual=float(fit.residual_variance),
    )
    return out


def _lmm_boundary(fit: LmmFit, time_sd: float) -> list[str]:
    """Components at or next to zero variance, judged with the slope per SD of time (so the
    rule does not depend on the units of time): the therapist intercept, the client intercept
    (at time 0), the client slope and, when neither client variance is, a client covariance
    that is nearly singular (an intercept-slope correlation at +-1)."""
    floor = (BOUNDARY_RELATIVE_SD**2) * fit.residual_variance
    flagged = []
    if fit.therapist_variance is not None and fit.therapist_variance <= floor:
        flagged.append("therapist_intercept")
    scale = np.diag([1.0, time_sd])
    cov = scale @ fit.client_covariance @ scale
    for i, name in enumerate(("client_intercept", "client_slope")):
        if cov[i, i] <= floor:
            flagged.append(name)
    if (
        "client_intercept" not in flagged
        and "client_slope" not in flagged
        and np.linalg.eigvalsh(cov).min() <= floor
    ):
        flagged.append("client_intercept_slope_correlation")
    return flagged


def _profiled_centre(
    step1: LmmFit, fit: LmmFit, time_sd: float
) -> tuple[float | None, dict[str, Any]]:
    """The centre of the client slope (where fitted intercepts and slopes are uncorrelated)
    and the record kept in ``centre_search``."""
    start_cov = step1.client_covariance
    slope_floor = (BOUNDARY_RELATIVE_SD**2) * fit.residual_variance / time_sd**2
    start = -start_cov[0, 1] / start_cov[1, 1] if start_cov[1, 1] > slope_floor else None
    cov = fit.client_covariance
    centre = -cov[0, 1] / cov[1, 1] if cov[1, 1] > slope_floor else start
    record = {
        "method": (
            "none needed: the correlated client covariance is estimated directly (profiled "
            "REML); the centre is where the fitted client intercepts and slopes are "
            "uncorrelated, and the record gives the start (the client-level step) and the "
            "optimum"
        ),
        "start": start,
        "converged": bool(fit.converged),
        "refits": 1,
        "max_refits": 1,
        "tolerance": None,
        "centres": [start, centre],
        "log_likelihoods": [float(fit.extras["start_log_likelihood"]), float(fit.log_likelihood)],
        "score": None,
        "refit_warnings": [],
        "note": None,
    }
    return (None if centre is None else float(centre)), record


def _statsmodels_growth(
    formula: str,
    data: pd.DataFrame,
    time_sd: float,
    *,
    nested: bool,
    reml: bool,
    optimizer: str,
) -> dict[str, Any]:
    """The growth model by statsmodels MixedLM with the centre search (module docstring)."""
    # The random slope is fitted per SD of time: with session numbers up to 12 or more, slope
    # and intercept variances differ by orders of magnitude and the optimizer can stop early.
    data = data.assign(time_s=data["time"] / time_sd)
    client_fit = _fit(
        lambda: smf.mixedlm(formula, data, groups="client", re_formula="~time_s"),
        optimizer,
        reml=reml,
    )
    step1 = _client_level_summary(client_fit, time_sd)
    warn: list[str] = []
    search: dict[str, Any] | None = None
    if nested:
        fit, centre, search, warn = _statsmodels_nested(
            formula, data, time_sd, client_fit, step1, reml=reml, optimizer=optimizer
        )
    else:
        centre = None
        fit = client_fit
    warn += fit["warnings"]
    if fit["error"]:
        warn.append(f"fit failed: {fit['error']}")
    return {
        "engine": "statsmodels",
        "reml": reml,
        "optimizer": f"statsmodels-mixedlm ({optimizer})",
        **_statsmodels_estimates(fit, search, step1, centre, time_sd, nested=nested),
        "warnings": warn,
        "centre": centre,
        "search": search,
        "client_level_step": {
            "converged": step1["converged"],
            "random_effects": step1["random_effects"],
        },
        "extras": {},
        "lmm": None,
        "model_spec": smf.ols(formula, data).data.model_spec,
    }


def _statsmodels_nested(
    formula: str,
    data: pd.DataFrame,
    time_sd: float,
    client_fit: dict[str, Any],
    step1: dict[str, Any],
    *,
    reml: bool,
    optimizer: str,
) -> tuple[dict[str, Any], float, dict[str, Any], list[str]]:
    """Steps 2 and 3 of the module docstring: the nested fit at step 1's centre and the
    centre search. Returns the fit reported, its centre, the search record and warnings."""
    warn: list[str] = []
    centre, bounds, centre_note = _uncorrelated_centre(step1, data["time"])
    if centre_note:
        warn.append(centre_note)
    design = _NestedDesign(formula, data, time_sd, reml=reml)
    fit = _fit(
        lambda: design.model(centre),
        optimizer,
        start=_nested_start(client_fit, step1, centre, time_sd),
        reml=reml,
    )
    warn += [f"client-level step: {w}" for w in client_fit["warnings"]]
    fit, centre, search = _centre_search(design, fit, centre, bounds, optimizer)
    if search["note"]:
        warn.append(search["note"])
    return fit, centre, search, warn


def _statsmodels_estimates(
    fit: dict[str, Any],
    search: dict[str, Any] | None,
    step1: dict[str, Any],
    centre: float | None,
    time_sd: float,
    *,
    nested: bool,
) -> dict[str, Any]:
    """Fixed effects, their covariance, variance components, boundary components,
    log-likelihood and convergence of a statsmodels fit (missing where it failed)."""
    result = fit["result"]
    converged = bool(
        result is not None
        and result.converged
        and not fit["error"]
        and (search is None or search["converged"])
    )
    if result is None or fit["error"]:
        names = fit["exog_names"] or []
        return {
            "fe": pd.Series(np.nan, index=names),
            "cov": pd.DataFrame(np.nan, index=names, columns=names),
            "random_effects": {},
            "boundary_components": [],
            "llf": math.nan,
            "converged": converged,
        }
    fe = result.fe_params
    return {
        "fe": fe,
        "cov": result.cov_params().loc[fe.index, fe.index],
        "random_effects": (
            _nested_variances(result, centre, time_sd) if nested else step1["random_effects"]
        ),
        "boundary_components": _boundary(result, nested),
        "llf": float(result.llf),
        "converged": converged,
    }


def _model_data(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    *,
    outcome: str,
    exposure: str,
    time: str,
    time_coding: str,
    covariates: list[str],
    exposure_reference: str | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The model frame (one row per observed score, with client-level predictors and the
    therapist) and what its preparation recorded (warnings, exposure coding, exclusions)."""
    rows = _session_rows(panel, outcome, time, time_coding)
    level = pd.DataFrame(index=pd.Index(rows["client"].unique(), name="client"))
    for name in [exposure, *covariates]:
        values, _ = _per_client(panel, client_measures, name, required=True)
        level[name] = values.reindex(level.index)
    complete = level.notna().all(axis=1)
    excluded = int((~complete).sum())
    level = level.loc[complete]
    level[exposure], exposure_coding, exposure_levels = _code_exposure(
        level[exposure], exposure, exposure_reference
    )
    therapist, switched = _per_client(panel, client_measures, "therapist_id", required=False)
    data = rows.merge(level, left_on="client", right_index=True, how="inner")
    data, n_unknown = _attach_therapist(data, therapist)
    _check_estimable(data, outcome, exposure)
    notes: list[str] = []
    if switched:
        notes.append(
            f"{switched} client(s) saw more than one therapist; each is counted with the "
            "therapist of their earliest listed session"
        )
    if excluded:
        notes.append(f"{excluded} client(s) left out for a missing exposure or covariate")
    prep = {
        "warnings": notes,
        "exposure_coding": exposure_coding,
        "exposure_levels": exposure_levels,
        "clients_excluded_missing_predictor": excluded,
        "clients_unknown_therapist": n_unknown,
    }
    return data, prep


def _session_rows(panel: pd.DataFrame, outcome: str, time: str, time_coding: str) -> pd.DataFrame:
    """The panel's rows with an observed outcome: client (as text), session and coded time."""
    for column in ("client_id", time, outcome):
        if column not in panel.columns:
            raise ConfigError(f"growth model: the session panel has no column {column!r}")
    rows = panel.loc[panel[outcome].notna(), ["client_id", time, outcome]].copy()
    rows[outcome] = pd.to_numeric(rows[outcome], errors="raise").astype(float)
    rows["client"] = rows["client_id"].astype(str)
    session = pd.to_numeric(rows[time], errors="raise").astype(float)
    rows["session"] = session
    rows["time"] = np.log1p(session) if time_coding == "log" else session
    return rows


def _code_exposure(
    values: pd.Series, exposure: str, exposure_reference: str | None
) -> tuple[pd.Series, str, tuple[str, str] | None]:
    """A numeric exposure as given; a two-level text exposure as 1 for the level that is not
    the reference (default: the first in sorted order). Returns the coded values, the coding
    and the (reference, other) levels of a text exposure."""
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.astype(float), "as given", None
    levels = sorted(values.astype(str).unique())
    if len(levels) != 2:
        raise ConfigError(
            f"growth model: the exposure {exposure!r} is text with {len(levels)} levels; "
            "a text exposure must have exactly two"
        )
    reference = exposure_reference if exposure_reference is not None else levels[0]
    if reference not in levels:
        raise ConfigError(f"growth model: exposure_reference {reference!r} is not a level")
    other = next(lv for lv in levels if lv != reference)
    coded = (values.astype(str) == other).astype(float)
    return coded, f"1 = {other}, 0 = {reference}", (reference, other)


def _attach_therapist(data: pd.DataFrame, therapist: pd.Series) -> tuple[pd.DataFrame, int]:
    """`data` with its therapist column (a client with no known therapist counts as a
    therapist of their own), sorted by therapist, client and time; and the number of clients
    with no known therapist."""
    th = therapist.reindex(data["client"]).to_numpy(dtype=object)
    unknown = pd.isna(th)
    n_unknown = int(data.loc[unknown, "client"].nunique())
    th = np.where(unknown, _UNKNOWN_THERAPIST + data["client"].to_numpy(dtype=object), th)
    data["therapist"] = pd.Series(th, index=data.index).astype(str)
    data = data.sort_values(["therapist", "client", "time"], kind="stable").reset_index(drop=True)
    return data, n_unknown


def _check_estimable(data: pd.DataFrame, outcome: str, exposure: str) -> None:
    """NotEstimableError with fewer than 3 clients, one session or an exposure that does not
    vary across clients."""
    n_clients = data["client"].nunique()
    if n_clients < 3:
        raise NotEstimableError(
            f"growth model: {n_clients} client(s) with {outcome} and {exposure}; at least 3 needed"
        )
    if data["session"].nunique() < 2:
        raise NotEstimableError(f"growth model: {outcome} is observed at one session only")
    if data.groupby("client")[exposure].first().nunique() < 2:
        raise NotEstimableError(
            f"growth model: the exposure {exposure!r} does not vary across clients"
        )


def _per_client(
    panel: pd.DataFrame, client_measures: pd.DataFrame, column: str, *, required: bool
) -> tuple[pd.Series, int]:
    """A client-level column indexed by client id (as text), from client_measures if there,
    else from the panel, and the number of clients whose value varies.

    A predictor must be constant within client (ConfigError otherwise); for the therapist
    (`required` False) a client who saw several keeps the first listed.
    """
    for frame in (client_measures, panel):
        if column in frame.columns:
            values = frame[["client_id", column]].copy()
            if "session_number" in frame.columns:
                order = np.argsort(frame["session_number"].to_numpy(), kind="stable")
                values = values.iloc[order]
            values["client_id"] = values["client_id"].astype(str)
            if isinstance(values[column].dtype, pd.CategoricalDtype):
                values[column] = values[column].astype(object)
            per_client = values.dropna(subset=[column]).groupby("client_id", sort=True)[column]
            varying = int((per_client.nunique() > 1).sum())
            if varying and required:
                raise ConfigError(
                    f"growth model: {column!r} varies within client; it must be client-level"
                )
            return per_client.first(), varying
    if required:
        raise ConfigError(
            f"growth model: no column {column!r} in client measures or the session panel"
        )
    return pd.Series(dtype=object), 0


def _fit(
    build, optimizer: str, start: MixedLMParams | None = None, *, reml: bool = True
) -> dict[str, Any]:
    """Build and fit a MixedLM by REML (or ML) with one optimizer, recording every warning."""
    out: dict[str, Any] = {"result": None, "warnings": [], "error": None, "exog_names": None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = build()
            out["exog_names"] = list(model.exog_names)
            out["result"] = model.fit(reml=reml, method=[optimizer], start_params=start)
        except (np.linalg.LinAlgError, ValueError) as exc:
            out["error"] = f"{type(exc).__name__}: {exc}"
    out["warnings"] = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return out


def _client_level_summary(fit: dict[str, Any], time_sd: float) -> dict[str, Any]:
    """Step 1's client covariance in the units of time as coded (not per SD of time)."""
    result = fit["result"]
    if result is None or fit["error"]:
        return {"converged": False, "random_effects": {}, "cov_re": None, "scale": math.nan}
    unscale = np.diag([1.0, 1.0 / time_sd])
    cov_re = unscale @ np.asarray(result.cov_re, dtype=float) @ unscale
    return {
        "converged": bool(result.converged),
        "random_effects": {
            "client_intercept": float(cov_re[0, 0]),
            "client_slope": float(cov_re[1, 1]),
            "client_intercept_slope_covariance": float(cov_re[0, 1]),
            "residual": float(result.scale),
        },
        "cov_re": cov_re,
        "scale": float(result.scale),
    }


def _nested_start(
    client_fit: dict[str, Any], step1: dict[str, Any], centre: float, time_sd: float
) -> MixedLMParams | None:
    """Starting values for the nested fit from the client-level step.

    From statsmodels' default start (all variances equal to the residual variance) the
    optimizer can stop at a poor local optimum with a variance component far too large, so
    the fit starts where step 1 ended: client intercept variance at the centre, slope
    variance, and a tenth of the client intercept variance moved to the therapist level
    (step 1 holds both in one; only the start depends on this split). Variances are on
    statsmodels' scale, relative to the residual variance.
    """
    cov_re, scale = step1["cov_re"], step1["scale"]
    if cov_re is None or not (scale > 0 and np.all(np.isfinite(cov_re))):
        return None
    intercept = (cov_re[0, 0] + 2 * centre * cov_re[0, 1] + centre**2 * cov_re[1, 1]) / scale
    slope = cov_re[1, 1] * time_sd**2 / scale
    intercept = max(intercept, 1e-4)
    return MixedLMParams.from_components(
        fe_params=np.asarray(client_fit["result"].fe_params, dtype=float),
        cov_re=np.array([[0.1 * intercept]]),
        vcomp=np.array([0.9 * intercept, max(slope, 1e-4)]),
    )


def _uncorrelated_centre(
    step1: dict[str, Any], time: pd.Series
) -> tuple[float, tuple[float, float], str | None]:
    """Where the centre search starts (step 1's uncorrelated point, or with no usable estimate
    the mean time) and the range it may search.

    Any centre gives the same family of models, but one far outside the observed times makes
    the intercept component nearly collinear with the slope, so the centre is kept within the
    observed range widened by its own width on either side."""
    fallback = float(time.mean())
    span = float(time.max() - time.min())
    bounds = (float(time.min()) - span, float(time.max()) + span)
    cov_re, scale = step1["cov_re"], step1["scale"]
    if cov_re is None or not step1["converged"]:
        return (
            fallback,
            bounds,
            ("client-level step did not converge; the centre search starts at the mean time"),
        )
    slope_var = cov_re[1, 1]
    if not slope_var * float(time.std(ddof=0)) ** 2 > (BOUNDARY_RELATIVE_SD**2) * scale:
        return (
            fallback,
            bounds,
            (
                "client-level step found no slope variance; the centre search starts at the "
                "mean time"
            ),
        )
    centre = -cov_re[0, 1] / slope_var
    if not bounds[0] <= centre <= bounds[1]:
        clipped = min(max(centre, bounds[0]), bounds[1])
        return (
            clipped,
            bounds,
            (
                f"the client-level step's uncorrelated point of client intercepts and slopes "
                f"({centre:.3g}) lies far outside the observed times; the centre search starts "
                f"at {clipped:.3g}"
            ),
        )
    return float(centre), bounds, None


class _NestedDesign:
    """The nested model (therapist groups; client intercept and slope variance components
    with the slope centred at c) for any centre c.

    Built from arrays rather than from a formula, so that a model at another centre costs
    milliseconds: the centre search evaluates the log-likelihood at several centres."""

    def __init__(
        self, formula: str, data: pd.DataFrame, time_sd: float, *, reml: bool = True
    ) -> None:
        fixed = smf.mixedlm(formula, data, groups="therapist")
        if len(fixed.endog) != len(data):
            raise AccordError("growth model: the fixed-effects design dropped rows")
        self.endog = pd.Series(fixed.endog, name=fixed.endog_names)
        self.exog = pd.DataFrame(fixed.exog, columns=fixed.exog_names)
        self.groups = data["therapist"].to_numpy(dtype=object)
        self.time_sd = time_sd
        self.reml = reml
        time = data["time"].to_numpy(dtype=float)
        client = data["client"].to_numpy(dtype=object)
        # statsmodels orders groups by sorted label and rows within a group as in the data.
        self.labels = sorted(set(self.groups))
        self.blocks = []
        for label in self.labels:
            rows = np.flatnonzero(self.groups == label)
            codes, clients = pd.factorize(client[rows])
            indicator = np.zeros((len(rows), len(clients)))
            indicator[np.arange(len(rows)), codes] = 1.0
            self.blocks.append((time[rows], indicator, [str(c) for c in clients]))

    def model(self, centre: float) -> MixedLM:
        intercepts = [indicator for _, indicator, _ in self.blocks]
        slopes = [
            indicator * ((t - centre) / self.time_sd)[:, None] for t, indicator, _ in self.blocks
        ]
        names = [clients for _, _, clients in self.blocks]
        vc = VCSpec(
            ["client_intercept", "client_slope"],
            [names, [[f"{c}:time" for c in group] for group in names]],
            [intercepts, slopes],
        )
        model = MixedLM(
            self.endog,
            self.exog,
            groups=self.groups,
            exog_re=np.ones((len(self.groups), 1)),
            exog_vc=vc,
        )
        if list(model.group_labels) != self.labels:
            raise AccordError("growth model: unexpected order of therapist groups")
        return model

    def loglike(self, centre: float, params: MixedLMParams) -> float:
        """(RE)ML log-likelihood at `centre` with the variance parameters held at `params`."""
        model = self.model(centre)
        # Set as MixedLM.fit sets them: no penalties.
        model.reml, model.cov_pen, model.fe_pen = self.reml, None, None
        return float(model.loglike(params, profile_fe=True))


def _centre_search(
    design: _NestedDesign,
    fit: dict[str, Any],
    centre: float,
    bounds: tuple[float, float],
    optimizer: str,
) -> tuple[dict[str, Any], float, dict[str, Any]]:
    """Maximise the REML log-likelihood over the centre c (see the module docstring).

    Newton steps on the profile log-likelihood p(c) = max over the other parameters: by the
    envelope theorem p'(c) is the partial derivative at the fitted parameters, taken by
    central differences. The first step divides by the partial second derivative at fixed
    parameters, which is at least as curved as p, so it never overshoots; later steps use the
    secant of p'. Each step refits from the previous estimates. Returns the fit reported (the
    last one that converged), its centre and the search record."""
    time_sd = design.time_sd
    result = fit["result"]
    record: dict[str, Any] = {
        "method": "Newton steps on the profile REML log-likelihood over the centre",
        "start": centre,
        "converged": False,
        "refits": 0,
        "max_refits": MAX_CENTRE_REFITS,
        "tolerance": CENTRE_TOLERANCE_SD * time_sd,
        "centres": [centre],
        "log_likelihoods": [float(result.llf) if result is not None else math.nan],
        "score": math.nan,
        "refit_warnings": [],
        "note": None,
    }
    if result is None or fit["error"] or not result.converged:
        record["note"] = (
            "the nested fit at the starting centre did not converge; the centre was not searched"
        )
        return fit, centre, record
    if float(result.vcomp[1]) <= (BOUNDARY_RELATIVE_SD**2) * float(result.scale):
        # No slope variance: every centre gives the same model.
        record["converged"] = True
        return fit, centre, record

    previous: tuple[float, float] | None = None
    while True:
        params = fit["result"].params_object
        target, score = _centre_step(design, params, centre, previous, bounds, record)
        if target is None:
            break
        refit = _fit(lambda c=target: design.model(c), optimizer, start=params, reml=design.reml)
        if not _record_refit(record, refit, fit, centre, target):
            break
        previous = (centre, score)
        fit, centre = refit, target
    return fit, centre, record


def _centre_step(
    design: _NestedDesign,
    params: MixedLMParams,
    centre: float,
    previous: tuple[float, float] | None,
    bounds: tuple[float, float],
    record: dict[str, Any],
) -> tuple[float | None, float]:
    """The next centre of the search and the score at this one; None (with ``converged`` or
    a ``note`` set in `record`) where the search ends here."""
    h = CENTRE_STEP_SD * design.time_sd
    below, at, above = (design.loglike(centre + k * h, params) for k in (-1.0, 0.0, 1.0))
    score = (above - below) / (2 * h)
    curvature = (above - 2 * at + below) / h**2
    record["score"] = score
    if previous is not None:
        secant = (score - previous[1]) / (centre - previous[0])
        if secant < 0:
            curvature = secant
    if not curvature < 0:
        record["note"] = (
            f"the REML log-likelihood is not concave in the centre at {centre:.4g}; "
            "the centre search stopped there"
        )
        return None, score
    step = -score / curvature
    if abs(step) <= record["tolerance"]:
        record["converged"] = True
        return None, score
    target = min(max(centre + step, bounds[0]), bounds[1])
    if target == centre:
        record["converged"] = True
        record["note"] = (
            f"the uncorrelated point of client intercepts and slopes lies beyond {centre:.3g}, "
            "far outside the observed times; client effects are centred there, which "
            "restricts their covariance"
        )
        return None, score
    if record["refits"] == MAX_CENTRE_REFITS:
        record["note"] = (
            f"the centre search did not converge in {MAX_CENTRE_REFITS} refits (last step "
            f"{step:.3g}); the fit at centre {centre:.4g} is reported"
        )
        return None, score
    return target, score


def _record_refit(
    record: dict[str, Any],
    refit: dict[str, Any],
    fit: dict[str, Any],
    centre: float,
    target: float,
) -> bool:
    """Add a refit at `target` to the search record; False (with a note) when it cannot
    replace the fit at `centre` (it did not converge or lowered the log-likelihood)."""
    record["refits"] += 1
    record["centres"].append(target)
    new = refit["result"]
    record["log_likelihoods"].append(
        float(new.llf) if new is not None and not refit["error"] else math.nan
    )
    record["refit_warnings"] += [w for w in refit["warnings"] if w not in record["refit_warnings"]]
    if new is None or refit["error"] or not new.converged:
        record["note"] = (
            f"the refit at centre {target:.4g} did not converge; the fit at centre "
            f"{centre:.4g} is reported and the centre search stopped"
        )
        return False
    if float(new.llf) < float(fit["result"].llf) - 1e-8:
        record["note"] = (
            f"the refit at centre {target:.4g} lowered the log-likelihood; the fit at "
            f"centre {centre:.4g} is reported and the centre search stopped"
        )
        return False
    return True


def _nested_variances(result, centre: float, time_sd: float) -> dict[str, float]:
    names = list(result.model.exog_vc.names)
    vc = dict(zip(names, np.asarray(result.vcomp, dtype=float), strict=True))
    intercept_c, slope = vc["client_intercept"], vc["client_slope"] / time_sd**2
    # Back to the time origin: u0 = u0' - c u1, with u0' and u1 independent.
    return {
        "therapist_intercept": float(np.asarray(result.cov_re)[0, 0]),
        "client_intercept": float(intercept_c + centre**2 * slope),
        "client_slope": float(slope),
        "client_intercept_slope_covariance": float(-centre * slope),
        "residual": float(result.scale),
    }


def _boundary(result, nested: bool) -> list[str]:
    """Random-effect components estimated at (or next to) zero variance.

    Judged as fitted, with the slope per SD of time, so the rule does not depend on the units
    of time."""
    scale = float(result.scale)
    floor = (BOUNDARY_RELATIVE_SD**2) * scale
    flagged = []
    if nested:
        if float(np.asarray(result.cov_re)[0, 0]) <= floor:
            flagged.append("therapist_intercept")
        names = list(result.model.exog_vc.names)
        for name, value in zip(names, np.asarray(result.vcomp, dtype=float), strict=True):
            if value <= floor:
                flagged.append(name)
    else:
        cov_re = np.asarray(result.cov_re, dtype=float)
        for i, name in enumerate(("client_intercept", "client_slope")):
            if cov_re[i, i] <= floor:
                flagged.append(name)
        if not flagged and np.linalg.eigvalsh(cov_re).min() <= floor:
            flagged.append("client_intercept_slope_correlation")
    return flagged


def _standardized_effect(
    data: pd.DataFrame,
    fe: pd.Series,
    cov: pd.DataFrame,
    outcome: str,
    exposure: str,
    interaction: str,
    planned_sessions: float | None,
    time_coding: str,
) -> dict[str, Any]:
    """Feingold's (2009) d for a growth model: the difference in model-implied change over the
    planned duration between two exposure values, in intake SDs of the outcome,

        d = b(time x exposure) x delta x (time(T) - time(0)) / SD(intake),

    T = `planned_sessions` (time(T) = T, or log(T + 1) with log time), delta = 1 for an
    exposure within [0, 1] (a share or an indicator: 1 vs 0), else 1 SD of the exposure over
    clients. The 95% CI scales the interaction's Wald CI (the intake SD taken as known). The
    baseline difference (the exposure's main effect) is not part of d."""
    per_client = data.groupby("client")[exposure].first()
    if per_client.between(0, 1).all():
        delta, contrast = 1.0, "exposure 1 vs 0"
    else:
        delta, contrast = float(per_client.std(ddof=1)), "exposure 1 SD higher"
    intake = data.loc[data["session"] == 0, outcome]
    out: dict[str, Any] = {
        "formula": "Feingold (2009) d = b(time x exposure) x delta x T / SD(intake)",
        "contrast": contrast,
        "exposure_difference": delta,
        "planned_sessions": math.nan if planned_sessions is None else float(planned_sessions),
        "time_at_planned_end": math.nan,
        "intake_sd": math.nan,
        "n_intake": len(intake),
        "difference": math.nan,
        "difference_se": math.nan,
        "estimate": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }
    if interaction not in fe.index:
        return out
    if planned_sessions is None:
        out["note"] = "no planned duration (analysis.planned_sessions): Feingold d not computed"
        return out
    span = math.log1p(planned_sessions) if time_coding == "log" else float(planned_sessions)
    difference = float(fe[interaction]) * delta * span
    se = math.sqrt(max(float(cov.loc[interaction, interaction]), 0.0)) * delta * span
    out.update(time_at_planned_end=span, difference=difference, difference_se=se)
    if len(intake) < 2:
        out["note"] = "no intake (session 0) scores: standardized effect not computed"
        return out
    sd = float(intake.std(ddof=1))
    out.update(
        intake_sd=sd,
        estimate=difference / sd,
        ci_low=(difference - _Z * se) / sd,
        ci_high=(difference + _Z * se) / sd,
    )
    return out


def fit_growth_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_growth` for a model declared in config (options: time, exposure_reference,
    planned_sessions: T of Feingold's d, filled from the analysis settings by `model_specs`)."""
    planned = spec.options.get("planned_sessions")
    return fit_growth(
        panel,
        client_measures,
        planned_sessions=None if planned is None else float(planned),
        outcome=spec.outcome,
        exposure=spec.exposure,
        time=spec.options.get("time", "session_number"),
        time_coding=spec.time_coding,
        covariates=spec.covariates,
        therapist_effect=spec.therapist_effect,
        model_id=spec.id,
        primary=spec.primary,
        exposure_reference=spec.options.get("exposure_reference"),
        variance_intervals=True,
    )
