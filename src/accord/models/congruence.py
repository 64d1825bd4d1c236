"""Client-therapist congruence: polynomial regression with response surface analysis.

Does it matter whether client and therapist see the goals the same way? For each client the
client's rating C and the therapist's rating T of the same scale (default: the WAI-SR Goal
subscale) are the means over the early window (the first 3 sessions each rater rated; a
setting). Both are centred on the scale's midpoint (pooled: one value for both raters, so
C = T still means agreement), and the outcome is regressed on

    b0 + b1 C + b2 T + b3 C^2 + b4 C T + b5 T^2 (+ covariates)

(Edwards & Parry 1993; Shanock et al. 2010). The surface parameters are linear combinations of
the coefficients, as in the R package RSA (Schoenbrodt; ``a1 := b1+b2`` etc. in its lavaan
syntax):

* a1 = b1 + b2, the slope along the line of congruence (C = T) at the midpoint;
* a2 = b3 + b4 + b5, the curvature along the line of congruence;
* a3 = b1 - b2, the slope along the line of incongruence (C = -T): does the direction of a
  disagreement matter;
* a4 = b3 - b4 + b5, the curvature along the line of incongruence: does the outcome change as
  the ratings move apart in either direction.

Each a = l'b has variance l'Vl from the coefficient covariance V, and a normal (Wald) 95% CI,
as lavaan's defined parameters have. Linear outcomes are fitted by OLS with the classical
covariance (RSA with ``estimator="ML", se="standard"`` gives the same estimates; its default
robust SEs correspond to option ``cov_type: HC0``); a yes/no outcome (dropout) by a logistic
regression (GLM binomial), the surface then on the log-odds scale.

The outcome is the post score adjusted for intake, or (option ``outcome_form: slope``) the
client's growth slope: the least-squares slope of the instrument's scores on session number
over all the client's assessments (at least 3), also adjusted for intake.

Agreement shares follow RSA's print method (after Fleenor et al. 1996 and Shanock et al.
2010): both ratings are standardised by the mean and SD of the pooled ratings, and a client is
in agreement when |z_T - z_C| < 0.5, else the client or the therapist rated higher. Counts
below ``min_cell`` are not reported.

Role for multiplicity: descriptive by default (`DEFAULT_ROLES`). The secondary family is the
exposure effect of each secondary model, one term; a surface is read from four parameters
together and has no such term, so its CIs are shown unadjusted and labelled descriptive. A
config entry may still give a congruence model another role.

Fit time (one core, 400 clients): well under a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from accord.core.errors import AccordError, ConfigError, NotEstimableError
from accord.models.dropout import binary_values, client_level_column
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import (
    ModelResult,
    capture_fit,
    coefficient_frame,
    model_diagnostics,
    wald_from_variance,
)

RATERS = ("client", "therapist")
POLYNOMIAL_TERMS = ("C", "T", "C^2", "C*T", "T^2")
# Rows of L in a = L b, b = (b1..b5).
SURFACE_WEIGHTS: Mapping[str, tuple[int, ...]] = {
    "a1": (1, 1, 0, 0, 0),
    "a2": (0, 0, 1, 1, 1),
    "a3": (1, -1, 0, 0, 0),
    "a4": (0, 0, 1, -1, 1),
}
AGREEMENT_CUT = 0.5
AGREEMENT_GROUPS = ("client_higher", "agreement", "therapist_higher")


def early_rater_ratings(
    scores: pd.DataFrame,
    *,
    instrument: str = "wai_sr",
    scale: str = "goal",
    early_sessions: int = 3,
) -> pd.DataFrame:
    """Each client's early rating by each rater: the mean `score` of `instrument`/`scale` over
    the first `early_sessions` sessions that rater rated (scores table rows, measures.md).

    Returns one row per client with any such score (index client_id) and columns ``client``
    and ``therapist`` (missing where that rater gave no score).
    """
    needed = {"client_id", "session_number", "instrument", "rater", "scale", "score"}
    missing = sorted(needed - set(scores.columns))
    if missing:
        raise ConfigError(f"congruence: the scores table has no column(s) {missing}")
    rows = scores.loc[
        (scores["instrument"] == instrument)
        & (scores["scale"] == scale)
        & scores["rater"].isin(RATERS)
        & scores["score"].notna(),
        ["client_id", "rater", "session_number", "score"],
    ]
    rows = rows.astype({"client_id": str, "rater": str}).sort_values(
        ["client_id", "rater", "session_number"], kind="stable"
    )
    early = rows.groupby(["client_id", "rater"], sort=True).head(early_sessions)
    means = early.groupby(["client_id", "rater"], sort=True)["score"].mean().astype(float)
    wide = means.unstack("rater").reindex(columns=list(RATERS))
    wide.columns.name = None
    return wide


def scores_from_panel(panel: pd.DataFrame, instrument: str, scale: str) -> pd.DataFrame:
    """The scores-table rows of `instrument`/`scale` for both raters, read back from the
    session panel's wide columns (``wai_sr_goal``, ``wai_sr_goal_therapist``; the total is
    ``wai_sr``)."""
    column = instrument if scale == "total" else f"{instrument}_{scale}"
    parts = []
    for rater, name in (("client", column), ("therapist", f"{column}_therapist")):
        if name not in panel.columns:
            raise ConfigError(f"congruence: no column {name!r} in the session panel")
        part = panel[["client_id", "session_number"]].copy()
        part["score"] = pd.to_numeric(panel[name], errors="coerce").astype(float)
        part["instrument"], part["rater"], part["scale"] = instrument, rater, scale
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def agreement_shares(
    client: np.ndarray, therapist: np.ndarray, *, min_cell: int = 11
) -> list[dict[str, Any]]:
    """Share of clients in agreement and in each direction of divergence (module docstring).

    Pairs with a missing rating are left out. When a group has fewer than `min_cell` clients
    (but some), every count and share is withheld (None), so none can be worked out from the
    others; the rows then carry ``withheld: True``.
    """
    c, t = np.asarray(client, dtype=float), np.asarray(therapist, dtype=float)
    both = ~(np.isnan(c) | np.isnan(t))
    c, t = c[both], t[both]
    n = int(c.size)
    if n < 2:
        return []
    pooled = np.concatenate([c, t])
    sd = float(np.std(pooled, ddof=1))
    difference = (t - c) / sd if sd > 0 else np.zeros(n)
    groups = np.where(
        difference <= -AGREEMENT_CUT,
        "client_higher",
        np.where(difference >= AGREEMENT_CUT, "therapist_higher", "agreement"),
    )
    counts = {g: int(np.sum(groups == g)) for g in AGREEMENT_GROUPS}
    withheld = any(0 < k < min_cell for k in counts.values()) or n < min_cell
    return [
        {
            "group": g,
            "n": None if withheld else counts[g],
            "n_clients": n,
            "share": None if withheld else counts[g] / n,
            "withheld": withheld,
        }
        for g in AGREEMENT_GROUPS
    ]


def surface_parameters(b: np.ndarray, cov: np.ndarray) -> dict[str, dict[str, float]]:
    """a1..a4 with Wald SE, 95% CI and p from b = (b1..b5) and its 5 x 5 covariance."""
    out = {}
    for name, weights in SURFACE_WEIGHTS.items():
        w = np.asarray(weights, dtype=float)
        out[name] = wald_from_variance(float(w @ b), float(w @ cov @ w))
    return out


def polynomial_design(
    client: np.ndarray, therapist: np.ndarray, midpoint: float
) -> dict[str, np.ndarray]:
    """The five polynomial predictors of ratings centred on `midpoint`."""
    c = np.asarray(client, dtype=float) - midpoint
    t = np.asarray(therapist, dtype=float) - midpoint
    return dict(zip(POLYNOMIAL_TERMS, (c, t, c * c, c * t, t * t), strict=True))


def fit_congruence(
    data: pd.DataFrame,
    *,
    outcome: str,
    client: str = "client",
    therapist: str = "therapist",
    midpoint: float = 3.0,
    covariates: Sequence[str] = (),
    logistic: bool = False,
    cov_type: str = "nonrobust",
    model_id: str = "congruence",
    exposure: str = "wai_sr_goal",
    min_cell: int = 11,
    higher_is: str | None = None,
    rated: str = "the goals",
    cluster: str | None = None,
) -> ModelResult:
    """Polynomial regression of `outcome` on the centred `client` and `therapist` ratings and
    the surface parameters a1..a4 (module docstring), one row of `data` per client.

    Rows with a missing value in any column used are left out and counted. Coefficient rows:
    ``Intercept``, ``C``, ``T``, ``C^2``, ``C*T``, ``T^2``, the covariates, then ``a1``..``a4``.
    With `cluster` (a column of `data`, e.g. client_id for goal-level rows) the covariance is
    cluster-robust by that column. Raises NotEstimableError when fewer than 10 complete rows
    remain.
    """
    what = f"congruence model {model_id!r}"
    frame, n_left_out = _complete_rows(
        data, [outcome, client, therapist, *covariates], what, binary=outcome if logistic else None
    )
    x = _design_matrix(frame, client, therapist, midpoint, covariates)
    groups = None
    if cluster is not None:
        groups = pd.factorize(data.loc[frame.index, cluster].astype(str))[0]
    fitted, warn, fit_options = _fit_polynomial(
        frame[outcome], x, logistic=logistic, cov_type=cov_type, groups=groups, what=what
    )
    n_clients = len(frame) if groups is None else int(groups.max()) + 1
    params = fitted.params.to_numpy()
    cov = fitted.cov_params().to_numpy()
    converged = bool(np.all(np.isfinite(params)) and (not logistic or fitted.converged))
    rows = _coefficient_rows(
        list(x.columns), params, cov, logistic=logistic, n=len(frame), converged=converged
    )
    surface = surface_parameters(params[1:6], cov[1:6, 1:6])
    rows += [_row(a, values, len(frame), converged, ratio=False) for a, values in surface.items()]
    for row in rows:
        row["n_clients"] = n_clients
    if n_left_out:
        warn.append(f"{n_left_out} client(s) without both ratings, the outcome or a covariate")
    extras = {
        "midpoint": midpoint,
        "link": "logit" if logistic else "identity",
        "cov_type": fit_options["cov_type"],
        "higher_is": higher_is,
        "b": dict(zip(x.columns[:6], map(float, params[:6]), strict=True)),
        **_rating_summary(frame[client].to_numpy(), frame[therapist].to_numpy(), min_cell),
        "reading": congruence_reading(surface, outcome=outcome, higher_is=higher_is, rated=rated),
        "clients_left_out": n_left_out,
        **({} if logistic else {"r_squared": float(fitted.rsquared)}),
    }
    result_rows = [{"model": model_id, "outcome": outcome, "exposure": exposure, **r} for r in rows]
    terms = "".join(f" + {c}" for c in covariates)
    formula = f"{outcome} ~ C + T + C^2 + C*T + T^2{terms} (C, T centred on {midpoint:g})"
    diagnostics = model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=formula,
        method="ML logistic regression (GLM binomial)" if logistic else "OLS",
        optimizer="IRLS" if logistic else "least squares",
        converged=converged,
        warn=warn,
        log_likelihood=float(fitted.llf),
        n_obs=len(frame),
        n_clients=n_clients,
        n_therapists=None,
        extras=extras,
    )
    return ModelResult(model_id, outcome, exposure, coefficient_frame(result_rows), diagnostics)


def _design_matrix(
    frame: pd.DataFrame, client: str, therapist: str, midpoint: float, covariates: Sequence[str]
) -> pd.DataFrame:
    """Intercept, the five polynomial terms of the centred ratings, then the covariates."""
    x = pd.DataFrame(
        polynomial_design(frame[client].to_numpy(), frame[therapist].to_numpy(), midpoint),
        index=frame.index,
    )
    for covariate in covariates:
        x[covariate] = frame[covariate]
    x.insert(0, "Intercept", 1.0)
    return x


def _rating_summary(client: np.ndarray, therapist: np.ndarray, min_cell: int) -> dict[str, Any]:
    """Where the surface rests on data, the pooled 5th and 95th percentiles of the ratings (no
    client's own extreme rating is reported), and the agreement shares."""
    ratings = np.column_stack([client, therapist])
    return {
        "rating_range": [float(v) for v in np.quantile(ratings, [0.05, 0.95])],
        "agreement": agreement_shares(client, therapist, min_cell=min_cell),
    }


def _complete_rows(
    data: pd.DataFrame, columns: list[str], what: str, binary: str | None
) -> tuple[pd.DataFrame, int]:
    """The numeric rows of `columns` with no missing value, and how many rows were left out.
    `binary` names a yes/no column to be coded 0/1. NotEstimableError for fewer than 10 rows."""
    for column in columns:
        client_level_column(data, column, what)
    frame = data[columns].copy()
    if binary is not None:
        frame[binary] = binary_values(frame[binary], binary, what)
    frame = frame.apply(pd.to_numeric, errors="coerce").astype(float)
    complete = frame.notna().all(axis=1)
    if int(complete.sum()) < 10:
        raise NotEstimableError(
            f"{what}: only {int(complete.sum())} client(s) with both ratings and the outcome; "
            "at least 10 needed"
        )
    return frame.loc[complete], int((~complete).sum())


def _fit_polynomial(
    y: pd.Series,
    x: pd.DataFrame,
    *,
    logistic: bool,
    cov_type: str,
    groups: np.ndarray | None,
    what: str,
) -> tuple[Any, list[str], dict[str, Any]]:
    """OLS (or a binomial GLM) of y on x; covariance `cov_type`, or clustered by `groups`."""
    import statsmodels.api as sm  # here: the workflow imports this module to plan

    fit_options: dict[str, Any] = {"cov_type": cov_type}
    if groups is not None:
        fit_options = {"cov_type": "cluster", "cov_kwds": {"groups": groups}}
    if logistic:
        model = sm.GLM(y, x, family=sm.families.Binomial())
        fitted, warn, error = capture_fit(lambda: model.fit(**fit_options))
    else:
        fitted, warn, error = capture_fit(lambda: sm.OLS(y, x).fit(**fit_options))
    if fitted is None:
        raise AccordError(f"{what}: the fit failed ({error})")
    return fitted, warn, fit_options


def _row(
    term: str, values: Mapping[str, float], n: int, converged: bool, *, ratio: bool
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "term": term,
        **values,
        "n_obs": n,
        "n_clients": n,
        "converged": converged,
        "primary": False,
    }
    if ratio:
        row["ratio"] = math.exp(values["estimate"])
        row["ratio_ci_low"] = math.exp(values["ci_low"])
        row["ratio_ci_high"] = math.exp(values["ci_high"])
    return row


def _coefficient_rows(
    names: list[str],
    params: np.ndarray,
    cov: np.ndarray,
    *,
    logistic: bool,
    n: int,
    converged: bool,
) -> list[dict[str, Any]]:
    """One row per coefficient; odds ratios for the first-order and covariate terms of a
    logistic surface (the exponent of a curvature is no odds ratio anyone reads)."""
    rows = []
    for i, name in enumerate(names):
        values = wald_from_variance(float(params[i]), float(cov[i, i]))
        ratio = logistic and name not in ("Intercept", "C^2", "C*T", "T^2")
        rows.append(_row(name, values, n, converged, ratio=ratio))
    return rows


def congruence_reading(
    surface: Mapping[str, Mapping[str, float]],
    *,
    outcome: str,
    higher_is: str | None = None,
    rated: str = "the goals",
) -> str:
    """A plain-words reading of a1..a4 in observational language.

    A parameter is read only when its 95% CI excludes zero; `higher_is` ("better" or "worse")
    lets the reading say which end of the outcome is the better one; `rated` names what both
    raters rated (the goals, for the WAI-SR Goal subscale).
    """

    def clear(name: str) -> int:
        low, high = surface[name]["ci_low"], surface[name]["ci_high"]
        if not (math.isfinite(low) and math.isfinite(high)):
            return 0
        return 1 if low > 0 else -1 if high < 0 else 0

    def level(sign: int) -> str:
        word = "higher" if sign > 0 else "lower"
        if higher_is in ("better", "worse"):
            good = (sign > 0) == (higher_is == "better")
            return f"{word} ({'better' if good else 'worse'})"
        return word

    parts = []
    if clear("a1"):
        parts.append(
            f"Where client and therapist agreed, {outcome} was {level(clear('a1'))} "
            f"when both rated {rated} higher."
        )
    if clear("a3"):
        parts.append(
            f"Where they disagreed, {outcome} was {level(clear('a3'))} when the client's "
            "rating was the higher one than when the therapist's was."
        )
    if clear("a4"):
        parts.append(
            f"{outcome[:1].upper()}{outcome[1:]} was {level(clear('a4'))} the further the two "
            "ratings were apart, in either direction."
        )
    if clear("a2"):
        shape = "U" if clear("a2") > 0 else "inverted-U"
        parts.append(f"Along the line of agreement the association was {shape}-shaped.")
    if not parts:
        return (
            f"The data cannot tell whether agreement between client and therapist on {rated} "
            f"is associated with {outcome}: every surface parameter's 95% CI includes zero."
        )
    return " ".join(parts) + " These are associations in observational data, not effects."


def scale_midpoint(instrument: str, scale: str = "total") -> float:
    """The midpoint of `instrument`'s score range from the registry: the item midpoint for a
    mean-scored instrument, the number of items (of the scale) times it for a summed one."""
    from accord.core.instruments import load_registry

    registry = load_registry()
    if instrument not in registry:
        raise ConfigError(f"congruence: unknown instrument {instrument!r}")
    inst = registry[instrument]
    middle = (inst.item_min + inst.item_max) / 2
    if inst.score == "mean":
        return middle
    items = len(inst.subscales[scale]) if scale != "total" else len(inst.item_labels)
    return middle * items


SLOPE_MIN_ASSESSMENTS = 3
OUTCOME_FORMS = ("post", "slope")


def client_slopes(
    panel: pd.DataFrame, outcome: str, min_assessments: int = SLOPE_MIN_ASSESSMENTS
) -> pd.Series:
    """Each client's growth slope of `outcome`: the least-squares slope of the panel's
    `outcome` scores on session_number over all their assessments, intake included (points per
    session; index client_id). Missing for clients with fewer than `min_assessments`
    assessments or a single session."""
    if outcome not in panel.columns:
        raise ConfigError(f"congruence: no column {outcome!r} in the session panel")
    rows = panel.loc[panel[outcome].notna(), ["client_id", "session_number", outcome]]
    rows = rows.astype({"client_id": str, "session_number": float, outcome: float})
    by = rows.groupby("client_id", sort=True)
    dx = rows["session_number"] - by["session_number"].transform("mean")
    dy = rows[outcome] - by[outcome].transform("mean")
    sums = pd.DataFrame({"sxy": dx * dy, "sxx": dx * dx, "client_id": rows["client_id"]})
    sums = sums.groupby("client_id", sort=True).sum()
    count = by.size()
    usable = (count >= min_assessments) & (sums["sxx"] > 0)
    slopes = (sums["sxy"] / sums["sxx"].where(usable)).rename(f"{outcome}_slope")
    slopes.index = slopes.index.astype(str)
    return slopes


def congruence_outcome(
    spec: ModelSpec, client_measures: pd.DataFrame
) -> tuple[str, list[str], bool, str | None]:
    """(outcome column, covariates, logistic, higher_is) for a congruence entry.

    An instrument outcome (``phq9``) is its post score (``phq9_post``, or ``phq9_change``
    where no post score exists; option ``outcome_column``), or with option ``outcome_form:
    slope`` its growth slope (``phq9_slope``, see `client_slopes`), adjusted for intake
    (``phq9_first``; option ``adjust_intake``). Any other outcome is a column of the client
    measures; a yes/no column is fitted by logistic regression (option ``link``: ``identity``
    or ``logit``)."""
    from accord.core.instruments import load_registry

    options = spec.options
    covariates = list(spec.covariates)
    instruments = load_registry()
    higher_is = options.get("higher_is")
    form = options.get("outcome_form", "post")
    if form not in OUTCOME_FORMS:
        raise ConfigError(
            f"models: {spec.id!r} (congruence) options.outcome_form must be post or slope"
        )
    if form == "slope" and spec.outcome not in instruments:
        raise ConfigError(
            f"models: {spec.id!r} (congruence) outcome_form slope needs an instrument outcome"
        )
    if spec.outcome in instruments:
        column = options.get("outcome_column")
        if form == "slope":
            column = f"{spec.outcome}_slope"
        elif column is None:
            post = f"{spec.outcome}_post"
            column = post if post in client_measures.columns else f"{spec.outcome}_change"
        intake = f"{spec.outcome}_first"
        if options.get("adjust_intake", True) and intake not in covariates:
            covariates.insert(0, intake)
        higher_is = higher_is or instruments[spec.outcome].higher_is
    else:
        column = options.get("outcome_column", spec.outcome)
    logistic = _is_logistic(spec, client_measures, column)
    return column, covariates, logistic, higher_is


def _is_logistic(spec: ModelSpec, client_measures: pd.DataFrame, column: str) -> bool:
    """Option ``link`` (auto, identity or logit); auto: logit for a yes/no column."""
    link = spec.options.get("link", "auto")
    if link not in ("auto", "identity", "logit"):
        raise ConfigError(
            f"models: {spec.id!r} (congruence) options.link must be auto, identity or logit"
        )
    values = client_level_column(client_measures, column, f"congruence model {spec.id!r}")
    if link != "auto":
        return link == "logit"
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return pd.api.types.is_bool_dtype(values) or (
        len(numbers) > 0 and bool(numbers.isin([0.0, 1.0]).all())
    )


def fit_congruence_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    scores: pd.DataFrame | None = None,
) -> ModelResult:
    """`fit_congruence` for a model declared in config.

    Options: ``instrument`` (default wai_sr) and ``scale`` (goal; ``total`` for the whole
    instrument) name the rated scale, the exposure label being ``<instrument>_<scale>``;
    ``early_sessions`` (3) the early window; ``midpoint`` (default: the scale's midpoint from
    the registry, 3 for the WAI-SR); ``cov_type`` (nonrobust, or a statsmodels robust type such
    as HC0); ``higher_is`` (better or worse, for the reading); ``outcome_form`` (post, or
    slope: the client's growth slope of the instrument, `client_slopes`); and those of
    `congruence_outcome`. The ratings come from `scores` (the scores table) when given, else
    from the session panel's columns of both raters.
    """
    options = spec.options
    instrument = options.get("instrument", "wai_sr")
    scale = options.get("scale", "goal")
    if scores is None:
        scores = scores_from_panel(panel, instrument, scale)
    ratings = early_rater_ratings(
        scores,
        instrument=instrument,
        scale=scale,
        early_sessions=int(options.get("early_sessions", 3)),
    )
    midpoint = options.get("midpoint")
    midpoint = float(midpoint) if midpoint is not None else scale_midpoint(instrument, scale)
    if options.get("outcome_form") == "slope":
        slopes = client_slopes(panel, spec.outcome)
        client_measures = client_measures.assign(
            **{slopes.name: client_measures["client_id"].astype(str).map(slopes).to_numpy()}
        )
    column, covariates, logistic, higher_is = congruence_outcome(spec, client_measures)
    data = client_measures.set_index(client_measures["client_id"].astype(str)).join(ratings)
    result = fit_congruence(
        data,
        outcome=column,
        midpoint=midpoint,
        covariates=covariates,
        logistic=logistic,
        cov_type=options.get("cov_type", "nonrobust"),
        model_id=spec.id,
        exposure=instrument if scale == "total" else f"{instrument}_{scale}",
        min_cell=context.min_cell,
        higher_is=higher_is,
        rated="the goals" if scale == "goal" else f"the {instrument} {scale}",
    )
    if column in ("early_alliance", "mean_alliance") and instrument == "wai_sr":
        result.diagnostics["warnings"].append(
            f"{column} is built from the client's WAI-SR ratings, which include the client "
            "rating C: part of its association with C is shared items, not agreement"
        )
    if "therapist_id" in data.columns:
        used = data.loc[data[["client", "therapist", column]].notna().all(axis=1)]
        result.diagnostics["n_therapists"] = int(used["therapist_id"].dropna().nunique())
    return result


