"""The study's validation from its partitions: the same tables, quarantine and summary for any
number of partitions of clients.

Each partition (`accord.validate.study.validate_inputs`) returns its accepted rows with their
source row numbers, its quarantine rows and a tally of counts and labels. Here the accepted
rows are put back in source order, the quarantine is sorted as one, the counts are added up
and the notes are written from the sums, so a study validated in 7 partitions has the outputs
it has in one. A whole study is gathered as its one partition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from accord.core import contract
from accord.core.errors import IdentifierError
from accord.core.identifiers import Finding, GuardReport, withhold_text
from accord.core.io import write_csv, write_json, write_parquet
from accord.validate.categories import CategoryChange
from accord.validate.checks import emptied_notes
from accord.validate.guard import quasi_identifier_warning
from accord.validate.parsing import convention_notes_from, missing_like_notes
from accord.validate.quarantine import empty_table, validation_summary
from accord.validate.tables import PartResult, StudyInput, ValidationResult

log = logging.getLogger(__name__)

QUARANTINE_ORDER = ["table", "source", "row_number", "rule", "column"]
ROW = "__row_number__"


def gather_parts(study: StudyInput, parts: Sequence[PartResult]) -> ValidationResult:
    """One study's ValidationResult from the results of its partitions (in any order)."""
    result = gather_summary(study, parts)
    result.tables = {table: gather_table(table, parts) for table in parts[0].tally["table_order"]}
    return result


def write_gathered(
    study: StudyInput, folders: Sequence[str | Path], paths: Mapping[str, str | Path]
) -> ValidationResult:
    """Gather the partitions written under `folders` into the files `write_validation` writes,
    holding one gathered table at a time; returns the result without its tables."""
    parts = [read_part(folder) for folder in folders]
    result = gather_summary(study, parts)
    for table in contract.TABLES:
        if table in parts[0].tally["table_order"]:
            frame = gather_table(table, parts)
        else:
            frame = empty_table(table)
        write_parquet(paths[table], frame, metadata={"contract_version": contract.CONTRACT_VERSION})
        del frame
    write_csv(paths["quarantine"], result.quarantine)
    write_json(paths["summary"], result.summary)
    return result


def gather_summary(study: StudyInput, parts: Sequence[PartResult]) -> ValidationResult:
    """The quarantine, summary and guard report of the study from its partitions; no tables.

    Raises IdentifierError, as the guard does for a whole study, when a partition has a
    finding: with every partition's findings and their rows added up.
    """
    _raise_findings(parts)
    first = parts[0].tally
    order = first["table_order"]
    quarantine = pd.concat([part.quarantine for part in parts], ignore_index=True)
    quarantine = quarantine.sort_values(QUARANTINE_ORDER, kind="stable").reset_index(drop=True)

    counts = {table: _sum_counts(parts, table) for table in order}
    replaced = {
        table: _sum_columns(p.tally["tables"][table]["replaced"] for p in parts) for table in order
    }
    changes = _sum_changes(parts)
    emptied = {table: _sum_emptied(parts, table) for table in order}
    notes = _notes(study, parts, changes, emptied)
    for note in notes:
        log.warning("%s: %s", study.name, withhold_text(note))
    guard = GuardReport(warnings=_quasi_warnings(study, parts))
    for warning in guard.warnings:
        log.warning("quasi-identifiers: %s", warning.describe())

    summary = validation_summary(
        study, counts, quarantine, replaced, notes, first["checksums"], guard
    )
    summary["categories"] = [change.to_dict() for change in changes]
    for table, entries in emptied.items():
        summary["tables"][table]["cells_emptied"] = entries
    summary.update(first["extra_summary"])
    return ValidationResult({}, quarantine, summary, guard)


def _raise_findings(parts: Sequence[PartResult]) -> None:
    found: dict[tuple, Finding] = {}
    for part in parts:
        for entry in part.tally.get("findings", []):
            finding = Finding(**entry)
            key = (finding.table, finding.file, finding.column, finding.kind, finding.detail)
            if key in found:
                finding = replace(finding, rows=found[key].rows + finding.rows)
            found[key] = finding
    if found:
        report = GuardReport(findings=list(found.values()))
        first = report.findings[0]
        err = IdentifierError(report.message(), file=first.file, column=first.column)
        err.report = report  # type: ignore[attr-defined]
        raise err


def gather_table(table: str, parts: Sequence[PartResult]) -> pd.DataFrame:
    """The accepted rows of every partition in source order, with the labels of the whole."""
    if len(parts) == 1:
        return parts[0].tables[table]
    frames = [part.tables[table].copy(deep=False) for part in parts]
    # A filled column keeps the labels used in some partition (as the whole study would).
    for column in parts[0].tally["used_labels"].get(table, {}):
        used = {label for part in parts for label in part.tally["used_labels"][table][column]}
        frames = [_keep_labels(frame, column, used) for frame in frames]
    for column in frames[0].columns:
        dtypes = {str(frame[column].dtype) for frame in frames}
        kinds = [frame[column].dtype for frame in frames]
        if isinstance(kinds[0], pd.CategoricalDtype) and any(k != kinds[0] for k in kinds):
            raise AssertionError(f"{table}.{column}: partitions differ in labels ({dtypes})")
    rows = np.concatenate([part.row_numbers[table] for part in parts])
    order = np.argsort(rows, kind="stable")
    # column by column, each partition's column let go once gathered: one table held, not three
    gathered = {}
    for column in list(frames[0].columns):
        values = pd.concat([frame.pop(column) for frame in frames], ignore_index=True)
        gathered[column] = values.take(order).reset_index(drop=True)
        del values
    return pd.DataFrame(gathered)


