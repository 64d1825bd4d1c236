"""The identifier guard: refuse input that looks identifiable before anything is written.

accord accepts only de-identified data. Before validation writes a single file, every input
table is scanned for the identifiers listed by the HIPAA Safe Harbor method
(45 CFR 164.514(b)(2)): names, geographic subdivisions smaller than a state (street, city,
ZIP code), all elements of dates except the year, ages of 90 or more, phone and fax numbers,
e-mail addresses, Social Security, medical record, health plan and account numbers, licence,
vehicle and device identifiers, URLs, IP addresses, photographs, and free text (the likeliest
place for a name to hide); see section 1 of the privacy spec.

Four kinds of evidence are used:

- column names, split into tokens (``dateOfBirth`` -> date, of, birth) and matched as whole
  tokens, so ``rename`` or ``session_number`` never match ``name`` or ``number``;
- the values of every text column, matched against compiled patterns. Only the *unique*
  values of a column are scanned (the categories of a categorical column), and rows are
  counted only for a column that has a hit, so a 30-million-row measures table costs one
  hash pass per text column;
- ages of 90 or more in any age-like column (Safe Harbor allows only a single ``90+`` group);
- client IDs that are shaped like an SSN or phone number, or that embed another column's
  value (a *derived* ID: contract IDs are independent random pseudonyms).

Quasi-identifier combinations (age band x gender x site, say) shared by fewer than ``k``
clients are reported as warnings, not stops.

Nothing here ever holds, logs or prints a cell value: findings carry the table, file, column,
kind and a row count. A column *name* that itself looks like a data value (a CSV exported
without its header row) is withheld too and shown by position.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from accord.core.errors import IdentifierError
from accord.core.identifiers import (
    CONTRACT_NUMERIC_COLUMNS,
    DEFAULT_QUASI_IDENTIFIERS,
    HEX_ID,
    ID_PREFILTER,
    KIND_LABELS,
    LEADING_ZERO,
    PATTERNS,
    PLAIN_NUMBER,
    PSEUDONYM_COLUMNS,
    Finding,
    GuardReport,
    QuasiIdentifierWarning,
    arrow_strings,
    candidate_rows,
    id_shaped,
    name_matches,
    name_tokens,
    scan_values,
    shown_column,
)

__all__ = [
    "KIND_LABELS",
    "Finding",
    "GuardReport",
    "QuasiIdentifierWarning",
    "check_identifiers",
    "scan_identifiers",
]

log = logging.getLogger(__name__)


def _is_text(s: pd.Series) -> bool:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cats = dtype.categories
        return pd.api.types.is_object_dtype(cats) or pd.api.types.is_string_dtype(cats)
    return pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)


def _is_datetime(s: pd.Series) -> bool:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    return pd.api.types.is_datetime64_any_dtype(dtype) or isinstance(dtype, pd.PeriodDtype)


def _is_number(s: pd.Series) -> bool:
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


class _Uniques:
    """The distinct non-missing values of one column, with rows counted only on demand.

    For a categorical column these are all its categories, used or not: an unused level is
    still stored with the data (in a Parquet dictionary, say), so it is scanned too.
    """

    def __init__(self, s: pd.Series):
        self._s = s
        self._codes: np.ndarray | None = None
        if isinstance(s.dtype, pd.CategoricalDtype):
            self.raw = np.asarray(s.cat.categories, dtype=object)
            self._codes = s.cat.codes.to_numpy()
        else:
            raw = _arrow_unique(s)
            if raw is None:
                raw = np.asarray(pd.unique(s), dtype=object)
            self.raw = raw[~pd.isna(raw)]

    def rows(self, mask: np.ndarray) -> int:
        """How many rows hold one of the unique values selected by ``mask``."""
        if not mask.any():
            return 0
        if self._codes is not None:
            # slot 0 stands for missing (code -1), so codes shift by one
            wanted = np.zeros(len(self.raw) + 1, dtype=bool)
            wanted[1:] = mask
            return int(np.count_nonzero(wanted[self._codes.astype(np.int64) + 1]))
        return int(self._s.isin(self.raw[mask]).sum())


# Arrow-backed columns longer than this are hashed in slices on several threads (pyarrow
# releases the GIL); the slices' distinct values are then merged.
_PARALLEL_FROM = 2_000_000


def _arrow_unique(s: pd.Series) -> np.ndarray | None:
    """Distinct values of a long arrow-backed column, hashed in parallel; None otherwise."""
    workers = min(os.cpu_count() or 1, 8)
    arrow_backed = isinstance(s.dtype, pd.ArrowDtype) or (
        isinstance(s.dtype, pd.StringDtype) and s.dtype.storage.startswith("pyarrow")
    )
    if len(s) < _PARALLEL_FROM or workers < 2 or not arrow_backed:
        return None
    arr = pa.array(s.array)  # the column's own arrow data, never via Python objects
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    step = -(-len(arr) // workers)
    parts = [arr.slice(i, step) for i in range(0, len(arr), step)]
    with ThreadPoolExecutor(workers) as pool:
        distinct = list(pool.map(pc.unique, parts))
    merged = pc.unique(pa.chunked_array(distinct, type=arr.type))
    return np.asarray(merged.to_pylist(), dtype=object)


def _as_text(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Values as strings, plus a mask of values that are date or datetime objects."""
    texts: list[str] = []
    is_date = np.zeros(len(values), dtype=bool)
    for i, v in enumerate(values):
        if isinstance(v, str):
            texts.append(v)
        elif isinstance(v, date | np.datetime64):
            texts.append("")
            is_date[i] = True
        elif isinstance(v, float) and v.is_integer():
            texts.append(str(int(v)))
        else:
            texts.append(str(v))
    return texts, is_date


