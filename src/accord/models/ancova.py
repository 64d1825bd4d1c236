"""Pre-post ANCOVA: is collaborative goal-setting related to symptoms at the end of treatment,
given symptoms at intake? (analyses.md, sensitivity)

    y_post,i = b0 + b1 x_i + b2 y_first,i + covariates_i + e_i,   e_i ~ N(0, sigma^2)

by ordinary least squares, one row per client (`<outcome>_post`, the score at the planned
end-of-treatment assessment, and `<outcome>_first` from the client measures). b1, the exposure
term, is the estimate shown next to the growth model's. Adjusting for the intake score rather
than analysing change scores gives the smaller SE when intake and end scores correlate less
than perfectly, and does not depend on regression to the mean (Vickers & Altman 2001, BMJ
323:1123).

Three analyses of the same model:

``ancova`` (complete case)
    Clients with an OBSERVED post score, the intake score, the exposure and every covariate.
    ``completers_only: true`` further keeps only clients who did not drop out (``dropout``
    False; unknown status is left out too). ``end: last`` analyses the last observed score
    instead of the post score: last observation carried forward (LOCF), a labelled
    sensitivity analysis only, since it treats a dropout's last score as their end score. SEs,
    CIs and p-values use the t distribution with the residual degrees of freedom.

``ancova_mice`` (multiple imputation)
    Every client enters; missing post scores (and any other missing value of the analysis or
    auxiliary variables) are imputed by chained equations (`accord.models.imputation`), the
    model is fitted on each of ``n_imputations`` completed data sets and the fits are pooled
    by Rubin's rules with Barnard-Rubin (1999) degrees of freedom and a t reference, as R's
    ``mice::pool``. Auxiliary variables (``auxiliary``) enter the imputation but not the
    analysis model; they make missing at random more plausible. By default: the last score
    before the end assessment and its session (for a client without a post score, the last
    observed score and the session of last contact), early alliance and the number of
    sessions attended. The last score itself is no auxiliary: for a client with a post score
    it IS the post score, so the imputation model would learn post = last and reproduce LOCF.
    Under missing at random given these, the complete-case estimate is
    biased where missingness depends on them and they relate to the outcome; the imputation
    estimate is not. Imputations come from one generator seeded by the study seed and the
    model id, so a rerun gives identical numbers. Every variable must be numeric (a two-level
    text column is coded 0/1).

A model whose fit fails is reported with ``converged`` False and the error in its warnings.
Fit time (400 clients, one core): ``ancova`` well under 0.1 s; ``ancova_mice`` with the defaults
(20 imputations, 10 cycles) about 1 s.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from accord.core.errors import ConfigError, NotEstimableError
from accord.models.imputation import METHODS, Pooled, impute, pool
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, capture_fit, coefficient_frame, model_diagnostics

#: Auxiliary variables of the imputation (``{outcome}`` is the outcome instrument).
DEFAULT_AUXILIARY = (
    "{outcome}_last_before_post",
    "{outcome}_last_before_post_session",
    "early_alliance",
    "sessions_attended",
)
DEFAULT_N_IMPUTATIONS = 20
DEFAULT_N_ITERATIONS = 10
ENDS = ("post", "last")
MIN_CLIENTS = 5
MICE_OPTIONS = {"auxiliary", "n_imputations", "n_iterations", "method", "exposure_reference"}


def fit_ancova(
    client_measures: pd.DataFrame,
    *,
    outcome: str = "phq9",
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    model_id: str = "ancova",
    primary: bool = False,
    completers_only: bool = False,
    exposure_reference: str | None = None,
    end: str = "post",
) -> ModelResult:
    """Fit ``<outcome>_<end> ~ exposure + <outcome>_first + covariates`` by OLS on complete
    cases; `end` is ``post`` (the observed end-of-treatment score) or ``last`` (LOCF).

    `client_measures` has one row per client (client_id, the two scores, `exposure`,
    `covariates`, and ``dropout`` when `completers_only`). A two-level text exposure is coded 1
    for the level that is not `exposure_reference` (default: the first in sorted order); a text
    covariate enters as categorical (treatment coding).

    Raises ConfigError for a column that does not exist, and AccordError when fewer than
    `MIN_CLIENTS` clients have complete data or the exposure does not vary.
    """
    if end not in ENDS:
        raise ConfigError(f"ancova model: end must be one of {list(ENDS)}, not {end!r}")
    response, first = f"{outcome}_{end}", f"{outcome}_first"
    covariates = [c for c in covariates if c != first]
    columns = [response, exposure, first, *covariates]
    if completers_only and "dropout" not in client_measures.columns:
        raise ConfigError("ancova model: completers_only needs the column 'dropout'")
    sample = _complete_case_sample(
        client_measures,
        columns,
        exposure=exposure,
        exposure_reference=exposure_reference,
        completers_only=completers_only,
        locf=end == "last",
    )
    data = sample.data
    formula = _formula(response, exposure, first, covariates, data)
    result, fit_warnings, error = capture_fit(lambda: smf.ols(formula, data).fit())
    warn = sample.notes + fit_warnings + ([f"fit failed: {error}"] if error else [])
    converged = result is not None and not error
    rows = _ols_rows(result) if converged else []
    method = "OLS, complete cases" + (" (LOCF: last observed score)" if end == "last" else "")
    diagnostics = client_model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=formula,
        method=method,
        optimizer="least squares (pseudoinverse)",
        converged=converged,
        warn=warn,
        llf=float(result.llf) if converged else math.nan,
        n_obs=len(data),
        data=data,
        client_measures=client_measures,
        extras={
            "exposure_coding": sample.coding,
            "end_score": response,
            "locf": end == "last",
            "completers_only": completers_only,
            "clients_in_input": sample.n_input,
            "clients_excluded_dropout": sample.n_dropouts_excluded,
            "clients_excluded_missing": sample.n_incomplete,
            "residual_sd": float(math.sqrt(result.scale)) if converged else math.nan,
            "r_squared": float(result.rsquared) if converged else math.nan,
            "df_resid": float(result.df_resid) if converged else math.nan,
        },
    )
    return _result(model_id, outcome, exposure, len(data), converged, primary, rows, diagnostics)


@dataclass
class _Sample:
    """The clients an ANCOVA analyses, how the exposure was coded, and who was left out."""

    data: pd.DataFrame
    coding: str
    notes: list[str]
    n_input: int
    n_dropouts_excluded: int = 0
    n_incomplete: int = 0


def _complete_case_sample(
    client_measures: pd.DataFrame,
    columns: list[str],
    *,
    exposure: str,
    exposure_reference: str | None,
    completers_only: bool,
    locf: bool,
) -> _Sample:
    """The complete cases of `columns` (completers only, if asked), with a note for each group
    of clients left out; raises NotEstimableError when too few remain."""
    data, coding = client_level_data(
        client_measures,
        columns,
        exposure=exposure,
        exposure_reference=exposure_reference,
        model_name="ancova model",
        extra=["dropout"] if completers_only else [],
    )
    sample = _Sample(data=data, coding=coding, notes=[], n_input=len(data))
    if locf:
        sample.notes.append("last observation carried forward (LOCF): a sensitivity analysis")
    if completers_only:
        dropout = data.pop("dropout")
        completer = dropout.notna() & ~dropout.astype("boolean").fillna(True).astype(bool)
        sample.n_dropouts_excluded = int((~completer).sum())
        data = data.loc[completer]
        sample.notes.append(
            f"completers only: {sample.n_dropouts_excluded} client(s) who dropped out or whose "
            "dropout status is unknown left out"
        )
    complete = data[columns].notna().all(axis=1)
    sample.n_incomplete = int((~complete).sum())
    if sample.n_incomplete:
        sample.notes.append(
            f"{sample.n_incomplete} client(s) left out for missing data (complete cases)"
        )
    sample.data = data.loc[complete].reset_index(drop=True)
    check_enough_clients(sample.data, exposure, "ancova model")
    return sample


def _ols_rows(result: Any) -> list[dict[str, Any]]:
    """One coefficient row per term of a statsmodels OLS fit, with its 95% t interval."""
    ci = result.conf_int(0.05)
    return [
        {
            "term": term,
            "estimate": float(result.params[term]),
            "std_error": float(result.bse[term]),
            "ci_low": float(ci.loc[term, 0]),
            "ci_high": float(ci.loc[term, 1]),
            "p_value": float(result.pvalues[term]),
        }
        for term in result.params.index
    ]


def _result(
    model_id: str,
    outcome: str,
    exposure: str,
    n: int,
    converged: bool,
    primary: bool,
    rows: list[dict[str, Any]],
    diagnostics: dict[str, Any],
) -> ModelResult:
    common = _common(model_id, outcome, exposure, n, converged)
    rows = [{**common, **row, "primary": bool(primary and row["term"] == exposure)} for row in rows]
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=exposure,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def fit_ancova_mice(
    client_measures: pd.DataFrame,
    *,
    outcome: str = "phq9",
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    auxiliary: Sequence[str] | None = None,
    model_id: str = "ancova_mice",
    primary: bool = False,
    seed: int = 2026,
    n_imputations: int = DEFAULT_N_IMPUTATIONS,
    n_iterations: int = DEFAULT_N_ITERATIONS,
    method: str = "norm",
    exposure_reference: str | None = None,
) -> ModelResult:
    """Fit the pre-post ANCOVA on the post score by multiple imputation (module docstring).

    `auxiliary` columns enter the imputation only; None means `DEFAULT_AUXILIARY`, each used if
    the column exists (a named auxiliary column that does not exist is a ConfigError).
    `method` is ``norm`` (Bayesian linear regression) or ``pmm``. The imputation generator is
    seeded from (`seed`, `model_id`).

    Raises ConfigError for a missing column or a text column with more than two levels, and
    AccordError when fewer than `MIN_CLIENTS` clients have a post score or the exposure does
    not vary.
    """
    _check_imputation_settings(n_imputations, n_iterations, method)
    post, first = f"{outcome}_post", f"{outcome}_first"
    covariates = [c for c in covariates if c != first]
    analysis = [post, exposure, first, *covariates]
    notes: list[str] = []
    auxiliary = _auxiliary_variables(client_measures, outcome, auxiliary, analysis, notes)
    sample = _imputation_sample(
        client_measures,
        analysis,
        auxiliary,
        exposure=exposure,
        exposure_reference=exposure_reference,
        notes=notes,
    )
    data, missing = sample.data, sample.missing
    formula = _formula(post, exposure, first, covariates, data)
    rng = np.random.default_rng([int(seed), zlib.crc32(model_id.encode("utf-8"))])
    if not any(missing.values()):
        notes.append("no missing values: the model was fitted once, without imputation")
    result, fit_warnings, error = capture_fit(
        lambda: _imputed_fit(formula, sample, n_imputations, rng, n_iterations, method)
    )
    warn = notes + fit_warnings + ([f"fit failed: {error}"] if error else [])
    converged = result is not None and not error
    pooled = result if converged else None
    diagnostics = client_model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=formula,
        method=(
            f"OLS with multiple imputation by chained equations ({method}), pooled by Rubin's "
            "rules with Barnard-Rubin df"
        ),
        optimizer="least squares (pseudoinverse)",
        converged=converged,
        warn=warn,
        llf=math.nan,
        n_obs=len(data),
        data=data.assign(client_id=sample.ids),
        client_measures=client_measures,
        extras={
            "exposure_coding": sample.coding,
            "auxiliary": list(auxiliary),
            **_imputation_extras(sample, method, n_imputations, n_iterations, seed, pooled),
        },
    )
    rows = _pooled_rows(pooled) if pooled is not None else []
    return _result(model_id, outcome, exposure, len(data), converged, primary, rows, diagnostics)


def _check_imputation_settings(n_imputations: int, n_iterations: int, method: str) -> None:
    """Raise ConfigError for too few imputations or cycles, or an unknown imputation method."""
    if n_imputations < 2:
        raise ConfigError("ancova_mice model: n_imputations must be at least 2")
    if n_iterations < 1:
        raise ConfigError("ancova_mice model: n_iterations must be at least 1")
    if method not in METHODS:
        raise ConfigError(f"ancova_mice model: method must be one of {list(METHODS)}")


def _auxiliary_variables(
    client_measures: pd.DataFrame,
    outcome: str,
    auxiliary: Sequence[str] | None,
    analysis: list[str],
    notes: list[str],
) -> list[str]:
    """The auxiliary variables of the imputation, none of them an analysis variable; by default
    those of `DEFAULT_AUXILIARY` the client measures have (a note names the others)."""
    if auxiliary is None:
        wanted = [c.format(outcome=outcome) for c in DEFAULT_AUXILIARY]
        absent = [c for c in wanted if c not in client_measures.columns]
        if absent:
            notes.append(f"auxiliary variable(s) not in the client measures: {', '.join(absent)}")
        auxiliary = [c for c in wanted if c in client_measures.columns]
    return [c for c in dict.fromkeys(auxiliary) if c not in analysis]


@dataclass
class _ImputationSample:
    """The clients the imputation model sees (numeric columns), their ids and their counts."""

    data: pd.DataFrame
    ids: pd.Series
    coding: str
    n_input: int
    n_post: int
    n_complete: int
    missing: dict[str, int]


def _imputation_sample(
    client_measures: pd.DataFrame,
    analysis: list[str],
    auxiliary: list[str],
    *,
    exposure: str,
    exposure_reference: str | None,
    notes: list[str],
) -> _ImputationSample:
    """Every client with at least one observed value of the analysis and auxiliary variables;
    raises NotEstimableError when too few have the post score or the exposure does not vary."""
    data, coding = client_level_data(
        client_measures,
        [*analysis, *auxiliary],
        exposure=exposure,
        exposure_reference=exposure_reference,
        model_name="ancova_mice model",
        numeric_only=True,
    )
    ids = data.pop("client_id")
    n_all = len(data)
    keep = data.notna().any(axis=1)
    data, ids = data.loc[keep].reset_index(drop=True), ids.loc[keep].reset_index(drop=True)
    # An auxiliary the study never observed (no alliance ratings, say) cannot inform the
    # imputation: it is left out and the note says so.
    empty = [c for c in auxiliary if c in data.columns and data[c].isna().all()]
    if empty:
        notes.append(f"auxiliary variable(s) with no observed value left out: {', '.join(empty)}")
        data = data.drop(columns=empty)
    missing = {c: int(data[c].isna().sum()) for c in data.columns}
    n_complete = int(data[analysis].notna().all(axis=1).sum())
    post = analysis[0]
    n_post = int(data[post].notna().sum())
    if n_post < MIN_CLIENTS:
        raise NotEstimableError(
            f"ancova_mice model: {n_post} client(s) with {post}; at least {MIN_CLIENTS} needed"
        )
    check_enough_clients(data.dropna(subset=[exposure]), exposure, "ancova_mice model")
    return _ImputationSample(data, ids, coding, n_all, n_post, n_complete, missing)


def _imputed_fit(
    formula: str,
    sample: _ImputationSample,
    n_imputations: int,
    rng: np.random.Generator,
    n_iterations: int,
    method: str,
) -> Pooled:
    """OLS of `formula` pooled over `n_imputations` completed data sets; without a missing
    value, the one fit of the data as they are."""
    if not any(sample.missing.values()):
        return _pooled_ols(formula, [sample.data])
    return _pooled_ols(
        formula, impute(sample.data, n_imputations, rng, n_iterations=n_iterations, method=method)
    )


def _imputation_extras(
    sample: _ImputationSample,
    method: str,
    n_imputations: int,
    n_iterations: int,
    seed: int,
    pooled: Pooled | None,
) -> dict[str, Any]:
    """What the imputation saw and did: its variables, missing values, client counts and
    settings, and each term's Barnard-Rubin df and fraction of missing information."""
    df: dict[str, float] = {}
    fmi: dict[str, float] = {}
    if pooled is not None:
        for i, term in enumerate(pooled.terms):
            fmi[term], df[term] = float(pooled.fmi[i]), float(pooled.df[i])
    return {
        "imputation_variables": list(sample.data.columns),
        "imputation_method": method,
        "missing_values": sample.missing,
        "clients_in_input": sample.n_input,
        "clients_with_post": sample.n_post,
        "clients_complete_cases": sample.n_complete,
        "n_imputations": int(n_imputations),
        "n_iterations": int(n_iterations),
        "seed": int(seed),
        "df_complete": float(pooled.df_com) if pooled is not None else math.nan,
        "degrees_of_freedom": df,
        "fraction_missing_information": fmi,
    }


