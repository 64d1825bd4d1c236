"""Clinical change: who recovers, improves, is unchanged or deteriorates? (analyses.md)

For an outcome instrument (e.g. ``phq9``) the per-client table holds the Jacobson-Truax
category ``<outcome>_category`` (recovered, improved, unchanged, deteriorated; measures.md),
whether the client was clinical at the first assessment (``<outcome>_clinical_first``) and
whether they reliably improved (``<outcome>_reliable_improvement``). This kind reports

* the share of clients in each category by group (trial arm, or exposure tertile), with counts
  and group sizes, in diagnostics ``extras["categories"]``: aggregates only, and groups with
  fewer than ``min_cell`` clients left out (the report suppresses small counts as well);
* a logistic model of recovery (category recovered) among clients clinical at the first
  assessment, the only ones who can recover, on the exposure (+ covariates): terms
  ``recovery:<term>``;
* a logistic model of reliable improvement among all clients with a category: terms
  ``reliable_improvement:<term>``.

Both are `accord.models.dropout.fit_logistic` fits (GLM binomial, logit link, Wald 95% CIs;
odds ratios in the ratio columns); their diagnostics are kept under ``extras["models"]`` and
the model counts as converged only when both converged. Clients without a category (fewer
than two assessments) are left out of everything and counted. Fit time (one core, 4,000
clients): about 0.2 s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from accord.core.errors import AccordError, ConfigError, NotEstimableError
from accord.models.dropout import fit_logistic, grouping
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, coefficient_frame

CATEGORIES = ("recovered", "improved", "unchanged", "deteriorated")
ALL_CLIENTS = "all"


def _shares(group: str, categories: pd.Series) -> list[dict[str, Any]]:
    counts = categories.value_counts()
    n = len(categories)
    return [
        {
            "group": group,
            "category": category,
            "n": int(counts.get(category, 0)),
            "n_group": n,
            "share": int(counts.get(category, 0)) / n,
        }
        for category in CATEGORIES
    ]


def category_table(
    categories: pd.Series, groups: pd.Series, min_cell: int
) -> tuple[list[dict[str, Any]], list[str]]:
    """Count and proportion of each category by group, plus a row set for all clients.

    Proportions are of the group's clients with a category. Groups with fewer than `min_cell`
    such clients are left out (their names are returned for a warning). The ``all`` rows
    count every client with a category and a group, and are given only when no group was
    left out (else they and the groups shown would give the left-out group's counts)."""
    frame = pd.DataFrame({"category": categories, "group": groups}).dropna()
    rows: list[dict[str, Any]] = []
    left_out: list[str] = []
    for name, part in frame.groupby("group", sort=True):
        if len(part) < min_cell:
            left_out.append(str(name))
        else:
            rows += _shares(str(name), part["category"])
    # With a group left out, the rows for all clients minus the others would reveal it.
    if not left_out and len(frame) >= min_cell:
        rows += _shares(ALL_CLIENTS, frame["category"])
    return rows, left_out


def fit_clinical_change(
    client_measures: pd.DataFrame,
    *,
    outcome: str = "phq9",
    exposure: str = "joint_goal_share",
    covariates: Sequence[str] = (),
    group: str = "arm",
    model_id: str = "clinical_change",
    primary: bool = False,
    min_cell: int = 11,
    exposure_reference: str | None = None,
) -> ModelResult:
    """Category shares by `group` and logistic models of recovery and of reliable improvement
    on `exposure` + `covariates` (see the module docstring).

    `group` is a client column (default ``arm``) or ``"exposure_tertile"``. With `primary`,
    the exposure rows of both models are marked primary. Raises ConfigError
    for a missing column and AccordError when neither model can be fitted.
    """
    what = f"clinical change model {model_id!r}"
    names = {
        "category": f"{outcome}_category",
        "clinical_first": f"{outcome}_clinical_first",
        "reliable_improvement": f"{outcome}_reliable_improvement",
    }
    category = _categories(client_measures, names, what)
    has_category = category.notna()
    warn: list[str] = []
    n_without = int((~has_category).sum())
    if n_without:
        warn.append(f"{n_without} client(s) without a {outcome} category left out")

    table, left_out, group_info = _grouped_shares(
        client_measures, category, group, exposure, what, min_cell, warn
    )
    data = client_measures.loc[has_category].copy()
    clinical = data[names["clinical_first"]].astype("boolean")
    recovery = data.loc[clinical.fillna(False).to_numpy()].copy()
    recovery["__recovered__"] = recovery[names["category"]].astype(str) == "recovered"
    n_not_clinical = int(len(data) - len(recovery))

    fits, failures = _fit_change_models(
        (
            ("recovery", recovery, "__recovered__"),
            ("reliable_improvement", data, names["reliable_improvement"]),
        ),
        exposure=exposure,
        covariates=covariates,
        model_id=model_id,
        primary=primary,
        exposure_reference=exposure_reference,
        warn=warn,
    )
    if not fits:
        raise NotEstimableError(
            f"{what}: neither model could be fitted ({'; '.join(failures.values())})"
        )
    coefficients, model_diagnostics = _combined_models(fits, failures, outcome, names, warn)
    extras = {
        **group_info,
        "categories": table,
        "groups_left_out": len(left_out),
        "clients_without_category": n_without,
        "recovery_denominator": "clients clinical at the first assessment",
        "clients_not_clinical_first": n_not_clinical,
        "models": model_diagnostics,
    }
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure=exposure,
        coefficients=coefficients,
        diagnostics=_change_diagnostics(model_id, outcome, exposure, data, fits, warn, extras),
    )