# --------------------------------------------------------------------------- the checks


def _age_like(tokens: list[str]) -> bool:
    return "age" in tokens and not {"month", "months", "week", "weeks", "day", "days"} & set(tokens)


_AGE_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:y|yr|yrs|years?)?\s*", re.IGNORECASE)
_AGE_RANGE = re.compile(r"\s*(\d+)\s*(?:-|–|to)\s*(\d+)\s*(?:y|yr|yrs|years?)?\s*", re.IGNORECASE)


def _age_text_90(v: str) -> bool:
    """A text age of 90+: a bare number, or a band with both ends given (``90-94``)."""
    m = _AGE_TEXT.fullmatch(v) or _AGE_RANGE.fullmatch(v)
    return m is not None and float(m.group(1)) >= 90


def _integer_texts(s: pd.Series) -> list[str | None] | None:
    """An integer-valued numeric column as text, row by row; None if not integer-valued."""
    num = pd.to_numeric(pd.Series(np.asarray(s, dtype=object)), errors="coerce")
    present = num.notna().to_numpy()
    if not present.any():
        return None
    values = num.to_numpy(dtype=float, na_value=np.nan)
    if not np.all(values[present] == np.round(values[present])):
        return None
    return [str(int(v)) if ok else None for v, ok in zip(values, present, strict=True)]


def _row_texts(s: pd.Series) -> list[str | None] | None:
    """A column as stripped lower-case text, row by row (None for missing); None if unusable."""
    if _is_text(s):
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = [str(c).strip().lower() for c in s.cat.categories]
            return [cats[c] if c >= 0 else None for c in s.cat.codes.tolist()]
        values = s.tolist()
        if all(isinstance(v, str) or v is None for v in values):
            return [v.strip().lower() if v is not None else None for v in values]
        texts, _ = _as_text(np.asarray(values, dtype=object))
        missing = pd.isna(np.asarray(values, dtype=object))
        return [None if gone else v.strip().lower() for v, gone in zip(texts, missing, strict=True)]
    if _is_number(s):
        return _integer_texts(s)
    return None


def _char_class(ch: str) -> int:
    return 1 if ch.isalpha() else 2 if ch.isdigit() else 0


