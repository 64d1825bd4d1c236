"""Small readers and names the report shares: flags and counts read from CSV and JSON, an
instrument's, scale's and outcome's label, and config as plain YAML types. Numbers are
formatted by `accord.report.numbers`, names by `accord.report.labels`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accord.report.labels import label
from accord.report.numbers import finite


def truthy(value: Any) -> bool:
    """A flag read from a CSV or JSON: True, "True", 1; missing is False."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value) if value is not None and value is not pd.NA and value == value else False


def int_or_none(value: Any) -> int | None:
    """A whole number, or None when missing."""
    return int(value) if finite(value) else None


def instrument_label(key: str) -> str:
    """ "phq9" -> "PHQ-9"; see `accord.report.labels`."""
    return label(key)


def scale_label(instrument: str, scale: str) -> str:
    """An instrument's scale, the total named by the instrument alone."""
    name = instrument_label(instrument)
    return name if scale in ("total", "t_score", "") else f"{name} {scale}"


def outcome_label(outcome: str) -> str:
    """The label of a configured outcome ("phq9", "wai_sr.bond") or a client measure
    ("phq9_post")."""
    key, _, scale = outcome.partition(".")
    return f"{instrument_label(key)} {scale}" if scale else label(key)


def plain(value: Any) -> Any:
    """Config as plain YAML types (tuples and numpy scalars become lists and numbers)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
