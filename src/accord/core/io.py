"""Reading study tables and writing outputs: the one place files are opened.

Every input is read as text first (so nothing is guessed before the contract says what a column
is) and dictionary-encoded, which keeps tens of millions of rows over few distinct labels small.
Every output is written atomically (a temporary file in the same folder, then a rename) and
deterministically, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from accord.core.errors import StudyError
from accord.core.identifiers import looks_identifying, shown_column, shown_file

TABLE_SUFFIXES = (".csv", ".parquet")
_BOM = b"\xef\xbb\xbf"
_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}
#: The table a file holds, read from the end of its name (clients.csv, site2_sessions.csv).
_TABLE_IN_NAME = re.compile(r"(clients|sessions|measures|goals)$", re.IGNORECASE)


def shown_name(path: str | Path) -> str:
    """A file's name as printed in a message or written to an output: the name itself, or
    "the clients file (name withheld)" when it looks identifying (Goldberg_Jane_clients.csv),
    as column headers are withheld (`accord.core.identifiers.shown_file`)."""
    name = Path(path).name
    table = _TABLE_IN_NAME.search(name.split(".")[0])
    return shown_file(name, table.group(1).lower() if table else "input")


def find_table(folder: str | Path, table: str) -> Path | None:
    """The file holding `table` in a study folder (CSV or Parquet), or None if there is none."""
    folder = Path(folder)
    found = [folder / f"{table}{suffix}" for suffix in TABLE_SUFFIXES]
    found = [path for path in found if path.exists()]
    if len(found) > 1:
        names = " and ".join(path.name for path in found)
        where = "the study folder (name withheld)" if looks_identifying(folder.name) else folder
        raise StudyError(f"{where}: both {names} exist; keep one of them.", file=str(where))
    return found[0] if found else None


def read_table(path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV or Parquet table with every column as a categorical of text labels.

    Returns the frame (a RangeIndex: row i is data row i + 1 of the file) and notes about how the
    file was read (a delimiter other than a comma, say). Raises StudyError, naming the file, for
    a file that cannot be read as a table (a folder, a file without read permission, a
    compressed file).
    """
    path = Path(path)
    if path.is_dir():
        raise file_fault(path, IsADirectoryError(errno.EISDIR, "Is a directory", str(path)))
    if path.suffix == ".parquet":
        return _read_parquet(path), []
    return _read_csv(path)


def describe_os_error(exc: OSError) -> str:
    """What went wrong opening, reading or writing a file, in words (no traceback)."""
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(exc, PermissionError):
        return "permission denied (check that the file can be read and its folder written)"
    if exc.errno == errno.ENOSPC:
        return "the disk is full (no space left on device)"
    if exc.errno == errno.EDQUOT:
        return "the disk quota is exceeded"
    if isinstance(exc, NotADirectoryError):
        return "a part of the path is a file, not a folder"
    if isinstance(exc, FileNotFoundError):
        return "does not exist"
    return f"cannot be read or written ({exc.strerror or type(exc).__name__})"


def file_fault(path: Path, exc: OSError) -> StudyError:
    """A one-line StudyError naming `path` for a file that cannot be opened or read."""
    return StudyError(f"{shown_name(path)}: {describe_os_error(exc)}.", file=shown_name(path))


_COMPRESSED = {
    b"\x1f\x8b": "gzip-compressed",
    b"PK\x03\x04": "a ZIP archive (or an Excel workbook)",
    b"BZh": "bzip2-compressed",
    b"\xfd7zXZ\x00": "xz-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
}


def compressed_error(path: Path, head: bytes) -> StudyError | None:
    """A StudyError for a text file that is really compressed (by its first bytes), else None."""
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            return StudyError(
                f"{shown_name(path)}: the file is {kind}, not plain text; decompress it "
                "(e.g. gunzip) and give the .csv it holds.",
                file=shown_name(path),
            )
    return None


def _read_csv(path: Path) -> tuple[pd.DataFrame, list[str]]:
    options, notes = _csv_options(path)
    try:
        table = pacsv.read_csv(path, **options)
    except pa.ArrowInvalid as exc:
        raise _parse_error(path, exc) from None
    return _to_categorical_frame(table), notes


def stream_table(path: str | Path) -> tuple[Iterator[pa.RecordBatch], list[str]]:
    """Read a CSV or Parquet table in batches of text columns, never the whole file at once.

    The values are exactly those `read_table` gives (the same parsing options); returns the
    batches and the notes about how the file was read. Raises StudyError as `read_table` does.
    """
    path = Path(path)
    if path.is_dir():
        raise file_fault(path, IsADirectoryError(errno.EISDIR, "Is a directory", str(path)))
    if path.suffix == ".parquet":
        return _parquet_batches(path), []
    options, notes = _csv_options(path)
    return _csv_batches(path, options), notes


def _csv_batches(path: Path, options: dict[str, Any]) -> Iterator[pa.RecordBatch]:
    try:
        reader = pacsv.open_csv(path, **options)
        empty = True
        for batch in reader:
            empty = False
            yield batch
        if empty:  # a header without rows: its columns still count
            yield pa.RecordBatch.from_pylist([], schema=reader.schema)
    except pa.ArrowInvalid as exc:
        raise _parse_error(path, exc) from None