def congruence_not_applicable(
    panel: pd.DataFrame, instrument: str = "wai_sr", scale: str = "goal", min_clients: int = 10
) -> str | None:
    """Why a congruence model of `instrument`/`scale` cannot be fitted on this study, or None
    when it can: both raters' columns must be in the session panel and at least
    `min_clients` clients must have both ratings."""
    column = instrument if scale == "total" else f"{instrument}_{scale}"
    for name in (column, f"{column}_therapist"):
        if name not in panel.columns:
            return f"no {name} ratings in the study"
    both = panel.groupby("client_id")[[column, f"{column}_therapist"]].count().gt(0).all(axis=1)
    if int(both.sum()) < min_clients:
        return f"fewer than {min_clients} clients rated {column} by both client and therapist"
    return None


def fit_goal_congruence_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    goals: pd.DataFrame | None = None,
    measures: pd.DataFrame | None = None,
) -> ModelResult:
    """The goal-level variant (kind ``goal_congruence``): each goal's attainment (``outcome``
    gas_level, linear, or achieved, logistic; see accord.models.goal_attainment) on the
    client's and the therapist's importance ratings of that goal (1-5, centred on 3), with
    SEs clustered by client. Needs the validated goals table (and measures for gas_level)."""
    from accord.models.goal_attainment import OUTCOMES, goal_level_table

    del panel
    if spec.outcome not in OUTCOMES:
        raise ConfigError(
            f"models: {spec.id!r} (goal_congruence) outcome must be gas_level or achieved"
        )
    if goals is None or (spec.outcome == "gas_level" and measures is None):
        raise ConfigError(f"models: {spec.id!r} (goal_congruence) needs the goals and measures")
    for column in ("client_importance", "therapist_importance"):
        if column not in goals.columns:
            raise ConfigError(f"models: {spec.id!r} (goal_congruence): goals have no {column!r}")
    table = goal_level_table(goals, measures if spec.outcome == "gas_level" else None)
    for column in ("client_importance", "therapist_importance"):
        table[column] = pd.to_numeric(goals[column], errors="coerce").astype(float).to_numpy()
    result = fit_congruence(
        table,
        outcome=spec.outcome,
        client="client_importance",
        therapist="therapist_importance",
        midpoint=float(spec.options.get("midpoint", 3.0)),
        logistic=spec.outcome == "achieved",
        model_id=spec.id,
        exposure="goal_importance",
        min_cell=context.min_cell,
        higher_is="better",
        rated="the goal's importance",
        cluster="client_id",
    )
    result.diagnostics["extras"]["unit"] = "goal"
    if "therapist_id" in client_measures.columns:
        therapists = client_measures.set_index(client_measures["client_id"].astype(str))
        used = therapists["therapist_id"].reindex(table["client_id"].unique())
        result.diagnostics["n_therapists"] = int(used.dropna().nunique())
    return result
