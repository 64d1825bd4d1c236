"""Reading one stage's outputs as the next stage's inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def read_validated(
    path: str | Path,
    *,
    categorical: bool = False,
    columns: Sequence[str] | None = None,
    filters: list[tuple[str, str, Any]] | None = None,
) -> pd.DataFrame:
    """A table written by an earlier stage, with text columns as plain strings.

    Validated tables hold text as categories on disk (small files, fast reads); later stages
    compute with ordinary string columns, so nothing downstream trips over unused categories.
    `categorical=True` keeps the categories, for code built on them (scoring tens of millions
    of item rows). `columns` and `filters` (pyarrow's row filters, e.g.
    ``[("instrument", "==", "gas")]``) read only part of the table, row group by row group.

    The table is read a column at a time, so it is held once, not once as Arrow and once as
    pandas (a session panel of ten million rows peaks at 2.8 GB instead of 5.3 GB).
    """
    if filters:
        frame = pd.read_parquet(
            path, columns=list(columns) if columns is not None else None, filters=filters
        ).reset_index(drop=True)
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.CategoricalDtype):
                frame[name] = frame[name].cat.remove_unused_categories()
        return frame if categorical else plain_text(frame)
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    names = list(columns) if columns is not None else _data_columns(source)
    read = {}
    for name in names:
        table = source.read(columns=[name], use_pandas_metadata=True)
        column = table.to_pandas(self_destruct=True)[name]
        del table
        read[name] = column if categorical else _plain_column(column)
    return pd.DataFrame(read, copy=False)


def _data_columns(source: Any) -> list[str]:
    """The columns of a Parquet file's table, without a stored pandas index."""
    index = set(source.schema_arrow.pandas_metadata.get("index_columns", []) or [])
    index = {name for name in index if isinstance(name, str)}
    return [name for name in source.schema_arrow.names if name not in index]


def _plain_column(column: pd.Series) -> pd.Series:
    """A category column as plain strings (None where empty); any other column as it is."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        return column
    lookup = np.empty(len(column.cat.categories) + 1, dtype=object)
    lookup[:-1] = column.cat.categories.to_numpy(dtype=object)
    lookup[-1] = None  # code -1: empty
    return pd.Series(lookup[column.cat.codes.to_numpy()], name=column.name, dtype=object)


def plain_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its category columns as plain strings (None where empty), in place."""
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(object).where(frame[name].notna(), None)
    return frame


def table_rows(path: str | Path) -> int:
    """The number of rows of a table an earlier stage wrote, from its Parquet footer (the
    table itself is not read)."""
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)
