"""Lagged model: does this session's alliance predict next session's symptoms? (analyses.md)

    y_i,next(t) = b0 + b1 y_it + b2 a_within_it + b3 a_between_i + b4 t + u_i + e_it

for client i at attended session t: the outcome at the client's next attended session is
regressed on the outcome at this session, the within-person deviation of the predictor at this
session from the client's own mean (a_within) and the client's mean (a_between, centred at the
grand mean of client means), with a random intercept per client, fitted by REML. Person-mean
centring separates the within-person effect b2 (does a session with a better alliance than
usual for this client precede lower symptoms?) from stable between-client differences b3
(Falkenstroem, Finkel, Sandell, Rubel & Holmqvist 2017; Zilcha-Mano 2017). b2 is the primary
estimate.

Which sessions are paired
-------------------------
The occasions are the client's assessments in session order: attended sessions and any other
row with an outcome score (the intake, session 0). Each occasion with the outcome and the
predictor observed is paired with the client's next occasion, whose outcome is the response.
Session numbers count scheduled appointments, so missed or cancelled appointments between two
attended sessions are allowed (nothing happened in between that could carry the effect). A next
attended session without an outcome score is not bridged to a later one: its pair is left out,
because the alliance at t is supposed to act on the next session, not on the one after it. The
numbers of pairs, of pairs left out for a missing response, and of pairs across a missed
appointment are in the diagnostics. Without an ``attended`` column every row with an outcome
score is an occasion.

The predictor
-------------
``options["predictor"]`` (default ``"alliance"``) names the panel's person-mean-centred pair
``<predictor>_within`` and ``<predictor>_between`` (e.g. ``goal_alliance_client``). Both are centred
over all of the client's observations of the predictor, including sessions that enter no pair.
With a lagged outcome and person-mean centring the within-person estimate carries a small
bias of order 1 / (sessions per client) (Nickell 1981); with about six alliance ratings per
client it is a few per cent.

Covariates and time
-------------------
Baseline covariates named in the entry (``covariates: [phq9_first, age]``) are client-level
columns of the client measures (or constant within client in the panel) and enter as fixed
effects; clients missing one are left out and counted in the diagnostics. A text covariate
enters as treatment-coded levels. Time is the session number of the starting session
(``time_coding: linear``, term ``session_number``) or log(session_number + 1) (``log``, term
``log_session_number``: most change early in treatment), as in the growth model.

Sensitivity: ``options["detrend"] = True`` replaces the within-person deviation by the residual
of a per-client linear regression of the predictor on time (session number), so a shared upward
drift of alliance and downward drift of symptoms over treatment is not read as a session-level
effect (Falkenstroem et al. 2017). The between-client term stays the client's mean. Clients
with one observation of the predictor keep a deviation of 0. The term keeps its name
(``<predictor>_within``), so the two analyses line up in tables; the diagnostics say which was
fitted.

``reml=False`` fits by maximum likelihood (for likelihood-ratio tests of fixed effects).

The model is fitted by the growth model's profiled-deviance engine
(`accord.models.engine.lmm.fit_lmm`, lme4's formulation, with a client intercept only), exactly and
in seconds at any study size; fixed-effect SEs are lme4's, from s^2 (X'V^-1X)^-1. (statsmodels'
MixedLM with BFGS, used before, did not converge on simulated studies of 150 and 1,000 clients and
took minutes at 1,000.) Diagnostics follow the growth model: the engine and optimizer named, every
warning recorded, a fit whose optimum the engine cannot certify refitted by statsmodels' MixedLM
(Powell, then BFGS) and that fit reported, with a warning, if it converged at least as high, else
the fit reported as not converged; the client intercept variance is flagged as on the boundary when
its SD is below `BOUNDARY_RELATIVE_SD` residual SDs.

Fit time on a shared 2-core machine: about 0.5 s for 1,000 clients (3,600 pairs) and under 1 s
for 10,000 clients (36,000 pairs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import patsy

from accord.core.errors import ConfigError, NotEstimableError
from accord.models.engine.inference import mixed_model_inference
from accord.models.engine.lmm import OPTIMIZER, LmmFit, fit_lmm
from accord.models.growth import BOUNDARY_RELATIVE_SD
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, capture_fit, coefficient_frame, wald_from_variance

_TIME = "session_number"
_LOG_TIME = "log_session_number"


def fit_lagged(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame | None = None,
    *,
    outcome: str = "phq9",
    predictor: str = "alliance",
    detrend: bool = False,
    covariates: Sequence[str] = (),
    time_coding: str = "linear",
    model_id: str = "lagged",
    primary: bool = True,
    reml: bool = True,
    variance_intervals: bool = False,
) -> ModelResult:
    """Fit the lagged model of next session's `outcome` (see the module docstring).

    `panel` is the session panel (client_id, session_number, therapist_id, attended,
    `outcome`, `<predictor>_within`, `<predictor>_between`); the baseline `covariates` are
    client-level columns of `client_measures` (or of the panel). Terms: ``Intercept``,
    `outcome` (this session's score), ``<predictor>_within``, ``<predictor>_between``, the
    time term (``session_number`` or ``log_session_number``) and the covariates; the within
    term is primary when `primary`. `reml` False fits by ML.

    A fit by the profiled engine also gives lmerTest's Satterthwaite `df` and
    `p_satterthwaite` per term and the R^2 of Nakagawa & Schielzeth in the diagnostics
    (``r_squared``); `variance_intervals` adds the profile-likelihood intervals of the client
    intercept SD and the residual SD (``variance_parameters``;
    `accord.models.engine.inference`).

    Raises ConfigError for a missing column or an unknown time coding, and AccordError when
    there are fewer than 3 clients with a pair of sessions.
    """
    data, formula, prep = lagged_model_data(
        panel,
        client_measures,
        outcome=outcome,
        predictor=predictor,
        detrend=detrend,
        covariates=covariates,
        time_coding=time_coding,
    )
    response, design = patsy.dmatrices(formula, data, return_type="dataframe", NA_action="raise")
    warn: list[str] = list(prep.pop("warnings"))
    result = _fit_lagged_lmm(response, design, data["client"], reml, warn)
    estimates = _lagged_estimates(result, list(design.columns), warn)
    converged = bool(result is not None and result.converged)
    inference = _mixed_model_extras(
        result if converged else None, response, design, data, variance_intervals
    )
    common = {
        "model": model_id,
        "outcome": outcome,
        "exposure": predictor,
        "n_obs": len(data),
        "n_clients": data["client"].nunique(),
        "converged": converged,
    }
    primary_term = f"{predictor}_within" if primary else None
    diagnostics = _lagged_diagnostics(
        common,
        formula,
        result,
        estimates,
        inference,
        warn,
        reml=reml,
        n_therapists=int(data["therapist"].dropna().nunique()),
        extras=_lagged_extras(outcome, predictor, detrend, prep),
    )
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=predictor,
        coefficients=_lagged_coefficients(common, estimates, inference, primary_term),
        diagnostics=diagnostics,
    )


def _fit_lagged_lmm(
    response: pd.DataFrame, design: pd.DataFrame, client: pd.Series, reml: bool, warn: list[str]
) -> LmmFit | SimpleNamespace | None:
    """The lagged model by the profiled engine, or None if the fit failed.

    A fit whose optimum the engine cannot certify is replaced by statsmodels' MixedLM where
    that converged at least as high (never an uncertified point reported silently). The fit's
    warnings, the switch of engine and a failure are appended to `warn`, in that order.
    """
    names = list(design.columns)

    def fit():
        return fit_lmm(
            response.iloc[:, 0].to_numpy(dtype=float),
            design.to_numpy(dtype=float),
            client.to_numpy(dtype=object),
            client_effects="intercept",
            reml=reml,
            fe_names=names,
        )

    result, fit_warnings, error = capture_fit(fit)
    warn.extend(fit_warnings)
    if result is not None and not error and not result.converged:
        reference = _statsmodels_fit(response, design, client, reml)
        if reference is not None and reference.log_likelihood >= result.log_likelihood:
            warn.append(
                "the profiled engine could not certify its optimum; fitted with statsmodels "
                "MixedLM instead"
            )
            result = reference
    if error:
        warn.append(f"fit failed: {error}")
        return None
    return result


def _lagged_estimates(
    result: LmmFit | SimpleNamespace | None, names: list[str], warn: list[str]
) -> dict[str, Any]:
    """The fit's fixed effects (``fe``) and their covariance (``cov``), the variance components
    (``random_effects``: client intercept and residual), the components on the boundary
    (``boundary``: the client intercept when its SD is below `BOUNDARY_RELATIVE_SD` residual
    SDs) and the log-likelihood (``llf``); missing values for a failed fit. A fit that did not
    converge adds a warning to `warn`."""
    if result is None:
        return {
            "fe": pd.Series(np.nan, index=names),
            "cov": pd.DataFrame(np.nan, index=names, columns=names),
            "random_effects": {},
            "boundary": [],
            "llf": math.nan,
        }
    scale = float(result.residual_variance)
    intercept_var = float(np.asarray(result.client_covariance)[0, 0])
    if not result.converged:
        warn.append(f"the optimizer did not converge: {result.message}")
    return {
        "fe": pd.Series(np.asarray(result.fe_params, dtype=float), index=names),
        "cov": pd.DataFrame(np.asarray(result.fe_cov, dtype=float), index=names, columns=names),
        "random_effects": {"client_intercept": intercept_var, "residual": scale},
        "boundary": (
            ["client_intercept"] if intercept_var <= BOUNDARY_RELATIVE_SD**2 * scale else []
        ),
        "llf": float(result.log_likelihood),
    }


def _lagged_coefficients(
    common: dict[str, Any],
    estimates: dict[str, Any],
    inference: dict[str, Any],
    primary_term: str | None,
) -> pd.DataFrame:
    """The tidy fixed-effect rows: Wald estimate, SE, CI and p, and for a converged profiled
    fit lmerTest's Satterthwaite df and p-value; `primary_term` is marked primary."""
    fe, cov = estimates["fe"], estimates["cov"]
    rows = [
        {
            **common,
            "term": term,
            **wald_from_variance(float(fe[term]), float(cov.loc[term, term])),
            "primary": term == primary_term,
            **inference["satterthwaite"].get(term, {}),
        }
        for term in fe.index
    ]
    return coefficient_frame(rows)


def _lagged_diagnostics(
    common: dict[str, Any],
    formula: str,
    result: LmmFit | SimpleNamespace | None,
    estimates: dict[str, Any],
    inference: dict[str, Any],
    warn: list[str],
    *,
    reml: bool,
    n_therapists: int,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The diagnostics record of a lagged model (see `ModelResult`): the engine and optimizer
    that gave the reported fit, its warnings, variance components and boundary flag, the R^2
    and the variance parameters' intervals of a converged profiled fit."""
    return {
        "model": common["model"],
        "outcome": common["outcome"],
        "exposure": common["exposure"],
        "formula": formula,
        "method": "REML" if reml else "ML",
        "optimizer": (
            result.optimizer
            if isinstance(result, SimpleNamespace)
            else f"accord-profiled-{'reml' if reml else 'ml'} ({OPTIMIZER})"
        ),
        "converged": common["converged"],
        "warnings": list(dict.fromkeys(warn)),
        "log_likelihood": estimates["llf"],
        "random_effects": estimates["random_effects"],
        "boundary": bool(estimates["boundary"]),
        "boundary_components": estimates["boundary"],
        "n_obs": common["n_obs"],
        "n_clients": common["n_clients"],
        "n_therapists": n_therapists,
        "r_squared": inference["r_squared"],
        "variance_parameters": inference["variance_parameters"],
        "extras": extras,
    }


def _lagged_extras(
    outcome: str, predictor: str, detrend: bool, prep: dict[str, Any]
) -> dict[str, Any]:
    """The diagnostics' ``extras``: the model's structure, response and within-person term,
    and the pairing's counts and the time coding from `lagged_model_data`."""
    return {
        "structure": "client random intercept",
        "response": f"{outcome} at the client's next attended session",
        "predictor": predictor,
        "within_person": (
            "deviation from a per-client linear trend in session number (detrended)"
            if detrend
            else "deviation from the client's mean (person-mean centred)"
        ),
        "detrend": detrend,
        **prep,
    }


def lagged_model_data(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame | None,
    *,
    outcome: str,
    predictor: str,
    detrend: bool = False,
    covariates: Sequence[str] = (),
    time_coding: str = "linear",
) -> tuple[pd.DataFrame, str, dict[str, Any]]:
    """The lagged model's pairs with the time term and baseline covariates, and its formula.

    Returns (data, formula, prep): `lagged_pairs`' rows of clients with every covariate,
    plus ``log_session_number`` for log time; prep holds its counts and notes (``warnings``),
    the time coding, the covariates and the number of clients left out for a missing one.
    """
    within, between = f"{predictor}_within", f"{predictor}_between"
    response = f"{outcome}_next"
    if time_coding not in ("linear", "log"):
        raise ConfigError(
            f"lagged model: time_coding must be 'linear' or 'log', not {time_coding!r}"
        )
    covariates = list(covariates)
    time_term = _TIME if time_coding == "linear" else _LOG_TIME
    taken = {response, _TIME, _LOG_TIME, "client", "therapist", "next_session_number"}
    for name in (outcome, within, between):
        if not name.isidentifier() or name in taken:
            raise ConfigError(f"lagged model: {name!r} cannot be used as a model term name")
    for name in covariates:
        if not name.isidentifier() or name in taken | {outcome, within, between}:
            raise ConfigError(f"lagged model: covariate {name!r} cannot be used as a model term")
    if len(set(covariates)) != len(covariates):
        raise ConfigError("lagged model: a covariate is named more than once")
    data, prep = lagged_pairs(panel, outcome=outcome, predictor=predictor, detrend=detrend)
    if time_coding == "log":
        data[_LOG_TIME] = np.log1p(data[_TIME].to_numpy(dtype=float))
    excluded = 0
    if covariates:
        measures = client_measures if client_measures is not None else pd.DataFrame()
        level = pd.DataFrame(index=pd.Index(sorted(data["client"].unique()), name="client"))
        for name in covariates:
            level[name] = client_level(panel, measures, name, model="lagged model").reindex(
                level.index
            )
        complete = level.notna().all(axis=1)
        excluded = int((~complete).sum())
        if excluded:
            prep["warnings"].append(
                f"{excluded} client(s) with a pair of sessions left out for a missing covariate"
            )
        data = data.merge(level.loc[complete], left_on="client", right_index=True, how="inner")
        data = data.reset_index(drop=True)
    n_clients = data["client"].nunique()
    if n_clients < 3:
        raise NotEstimableError(
            f"lagged model: {n_clients} client(s) with a pair of sessions with {outcome} and "
            f"{predictor}; at least 3 needed"
        )
    formula = f"{response} ~ " + " + ".join([outcome, within, between, time_term, *covariates])
    prep.update(
        time_coding=time_coding,
        time_term=time_term,
        covariates=covariates,
        clients_excluded_missing_covariate=excluded,
        n_pairs=len(data),
    )
    return data, formula, prep


def client_level(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    column: str,
    *,
    model: str,
    first: bool = False,
) -> pd.Series:
    """A client-level column indexed by client id (as text), from `client_measures` if there,
    else from the panel.

    With `first` a client's first value in session order is taken (a client who saw several
    therapists keeps the first); otherwise the column must be constant within client
    (ConfigError naming the column). A column in neither table is a ConfigError, or an empty
    series with `first`. `model` names the model in messages.
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
            grouped = values.dropna(subset=[column]).groupby("client_id", sort=True)[column]
            if not first and bool((grouped.nunique() > 1).any()):
                raise ConfigError(
                    f"{model}: {column!r} varies within client; it must be client-level"
                )
            return grouped.first()
    if first:
        return pd.Series(dtype=object)
    raise ConfigError(f"{model}: no column {column!r} in client measures or the session panel")


def lagged_pairs(
    panel: pd.DataFrame, *, outcome: str, predictor: str, detrend: bool = False
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per pair of consecutive occasions (see the module docstring).

    Columns: client, therapist, session_number (this session), `outcome` (this session),
    ``<outcome>_next``, ``next_session_number``, ``<predictor>_within`` (detrended when
    `detrend`) and ``<predictor>_between``. Also returns counts and notes for the diagnostics.
    """
    within, between = f"{predictor}_within", f"{predictor}_between"
    for column in ("client_id", _TIME, outcome, within, between):
        if column not in panel.columns:
            raise ConfigError(f"lagged model: the session panel has no column {column!r}")
    frame = pd.DataFrame(
        {
            "client": panel["client_id"].astype(str).to_numpy(dtype=object),
            _TIME: pd.to_numeric(panel[_TIME], errors="raise").to_numpy(dtype=float),
            outcome: pd.to_numeric(panel[outcome], errors="raise").to_numpy(dtype=float),
            within: pd.to_numeric(panel[within], errors="raise").to_numpy(dtype=float),
            between: pd.to_numeric(panel[between], errors="raise").to_numpy(dtype=float),
        }
    )
    frame["therapist"] = (
        panel["therapist_id"].astype(object).to_numpy() if "therapist_id" in panel.columns else None
    )
    attended = (
        np.asarray(panel["attended"].fillna(False), dtype=bool)
        if "attended" in panel.columns
        else np.zeros(len(panel), dtype=bool)
    )
    occasion = frame[outcome].notna().to_numpy() | attended
    frame = frame.loc[occasion].sort_values(["client", _TIME], kind="stable")
    frame = frame.reset_index(drop=True)
    if detrend:
        frame[within] = _detrended(frame["client"], frame[_TIME], frame[within])

    client = frame["client"].to_numpy()
    same_client = np.r_[client[1:] == client[:-1], False]
    nxt = np.r_[np.arange(1, len(frame)), 0]
    frame[f"{outcome}_next"] = np.where(same_client, frame[outcome].to_numpy()[nxt], np.nan)
    frame["next_session_number"] = np.where(same_client, frame[_TIME].to_numpy()[nxt], np.nan)

    has_start = same_client & frame[[outcome, within, between]].notna().all(axis=1).to_numpy()
    complete = has_start & frame[f"{outcome}_next"].notna().to_numpy()
    data = frame.loc[complete].reset_index(drop=True)
    gaps = int((data["next_session_number"] - data[_TIME] > 1).sum())
    missing_next = int((has_start & ~complete).sum())
    warnings: list[str] = []
    if missing_next:
        warnings.append(
            f"{missing_next} session(s) with {outcome} and {predictor} left out: the client's "
            f"next attended session has no {outcome} score"
        )
    prep = {
        "warnings": warnings,
        "n_pairs": len(data),
        "pairs_missing_next_outcome": missing_next,
        "pairs_across_missed_appointments": gaps,
        "gaps_allowed": "missed or cancelled appointments between two attended sessions",
    }
    return data, prep


def _detrended(client: pd.Series, time: pd.Series, deviation: pd.Series) -> np.ndarray:
    """The residual of a per-client least-squares line of the predictor on time.

    `deviation` is the predictor minus the client's mean, so the residual is
    deviation - b_i (t - mean t_i) with b_i = sum((t - mean t_i) deviation) / sum((t -
    mean t_i)^2) over the client's observations; b_i = 0 where time does not vary (one
    observation). Rows without the predictor stay missing.
    """
    present = deviation.notna().to_numpy()
    code, _ = pd.factorize(client)
    n = int(code.max()) + 1 if len(code) else 0
    t = time.to_numpy(dtype=float)
    d = deviation.to_numpy(dtype=float)
    c, tp, dp = code[present], t[present], d[present]
    count = np.bincount(c, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = np.bincount(c, weights=tp, minlength=n) / count
        tc = tp - t_mean[c]
        sxx = np.bincount(c, weights=tc * tc, minlength=n)
        sxy = np.bincount(c, weights=tc * dp, minlength=n)
        slope = np.where(sxx > 0, sxy / sxx, 0.0)
    out = np.full(len(d), np.nan)
    out[present] = dp - slope[c] * tc
    return out


def fit_lagged_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_lagged` for a model declared in config (options: predictor, detrend; the entry's
    covariates and time coding)."""
    return fit_lagged(
        panel,
        client_measures,
        outcome=spec.outcome,
        covariates=spec.covariates,
        time_coding=spec.time_coding,
        predictor=spec.options.get("predictor", "alliance"),
        detrend=bool(spec.options.get("detrend", False)),
        model_id=spec.id,
        primary=spec.primary,
        variance_intervals=True,
    )


def _mixed_model_extras(
    result: LmmFit | SimpleNamespace | None,
    response: pd.DataFrame,
    design: pd.DataFrame,
    data: pd.DataFrame,
    variance_intervals: bool,
) -> dict[str, Any]:
    """Satterthwaite df and p per term, R^2 and the variance parameters' intervals of a
    converged profiled fit (`accord.models.engine.inference`); empty otherwise."""
    if not isinstance(result, LmmFit):
        return {"satterthwaite": {}, "r_squared": None, "variance_parameters": None}
    inference = mixed_model_inference(
        result,
        response.iloc[:, 0].to_numpy(dtype=float),
        design.to_numpy(dtype=float),
        data["client"].to_numpy(dtype=object),
        client_effects="intercept",
        profile=variance_intervals,
    )
    satterthwaite = {
        row.term: {"df": float(row.df), "p_satterthwaite": float(row.p_value)}
        for row in inference["satterthwaite"].itertuples()
    }
    variance = inference["variance_parameters"]
    return {
        "satterthwaite": satterthwaite,
        "r_squared": inference["r_squared"],
        "variance_parameters": variance.to_dict("records") if variance_intervals else None,
    }


def _statsmodels_fit(
    response: pd.DataFrame, design: pd.DataFrame, client: pd.Series, reml: bool
) -> SimpleNamespace | None:
    """The same model by statsmodels' MixedLM, with the fields of `LmmFit` this module reads
    (its SEs are statsmodels' own, from the information of all parameters); None unless it
    converged."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    model = MixedLM(response.iloc[:, 0], design, groups=client.to_numpy())
    # Powell first: statsmodels' BFGS and L-BFGS alone stop short on these models.
    fitted, _, error = capture_fit(lambda: model.fit(reml=reml, method=["powell", "bfgs"]))
    if fitted is None or error or not fitted.converged:
        return None
    p = design.shape[1]
    return SimpleNamespace(
        fe_params=np.asarray(fitted.fe_params, dtype=float),
        fe_cov=np.asarray(fitted.cov_params(), dtype=float)[:p, :p],
        residual_variance=float(fitted.scale),
        client_covariance=np.asarray(fitted.cov_re, dtype=float),
        log_likelihood=float(fitted.llf),
        converged=True,
        message="statsmodels MixedLM (Powell, then BFGS)",
        optimizer="statsmodels-mixedlm (powell, bfgs)",
    )
