"""Column and value maps, the wide-to-long reshape, and mapped studies through validation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.core.errors import ConfigError, StudyError
from accord.core.instruments import load_registry
from accord.ingest.mapping import map_part
from accord.ingest.sources import SourceFrame
from accord.validate import StudyInput, validate_study

REGISTRY = load_registry()


def _source(data: dict, labels: dict | None = None, name: str = "export.csv") -> SourceFrame:
    frame = pd.DataFrame(data, dtype=object)
    frame = frame.astype(object).where(frame.notna(), None)
    return SourceFrame(frame, name, value_labels=labels or {})


def test_columns_values_and_constants() -> None:
    source = _source(
        {"ID": ["A", "B", "C"], "Visit": ["1", "1", "2"], "Att": ["1", "3", "2"]},
        labels={"Att": {"1": "attended", "2": "cancelled", "3": "DNA"}},
    )
    spec = {
        "columns": {"client_id": "ID", "session_number": "Visit", "status": "Att"},
        # Keys may be codes (1) or the file's labels (DNA).
        "values": {"status": {1: "attended", "DNA": "no_show", "cancelled": "cancelled"}},
        "constants": {"modality": "video"},
    }
    part = map_part(source, spec, "sessions", "studies.s.mapping.sessions")
    assert part.frame.to_dict("list") == {
        "client_id": ["A", "B", "C"],
        "session_number": ["1", "1", "2"],
        "status": ["attended", "no_show", "cancelled"],
        "modality": ["video", "video", "video"],
    }
    assert part.issues.empty
    assert part.source_row.tolist() == [0, 1, 2]


def test_value_labels_are_used_for_text_columns_without_a_map() -> None:
    source = _source(
        {"ID": ["A", "B"], "ending": ["1", "2"], "age": ["30", "40"]},
        labels={"ending": {"1": "completed", "2": "dropout"}, "age": {"30": "thirty"}},
    )
    spec = {"columns": {"client_id": "ID", "end_reason": "ending", "age": "age"}}
    part = map_part(source, spec, "clients", "k")
    assert part.frame["end_reason"].tolist() == ["completed", "dropout"]
    # Numbers are never replaced by their labels.
    assert part.frame["age"].tolist() == ["30", "40"]


def test_an_unmapped_value_is_emptied_and_becomes_an_issue() -> None:
    source = _source({"ID": ["A", "B", "C"], "Att": ["1", "4", None]})
    spec = {"columns": {"client_id": "ID", "status": "Att"}, "values": {"status": {1: "attended"}}}
    part = map_part(source, spec, "sessions", "k")
    assert part.frame["status"].tolist() == ["attended", None, None]
    # The empty cell is just missing; only the value 4 lacks a mapping.
    assert part.issues.to_dict("list") == {
        "row": [1],
        "rule": ["unmapped_value"],
        "column": ["status"],
    }


def test_a_missing_source_column_is_named_with_a_suggestion() -> None:
    source = _source({"ClientID": ["A"], "Visit": ["1"]})
    spec = {"columns": {"client_id": "ClientId", "session_number": "Visit"}}
    with pytest.raises(StudyError) as caught:
        map_part(source, spec, "sessions", "studies.s.mapping.sessions")
    message = str(caught.value)
    assert message.startswith("export.csv: column 'ClientId' named by config key ")
    assert "'studies.s.mapping.sessions.columns.client_id'" in message
    assert "did you mean 'ClientID'?" in message
    assert caught.value.column == "ClientId"


def test_an_unknown_contract_column_is_a_config_error() -> None:
    source = _source({"ID": ["A"], "ref": ["GP"]})
    spec = {"columns": {"client_id": "ID", "referral": "ref"}}
    with pytest.raises(ConfigError, match=r"'k.columns.referral': 'referral' is not a column"):
        map_part(source, spec, "clients", "k")
    # Declared as an extra column, it is carried over.
    part = map_part(source, spec, "clients", "k", extra_columns=("referral",))
    assert part.frame["referral"].tolist() == ["GP"]


def test_a_value_map_for_an_unmapped_column_is_a_config_error() -> None:
    source = _source({"ID": ["A"]})
    spec = {"columns": {"client_id": "ID"}, "values": {"end_reason": {1: "completed"}}}
    with pytest.raises(
        ConfigError, match=re.escape("'k.values.end_reason': a value map for a column")
    ):
        map_part(source, spec, "clients", "k")


def test_wide_items_and_sessions_become_long_rows() -> None:
    # Two clients, PHQ-9 items 1-2 at visits T1 (intake) and T2 (session 4).
    source = _source(
        {
            "id": ["A", "B"],
            "PHQ9_1_T1": ["2", "0"],
            "PHQ9_2_T1": ["3", None],
            "PHQ9_1_T2": [None, "1"],
            "PHQ9_2_T2": [None, "1"],
            "note": ["x", "y"],
        }
    )
    spec = {
        "columns": {"client_id": "id"},
        "wide": [
            {"instrument": "phq9", "pattern": "PHQ9_{item}_T{session}", "sessions": {1: 0, 2: 4}}
        ],
    }
    part = map_part(source, spec, "measures", "k")
    got = part.frame[["client_id", "session_number", "instrument", "item", "value"]]
    assert got.values.tolist() == [
        ["A", "0", "phq9", "1", "2"],
        ["A", "0", "phq9", "2", "3"],
        ["B", "0", "phq9", "1", "0"],
        ["B", "4", "phq9", "1", "1"],
        ["B", "4", "phq9", "2", "1"],
    ]
    # Each long row points at its source row and the cell it came from.
    assert part.source_row.tolist() == [0, 0, 1, 1, 1]
    assert part.cell_column.tolist() == [
        "PHQ9_1_T1",
        "PHQ9_2_T1",
        "PHQ9_1_T1",
        "PHQ9_1_T2",
        "PHQ9_2_T2",
    ]


def test_a_session_token_outside_the_map_is_named() -> None:
    source = _source({"id": ["A"], "PHQ9_1_T1": ["2"], "PHQ9_1_T3": ["1"]})
    spec = {
        "columns": {"client_id": "id"},
        "wide": [{"instrument": "phq9", "pattern": "PHQ9_{item}_T{session}", "sessions": {1: 0}}],
    }
    with pytest.raises(StudyError, match=r"column 'PHQ9_1_T3' matches the pattern .* session '3'"):
        map_part(source, spec, "measures", "k")


def test_a_pattern_that_matches_nothing_is_named() -> None:
    source = _source({"id": ["A"], "phq_1": ["2"]})
    spec = {"columns": {"client_id": "id"}, "wide": [{"instrument": "phq9", "pattern": "x{item}"}]}
    with pytest.raises(StudyError, match=r"export.csv: no column matches the pattern 'x\{item\}'"):
        map_part(source, spec, "measures", "k")


def test_wide_attendance_becomes_one_session_per_token() -> None:
    source = _source(
        {
            "Client": ["A", "B"],
            "attend_s1": ["A", "A"],
            "attend_s2": ["DNA", None],
            "day_s1": ["0", "0"],
            "day_s2": ["7", None],
        }
    )
    spec = {
        "columns": {"client_id": "Client"},
        "wide": [
            {"column": "status", "pattern": "attend_s{session}"},
            {"column": "day", "pattern": "day_s{session}"},
        ],
        "values": {"status": {"A": "attended", "DNA": "no_show"}},
    }
    part = map_part(source, spec, "sessions", "k")
    assert part.frame[["client_id", "session_number", "status", "day"]].values.tolist() == [
        ["A", "1", "attended", "0"],
        ["A", "2", "no_show", "7"],
        ["B", "1", "attended", "0"],
    ]


def test_where_selects_rows_and_keeps_source_row_numbers() -> None:
    source = _source(
        {
            "record_id": ["A", "A", "A", "B"],
            "redcap_repeat_instrument": [None, "session_log", "session_log", "session_log"],
            "redcap_repeat_instance": [None, "1", "2", "1"],
            "att": [None, "1", "1", "1"],
        }
    )
    spec = {
        "where": {"redcap_repeat_instrument": "session_log"},
        "columns": {
            "client_id": "record_id",
            "session_number": "redcap_repeat_instance",
            "status": "att",
        },
        "values": {"status": {1: "attended"}},
    }
    part = map_part(source, spec, "sessions", "k")
    assert part.source_row.tolist() == [1, 2, 3]
    assert part.frame["client_id"].tolist() == ["A", "A", "B"]


# --------------------------------------------------------------------------- whole studies


def _mapped_study(tmp_path: Path, sessions_csv: str, mapping_sessions: dict) -> StudyInput:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "people.csv").write_text("ID,Therapist\nA,T1\nB,T1\n", encoding="utf-8")
    (folder / "visits.csv").write_text(sessions_csv, encoding="utf-8")
    (folder / "scores.csv").write_text(
        "ID,phq9_1_t0,phq9_2_t0,phq9_1_t1\nA,1,2,3\nB,0,,1\n", encoding="utf-8"
    )
    entry = {
        "path": str(folder),
        "format": "mapped",
        "mapping": {
            "clients": {
                "file": "people.csv",
                "columns": {"client_id": "ID", "therapist_id": "Therapist"},
            },
            "sessions": mapping_sessions,
            "measures": {
                "file": "scores.csv",
                "columns": {"client_id": "ID"},
                "wide": [{"instrument": "phq9", "pattern": "phq9_{item}_t{session}"}],
            },
        },
    }
    return StudyInput("s", folder, format="mapped", entry=entry)


SESSIONS_MAP = {
    "file": "visits.csv",
    "columns": {"client_id": "ID", "session_number": "Visit", "status": "Att"},
    "values": {"status": {1: "attended", 2: "cancelled", 3: "no_show"}},
}


def test_a_mapped_study_validates_and_reconciles(tmp_path: Path) -> None:
    study = _mapped_study(tmp_path, "ID,Visit,Att\nA,1,1\nB,1,9\n", SESSIONS_MAP)
    result = validate_study(study, REGISTRY)
    tables = result.summary["tables"]
    # 5 filled cells in scores.csv become 5 measure rows.
    assert tables["measures"]["rows_in"] == 5
    # B's visit has the unknown code 9: quarantined with the reason, the file row and column;
    # its PHQ-9 item at session 1 follows it (parent quarantined).
    q = result.quarantine
    status = q[q["rule"] == "unmapped_value"]
    assert status[["table", "row_number", "column", "source", "source_column"]].values.tolist() == [
        ["sessions", 2, "status", "visits.csv", "Att"]
    ]
    assert tables["sessions"]["rows_quarantined"] == 1
    assert tables["measures"]["rows_quarantined"] == 1
    child = q[(q["table"] == "measures")]
    assert child[["row_number", "rule", "source_column"]].values.tolist() == [
        [2, "parent_quarantined(sessions)", "phq9_1_t1"]
    ]
    for counts in tables.values():
        assert counts["rows_in"] == counts["rows_accepted"] + counts["rows_quarantined"]
    assert result.summary["format"] == "mapped"
    assert set(result.summary["input_checksums_sha256"]) == {
        "people.csv",
        "visits.csv",
        "scores.csv",
    }


def test_an_out_of_range_item_points_at_its_cell(tmp_path: Path) -> None:
    study = _mapped_study(tmp_path, "ID,Visit,Att\nA,1,1\nB,1,1\n", SESSIONS_MAP)
    scores = study.path / "scores.csv"
    scores.write_text("ID,phq9_1_t0,phq9_2_t0,phq9_1_t1\nA,1,7,3\nB,0,,1\n", encoding="utf-8")
    result = validate_study(study, REGISTRY)
    q = result.quarantine
    assert q[["table", "row_number", "rule", "source", "source_column"]].values.tolist() == [
        ["measures", 1, "in_range(0, 3)", "scores.csv", "phq9_2_t0"]
    ]


def test_a_mapped_study_without_a_required_map_is_named(tmp_path: Path) -> None:
    study = _mapped_study(tmp_path, "ID,Visit,Att\nA,1,1\n", SESSIONS_MAP)
    entry = dict(study.entry)
    entry["mapping"] = {k: v for k, v in entry["mapping"].items() if k != "sessions"}
    broken = StudyInput("s", study.path, format="mapped", entry=entry)
    with pytest.raises(ConfigError, match=re.escape("'studies.s.mapping.sessions': is required")):
        validate_study(broken, REGISTRY)


def test_missing_codes_in_wide_cells_make_no_rows(tmp_path: Path) -> None:
    study = _mapped_study(tmp_path, "ID,Visit,Att\nA,1,1\nB,1,1\n", SESSIONS_MAP)
    (study.path / "scores.csv").write_text(
        "ID,phq9_1_t0,phq9_2_t0,phq9_1_t1\nA,1,-99,3\nB,0,,1\n", encoding="utf-8"
    )
    coded = StudyInput("s", study.path, missing_codes=(-99,), format="mapped", entry=study.entry)
    result = validate_study(coded, REGISTRY)
    assert result.summary["tables"]["measures"]["rows_in"] == 4
    assert result.summary["tables"]["measures"]["missing_codes_replaced"] == 1
    assert result.quarantine.empty
    assert np.array_equal(
        result.tables["measures"]["value"].to_numpy(dtype=float), [1.0, 3.0, 0.0, 1.0]
    )


def test_columns_and_rows_left_out_are_noted(tmp_path: Path) -> None:
    study = _mapped_study(tmp_path, "ID,Visit,Att\nA,1,1\nB,1,1\n", SESSIONS_MAP)
    (study.path / "people.csv").write_text("ID,Therapist,Referral\nA,T1,GP\nB,T1,self\n")
    entry = dict(study.entry)
    entry["mapping"] = dict(entry["mapping"])
    entry["mapping"]["clients"] = {
        "file": "people.csv",
        "where": {"Referral": "GP"},
        "columns": {"client_id": "ID", "therapist_id": "Therapist"},
    }
    result = validate_study(StudyInput("s", study.path, format="mapped", entry=entry), REGISTRY)
    assert result.summary["notes"] == [
        "people.csv: 1 column(s) not mapped and not carried over: Referral",
        "people.csv: 1 row(s) not selected by any table map.",
    ]


def test_an_item_is_a_number_so_bookkeeping_columns_are_not_items() -> None:
    source = _source({"id": ["A"], "phq9_1": ["2"], "phq9_complete": ["2"], "phq9_10x": ["1"]})
    spec = {"columns": {"client_id": "id"}, "constants": {"session_number": 0}}
    spec["wide"] = [{"instrument": "phq9", "pattern": "phq9_{item}"}]
    part = map_part(source, spec, "measures", "k")
    assert part.frame["item"].tolist() == ["1"]
