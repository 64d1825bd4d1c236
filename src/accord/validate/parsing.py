"""Reading a study's cells as the contract's types.

Missing codes (the study's own and R's or SPSS's conventions), yes/no and 0/1 flags, decimal
commas, numbers typed as text, and the contract's defaults for optional columns. A cell that
cannot be read as its type is marked for the quarantine; a whole-export convention (R's ``NA``
for blanks, decimal commas) is detected and named in a note with the setting that reads it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import numpy as np
import pandas as pd

from accord.core import contract
from accord.validate.checks import issue_frame
from accord.validate.tables import StudyInput

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}


_FALSE = {"false", "f", "no", "n", "0", "0.0"}


# Text that means "missing" in common exports (R, SAS, Excel); never a real pseudonym.
_MISSING_LIKE = frozenset({"na", "n/a", "nan", "null", "none", "missing", "#n/a", ".", "-", "--"})


def missing_like_ids(
    frame: pd.DataFrame, *, partition: bool = False
) -> tuple[pd.DataFrame, dict[str, int]]:
    """In ID columns, ``NA``, ``NULL``, ``.``... are missing, not a therapist called NA.

    In a `partition` (see `coerce`) such a label is removed even where no row here holds it,
    as it is from the whole study, where some row does.
    """
    counts: dict[str, int] = {}
    frame = frame.copy(deep=False)  # columns are replaced, never changed in place
    for name in contract.ID_COLUMNS & set(frame.columns):
        column = frame[name]
        labels = column.cat.categories
        hit = np.array([str(v).strip().casefold() in _MISSING_LIKE for v in labels], dtype=bool)
        if not hit.any():
            continue
        n = int(np.isin(column.cat.codes.to_numpy(), np.flatnonzero(hit)).sum())
        if n:
            counts[name] = n
        if n or partition:
            frame[name] = column.cat.remove_categories(labels[hit])
    return frame, counts


def missing_like_notes(file: str, counts: Mapping[str, int]) -> list[str]:
    return [
        f"{file}: {n} cell(s) of {column} held a missing-value marker (such as NA or NULL) "
        "and were read as missing"
        for column, n in sorted(counts.items())
    ]


_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d+,\d+\s*")


def convention_counts(
    raw: Mapping[str, pd.DataFrame], study: StudyInput
) -> dict[str, dict[str, int]]:
    """Per ``table.column``: cells reading ``NA`` and numbers with a decimal comma (counts
    that add up over partitions of clients); columns with neither are left out."""
    counts: dict[str, dict[str, int]] = {}
    for table, frame in raw.items():
        specs = contract.columns(table)
        for name in frame.columns:
            column = frame[name]
            labels = [str(v) for v in column.cat.categories]
            is_na = np.array([v.strip() == "NA" for v in labels], dtype=bool)
            spec = specs.get(name)
            is_comma = np.zeros(len(labels), dtype=bool)
            if spec is not None and spec.kind == "number" and study.decimal == ".":
                is_comma = np.array([bool(_DECIMAL_COMMA.fullmatch(v)) for v in labels])
            if not (is_na.any() or is_comma.any()):
                continue
            codes_of = column.cat.codes.to_numpy()
            counts[f"{table}.{name}"] = {
                "na": int(np.isin(codes_of, np.flatnonzero(is_na)).sum()),
                "comma": int(np.isin(codes_of, np.flatnonzero(is_comma)).sum()),
            }
    return counts


def convention_notes_from(counts: Mapping[str, Mapping[str, int]], study: StudyInput) -> list[str]:
    """Whole-export conventions that break many rows at once, and what to set for them, from
    `convention_counts` (summed over partitions)."""
    notes = []
    codes = {str(code).strip() for code in study.missing_codes}
    na_cells, na_columns = 0, 0
    comma_cells = 0
    for column in counts.values():
        na = column["na"]
        if na and "NA" not in codes:
            na_cells, na_columns = na_cells + na, na_columns + 1
        comma_cells += column["comma"]
    if na_cells:
        notes.append(
            f"{na_cells} cell(s) in {na_columns} column(s) read NA, R's marker for a missing "
            'value; if NA means missing in this export, set missing_codes: ["NA"] for the study'
        )
    if comma_cells:
        notes.append(
            f"{comma_cells} number(s) are written with a decimal comma (0,5); if the export "
            'uses decimal commas, set decimal: "," for the study'
        )
    return notes


def replace_missing_codes(
    frame: pd.DataFrame, codes: Collection, *, partition: bool = False
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Turn declared missing-value codes into missing cells; count them per column.

    In a `partition` (see `coerce`) a code's label is removed even where no row here holds it.
    """
    counts: dict[str, int] = {}
    if not codes:
        return frame, counts
    text_codes = {str(code).strip() for code in codes}
    numeric_codes = {float(code) for code in codes if _is_number(code)}
    frame = frame.copy()
    for name in frame.columns:
        column = frame[name]
        labels = column.cat.categories
        numbers = pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce").to_numpy()
        is_code = np.array([str(label).strip() in text_codes for label in labels], dtype=bool)
        if numeric_codes:
            is_code |= np.isin(numbers, list(numeric_codes))
        if not is_code.any():
            continue
        hit_codes = np.flatnonzero(is_code)
        n = int(np.isin(column.cat.codes.to_numpy(), hit_codes).sum())
        if n:
            counts[name] = n
        if n or partition:
            frame[name] = column.cat.remove_categories(labels[is_code])
    return frame, counts


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def coerce(
    table: str, frame: pd.DataFrame, decimal: str = ".", *, partition: bool = False
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Give each contract column its type; a cell that does not parse is a row issue.

    `partition`: the frame is one partition of a study read with the whole study's labels as
    its categories, so a text column's labels are those of every category, used here or not.
    """
    specs = contract.columns(table)
    out = {}
    issues = []
    for name in frame.columns:
        column = frame[name]
        spec = specs.get(name)
        kind = spec.kind if spec else _guess_kind(column)
        values, unparsed = _parse(column, kind, decimal, partition=partition)
        out[name] = values
        if unparsed.any():
            issues.append(issue_frame(np.flatnonzero(unparsed), f"type:{kind}", name))
    return pd.DataFrame(out, index=frame.index), issues


def _guess_kind(column: pd.Series) -> str:
    """Extra columns declared in config: numbers if every label parses, else text."""
    labels = pd.Series(column.cat.categories, dtype=object)
    numbers = pd.to_numeric(labels, errors="coerce")
    return "number" if len(labels) and numbers.notna().all() else "string"


def _parse(
    column: pd.Series, kind: str, decimal: str = ".", *, partition: bool = False
) -> tuple[pd.Series, np.ndarray]:
    """Parse a categorical column of text labels; parse each distinct label once."""
    codes = column.cat.codes.to_numpy()
    labels = pd.Series(column.cat.categories, dtype=object).str.strip()
    if decimal == "," and kind in ("number", "integer"):
        labels = labels.str.replace(",", ".", regex=False)  # a decimal comma export: 0,5
    if kind in ("id", "string"):
        if labels.equals(pd.Series(column.cat.categories, dtype=object)) and (labels != "").all():
            return column, np.zeros(len(column), dtype=bool)
        # Surrounding spaces are an export artefact, not a different label.
        cleaned = labels.where(labels != "").to_numpy(dtype=object)
        values = pd.Series(np.where(codes >= 0, cleaned[np.maximum(codes, 0)], None), dtype=object)
        if partition:
            # the study's labels, as the whole study's distinct values would give them
            whole = pd.Series(cleaned, dtype=object).astype("category").cat.categories
            values = values.astype(pd.CategoricalDtype(whole))
            return values.set_axis(column.index), np.zeros(len(column), dtype=bool)
        return values.astype("category").set_axis(column.index), np.zeros(len(column), dtype=bool)
    if kind == "boolean":
        lowered = labels.str.lower()
        parsed = pd.array(
            [True if v in _TRUE else False if v in _FALSE else pd.NA for v in lowered],
            dtype="boolean",
        )
    else:
        numbers = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float)
        if kind == "integer":
            whole = np.isfinite(numbers) & (numbers == np.round(numbers))
            parsed = pd.array(np.where(whole, numbers, np.nan), dtype="Float64").astype("Int64")
        else:
            finite = np.isfinite(numbers)
            parsed = pd.array(np.where(finite, numbers, np.nan), dtype="Float64")
    bad_label = np.append(np.asarray(pd.isna(parsed), dtype=bool), False)
    present = codes >= 0
    # Code -1 (an empty cell) points at an appended NA that is not a parse failure.
    safe = np.where(present, codes, len(parsed))
    values = pd.Series(
        parsed.take(np.where(present, codes, -1), allow_fill=True), index=column.index
    )
    unparsed = bad_label[safe] & present
    return values, unparsed


def apply_defaults(
    table: str, frame: pd.DataFrame, *, partition: bool = False
) -> dict[str, list[str]]:
    """Measures: rater defaults to client; phase to intake at session 0, else treatment.

    Returns the labels each filled column uses. A column keeps only its used labels, except
    in a `partition` (see `coerce`), whose unused labels may be used in another partition:
    they are kept, and the partitions' used labels decide when they are gathered.
    """
    if table != "measures":
        return {}
    at_intake = (frame["session_number"] == 0).fillna(False).to_numpy(dtype=bool)
    rater = frame["rater"] if "rater" in frame else _empty_category(len(frame), frame.index)
    frame["rater"] = _fill_category(
        rater, {"client": np.ones(len(frame), dtype=bool)}, keep_unused=partition
    )
    phase = frame["phase"] if "phase" in frame else _empty_category(len(frame), frame.index)
    frame["phase"] = _fill_category(
        phase, {"intake": at_intake, "treatment": ~at_intake}, keep_unused=partition
    )
    return {name: _used_labels(frame[name]) for name in ("rater", "phase")}


def _used_labels(values: pd.Series) -> list[str]:
    codes = np.unique(values.cat.codes.to_numpy())
    return [str(values.cat.categories[code]) for code in codes[codes >= 0]]


def _empty_category(n: int, index: pd.Index) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(np.full(n, -1), categories=[]), index=index)


def _fill_category(
    values: pd.Series, defaults: Mapping[str, np.ndarray], *, keep_unused: bool = False
) -> pd.Series:
    """Fill missing cells of a categorical with a default label chosen per row by a mask."""
    missing = values.isna().to_numpy()
    new = [label for label in defaults if label not in values.cat.categories]
    codes = values.cat.codes.to_numpy().copy()
    categories = values.cat.categories.append(pd.Index(new, dtype=object))
    for label, mask in defaults.items():
        codes[missing & mask] = categories.get_loc(label)
    filled = pd.Series(pd.Categorical.from_codes(codes, categories=categories), index=values.index)
    return filled if keep_unused else filled.cat.remove_unused_categories()