def _keep_labels(frame: pd.DataFrame, column: str, used: set[str]) -> pd.DataFrame:
    values = frame[column]
    unused = [label for label in values.cat.categories if label not in used]
    frame = frame.copy(deep=False)
    frame[column] = values.cat.remove_categories(unused)
    return frame


def _sum_counts(parts: Sequence[PartResult], table: str) -> dict[str, int]:
    return {
        key: sum(part.tally["tables"][table][key] for part in parts)
        for key in ("rows_in", "rows_accepted")
    }


def _sum_columns(per_part) -> dict[str, int]:
    """Counts per column added up; a column counted nowhere stays out."""
    total: dict[str, int] = {}
    for counts in per_part:
        for column, n in counts.items():
            total[column] = total.get(column, 0) + int(n)
    return {column: n for column, n in total.items() if n}


def _sum_changes(parts: Sequence[PartResult]) -> list[CategoryChange]:
    """Label changes of every partition: the same labels in each, their rows added up."""
    found: dict[tuple[str, str, str], dict] = {}
    for part in parts:
        for change in part.tally["changes"]:
            key = (change["table"], change["column"], change["kind"])
            if key in found:
                found[key]["rows"] += change["rows"]
            else:
                found[key] = dict(change)
    return [CategoryChange(**change) for change in found.values()]


def _sum_emptied(parts: Sequence[PartResult], table: str) -> list[dict[str, object]]:
    cells: dict[tuple[str, str], int] = {}
    for part in parts:
        for entry in part.tally["emptied"].get(table, []):
            key = (entry["rule"], entry["column"])
            cells[key] = cells.get(key, 0) + int(entry["cells"])
    return [
        {"rule": rule, "column": column, "cells": n} for (rule, column), n in sorted(cells.items())
    ]


def _notes(
    study: StudyInput,
    parts: Sequence[PartResult],
    changes: Sequence[CategoryChange],
    emptied: dict[str, list[dict[str, object]]],
) -> list[str]:
    """The study's notes, in the order validation finds them, from the partitions' counts."""
    first = parts[0].tally
    names = first["names"]
    notes = list(first["read_notes"])
    for table in first["table_order"]:
        missing_like = _sum_columns(part.tally["missing_like"][table] for part in parts)
        notes.extend(missing_like_notes(names[table], missing_like))
    conventions: dict[str, dict[str, int]] = {}
    for part in parts:
        for column, counts in part.tally["conventions"].items():
            total = conventions.setdefault(column, {"na": 0, "comma": 0})
            for key in total:
                total[key] += counts[key]
    notes.extend(convention_notes_from(conventions, study))
    notes.extend(change.describe() for change in changes)
    notes.extend(emptied_notes(names, emptied))
    return notes


def _quasi_warnings(study: StudyInput, parts: Sequence[PartResult]) -> list:
    columns: list[str] = []
    sizes: dict[tuple[int, ...], int] = {}
    for part in parts:
        quasi = part.tally["quasi"]
        columns = columns or list(quasi["columns"])
        for *key, n in quasi["sizes"]:
            sizes[tuple(key)] = sizes.get(tuple(key), 0) + int(n)
    warning = quasi_identifier_warning(columns, sizes, study.quasi_identifier_k)
    return [] if warning is None else [warning]


def write_part(part: PartResult, folder: str | Path) -> None:
    """Write a partition's result under `folder` (read back by `read_part`)."""
    folder = Path(folder)
    tally = dict(part.tally)
    tally["empty_categories"] = {}
    for table, frame in part.tables.items():
        frame = frame.assign(**{ROW: part.row_numbers[table]})
        write_parquet(folder / f"{table}.parquet", frame)
        if frame.empty:  # an empty Parquet column forgets its labels: keep them here
            tally["empty_categories"][table] = {
                str(name): [str(v) for v in frame[name].cat.categories]
                for name in frame.columns
                if isinstance(frame[name].dtype, pd.CategoricalDtype)
            }
    write_parquet(folder / "quarantine.parquet", part.quarantine.astype(object))
    write_json(folder / "tally.json", tally)


class _PartTables(Mapping):
    """A written partition's accepted tables, each read from its file when asked for (and not
    kept), so a gather holds one table at a time."""

    def __init__(self, folder: Path, tally: dict) -> None:
        self.folder, self.tally = folder, tally

    def __getitem__(self, table: str) -> pd.DataFrame:
        if table not in self.tally["table_order"]:
            raise KeyError(table)
        frame = pd.read_parquet(self.folder / f"{table}.parquet")
        frame.pop(ROW)
        for name, labels in self.tally["empty_categories"].get(table, {}).items():
            frame[name] = frame[name].astype(pd.CategoricalDtype(pd.Index(labels, dtype=object)))
        return frame

    def __iter__(self) -> Iterator[str]:
        return iter(self.tally["table_order"])

    def __len__(self) -> int:
        return len(self.tally["table_order"])


class _PartRows(_PartTables):
    """A written partition's source row numbers of the accepted rows, per table."""

    def __getitem__(self, table: str) -> np.ndarray:
        if table not in self.tally["table_order"]:
            raise KeyError(table)
        rows = pq.read_table(self.folder / f"{table}.parquet", columns=[ROW]).column(ROW)
        return rows.to_numpy().astype(np.int64, copy=False)


def read_part(folder: str | Path) -> PartResult:
    """A partition's result written by `write_part`; its tables are read when used."""
    folder = Path(folder)
    tally = json.loads((folder / "tally.json").read_text(encoding="utf-8"))
    quarantine = pd.read_parquet(folder / "quarantine.parquet")
    return PartResult(_PartTables(folder, tally), _PartRows(folder, tally), quarantine, tally)
