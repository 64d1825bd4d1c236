"""Gather the per-model outputs into the study's one coefficients table and diagnostics file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from accord.models.multiplicity import add_fdr
from accord.models.tidy import COEFFICIENT_COLUMNS

GATHERED_COLUMNS = [*COEFFICIENT_COLUMNS, "exposure_effect", "role", "p_fdr", "status"]
# The term of a likelihood-ratio test's row (accord.models.lrt).
LRT_TERM_PREFIX = "LRT: "


def gather_models(
    coefficient_files: Sequence[str | Path],
    diagnostic_files: Sequence[str | Path],
    *,
    plan: Sequence[Mapping[str, str]] = (),
) -> tuple[pd.DataFrame, dict]:
    """All models' coefficients in one table, with each model's `role`, the primary test
    flagged and Benjamini-Hochberg `p_fdr` across the secondary exposure effects
    (`accord.models.multiplicity`); diagnostics keyed by model.

    A model's role is the one its diagnostics record (`accord.models.spec.fit_model`); a
    result fitted without one is ``primary`` if its rows are marked primary, else
    ``decomposition`` if it has an ACME, else ``secondary``.

    Every model of the study's `plan` (accord.models.plan) is in the diagnostics with its
    status (fitted, not_estimable, not_applicable) and reason, in the plan's order; a model
    that does not apply has only its status record.
    """
    frames = [pd.read_csv(path) for path in coefficient_files]
    frames = [frame for frame in frames if len(frame)]
    coefficients = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    coefficients = coefficients.reindex(columns=COEFFICIENT_COLUMNS)
    fitted = {}
    for path in diagnostic_files:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data.setdefault("status", "fitted")
        fitted[data.get("model", Path(path).parent.name)] = data
    # A within-person lagged model's exposure effect is its `<predictor>_within` term.
    within = coefficients["term"].astype(str) == coefficients["exposure"].astype(str) + "_within"
    exposure_terms = dict(
        zip(coefficients.loc[within, "model"], coefficients.loc[within, "term"], strict=True)
    )
    # A likelihood-ratio test repeats its full model's question: it is not an exposure effect.
    lrt = coefficients["term"].astype(str).str.startswith(LRT_TERM_PREFIX)
    exposure_terms.update({model: [] for model in coefficients.loc[lrt, "model"]})
    coefficients = add_fdr(coefficients, model_roles(coefficients, fitted), exposure_terms)
    diagnostics = {}
    for position, entry in enumerate(plan):
        record = {key: entry[key] for key in ("id", "kind", "status", "reason")}
        diagnostics[entry["id"]] = fitted.pop(entry["id"], None) or {
            "model": record.pop("id"),
            **record,
        }
        # JSON keys are written sorted: the position keeps the config's order for the report.
        diagnostics[entry["id"]]["plan_position"] = position
    diagnostics.update(fitted)
    coefficients["status"] = coefficients["model"].map(
        lambda model: diagnostics.get(model, {}).get("status", "fitted")
    )
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
