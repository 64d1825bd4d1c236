"""Reading one stage's outputs as the next stage's inputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    """
    frame = pd.read_parquet(
        path, columns=list(columns) if columns is not None else None, filters=filters
    )
    if filters:
        frame = frame.reset_index(drop=True)
        for name in frame.columns:
            if isinstance(frame[name].dtype, pd.CategoricalDtype):
                frame[name] = frame[name].cat.remove_unused_categories()
    return frame if categorical else plain_text(frame)


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
