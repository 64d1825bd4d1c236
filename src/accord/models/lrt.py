"""Likelihood-ratio tests between nested mixed models, as lme4 users get from anova(m0, m1).

A model entry of kind ``lrt`` names the full model (another entry's id) and either the terms
to drop from it or a second entry, the reduced model::

    - {id: growth_lrt_interaction, kind: lrt, options: {full: growth, drop: [time:exposure]}}
    - {id: growth_lrt_slope, kind: lrt, options: {full: growth, drop: [client_slope]}}
    - {id: growth_lrt_covariate, kind: lrt, options: {full: growth_adjusted, reduced: growth}}

A dropped term is a fixed-effect term of the full model as the coefficient table names it
(``time:joint_goal_share``, ``phq9_first``; the word ``exposure`` stands for the model's
exposure) or a random-effect component: ``therapist_intercept`` or ``client_slope`` (the slope
variance and its covariance with the intercept). The full model may be of kind growth or
lagged; the LRT inherits its outcome, exposure, covariates, time coding and therapist effect.

Both models are refitted by maximum likelihood (ML): REML log-likelihoods of models with
different fixed effects are not comparable. The test statistic is

    chi-square = 2 (loglik_full - loglik_reduced),  df = k_full - k_reduced,

with k the number of parameters (fixed effects, variance-covariance parameters and the
residual variance, as lme4 counts them), and the p-value is the chi-square upper tail. AIC =
-2 loglik + 2 k and BIC = -2 loglik + k log(n_obs) of both models are in the diagnostics.

The coefficient row (one per test): ``term`` = ``LRT: <dropped terms>``; ``estimate`` = the
chi-square statistic; ``p_value`` = its upper tail on df degrees of freedom; ``std_error`` and
the CI are empty; ``n_obs`` and ``n_clients`` are those of the full model; ``converged`` is
true only when both ML fits converged. The row is not an exposure effect (it tests the same
hypothesis as the full model's Wald row, so it enters neither the primary rows nor the
Benjamini-Hochberg family).

Variance components on the boundary: the null value of a variance is 0, the edge of its
parameter space, and the chi-square reference distribution no longer applies; the p-value is
conservative (Self & Liang 1987, JASA 82:605; Stram & Lee 1994, Biometrics 50:1171). The
diagnostics also give the p-value from the 50:50 mixture of chi-square(df - 1) and
chi-square(df) (``p_value_mixture``) with a warning; fixed and random terms are not dropped in
the same test. A reduced model that is not nested in the full (a fixed term or random
component the full does not have, another outcome or kind, or a different number of
observations) is fitted and reported with a warning, as anova() does.

The ML fits
-----------
The models are y = X b + Z u + e with a random intercept per client (plus, for the growth
model, a random time slope correlated with it) and, when the model has one, a random intercept
per therapist; clients are nested in therapists (a client without a known therapist counts as
a therapist of their own; the therapist term follows the growth model's rule of at least
`MIN_THERAPISTS` known therapists). Both are fitted by the growth model's profiled-deviance
engine (`accord.models.engine.lmm.fit_lmm`, lme4's formulation, Bates, Maechler, Bolker & Walker
2015, J Stat Softw 67(1)) with ML, on a fixed-effect design built here, so that a term can be
dropped. The fits agree with ``fit_growth(..., reml=False)``, with statsmodels' MixedLM and
with lme4's ML fits (tests/models/test_lrt.py, tests/data/reference/lrt/).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import patsy
from scipy import stats

from accord.core.errors import ConfigError, NotEstimableError
from accord.models.engine.lmm import OPTIMIZER, fit_lmm
from accord.models.gather import LRT_TERM_PREFIX
from accord.models.growth import BOUNDARY_RELATIVE_SD, MIN_THERAPISTS
from accord.models.lagged import client_level, lagged_model_data
from accord.models.spec import LRT_COMPARABLE_KINDS as COMPARABLE_KINDS
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, coefficient_frame

# The random-effect components each model kind an LRT compares has.
RANDOM_COMPONENTS = ("therapist_intercept", "client_slope")
_UNKNOWN_THERAPIST = "\x00unknown-therapist:"
_MODEL = "likelihood-ratio test"


@dataclass(frozen=True)
class RandomStructure:
    """The random effects of a model: a client intercept always, the rest optional."""

    client_slope: bool
    therapist_intercept: bool

    def components(self) -> list[str]:
        """The optional components present, by name."""
        return [
            name
            for name, present in (
                ("therapist_intercept", self.therapist_intercept),
                ("client_slope", self.client_slope),
            )
            if present
        ]

    def n_parameters(self) -> int:
        """Variance-covariance parameters, residual variance included (as lme4 counts)."""
        return 1 + (3 if self.client_slope else 1) + (1 if self.therapist_intercept else 0)


@dataclass
class MLFit:
    """One model fitted by maximum likelihood."""

    log_likelihood: float
    n_parameters: int
    n_obs: int
    n_clients: int
    converged: bool
    message: str
    fixed_effects: pd.Series
    variances: dict[str, float]
    boundary: list[str]
    terms: list[str]
    structure: RandomStructure

    @property
    def aic(self) -> float:
        return -2 * self.log_likelihood + 2 * self.n_parameters

    @property
    def bic(self) -> float:
        return -2 * self.log_likelihood + self.n_parameters * math.log(self.n_obs)


@dataclass
class Design:
    """A model's data, fixed-effect formula and random structure, ready for `fit_ml`."""

    data: pd.DataFrame
    response: str
    rhs: str
    structure: RandomStructure
    kind: str
    notes: list[str]


