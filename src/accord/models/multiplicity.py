"""Benjamini-Hochberg adjustment across the secondary tests (analyses.md).

The family
----------
Each model contributes the row (or rows) that answer its question, its *exposure effect*:

* a term that is an interaction involving the exposure (``time:joint_goal_share`` in the
  growth model: the difference in rate of change); if a model has one, its main exposure
  term (the difference at time 0) is not an exposure effect;
* otherwise the term equal to the exposure (``joint_goal_share`` in an ANCOVA, a logistic or
  a Cox model), or a level of a categorical exposure (``arm[T.usual_care]``,
  ``C(arm)[T.usual_care]``);
* the ACME of a mediation model (term ``acme``): the question is whether the exposure works
  through the mediator. The ADE, total effect and proportion mediated are not in the family.

`exposure_terms` overrides this rule for the models it names. Intercepts, covariates, random
effects and every other row are not tests of the exposure and get no adjusted p-value.

The family is every exposure-effect row of every model whose (outcome, exposure) is not the
primary pair named in config, adjusted together in one step (Benjamini & Hochberg 1995, JRSS B
57:289; statsmodels ``multipletests(method="fdr_bh")``). The exposure-effect rows of models of
the primary pair (the primary analysis and its sensitivity analyses) are the confirmatory
tests: they are not adjusted (``p_fdr`` equals ``p_value``) and are marked ``primary``. A row
whose p-value is missing (a model that did not converge) stays out of the family, so it does
not change the other adjusted values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

# Terms that are a model's exposure effect whatever the exposure is called.
NAMED_EFFECT_TERMS = ("acme",)


def exposure_effect(
    coefficients: pd.DataFrame,
    exposure_terms: Mapping[str, str | Sequence[str]] | None = None,
) -> pd.Series:
    """Whether each row is its model's exposure effect (the rule in the module docstring).

    `exposure_terms` maps a model id to the term (or terms) that are its exposure effect,
    replacing the rule for that model.
    """
    exposure_terms = dict(exposure_terms or {})
    flags = pd.Series(False, index=coefficients.index)
    for model, rows in coefficients.groupby("model", sort=False):
        if model in exposure_terms:
            named = exposure_terms[model]
            terms = {named} if isinstance(named, str) else set(named)
            flags[rows.index] = rows["term"].isin(terms).to_numpy()
            continue
        involves = rows.apply(
            lambda row: _involves(str(row["term"]), str(row["exposure"])), axis=1
        ).astype(bool)
        interaction = involves & rows["term"].astype(str).str.contains(":", regex=False)
        chosen = interaction if interaction.any() else involves
        chosen = chosen | rows["term"].isin(NAMED_EFFECT_TERMS)
        flags[rows.index] = chosen.to_numpy()
    return flags


def add_fdr(
    coefficients: pd.DataFrame,
    primary_outcome: str,
    primary_exposure: str,
    exposure_terms: Mapping[str, str | Sequence[str]] | None = None,
) -> pd.DataFrame:
    """`coefficients` with the columns `exposure_effect` (bool), `p_fdr` and `primary` set.

    `p_fdr` is the Benjamini-Hochberg adjusted p-value for the exposure-effect rows of models
    that are not of the primary pair (`primary_outcome`, `primary_exposure`); for the
    exposure-effect rows of the primary pair it is the unadjusted p-value, and those rows (and
    only those) are `primary`. Other rows have a missing `p_fdr`. See the module docstring for
    which rows are exposure effects.
    """
    out = coefficients.copy()
    out["exposure_effect"] = exposure_effect(out, exposure_terms)
    pair = (out["outcome"].astype(str) == primary_outcome) & (
        out["exposure"].astype(str) == primary_exposure
    )
    primary = out["exposure_effect"] & pair
    p_value = pd.to_numeric(out["p_value"], errors="coerce").astype(float)
    family = out["exposure_effect"] & ~pair & p_value.notna()

    p_fdr = pd.Series(np.nan, index=out.index, dtype=float)
    if family.any():
        p_fdr[family] = multipletests(p_value[family].to_numpy(), method="fdr_bh")[1]
    p_fdr[primary] = p_value[primary]
    out["p_fdr"] = p_fdr
    out["primary"] = primary.astype("boolean")
    return out


def _involves(term: str, exposure: str) -> bool:
    """Whether `term` is the exposure, one of its levels, or an interaction including it."""
    for part in term.split(":"):
        if (
            part == exposure
            or part.startswith(f"{exposure}[")
            or part.startswith(f"C({exposure})[")
        ):
            return True
    return False
