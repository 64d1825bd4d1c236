"""A study's own files, through its config's mapping, into the data contract's four tables.

`ingest_study` reads every source a study's ``mapping`` names (or its REDCap export), applies
the table maps, and returns contract-shaped text tables together with everything validation
needs to keep its promise that nothing is dropped unseen: the source row of every output row,
the cells that could not be mapped (ingest issues, quarantined with their reason), the
user-defined missing values that were emptied, and notes on what the mapping left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accord.core import contract
from accord.core.errors import ConfigError, StudyError
from accord.core.identifiers import shown_column
from accord.core.io import TABLE_SUFFIXES, sha256
from accord.ingest.mapping import MappedPart, map_part
from accord.ingest.redcap import read_redcap
from accord.ingest.sources import SourceFrame, count_rows, read_source, replace_missing_codes

FORMATS = ("contract", "mapped", "redcap")
#: Columns a wide row takes from its cells' column names (session and goal tokens).
_TOKEN_COLUMNS = ("session_number", "set_session", "goal_id")


@dataclass
class IngestedTable:
    """One contract table built from one or more sources, and the origin of each row.

    ``source_row`` is each row's number in its source as the source shows it, less one (a
    data row of a CSV, Parquet, SPSS or REDCap file; a sheet row of a workbook)."""

    frame: pd.DataFrame
    source: np.ndarray
    source_row: np.ndarray
    cell_column: np.ndarray
    part: np.ndarray
    parts: list[MappedPart]
    issues: pd.DataFrame

    @property
    def file(self) -> str:
        """The source(s) of the table as named in messages."""
        return " + ".join(dict.fromkeys(p.source for p in self.parts))

    def origin(self, rows: np.ndarray, columns: Sequence[str]) -> np.ndarray:
        """The source column behind each (row, contract column) pair ('' for a constant)."""
        out = np.empty(len(rows), dtype=object)
        for n, (row, column) in enumerate(zip(rows, columns, strict=True)):
            part = self.parts[self.part[row]]
            cells = self.cell_column[row]
            if column in part.wide_targets and cells:
                # A measures row has one cell; a row of another table one per target column.
                pairs = dict(p.split("=", 1) for p in cells.split(";")) if "=" in cells else {}
                if not pairs:
                    out[n] = cells
                else:
                    # A wide row's session and goal come from its cells' column names.
                    first = next(iter(pairs.values()))
                    out[n] = pairs.get(column, first if column in _TOKEN_COLUMNS else "")
            else:
                out[n] = part.column_sources.get(column, "")
        return out


@dataclass
class IngestResult:
    """The contract tables of a mapped study and what happened on the way."""

    tables: dict[str, IngestedTable]
    missing_replaced: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)


def source_files(folder: str | Path, entry: Mapping[str, Any]) -> list[Path]:
    """Every file a study's config reads (its inputs for the workflow), in a stable order."""
    folder = Path(folder)
    kind = entry.get("format", "contract")
    if kind == "redcap":
        redcap = entry.get("redcap") or {}
        names = [redcap.get("records", "records.csv"), redcap.get("dictionary", "dictionary.csv")]
        names += [redcap["events"]] if redcap.get("events") else []
    elif kind == "mapped":
        names = []
        for spec in (entry.get("mapping") or {}).values():
            for part in spec if isinstance(spec, list) else [spec]:
                if isinstance(part, Mapping) and part.get("file"):
                    names.append(str(part["file"]))
    else:
        return []
    return [folder / name for name in dict.fromkeys(names)]


