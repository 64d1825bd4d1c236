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
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from accord.core import contract
from accord.core.errors import StudyError
from accord.core.identifiers import (
    column_phrase,
    shown_column,
    shown_file,
)
from accord.core.instruments import Registry
from accord.core.io import find_table, read_table, sha256
from accord.validate.categories import CategoryChange, normalise_categories
from accord.validate.checks import (
    collect_issues,
    day_order_issues,
    emptied_summary,
    empty_optional_cells,
    gas_goal_issues,
    instrument_issues,
    key_issues,
    revision_issues,
    schema_issues,
)
from accord.validate.gather import gather_parts
from accord.validate.guard import check_identifiers, quasi_identifier_sizes, scan_identifiers
from accord.validate.parsing import (
    apply_defaults,
    coerce,
    convention_counts,
    missing_like_ids,
    replace_missing_codes,
)
from accord.validate.quarantine import QUARANTINE_COLUMNS, cascade, quarantine_rows
from accord.validate.tables import Inputs, PartResult, StudyInput, ValidationResult

log = logging.getLogger(__name__)


def _read_contract_study(study: StudyInput) -> Inputs:
    files = locate_tables(study.path)
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
    return gather_parts(study, [validate_inputs(study, inputs, registry)])


def validate_inputs(
    study: StudyInput,
    inputs: Inputs,
    registry: Registry,
    *,
    rows: Mapping[str, int] | None = None,
) -> PartResult:
    """Guard and validate tables read: a whole study, or one partition of its clients.

    A partition (`rows` given: the whole study's row count of each table) is read with the
    whole study's labels as its categories (`accord.validate.split`); its counts add up with
    the other partitions' in `gather_parts`. Raises StudyError on a table-level fault and
    IdentifierError when the guard finds an identifier.
    """
    partition = rows is not None
    _withhold_file_names(inputs)
    raw, names = inputs.raw, inputs.names
    tally: dict = {
        "table_order": list(raw),
        "names": dict(names),
        "read_notes": list(inputs.notes),
        "checksums": dict(inputs.checksums),
        "extra_summary": dict(inputs.summary),
        "missing_like": {},
    }
    # Declared missing codes are not data: a 999 meaning "not asked" is not an age of 999.
    for table, frame in raw.items():
        raw[table], counts = replace_missing_codes(frame, study.missing_codes, partition=partition)
        raw[table], id_counts = missing_like_ids(raw[table], partition=partition)
        merged = inputs.replaced.setdefault(table, {})
        for column, n in (counts | id_counts).items():
            merged[column] = merged.get(column, 0) + n
        tally["missing_like"][table] = id_counts

    if partition:
        # a partition's findings stop the run at the gather, with the whole study's counts
        report = scan_identifiers(raw, names, acknowledged=study.acknowledged_columns, k=1)
        tally["findings"] = [asdict(finding) for finding in report.findings]
        if report.findings:
            return PartResult({}, {}, pd.DataFrame(columns=QUARANTINE_COLUMNS), tally)
    else:
        check_identifiers(raw, names, acknowledged=study.acknowledged_columns, k=1)
    columns, sizes = quasi_identifier_sizes(raw, study.acknowledged_columns)
    tally["quasi"] = {"columns": columns, "sizes": [[*key, n] for key, n in sizes.items()]}

    for table, frame in raw.items():
        n_rows = len(frame) if rows is None else rows[table]
        _check_table_shape(
            table, frame, names[table], study.extra_columns.get(table, ()), n_rows=n_rows
        )
    tally["conventions"] = convention_counts(raw, study)
    typed = _typed_tables(study, inputs, registry, tally, partition=partition)
    return _accepted_part(typed, inputs, tally)


def _typed_tables(
    study: StudyInput, inputs: Inputs, registry: Registry, tally: dict, *, partition: bool
) -> dict[str, pd.DataFrame]:
    """The tables with the contract's types and labels; every row issue in `inputs.issues`."""
    issues = inputs.issues
    for table in inputs.raw:
        issues.setdefault(table, [])
    typed: dict[str, pd.DataFrame] = {}
    changes: list[CategoryChange] = []
    emptied: dict[str, pd.DataFrame] = {}
    used: dict[str, dict[str, list[str]]] = {}
    for table, frame in inputs.raw.items():
        frame, type_issues = coerce(table, frame, study.decimal, partition=partition)
        text_columns = [c for c in study.extra_columns.get(table, ()) if c in frame]
        frame, found = normalise_categories(table, frame, study.categories, text_columns)
        changes.extend(found)
        used[table] = apply_defaults(table, frame, partition=partition)
        cell_issues = [*type_issues, schema_issues(table, frame, inputs.names[table])]
        cell_issues, emptied[table] = empty_optional_cells(table, frame, cell_issues)
        issues[table].extend(cell_issues)
        issues[table].append(key_issues(table, frame))
        typed[table] = frame
    tally["changes"] = [
        {k: v for k, v in change.to_dict().items() if k != "message"} for change in changes
    ]
    tally["emptied"] = {table: emptied_summary(cells) for table, cells in emptied.items()}
    tally["used_labels"] = used

    issues["sessions"].append(day_order_issues(typed["sessions"]))
    issues["measures"].append(instrument_issues(typed["measures"], registry))
    if "goals" in typed:
        issues["goals"].append(revision_issues(typed["goals"]))
        issues["measures"].append(gas_goal_issues(typed["measures"], typed["goals"]))
    return typed


def _accepted_part(typed: dict[str, pd.DataFrame], inputs: Inputs, tally: dict) -> PartResult:
    """Cascade the refusals to children; split each table into accepted and quarantined."""
    bad = {table: collect_issues(inputs.issues[table]) for table in typed}
    cascade(typed, bad)
    accepted, row_numbers, counts = {}, {}, {}
    quarantine_parts = []
    for table, frame in typed.items():
        rows = bad[table]
        rejected = rows["row"].unique() if len(rows) else np.array([], dtype=np.int64)
        keep = np.ones(len(frame), dtype=bool)
        keep[rejected] = False
        accepted[table] = frame.loc[keep].reset_index(drop=True)
        row_numbers[table] = np.asarray(inputs.row_number[table])[keep]
        quarantine_parts.append(quarantine_rows(table, frame, rows, inputs))
        counts[table] = {
            "rows_in": len(frame),
            "rows_accepted": int(keep.sum()),
            "replaced": dict(inputs.replaced[table]),
        }
    tally["tables"] = counts
    quarantine = pd.concat(quarantine_parts, ignore_index=True)
    return PartResult(accepted, row_numbers, quarantine, tally)


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


def locate_tables(folder: Path) -> dict[str, Path]:
    """The file of each of the study's tables (StudyError when a required one is missing)."""
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


def _check_table_shape(
    table: str, frame: pd.DataFrame, file: str, extra: Sequence[str], *, n_rows: int
) -> None:
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
    if n_rows == 0:
        raise StudyError(f"{file}: the table has a header but no rows.", file=file)