def _pooled_rows(result: Pooled) -> list[dict[str, Any]]:
    """Coefficient rows of a pooled fit, with t intervals on the Barnard-Rubin df."""
    low, high = result.conf_int(0.05)
    p = result.p_value()
    return [
        {
            "term": term,
            "estimate": float(result.estimate[i]),
            "std_error": float(result.std_error[i]),
            "ci_low": float(low[i]),
            "ci_high": float(high[i]),
            "p_value": float(p[i]),
        }
        for i, term in enumerate(result.terms)
    ]


def _pooled_ols(formula: str, sets: list[pd.DataFrame]):
    """OLS of `formula` on each completed data set, pooled (one set: the plain fit)."""
    fits = [smf.ols(formula, data).fit() for data in sets]
    estimates = np.array([f.params.to_numpy() for f in fits])
    variances = np.array([np.diag(f.cov_params().to_numpy()) for f in fits])
    terms = list(fits[0].params.index)
    df_com = float(fits[0].df_resid)
    if len(fits) == 1:
        zero = np.zeros(len(terms))
        df = np.full(len(terms), df_com)
        u = variances[0]
        return Pooled(terms, estimates[0], u, zero, u, df_com, df, zero, zero, zero, 1)
    return pool(estimates, variances, df_com, terms)


