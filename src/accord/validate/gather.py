"""The study's validation from its partitions: the same tables, quarantine and summary for any
number of partitions of clients.

Each partition (`accord.validate.study.validate_inputs`) returns its accepted rows with their
source row numbers, its quarantine rows and a tally of counts and labels. Here the accepted
rows are put back in source order, the quarantine is sorted as one, the counts are added up
and the notes are written from the sums, so a study validated in 7 partitions has the outputs
it has in one. A whole study is gathered as its one partition.

`write_gathered` never holds a whole table: each partition's accepted rows are already in
source order, so the study's are a merge of the partitions' files by row number, read a batch
at a time and written a row group at a time (`accord.core.io.ParquetChunks`) in the bytes
`gather_table` and `write_parquet` give.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pandas.api.extensions import ExtensionDtype

from accord.core import contract
from accord.core.errors import IdentifierError
from accord.core.identifiers import Finding, GuardReport, withhold_text
from accord.core.io import (
    PARQUET_ROW_GROUP,
    parquet_chunks,
    write_csv,
    write_json,
    write_parquet,
)
from accord.core.partitions import gather_columns
from accord.validate.categories import CategoryChange
from accord.validate.checks import emptied_notes
from accord.validate.guard import quasi_identifier_warning
from accord.validate.parsing import convention_notes_from, missing_like_notes
from accord.validate.quarantine import empty_table, validation_summary
from accord.validate.tables import PartResult, StudyInput, ValidationResult

log = logging.getLogger(__name__)

QUARANTINE_ORDER = ["table", "source", "row_number", "rule", "column"]
ROW = "__row_number__"
#: Rows read at a time from each partition's file when its tables are gathered: the memory of
#: a gather is about this many rows of every partition plus a row group of the output.
GATHER_BATCH = 1 << 16
_BEFORE_FIRST = -1  # below every source row number
_METADATA = {"contract_version": contract.CONTRACT_VERSION}


def gather_parts(study: StudyInput, parts: Sequence[PartResult]) -> ValidationResult:
    """One study's ValidationResult from the results of its partitions (in any order)."""
    result = gather_summary(study, parts)
    result.tables = {table: gather_table(table, parts) for table in parts[0].tally["table_order"]}
    return result


def write_gathered(
    study: StudyInput,
    folders: Sequence[str | Path],
    paths: Mapping[str, str | Path],
    *,
    batch_rows: int = GATHER_BATCH,
    row_group_size: int = PARQUET_ROW_GROUP,
) -> ValidationResult:
    """Gather the partitions written under `folders` into the files `write_validation` writes;
    returns the result without its tables.

    No table is held whole: each is merged from the partitions' files `batch_rows` rows of
    each at a time and written a row group at a time (`gathered_chunks`), in the bytes
    `write_parquet` gives the table `gather_table` gathers. `row_group_size` is for tests.
    """
    folders = [Path(folder) for folder in folders]
    parts = [read_part(folder) for folder in folders]
    result = gather_summary(study, parts)
    tallies = [part.tally for part in parts]
    for table in contract.TABLES:
        if table not in tallies[0]["table_order"]:
            write_parquet(paths[table], empty_table(table), metadata=_METADATA)
            continue
        files = [folder / f"{table}.parquet" for folder in folders]
        write_gathered_table(
            paths[table],
            table,
            files,
            tallies,
            batch_rows=batch_rows,
            row_group_size=row_group_size,
        )
    write_csv(paths["quarantine"], result.quarantine)
    write_json(paths["summary"], result.summary)
    return result


def write_gathered_table(
    path: str | Path,
    table: str,
    files: Sequence[Path],
    tallies: Sequence[dict],
    *,
    batch_rows: int = GATHER_BATCH,
    row_group_size: int = PARQUET_ROW_GROUP,
) -> None:
    """Write `table` gathered from the partitions' files (`write_part`) and tallies to `path`,
    a row group at a time: the bytes of `write_parquet(path, gather_table(table, parts))`."""
    chunks = gathered_chunks(
        table, files, tallies, batch_rows=batch_rows, chunk_rows=row_group_size
    )
    with parquet_chunks(path, _METADATA, row_group_size=row_group_size) as out:
        for chunk in chunks:
            out.append(chunk)


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
    frames = [part.tables[table].copy(deep=False) for part in parts]
    # A filled column keeps the labels used in some partition (as the whole study would),
    # also in a study of one partition: a default label no row took is not the study's.
    for column in parts[0].tally["used_labels"].get(table, {}):
        used = {label for part in parts for label in part.tally["used_labels"][table][column]}
        frames = [_keep_labels(frame, column, used) for frame in frames]
    if len(frames) == 1:
        return frames[0]
    for column in frames[0].columns:
        dtypes = {str(frame[column].dtype) for frame in frames}
        kinds = [frame[column].dtype for frame in frames]
        if isinstance(kinds[0], pd.CategoricalDtype) and any(k != kinds[0] for k in kinds):
            raise AssertionError(f"{table}.{column}: partitions differ in labels ({dtypes})")
    rows = np.concatenate([part.row_numbers[table] for part in parts])
    return gather_columns(frames, np.argsort(rows, kind="stable"))


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