def client_rows(folder: str | Path, entry: Mapping[str, Any]) -> int | None:
    """About how many clients a study has, from its files alone (`count_rows` of its clients
    source: the contract's clients table, the mapped clients file, or the REDCap records, which
    count each event), for sizing jobs before any is run; None when no file tells."""
    folder = Path(folder)
    kind = entry.get("format", "contract")
    if kind == "redcap":
        return count_rows(folder / (entry.get("redcap") or {}).get("records", "records.csv"))
    if kind == "mapped":
        spec = (entry.get("mapping") or {}).get("clients")
        parts = [p for p in (spec if isinstance(spec, list) else [spec]) if isinstance(p, Mapping)]
        counts = [count_rows(folder / str(p["file"])) for p in parts if p.get("file")]
        known = [count for count in counts if count is not None]
        return sum(known) if known else None
    for suffix in TABLE_SUFFIXES:
        count = count_rows(folder / f"clients{suffix}")
        if count is not None:
            return count
    return None


def ingest_study(
    name: str,
    folder: str | Path,
    entry: Mapping[str, Any],
    extra_columns: Mapping[str, Sequence[str]] | None = None,
    acknowledged: Sequence[str] = (),
    missing_codes: Sequence[object] = (),
) -> IngestResult:
    """Read a study declared with ``format: mapped`` or ``format: redcap`` into contract tables.

    ``entry`` is the study's config entry. The study's ``missing_codes`` are emptied in every
    source before mapping, so a coded cell never becomes a row; they are counted with the
    file's own user-defined missing values. Raises ConfigError naming the key for a mapping that
    cannot be applied, and StudyError naming the file, sheet and column for a source that does
    not fit its mapping.
    """

    folder = Path(folder)
    if not folder.is_dir():
        raise StudyError(f"The study folder {folder} does not exist.", file=str(folder))
    kind = entry.get("format", "contract")
    key = f"studies.{name}"
    mapping = entry.get("mapping") or {}
    extra_columns = extra_columns or {}
    for table in mapping:
        if table not in contract.TABLES:
            raise ConfigError(
                f"config key '{key}.mapping.{table}': not a table of the data contract "
                f"({', '.join(contract.TABLES)})."
            )
    for table in contract.REQUIRED_TABLES:
        if table not in mapping:
            raise ConfigError(
                f"config key '{key}.mapping.{table}': is required (a map for {table})."
            )

    sources: dict[tuple, SourceFrame] = {}
    checksums = {path.name: sha256(path) for path in source_files(folder, entry) if path.exists()}
    if kind == "redcap":
        redcap = entry.get("redcap") or {}
        records = folder / redcap.get("records", "records.csv")
        dictionary = folder / redcap.get("dictionary", "dictionary.csv")
        events = folder / redcap["events"] if redcap.get("events") else None
        for path in (records, dictionary, events):
            if path is not None and not path.exists():
                raise StudyError(f"{path}: the REDCap export file does not exist.", file=path.name)
        sources[("redcap",)] = read_redcap(
            records, dictionary, acknowledged, missing_codes, events=events
        )

    tables: dict[str, IngestedTable] = {}
    missing: dict[str, dict[str, int]] = {}
    for table in contract.TABLES:
        if table not in mapping:
            continue
        specs = mapping[table]
        specs = specs if isinstance(specs, list) else [specs]
        parts = []
        for i, spec in enumerate(specs):
            part_key = f"{key}.mapping.{table}" + (f"[{i}]" if len(specs) > 1 else "")
            source = _source(kind, folder, spec, part_key, sources, missing_codes)
            extra = tuple(extra_columns.get(table, ()))
            parts.append(map_part(source, spec, table, part_key, extra, len(specs) == 1))
        tables[table] = _combine(parts)
        missing[table] = {}
        for part in parts:
            for column, n in part.missing_replaced.items():
                missing[table][column] = missing[table].get(column, 0) + n
    notes = _notes(sources, tables)
    return IngestResult(
        tables=tables,
        missing_replaced=missing,
        notes=notes,
        checksums=dict(sorted(checksums.items())),
        source_rows={s.label: len(s.frame) for s in sources.values()},
    )