def client_level_data(
    client_measures: pd.DataFrame,
    columns: Sequence[str],
    *,
    exposure: str,
    exposure_reference: str | None,
    model_name: str,
    extra: Sequence[str] = (),
    numeric_only: bool = False,
) -> tuple[pd.DataFrame, str]:
    """One row per client: client_id, `columns` (numbers as float, text as object) and `extra`
    columns as given; and how the exposure was coded.

    A two-level text exposure (or, with `numeric_only`, any two-level text column) is coded
    0/1, 1 for the level that is not the reference (for the exposure `exposure_reference`,
    else the first level in sorted order). Shared by the client-level models (ANCOVA,
    mediation), so they treat columns alike.
    """
    columns = list(dict.fromkeys(columns))
    for name in columns:
        if not name.isidentifier():
            raise ConfigError(f"{model_name}: {name!r} cannot be used as a model term name")
        if name not in client_measures.columns:
            raise ConfigError(f"{model_name}: the client measures have no column {name!r}")
    if "client_id" not in client_measures.columns:
        raise ConfigError(f"{model_name}: the client measures have no column 'client_id'")
    if client_measures["client_id"].duplicated().any():
        raise ConfigError(f"{model_name}: the client measures have more than one row per client")
    data = pd.DataFrame({"client_id": client_measures["client_id"].astype(str).to_numpy()})
    coding = "as given"
    for name in columns:
        values = client_measures[name].reset_index(drop=True)
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            data[name] = pd.to_numeric(values.astype("Float64"), errors="coerce").astype(float)
            continue
        text = values.astype(object).where(values.notna(), None)
        levels = sorted({str(v) for v in text.dropna()})
        if name == exposure or numeric_only:
            if len(levels) != 2:
                what = "exposure" if name == exposure else "column"
                raise ConfigError(
                    f"{model_name}: the {what} {name!r} is text with {len(levels)} levels; "
                    "a text column must have exactly two here"
                )
            reference = levels[0]
            if name == exposure and exposure_reference is not None:
                if exposure_reference not in levels:
                    raise ConfigError(
                        f"{model_name}: exposure_reference {exposure_reference!r} is not a level"
                    )
                reference = exposure_reference
            other = next(lv for lv in levels if lv != reference)
            data[name] = [math.nan if v is None else float(str(v) == other) for v in text]
            if name == exposure:
                coding = f"1 = {other}, 0 = {reference}"
        else:
            data[name] = text.to_numpy(dtype=object)
    for name in extra:
        if name not in client_measures.columns:
            raise ConfigError(f"{model_name}: the client measures have no column {name!r}")
        data[name] = client_measures[name].reset_index(drop=True)
    return data, coding


