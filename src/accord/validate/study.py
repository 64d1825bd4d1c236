"""Ingest and validation: every input row ends accepted or quarantined with its reasons.

The order is fixed: read -> missing codes -> identifier guard -> table-level checks -> types ->
per-column rules (pandera, lazily) -> rules across rows and tables -> cascade to children.
Table-level faults raise `StudyError` naming the file and column; row-level faults become
quarantine rows (table, 1-based source row, client_id, rule, column, source, source_column).
Values are never copied into messages or the quarantine, so a suspected identifier cannot leak
through them.

A study in the contract's shape is read from its folder; a study declared with another
``format`` (its own column names, REDCap, SPSS, Excel) is first mapped onto the contract by
`accord.ingest`, whose ingest issues (an unmapped value, a cell that breaks the REDCap data
dictionary) join the quarantine, and whose row numbers point at the source rows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from accord.core import contract
from accord.core.errors import StudyError
from accord.core.io import find_table, read_table, sha256
from accord.measures.instruments import Registry
from accord.validate.categories import CategoryChange, normalise_categories
from accord.validate.guard import (
    GuardReport,
    check_identifiers,
    column_phrase,
    looks_identifying,
    shown_column,
    shown_file,
    withhold_text,
)

log = logging.getLogger(__name__)

QUARANTINE_COLUMNS = [
    "table",
    "row_number",
    "client_id",
    "rule",
    "column",
    "source",
    "source_column",
]
_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
_ID_REGEX = contract.ID_PATTERN


@dataclass(frozen=True)
class StudyInput:
    """Where a study's tables are and the study's own settings from the config."""

    name: str
    path: Path
    missing_codes: tuple = ()
    extra_columns: Mapping[str, Sequence[str]] = field(default_factory=dict)
    acknowledged_columns: tuple[str, ...] = ()
    quasi_identifier_k: int = 5
    format: str = "contract"
    entry: Mapping[str, Any] = field(default_factory=dict)
    categories: Mapping[str, Sequence[str]] = field(default_factory=dict)
    decimal: str = "."


@dataclass
class ValidationResult:
    """Accepted rows per table, the quarantine, and the counts that reconcile them."""

    tables: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    summary: dict
    guard: GuardReport


@dataclass
class _Inputs:
    """A study's tables as read, and where each row came from (file, row, column)."""

    raw: dict[str, pd.DataFrame]
    names: dict[str, str]
    source: dict[str, np.ndarray]
    row_number: dict[str, np.ndarray]
    notes: list[str] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)
    issues: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    replaced: dict[str, dict[str, int]] = field(default_factory=dict)
    ingested: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def source_columns(self, table: str, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """The source column behind each quarantined (row, contract column)."""
        if table in self.ingested:
            return self.ingested[table].origin(rows, columns)
        return np.asarray(columns, dtype=object)


def _read_contract_study(study: StudyInput) -> _Inputs:
    files = _locate(study.path)
    raw: dict[str, pd.DataFrame] = {}
    notes: list[str] = []
    checksums: dict[str, str] = {}
    for table, path in files.items():
        frame, read_notes = read_table(path)
        raw[table] = frame
        notes.extend(read_notes)
        checksums[path.name] = sha256(path)
    names = {table: path.name for table, path in files.items()}
    return _Inputs(
        raw=raw,
        names=names,
        source={t: np.full(len(f), names[t], dtype=object) for t, f in raw.items()},
        row_number={t: np.arange(1, len(f) + 1, dtype=np.int64) for t, f in raw.items()},
        notes=notes,
        checksums=checksums,
    )


def _read_mapped_study(study: StudyInput) -> _Inputs:
    from accord.ingest import ingest_study

    ingested = ingest_study(
        study.name,
        study.path,
        study.entry,
        extra_columns=study.extra_columns,
        acknowledged=study.acknowledged_columns,
        missing_codes=study.missing_codes,
    )
    tables = ingested.tables
    return _Inputs(
        raw={t: part.frame for t, part in tables.items()},
        names={t: part.file for t, part in tables.items()},
        source={t: part.source for t, part in tables.items()},
        row_number={t: part.source_row + 1 for t, part in tables.items()},
        notes=list(ingested.notes),
        checksums=dict(ingested.checksums),
        issues={t: [part.issues] for t, part in tables.items()},
        replaced={t: dict(ingested.missing_replaced.get(t, {})) for t in tables},
        ingested=dict(tables),
        summary={"format": study.format, "source_rows": ingested.source_rows},
    )


def validate_study(study: StudyInput, registry: Registry) -> ValidationResult:
    """Read, guard and validate one study. Raises StudyError on a table-level fault."""
    inputs = (
        _read_contract_study(study) if study.format == "contract" else _read_mapped_study(study)
    )
    _withhold_file_names(inputs)
    raw, names, notes = inputs.raw, inputs.names, inputs.notes
    issues, replaced = inputs.issues, inputs.replaced

    # Declared missing codes are not data: a 999 meaning "not asked" is not an age of 999.
    for table, frame in raw.items():
        raw[table], counts = _replace_missing_codes(frame, study.missing_codes)
        raw[table], id_counts = _missing_like_ids(raw[table])
        merged = replaced.setdefault(table, {})
        for column, n in (counts | id_counts).items():
            merged[column] = merged.get(column, 0) + n
        notes.extend(_missing_like_notes(names[table], id_counts))

    guard = check_identifiers(
        raw, names, acknowledged=study.acknowledged_columns, k=study.quasi_identifier_k
    )

    for table, frame in raw.items():
        _check_table_shape(table, frame, names[table], study.extra_columns.get(table, ()))
    notes.extend(_convention_notes(raw, names, study))

    for table in raw:
        issues.setdefault(table, [])
    typed: dict[str, pd.DataFrame] = {}
    changes: list[CategoryChange] = []
    emptied: dict[str, pd.DataFrame] = {}
    for table, frame in raw.items():
        frame, type_issues = _coerce(table, frame, study.decimal)
        text_columns = [c for c in study.extra_columns.get(table, ()) if c in frame]
        frame, found = normalise_categories(table, frame, study.categories, text_columns)
        changes.extend(found)
        _apply_defaults(table, frame)
        cell_issues = [*type_issues, _schema_issues(table, frame, names[table])]
        cell_issues, emptied[table] = _empty_optional_cells(table, frame, cell_issues)
        issues[table].extend(cell_issues)
        issues[table].append(_key_issues(table, frame))
        typed[table] = frame
    notes.extend(change.describe() for change in changes)
    notes.extend(_emptied_notes(names, emptied))
    for note in notes:
        log.warning("%s: %s", study.name, withhold_text(note))

    issues["sessions"].append(_day_order_issues(typed["sessions"]))
    issues["measures"].append(_instrument_issues(typed["measures"], registry))
    if "goals" in typed:
        issues["goals"].append(_revision_issues(typed["goals"]))
        issues["measures"].append(_gas_goal_issues(typed["measures"], typed["goals"]))

    bad = {table: _collect(issues[table]) for table in typed}
    _cascade(typed, bad)

    accepted = {}
    quarantine_parts = []
    for table, frame in typed.items():
        rows = bad[table]
        rejected = rows["row"].unique() if len(rows) else np.array([], dtype=np.int64)
        keep = np.ones(len(frame), dtype=bool)
        keep[rejected] = False
        accepted[table] = frame.loc[keep].reset_index(drop=True)
        quarantine_parts.append(_quarantine_rows(table, frame, rows, inputs))

    quarantine = pd.concat(quarantine_parts, ignore_index=True)
    quarantine = quarantine.sort_values(
        ["table", "source", "row_number", "rule", "column"], kind="stable"
    ).reset_index(drop=True)
    summary = _summary(study, typed, accepted, quarantine, replaced, inputs, guard)
    summary["categories"] = [change.to_dict() for change in changes]
    for table, cells in emptied.items():
        summary["tables"][table]["cells_emptied"] = _emptied_summary(cells)
    summary.update(inputs.summary)
    return ValidationResult(accepted, quarantine, summary, guard)


def _withhold_file_names(inputs: _Inputs) -> None:
    """Show an identifying source file name (Goldberg_Jane_clients.csv) as its table instead."""
    shown: dict[str, str] = {}
    for table, name in inputs.names.items():
        shown[name] = shown_file(name, table)
    for table, sources in inputs.source.items():
        for name in pd.unique(sources):
            shown.setdefault(str(name), shown_file(str(name), table))
    for name in inputs.checksums:
        shown.setdefault(name, shown_file(name, "input"))
    withheld = {name: alias for name, alias in shown.items() if alias != name}
    if not withheld:
        return
    taken: dict[str, int] = {}
    for name in sorted(withheld):
        alias = withheld[name]
        taken[alias] = taken.get(alias, 0) + 1
        if taken[alias] > 1:  # two withheld files of one table stay apart
            withheld[name] = f"{alias} #{taken[alias]}"
    inputs.names = {t: withheld.get(n, n) for t, n in inputs.names.items()}
    inputs.source = {
        t: np.array([withheld.get(str(n), n) for n in src], dtype=object)
        for t, src in inputs.source.items()
    }
    inputs.checksums = {withheld.get(n, n): c for n, c in inputs.checksums.items()}
    for key, value in inputs.summary.items():
        if isinstance(value, dict):  # per-file counts (source_rows)
            inputs.summary[key] = {withheld.get(n, n): v for n, v in value.items()}
    for name, alias in sorted(withheld.items(), key=lambda kv: -len(kv[0])):
        inputs.notes = [note.replace(name, alias) for note in inputs.notes]


# Text that means "missing" in common exports (R, SAS, Excel); never a real pseudonym.
_MISSING_LIKE = frozenset({"na", "n/a", "nan", "null", "none", "missing", "#n/a", ".", "-", "--"})


def _missing_like_ids(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """In ID columns, ``NA``, ``NULL``, ``.``... are missing, not a therapist called NA."""
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
            frame[name] = column.cat.remove_categories(labels[hit])
    return frame, counts


def _missing_like_notes(file: str, counts: Mapping[str, int]) -> list[str]:
    return [
        f"{file}: {n} cell(s) of {column} held a missing-value marker (such as NA or NULL) "
        "and were read as missing"
        for column, n in sorted(counts.items())
    ]


_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d+,\d+\s*")


def _convention_notes(
    raw: Mapping[str, pd.DataFrame], names: Mapping[str, str], study: StudyInput
) -> list[str]:
    """Whole-export conventions that break many rows at once, and what to set for them."""
    notes = []
    codes = {str(code).strip() for code in study.missing_codes}
    na_cells, na_columns = 0, 0
    comma_cells = 0
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
            na = int(np.isin(codes_of, np.flatnonzero(is_na)).sum())
            if na and "NA" not in codes:
                na_cells, na_columns = na_cells + na, na_columns + 1
            comma_cells += int(np.isin(codes_of, np.flatnonzero(is_comma)).sum())
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


def _locate(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise StudyError(f"The study folder {folder} does not exist.", file=str(folder))
    files = {}
    for table in contract.TABLES:
        path = find_table(folder, table)
        if path is None and table in contract.REQUIRED_TABLES:
            raise StudyError(
                f"{folder}: {table}.csv (or {table}.parquet) is missing; "
                f"a study needs {', '.join(contract.REQUIRED_TABLES)}.",
                file=f"{table}.csv",
            )
        if path is not None:
            files[table] = path
    return files


def _check_table_shape(table: str, frame: pd.DataFrame, file: str, extra: Sequence[str]) -> None:
    specs = contract.columns(table)
    missing = [name for name, spec in specs.items() if spec.required and name not in frame]
    if missing:
        raise StudyError(
            f"{file}: required column '{missing[0]}' is missing"
            + (f" (also: {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + ". Column names must be exactly as in the data contract (lower case).",
            file=file,
            column=missing[0],
        )
    unknown = [
        shown_column(name, pos)
        for pos, name in enumerate(frame.columns, start=1)
        if name not in specs and name not in extra
    ]
    if unknown:
        raise StudyError(
            f"{file}: {column_phrase(unknown[0])} is not in the data contract"
            + (f" (also: {', '.join(unknown[1:])})" if len(unknown) > 1 else "")
            + f". Declare it under studies.<study>.extra_columns.{table} in the config "
            "if it belongs in the study, or remove it.",
            file=file,
            column=unknown[0],
        )
    if len(frame) == 0:
        raise StudyError(f"{file}: the table has a header but no rows.", file=file)


def _replace_missing_codes(
    frame: pd.DataFrame, codes: Collection
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Turn declared missing-value codes into missing cells; count them per column."""
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
            frame[name] = column.cat.remove_categories(labels[is_code])
    return frame, counts


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _coerce(
    table: str, frame: pd.DataFrame, decimal: str = "."
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """Give each contract column its type; a cell that does not parse is a row issue."""
    specs = contract.columns(table)
    out = {}
    issues = []
    for name in frame.columns:
        column = frame[name]
        spec = specs.get(name)
        kind = spec.kind if spec else _guess_kind(column)
        values, unparsed = _parse(column, kind, decimal)
        out[name] = values
        if unparsed.any():
            issues.append(_issue_frame(np.flatnonzero(unparsed), f"type:{kind}", name))
    return pd.DataFrame(out, index=frame.index), issues


def _guess_kind(column: pd.Series) -> str:
    """Extra columns declared in config: numbers if every label parses, else text."""
    labels = pd.Series(column.cat.categories, dtype=object)
    numbers = pd.to_numeric(labels, errors="coerce")
    return "number" if len(labels) and numbers.notna().all() else "string"


def _parse(column: pd.Series, kind: str, decimal: str = ".") -> tuple[pd.Series, np.ndarray]:
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


def _apply_defaults(table: str, frame: pd.DataFrame) -> None:
    """Measures: rater defaults to client; phase to intake at session 0, else treatment."""
    if table != "measures":
        return
    at_intake = (frame["session_number"] == 0).fillna(False).to_numpy(dtype=bool)
    rater = frame["rater"] if "rater" in frame else _empty_category(len(frame), frame.index)
    frame["rater"] = _fill_category(rater, {"client": np.ones(len(frame), dtype=bool)})
    phase = frame["phase"] if "phase" in frame else _empty_category(len(frame), frame.index)
    frame["phase"] = _fill_category(phase, {"intake": at_intake, "treatment": ~at_intake})


def _empty_category(n: int, index: pd.Index) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(np.full(n, -1), categories=[]), index=index)


def _fill_category(values: pd.Series, defaults: Mapping[str, np.ndarray]) -> pd.Series:
    """Fill missing cells of a categorical with a default label chosen per row by a mask."""
    missing = values.isna().to_numpy()
    new = [label for label in defaults if label not in values.cat.categories]
    codes = values.cat.codes.to_numpy().copy()
    categories = values.cat.categories.append(pd.Index(new, dtype=object))
    for label, mask in defaults.items():
        codes[missing & mask] = categories.get_loc(label)
    return pd.Series(
        pd.Categorical.from_codes(codes, categories=categories), index=values.index
    ).cat.remove_unused_categories()


def _schema_issues(table: str, frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """Per-column rules through pandera, collected lazily; keys are checked in `_key_issues`."""
    schema = contract.MODELS[table].to_schema()
    schema = schema.update_columns({name: {"unique": False} for name in schema.columns})
    present = {name: col for name, col in schema.columns.items() if name in frame}
    schema = pa.DataFrameSchema(present, name=schema.name, strict=False)
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        cases = errors.failure_cases
        row_level = cases["index"].notna()
        if not row_level.all():
            unexpected = cases.loc[~row_level, ["column", "check"]].astype(str)
            first = unexpected.iloc[0]
            raise StudyError(
                f"{file}: column '{first['column']}' breaks rule {first['check']} as a whole.",
                file=file,
                column=first["column"],
            ) from None
        rows = cases["index"].astype(np.int64).to_numpy()
        return pd.DataFrame(
            {"row": rows, "rule": cases["check"].astype(str).to_numpy(), "column": cases["column"]}
        )
    return _issue_frame(np.array([], dtype=np.int64), "", "")


def _empty_optional_cells(
    table: str, frame: pd.DataFrame, cell_issues: list[pd.DataFrame]
) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """A bad cell of an optional column is emptied (and counted), not its row quarantined.

    An ``NA`` in homework_completion says nothing about whether the session happened, so
    the session and its measures stay; the cell becomes missing. Returns the issues that
    still quarantine rows, and the emptied cells (row, rule, column).
    """
    keys = set(contract.KEYS[table])
    optional = {
        name
        for name, spec in contract.columns(table).items()
        if not spec.required and spec.nullable and name not in keys and name in frame
    }
    parts = [part for part in cell_issues if len(part)]
    if not parts or not optional:
        return parts, _issue_frame(np.array([], dtype=np.int64), "", "")
    found = pd.concat(parts, ignore_index=True)
    soft = found["column"].isin(optional).to_numpy()
    cells = found.loc[soft].reset_index(drop=True)
    for column, rows in cells.groupby("column"):
        mask = np.zeros(len(frame), dtype=bool)
        mask[rows["row"].to_numpy()] = True
        frame[column] = frame[column].mask(mask)
    return [found.loc[~soft].reset_index(drop=True)], cells


def _emptied_notes(names: Mapping[str, str], emptied: Mapping[str, pd.DataFrame]) -> list[str]:
    notes = []
    for table, cells in emptied.items():
        for entry in _emptied_summary(cells):
            notes.append(
                f"{names[table]}: {entry['cells']} cell(s) of the optional column "
                f"{entry['column']} broke {entry['rule']} and were emptied; their rows stay"
            )
    return notes


def _emptied_summary(cells: pd.DataFrame) -> list[dict[str, object]]:
    if cells.empty:
        return []
    counts = cells.drop_duplicates(["row", "column"]).groupby(["rule", "column"]).size()
    return [
        {"rule": rule, "column": column, "cells": int(n)}
        for (rule, column), n in counts.sort_index().items()
    ]


def _key_codes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One int64 per row identifying its key, from each key column's integer codes."""
    key = np.zeros(len(frame), dtype=np.int64)
    for name in columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes, size = column.cat.codes.to_numpy().astype(np.int64), len(column.cat.categories)
        else:
            values = column.to_numpy(dtype=float, na_value=np.nan)
            low = np.nanmin(values) if np.isfinite(values).any() else 0
            codes = np.where(np.isfinite(values), values - low, -1).astype(np.int64)
            size = int(codes.max()) + 1 if len(codes) else 0
        key = key * (size + 1) + (codes + 1)
    return key


def _duplicated(key: np.ndarray) -> np.ndarray:
    """Every row whose key occurs more than once (sort-based: fast on tens of millions)."""
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    same = ordered[1:] == ordered[:-1]
    flagged = np.zeros(len(key), dtype=bool)
    flagged[order[1:][same]] = True
    flagged[order[:-1][same]] = True
    return flagged


def _key_issues(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    columns = contract.KEYS[table]
    complete = frame[list(columns)].notna().all(axis=1).to_numpy()
    duplicated = _duplicated(_key_codes(frame, columns)) & complete
    rule = f"duplicate_key({', '.join(columns)})"
    return _issue_frame(np.flatnonzero(duplicated), rule, columns[-1])


def _day_order_issues(sessions: pd.DataFrame) -> pd.DataFrame:
    """`day` must not decrease as session_number increases within a client."""
    if "day" not in sessions:
        return _issue_frame(np.array([], dtype=np.int64), "", "")
    ordered = sessions[["client_id", "session_number", "day"]].dropna()
    ordered = ordered.sort_values(["client_id", "session_number"], kind="stable")
    running_max = ordered.groupby("client_id", observed=True)["day"].cummax()
    previous = running_max.groupby(ordered["client_id"], observed=True).shift(1)
    decreasing = (ordered["day"] < previous).fillna(False).to_numpy(dtype=bool)
    return _issue_frame(ordered.index.to_numpy()[decreasing], "day_decreasing", "day")


def _revision_issues(goals: pd.DataFrame) -> pd.DataFrame:
    if "revised_session" not in goals:
        return _issue_frame(np.array([], dtype=np.int64), "", "")
    before = (goals["revised_session"] < goals["set_session"]).fillna(False).to_numpy(dtype=bool)
    return _issue_frame(np.flatnonzero(before), "revised_before_set", "revised_session")


def _instrument_issues(measures: pd.DataFrame, registry: Registry) -> pd.DataFrame:
    """Instrument known, item a label of that instrument, value within the item/total range."""
    instrument = measures["instrument"].astype("category")
    item = measures["item"].astype("category")
    inst_labels = list(instrument.cat.categories)
    item_labels = list(item.cat.categories)
    known = np.array([label in registry for label in inst_labels] + [False])
    allowed = np.zeros((len(inst_labels) + 1, len(item_labels) + 1), dtype=bool)
    low = np.full((len(inst_labels) + 1, len(item_labels) + 1), np.nan)
    high = np.full_like(low, np.nan)
    for i, key in enumerate(inst_labels):
        if key not in registry:
            continue
        spec = registry[key]
        labels = set(spec.item_labels)
        for j, label in enumerate(item_labels):
            if label == "total":
                if spec.total_min is not None and spec.total_max is not None:
                    allowed[i, j] = True
                    low[i, j], high[i, j] = spec.total_min, spec.total_max
            elif label in labels or not spec.item_labels:
                allowed[i, j] = True
                low[i, j], high[i, j] = spec.item_min, spec.item_max
    inst_codes = instrument.cat.codes.to_numpy().astype(np.int64)
    item_codes = item.cat.codes.to_numpy().astype(np.int64)
    inst_codes[inst_codes < 0] = len(inst_labels)
    item_codes[item_codes < 0] = len(item_labels)
    present = measures["instrument"].notna().to_numpy() & measures["item"].notna().to_numpy()
    unknown_instrument = present & ~known[inst_codes]
    unknown_item = present & ~unknown_instrument & ~allowed[inst_codes, item_codes]
    value = measures["value"].to_numpy(dtype=float, na_value=np.nan)
    lo, hi = low[inst_codes, item_codes], high[inst_codes, item_codes]
    checkable = present & ~unknown_instrument & ~unknown_item & np.isfinite(value)
    out_of_range = checkable & ((value < lo) | (value > hi))
    parts = [
        _issue_frame(np.flatnonzero(unknown_instrument), "unknown_instrument", "instrument"),
        _issue_frame(np.flatnonzero(unknown_item), "unknown_item_for_instrument", "item"),
    ]
    for i, key in enumerate(inst_labels):
        rows = np.flatnonzero(out_of_range & (inst_codes == i))
        if len(rows) == 0:
            continue
        spec = registry[key]
        is_total = np.array([label == "total" for label in item_labels] + [False])[item_codes[rows]]
        for mask, (a, b) in (
            (~is_total, (spec.item_min, spec.item_max)),
            (is_total, (spec.total_min, spec.total_max)),
        ):
            if mask.any():
                parts.append(_issue_frame(rows[mask], f"in_range({a:g}, {b:g})", "value"))
    parts.append(_step_issues(registry, inst_labels, inst_codes, item_labels, item_codes, value))
    return pd.concat(parts, ignore_index=True)


def _step_issues(
    registry: Registry,
    inst_labels: Sequence[str],
    inst_codes: np.ndarray,
    item_labels: Sequence[str],
    item_codes: np.ndarray,
    value: np.ndarray,
) -> pd.DataFrame:
    """Item responses off the instrument's answer steps (a GAD-7 item of 1.5)."""
    is_item = np.array([label != "total" for label in item_labels] + [False])[item_codes]
    parts = [_issue_frame(np.array([], dtype=np.int64), "", "")]
    for i, key in enumerate(inst_labels):
        step = registry[key].item_step if key in registry else None
        if not step:
            continue
        rows = np.flatnonzero((inst_codes == i) & is_item & np.isfinite(value))
        offset = (value[rows] - registry[key].item_min) / step
        off = np.abs(offset - np.round(offset)) > 1e-9
        parts.append(_issue_frame(rows[off], f"item_step({step:g})", "value"))
    return pd.concat(parts, ignore_index=True)


def _gas_goal_issues(measures: pd.DataFrame, goals: pd.DataFrame) -> pd.DataFrame:
    """A GAS rating's item names a goal; that goal must exist for the client."""
    is_gas = (measures["instrument"] == "gas").to_numpy(dtype=bool)
    if not is_gas.any():
        return _issue_frame(np.array([], dtype=np.int64), "", "")
    rated = measures.loc[is_gas, ["client_id", "item"]].astype(str)
    known = pd.MultiIndex.from_frame(goals[["client_id", "goal_id"]].astype(str))
    found = pd.MultiIndex.from_frame(rated).isin(known)
    return _issue_frame(rated.index.to_numpy()[~found], "gas_goal_not_in_goals", "item")


def _issue_frame(rows: np.ndarray, rule: str, column: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"row": np.asarray(rows, dtype=np.int64), "rule": rule, "column": column},
        columns=["row", "rule", "column"],
    )


def _collect(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [part for part in parts if len(part)]
    if not parts:
        return _issue_frame(np.array([], dtype=np.int64), "", "")
    out = pd.concat(parts, ignore_index=True)
    return out.drop_duplicates(ignore_index=True)


def _cascade(typed: dict[str, pd.DataFrame], bad: dict[str, pd.DataFrame]) -> None:
    """Quarantine children of quarantined or unknown parents, naming which it is."""
    clients = typed["clients"]
    ids = clients["client_id"].cat.categories
    state = np.full(len(ids) + 1, _UNKNOWN, dtype=np.int8)
    codes = clients["client_id"].cat.codes.to_numpy()
    state[codes[codes >= 0]] = _QUARANTINED
    good = _accepted_mask(clients, bad["clients"]) & (codes >= 0)
    # A client ID is accepted only if no row carrying it was quarantined.
    accepted_ids = np.setdiff1d(codes[good], codes[(~good) & (codes >= 0)])
    state[accepted_ids] = _ACCEPTED
    for table in ("sessions", "measures", "goals"):
        if table in typed:
            child = typed[table]["client_id"]
            issues = _parent_issues(_recode(child, ids), child.notna().to_numpy(), state)
            bad[table] = _collect([bad[table], issues])

    sessions = typed["sessions"]
    session_client = _recode(sessions["client_id"], ids)
    session_key = _session_key(session_client, sessions["session_number"])
    good_sessions = _accepted_mask(sessions, bad["sessions"])
    measures = typed["measures"]
    measure_key = _session_key(_recode(measures["client_id"], ids), measures["session_number"])
    treated = (measures["session_number"] > 0).fillna(False).to_numpy(dtype=bool)
    treated &= measure_key >= 0
    known = np.isin(measure_key, session_key[session_key >= 0])
    # A session key counts as accepted only if none of its rows was quarantined.
    accepted_keys = np.setdiff1d(session_key[good_sessions], session_key[~good_sessions])
    accepted = np.isin(measure_key, accepted_keys)
    bad["measures"] = _collect(
        [
            bad["measures"],
            _issue_frame(
                np.flatnonzero(treated & ~known), "session_not_in_sessions", "session_number"
            ),
            _issue_frame(
                np.flatnonzero(treated & known & ~accepted),
                "parent_quarantined(sessions)",
                "session_number",
            ),
        ]
    )


_UNKNOWN, _QUARANTINED, _ACCEPTED = 0, 1, 2


def _recode(column: pd.Series, categories: pd.Index) -> np.ndarray:
    """Codes of `column` in another table's categories (-1 where the label is not there)."""
    return pd.Categorical(column, categories=categories).codes.astype(np.int64)


def _session_key(client_codes: np.ndarray, session_number: pd.Series) -> np.ndarray:
    """One int64 per (client, session): client * (MAX + 1) + session, so no two pairs share one.

    Session numbers beyond the contract's maximum break its rule and get no key (-1).
    """
    number = session_number.to_numpy(dtype=float, na_value=np.nan)
    top = contract.MAX_SESSION_NUMBER
    ok = (client_codes >= 0) & np.isfinite(number) & (number >= 0) & (number <= top)
    session = np.where(ok, number, 0).astype(np.int64)
    return np.where(ok, client_codes.astype(np.int64) * (top + 1) + session, -1)


def _accepted_mask(frame: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    keep = np.ones(len(frame), dtype=bool)
    keep[rows["row"].to_numpy()] = False
    return keep


def _parent_issues(
    child_codes: np.ndarray, has_value: np.ndarray, state: np.ndarray
) -> pd.DataFrame:
    """Rows whose client_id is not among the clients, or belongs to a quarantined client."""
    # Code -1 (a label absent from clients) indexes the trailing UNKNOWN slot of `state`.
    child_state = state[np.where(child_codes >= 0, child_codes, len(state) - 1)]
    return pd.concat(
        [
            _issue_frame(
                np.flatnonzero((child_state == _UNKNOWN) & has_value), "not_in_clients", "client_id"
            ),
            _issue_frame(
                np.flatnonzero(child_state == _QUARANTINED),
                "parent_quarantined(clients)",
                "client_id",
            ),
        ],
        ignore_index=True,
    )


def _quarantine_rows(
    table: str, frame: pd.DataFrame, rows: pd.DataFrame, inputs: _Inputs
) -> pd.DataFrame:
    if len(rows) == 0:
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    index = rows["row"].to_numpy()
    client = frame["client_id"].astype(object).to_numpy()[index]
    # Only a well-formed pseudonym is repeated in the quarantine; anything else stays blank.
    well_formed = pd.Series(client, dtype=object).astype(str).str.fullmatch(_ID_REGEX)
    client = np.where(well_formed.to_numpy() & pd.notna(client), client, "")
    return pd.DataFrame(
        {
            "table": table,
            "row_number": inputs.row_number[table][index],
            "client_id": client,
            "rule": rows["rule"].to_numpy(),
            "column": rows["column"].to_numpy(),
            "source": inputs.source[table][index],
            "source_column": [
                "(header withheld)" if looks_identifying(str(c)) else c
                for c in inputs.source_columns(table, index, rows["column"].to_numpy(dtype=object))
            ],
        }
    )


def _summary(
    study: StudyInput,
    typed: Mapping[str, pd.DataFrame],
    accepted: Mapping[str, pd.DataFrame],
    quarantine: pd.DataFrame,
    replaced: Mapping[str, Mapping[str, int]],
    inputs: _Inputs,
    guard: GuardReport,
) -> dict:
    tables = {}
    for table, frame in typed.items():
        in_table = quarantine[quarantine["table"] == table]
        # A source row can yield several rows (a wide questionnaire row), so count rows here.
        rows_quarantined = len(frame) - len(accepted[table])
        reasons = in_table.groupby(["rule", "column"]).size().sort_index()
        tables[table] = {
            "rows_in": len(frame),
            "rows_accepted": len(accepted[table]),
            "rows_quarantined": rows_quarantined,
            "missing_codes_replaced": int(sum(replaced[table].values())),
            "missing_codes_replaced_by_column": dict(sorted(replaced[table].items())),
            "quarantine_reasons": [
                {"rule": rule, "column": column, "rows": int(n)}
                for (rule, column), n in reasons.items()
            ],
        }
        if tables[table]["rows_in"] != tables[table]["rows_accepted"] + rows_quarantined:
            raise AssertionError(f"{table}: counts do not reconcile")
    return {
        "study": study.name,
        "contract_version": contract.CONTRACT_VERSION,
        "missing_codes": [str(code) for code in study.missing_codes],
        "tables": tables,
        "notes": [withhold_text(note) for note in inputs.notes],
        "input_checksums_sha256": dict(sorted(inputs.checksums.items())),
        "identifier_guard": guard.to_dict(),
    }


def write_validation(result: ValidationResult, paths: Mapping[str, str | Path]) -> None:
    """Write the validated tables, the quarantine and the summary to `paths` (keys as outputs)."""
    from accord.core.io import write_csv, write_json, write_parquet

    for table in contract.TABLES:
        frame = result.tables.get(table)
        if frame is None:
            frame = empty_table(table)
        write_parquet(paths[table], frame, metadata={"contract_version": contract.CONTRACT_VERSION})
    write_csv(paths["quarantine"], result.quarantine)
    write_json(paths["summary"], result.summary)


def empty_table(table: str) -> pd.DataFrame:
    """A table with the contract's required columns and no rows (an absent optional table)."""
    dtypes = {
        "id": "category",
        "string": "category",
        "integer": "Int64",
        "number": "Float64",
        "boolean": "boolean",
    }
    specs = contract.columns(table)
    return pd.DataFrame(
        {name: pd.Series(dtype=dtypes[spec.kind]) for name, spec in specs.items() if spec.required}
    )