def fit_ml(
    y: np.ndarray,
    X: np.ndarray,
    client: np.ndarray,
    therapist: np.ndarray,
    time: np.ndarray,
    structure: RandomStructure,
    *,
    reml: bool = False,
) -> tuple[float, np.ndarray, dict[str, float], bool, str, list[str]]:
    """Fit y = X b + random effects by ML (or REML) with the profiled-deviance engine
    (`accord.models.engine.lmm.fit_lmm`, lme4's formulation).

    `client` and `therapist` are labels per row (clients nested in therapists), `time` the
    slope's covariate. Returns (log-likelihood, b, variances, converged, optimizer message,
    variance components on the boundary); variances are named as in the growth model's
    diagnostics (client_intercept, client_slope, client_intercept_slope_covariance,
    therapist_intercept, residual), the slope per unit of time. A component is on the
    boundary as the growth model flags it: an SD below `BOUNDARY_RELATIVE_SD` residual SDs,
    the slope's per SD of time.
    """
    fit = fit_lmm(
        np.asarray(y, dtype=float),
        np.asarray(X, dtype=float),
        np.asarray(client, dtype=object),
        time=np.asarray(time, dtype=float) if structure.client_slope else None,
        therapist=np.asarray(therapist, dtype=object) if structure.therapist_intercept else None,
        client_effects="correlated" if structure.client_slope else "intercept",
        reml=reml,
    )
    residual = float(fit.residual_variance)
    cov = np.asarray(fit.client_covariance, dtype=float)
    variances: dict[str, float] = {"client_intercept": float(cov[0, 0])}
    relative_sd = {"client_intercept": math.sqrt(max(cov[0, 0], 0.0) / residual)}
    if structure.client_slope:
        time_sd = float(np.asarray(time, dtype=float).std())
        variances["client_slope"] = float(cov[1, 1])
        variances["client_intercept_slope_covariance"] = float(cov[0, 1])
        relative_sd["client_slope"] = math.sqrt(max(cov[1, 1], 0.0) / residual) * time_sd
    if structure.therapist_intercept:
        variances["therapist_intercept"] = float(fit.therapist_variance)
        relative_sd["therapist_intercept"] = math.sqrt(
            max(float(fit.therapist_variance), 0.0) / residual
        )
    variances["residual"] = residual
    boundary = [name for name, sd in relative_sd.items() if sd <= BOUNDARY_RELATIVE_SD]
    message = f"accord-profiled-{'reml' if reml else 'ml'} ({OPTIMIZER}): {fit.message}"
    return fit.log_likelihood, fit.fe_params, variances, fit.converged, message, boundary


