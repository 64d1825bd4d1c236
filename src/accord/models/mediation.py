"""Mediation: does collaborative goal-setting work through engagement or the alliance?
(analyses.md)

    mediator model:  m_i = a0 + a x_i + covariates_i + u_i
    outcome model:   y_i = c0 + c' x_i + b m_i + covariates_i + e_i

for client i, exposure x (e.g. joint_goal_share), mediator m (``mediator``: attendance_rate,
homework_rate, early_alliance, ...) and outcome y, the change in the instrument from first to
last assessment (``<outcome>_change``, or the column named by ``outcome_column``). Both models
are OLS on complete cases. Covariates are the spec's covariates (list ``<outcome>_first`` to
adjust for intake severity: it confounds both the mediator and the change).

statsmodels' ``Mediation`` (Imai, Keele & Tingley 2010, Psychological Methods 15:309) estimates
the average causal mediation effect (ACME, the indirect effect), the average direct effect
(ADE) and the total effect of moving the exposure from 0 to 1, by simulating potential
mediator values from the mediator model and predicting outcomes. With both models linear and no
exposure x mediator interaction, ACME = a b, ADE = c' and total = a b + c'. The contrast is one
unit of the exposure as coded: for joint_goal_share, all goals set jointly against none; a
two-level text exposure (e.g. arm) is coded 1 for the level that is not ``exposure_reference``.

Uncertainty is from the nonparametric bootstrap (``method="bootstrap"``): ``n_boot`` resamples
of clients (default 500), both models refitted on each. As statsmodels reports them, estimates
are the means over the replicates (the proportion mediated: the median), the 95% CI is the 2.5
and 97.5 percentiles and the p-value is twice the smaller share of replicates on either side of
zero, so its resolution is 2 / ``n_boot`` (0 means below that). ``std_error`` is the SD of the
replicates. The proportion mediated is averaged over the control and treated conditions (with
no interaction the two are equal); it is unstable when the total effect is near zero. The
product-of-coefficients estimates (a, b, c', a b from the full-sample fits) are in the
diagnostics' extras for comparison.

Randomness: replicate r draws from its own generator (statsmodels' ``rng`` argument), seeded
from (study seed, model id, r) (`accord.models.bootstrap.replicate_rng`), so the same inputs give
identical results and numpy's global random state is neither used nor changed. Each replicate
is statsmodels' bootstrap with one repetition; a replicate is summarised by its four averages
over clients (ACME and ADE under control and treatment), from which statsmodels' summary
follows (every statistic it reports is a function of these per-replicate averages).
`mediation_replicates` draws any set of replicates, so the workflow spreads them over jobs
(rule bootstrap_model) and `fit_mediation` pools them (``replicates=``): the results are the
same for any number of jobs and the same as drawing every replicate at once.

The models are handed to statsmodels as design matrices (built once from the formulas) rather
than formulas: with formulas, statsmodels rebuilds both design matrices four times per
replicate. Fit time with 400 clients and 500 replicates: about 6 s (statsmodels builds
scipy distribution objects in every replicate; that, not the regressions, is the cost).

The ACME row is the model's exposure effect (see `accord.models.multiplicity`); the causal
reading needs no unmeasured confounding of exposure-mediator, exposure-outcome and
mediator-outcome relations (sequential ignorability), which the data cannot check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from statsmodels.stats.mediation import Mediation, MediationResults

from accord.errors import ConfigError
from accord.models.ancova import (
    check_enough_clients,
    client_level_data,
    client_model_diagnostics,
)
from accord.models.bootstrap import (
    BOOTSTRAP_KINDS,
    check_replicates,
    replicate_indices,
    replicate_rng,
)
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, capture_fit, coefficient_frame

DEFAULT_N_BOOT = BOOTSTRAP_KINDS["mediation"][0]
MIN_BOOT = 50
# statsmodels' summary rows -> the terms of the coefficient table.
TERMS = {
    "ACME (average)": "acme",
    "ADE (average)": "ade",
    "Total effect": "total_effect",
    "Prop. mediated (average)": "proportion_mediated",
}
# A replicate: the ACME and ADE averaged over clients, under control (0) and treatment (1).
REPLICATE_COLUMNS = ["acme_control", "acme_treated", "ade_control", "ade_treated"]


@dataclass(frozen=True)
class _Prepared:
    """The complete cases and the two models' formulas."""

    data: pd.DataFrame
    mediator_formula: str
    outcome_formula: str
    coding: Any
    notes: list[str]
    n_all: int
    n_incomplete: int