def gathered_chunks(
    table: str,
    files: Sequence[Path],
    tallies: Sequence[dict],
    *,
    batch_rows: int = GATHER_BATCH,
    chunk_rows: int = PARQUET_ROW_GROUP,
) -> Iterator[pd.DataFrame]:
    """The accepted rows of a table in source order, from the partitions' files (`write_part`)
    in chunks of `chunk_rows` rows: the rows of `gather_table`, with its dtypes and labels.

    Each partition's rows are in ascending source order, so the whole is a k-way merge by row
    number: each file is read `batch_rows` rows at a time, and every row at or below the
    smallest row number last read from a partition not yet finished is merged. The first
    chunk has no rows: it gives the dtypes even of a table without rows.
    """
    streams = [
        _PartStream(path, tally["empty_categories"].get(table, {}), batch_rows)
        for path, tally in zip(files, tallies, strict=True)
    ]
    used = {
        column: {label for tally in tallies for label in tally["used_labels"][table][column]}
        for column in tallies[0]["used_labels"].get(table, {})
    }
    dtypes = _gathered_dtypes(table, streams, used)
    for stream in streams:
        stream.recode_to(dtypes)
    yield _frame(dtypes, {name: _empty(dtype) for name, dtype in dtypes.items()})
    held: list[dict[str, Any]] = []
    held_rows, last = 0, _BEFORE_FIRST
    while live := [stream for stream in streams if stream.batch is not None]:
        bound = min(stream.last_read for stream in live)
        pieces, numbers = zip(*(stream.take_through(bound) for stream in live), strict=True)
        rows = np.concatenate(numbers)
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        if rows[0] <= last or np.any(np.diff(rows) <= 0):
            raise AssertionError(f"{table}: partitions share a source row number")
        last = int(rows[-1])
        held.append({name: _concat([p[name] for p in pieces])[order] for name in dtypes})
        held_rows += len(rows)
        while held_rows >= chunk_rows:
            columns = {name: _concat([h[name] for h in held]) for name in dtypes}
            yield _frame(dtypes, {name: values[:chunk_rows] for name, values in columns.items()})
            held_rows -= chunk_rows
            held = [{name: values[chunk_rows:] for name, values in columns.items()}]
    if held_rows:
        yield _frame(dtypes, {name: _concat([h[name] for h in held]) for name in dtypes})


def _empty(dtype: Any) -> Any:
    """A column of `dtype` without rows, as `_PartStream` gives columns (codes for a
    categorical)."""
    if isinstance(dtype, pd.CategoricalDtype):
        return np.zeros(0, dtype=np.int32)
    return pd.array([], dtype=dtype) if isinstance(dtype, ExtensionDtype) else np.zeros(0, dtype)


def _concat(arrays: Sequence[Any]) -> Any:
    """One column's pieces end to end (codes, NumPy or pandas extension arrays)."""
    if len(arrays) == 1:
        return arrays[0]
    if isinstance(arrays[0], np.ndarray):
        return np.concatenate(arrays)
    return type(arrays[0])._concat_same_type(arrays)


def _frame(dtypes: Mapping[str, Any], columns: Mapping[str, Any]) -> pd.DataFrame:
    """A frame of the gathered dtypes from its columns (a categorical's as codes)."""
    data = {
        name: pd.Categorical.from_codes(values, dtype=dtypes[name], validate=False)
        if isinstance(dtypes[name], pd.CategoricalDtype)
        else values
        for name, values in columns.items()
    }
    n = len(next(iter(columns.values()))) if columns else 0
    return pd.DataFrame(data, index=pd.RangeIndex(n))


