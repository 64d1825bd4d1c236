"""Gather the per-model outputs into the study's one coefficients table and diagnostics file."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from accord.models.multiplicity import add_fdr
from accord.models.tidy import COEFFICIENT_COLUMNS

GATHERED_COLUMNS = [*COEFFICIENT_COLUMNS, "exposure_effect", "p_fdr", "status"]
# The term of a likelihood-ratio test's row (accord.models.lrt).
LRT_TERM_PREFIX = "LRT: "


def gather_models(
    coefficient_files: Sequence[str | Path],
    diagnostic_files: Sequence[str | Path],
    *,
    primary_outcome: str,
    primary_exposure: str,
    plan: Sequence[Mapping[str, str]] = (),
) -> tuple[pd.DataFrame, dict]:
    """All models' coefficients in one table, with Benjamini-Hochberg `p_fdr` across the
    secondary exposure effects and the primary rows flagged; diagnostics keyed by model.

    Every model of the study's `plan` (accord.models.plan) is in the diagnostics with its
    status (fitted, not_estimable, not_applicable) and reason, in the plan's order; a model
    that does not apply has only its status record.
    """
    frames = [pd.read_csv(path) for path in coefficient_files]
    frames = [frame for frame in frames if len(frame)]
    coefficients = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    coefficients = coefficients.reindex(columns=COEFFICIENT_COLUMNS)
    # A within-person lagged model's exposure effect is its `<predictor>_within` term.
    within = coefficients["term"].astype(str) == coefficients["exposure"].astype(str) + "_within"
    exposure_terms = dict(
        zip(coefficients.loc[within, "model"], coefficients.loc[within, "term"], strict=True)
    )
    # A likelihood-ratio test repeats its full model's question: it is not an exposure effect.
    lrt = coefficients["term"].astype(str).str.startswith(LRT_TERM_PREFIX)
    exposure_terms.update({model: [] for model in coefficients.loc[lrt, "model"]})
    coefficients = add_fdr(coefficients, primary_outcome, primary_exposure, exposure_terms)
    fitted = {}
    for path in diagnostic_files:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        data.setdefault("status", "fitted")
        fitted[data.get("model", Path(path).parent.name)] = data
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