def fit_mediation(
    client_measures: pd.DataFrame,
    *,
    mediator: str,
    outcome: str = "phq9",
    outcome_column: str | None = None,
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    model_id: str = "mediation",
    primary: bool = False,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 2026,
    exposure_reference: str | None = None,
    replicates: pd.DataFrame | None = None,
) -> ModelResult:
    """Estimate the ACME, ADE, total effect and proportion mediated (see the module docstring).

    `client_measures` has one row per client with the exposure, `mediator`, the outcome
    column (`outcome_column`, default ``<outcome>_change``) and the `covariates`. Clients
    missing any of them are left out and counted. Replicate r draws from
    ``replicate_rng(seed, model_id, r)``. `replicates`, the replicates already drawn (by
    `mediation_replicates`, possibly in several jobs, pooled), replaces the drawing; it must
    hold replicates 0 .. n_boot - 1.

    Raises ConfigError for a missing column, a mediator equal to the exposure or the outcome,
    or fewer than `MIN_BOOT` replicates; AccordError when fewer than 5 clients have complete
    data or the exposure does not vary.
    """
    y = outcome_column or f"{outcome}_change"
    if n_boot < MIN_BOOT:
        raise ConfigError(f"mediation model: n_boot must be at least {MIN_BOOT}, not {n_boot}")
    prepared = _prepare(
        client_measures,
        mediator=mediator,
        y=y,
        exposure=exposure,
        covariates=covariates,
        exposure_reference=exposure_reference,
    )
    data = prepared.data
    mediator_formula, outcome_formula = prepared.mediator_formula, prepared.outcome_formula
    if replicates is not None:
        check_replicates(replicates, int(n_boot), model_id)
    products: dict[str, float] = {}

    def run():
        analysis = _analysis(prepared, exposure, mediator, products)
        drawn = replicates
        if drawn is None:
            drawn = _draw(analysis, seed, model_id, range(int(n_boot)))
        return _results(drawn)

    fit = capture_fit(run)
    result, fit_warnings, error = fit
    warn = prepared.notes + fit_warnings
    if error:
        warn.append(f"fit failed: {error}")
    converged = result is not None and not error

    n_obs = len(data)
    common = {
        "model": model_id,
        "outcome": outcome,
        "exposure": exposure,
        "n_obs": n_obs,
        "n_clients": n_obs,
        "converged": converged,
    }
    rows = []
    if converged:
        summary = result.summary(alpha=0.05)
        draws = {
            "ACME (average)": result.ACME_avg,
            "ADE (average)": result.ADE_avg,
            "Total effect": result.total_effect,
            "Prop. mediated (average)": result.prop_med_avg,
        }
        for label, term in TERMS.items():
            rows.append(
                {
                    **common,
                    "term": term,
                    "estimate": float(summary.loc[label, "Estimate"]),
                    "std_error": float(np.std(draws[label], ddof=1)),
                    "ci_low": float(summary.loc[label, "Lower CI bound"]),
                    "ci_high": float(summary.loc[label, "Upper CI bound"]),
                    "p_value": float(summary.loc[label, "P-value"]),
                    "primary": bool(primary and term == "acme"),
                }
            )
    diagnostics: dict[str, Any] = client_model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure=exposure,
        formula=f"{mediator_formula}; {outcome_formula}",
        method=f"causal mediation (Imai et al. 2010), OLS models, bootstrap n={int(n_boot)}",
        optimizer="least squares (pseudoinverse)",
        converged=converged,
        warn=warn,
        llf=math.nan,
        n_obs=n_obs,
        data=data,
        client_measures=client_measures,
        extras={
            "mediator": mediator,
            "outcome_column": y,
            "mediator_formula": mediator_formula,
            "outcome_formula": outcome_formula,
            "exposure_coding": prepared.coding,
            "contrast": "exposure 1 vs 0 (as coded)",
            "n_boot": int(n_boot),
            "seed": int(seed),
            "replicate_seed": "default_rng([seed, crc32(model id), replicate])",
            "p_value_resolution": 2.0 / int(n_boot),
            "product_of_coefficients": products,
            "clients_in_input": prepared.n_all,
            "clients_excluded_missing": prepared.n_incomplete,
        },
    )
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=exposure,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def mediation_replicates(
    client_measures: pd.DataFrame,
    *,
    mediator: str,
    replicates: int | Iterable[int],
    outcome: str = "phq9",
    outcome_column: str | None = None,
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    model_id: str = "mediation",
    seed: int = 2026,
    exposure_reference: str | None = None,
) -> pd.DataFrame:
    """Bootstrap replicates of the mediation analysis `fit_mediation` would draw.

    `replicates` is the number of replicates (0 .. n - 1) or the replicate indices to draw;
    replicate r uses ``replicate_rng(seed, model_id, r)``, so any split of the indices over
    jobs, pooled, gives the same table as drawing them all at once. Returns one row per
    replicate: replicate, acme_control, acme_treated, ade_control, ade_treated.
    """
    prepared = _prepare(
        client_measures,
        mediator=mediator,
        y=outcome_column or f"{outcome}_change",
        exposure=exposure,
        covariates=covariates,
        exposure_reference=exposure_reference,
    )
    analysis = _analysis(prepared, exposure, mediator, {})
    return _draw(analysis, seed, model_id, replicate_indices(replicates))