def model_terms(design: Design) -> list[str]:
    """The fixed-effect terms of a design, as the coefficient table names them."""
    description = patsy.ModelDesc.from_formula(design.rhs)
    return [term.name() for term in description.rhs_termlist]


def fit_design(design: Design) -> MLFit:
    """Fit a `Design` by ML."""
    y, X = patsy.dmatrices(
        f"{design.response} ~ {design.rhs}", design.data, return_type="dataframe", NA_action="raise"
    )
    terms = [t for t in X.design_info.term_names]
    loglik, beta, variances, converged, message, boundary = fit_ml(
        y.iloc[:, 0].to_numpy(),
        X.to_numpy(),
        design.data["client"].to_numpy(dtype=object),
        design.data["therapist"].to_numpy(dtype=object),
        design.data["time"].to_numpy(dtype=float),
        design.structure,
    )
    return MLFit(
        log_likelihood=loglik,
        n_parameters=X.shape[1] + design.structure.n_parameters(),
        n_obs=len(design.data),
        n_clients=int(design.data["client"].nunique()),
        converged=converged,
        message=message,
        fixed_effects=pd.Series(beta, index=list(X.columns)),
        variances=variances,
        boundary=boundary,
        terms=terms,
        structure=design.structure,
    )


def likelihood_ratio(full: MLFit, reduced: MLFit) -> dict[str, float]:
    """The chi-square statistic, its df and upper-tail p-value of `reduced` against `full`."""
    statistic = 2.0 * (full.log_likelihood - reduced.log_likelihood)
    df = full.n_parameters - reduced.n_parameters
    p_value = float(stats.chi2.sf(statistic, df)) if df > 0 else math.nan
    return {"statistic": statistic, "df": df, "p_value": p_value}


def mixture_p_value(statistic: float, df: int) -> float:
    """P-value from the 50:50 mixture of chi-square(df - 1) and chi-square(df), the
    reference distribution for testing variance components on the boundary (Self & Liang
    1987; Stram & Lee 1994); chi-square(0) is a point mass at 0."""
    if not math.isfinite(statistic) or df < 1:
        return math.nan
    lower = float(stats.chi2.sf(statistic, df - 1)) if df > 1 else float(statistic <= 0)
    return 0.5 * lower + 0.5 * float(stats.chi2.sf(statistic, df))


def fit_lrt_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """The likelihood-ratio test of an ``lrt`` entry (see the module docstring).

    `spec.options` as resolved by `resolve_lrt_spec`: ``full_model`` (the full model's
    fields), and ``drop`` (terms) or ``reduced_model`` (the reduced model's fields).
    """
    full_entry, reduced_entry, drop = _compared_entries(spec)
    full_design = model_design(panel, client_measures, full_entry)
    warn = list(full_design.notes)
    if drop:
        reduced_design, fixed_dropped, random_dropped = _dropped_design(
            spec.id, full_design, full_entry, drop
        )
        label = ", ".join(drop)
    else:
        reduced_design = model_design(panel, client_measures, reduced_entry)
        warn += [n for n in reduced_design.notes if n not in warn]
        label = f"{full_entry['id']} vs {reduced_entry['id']}"
    full = fit_design(full_design)
    reduced = fit_design(reduced_design)

    if not drop:
        warn += _nesting_problems(full, reduced, full_entry, reduced_entry)
        fixed_dropped = [t for t in full.terms if t not in reduced.terms]
        components = full_design.structure.components()
        random_dropped = [c for c in components if c not in reduced.structure.components()]
    elif reduced.n_obs != full.n_obs:
        warn.append("the models are not nested: they were fitted to different numbers of rows")
    test = likelihood_ratio(full, reduced)
    p_mixture = _test_caveats(full, reduced, test, random_dropped, warn)
    converged = full.converged and reduced.converged

    row = {
        "model": spec.id,
        "outcome": full_entry["outcome"],
        "exposure": full_entry["exposure"],
        "term": f"{LRT_TERM_PREFIX}{label}",
        "estimate": test["statistic"],
        "p_value": test["p_value"],
        "n_obs": full.n_obs,
        "n_clients": full.n_clients,
        "converged": converged,
        "primary": False,
    }
    extras = {
        "test": "likelihood ratio, refitted with ML",
        "full_model": full_entry["id"],
        "reduced_model": reduced_entry["id"] if reduced_entry else None,
        "dropped_fixed_terms": fixed_dropped,
        "dropped_random_components": random_dropped,
        "tested_on_boundary": bool(random_dropped),
        "chi_square": test["statistic"],
        "df": test["df"],
        "p_value": test["p_value"],
        "p_value_mixture": p_mixture,
        "log_likelihood_difference": full.log_likelihood - reduced.log_likelihood,
        "full": _fit_record(full, full_design),
        "reduced": _fit_record(reduced, reduced_design),
    }
    return ModelResult(
        model=spec.id,
        outcome=full_entry["outcome"],
        exposure=full_entry["exposure"],
        coefficients=coefficient_frame([row]),
        diagnostics=_lrt_diagnostics(
            spec.id, full_entry, full_design, full, converged, warn, extras
        ),
    )


