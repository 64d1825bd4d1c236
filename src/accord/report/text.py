"""How the report writes numbers and names: APA-style estimates and p-values, field labels."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accord.core.disclosure import NOT_AVAILABLE

MINUS = "\u2212"
TIMES = "\u00d7"
INSTRUMENT_LABELS = {
    "phq9": "PHQ-9",
    "gad7": "GAD-7",
    "core10": "CORE-10",
    "ors": "ORS",
    "srs": "SRS",
    "wai_sr": "WAI-SR",
    "gas": "GAS",
}
_TERM_LABELS = {"Intercept": "Intercept", "time": "Time"}


def num(value: Any, digits: int, *, significant: bool = False) -> str:
    """A number with `digits` decimals (or significant digits), a true minus sign, and no
    negative zero; an en dash when missing."""
    if not finite(value):
        return NOT_AVAILABLE
    text = f"{float(value):.{digits}g}" if significant else f"{float(value):.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", MINUS)


def coef(value: Any) -> str:
    """A coefficient bounded by 1 (alpha, omega, r, ICC) in APA style: two decimals, no
    leading zero."""
    text = num(value, 2)
    if text.lstrip(MINUS).startswith("0."):
        text = text.replace("0.", ".", 1)
    return text


def p_value(p: Any, *, floor: Any = None) -> str:
    """APA style: three decimals without the leading zero, "< .001" below that.

    `floor` is the smallest p a resampling method can give (a bootstrap p from B replicates is
    at least 2 / (1 + B)): a p at the floor reads "\u2264" the floor, since the replicates
    cannot tell it from smaller ones, and never "< .001" when the floor is above .001."""
    if not finite(p):
        return NOT_AVAILABLE
    if finite(floor) and float(p) <= float(floor) * (1 + 1e-9):
        shown = f"{float(floor):.3f}" if float(floor) >= 0.001 else f"{float(floor):.1g}"
        return f"\u2264 {shown.removeprefix('0')}"
    if p < 0.001:
        return "< .001"
    return f"{p:.3f}".removeprefix("0")


def p_phrase(p: Any) -> str:
    """ "= .012" or "< .001", for a p-value in a sentence."""
    text = p_value(p)
    return text if text.startswith("<") else f"= {text}"


def interval(low: Any, high: Any, digits: int) -> str:
    """A 95% CI as "[low, high]"."""
    return f"[{num(low, digits)}, {num(high, digits)}]"


def digits_for(se: Any) -> int:
    """Three decimals for small standard errors, else two."""
    return 3 if finite(se) and float(se) < 0.1 else 2


def finite(value: Any) -> bool:
    """True for a finite number (False for None, NA, NaN, text)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def truthy(value: Any) -> bool:
    """A flag read from a CSV or JSON: True, "True", 1; missing is False."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value) if value is not None and value is not pd.NA and value == value else False


def int_or_none(value: Any) -> int | None:
    """A whole number, or None when missing."""
    return int(value) if finite(value) else None


def instrument_label(key: str) -> str:
    """ "phq9" -> "PHQ-9"; an unknown instrument keeps its key."""
    return INSTRUMENT_LABELS.get(key, key)


def scale_label(instrument: str, scale: str) -> str:
    """An instrument's scale, the total named by the instrument alone."""
    label = instrument_label(instrument)
    return label if scale in ("total", "t_score", "") else f"{label} {scale}"


def outcome_label(outcome: str) -> str:
    """The label of a configured outcome ("phq9" or "wai_sr.bond")."""
    key, _, scale = outcome.partition(".")
    label = instrument_label(key)
    return f"{label} {scale}" if scale else label


def term_label(term: str) -> str:
    """A model term for a table: "time:x" -> "Time × x"."""
    if term in _TERM_LABELS:
        return _TERM_LABELS[term]
    return term.replace("time:", f"Time {TIMES} ").replace(":", f" {TIMES} ")


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