def _prepare(
    client_measures: pd.DataFrame,
    *,
    mediator: str,
    y: str,
    exposure: str,
    covariates: Sequence[str],
    exposure_reference: str | None,
) -> _Prepared:
    if mediator in (exposure, y):
        raise ConfigError(f"mediation model: the mediator {mediator!r} is the exposure or outcome")
    covariates = [c for c in dict.fromkeys(covariates) if c not in (exposure, mediator, y)]
    columns = [y, exposure, mediator, *covariates]
    data, coding = client_level_data(
        client_measures,
        columns,
        exposure=exposure,
        exposure_reference=exposure_reference,
        model_name="mediation model",
    )
    if not pd.api.types.is_numeric_dtype(data[mediator]) or not pd.api.types.is_numeric_dtype(
        data[y]
    ):
        raise ConfigError("mediation model: the mediator and the outcome must be numeric")
    n_all = len(data)
    complete = data[columns].notna().all(axis=1)
    n_incomplete = int((~complete).sum())
    data = data.loc[complete].reset_index(drop=True)
    check_enough_clients(data, exposure, "mediation model")
    notes = []
    if n_incomplete:
        notes.append(f"{n_incomplete} client(s) left out for missing data (complete cases)")
    rhs = [
        c if pd.api.types.is_numeric_dtype(data[c]) else f"C({c})" for c in [exposure, *covariates]
    ]
    return _Prepared(
        data=data,
        mediator_formula=f"{mediator} ~ {' + '.join(rhs)}",
        outcome_formula=f"{y} ~ {' + '.join([rhs[0], mediator, *rhs[1:]])}",
        coding=coding,
        notes=notes,
        n_all=n_all,
        n_incomplete=n_incomplete,
    )


