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
* the ACME of a mediation model (term ``acme``), the indirect association through the
  mediator; mediation models are decompositions, outside the secondary family (Roles).

`exposure_terms` overrides this rule for the models it names. Intercepts, covariates, random
effects and every other row are not tests of the exposure and get no adjusted p-value.

Roles
-----
Each model has a role (`accord.models.spec.ModelSpec.model_role`, recorded in its diagnostics):

* ``primary``: the one model marked ``primary: true`` in config. Its exposure effect is the one
  primary, confirmatory test: not adjusted (``p_fdr`` equals ``p_value``) and marked ``primary``.
* ``secondary``: the exposure effect of every other declared model is in the secondary family,
  adjusted together in one step (Benjamini & Hochberg 1995, JRSS B 57:289; statsmodels
  ``multipletests(method="fdr_bh")``).
* ``sensitivity`` (a sensitivity analysis of another model: complete case, imputation, LOCF, an
  alternative definition or exposure, a likelihood-ratio test), ``decomposition`` (a mediation
  model's ACME, ADE, total effect and proportion mediated) and ``descriptive``: outside the
  family, with no adjusted p-value, labelled by their role.

The family is therefore the set of models, not of (outcome, exposure) pairs: a sensitivity
analysis of the primary question is not a second primary test. A row whose p-value is missing
(a model that did not converge) stays out of the family, so it does not change the other
adjusted values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from accord.models.spec import ROLES

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
    roles: Mapping[str, str],
    exposure_terms: Mapping[str, str | Sequence[str]] | None = None,
) -> pd.DataFrame:
    """`coefficients` with the columns `exposure_effect` (bool), `role`, `p_fdr` and `primary`.

    `roles` maps a model id to its role (`ROLES`); a model it does not name is ``secondary``.
    `p_fdr` is the Benjamini-Hochberg adjusted p-value for the exposure-effect rows of the
    secondary models and the unadjusted p-value for the primary model's exposure effect, the
    one row marked `primary`; every other row has a missing `p_fdr`. See the module docstring.
    """
    unknown = sorted({str(r) for r in roles.values()} - set(ROLES))
    if unknown:
        raise ValueError(f"add_fdr: unknown role {unknown[0]!r}; roles are {list(ROLES)}")
    out = coefficients.copy()
    out["exposure_effect"] = exposure_effect(out, exposure_terms)
    out["role"] = out["model"].map(lambda model: roles.get(str(model), "secondary"))
    primary = out["exposure_effect"] & out["role"].eq("primary")
    p_value = pd.to_numeric(out["p_value"], errors="coerce").astype(float)
    family = out["exposure_effect"] & out["role"].eq("secondary") & p_value.notna()

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
