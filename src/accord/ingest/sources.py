"""Reading a researcher's own files (CSV, Parquet, Excel, SPSS) as text, with their metadata.

Every source is read into a `SourceFrame`: each cell as text (``None`` for an empty cell), the
value labels the file carries (SPSS value labels, REDCap choices) and which cells held a
user-defined missing value (SPSS declares 99 or 999 as missing per variable; those cells become
empty here and are counted, never read as scores). Nothing is guessed about types: the data
contract decides what a column is when the mapped tables are validated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import numpy as np
import pandas as pd

from accord.core.errors import StudyError
from accord.core.io import read_table

#: File suffixes a mapped source may have.
SOURCE_SUFFIXES = (".csv", ".parquet", ".xlsx", ".sav", ".zsav")


@dataclass
class SourceFrame:
    """One source table as text, plus what the file says about its values.

    ``frame`` has a RangeIndex; ``first_row_number`` is the number the source itself shows for
    row 0 (data row 1 of a CSV, Parquet, SPSS or REDCap file; in a workbook, the sheet row under
    the header, e.g. 2), so row i is row ``first_row_number + i`` there. ``value_labels`` maps a
    column to {code: label}; ``user_missing`` maps a column to a boolean mask of the cells that
    held a declared missing value (now empty); ``cell_issues`` maps a column to {row: rule} for
    cells that broke a rule of the file's own metadata (now empty).
    """

    frame: pd.DataFrame
    label: str
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    user_missing: dict[str, np.ndarray] = field(default_factory=dict)
    cell_issues: dict[str, dict[int, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    first_row_number: int = 1
    #: REDCap checkbox columns (``field___code``), exported as 0 wherever the form was opened.
    checkboxes: frozenset[str] = frozenset()


def source_label(path: Path, sheet: str | None = None) -> str:
    """How a source is named in messages and in the quarantine: ``file`` or ``file[sheet]``."""
    return f"{path.name}[{sheet}]" if sheet else path.name


def read_source(path: str | Path, sheet: str | None = None, header_row: int = 1) -> SourceFrame:
    """Read a CSV, Parquet, Excel (.xlsx) or SPSS (.sav, .zsav) file as a text `SourceFrame`.

    ``sheet`` names the workbook sheet (Excel only; default: the first sheet) and ``header_row``
    the 1-based row holding the column names (Excel and CSV; rows above it are skipped).
    Raises StudyError naming the file (and sheet) for a file that is missing or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise StudyError(f"{path}: the source file does not exist.", file=path.name)
    if path.is_dir():
        raise StudyError(f"{path.name}: is a folder, not a file.", file=path.name)
    suffix = path.suffix.lower()
    if suffix not in SOURCE_SUFFIXES:
        raise StudyError(
            f"{path.name}: unknown file type; accord reads {', '.join(SOURCE_SUFFIXES)}.",
            file=path.name,
        )
    if sheet is not None and suffix != ".xlsx":
        raise StudyError(f"{path.name}: 'sheet' applies only to Excel workbooks.", file=path.name)
    if suffix == ".xlsx":
        return _read_xlsx(path, sheet, header_row)
    if header_row != 1 and suffix != ".csv":
        raise StudyError(
            f"{path.name}: 'header_row' applies only to CSV files and workbooks.", file=path.name
        )
    if suffix in (".sav", ".zsav"):
        return _read_spss(path)
    if suffix == ".csv" and header_row != 1:
        return _read_csv_below(path, header_row)
    frame, notes = read_table(path)
    return SourceFrame(_as_text(frame), source_label(path), notes=notes)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical text columns (as `read_table` gives them) to object columns of str/None."""
    out = {}
    for name in frame.columns:
        column = frame[name]
        values = column.astype(object).to_numpy()
        out[str(name)] = np.where(pd.isna(values), None, values)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame)), dtype=object)


def read_csv_rows(path: Path, header_row: int = 1) -> list[list[str]]:
    """The rows of a CSV file from `header_row` on, as lists of text (header first)."""
    import csv
    import io

    from accord.core.io import compressed_error, file_fault

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise file_fault(path, exc) from None
    compressed = compressed_error(path, data[:8])
    if compressed is not None:
        raise compressed
    try:
        lines = data.decode("utf-8-sig").splitlines(keepends=True)
    except UnicodeDecodeError:
        raise StudyError(f"{path.name}: the file is not valid UTF-8.", file=path.name) from None
    if len(lines) < header_row:
        raise StudyError(
            f"{path.name}: header_row {header_row} is past the end of the file.", file=path.name
        )
    return list(csv.reader(io.StringIO("".join(lines[header_row - 1 :]))))


def frame_from_rows(label: str, rows: list[list[object]]) -> pd.DataFrame:
    """A text frame from rows of cells (header first); the header must be complete, unique."""
    return _frame_from_rows(label, rows)


def _read_csv_below(path: Path, header_row: int) -> SourceFrame:
    rows = read_csv_rows(path, header_row)
    return SourceFrame(_frame_from_rows(path.name, rows), source_label(path))


def replace_missing_codes(source: SourceFrame, codes: Sequence[object]) -> None:
    """Empty the cells holding one of the study's missing-value codes; remember which."""
    if not codes:
        return
    texts = {str(code).strip() for code in codes}
    numbers = set()
    for code in codes:
        try:
            numbers.add(float(code))
        except (TypeError, ValueError):
            continue
    for name in source.frame.columns:
        values = source.frame[name].to_numpy(dtype=object)
        hit = np.array([v is not None and _is_code(v, texts, numbers) for v in values], bool)
        if hit.any():
            source.frame[name] = np.where(hit, None, values)
            previous = source.user_missing.get(name)
            source.user_missing[name] = hit if previous is None else previous | hit


