"""A table gathered from the partitions' files a batch at a time: the rows in source order,
the study's labels, and the bytes of the table gathered whole."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from accord.core import contract
from accord.core.io import PARQUET_ROW_GROUP, write_parquet
from accord.validate.gather import gather_table, read_part, write_gathered_table, write_part
from accord.validate.tables import PartResult

METADATA = {"contract_version": contract.CONTRACT_VERSION}
CLIENTS = pd.Index([f"C{i:03d}" for i in np.random.default_rng(0).permutation(200)], dtype=object)
RATERS = pd.Index(["client", "therapist", "other"], dtype=object)


def _study(n_rows: int, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    """A measures-like table of `n_rows` source rows, every dtype of a validated table, and
    the source row numbers of its accepted rows (about one row in ten is refused)."""
    rng = np.random.default_rng(seed)
    clients = rng.integers(0, len(CLIENTS), size=n_rows)
    sessions = pd.array(rng.integers(0, 30, size=n_rows), dtype="Int64")
    sessions[rng.random(n_rows) < 0.05] = pd.NA
    values = pd.array(rng.normal(size=n_rows), dtype="Float64")
    values[rng.random(n_rows) < 0.05] = pd.NA
    flags = pd.array(rng.random(n_rows) < 0.3, dtype="boolean")
    flags[rng.random(n_rows) < 0.05] = pd.NA
    whole = pd.DataFrame(
        {
            "client_id": pd.Categorical.from_codes(clients, categories=CLIENTS),
            "session_number": sessions,
            # "other" is used by no row; "therapist" by clients of one partition only
            "rater": pd.Categorical.from_codes(np.zeros(n_rows, dtype=int), categories=RATERS),
            "value": values,
            "goal_review": flags,
        }
    )
    accepted = np.flatnonzero(rng.random(n_rows) >= 0.1) + 1
    return whole, accepted


def _write_parts(
    whole: pd.DataFrame, accepted: np.ndarray, partitions: int, folder: Path, *, only: int = -1
) -> list[Path]:
    """Write each partition of clients as `write_part` does; with `only`, the other
    partitions have no rows of the table."""
    codes = whole["client_id"].cat.codes.to_numpy()
    part_of = codes[accepted - 1] % partitions
    whole = whole.copy()
    therapist = (codes % partitions == 0) & (codes % 7 == 0)
    whole.loc[therapist, "rater"] = "therapist"
    folders = []
    for part in range(partitions):
        rows = accepted[(part_of == part) & (only < 0 or part == only)]
        frame = whole.iloc[rows - 1].reset_index(drop=True)
        used = sorted(set(frame["rater"].astype(object)))
        tally = {"table_order": ["measures"], "used_labels": {"measures": {"rater": used}}}
        folders.append(folder / f"part_{part}")
        result = PartResult({"measures": frame}, {"measures": rows}, pd.DataFrame(), tally)
        write_part(result, folders[-1])
    return folders


def _gather_both(folders: list[Path], out: Path, **sizes: int) -> tuple[bytes, bytes]:
    """The table gathered a batch at a time, and gathered whole and written."""
    parts = [read_part(folder) for folder in folders]
    tallies = [part.tally for part in parts]
    files = [folder / "measures.parquet" for folder in folders]
    write_gathered_table(out / "stream.parquet", "measures", files, tallies, **sizes)
    rows = sizes.get("row_group_size", PARQUET_ROW_GROUP)
    frame = gather_table("measures", parts)
    write_parquet(out / "whole.parquet", frame, METADATA, row_group_size=rows)
    return (out / "stream.parquet").read_bytes(), (out / "whole.parquet").read_bytes()


@pytest.mark.parametrize("partitions", [1, 3, 7])
def test_rows_in_source_order_with_the_studys_labels(partitions: int, tmp_path: Path) -> None:
    whole, accepted = _study(3000)
    folders = _write_parts(whole, accepted, partitions, tmp_path)
    stream, in_memory = _gather_both(folders, tmp_path, batch_rows=17, row_group_size=100)
    assert stream == in_memory
    got = pd.read_parquet(tmp_path / "stream.parquet")
    # the accepted rows in source order, whatever partition each was in
    expected = whole.iloc[accepted - 1].reset_index(drop=True)
    pd.testing.assert_series_equal(got["value"], expected["value"])
    pd.testing.assert_series_equal(got["session_number"], expected["session_number"])
    pd.testing.assert_series_equal(got["goal_review"], expected["goal_review"])
    assert got["client_id"].astype(object).tolist() == expected["client_id"].astype(object).tolist()
    # every client's label, in the study's order, used in this table or not
    assert got["client_id"].cat.categories.equals(CLIENTS)
    # rater: "therapist" used in partition 0 only is kept; "other", used nowhere, is not
    assert list(got["rater"].cat.categories) == ["client", "therapist"]
    meta = pq.ParquetFile(tmp_path / "stream.parquet").metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    n = len(accepted)
    assert sizes == [100] * (n // 100) + ([n % 100] if n % 100 else [])


def test_a_table_in_some_partitions_only(tmp_path: Path) -> None:
    whole, accepted = _study(1500)
    folders = _write_parts(whole, accepted, 4, tmp_path, only=2)
    assert [read_part(f).tally["empty_categories"] != {} for f in folders] == [
        True,
        True,
        False,
        True,
    ]
    stream, in_memory = _gather_both(folders, tmp_path, batch_rows=50, row_group_size=64)
    assert stream == in_memory
    got = pd.read_parquet(tmp_path / "stream.parquet")
    client = whole["client_id"].cat.codes.to_numpy()[accepted - 1]
    assert len(got) == np.count_nonzero(client % 4 == 2) > 0
    assert got["client_id"].cat.categories.equals(CLIENTS)


def test_a_table_without_rows(tmp_path: Path) -> None:
    whole, _ = _study(10)
    folders = _write_parts(whole, np.zeros(0, dtype=np.int64), 3, tmp_path)
    stream, in_memory = _gather_both(folders, tmp_path)
    assert stream == in_memory
    assert pq.ParquetFile(tmp_path / "stream.parquet").metadata.num_rows == 0
    # a Parquet column without rows keeps no labels, but pandas' metadata counts them: the
    # study's 200 clients (kept by `write_part`), and no rater label, none being used
    pandas = pq.read_schema(tmp_path / "stream.parquet").pandas_metadata
    columns = {column["name"]: column for column in pandas["columns"]}
    assert columns["client_id"]["metadata"]["num_categories"] == 200
    assert columns["rater"]["metadata"]["num_categories"] == 0
    assert columns["session_number"]["numpy_type"] == "Int64"


def test_rows_out_of_source_order_are_refused(tmp_path: Path) -> None:
    whole, accepted = _study(200)
    frame = whole.iloc[accepted - 1].reset_index(drop=True)
    tally = {"table_order": ["measures"], "used_labels": {"measures": {"rater": ["client"]}}}
    shuffled = accepted.copy()
    shuffled[[3, 4]] = shuffled[[4, 3]]
    write_part(
        PartResult({"measures": frame}, {"measures": shuffled}, pd.DataFrame(), tally), tmp_path
    )
    part = read_part(tmp_path)
    with pytest.raises(AssertionError, match="ascending source order"):
        write_gathered_table(
            tmp_path / "out.parquet", "measures", [tmp_path / "measures.parquet"], [part.tally]
        )
    assert not (tmp_path / "out.parquet").exists()


def test_the_default_row_groups_of_a_large_table(tmp_path: Path) -> None:
    start = time.perf_counter()
    whole, accepted = _study(2_800_000, seed=4)
    folders = _write_parts(whole, accepted, 3, tmp_path)
    del whole
    stream, in_memory = _gather_both(folders, tmp_path)
    assert stream == in_memory
    meta = pq.ParquetFile(tmp_path / "stream.parquet").metadata
    assert meta.num_rows == len(accepted) > 2 * PARQUET_ROW_GROUP
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [PARQUET_ROW_GROUP, PARQUET_ROW_GROUP, len(accepted) - 2 * PARQUET_ROW_GROUP]
    assert time.perf_counter() - start < 60