def _embeds(container: str, part: str) -> bool:
    """``part`` occurs in ``container`` as a token of its own.

    Each end of the occurrence must be the end of ``container`` or border a character of
    another class (letter, digit, other): ``smith_1980`` and ``T123-C045`` embed ``smith``,
    ``1980`` and ``t123``, but ``AT123B`` does not embed ``t123`` (a chance overlap).
    """
    start = container.find(part)
    while start != -1:
        end = start + len(part)
        before = start == 0 or _char_class(container[start - 1]) != _char_class(part[0])
        after = end == len(container) or _char_class(container[end]) != _char_class(part[-1])
        if before and after:
            return True
        start = container.find(part, start + 1)
    return False


def _distinct_texts(s: pd.Series) -> list[str]:
    """The distinct values of a column as stripped lower-case text (integers as digits)."""
    if _is_text(s):
        texts, _ = _as_text(_Uniques(s).raw)
        return [v.strip().lower() for v in texts]
    if _is_number(s):
        values = pd.to_numeric(pd.Series(_Uniques(s).raw, dtype=object), errors="coerce")
        values = values.dropna().to_numpy(dtype=float)
        if np.all(values == np.round(values)):
            return [str(int(v)) for v in values]
    return []


_YEAR_VALUE = re.compile(r"(?:19|20)\d\d|2100")


def _derived_id_findings(
    df: pd.DataFrame,
    table: str,
    file: str,
    id_col: str,
    cols: Sequence[object],
    shown: dict,
    codes: _MissingCodes,
) -> list[Finding]:
    ids = _row_texts(df[id_col])
    if ids is None:
        return []
    # A value found nowhere in the joined IDs cannot be embedded in any one of them, so most
    # columns are settled from their distinct values without touching a single row.
    haystack = "\n".join(x for x in ids if x is not None)
    findings = []
    for col in cols:
        # a year in an ID (TRIAL2019-001) is part of a pseudonym scheme, not derived from a person
        values = {
            v for v in _distinct_texts(df[col]) if len(v) >= 3 and not _YEAR_VALUE.fullmatch(v)
        }
        values -= codes.lower_texts
        if len(values) <= 1_000:
            values = {v for v in values if v in haystack}
        if not values:
            continue
        others = _row_texts(df[col])
        if others is None:
            continue
        rows = sum(
            1
            for x, y in zip(ids, others, strict=True)
            if y in values and x is not None and y in x and _embeds(x, y)
        )
        if rows:
            findings.append(Finding(table, file, shown[id_col], "derived_id", rows, shown[col]))
    return findings


def _quasi_warning(
    df: pd.DataFrame, table: str, columns: Sequence[str], k: int
) -> QuasiIdentifierWarning | None:
    if not columns or k <= 1 or df.empty:
        return None
    data = df
    if "client_id" in df.columns:
        data = df.drop_duplicates("client_id")
    sizes = data.groupby(list(columns), dropna=False, observed=True).size()
    small = sizes[sizes < k]
    if small.empty:
        return None
    return QuasiIdentifierWarning(table, tuple(columns), len(small), int(small.sum()), k)


@dataclass(frozen=True)
class _MissingCodes:
    """A study's missing-value codes, as text (for text columns) and as numbers."""

    texts: frozenset[str] = frozenset()
    numbers: tuple[float, ...] = ()

    @property
    def lower_texts(self) -> frozenset[str]:
        return frozenset(t.lower() for t in self.texts)

    @classmethod
    def of(cls, codes: Collection[object]) -> _MissingCodes:
        texts, numbers = set(), []
        for code in codes:
            texts.add(str(code).strip())
            try:
                number = float(code)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
            numbers.append(number)
            if number.is_integer():
                texts.add(str(int(number)))
        return cls(frozenset(texts), tuple(numbers))


def _acknowledged(ack: Collection[str]) -> set[str]:
    return {str(a).strip().casefold() for a in ack}


def _display_names(columns: Iterable[object]) -> dict[object, str]:
    """How each column is named in messages; a name that looks like a value is withheld."""
    return {col: shown_column(col, pos) for pos, col in enumerate(columns, start=1)}


