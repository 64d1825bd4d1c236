"""The report's one number formatter, in APA style (Publication Manual, 7th ed., 6.36-6.46):
the HTML report, its formatted tables and the drafted Summary and methods text all write
numbers through these functions, so a value reads the same wherever it appears.

* Estimates, standard errors and CIs: two decimals (`ESTIMATE_DIGITS`); three when the standard
  error is below .01, so a small per-session slope and its interval are not rounded to zero.
* Coefficients bounded by 1 (r, alpha, omega, ICC) and p-values: no leading zero; p to three
  decimals, "< .001" below that and "> .999" above.
* Test statistics with their degrees of freedom: "χ²(2) = 17.58".
* A true minus sign (U+2212), never a negative zero; an en dash for a missing value.
"""

from __future__ import annotations

import math
from typing import Any

from accord.core.disclosure import NOT_AVAILABLE

MINUS = "\u2212"
#: Decimals of an estimate, its standard error and CI.
ESTIMATE_DIGITS = 2
#: Below this standard error an estimate gets a third decimal.
SMALL_SE = 0.01
#: A ratio whose CI upper limit exceeds this multiple of its lower limit is imprecise.
WIDE_RATIO = 10.0


def finite(value: Any) -> bool:
    """True for a finite number (False for None, NA, NaN, text)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def num(value: Any, digits: int, *, significant: bool = False) -> str:
    """A number with `digits` decimals (or significant digits), a true minus sign, and no
    negative zero; an en dash when missing."""
    if not finite(value):
        return NOT_AVAILABLE
    text = f"{float(value):.{digits}g}" if significant else f"{float(value):.{digits}f}"
    if float(text) == 0:
        text = text.lstrip("-")
    return text.replace("-", MINUS)


def estimate_digits(se: Any) -> int:
    """Decimals for an estimate with standard error `se`: two, three when `se` < .01."""
    return ESTIMATE_DIGITS + 1 if finite(se) and float(se) < SMALL_SE else ESTIMATE_DIGITS


def estimate(value: Any, se: Any = None) -> str:
    """An estimate with the decimals its standard error calls for."""
    return num(value, estimate_digits(se))


def coef(value: Any) -> str:
    """A coefficient bounded by 1 (alpha, omega, r, ICC): two decimals, no leading zero."""
    text = num(value, 2)
    if text.lstrip(MINUS).startswith("0."):
        text = text.replace("0.", ".", 1)
    return text


def p_value(p: Any, *, floor: Any = None) -> str:
    """Three decimals without the leading zero, "< .001" below that, "> .999" above.

    `floor` is the smallest p a resampling method can give (a bootstrap p from B replicates is
    at least 2 / (1 + B)): a p at the floor reads "\u2264" the floor, since the replicates
    cannot tell it from smaller ones, and never "< .001" when the floor is above .001."""
    if not finite(p):
        return NOT_AVAILABLE
    p = float(p)
    if finite(floor) and p <= float(floor) * (1 + 1e-9):
        shown = f"{float(floor):.3f}" if float(floor) >= 0.001 else f"{float(floor):.1g}"
        return f"\u2264 {shown.removeprefix('0')}"
    if p < 0.001:
        return "< .001"
    if p > 0.999:
        return "> .999"
    return f"{p:.3f}".removeprefix("0")


def p_phrase(p: Any, *, floor: Any = None) -> str:
    """ "= .012", "< .001" or "\u2264 .002", for a p-value in a sentence ("p = .012")."""
    text = p_value(p, floor=floor)
    return text if text[0] in "<>\u2264" or text == NOT_AVAILABLE else f"= {text}"


def interval(low: Any, high: Any, digits: int = ESTIMATE_DIGITS) -> str:
    """A 95% CI as "[low, high]"."""
    return f"[{num(low, digits)}, {num(high, digits)}]"


def estimate_ci(value: Any, low: Any, high: Any, digits: int = ESTIMATE_DIGITS) -> str:
    """ "−0.58 [−0.80, −0.36]": an estimate and its 95% CI with the same decimals."""
    return f"{num(value, digits)} {interval(low, high, digits)}"


def chi_square(statistic: Any, df: Any) -> str:
    """A chi-square test as APA writes it: "χ²(2) = 17.58"; "χ² = 17.58" without df."""
    degrees = f"({int(float(df))})" if finite(df) else ""
    return f"\u03c7\u00b2{degrees} = {num(statistic, 2)}"


def count(n: Any) -> str:
    """A whole count with thousands separated by a comma ("1,248"); an en dash when missing.
    (Counts that may be small go through `accord.disclosure.suppress_count` first.)"""
    return f"{int(float(n)):,}" if finite(n) else NOT_AVAILABLE


def ratio_imprecise(low: Any, high: Any) -> bool:
    """True when a ratio's CI is too wide to read: upper over lower limit above `WIDE_RATIO`,
    a lower limit at zero or a limit that is missing or infinite (separation)."""
    if not (finite(low) and finite(high)) or float(low) <= 0:
        return True
    return float(high) / float(low) > WIDE_RATIO