def _analysis(
    prepared: _Prepared, exposure: str, mediator: str, products: dict[str, float]
) -> Mediation:
    """statsmodels' Mediation of the two models; the full-sample a, b, c' into `products`."""
    # Design matrices once, from the formulas; plain models make each replicate cheap.
    m_formula = smf.ols(prepared.mediator_formula, prepared.data)
    y_formula = smf.ols(prepared.outcome_formula, prepared.data)
    m_names, y_names = list(m_formula.exog_names), list(y_formula.exog_names)
    mediator_model = sm.OLS(m_formula.endog, m_formula.exog)
    outcome_model = sm.OLS(y_formula.endog, y_formula.exog)
    m_fit, y_fit = mediator_model.fit(), outcome_model.fit()
    a = float(m_fit.params[m_names.index(exposure)])
    b = float(y_fit.params[y_names.index(mediator)])
    c_direct = float(y_fit.params[y_names.index(exposure)])
    products.update(
        a_exposure_to_mediator=a,
        b_mediator_to_outcome=b,
        c_direct=c_direct,
        indirect_ab=a * b,
        total_ab_plus_c=a * b + c_direct,
    )
    return Mediation(
        outcome_model,
        mediator_model,
        (y_names.index(exposure), m_names.index(exposure)),
        mediator=y_names.index(mediator),
    )


def _draw(analysis: Mediation, seed: int, model_id: str, indices: Iterable[int]) -> pd.DataFrame:
    """Replicates `indices`, each statsmodels' bootstrap with one repetition and its own rng."""
    rows = []
    for r in indices:
        one = analysis.fit(method="bootstrap", n_rep=1, rng=replicate_rng(seed, model_id, r))
        rows.append(
            {
                "replicate": int(r),
                "acme_control": float(one.ACME_ctrl[0]),
                "acme_treated": float(one.ACME_tx[0]),
                "ade_control": float(one.ADE_ctrl[0]),
                "ade_treated": float(one.ADE_tx[0]),
            }
        )
    frame = pd.DataFrame(rows, columns=["replicate", *REPLICATE_COLUMNS])
    frame["replicate"] = frame["replicate"].astype(np.int64)
    frame[REPLICATE_COLUMNS] = frame[REPLICATE_COLUMNS].astype(float)
    return frame


def _results(replicates: pd.DataFrame) -> MediationResults:
    """statsmodels' results from the replicates' averages (in replicate order)."""
    ordered = replicates.sort_values("replicate", kind="stable")

    def row(column: str) -> np.ndarray:
        # MediationResults averages over clients (axis 0); one row holds the averages already.
        return ordered[column].to_numpy(dtype=float)[np.newaxis, :]

    result = MediationResults(
        [row("acme_control"), row("acme_treated")], [row("ade_control"), row("ade_treated")]
    )
    result.method = "bootstrap"
    return result


def fit_mediation_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    replicates: pd.DataFrame | None = None,
) -> ModelResult:
    """`fit_mediation` for a model declared in config (options: mediator (required),
    outcome_column, n_boot, exposure_reference; the seed is the study seed). The session panel
    is not used. `replicates`: the pooled replicate tables of the model's bootstrap jobs, if
    drawn there."""
    return fit_mediation(
        client_measures,
        mediator=_mediator_option(spec),
        outcome=spec.outcome,
        outcome_column=spec.options.get("outcome_column"),
        exposure=spec.exposure,
        covariates=spec.covariates,
        model_id=spec.id,
        primary=spec.primary,
        n_boot=int(spec.options.get("n_boot", DEFAULT_N_BOOT)),
        seed=context.seed,
        exposure_reference=spec.options.get("exposure_reference"),
        replicates=replicates,
    )


def mediation_replicates_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    replicates: range,
) -> pd.DataFrame:
    """`mediation_replicates` for one chunk of a model declared in config."""
    return mediation_replicates(
        client_measures,
        mediator=_mediator_option(spec),
        replicates=replicates,
        outcome=spec.outcome,
        outcome_column=spec.options.get("outcome_column"),
        exposure=spec.exposure,
        covariates=spec.covariates,
        model_id=spec.id,
        seed=context.seed,
        exposure_reference=spec.options.get("exposure_reference"),
    )


def _mediator_option(spec: ModelSpec) -> str:
    mediator = spec.options.get("mediator")
    if not mediator:
        raise ConfigError(f"models: {spec.id}: a mediation model needs options.mediator")
    return str(mediator)
