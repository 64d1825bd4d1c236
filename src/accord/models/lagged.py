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
``<predictor>_within`` and ``<predictor>_between`` (e.g. ``goal_consensus``). Both are centred
over all of the client's observations of the predictor, including sessions that enter no pair.
With a lagged outcome and person-mean centring the within-person estimate carries a small
bias of order 1 / (sessions per client) (Nickell 1981); with about six alliance ratings per
client it is a few per cent.

Sensitivity: ``options["detrend"] = True`` replaces the within-person deviation by the residual
of a per-client linear regression of the predictor on time (session number), so a shared upward
drift of alliance and downward drift of symptoms over treatment is not read as a session-level
effect (Falkenstroem et al. 2017). The between-client term stays the client's mean. Clients
with one observation of the predictor keep a deviation of 0. The term keeps its name
(``<predictor>_within``), so the two analyses line up in tables; the diagnostics say which was
fitted.

Diagnostics follow the growth model: one named optimizer (BFGS: from statsmodels' default start
L-BFGS-B's first line search can step to where the REML criterion cannot be evaluated, a
singular X'V^-1X, which stopped the fit on simulated data), every warning recorded, a fit that
does not converge reported as such; the client intercept variance is flagged as on the boundary
when its SD is below `BOUNDARY_RELATIVE_SD` residual SDs.

Fit time (demo size: 400 clients, 25 therapists, about 1,400 pairs): 1-3 s on one shared core.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from accord.errors import AccordError, ConfigError
from accord.models.growth import BOUNDARY_RELATIVE_SD, _fit, _wald
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, coefficient_frame

_TIME = "session_number"


def fit_lagged(
    panel: pd.DataFrame,
    *,
    outcome: str = "phq9",
    predictor: str = "alliance",
    detrend: bool = False,
    model_id: str = "lagged",
    primary: bool = True,
    optimizer: str = "bfgs",
) -> ModelResult:
    """Fit the lagged model of next session's `outcome` (see the module docstring).

    `panel` is the session panel (client_id, session_number, therapist_id, attended,
    `outcome`, `<predictor>_within`, `<predictor>_between`). Terms: ``Intercept``,
    `outcome` (this session's score), ``<predictor>_within``, ``<predictor>_between`` and
    ``session_number`` (this session); the within term is primary when `primary`.

    Raises ConfigError for a missing column, and AccordError when there are fewer than 3
    clients with a pair of sessions.
    """
    within, between = f"{predictor}_within", f"{predictor}_between"
    response = f"{outcome}_next"
    for name in (outcome, within, between):
        if not name.isidentifier() or name in (response, _TIME, "client"):
            raise ConfigError(f"lagged model: {name!r} cannot be used as a model term name")
    data, prep = lagged_pairs(panel, outcome=outcome, predictor=predictor, detrend=detrend)
    n_clients = data["client"].nunique()
    if n_clients < 3:
        raise AccordError(
            f"lagged model: {n_clients} client(s) with a pair of sessions with {outcome} and "
            f"{predictor}; at least 3 needed"
        )
    formula = f"{response} ~ {outcome} + {within} + {between} + {_TIME}"
    fit = _fit(lambda: smf.mixedlm(formula, data, groups="client"), optimizer)

    result = fit["result"]
    warn: list[str] = list(prep.pop("warnings")) + fit["warnings"]
    if fit["error"]:
        warn.append(f"fit failed: {fit['error']}")
    converged = bool(result is not None and result.converged and not fit["error"])
    if result is not None and not fit["error"]:
        fe = result.fe_params
        cov = result.cov_params().loc[fe.index, fe.index]
        scale = float(result.scale)
        intercept_var = float(np.asarray(result.cov_re)[0, 0])
        random_effects = {"client_intercept": intercept_var, "residual": scale}
        boundary = ["client_intercept"] if intercept_var <= BOUNDARY_RELATIVE_SD**2 * scale else []
        llf = float(result.llf)
    else:
        names = fit["exog_names"] or []
        fe = pd.Series(np.nan, index=names)
        cov = pd.DataFrame(np.nan, index=names, columns=names)
        random_effects, boundary, llf = {}, [], math.nan

    n_obs = len(data)
    common = {
        "model": model_id,
        "outcome": outcome,
        "exposure": predictor,
        "n_obs": n_obs,
        "n_clients": n_clients,
        "converged": converged,
    }
    rows = [
        {
            **common,
            "term": term,
            **_wald(float(fe[term]), float(cov.loc[term, term])),
            "primary": bool(primary and term == within),
        }
        for term in fe.index
    ]
    therapists = data["therapist"].dropna()
    diagnostics: dict[str, Any] = {
        "model": model_id,
        "outcome": outcome,
        "exposure": predictor,
        "formula": formula,
        "method": "REML",
        "optimizer": optimizer,
        "converged": converged,
        "warnings": list(dict.fromkeys(warn)),
        "log_likelihood": llf,
        "random_effects": random_effects,
        "boundary": bool(boundary),
        "boundary_components": boundary,
        "n_obs": n_obs,
        "n_clients": n_clients,
        "n_therapists": int(therapists.nunique()),
        "extras": {
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
        },
    }
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=predictor,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


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
    """`fit_lagged` for a model declared in config (options: predictor, detrend)."""
    return fit_lagged(
        panel,
        outcome=spec.outcome,
        predictor=spec.options.get("predictor", "alliance"),
        detrend=bool(spec.options.get("detrend", False)),
        model_id=spec.id,
        primary=spec.primary,
    )
