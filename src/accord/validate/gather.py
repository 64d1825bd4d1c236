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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from accord.core.identifiers import GuardReport, withhold_text
from accord.core.io import write_json, write_parquet
from accord.validate.categories import CategoryChange
from accord.validate.checks import emptied_notes
from accord.validate.guard import quasi_identifier_warning
from accord.validate.parsing import convention_notes_from, missing_like_notes
from accord.validate.quarantine import validation_summary
from accord.validate.tables import PartResult, StudyInput, ValidationResult

log = logging.getLogger(__name__)

QUARANTINE_ORDER = ["table", "source", "row_number", "rule", "column"]
ROW = "__row_number__"


def gather_parts(study: StudyInput, parts: Sequence[PartResult]) -> ValidationResult:
    """One study's ValidationResult from the results of its partitions (in any order)."""
    first = parts[0].tally
    order = first["table_order"]
    tables = {table: _gather_table(table, parts) for table in order}
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
    return ValidationResult(tables, quarantine, summary, guard)


def _gather_table(table: str, parts: Sequence[PartResult]) -> pd.DataFrame:
    """The accepted rows of every partition in source order, with the labels of the whole."""
    if len(parts) == 1:
        return parts[0].tables[table]
    frames = [part.tables[table] for part in parts]
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
    gathered = pd.concat(frames, ignore_index=True)
    return gathered.take(order).reset_index(drop=True)


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


def read_part(folder: str | Path) -> PartResult:
    """A partition's result written by `write_part`."""
    folder = Path(folder)
    tally = json.loads((folder / "tally.json").read_text(encoding="utf-8"))
    tables, row_numbers = {}, {}
    for table in tally["table_order"]:
        frame = pd.read_parquet(folder / f"{table}.parquet")
        row_numbers[table] = frame.pop(ROW).to_numpy(dtype=np.int64)
        for name, labels in tally["empty_categories"].get(table, {}).items():
            frame[name] = frame[name].astype(pd.CategoricalDtype(pd.Index(labels, dtype=object)))
        tables[table] = frame
    quarantine = pd.read_parquet(folder / "quarantine.parquet")
    return PartResult(tables, row_numbers, quarantine, tally)