def _formula(
    last: str, exposure: str, first: str, covariates: list[str], data: pd.DataFrame
) -> str:
    terms = [exposure, first]
    for name in covariates:
        terms.append(name if pd.api.types.is_numeric_dtype(data[name]) else f"C({name})")
    return f"{last} ~ {' + '.join(terms)}"


def check_enough_clients(data: pd.DataFrame, exposure: str, model_name: str) -> None:
    if len(data) < MIN_CLIENTS:
        raise NotEstimableError(
            f"{model_name}: {len(data)} client(s) with complete data; at least {MIN_CLIENTS} needed"
        )
    if data[exposure].nunique() < 2:
        raise NotEstimableError(
            f"{model_name}: the exposure {exposure!r} does not vary across clients"
        )


def _common(model_id: str, outcome: str, exposure: str, n: int, converged: bool) -> dict:
    return {
        "model": model_id,
        "outcome": outcome,
        "exposure": exposure,
        "n_obs": n,
        "n_clients": n,
        "converged": converged,
    }


def client_model_diagnostics(
    *,
    model_id: str,
    outcome: str,
    exposure: str,
    formula: str,
    method: str,
    optimizer: str,
    converged: bool,
    warn: list[str],
    llf: float,
    n_obs: int,
    data: pd.DataFrame,
    client_measures: pd.DataFrame,
    extras: dict[str, Any],
) -> dict[str, Any]:
    n_therapists = 0
    if "therapist_id" in client_measures.columns and "client_id" in data.columns:
        therapist = client_measures.set_index(client_measures["client_id"].astype(str))[
            "therapist_id"
        ]
        n_therapists = int(therapist.reindex(data["client_id"]).dropna().nunique())
    elif "therapist_id" in client_measures.columns:
        n_therapists = int(client_measures["therapist_id"].dropna().nunique())
    return model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=formula,
        method=method,
        optimizer=optimizer,
        converged=converged,
        warn=warn,
        log_likelihood=llf,
        n_obs=n_obs,
        n_clients=n_obs,
        n_therapists=n_therapists,
        extras=extras,
    )