def _parquet_batches(path: Path) -> Iterator[pa.RecordBatch]:
    try:
        handle = pq.ParquetFile(path)
        names = handle.schema_arrow.names
        empty = True
        for batch in handle.iter_batches(batch_size=1 << 20):
            empty = False
            yield pa.record_batch([_as_string(column) for column in batch.columns], names=names)
        if empty:
            text = pa.schema([(name, pa.string()) for name in names])
            yield pa.RecordBatch.from_pylist([], schema=text)
    except (pa.ArrowInvalid, OSError):
        raise StudyError(
            f"{path.name}: the file cannot be read as Parquet.", file=path.name
        ) from None


def _csv_options(path: Path) -> tuple[dict[str, Any], list[str]]:
    """pyarrow's read, parse and convert options for a study CSV (every column as text),
    after the checks that need only the file's first bytes; and the notes on its reading."""
    notes: list[str] = []
    try:
        with path.open("rb") as handle:
            head = handle.read(64 * 1024)
    except OSError as exc:
        raise file_fault(path, exc) from None
    compressed = compressed_error(path, head)
    if compressed is not None:
        raise compressed
    if not head.strip(_BOM + b" \r\n\t"):
        raise StudyError(
            f"{shown_name(path)}: the file is empty (not even a header row).",
            file=shown_name(path),
        )
    try:
        first_line = head.removeprefix(_BOM).splitlines()[0].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _encoding_error(path, exc) from None
    delimiter = _sniff_delimiter(first_line)
    if delimiter != ",":
        notes.append(
            f"{shown_name(path)}: columns are separated by {_DELIMITERS[delimiter]}, not commas; "
            "read accordingly."
        )
    header = next(csv.reader([first_line], delimiter=delimiter))
    if len(set(header)) != len(header):
        dupes = sorted(
            {shown_column(name, k + 1) for k, name in enumerate(header) if header.count(name) > 1}
        )
        raise StudyError(
            f"{shown_name(path)}: the header repeats column(s) {', '.join(dupes)}.",
            file=shown_name(path),
            column=dupes[0],
        )
    convert = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in header},
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )
    options = {
        "read_options": pacsv.ReadOptions(encoding="utf8", block_size=1 << 24),
        "parse_options": pacsv.ParseOptions(delimiter=delimiter),
        "convert_options": convert,
    }
    return options, notes


def _sniff_delimiter(header_line: str) -> str:
    if "," in header_line:
        return ","
    for candidate in _DELIMITERS:
        if candidate in header_line:
            return candidate
    return ","


def _encoding_error(path: Path, exc: UnicodeDecodeError) -> StudyError:
    return StudyError(
        f"{shown_name(path)}: the file is not valid UTF-8 (an undecodable byte at offset "
        f"{exc.start}). Save it as 'CSV UTF-8' (in Excel: Save As > CSV UTF-8) and run again.",
        file=shown_name(path),
    )


def _parse_error(path: Path, exc: pa.ArrowInvalid) -> StudyError:
    message = str(exc)
    if "UTF8" in message.upper() or "utf-8" in message.lower():
        return StudyError(
            f"{shown_name(path)}: the file is not valid UTF-8. Save it as 'CSV UTF-8' and run "
            "again.",
            file=shown_name(path),
        )
    if "Expected" in message and "columns" in message:
        # Arrow quotes the offending row's text; keep only the counts, never the values.
        detail = message.split(":")[0]
        return StudyError(
            f"{shown_name(path)}: a row has a different number of fields than the header "
            f"({detail}). Check for unquoted separators inside values.",
            file=shown_name(path),
        )
    return StudyError(f"{shown_name(path)}: the file cannot be read as CSV.", file=shown_name(path))


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError):
        raise StudyError(
            f"{shown_name(path)}: the file cannot be read as Parquet.", file=shown_name(path)
        ) from None
    columns = [_as_string(column) for column in table.columns]
    return _to_categorical_frame(pa.table(columns, names=table.column_names))


def _as_string(column: Any) -> Any:
    """A Parquet column as text, as `read_table` reads it."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.cast(pa.string())


def _to_categorical_frame(table: pa.Table) -> pd.DataFrame:
    data = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        encoded = column.dictionary_encode().combine_chunks()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        labels = encoded.dictionary.to_pylist()
        data[name] = pd.Categorical.from_codes(
            codes, categories=pd.Index(labels, dtype=object), validate=False
        )
    return pd.DataFrame(data, index=pd.RangeIndex(table.num_rows))


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes the file private; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def staged_folder(folder: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside `folder` to write a set of outputs into.

    Only when the block succeeds is every file written there moved into `folder` (same
    layout); if it fails (a full disk, say), the staging folder is removed and `folder` is
    left as it was, so a set of outputs is never left half written.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        yield stage
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            target = folder / path.relative_to(stage)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """JSON with sorted keys and a trailing newline: stable bytes for the same content."""
    write_text_atomic(
        path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n"
    )


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def write_csv(path: str | Path, frame: pd.DataFrame) -> None:
    """CSV with a fixed float format and line ending, so bytes are reproducible."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.10g")


