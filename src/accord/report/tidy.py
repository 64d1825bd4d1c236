"""The report's tables as tidy numeric CSV: one value per cell, ASCII only, numbers as numbers.

A table whose section attached its numeric frame (``Table.data``, the values before they were
formatted) is written from that frame. Any other table is read back from its display cells:

- a number ("12", "\u22120.25", ".05", "1,204") is that number; a percentage ("52.0%") is the
  number in a column named ``<column>_pct``;
- "m (s)" gives ``<column>`` and ``<column>_sd``; "n (p%)" gives ``<column>`` and
  ``<column>_pct``; "x [l, h]" gives ``<column>``, ``<column>_low`` and ``<column>_high`` (a
  median with its IQR in Table 1, a mean with its 95% CI in a trajectory table);
- in a column headed as a confidence interval the limits are ``ci_low`` and ``ci_high``: a lone
  "[l, h]" under "95% CI" gives ``ci_low`` and ``ci_high``, and "r [l, h]" under "OR [95% CI]"
  gives ``or``, ``or_ci_low`` and ``or_ci_high``;
- a bound such as "< .001" or "\u2264 .005" leaves ``<column>`` empty and puts the bound in
  ``<column>_upper_bound``;
- a withheld cell ("<11", "*", or a range such as "140\u2013149") is empty, with 1 in
  ``<column>_suppressed`` (0 for a cell shown); "\u2013" or "not given" (not available) and ""
  are empty.

A column is numeric when every cell it shows is one of the forms above; any other column is
text, transliterated to ASCII. Column names are snake_case ASCII (a grouped column is named
``<group>_<column>``). Empty cells read as NA in pandas and in R's ``read.csv``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from accord.report.parts import Table
from accord.report.text import truthy

#: Characters given an ASCII spelling before any other transliteration.
ASCII_SPELLING = {
    "\u2212": "-",
    "\u2013": "-",
    "\u2014": "-",
    "\u00d7": "x",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u00b2": "2",
    "\u03b1": "alpha",
    "\u03b2": "beta",
    "\u03c7": "chi",
    "\u03ba": "kappa",
    "\u03c1": "rho",
    "\u03c9": "omega",
    "\u03b7": "eta",
    "\u0394": "Delta",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u00b1": "+/-",
    "\u2026": "...",
}
#: Cells that say a value is not available: empty in the tidy CSV.
MISSING_TEXT = {"", "\u2013", "\u2014", "-", "not given", "not available", "n/a"}
_NUMBER = r"[\u2212-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][+\u2212-]?\d+)?"
_PLAIN = re.compile(rf"^({_NUMBER})$")
_PERCENT = re.compile(rf"^({_NUMBER})\s?%$")
_PAIR = re.compile(rf"^({_NUMBER})(%?) \(\s*({_NUMBER})\s*(%?)\)$")
_WITH_CI = re.compile(rf"^({_NUMBER}) \[({_NUMBER}), ({_NUMBER})\]$")
_CI = re.compile(rf"^\[({_NUMBER}), ({_NUMBER})\]$")
_BOUND = re.compile(rf"^(?:<|\u2264|<=) ?({_NUMBER})$")
_RANGE = re.compile(r"^\d+\s?[\u2013-]\s?\d+$")


@dataclass(frozen=True)
class Cell:
    """One display cell read as numbers: the values it holds by the suffix of their column
    ("" for the value itself), or `withheld` for a suppressed cell."""

    values: tuple[tuple[str, float], ...] = ()
    withheld: bool = False


def tidy_frame(t: Table, min_cell: int = 11) -> pd.DataFrame:
    """The tidy numeric frame of table `t`: its attached numeric frame, else its display
    cells read back (module docstring). Raises ValueError for a frame that is not tidy."""
    if t.data is not None:
        frame = t.data.copy()
        frame.columns = unique_names([ascii_name(c) for c in frame.columns])
        frame = frame.apply(_ascii_column)
    else:
        frame = _from_display(t, min_cell)
    problems = not_tidy(frame)
    if problems:
        raise ValueError(f"table {t.name}: the tidy frame is not tidy: {'; '.join(problems)}")
    return frame


def _from_display(t: Table, min_cell: int) -> pd.DataFrame:
    names = unique_names([ascii_name(c) for c in t.frame().columns])
    out: list[tuple[str, pd.Series]] = []
    for j, name in enumerate(names):
        cells = [row[j] for row in t.rows]
        parsed = [read_cell(c, min_cell) for c in cells]
        if j in t.text_columns or any(p is None for p in parsed):
            out.append((name, pd.Series([ascii_text(c) for c in cells], dtype=object)))
            continue
        out.extend(_numeric_columns(name, parsed).items())
    frame = pd.concat([s for _, s in out], axis=1) if out else pd.DataFrame()
    frame.columns = unique_names([n for n, _ in out])
    return frame.reindex(range(len(t.rows)))


def _numeric_columns(name: str, cells: list[Cell]) -> dict[str, pd.Series]:
    suffixes = list(dict.fromkeys(suffix for cell in cells for suffix, _ in cell.values))
    if "_upper_bound" in suffixes and "" not in suffixes:
        suffixes.append("")
    columns: dict[str, pd.Series] = {}
    for suffix in sorted(suffixes or [""], key=_SUFFIX_ORDER.index):
        values = [dict(cell.values).get(suffix, np.nan) for cell in cells]
        columns[column_name(name, suffix, suffixes)] = pd.Series(values, dtype=float)
    if any(cell.withheld for cell in cells):
        columns[f"{name}_suppressed"] = pd.Series([int(c.withheld) for c in cells], dtype=int)
    return columns


def column_name(header: str, suffix: str, suffixes: list[str]) -> str:
    """The tidy column for the `suffix` part of a column named `header` whose cells hold the
    parts `suffixes`: "ci" + "_low" -> "ci_low", "or_ci" + "" -> "or", "or_ci" + "_low" ->
    "or_ci_low", "collaborative_mean_sd" + "_sd" -> "collaborative_sd"."""
    if header.endswith("_ci") and suffix == "" and "_low" in suffixes:
        return header[: -len("_ci")]
    if header.endswith("_mean_sd") and "_sd" in suffixes:
        base = header[: -len("_mean_sd")]
        return f"{base}_sd" if suffix == "_sd" else f"{base}_mean{suffix}"
    if header == "mean_sd" and "_sd" in suffixes:
        return "sd" if suffix == "_sd" else f"mean{suffix}"
    return f"{header}{suffix}"


_SUFFIX_ORDER = ["", "_sd", "_pct", "_low", "_high", "_upper_bound"]


def read_cell(text: str, min_cell: int = 11) -> Cell | None:
    """The numbers a display cell holds (module docstring); None for text."""
    text = text.strip()
    if text in MISSING_TEXT:
        return Cell()
    if text in (f"<{min_cell}", "*") or _RANGE.match(text):
        return Cell(withheld=True)
    if m := _PLAIN.match(text):
        return _cell(("", m[1]))
    if m := _PERCENT.match(text):
        return _cell(("_pct", m[1]))
    if m := _PAIR.match(text):
        second = "_pct" if m[4] and not m[2] else "_sd"
        return _cell(("", m[1]), (second, m[3]))
    if m := _WITH_CI.match(text):
        return _cell(("", m[1]), ("_low", m[2]), ("_high", m[3]))
    if m := _CI.match(text):
        return _cell(("_low", m[1]), ("_high", m[2]))
    if m := _BOUND.match(text):
        return _cell(("_upper_bound", m[1]))
    return None


def _cell(*parts: tuple[str, str]) -> Cell | None:
    values = []
    for suffix, text in parts:
        number = to_number(text)
        if number is None:
            return None
        values.append((suffix, number))
    return Cell(tuple(values))


def to_number(text: str) -> float | None:
    """A displayed number as a float ("\u22120.25", ".05", "1,204"); None if it is not one."""
    cleaned = text.replace("\u2212", "-").replace(",", "")
    if not re.search(r"\d", cleaned):
        return None
    try:
        return float(cleaned)
    except ValueError:
        return None


def ascii_text(text: str) -> str:
    """`text` in ASCII: known symbols spelled out, accents dropped; a lone dash is empty."""
    if text.strip() in MISSING_TEXT:
        return ""
    spelled = "".join(ASCII_SPELLING.get(ch, ch) for ch in text)
    plain = unicodedata.normalize("NFKD", spelled).encode("ascii", "ignore").decode("ascii")
    return " ".join(plain.split())


def ascii_name(header: str) -> str:
    """A column header as a snake_case ASCII name: "p (FDR)" -> "p_fdr", "95% CI" -> "ci"."""
    text = re.sub(r"\b95% ", "", str(header))
    text = text.replace("%", " pct ")
    name = re.sub(r"[^0-9a-z]+", "_", ascii_text(text).lower()).strip("_")
    return name or "column"


def unique_names(names: list[str]) -> list[str]:
    """`names` with a repeated one numbered ("n", "n_2", ...)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def not_tidy(frame: pd.DataFrame) -> list[str]:
    """What keeps `frame` from being tidy: non-ASCII names or text, repeated names, columns
    that are neither numbers nor text."""
    problems = []
    if frame.columns.duplicated().any():
        problems.append("repeated column names")
    for name in frame.columns:
        if not str(name).isascii():
            problems.append(f"column name {name!r} is not ASCII")
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        text = column.dropna().astype(str)
        if not text.map(str.isascii).all():
            problems.append(f"column {name!r} has non-ASCII text")
    return problems


