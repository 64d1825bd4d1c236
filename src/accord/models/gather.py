"""Gather the per-model outputs into the study's one coefficients table and diagnostics file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from accord.models.multiplicity import add_fdr
from accord.models.tidy import COEFFICIENT_COLUMNS

GATHERED_COLUMNS = [*COEFFICIENT_COLUMNS, "exposure_effect", "role", "p_fdr"]
# The term of a likelihood-ratio test's row (accord.models.lrt).
LRT_TERM_PREFIX = "LRT: "


def gather_models(
    coefficient_files: Sequence[str | Path],
    diagnostic_files: Sequence[str | Path],
) -> tuple[pd.DataFrame, dict]:
    """All models' coefficients in one table, with each model's `role`, the primary test
    flagged and Benjamini-Hochberg `p_fdr` across the secondary exposure effects
    (`accord.models.multiplicity`); diagnostics keyed by model.

    A model's role is the one its diagnostics record (`accord.models.spec.fit_model`); a
    result fitted without one is ``primary`` if its rows are marked primary, else
    ``decomposition`` if it has an ACME, else ``secondary``.
    """
    frames = [pd.read_csv(path) for path in coefficient_files]
    frames = [frame for frame in frames if len(frame)]
    coefficients = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    coefficients = coefficients.reindex(columns=COEFFICIENT_COLUMNS)
    diagnostics = {}
    for path in diagnostic_files:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        diagnostics[data.get("model", Path(path).parent.name)] = data
    # A within-person lagged model's exposure effect is its `<predictor>_within` term.
    within = coefficients["term"].astype(str) == coefficients["exposure"].astype(str) + "_within"
    exposure_terms = dict(
        zip(coefficients.loc[within, "model"], coefficients.loc[within, "term"], strict=True)
    )
    # A likelihood-ratio test repeats its full model's question: it is not an exposure effect.
    lrt = coefficients["term"].astype(str).str.startswith(LRT_TERM_PREFIX)
    exposure_terms.update({model: [] for model in coefficients.loc[lrt, "model"]})
    coefficients = add_fdr(coefficients, model_roles(coefficients, diagnostics), exposure_terms)
    return coefficients.reindex(columns=GATHERED_COLUMNS), diagnostics


def model_roles(coefficients: pd.DataFrame, diagnostics: Mapping[str, Any]) -> dict[str, str]:
    """Each model's role: recorded in its diagnostics, else read from its rows (see
    `gather_models`)."""
    roles = {}
    for model, rows in coefficients.groupby("model", sort=False):
        recorded = (diagnostics.get(str(model)) or {}).get("role")
        if recorded:
            roles[str(model)] = str(recorded)
        elif rows["primary"].map(lambda v: str(v).lower() == "true").any():
            roles[str(model)] = "primary"
        elif rows["term"].astype(str).eq("acme").any():
            roles[str(model)] = "decomposition"
        else:
            roles[str(model)] = "secondary"
    return roles