def scan_identifiers(
    tables: Mapping[str, pd.DataFrame],
    files: Mapping[str, str],
    acknowledged: Collection[str] = (),
    k: int = 5,
    quasi_identifiers: Sequence[str] = DEFAULT_QUASI_IDENTIFIERS,
    *,
    missing_codes: Collection[object] = (),
) -> GuardReport:
    """Scan raw input tables for Safe Harbor identifiers; return findings and warnings.

    ``tables`` maps a table name (clients, sessions, measures, goals) to the DataFrame as
    read; ``files`` maps the table name to the file name shown in messages. Columns listed
    in ``acknowledged`` (``table.column``, or a bare ``column`` for every table) were cleared
    by a privacy review and are skipped entirely, including as quasi-identifiers.
    ``k`` is the smallest number of clients a quasi-identifier combination may describe.
    ``missing_codes`` are the study's extra missing-value codes (``-99``, ``999``): the guard
    runs before they are replaced, so they are treated as missing here (an age of 999 is
    a code, not a 999-year-old).
    """
    ack = _acknowledged(acknowledged)
    codes = _MissingCodes.of(missing_codes)
    report = GuardReport()
    for table, df in tables.items():
        file = files.get(table, table)
        shown = _display_names(df.columns)
        cols = [
            c
            for c in df.columns
            if str(c).casefold() not in ack and f"{table}.{c}".casefold() not in ack
        ]
        for col in cols:
            report.findings.extend(_column_findings(df[col], table, file, col, shown[col], codes))
        if "client_id" in cols and table == "clients":
            others = [c for c in cols if c != "client_id"]
            report.findings.extend(
                _derived_id_findings(df, table, file, "client_id", others, shown, codes)
            )
        if table == "clients":
            quasi = [q for q in quasi_identifiers if q in cols]
            if "age_band" in quasi and "age" in quasi:
                quasi.remove("age")
            warning = _quasi_warning(df, table, quasi, k)
            if warning is not None:
                report.warnings.append(warning)
    return report


def _column_findings(
    s: pd.Series, table: str, file: str, col: object, shown: str, codes: _MissingCodes
) -> list[Finding]:
    name = str(col)
    found: list[Finding] = []

    def add(kind: str, rows: int, detail: str = "") -> None:
        found.append(Finding(table, file, shown, kind, int(rows), detail))

    if shown != name:
        add("header_value", 0)
    else:
        matches = name_matches(name)
        if matches:
            add("column_name", 0, "; ".join(matches))

    tokens = name_tokens(name)
    age_like = _age_like(tokens)

    if _is_datetime(s):
        if s.notna().any():
            add("date", int(s.notna().sum()))
        return found

    if _is_number(s):
        if age_like:
            num = s.astype("float64")
            if codes.numbers:
                num = num.where(~num.isin(codes.numbers))
            old = int((num >= 90).sum())
            if old:
                add("age_90_plus", old)
        if name in PSEUDONYM_COLUMNS:
            uniq = _Uniques(s)
            shaped = _id_shape_mask(_as_text(uniq.raw)[0])
            if shaped.any():
                add("id_shape", uniq.rows(shaped))
        return found

    if not _is_text(s):
        return found

    uniq = _Uniques(s)
    texts, is_date = _as_text(uniq.raw)
    if codes.texts:
        texts = ["" if v.strip() in codes.texts else v for v in texts]
    if is_date.any():
        add("date", uniq.rows(is_date))

    if age_like:
        old_mask = np.fromiter((_age_text_90(v) for v in texts), dtype=bool, count=len(texts))
        if old_mask.any():
            add("age_90_plus", uniq.rows(old_mask))

    numeric = all(PLAIN_NUMBER.fullmatch(v) for v in texts if v)
    if name in CONTRACT_NUMERIC_COLUMNS and numeric:
        return found

    kinds = list(PATTERNS)
    if name in PSEUDONYM_COLUMNS:
        # Pseudonyms are judged as whole values: a UUID's digits are not an SSN, a trial
        # number carrying a year is not a date.
        kinds = [kd for kd in kinds if kd not in ("ssn", "phone", "zip", "partial_date")]
        shaped = _id_shape_mask(texts)
        if shaped.any():
            add("id_shape", uniq.rows(shaped))
        texts = ["" if v.strip().isdigit() or HEX_ID.fullmatch(v.strip()) else v for v in texts]
    elif numeric and not any(LEADING_ZERO.match(v) for v in texts):
        # a measurement (steps_per_day) is not a ZIP code; a column named like one is
        # refused for its name, and codes kept as text keep their leading zeros
        kinds.remove("zip")
    for kind, mask in scan_values(texts, kinds).items():
        add(kind, uniq.rows(mask))
    return found


