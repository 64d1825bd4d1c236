"""Gather the per-model outputs into the study's one coefficients table and diagnostics file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from accord.models.tidy import COEFFICIENT_COLUMNS


def gather_models(
    coefficient_files: Sequence[str | Path], diagnostic_files: Sequence[str | Path]
) -> tuple[pd.DataFrame, dict]:
    """All models' coefficients in one table (model order as given) and diagnostics by model."""
    frames = [pd.read_csv(path) for path in coefficient_files]
    coefficients = pd.concat(frames, ignore_index=True).reindex(columns=COEFFICIENT_COLUMNS)
    diagnostics = {}
    for path in diagnostic_files:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        diagnostics[data.get("model", Path(path).parent.name)] = data
    return coefficients, diagnostics