def _is_code(value: str, texts: set[str], numbers: set[float]) -> bool:
    if value.strip() in texts:
        return True
    if not numbers:
        return False
    try:
        return float(value) in numbers
    except ValueError:
        return False


def _frame_from_rows(label: str, rows: list[list[object]]) -> pd.DataFrame:
    header = ["" if cell is None else str(cell).strip() for cell in rows[0]]
    while header and header[-1] == "":
        header.pop()
    if not header:
        raise StudyError(f"{label}: the header row is empty.", file=label)
    if "" in header:
        raise StudyError(
            f"{label}: the header row has an empty name in column {header.index('') + 1}.",
            file=label,
        )
    dupes = sorted({name for name in header if header.count(name) > 1})
    if dupes:
        raise StudyError(
            f"{label}: the header repeats column(s) {', '.join(dupes)}.",
            file=label,
            column=dupes[0],
        )
    body = rows[1:]
    # Trailing blank rows are formatting, not data; blank rows inside the data stay (and fail
    # validation with their row number) so nothing is dropped unseen.
    while body and all(_cell_text(cell) is None for cell in body[-1]):
        body.pop()
    data = {
        name: [_cell_text(row[i]) if i < len(row) else None for row in body]
        for i, name in enumerate(header)
    }
    return pd.DataFrame(data, index=pd.RangeIndex(len(body)), dtype=object)


def _cell_text(value: object) -> str | None:
    """A cell as text: whole numbers without a decimal point, dates in ISO form."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        # Kept as text so the identifier guard sees a calendar date for what it is.
        return value.isoformat()
    text = str(value).strip()
    return text or None


def count_rows(path: str | Path) -> int | None:
    """The number of data rows in a source, read cheaply (a line count for CSV, the file's own
    metadata otherwise); None for a file that is missing or of another kind.

    A size hint for planning jobs, not a count to report: a CSV cell holding a line break
    counts twice, and a workbook's count includes blank rows below the data.
    """
    path = Path(path)
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        lines, last = 0, b"\n"
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                lines, last = lines + block.count(b"\n"), block[-1:]
        return max(lines + (last != b"\n") - 1, 0)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if suffix in (".sav", ".zsav"):
        import pyreadstat

        _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
        return None if meta.number_rows is None else int(meta.number_rows)
    if suffix == ".xlsx":
        import openpyxl

        book = openpyxl.load_workbook(path, read_only=True)
        try:
            return max(int(book[book.sheetnames[0]].max_row or 0) - 1, 0)
        finally:
            book.close()
    return None


def _read_xlsx(path: Path, sheet: str | None, header_row: int) -> SourceFrame:
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a damaged or foreign file
        raise StudyError(f"{path.name}: the file cannot be read as an Excel workbook.") from None
    try:
        names = book.sheetnames
        if sheet is None:
            sheet = names[0]
        elif sheet not in names:
            raise StudyError(
                f"{path.name}: there is no sheet '{sheet}' (sheets: {', '.join(names)}).",
                file=path.name,
            )
        rows = [list(row) for row in book[sheet].iter_rows(values_only=True)]
    finally:
        book.close()
    label = source_label(path, sheet)
    if len(rows) < header_row:
        raise StudyError(
            f"{label}: header_row {header_row} is past the last row of the sheet.", file=label
        )
    # Quarantined rows are named by the row number Excel shows beside them.
    return SourceFrame(
        _frame_from_rows(label, rows[header_row - 1 :]), label, first_row_number=header_row + 1
    )


def _read_spss(path: Path) -> SourceFrame:
    import pyreadstat

    try:
        frame, meta = pyreadstat.read_sav(str(path), user_missing=True)
    except Exception:  # pyreadstat raises its own error types for unreadable files
        raise StudyError(f"{path.name}: the file cannot be read as SPSS.", file=path.name) from None
    label = source_label(path)
    missing = _spss_missing(frame, meta.missing_ranges or {}, meta.missing_user_values or {})
    out = {}
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=object)
        text = [_cell_text(v) for v in values]
        mask = missing.get(name)
        if mask is not None:
            text = [None if hit else t for t, hit in zip(text, mask, strict=True)]
        out[name] = text
    labels = {
        name: {_cell_text(code): str(text) for code, text in mapping.items()}
        for name, mapping in (meta.variable_value_labels or {}).items()
    }
    return SourceFrame(
        pd.DataFrame(out, index=pd.RangeIndex(len(frame)), dtype=object),
        label,
        value_labels={k: {c: t for c, t in v.items() if c is not None} for k, v in labels.items()},
        user_missing={name: mask for name, mask in missing.items() if mask.any()},
    )


def _spss_missing(
    frame: pd.DataFrame, ranges: Mapping[str, list], user_values: Mapping[str, list]
) -> dict[str, np.ndarray]:
    """Cells holding a user-defined missing value (discrete values or a lo..hi range)."""
    masks: dict[str, np.ndarray] = {}
    for name, spans in ranges.items():
        if name not in frame:
            continue
        column = frame[name]
        mask = np.zeros(len(column), dtype=bool)
        numeric = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        for span in spans:
            lo, hi = span["lo"], span["hi"]
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)):
                mask |= (numeric >= lo) & (numeric <= hi)
            else:
                mask |= (column.astype(object) == lo).to_numpy(dtype=bool)
        masks[name] = mask
    for name, values in user_values.items():
        # With user_missing=True, pyreadstat also lists SAS/Stata-style special values here.
        if name in frame and name not in masks:
            masks[name] = frame[name].isin(values).to_numpy(dtype=bool)
    return masks
