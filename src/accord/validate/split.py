"""A large study split into partitions of clients, read in batches, for validation in parallel.

`split_study` streams each input table (pyarrow's streaming CSV reader, or Parquet row
groups), so no table is ever held whole. Every row goes to the partition of its client
(`accord.core.partitions.partition_of`), with its data row number in the file. Cells are
stored as codes into the table's labels in order of first appearance in the file: exactly the
categories `accord.core.io.read_table` gives the whole table, so every partition sees the whole
study's labels and the checks that look at labels (the identifier guard, vocabularies, missing
codes) decide the same in each partition.

The folder written: ``manifest.json`` (files, row counts, notes, checksums), ``labels/<table>.json``
(each column's labels) and ``part_<p>/<table>.parquet`` (the codes, and the row numbers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from accord.core.instruments import Registry
from accord.core.io import atomic_path, sha256, stream_table, write_json
from accord.core.partitions import partition_of
from accord.validate.tables import Inputs, PartResult, StudyInput

ROW = "__row_number__"
MANIFEST = "manifest.json"


class _Labels:
    """One column's labels in order of first appearance, and the code of each."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.labels: list[str] = []

    def encode(self, column: pa.Array) -> np.ndarray:
        """Codes of a batch's cells (-1 for an empty cell), adding labels seen first here."""
        encoded = pc.dictionary_encode(column)
        lookup = []
        for label in encoded.dictionary.to_pylist():
            code = self.codes.get(label)
            if code is None:
                code = self.codes[label] = len(self.labels)
                self.labels.append(label)
            lookup.append(code)
        lookup.append(-1)
        indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
        return np.asarray(lookup, dtype=np.int32)[indices]


def split_study(study: StudyInput, partitions: int, folder: str | Path) -> dict[str, Any]:
    """Split the study's tables into `partitions` partitions of clients under `folder`;
    returns the manifest (also written as ``manifest.json``)."""
    from accord.validate.study import locate_tables

    folder = Path(folder)
    manifest: dict[str, Any] = {"partitions": partitions, "tables": {}, "notes": []}
    manifest["checksums"] = {}
    known: dict[str, int] = {}  # client_id -> partition, shared by the tables
    for table, path in locate_tables(study.path).items():
        batches, notes = stream_table(path)
        manifest["notes"].extend(notes)
        header, rows = _split_table(table, batches, partitions, folder, known)
        manifest["tables"][table] = {"file": path.name, "rows": rows, "columns": header}
        manifest["checksums"][path.name] = sha256(path)
    write_json(folder / MANIFEST, manifest)
    return manifest


def _split_table(
    table: str,
    batches: Iterable[pa.RecordBatch],
    partitions: int,
    folder: Path,
    known: dict[str, int],
) -> tuple[list[str], int]:
    """Write one table's partitions; returns its column names and its number of rows."""
    writers: dict[int, pq.ParquetWriter] = {}
    labels: dict[str, _Labels] = {}
    part_of_client = np.zeros(0, dtype=np.int32)
    header: list[str] = []
    schema: pa.Schema | None = None
    rows = 0
    paths = [folder / f"part_{p}" / f"{table}.parquet" for p in range(partitions)]
    try:
        for batch in batches:
            header = batch.schema.names
            if schema is None:
                fields = [pa.field(name, pa.int32()) for name in header]
                schema = pa.schema([*fields, pa.field(ROW, pa.int64())])
                labels = {name: _Labels() for name in header}
            codes = [labels[name].encode(batch.column(i)) for i, name in enumerate(header)]
            numbers = np.arange(rows + 1, rows + batch.num_rows + 1, dtype=np.int64)
            rows += batch.num_rows
            part = np.zeros(batch.num_rows, dtype=np.int32)
            if "client_id" in labels:
                new = _partitions_of(
                    labels["client_id"].labels[len(part_of_client) :], partitions, known
                )
                part_of_client = np.concatenate([part_of_client, new])
                # an empty client_id (code -1) takes the last slot: partition 0
                part = np.append(part_of_client, 0)[codes[header.index("client_id")]]
            # the batch's rows grouped by partition, in file order within each (one sort,
            # not one pass per partition)
            order = np.argsort(part, kind="stable")
            bounds = np.searchsorted(part[order], np.arange(partitions + 1))
            grouped = [c[order] for c in codes] + [numbers[order]]
            for p in range(partitions):
                start, stop = bounds[p], bounds[p + 1]
                if start == stop:
                    continue
                if p not in writers:
                    paths[p].parent.mkdir(parents=True, exist_ok=True)
                    # a job's intermediate file: fast to write beats small
                    writers[p] = pq.ParquetWriter(paths[p], schema, compression="lz4")
                arrays = [pa.array(column[start:stop]) for column in grouped]
                writers[p].write_table(pa.table(arrays, schema=schema))
    finally:
        for writer in writers.values():
            writer.close()
    if schema is None:  # a header without rows: validation names the fault
        schema = pa.schema([pa.field(ROW, pa.int64())])
    for p, path in enumerate(paths):
        if p not in writers:
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(schema.empty_table(), path)
    _write_labels(folder / "labels" / f"{table}.json", {n: lab.labels for n, lab in labels.items()})
    return header, rows


def _partitions_of(ids: list[str], partitions: int, known: dict[str, int]) -> np.ndarray:
    """The partition of each client_id, hashing only those no earlier table had."""
    new = [label for label in ids if label not in known]
    known.update(zip(new, partition_of(new, partitions).tolist(), strict=True))
    return np.asarray([known[label] for label in ids], dtype=np.int32)


def _write_labels(path: Path, labels: dict[str, list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(labels, ensure_ascii=False), encoding="utf-8")


def read_partition(folder: str | Path, part: int) -> tuple[Inputs, dict[str, int]]:
    """Partition `part` of a split study as validation's inputs, and each table's row count
    in the whole study."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    raw, names, source, row_number, rows = {}, {}, {}, {}, {}
    for table, entry in manifest["tables"].items():
        labels = json.loads((folder / "labels" / f"{table}.json").read_text(encoding="utf-8"))
        data = pq.read_table(folder / f"part_{part}" / f"{table}.parquet")
        columns = {}
        for name in entry["columns"]:
            codes = data.column(name).to_numpy() if data.num_rows else np.zeros(0, np.int32)
            categories = pd.Index(labels.get(name, []), dtype=object)
            columns[name] = pd.Categorical.from_codes(codes, categories=categories, validate=False)
        n = data.num_rows
        raw[table] = pd.DataFrame(columns, index=pd.RangeIndex(n))
        names[table] = entry["file"]
        source[table] = np.full(n, entry["file"], dtype=object)
        row_number[table] = data.column(ROW).to_numpy() if n else np.zeros(0, np.int64)
        rows[table] = entry["rows"]
    inputs = Inputs(
        raw=raw,
        names=names,
        source=source,
        row_number=row_number,
        notes=list(manifest["notes"]),
        checksums=dict(manifest["checksums"]),
    )
    return inputs, rows


def validate_partition(
    study: StudyInput, registry: Registry, folder: str | Path, part: int
) -> PartResult:
    """Validate partition `part` of the study split under `folder` (a `PartResult`)."""
    from accord.validate.study import validate_inputs

    inputs, rows = read_partition(folder, part)
    return validate_inputs(study, inputs, registry, rows=rows)