def _ascii_column(column: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column
    return column.map(lambda v: v if pd.isna(v) else ascii_text(str(v)))


#: Columns of a model's estimates as numbers, from models/coefficients.csv.
COEFFICIENT_COLUMNS = {
    "estimate": "b",
    "std_error": "se",
    "ci_low": "ci_low",
    "ci_high": "ci_high",
    "p_value": "p",
    "p_fdr": "p_fdr",
}
RATIO_COLUMNS = {"ratio": "ratio", "ratio_ci_low": "ratio_ci_low", "ratio_ci_high": "ratio_ci_high"}
#: Satterthwaite degrees of freedom and p-value, for the mixed models that give them.
SATTERTHWAITE_COLUMNS = {"df": "df", "p_satterthwaite": "p_satterthwaite"}


#: Significant digits of a model's numbers in the tidy CSV (p-values: `P_DIGITS`): about the
#: precision the report shows, so the tidy files tell no more about the clients than the report
#: does (privacy.md, section 2).
DIGITS = 4
P_DIGITS = 3


def significant(values: pd.Series, digits: int) -> pd.Series:
    """`values` as floats rounded to `digits` significant digits (missing stays missing)."""
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    return numbers.map(lambda v: float(f"{v:.{digits}g}"))


def coefficient_data(
    part: pd.DataFrame, labels: list[str], *, withheld: bool, ratio: bool
) -> pd.DataFrame:
    """One model's estimates as numbers (term, label, primary, b, se, ci_low, ci_high, p,
    p_fdr; for `ratio`, the odds or hazard ratio with its CI; for a mixed model, the
    Satterthwaite df and p) to `DIGITS` significant digits (p-values `P_DIGITS`). With
    `withheld` (a model of fewer than min_cell clients) every number is empty and
    ``suppressed`` is 1."""
    columns = {**COEFFICIENT_COLUMNS, **(RATIO_COLUMNS if ratio else {})}
    if "df" in part.columns and pd.to_numeric(part["df"], errors="coerce").notna().any():
        columns.update(SATTERTHWAITE_COLUMNS)
    numbers = pd.DataFrame(
        {
            name: pd.to_numeric(part[source], errors="coerce") if source in part.columns else np.nan
            for source, name in columns.items()
        },
        index=part.index,
    ).astype(float)
    for name in numbers.columns:
        numbers[name] = significant(numbers[name], P_DIGITS if name.startswith("p") else DIGITS)
    if withheld:
        numbers[:] = np.nan
    out = pd.DataFrame(
        {
            "term": part["term"].astype(str).to_numpy(),
            "label": labels,
            "primary": [int(truthy(v)) for v in part.get("primary", [False] * len(part))],
        }
    )
    out = pd.concat([out, numbers.reset_index(drop=True)], axis=1)
    out["suppressed"] = int(withheld)
    return out