def fit_ancova_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_ancova` for a model declared in config (options: completers_only, end (``post``, or
    ``last`` for the LOCF sensitivity), exposure_reference). The session panel is not used."""
    return fit_ancova(
        client_measures,
        outcome=spec.outcome,
        exposure=spec.exposure,
        covariates=spec.covariates,
        model_id=spec.id,
        primary=spec.primary,
        completers_only=bool(spec.options.get("completers_only", False)),
        exposure_reference=spec.options.get("exposure_reference"),
        end=str(spec.options.get("end", "post")),
    )


def fit_ancova_mice_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_ancova_mice` for a model declared in config (options: auxiliary, n_imputations,
    n_iterations, method, exposure_reference; the seed is the study seed). The session panel
    is not used."""
    unknown = sorted(set(spec.options) - MICE_OPTIONS)
    if unknown:
        raise ConfigError(
            f"models: {spec.id}: unknown option {unknown[0]!r} for ancova_mice (which keeps "
            f"every client and imputes what is missing); known: {sorted(MICE_OPTIONS)}"
        )
    auxiliary = spec.options.get("auxiliary")
    return fit_ancova_mice(
        client_measures,
        outcome=spec.outcome,
        exposure=spec.exposure,
        covariates=spec.covariates,
        auxiliary=None if auxiliary is None else list(auxiliary),
        model_id=spec.id,
        primary=spec.primary,
        seed=context.seed,
        n_imputations=int(spec.options.get("n_imputations", DEFAULT_N_IMPUTATIONS)),
        n_iterations=int(spec.options.get("n_iterations", DEFAULT_N_ITERATIONS)),
        method=str(spec.options.get("method", "norm")),
        exposure_reference=spec.options.get("exposure_reference"),
    )
