"""Models linking collaborative goal-setting to outcomes; each returns a `ModelResult`."""

from accord.models.growth import fit_growth
from accord.models.tidy import COEFFICIENT_COLUMNS, ModelResult, write_model_result

__all__ = ["COEFFICIENT_COLUMNS", "ModelResult", "fit_growth", "write_model_result"]