def _compared_entries(
    spec: ModelSpec,
) -> tuple[Mapping[str, Any], Mapping[str, Any] | None, list[str]]:
    """The full model's entry, the reduced model's entry (or None) and the terms to drop (as
    the coefficient table names them); ConfigError unless exactly one of the last two is
    given."""
    options = spec.options
    full_entry = options.get("full_model")
    if not isinstance(full_entry, Mapping):
        raise ConfigError(f"models: {spec.id!r} (lrt) needs options.full, a model id")
    reduced_entry = options.get("reduced_model")
    drop = [_term_name(term, full_entry["exposure"]) for term in options.get("drop", [])]
    if bool(drop) == bool(reduced_entry):
        raise ConfigError(
            f"models: {spec.id!r} (lrt) needs exactly one of options.drop and options.reduced"
        )
    return full_entry, reduced_entry, drop


def _dropped_design(
    model_id: str, full_design: Design, full_entry: Mapping[str, Any], drop: list[str]
) -> tuple[Design, list[str], list[str]]:
    """The reduced model: the full design without the `drop` terms; and the fixed terms and
    random components dropped. ConfigError for a term the full model does not have, or for
    fixed and random terms dropped together."""
    full_terms = model_terms(full_design)
    components = full_design.structure.components()
    fixed_dropped = [t for t in drop if t not in RANDOM_COMPONENTS]
    random_dropped = [t for t in drop if t in RANDOM_COMPONENTS]
    unknown = [t for t in fixed_dropped if t not in full_terms]
    unknown += [t for t in random_dropped if t not in components]
    if unknown:
        raise ConfigError(
            f"models: {model_id!r} (lrt) drops {unknown[0]!r}, which is not a term of the "
            f"full model {full_entry['id']!r} (terms: {', '.join(full_terms)}; random: "
            f"{', '.join(components) or 'client intercept only'})"
        )
    if fixed_dropped and random_dropped:
        raise ConfigError(
            f"models: {model_id!r} (lrt) drops fixed and random terms together; "
            "test them separately"
        )
    reduced_design = replace(
        full_design,
        rhs=_drop_terms(full_design.rhs, fixed_dropped),
        structure=RandomStructure(
            client_slope=full_design.structure.client_slope and "client_slope" not in drop,
            therapist_intercept=full_design.structure.therapist_intercept
            and "therapist_intercept" not in drop,
        ),
    )
    return reduced_design, fixed_dropped, random_dropped


def _test_caveats(
    full: MLFit,
    reduced: MLFit,
    test: dict[str, float],
    random_dropped: list[str],
    warn: list[str],
) -> float:
    """Warnings on the test (no degrees of freedom, variance components on the boundary, a
    fit that did not converge), and the boundary mixture p-value (NaN when no random
    component is dropped)."""
    if test["df"] <= 0:
        warn.append(
            f"the reduced model has {reduced.n_parameters} parameters, the full "
            f"{full.n_parameters}: no chi-square test"
        )
    p_mixture = math.nan
    if random_dropped:
        p_mixture = mixture_p_value(test["statistic"], test["df"])
        warn.append(
            f"{', '.join(random_dropped)} tested on the boundary of the parameter space "
            "(variance 0): the chi-square p-value is conservative (Self & Liang 1987); "
            "p_value_mixture uses the 50:50 chi-square mixture"
        )
    for name, fit in (("full", full), ("reduced", reduced)):
        if not fit.converged:
            warn.append(f"the {name} model's ML fit did not converge: {fit.message}")
    return p_mixture