#: Rows per row group of every Parquet output: pyarrow's default for `pq.write_table` (1024 *
#: 1024 rows in pyarrow 26), named here so a file written in chunks (`ParquetChunks`) has the
#: row groups of the same file written whole, whatever a later pyarrow's default.
PARQUET_ROW_GROUP = 1024 * 1024
#: The writer settings of every Parquet output, whole or in chunks.
_PARQUET_SETTINGS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": True,
    "write_statistics": True,
}


def parquet_table(frame: pd.DataFrame, metadata: dict | None = None) -> pa.Table:
    """The Arrow table `write_parquet` writes for `frame`: no index, and `metadata` stored as
    JSON under the key ``accord`` of the schema metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {b"accord": json.dumps(metadata, sort_keys=True).encode()} if metadata else {}
    return table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})


def write_parquet(
    path: str | Path,
    frame: pd.DataFrame,
    metadata: dict | None = None,
    *,
    row_group_size: int = PARQUET_ROW_GROUP,
) -> None:
    """Parquet without pandas' index and with fixed writer settings, plus optional metadata.

    `metadata` is stored as JSON under the key ``accord`` in the file's schema metadata.
    `row_group_size` is for tests of `ParquetChunks` that span row groups in few rows.
    """
    table = parquet_table(frame, metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, row_group_size=row_group_size, **_PARQUET_SETTINGS)


class ParquetChunks:
    """A Parquet file written from a frame's rows given in order, in chunks of any size: the
    bytes `write_parquet` writes for the whole frame, holding one row group at a time.

    Every chunk has the dtypes of the whole frame (a categorical its categories); rows are
    held until a row group of `row_group_size` is full, then written as `write_parquet` would
    write it. The first chunk (it may have no rows) fixes the schema. Use `parquet_chunks`,
    which writes atomically.
    """

    def __init__(
        self,
        path: str | Path,
        metadata: dict | None = None,
        *,
        row_group_size: int = PARQUET_ROW_GROUP,
    ) -> None:
        self.path, self.metadata = Path(path), metadata
        self.row_group_size = row_group_size
        self.rows_written = 0
        self._held: list[pd.DataFrame] = []
        self._held_rows = 0
        self._first: pd.DataFrame | None = None
        self._writer: pq.ParquetWriter | None = None

    def append(self, frame: pd.DataFrame) -> None:
        """Add the next rows; write every row group they fill."""
        if self._first is None:
            self._first = frame.iloc[:0]
            schema = parquet_table(self._first, self.metadata).schema
            self._writer = pq.ParquetWriter(self.path, schema, **_PARQUET_SETTINGS)
        if len(frame):
            self._held.append(frame)
            self._held_rows += len(frame)
        while self._held_rows >= self.row_group_size:
            rows = (
                pd.concat(self._held, ignore_index=True) if len(self._held) > 1 else self._held[0]
            )
            self._write(rows.iloc[: self.row_group_size])
            rest = rows.iloc[self.row_group_size :]
            self._held = [rest] if len(rest) else []
            self._held_rows = len(rest)

    def close(self) -> None:
        """Write the last, partial row group (or the empty table of a frame without rows)."""
        if self._first is None:
            raise ValueError("no chunk was given: the file's columns are not known")
        if self._held_rows:
            self._write(pd.concat(self._held, ignore_index=True))
        elif not self.rows_written:  # one row group without rows, as pyarrow writes it
            self._write(self._first)
        self._held, self._held_rows = [], 0
        self.abort()

    def abort(self) -> None:
        """Close the file without writing the rows held."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, rows: pd.DataFrame) -> None:
        table = parquet_table(rows, self.metadata)
        assert self._writer is not None
        if not table.schema.equals(self._writer.schema, check_metadata=True):
            raise ValueError(
                f"a chunk's columns differ from the first chunk's:\n{table.schema}\n"
                f"vs\n{self._writer.schema}"
            )
        self._writer.write_table(table, row_group_size=self.row_group_size)
        self.rows_written += len(rows)


@contextmanager
def parquet_chunks(
    path: str | Path, metadata: dict | None = None, *, row_group_size: int = PARQUET_ROW_GROUP
) -> Iterator[ParquetChunks]:
    """Yield a `ParquetChunks` writing `path`; the file is moved into place (closed, its last
    row group written) only if the block succeeds."""
    with atomic_path(path) as tmp:
        chunks = ParquetChunks(tmp, metadata, row_group_size=row_group_size)
        try:
            yield chunks
        except BaseException:
            chunks.abort()
            raise
        chunks.close()


def read_parquet_metadata(path: str | Path) -> dict:
    """The ``accord`` metadata stored by `write_parquet`, or an empty dict."""
    meta = pq.read_schema(path).metadata or {}
    raw = meta.get(b"accord")
    return json.loads(raw) if raw else {}


def sha256(path: str | Path) -> str:
    """The SHA-256 checksum of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