def _id_shape_mask(texts: list[str]) -> np.ndarray:
    """Which IDs are, as a whole or in a delimited part, SSN-, phone- or account-shaped."""
    mask = np.zeros(len(texts), dtype=bool)
    for i in candidate_rows(texts, ID_PREFILTER, arrow_strings(texts)):
        mask[i] = id_shaped(texts[i])
    return mask


def check_identifiers(
    tables: Mapping[str, pd.DataFrame],
    files: Mapping[str, str],
    acknowledged: Collection[str] = (),
    k: int = 5,
    quasi_identifiers: Sequence[str] = DEFAULT_QUASI_IDENTIFIERS,
    *,
    missing_codes: Collection[object] = (),
) -> GuardReport:
    """Like :func:`scan_identifiers`, but raise :class:`IdentifierError` on any finding.

    The error lists every finding (file, column, kind, row count) and never a value; its
    ``file`` and ``column`` are those of the first finding and its ``report`` attribute holds
    the full :class:`GuardReport`. Quasi-identifier warnings are logged (counts only) and
    returned, never raised.
    """
    report = scan_identifiers(
        tables, files, acknowledged, k, quasi_identifiers, missing_codes=missing_codes
    )
    for warning in report.warnings:
        log.warning("quasi-identifiers: %s", warning.describe())
    if report.findings:
        first = report.findings[0]
        err = IdentifierError(report.message(), file=first.file, column=first.column)
        err.report = report  # type: ignore[attr-defined]
        raise err
    return report


def quasi_identifier_sizes(
    tables: Mapping[str, pd.DataFrame],
    acknowledged: Collection[str] = (),
    quasi_identifiers: Sequence[str] = DEFAULT_QUASI_IDENTIFIERS,
) -> tuple[list[str], dict[tuple[int, ...], int]]:
    """The clients table's quasi-identifiers and how many clients share each combination.

    Combinations are keyed by their category codes (-1 for missing), so the counts of
    partitions of clients read with the same labels add up to the whole study's. Acknowledged
    columns are left out, and ``age`` when ``age_band`` is there (as `scan_identifiers`).
    """
    df = tables.get("clients")
    if df is None or df.empty:
        return [], {}
    ack = _acknowledged(acknowledged)
    cols = [c for c in df.columns if str(c).casefold() not in ack]
    cols = [c for c in cols if f"clients.{c}".casefold() not in ack]
    quasi = [q for q in quasi_identifiers if q in cols]
    if "age_band" in quasi and "age" in quasi:
        quasi.remove("age")
    if not quasi:
        return [], {}
    data = df.drop_duplicates("client_id") if "client_id" in df.columns else df
    codes = np.column_stack([_group_codes(data[q]) for q in quasi])
    combos, counts = np.unique(codes, axis=0, return_counts=True)
    pairs = zip(combos, counts, strict=True)
    return quasi, {tuple(int(c) for c in combo): int(n) for combo, n in pairs}


def _group_codes(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy().astype(np.int64)
    return pd.factorize(s, use_na_sentinel=True)[0].astype(np.int64)


def quasi_identifier_warning(
    columns: Sequence[str], sizes: Mapping[tuple[int, ...], int], k: int
) -> QuasiIdentifierWarning | None:
    """The warning for combinations shared by fewer than `k` clients, from their sizes."""
    if not columns or k <= 1 or not sizes:
        return None
    small = [n for n in sizes.values() if n < k]
    if not small:
        return None
    return QuasiIdentifierWarning("clients", tuple(columns), len(small), int(sum(small)), k)
