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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from accord.core import contract
from accord.core.errors import StudyError
from accord.core.identifiers import (
    column_phrase,
    shown_column,
    shown_file,
    withhold_text,
)
from accord.core.instruments import Registry
from accord.core.io import find_table, read_table, sha256
from accord.validate.categories import CategoryChange, normalise_categories
from accord.validate.checks import (
    collect_issues,
    day_order_issues,
    emptied_notes,
    emptied_summary,
    empty_optional_cells,
    gas_goal_issues,
    instrument_issues,
    key_issues,
    revision_issues,
    schema_issues,
)
from accord.validate.guard import check_identifiers
from accord.validate.parsing import (
    apply_defaults,
    coerce,
    convention_notes,
    missing_like_ids,
    missing_like_notes,
    replace_missing_codes,
)
from accord.validate.quarantine import cascade, quarantine_rows, validation_summary
from accord.validate.tables import Inputs, StudyInput, ValidationResult

log = logging.getLogger(__name__)


def _read_contract_study(study: StudyInput) -> Inputs:
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
    return Inputs(
        raw=raw,
        names=names,
        source={t: np.full(len(f), names[t], dtype=object) for t, f in raw.items()},
        row_number={t: np.arange(1, len(f) + 1, dtype=np.int64) for t, f in raw.items()},
        notes=notes,
        checksums=checksums,
    )


def _read_mapped_study(study: StudyInput) -> Inputs:
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
    return Inputs(
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
        raw[table], counts = replace_missing_codes(frame, study.missing_codes)
        raw[table], id_counts = missing_like_ids(raw[table])
        merged = replaced.setdefault(table, {})
        for column, n in (counts | id_counts).items():
            merged[column] = merged.get(column, 0) + n
        notes.extend(missing_like_notes(names[table], id_counts))

    guard = check_identifiers(
        raw, names, acknowledged=study.acknowledged_columns, k=study.quasi_identifier_k
    )

    for table, frame in raw.items():
        _check_table_shape(table, frame, names[table], study.extra_columns.get(table, ()))
    notes.extend(convention_notes(raw, names, study))

    for table in raw:
        issues.setdefault(table, [])
    typed: dict[str, pd.DataFrame] = {}
    changes: list[CategoryChange] = []
    emptied: dict[str, pd.DataFrame] = {}
    for table, frame in raw.items():
        frame, type_issues = coerce(table, frame, study.decimal)
        text_columns = [c for c in study.extra_columns.get(table, ()) if c in frame]
        frame, found = normalise_categories(table, frame, study.categories, text_columns)
        changes.extend(found)
        apply_defaults(table, frame)
        cell_issues = [*type_issues, schema_issues(table, frame, names[table])]
        cell_issues, emptied[table] = empty_optional_cells(table, frame, cell_issues)
        issues[table].extend(cell_issues)
        issues[table].append(key_issues(table, frame))
        typed[table] = frame
    notes.extend(change.describe() for change in changes)
    notes.extend(emptied_notes(names, emptied))
    for note in notes:
        log.warning("%s: %s", study.name, withhold_text(note))

    issues["sessions"].append(day_order_issues(typed["sessions"]))
    issues["measures"].append(instrument_issues(typed["measures"], registry))
    if "goals" in typed:
        issues["goals"].append(revision_issues(typed["goals"]))
        issues["measures"].append(gas_goal_issues(typed["measures"], typed["goals"]))

    bad = {table: collect_issues(issues[table]) for table in typed}
    cascade(typed, bad)

    accepted = {}
    quarantine_parts = []
    for table, frame in typed.items():
        rows = bad[table]
        rejected = rows["row"].unique() if len(rows) else np.array([], dtype=np.int64)
        keep = np.ones(len(frame), dtype=bool)
        keep[rejected] = False
        accepted[table] = frame.loc[keep].reset_index(drop=True)
        quarantine_parts.append(quarantine_rows(table, frame, rows, inputs))

    quarantine = pd.concat(quarantine_parts, ignore_index=True)
    quarantine = quarantine.sort_values(
        ["table", "source", "row_number", "rule", "column"], kind="stable"
    ).reset_index(drop=True)
    summary = validation_summary(study, typed, accepted, quarantine, replaced, inputs, guard)
    summary["categories"] = [change.to_dict() for change in changes]
    for table, cells in emptied.items():
        summary["tables"][table]["cells_emptied"] = emptied_summary(cells)
    summary.update(inputs.summary)
    return ValidationResult(accepted, quarantine, summary, guard)


def _withhold_file_names(inputs: Inputs) -> None:
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