def _source(
    kind: str,
    folder: Path,
    spec: Mapping[str, Any],
    key: str,
    cache: dict[tuple, SourceFrame],
    missing_codes: Sequence[object],
) -> SourceFrame:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"config key '{key}': must be a table map (file, columns, ...).")
    if kind == "redcap":
        for setting in ("file", "sheet", "header_row"):
            if setting in spec:
                raise ConfigError(
                    f"config key '{key}.{setting}': a REDCap study reads its records export; "
                    "select rows with 'where' (redcap_event_name, redcap_repeat_instrument)."
                )
        return cache[("redcap",)]
    if "file" not in spec:
        raise ConfigError(f"config key '{key}.file': is required (the source file).")
    cache_key = (str(spec["file"]), spec.get("sheet"), int(spec.get("header_row", 1)))
    if cache_key not in cache:
        source = read_source(folder / cache_key[0], sheet=cache_key[1], header_row=cache_key[2])
        replace_missing_codes(source, missing_codes)
        cache[cache_key] = source
    return cache[cache_key]


def _combine(parts: list[MappedPart]) -> IngestedTable:
    frames = [p.frame for p in parts]
    frame = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
    frame = frame.astype(object).where(frame.notna(), None)
    offsets = np.cumsum([0] + [len(p.frame) for p in parts])
    issues = []
    for offset, part in zip(offsets, parts, strict=False):
        if len(part.issues):
            issues.append(part.issues.assign(row=part.issues["row"] + offset))
    combined = (
        pd.concat(issues, ignore_index=True)
        if issues
        else pd.DataFrame({"row": np.array([], dtype=np.int64), "rule": [], "column": []})
    )
    return IngestedTable(
        frame=_categorical(frame),
        source=np.concatenate([np.full(len(p.frame), p.source, dtype=object) for p in parts]),
        source_row=np.concatenate([p.source_row + (p.first_row_number - 1) for p in parts]).astype(
            np.int64
        ),
        cell_column=np.concatenate([p.cell_column for p in parts]),
        part=np.concatenate(
            [np.full(len(p.frame), i, dtype=np.int64) for i, p in enumerate(parts)]
        ),
        parts=parts,
        issues=combined,
    )


def _categorical(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categoricals of labels, the form `accord.core.io.read_table` gives."""
    data = {}
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=object)
        labels = pd.unique(pd.Series([v for v in values if v is not None], dtype=object))
        data[name] = pd.Categorical(values, categories=pd.Index(labels, dtype=object))
    return pd.DataFrame(data, index=pd.RangeIndex(len(frame)))


def _notes(sources: Mapping[tuple, SourceFrame], tables: Mapping[str, IngestedTable]) -> list[str]:
    """What the mapping leaves out of each source: columns and rows no table reads."""
    notes: list[str] = [n for t in tables.values() for p in t.parts for n in p.notes]
    for source in sources.values():
        notes.extend(source.notes)
        parts = [p for t in tables.values() for p in t.parts if p.source == source.label]
        used: set[str] = set()
        selected = np.zeros(len(source.frame), dtype=bool)
        for part in parts:
            used.update(part.column_sources.values())
            used.update(
                c.rpartition("=")[2]
                for cells in part.cell_column
                if cells
                for c in cells.split(";")
            )
            selected[part.rows_selected] = True
        unused = [
            shown_column(c, pos)
            for pos, c in enumerate(source.frame.columns, start=1)
            if c not in used and not _bookkeeping(c)
        ]
        if unused:
            notes.append(
                f"{source.label}: {len(unused)} column(s) not mapped and not carried over: "
                + ", ".join(unused[:12])
                + (" ..." if len(unused) > 12 else "")
            )
        skipped = int((~selected).sum())
        if skipped:
            notes.append(f"{source.label}: {skipped} row(s) not selected by any table map.")
    return notes


def _bookkeeping(column: str) -> bool:
    return column.startswith("redcap_") or column.endswith(("_complete", "_timestamp"))
