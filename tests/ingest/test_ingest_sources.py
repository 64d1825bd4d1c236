"""Reading researchers' own files as text: Excel sheets and header rows, SPSS labels and
user-defined missing values, CSV below a title, and the messages for files that do not fit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pyreadstat
import pytest

from accord.core.errors import StudyError
from accord.ingest.sources import count_rows, read_source, replace_missing_codes
from accord.ingest.study import client_rows


def _workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    book.active.title = "Cover"
    book.active.append(["not data"])
    sheet = book.create_sheet("Clients")
    sheet.append(["Client register"])
    sheet.append([])
    sheet.append(["Client", "Age", "Score", "Done"])
    sheet.append(["C1", 34, 1.5, True])
    sheet.append(["C2", None, 2.0, False])
    sheet.append([None, None, None, None])  # trailing formatting row
    book.save(path)
    return path


def test_excel_sheet_and_header_row(tmp_path: Path) -> None:
    source = read_source(_workbook(tmp_path / "book.xlsx"), sheet="Clients", header_row=3)
    assert source.label == "book.xlsx[Clients]"
    assert list(source.frame.columns) == ["Client", "Age", "Score", "Done"]
    # Whole numbers lose the decimal point, other numbers keep it; the blank last row goes.
    assert source.frame.to_dict("list") == {
        "Client": ["C1", "C2"],
        "Age": ["34", None],
        "Score": ["1.5", "2"],
        "Done": ["true", "false"],
    }


def test_excel_first_sheet_is_the_default(tmp_path: Path) -> None:
    source = read_source(_workbook(tmp_path / "book.xlsx"))
    assert source.label == "book.xlsx[Cover]"
    assert list(source.frame.columns) == ["not data"]


def test_a_sheet_that_is_not_there_is_named(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"book.xlsx: there is no sheet 'Visits' \(sheets: "):
        read_source(_workbook(tmp_path / "book.xlsx"), sheet="Visits")


def test_a_header_row_past_the_end_is_named(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=r"book.xlsx\[Clients\]: header_row 40"):
        read_source(_workbook(tmp_path / "book.xlsx"), sheet="Clients", header_row=40)


def _sav(path: Path, compress: bool = False) -> Path:
    frame = pd.DataFrame(
        {
            "id": ["A", "B", "C", "D"],
            "age": [34.0, 99.0, 999.0, np.nan],
            "status": [1.0, 3.0, 2.0, 1.0],
        }
    )
    pyreadstat.write_sav(
        frame,
        path,
        compress=compress,
        variable_value_labels={"status": {1.0: "attended", 2.0: "cancelled", 3.0: "DNA"}},
        missing_ranges={"age": [99.0, 999.0]},
    )
    return path


@pytest.mark.parametrize("name, compress", [("s.sav", False), ("s.zsav", True)])
def test_spss_value_labels_and_user_missing(tmp_path: Path, name: str, compress: bool) -> None:
    source = read_source(_sav(tmp_path / name, compress))
    # 99 and 999 are declared missing in the file: empty cells, not ages, and counted.
    assert source.frame["age"].tolist() == ["34", None, None, None]
    assert source.user_missing["age"].tolist() == [False, True, True, False]
    # Codes stay codes; the labels travel alongside for the mapping.
    assert source.frame["status"].tolist() == ["1", "3", "2", "1"]
    assert source.value_labels["status"] == {"1": "attended", "2": "cancelled", "3": "DNA"}


def test_csv_below_a_title_row(tmp_path: Path) -> None:
    path = tmp_path / "visits.csv"
    path.write_text("Visits export\nclient,visit\nC1,1\nC1,2\n", encoding="utf-8")
    source = read_source(path, header_row=2)
    assert source.frame.to_dict("list") == {"client": ["C1", "C1"], "visit": ["1", "2"]}


def test_parquet_and_csv_as_today(tmp_path: Path) -> None:
    frame = pd.DataFrame({"client": ["C1", None], "score": [1.0, 2.5]})
    frame.to_parquet(tmp_path / "t.parquet")
    source = read_source(tmp_path / "t.parquet")
    assert source.frame.to_dict("list") == {"client": ["C1", None], "score": ["1", "2.5"]}


def test_missing_and_foreign_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match=re.escape("nope.sav: the source file does not exist")):
        read_source(tmp_path / "nope.sav")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StudyError, match=re.escape("notes.txt: unknown file type")):
        read_source(tmp_path / "notes.txt")
    (tmp_path / "broken.sav").write_bytes(b"not spss")
    with pytest.raises(StudyError, match=re.escape("broken.sav: the file cannot be read as SPSS")):
        read_source(tmp_path / "broken.sav")
    with pytest.raises(StudyError, match=re.escape("'sheet' applies only to Excel")):
        read_source(_sav(tmp_path / "s.sav"), sheet="Clients")


def test_study_missing_codes_empty_cells_and_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("item,score\n1,-99\n2,3\n3,-99.0\n", encoding="utf-8")
    source = read_source(path)
    replace_missing_codes(source, [-99])
    assert source.frame["score"].tolist() == [None, "3", None]
    assert source.user_missing["score"].tolist() == [True, False, True]
    assert "item" not in source.user_missing


def test_row_counts_for_planning_jobs(tmp_path: Path) -> None:
    csv = tmp_path / "clients.csv"
    csv.write_text("client_id,age\nA,30\nB,40\nC,50\n")
    assert count_rows(csv) == 3
    no_final_newline = tmp_path / "short.csv"
    no_final_newline.write_text("client_id\nA\nB")
    assert count_rows(no_final_newline) == 2
    pd.DataFrame({"x": range(7)}).to_parquet(tmp_path / "t.parquet")
    assert count_rows(tmp_path / "t.parquet") == 7
    assert count_rows(_sav(tmp_path / "s.sav")) == 4
    # The first sheet: the cover sheet's one row is its header, so no data rows.
    assert count_rows(_workbook(tmp_path / "book.xlsx")) == 0
    assert count_rows(tmp_path / "absent.csv") is None
    (tmp_path / "notes.txt").write_text("x\n")
    assert count_rows(tmp_path / "notes.txt") is None


def test_client_rows_follow_the_study_format(tmp_path: Path) -> None:
    (tmp_path / "clients.csv").write_text("client_id\nA\nB\n")
    assert client_rows(tmp_path, {"path": str(tmp_path)}) == 2
    (tmp_path / "people.csv").write_text("id\n1\n2\n3\n")
    (tmp_path / "more.csv").write_text("id\n4\n")
    mapped = {
        "format": "mapped",
        "mapping": {"clients": [{"file": "people.csv"}, {"file": "more.csv"}]},
    }
    assert client_rows(tmp_path, mapped) == 4
    (tmp_path / "export.csv").write_text("record_id,redcap_event_name\n1,a\n1,b\n2,a\n")
    redcap = {"format": "redcap", "redcap": {"records": "export.csv"}}
    assert client_rows(tmp_path, redcap) == 3  # one row per event: an upper bound
    assert client_rows(tmp_path / "empty", {"format": "contract"}) is None