def _grouped_shares(
    client_measures: pd.DataFrame,
    category: pd.Series,
    group: str,
    exposure: str,
    what: str,
    min_cell: int,
    warn: list[str],
) -> tuple[list[dict[str, Any]], list[str], dict[str, Any]]:
    """The category table by `group`, the groups it leaves out and how the groups were formed;
    a warning for clients without a group and for groups left out."""
    labels, group_info = grouping(client_measures, group, exposure, what)
    table, left_out = category_table(category, labels, min_cell)
    n_no_group = int((category.notna() & labels.isna()).sum())
    if n_no_group:
        warn.append(f"{n_no_group} client(s) without a {group} left out of the category table")
    if left_out:
        warn.append(
            f"{len(left_out)} group(s) with fewer than {min_cell} clients left out of the "
            "category table"
        )
    return table, left_out, group_info


def _categories(client_measures: pd.DataFrame, names: dict[str, str], what: str) -> pd.Series:
    """Each client's Jacobson-Truax category (missing where there is none); raises
    ConfigError for a missing column or a category that is not one of `CATEGORIES`."""
    for column in names.values():
        if column not in client_measures.columns:
            raise ConfigError(f"{what}: no column {column!r} in the client measures")
    category = client_measures[names["category"]].astype(object)
    category = category.where(category.notna())
    unknown = sorted(set(category.dropna().astype(str)) - set(CATEGORIES))
    if unknown:
        raise ConfigError(f"{what}: unknown categories in {names['category']!r}: {unknown}")
    return category


def _fit_change_models(
    models: Sequence[tuple[str, pd.DataFrame, str]],
    *,
    exposure: str,
    covariates: Sequence[str],
    model_id: str,
    primary: bool,
    exposure_reference: str | None,
    warn: list[str],
) -> tuple[dict[str, ModelResult], dict[str, str]]:
    """The logistic model of each (name, clients, outcome column), its terms prefixed by the
    name; a model that cannot be fitted is kept with its error (and a warning)."""
    fits: dict[str, ModelResult] = {}
    failures: dict[str, str] = {}
    for name, frame, column in models:
        try:
            fits[name] = fit_logistic(
                frame,
                outcome=column,
                exposure=exposure,
                covariates=covariates,
                model_id=model_id,
                primary=primary,
                exposure_reference=exposure_reference,
                term_prefix=f"{name}:",
            )
        except AccordError as exc:
            failures[name] = str(exc)
            warn.append(f"{name} model not fitted: {exc}")
    return fits, failures


def _combined_models(
    fits: dict[str, ModelResult],
    failures: dict[str, str],
    outcome: str,
    names: dict[str, str],
    warn: list[str],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The two models' coefficients in one table, each labelled with its outcome, and each
    model's diagnostics (or its error); the models' warnings join `warn`."""
    labels_out = {
        "recovery": f"{outcome}_recovery",
        "reliable_improvement": names["reliable_improvement"],
    }
    coefficient_parts = []
    model_diagnostics: dict[str, Any] = {}
    for name, result in fits.items():
        part = result.coefficients.copy()
        part["outcome"] = labels_out[name]
        coefficient_parts.append(part)
        diag = dict(result.diagnostics)
        diag["outcome"] = labels_out[name]
        if name == "recovery":
            diag["formula"] = diag["formula"].replace("__recovered__", labels_out[name])
        model_diagnostics[name] = diag
        warn += [f"{name} model: {w}" for w in diag["warnings"]]
    for name, message in failures.items():
        model_diagnostics[name] = {"converged": False, "error": message}
    coefficients = coefficient_frame(
        pd.concat(coefficient_parts, ignore_index=True).to_dict("records")
    )
    return coefficients, model_diagnostics


def _change_diagnostics(
    model_id: str,
    outcome: str,
    exposure: str,
    data: pd.DataFrame,
    fits: dict[str, ModelResult],
    warn: list[str],
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The diagnostics of the clinical change model: converged only when both logistic models
    converged; counts of the clients with a category."""
    model_diagnostics = extras["models"]
    converged = bool(len(fits) == 2 and all(r.diagnostics["converged"] for r in fits.values()))
    n_clients = int(data["client_id"].nunique()) if "client_id" in data else len(data)
    return {
        "model": model_id,
        "outcome": outcome,
        "exposure": exposure,
        "formula": "; ".join(d["formula"] for d in model_diagnostics.values() if "formula" in d),
        "method": "category shares; ML logistic regressions (GLM binomial, logit link)",
        "optimizer": "IRLS",
        "converged": converged,
        "warnings": list(dict.fromkeys(warn)),
        "log_likelihood": math.nan,
        "random_effects": {},
        "boundary": False,
        "boundary_components": [],
        "n_obs": len(data),
        "n_clients": n_clients,
        "n_therapists": (
            int(data["therapist_id"].dropna().nunique()) if "therapist_id" in data else None
        ),
        "extras": extras,
    }


def fit_clinical_change_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_clinical_change` for a model declared in config: outcome instrument, exposure and
    covariates from the entry; options ``group`` (default arm, or exposure_tertile) and
    ``exposure_reference``; min_cell from the study. No row is marked primary: recovery and
    reliable improvement are secondary to the outcome's own model (the growth model), even
    when the entry names the primary outcome and exposure."""
    del panel
    return fit_clinical_change(
        client_measures,
        outcome=spec.outcome,
        exposure=spec.exposure,
        covariates=spec.covariates,
        group=spec.options.get("group", "arm"),
        model_id=spec.id,
        min_cell=context.min_cell,
        exposure_reference=spec.options.get("exposure_reference"),
    )
