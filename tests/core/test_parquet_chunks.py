"""A Parquet file written in chunks has the bytes of the same frame written whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from accord.core.io import PARQUET_ROW_GROUP, parquet_chunks, write_parquet

METADATA = {"contract_version": "1"}


def _frame(n: int, seed: int = 1) -> pd.DataFrame:
    """Every dtype a validated table has: categoricals (one with a label no row uses),
    nullable integers, floats and booleans, each with empty cells."""
    rng = np.random.default_rng(seed)
    labels = pd.Index(["C3", "C1", "C2", "unused"], dtype=object)
    codes = rng.integers(-1, 3, size=n)  # -1: an empty cell
    sessions = pd.array(rng.integers(0, 20, size=n), dtype="Int64")
    sessions[rng.random(n) < 0.1] = pd.NA
    values = pd.array(rng.normal(size=n), dtype="Float64")
    values[rng.random(n) < 0.1] = pd.NA
    flags = pd.array(rng.random(n) < 0.5, dtype="boolean")
    flags[rng.random(n) < 0.1] = pd.NA
    return pd.DataFrame(
        {
            "client_id": pd.Categorical.from_codes(codes, categories=labels),
            "session_number": sessions,
            "value": values,
            "homework_assigned": flags,
            "weight": rng.random(n),
        }
    )


def _chunked(path: Path, frame: pd.DataFrame, sizes: list[int], row_group_size: int) -> None:
    with parquet_chunks(path, METADATA, row_group_size=row_group_size) as out:
        start = 0
        for size in sizes:
            out.append(frame.iloc[start : start + size])
            start += size
        out.append(frame.iloc[start:])


def test_the_row_group_size_is_pyarrows_default(tmp_path: Path) -> None:
    # pq.write_table without row_group_size cuts 1024 * 1024 + 1 rows after 1024 * 1024
    table = pa.table({"x": np.zeros(1024 * 1024 + 1, dtype=np.int8)})
    pq.write_table(table, tmp_path / "default.parquet")
    meta = pq.ParquetFile(tmp_path / "default.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [PARQUET_ROW_GROUP, 1] == [1_048_576, 1]


@pytest.mark.parametrize(
    ("sizes", "row_group_size"),
    [
        ([0, 1, 7, 300, 92, 1, 299], 100),  # row groups cut inside and across chunks
        ([100, 100, 100], 100),  # chunks that are row groups
        ([999], 1000),  # one row group, the rest a second chunk of one row
        ([250, 250], 10_000),  # a row group larger than the table
    ],
)
def test_chunks_give_the_bytes_of_the_whole(
    tmp_path: Path, sizes: list[int], row_group_size: int
) -> None:
    frame = _frame(1000)
    write_parquet(tmp_path / "whole.parquet", frame, METADATA, row_group_size=row_group_size)
    _chunked(tmp_path / "chunks.parquet", frame, sizes, row_group_size)
    whole = (tmp_path / "whole.parquet").read_bytes()
    assert (tmp_path / "chunks.parquet").read_bytes() == whole
    rows = pq.ParquetFile(tmp_path / "chunks.parquet").metadata
    # 1000 rows in groups of 100 are 10 groups; in groups of 1000 or more, one
    assert rows.num_row_groups == (10 if row_group_size == 100 else 1)
    back = pd.read_parquet(tmp_path / "chunks.parquet")
    assert list(back["client_id"].cat.categories) == ["C3", "C1", "C2", "unused"]


def test_a_frame_without_rows(tmp_path: Path) -> None:
    frame = _frame(0)
    write_parquet(tmp_path / "whole.parquet", frame, METADATA)
    _chunked(tmp_path / "chunks.parquet", frame, [], PARQUET_ROW_GROUP)
    assert (tmp_path / "chunks.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "chunks.parquet").metadata.num_rows == 0


def test_the_default_row_groups_of_a_large_frame(tmp_path: Path) -> None:
    frame = _frame(2_500_000, seed=2)
    write_parquet(tmp_path / "whole.parquet", frame, METADATA)
    _chunked(tmp_path / "chunks.parquet", frame, [333_333] * 7, PARQUET_ROW_GROUP)
    assert (tmp_path / "chunks.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    meta = pq.ParquetFile(tmp_path / "chunks.parquet").metadata
    # 2,500,000 = 2 x 1,048,576 + 402,848
    assert [meta.row_group(i).num_rows for i in range(3)] == [1_048_576, 1_048_576, 402_848]


def test_a_chunk_with_other_labels_is_refused_and_nothing_written(tmp_path: Path) -> None:
    frame = _frame(20)
    other = frame.iloc[10:].copy()
    other["client_id"] = other["client_id"].cat.remove_categories(["unused"])
    refused = pytest.raises(ValueError, match="differ from the first chunk")
    with refused, parquet_chunks(tmp_path / "out.parquet", METADATA, row_group_size=5) as out:
        out.append(frame.iloc[:10])
        out.append(other)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_block_leaves_no_file(tmp_path: Path) -> None:
    failed = pytest.raises(RuntimeError)
    with failed, parquet_chunks(tmp_path / "out.parquet", METADATA, row_group_size=5) as out:
        out.append(_frame(12))
        raise RuntimeError("the disk is full")
    assert list(tmp_path.iterdir()) == []
