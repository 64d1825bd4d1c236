"""Models linking collaborative goal-setting to outcomes; each returns a `ModelResult`.

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
