"""Reading an earlier stage's table a column at a time gives the table pandas reads."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from accord.core.stages import plain_text, read_validated


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "client_id": pd.Categorical(["c1", "c2", None, "c1"]),
            "session_number": pd.array([0, 1, None, 3], dtype="Int64"),
            "instrument": pd.Categorical(["phq9", "gas", "gas", "phq9"]),
            "value": [1.5, 2.0, None, 4.0],
            "attended": [True, False, True, True],
        }
    )


@pytest.mark.parametrize("columnwise_from", [0, 1_000_000])
@pytest.mark.parametrize("index", ["default", "stored", "offset"])
def test_a_column_at_a_time_reads_what_pandas_reads(
    tmp_path: Path, monkeypatch, index: str, columnwise_from: int
) -> None:
    # 0: every table is read a column at a time; 1,000,000: this small one is read whole.
    monkeypatch.setattr("accord.core.stages.COLUMNWISE_FROM_ROWS", columnwise_from)
    frame = _table()
    if index == "stored":
        frame = frame.set_index("client_id")
    elif index == "offset":
        frame.index = pd.RangeIndex(10, 14)
    path = tmp_path / "table.parquet"
    frame.to_parquet(path)

    expected = pd.read_parquet(path)
    pd.testing.assert_frame_equal(read_validated(path, categorical=True), expected)
    pd.testing.assert_frame_equal(read_validated(path), plain_text(expected.copy()))
    # Text as plain strings, None where empty.
    if index == "default":
        assert read_validated(path)["client_id"].tolist() == ["c1", "c2", None, "c1"]


def test_filters_read_the_rows_asked_for_with_a_fresh_index(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    _table().to_parquet(path)
    gas = read_validated(
        path, columns=["client_id", "value"], filters=[("instrument", "==", "gas")]
    )
    assert gas.index.tolist() == [0, 1]
    assert gas["client_id"].tolist() == ["c2", None]
    assert gas["value"].isna().tolist() == [False, True]
