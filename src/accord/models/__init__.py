"""Stage 4, rules ``plan_models``, ``fit_model``, ``bootstrap_model``, ``gather_models``.

Reads ``client_measures.parquet`` and ``session_panel.parquet``; `plan` decides which declared
models the study can estimate (``models/plan.json``), each model kind's module fits one model
into ``models/<id>/`` (a tidy coefficient table and a diagnostics record, `tidy`), and `gather`
writes the study's ``coefficients.csv`` and ``diagnostics.json``. `engine` is the mixed-model
engine the kinds share; `missingness` describes missing outcomes (rule ``describe_missingness``).

The model modules are imported when first used, so a job fitting one model (or the workflow
reading its config) does not pay for importing every other model's libraries.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["COEFFICIENT_COLUMNS", "ModelResult", "fit_growth", "write_model_result"]

_EXPORTS = {
    "COEFFICIENT_COLUMNS": "accord.models.tidy",
    "ModelResult": "accord.models.tidy",
    "write_model_result": "accord.models.tidy",
    "fit_growth": "accord.models.growth",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'accord.models' has no attribute {name!r}")
