"""REDCap exports: records with the data dictionary, raw and labels, events, repeating
instruments, checkboxes, dictionary rules, identifier flags, and the files disagreeing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from accord.core.errors import IdentifierError, StudyError
from accord.core.instruments import load_registry
from accord.ingest.redcap import read_dictionary, read_redcap
from accord.validate import StudyInput, validate_study

DICTIONARY = """\
Variable / Field Name,Form Name,Section Header,Field Type,Field Label,"Choices, Calculations, OR Slider Labels",Field Note,Text Validation Type OR Show Slider Number,Text Validation Min,Text Validation Max,Identifier?
record_id,intake,,text,Record ID,,,,,,
therapist,intake,,text,Therapist,,,,,,
email,intake,,text,E-mail,,,email,,,y
age,intake,,text,Age,,,integer,18,89,
phq9_1,intake,,radio,PHQ-9 item 1,"0, Not at all | 1, Several days | 2, More than half the days | 3, Nearly every day",,,,,
status,session_log,,radio,Attendance,"1, attended | 2, cancelled | 3, did not attend (DNA)",,,,,
content,session_log,,checkbox,In this session,"1, Homework assigned | 2, Goals reviewed",,,,,
"""  # noqa: E501

RAW = """\
record_id,redcap_event_name,redcap_repeat_instrument,redcap_repeat_instance,therapist,email,age,phq9_1,intake_complete,status,content___1,content___2,session_log_complete
A1,baseline_arm_1,,,T1,,34,2,2,,,,
A1,treatment_arm_1,session_log,1,,,,,,1,1,0,2
A1,treatment_arm_1,session_log,2,,,,,,3,0,1,1
B2,baseline_arm_1,,,T1,,51,0,2,,,,
B2,treatment_arm_1,session_log,1,,,,,,2,0,0,2
"""

LABELS = """\
Record ID,Event Name,Repeat Instrument,Repeat Instance,Therapist,E-mail,Age,PHQ-9 item 1,Complete?,Attendance,In this session (choice=Homework assigned),In this session (choice=Goals reviewed),Complete?
A1,Baseline (Arm 1: Arm 1),,,T1,,34,More than half the days,Complete,,,,
A1,Treatment (Arm 1: Arm 1),Session Log,1,,,,,,attended,Checked,Unchecked,Complete
A1,Treatment (Arm 1: Arm 1),Session Log,2,,,,,,did not attend (DNA),Unchecked,Checked,Unverified
B2,Baseline (Arm 1: Arm 1),,,T1,,51,Not at all,Complete,,,,
B2,Treatment (Arm 1: Arm 1),Session Log,1,,,,,,cancelled,Unchecked,Unchecked,Complete
"""  # noqa: E501


def _export(tmp_path: Path, records: str = RAW, dictionary: str = DICTIONARY) -> Path:
    folder = tmp_path / "redcap"
    folder.mkdir(exist_ok=True)
    (folder / "records.csv").write_text(records, encoding="utf-8")
    (folder / "dictionary.csv").write_text(dictionary, encoding="utf-8")
    return folder


def test_dictionary_fields_choices_and_flags(tmp_path: Path) -> None:
    fields = read_dictionary(_export(tmp_path) / "dictionary.csv")
    assert list(fields) == ["record_id", "therapist", "email", "age", "phq9_1", "status", "content"]
    assert fields["status"].choices == {
        "1": "attended",
        "2": "cancelled",
        "3": "did not attend (DNA)",
    }
    assert (fields["age"].validation, fields["age"].minimum, fields["age"].maximum) == (
        "integer",
        18.0,
        89.0,
    )
    assert fields["email"].identifier and not fields["age"].identifier


def test_labels_export_reads_as_the_raw_export(tmp_path: Path) -> None:
    raw_folder = _export(tmp_path)
    raw = read_redcap(raw_folder / "records.csv", raw_folder / "dictionary.csv")
    labels_folder = tmp_path / "labels"
    labels_folder.mkdir()
    (labels_folder / "records.csv").write_text(LABELS, encoding="utf-8")
    (labels_folder / "dictionary.csv").write_text(DICTIONARY, encoding="utf-8")
    labelled = read_redcap(labels_folder / "records.csv", labels_folder / "dictionary.csv")
    assert list(labelled.frame.columns) == list(raw.frame.columns)
    # Choice labels, checkbox and completion labels are turned back into the codes ...
    for column in ("phq9_1", "status", "content___1", "content___2", "session_log_complete"):
        assert labelled.frame[column].tolist() == raw.frame[column].tolist(), column
    assert raw.frame["status"].tolist() == [None, "1", "3", None, "2"]
    assert raw.frame["content___2"].tolist() == [None, "0", "1", None, "0"]
    # ... and the labels travel along for the mapping.
    assert raw.value_labels["status"]["3"] == "did not attend (DNA)"
    assert raw.value_labels["session_log_complete"]["2"] == "Complete"
    assert not raw.cell_issues and not labelled.cell_issues


def test_a_field_flagged_as_identifier_is_refused_unless_acknowledged(tmp_path: Path) -> None:
    secret = "someone@example.org"
    folder = _export(
        tmp_path, RAW.replace("A1,baseline_arm_1,,,T1,,", f"A1,baseline_arm_1,,,T1,{secret},")
    )
    with pytest.raises(IdentifierError) as caught:
        read_redcap(folder / "records.csv", folder / "dictionary.csv")
    message = str(caught.value)
    assert "records.csv, column 'email': field flagged as an identifier" in message
    assert "in 1 row" in message
    assert secret not in message
    cleared = read_redcap(folder / "records.csv", folder / "dictionary.csv", acknowledged=["email"])
    assert "email" in cleared.frame


def test_an_empty_identifier_field_holds_nothing_to_refuse(tmp_path: Path) -> None:
    folder = _export(tmp_path)
    read_redcap(folder / "records.csv", folder / "dictionary.csv")


def test_records_and_dictionary_that_disagree_are_named(tmp_path: Path) -> None:
    records = RAW.replace("phq9_1,", "phq9_01,", 1)
    folder = _export(tmp_path, records)
    with pytest.raises(StudyError) as caught:
        read_redcap(folder / "records.csv", folder / "dictionary.csv")
    assert str(caught.value).startswith(
        "records.csv: column 'phq9_01' is not described by the data dictionary dictionary.csv"
    )
    assert caught.value.column == "phq9_01"


def test_a_dictionary_without_its_header_is_named(tmp_path: Path) -> None:
    folder = _export(tmp_path, dictionary="name,form\nrecord_id,intake\n")
    with pytest.raises(
        StudyError, match=re.escape("dictionary.csv: the data dictionary has no 'Variable")
    ):
        read_redcap(folder / "records.csv", folder / "dictionary.csv")


def test_values_outside_the_dictionary_are_cell_issues(tmp_path: Path) -> None:
    records = RAW.replace(
        "A1,baseline_arm_1,,,T1,,34,2,", "A1,baseline_arm_1,,,T1,,120,7,"
    ).replace("B2,baseline_arm_1,,,T1,,51,", "B2,baseline_arm_1,,,T1,,5x,")
    folder = _export(tmp_path, records)
    source = read_redcap(folder / "records.csv", folder / "dictionary.csv")
    # Rows are 0-based data rows here: A1's baseline row is 0, B2's is 3.
    assert source.cell_issues == {
        "age": {0: "redcap_range(18, 89)", 3: "redcap_validation(integer)"},
        "phq9_1": {0: "not_in_dictionary_choices"},
    }
    assert source.frame["age"].tolist()[0] is None


MAPPING = {
    "clients": {
        "where": {"redcap_event_name": "baseline_arm_1"},
        "columns": {"client_id": "record_id", "therapist_id": "therapist", "age": "age"},
    },
    "sessions": {
        "where": {"redcap_repeat_instrument": "session_log"},
        "columns": {
            "client_id": "record_id",
            "session_number": "redcap_repeat_instance",
            "status": "status",
            "homework_assigned": "content___1",
            "goal_review": "content___2",
        },
        "values": {"status": {1: "attended", 2: "cancelled", "did not attend (DNA)": "no_show"}},
    },
    "measures": {
        "where": {"redcap_event_name": "baseline_arm_1"},
        "columns": {"client_id": "record_id"},
        "constants": {"session_number": 0},
        "wide": [{"instrument": "phq9", "pattern": "phq9_{item}"}],
    },
}


def _study(folder: Path) -> StudyInput:
    entry = {"path": str(folder), "format": "redcap", "mapping": MAPPING}
    return StudyInput("trial", folder, format="redcap", entry=entry)


def test_a_redcap_study_maps_events_instances_and_checkboxes(tmp_path: Path) -> None:
    result = validate_study(_study(_export(tmp_path)), load_registry())
    assert result.quarantine.empty
    sessions = result.tables["sessions"]
    assert sessions[["client_id", "session_number", "status"]].astype(str).values.tolist() == [
        ["A1", "1", "attended"],
        ["A1", "2", "no_show"],
        ["B2", "1", "cancelled"],
    ]
    assert sessions["homework_assigned"].tolist() == [True, False, False]
    assert sessions["goal_review"].tolist() == [False, True, False]
    assert result.tables["measures"]["value"].tolist() == [2.0, 0.0]
    assert result.summary["source_rows"] == {"records.csv": 5}


def test_a_redcap_cell_issue_is_quarantined_at_its_records_row(tmp_path: Path) -> None:
    records = RAW.replace("A1,baseline_arm_1,,,T1,,34,", "A1,baseline_arm_1,,,T1,,120,")
    result = validate_study(_study(_export(tmp_path, records)), load_registry())
    q = result.quarantine
    first = q[q["rule"] == "redcap_range(18, 89)"]
    assert first[["table", "row_number", "column", "source", "source_column"]].values.tolist() == [
        ["clients", 1, "age", "records.csv", "age"]
    ]
    # A1's sessions (records rows 2 and 3) and intake item follow their client.
    cascaded = q[q["rule"] == "parent_quarantined(clients)"]
    assert sorted(zip(cascaded["table"], cascaded["row_number"], strict=True)) == [
        ("measures", 1),
        ("sessions", 2),
        ("sessions", 3),
    ]