def _lrt_diagnostics(
    model_id: str,
    full_entry: Mapping[str, Any],
    full_design: Design,
    full: MLFit,
    converged: bool,
    warn: list[str],
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The test's diagnostics: the full model's fit (log-likelihood, variances, counts) and
    the test in `extras`; `converged` when both ML fits converged."""
    therapists = full_design.data["therapist"]
    n_therapists = int(therapists[~therapists.str.startswith(_UNKNOWN_THERAPIST)].nunique())
    return {
        "model": model_id,
        "outcome": full_entry["outcome"],
        "exposure": full_entry["exposure"],
        "formula": f"{full_design.response} ~ {full_design.rhs}",
        "method": "ML (both models refitted with ML)",
        "optimizer": f"accord-profiled-ml ({OPTIMIZER})",
        "converged": converged,
        "warnings": list(dict.fromkeys(warn)),
        "log_likelihood": full.log_likelihood,
        "random_effects": full.variances,
        "boundary": bool(full.boundary),
        "boundary_components": full.boundary,
        "n_obs": full.n_obs,
        "n_clients": full.n_clients,
        "n_therapists": n_therapists,
        "extras": extras,
    }


def _fit_record(fit: MLFit, design: Design) -> dict[str, Any]:
    return {
        "formula": f"{design.response} ~ {design.rhs}",
        "random": ["client_intercept", *design.structure.components()],
        "log_likelihood": fit.log_likelihood,
        "n_parameters": fit.n_parameters,
        "aic": fit.aic,
        "bic": fit.bic,
        "n_obs": fit.n_obs,
        "converged": fit.converged,
        "fixed_effects": fit.fixed_effects.to_dict(),
        "random_effects": fit.variances,
        "boundary_components": fit.boundary,
    }


def _nesting_problems(
    full: MLFit, reduced: MLFit, full_entry: Mapping[str, Any], reduced_entry: Mapping[str, Any]
) -> list[str]:
    problems = []
    for key in ("kind", "outcome"):
        if full_entry[key] != reduced_entry[key]:
            problems.append(f"different {key}s")
    extra = [t for t in reduced.terms if t not in full.terms]
    if extra:
        problems.append(f"the reduced model has term(s) the full has not: {', '.join(extra)}")
    extra_random = [
        c for c in reduced.structure.components() if c not in full.structure.components()
    ]
    if extra_random:
        problems.append(f"the reduced model has random {', '.join(extra_random)}")
    if reduced.n_obs != full.n_obs:
        problems.append(f"different numbers of rows ({full.n_obs} and {reduced.n_obs})")
    if not problems:
        return []
    return [f"the models may not be nested: {'; '.join(problems)}; the test may be invalid"]


def _term_name(term: str, exposure: str) -> str:
    """A dropped term as the coefficient table names it: ``exposure`` stands for the exposure."""
    return ":".join(
        exposure if part.strip() == "exposure" else part.strip() for part in term.split(":")
    )


def _drop_terms(rhs: str, terms: Sequence[str]) -> str:
    return " ".join([rhs, *(f"- {term}" for term in terms)])


def model_design(
    panel: pd.DataFrame, client_measures: pd.DataFrame, entry: Mapping[str, Any]
) -> Design:
    """The data, formula and random structure of a growth or lagged model entry."""
    kind = entry["kind"]
    if kind == "growth":
        return _growth_design(panel, client_measures, entry)
    if kind == "lagged":
        options = entry.get("options", {})
        data, formula, prep = lagged_model_data(
            panel,
            client_measures,
            outcome=entry["outcome"],
            predictor=options.get("predictor", "alliance"),
            detrend=bool(options.get("detrend", False)),
            covariates=entry.get("covariates", ()),
            time_coding=entry.get("time_coding", "linear"),
        )
        response, rhs = (part.strip() for part in formula.split("~"))
        data = data.assign(time=0.0)
        therapist = data["therapist"].astype(object)
        data["therapist"] = np.where(
            therapist.isna(), _UNKNOWN_THERAPIST + data["client"], therapist.astype(str)
        )
        return Design(
            data=data,
            response=response,
            rhs=rhs,
            structure=RandomStructure(client_slope=False, therapist_intercept=False),
            kind=kind,
            notes=list(prep["warnings"]),
        )
    raise ConfigError(
        f"models: an lrt compares models of kind {' or '.join(COMPARABLE_KINDS)}, not {kind!r}"
    )


def _growth_design(
    panel: pd.DataFrame, client_measures: pd.DataFrame, entry: Mapping[str, Any]
) -> Design:
    """The growth model's data: sessions with the outcome, time coded, client-level exposure
    and covariates (clients missing one left out), therapist per client."""
    outcome, exposure = entry["outcome"], entry["exposure"]
    covariates = list(entry.get("covariates", ()))
    time_column = entry.get("options", {}).get("time", "session_number")
    for column in ("client_id", time_column, outcome):
        if column not in panel.columns:
            raise ConfigError(f"likelihood-ratio test: the session panel has no column {column!r}")
    rows = panel.loc[panel[outcome].notna(), ["client_id", time_column, outcome]]
    data = pd.DataFrame(
        {
            "client": rows["client_id"].astype(str).to_numpy(dtype=object),
            outcome: pd.to_numeric(rows[outcome], errors="raise").to_numpy(dtype=float),
        }
    )
    session = pd.to_numeric(rows[time_column], errors="raise").to_numpy(dtype=float)
    data["time"] = np.log1p(session) if entry.get("time_coding") == "log" else session
    level = pd.DataFrame(index=pd.Index(sorted(data["client"].unique()), name="client"))
    for name in [exposure, *covariates]:
        level[name] = client_level(panel, client_measures, name, model=_MODEL).reindex(level.index)
    complete = level.notna().all(axis=1)
    notes = []
    if (~complete).sum():
        notes.append(
            f"{int((~complete).sum())} client(s) left out for a missing exposure or covariate"
        )
    level = level.loc[complete]
    values = level[exposure]
    if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        levels = sorted(values.astype(str).unique())
        if len(levels) != 2:
            raise ConfigError(
                f"likelihood-ratio test: the exposure {exposure!r} is text with {len(levels)} "
                "levels; a text exposure must have exactly two"
            )
        reference = entry.get("options", {}).get("exposure_reference") or levels[0]
        level[exposure] = (values.astype(str) != reference).astype(float)
    else:
        level[exposure] = values.astype(float)
    data = data.merge(level, left_on="client", right_index=True, how="inner")
    therapist = client_level(panel, client_measures, "therapist_id", model=_MODEL, first=True)
    th = therapist.reindex(data["client"]).to_numpy(dtype=object)
    unknown = pd.isna(th)
    data["therapist"] = np.where(unknown, _UNKNOWN_THERAPIST + data["client"], th).astype(str)
    data = data.sort_values(["therapist", "client", "time"], kind="stable").reset_index(drop=True)
    if data["client"].nunique() < 3:
        raise NotEstimableError("likelihood-ratio test: fewer than 3 clients with the outcome")
    known = data.loc[~data["therapist"].str.startswith(_UNKNOWN_THERAPIST), "therapist"]
    with_therapist = bool(entry.get("therapist_effect", True)) and known.nunique() >= MIN_THERAPISTS
    if entry.get("therapist_effect", True) and not with_therapist:
        notes.append(
            f"therapist variance not estimated: {known.nunique()} therapist(s) with known id, "
            f"fewer than {MIN_THERAPISTS}"
        )
    rhs = " + ".join([f"time * {exposure}", *covariates])
    return Design(
        data=data,
        response=outcome,
        rhs=rhs,
        structure=RandomStructure(client_slope=True, therapist_intercept=with_therapist),
        kind="growth",
        notes=notes,
    )
