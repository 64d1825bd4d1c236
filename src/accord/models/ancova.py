"""Pre-post ANCOVA: is collaborative goal-setting related to symptoms at the end of treatment,
given symptoms at intake? (analyses.md, sensitivity)

    y_last,i = b0 + b1 x_i + b2 y_first,i + covariates_i + e_i,   e_i ~ N(0, sigma^2)

by ordinary least squares, one row per client (`<outcome>_last` and `<outcome>_first` from the
client measures). b1, the exposure term, is the estimate shown next to the growth model's.
Adjusting for the intake score rather than analysing change scores gives the smaller SE when
intake and end scores correlate less than perfectly, and does not depend on regression to the
mean (Vickers & Altman 2001, BMJ 323:1123).

Two kinds:

``ancova``
    Complete cases (clients with the outcome at the last assessment, the intake score, the
    exposure and every covariate). ``completers_only: true`` further keeps only clients who did
    not drop out (``dropout`` False; clients whose dropout status is unknown are left out too),
    the completers-only sensitivity analysis. SEs, CIs and p-values use the t distribution with
    the residual degrees of freedom, as statsmodels reports OLS.

``ancova_mice``
    The same model fitted by multiple imputation with chained equations (statsmodels
    ``MICEData`` + ``MICE``; van Buuren 2018, Flexible Imputation of Missing Data): every client
    enters, each variable with missing values is imputed from all the others by linear
    regression with predictive mean matching (the 20 nearest observed values), with model
    parameters perturbed from their sampling distribution so imputations carry their
    uncertainty. Auxiliary variables (``auxiliary``, default sessions_attended and
    early_alliance) enter the imputation models but not the analysis model: they make missing
    at random more plausible, since how much treatment a client had and how the alliance began
    both predict a missing end score and the score itself. After ``n_burnin`` cycles, an imputed
    data set is analysed every ``n_skip + 1`` cycles, ``n_imputations`` times; estimates are
    pooled by Rubin's rules (statsmodels ``MICE.combine``: mean of the estimates; variance =
    mean within-imputation variance + (1 + 1/m) x between-imputation variance), with normal
    reference intervals and p-values (statsmodels does not apply the Barnard-Rubin degrees of
    freedom). The fraction of missing information per term, (1 + 1/m) B / T, is in the
    diagnostics' extras. Imputation draws come from one generator seeded by the study seed and
    the model id, so a rerun gives identical numbers. Every variable must be numeric (a
    two-level text column is coded 0/1); a text covariate with more levels is refused.

A model whose fit fails is reported with ``converged`` False and the error in its warnings.
Fit times (400 clients, one core): ``ancova`` well under 0.1 s; ``ancova_mice`` with the
defaults (20 imputations, 10 burn-in cycles, n_skip 3) about 14 s when the outcome and one
auxiliary variable have missing values: statsmodels rebuilds the design matrices from formulas
for every imputation model in every cycle, which is nearly all of the time.

With predictive mean matching, imputations come from observed values, so when missingness is
concentrated where few outcomes are observed (e.g. selected strongly on an auxiliary variable
that tracks the outcome), imputed values are pulled toward the observed range and the pooled
exposure estimate can be attenuated; look at the missing-data pattern before reading the
MICE estimate as the less biased one.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.imputation.mice import MICE, MICEData

from accord.errors import ConfigError, NotEstimableError
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, capture_fit, coefficient_frame, model_diagnostics

DEFAULT_AUXILIARY = ("sessions_attended", "early_alliance")
DEFAULT_N_IMPUTATIONS = 20
DEFAULT_N_BURNIN = 10
DEFAULT_N_SKIP = 3
MIN_CLIENTS = 5


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
) -> ModelResult:
    """Fit ``<outcome>_last ~ exposure + <outcome>_first + covariates`` by OLS on complete cases.

    `client_measures` has one row per client (client_id, `<outcome>_last`, `<outcome>_first`,
    `exposure`, `covariates`, and ``dropout`` when `completers_only`). A two-level text
    exposure is coded 1 for the level that is not `exposure_reference` (default: the first in
    sorted order); a text covariate enters as categorical (treatment coding).

    Raises ConfigError for a column that does not exist, and AccordError when fewer than
    `MIN_CLIENTS` clients have complete data or the exposure does not vary.
    """
    last, first = f"{outcome}_last", f"{outcome}_first"
    covariates = [c for c in covariates if c != first]
    columns = [last, exposure, first, *covariates]
    if completers_only and "dropout" not in client_measures.columns:
        raise ConfigError("ancova model: completers_only needs the column 'dropout'")
    data, coding = client_level_data(
        client_measures,
        columns,
        exposure=exposure,
        exposure_reference=exposure_reference,
        model_name="ancova model",
        extra=["dropout"] if completers_only else [],
    )
    n_all = len(data)
    notes: list[str] = []
    n_dropouts_excluded = 0
    if completers_only:
        dropout = data.pop("dropout")
        completer = dropout.notna() & ~dropout.astype("boolean").fillna(True).astype(bool)
        n_dropouts_excluded = int((~completer).sum())
        data = data.loc[completer]
        notes.append(
            f"completers only: {n_dropouts_excluded} client(s) who dropped out or whose "
            "dropout status is unknown left out"
        )
    complete = data[columns].notna().all(axis=1)
    n_incomplete = int((~complete).sum())
    if n_incomplete:
        notes.append(f"{n_incomplete} client(s) left out for missing data (complete cases)")
    data = data.loc[complete].reset_index(drop=True)
    check_enough_clients(data, exposure, "ancova model")

    formula = _formula(last, exposure, first, covariates, data)
    fit = capture_fit(lambda: smf.ols(formula, data).fit())
    result, fit_warnings, error = fit
    warn = notes + fit_warnings
    if error:
        warn.append(f"fit failed: {error}")
    converged = result is not None and not error

    n_obs = len(data)
    common = _common(model_id, outcome, exposure, n_obs, converged)
    rows = []
    if converged:
        ci = result.conf_int(0.05)
        for term in result.params.index:
            rows.append(
                {
                    **common,
                    "term": term,
                    "estimate": float(result.params[term]),
                    "std_error": float(result.bse[term]),
                    "ci_low": float(ci.loc[term, 0]),
                    "ci_high": float(ci.loc[term, 1]),
                    "p_value": float(result.pvalues[term]),
                    "primary": bool(primary and term == exposure),
                }
            )
    diagnostics = client_model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=formula,
        method="OLS",
        optimizer="least squares (pseudoinverse)",
        converged=converged,
        warn=warn,
        llf=float(result.llf) if converged else math.nan,
        n_obs=n_obs,
        data=data,
        client_measures=client_measures,
        extras={
            "exposure_coding": coding,
            "completers_only": completers_only,
            "clients_in_input": n_all,
            "clients_excluded_dropout": n_dropouts_excluded,
            "clients_excluded_missing": n_incomplete,
            "residual_sd": float(math.sqrt(result.scale)) if converged else math.nan,
            "r_squared": float(result.rsquared) if converged else math.nan,
            "df_resid": float(result.df_resid) if converged else math.nan,
        },
    )
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
    n_burnin: int = DEFAULT_N_BURNIN,
    n_skip: int = DEFAULT_N_SKIP,
    exposure_reference: str | None = None,
) -> ModelResult:
    """Fit the pre-post ANCOVA by multiple imputation (see the module docstring).

    `auxiliary` columns enter the imputation only; None means `DEFAULT_AUXILIARY`, each used if
    the column exists (a named auxiliary column that does not exist is a ConfigError). The
    imputation generator is seeded from (`seed`, `model_id`).

    Raises ConfigError for a missing column or a text column with more than two levels, and
    AccordError when fewer than `MIN_CLIENTS` clients have the outcome or the exposure does not
    vary.
    """
    if n_imputations < 2:
        raise ConfigError("ancova_mice model: n_imputations must be at least 2")
    if n_burnin < 0 or n_skip < 0:
        raise ConfigError("ancova_mice model: n_burnin and n_skip cannot be negative")
    last, first = f"{outcome}_last", f"{outcome}_first"
    covariates = [c for c in covariates if c != first]
    analysis = [last, exposure, first, *covariates]
    notes: list[str] = []
    if auxiliary is None:
        absent = [c for c in DEFAULT_AUXILIARY if c not in client_measures.columns]
        if absent:
            notes.append(f"auxiliary variable(s) not in the client measures: {', '.join(absent)}")
        auxiliary = [c for c in DEFAULT_AUXILIARY if c in client_measures.columns]
    auxiliary = [c for c in dict.fromkeys(auxiliary) if c not in analysis]
    data, coding = client_level_data(
        client_measures,
        [*analysis, *auxiliary],
        exposure=exposure,
        exposure_reference=exposure_reference,
        model_name="ancova_mice model",
        numeric_only=True,
    )
    data = data.drop(columns="client_id").reset_index(drop=True)
    n_all = len(data)
    data = data.dropna(how="all")
    missing = {c: int(data[c].isna().sum()) for c in data.columns}
    n_complete = int(data[analysis].notna().all(axis=1).sum())
    if data[last].notna().sum() < MIN_CLIENTS:
        raise NotEstimableError(
            f"ancova_mice model: {int(data[last].notna().sum())} client(s) with {last}; "
            f"at least {MIN_CLIENTS} needed"
        )
    check_enough_clients(data.dropna(subset=[exposure]), exposure, "ancova_mice model")

    formula = _formula(last, exposure, first, covariates, data)
    rng = np.random.default_rng([int(seed), zlib.crc32(model_id.encode("utf-8"))])

    def run():
        imputer = MICEData(data, rng=rng)
        return MICE(formula, sm.OLS, imputer, n_skip=n_skip).fit(
            n_burnin=n_burnin, n_imputations=n_imputations
        )

    if any(missing.values()):
        fit = capture_fit(run)
    else:
        # Nothing to impute: MICE would fit the same data m times (between-imputation
        # variance 0), so the complete-data fit is reported directly.
        notes.append("no missing values: the model was fitted once, without imputation")
        fit = capture_fit(lambda: smf.ols(formula, data).fit())
    result, fit_warnings, error = fit
    warn = notes + fit_warnings
    if error:
        warn.append(f"fit failed: {error}")
    converged = result is not None and not error

    n_obs = len(data)
    common = _common(model_id, outcome, exposure, n_obs, converged)
    rows, fmi = [], {}
    if converged:
        names = list(result.model.exog_names) if hasattr(result, "model") else []
        names = list(getattr(result, "exog_names", names))
        params = np.asarray(result.params, dtype=float)
        bse = np.asarray(result.bse, dtype=float)
        pvalues = np.asarray(result.pvalues, dtype=float)
        ci = np.asarray(result.conf_int(0.05), dtype=float)
        frac = np.asarray(getattr(result, "frac_miss_info", np.zeros(len(names))), dtype=float)
        for i, term in enumerate(names):
            fmi[term] = float(frac[i])
            rows.append(
                {
                    **common,
                    "term": term,
                    "estimate": params[i],
                    "std_error": bse[i],
                    "ci_low": ci[i, 0],
                    "ci_high": ci[i, 1],
                    "p_value": pvalues[i],
                    "primary": bool(primary and term == exposure),
                }
            )
    diagnostics = client_model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=formula,
        method="OLS with multiple imputation (MICE), pooled by Rubin's rules",
        optimizer="least squares (pseudoinverse)",
        converged=converged,
        warn=warn,
        llf=math.nan,
        n_obs=n_obs,
        data=data,
        client_measures=client_measures,
        extras={
            "exposure_coding": coding,
            "auxiliary": list(auxiliary),
            "imputation_variables": list(data.columns),
            "missing_values": missing,
            "clients_in_input": n_all,
            "clients_complete_cases": n_complete,
            "n_imputations": int(n_imputations),
            "n_burnin": int(n_burnin),
            "n_skip": int(n_skip),
            "seed": int(seed),
            "fraction_missing_information": fmi,
        },
    )
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=exposure,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


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
    """`fit_ancova` for a model declared in config (options: completers_only,
    exposure_reference). The session panel is not used."""
    return fit_ancova(
        client_measures,
        outcome=spec.outcome,
        exposure=spec.exposure,
        covariates=spec.covariates,
        model_id=spec.id,
        primary=spec.primary,
        completers_only=bool(spec.options.get("completers_only", False)),
        exposure_reference=spec.options.get("exposure_reference"),
    )


def fit_ancova_mice_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_ancova_mice` for a model declared in config (options: auxiliary, n_imputations,
    n_burnin, n_skip, exposure_reference; the seed is the study seed). The session panel is
    not used."""
    if spec.options.get("completers_only"):
        raise ConfigError(
            f"models: {spec.id}: completers_only does not apply to ancova_mice, which keeps "
            "every client and imputes what is missing"
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
        n_burnin=int(spec.options.get("n_burnin", DEFAULT_N_BURNIN)),
        n_skip=int(spec.options.get("n_skip", DEFAULT_N_SKIP)),
        exposure_reference=spec.options.get("exposure_reference"),
    )