def _gathered_dtypes(
    table: str, streams: Sequence[_PartStream], used: Mapping[str, set[str]]
) -> dict[str, object]:
    """Each column's dtype in the gathered table: a categorical keeps the labels of the
    partitions (the study's), less a filled column's labels no partition used."""
    dtypes: dict[str, object] = {}
    for name in streams[0].dtypes:
        kinds = []
        for stream in streams:
            dtype = stream.dtypes[name]
            if isinstance(dtype, pd.CategoricalDtype) and name in used:
                kept = [label for label in dtype.categories if label in used[name]]
                dtype = pd.CategoricalDtype(pd.Index(kept, dtype=object), ordered=dtype.ordered)
            kinds.append(dtype)
        if any(kind != kinds[0] for kind in kinds):
            found = sorted({str(kind) for kind in kinds})
            raise AssertionError(f"{table}.{name}: partitions differ in dtype or labels ({found})")
        dtypes[name] = kinds[0]
    return dtypes


class _PartStream:
    """One partition's accepted rows of a table, read from its file `batch_rows` at a time."""

    def __init__(
        self, path: Path, empty_categories: Mapping[str, list[str]], batch_rows: int
    ) -> None:
        handle = pq.ParquetFile(path)
        self._batches = handle.iter_batches(batch_size=batch_rows, use_threads=False)
        # the dtypes pandas reads the file with; a categorical's labels are its dictionary
        dtypes = handle.schema_arrow.empty_table().to_pandas().dtypes.to_dict()
        dtypes.pop(ROW)
        self.batch: pa.RecordBatch | None = None
        self.numbers = np.zeros(0, dtype=np.int64)
        self.start = 0
        self.last_read = _BEFORE_FIRST
        self.labels: dict[str, pa.Array] = {}  # each categorical's dictionary
        self._next_batch()
        for name, dtype in dtypes.items():
            if not isinstance(dtype, pd.CategoricalDtype):
                continue
            if self.batch is not None:
                self.labels[name] = self.batch.column(name).dictionary
            else:  # an empty Parquet column forgets its labels: `write_part` kept them
                self.labels[name] = pa.array(empty_categories.get(name, []), pa.string())
            categories = pd.Index(self.labels[name].to_pylist(), dtype=object)
            dtypes[name] = pd.CategoricalDtype(categories, ordered=dtype.ordered)
        self.dtypes: dict[str, object] = dtypes
        self._recode: dict[str, np.ndarray] = {}
        self._out: dict[str, Any] = {}

    def recode_to(self, dtypes: Mapping[str, object]) -> None:
        """Give the rows taken the gathered `dtypes`: a categorical's codes map to its labels."""
        self._out = dict(dtypes)
        for name in self.labels:
            own = self.dtypes[name].categories  # type: ignore[attr-defined]
            codes = dtypes[name].categories.get_indexer(own)  # type: ignore[attr-defined]
            self._recode[name] = np.append(codes, -1).astype(np.int32)  # code -1 stays empty

    def take_through(self, bound: int) -> tuple[dict[str, Any], np.ndarray]:
        """The columns of the rows not yet taken whose row numbers are at most `bound` (a
        categorical's as codes of the gathered labels), and their row numbers."""
        assert self.batch is not None
        stop = int(np.searchsorted(self.numbers, bound, side="right"))
        rows = self.batch.slice(self.start, stop - self.start)
        numbers = self.numbers[self.start : stop]
        self.start = stop
        if stop == len(self.numbers):
            self._next_batch()
        return {name: self._column(rows.column(name), name) for name in self._out}, numbers

    def _column(self, column: pa.Array, name: str) -> Any:
        dtype = self._out[name]
        if name in self._recode:
            codes = pc.fill_null(column.indices, -1).to_numpy(zero_copy_only=False)
            return self._recode[name][codes]
        if isinstance(dtype, ExtensionDtype):
            return dtype.__from_arrow__(column)
        return column.to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    def _next_batch(self) -> None:
        """Read the next batch with rows, checking its rows continue the source order and its
        labels are the partition's."""
        self.batch, self.start = None, 0
        for batch in self._batches:
            if batch.num_rows == 0:
                continue
            numbers = batch.column(ROW).to_numpy().astype(np.int64, copy=False)
            if numbers[0] <= self.last_read or np.any(np.diff(numbers) <= 0):
                raise AssertionError("a partition's rows are not in ascending source order")
            for name, labels in self.labels.items():
                if not batch.column(name).dictionary.equals(labels):
                    raise AssertionError(f"{name}: a partition's labels differ between batches")
            self.batch, self.numbers, self.last_read = batch, numbers, int(numbers[-1])
            return


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
    kept), so `gather_parts` holds one table at a time (`write_gathered` not even one)."""

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
