"""Longitudinal REDCap mapping: events joined on the record, session numbers from event names,
`where` that selects nothing, rescaling, goal blocks, sheet row numbers and the event list.

Every expected value is worked out by hand from the small sources written here."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.core.errors import ConfigError, StudyError
from accord.core.instruments import load_registry
from accord.ingest.mapping import map_part
from accord.ingest.redcap import read_redcap
from accord.ingest.sources import SourceFrame
from accord.validate import StudyInput, validate_study


def _source(data: dict, labels: dict | None = None, checkboxes=()) -> SourceFrame:
    frame = pd.DataFrame(data, dtype=object)
    frame = frame.astype(object).where(frame.notna(), None)
    return SourceFrame(
        frame, "records.csv", value_labels=labels or {}, checkboxes=frozenset(checkboxes)
    )


def _issues(part) -> list[tuple[int, str, str]]:
    return sorted(tuple(r) for r in part.issues[["row", "rule", "column"]].itertuples(index=False))


EVENTS = {
    "record_id": ["A", "A", "B", "C", "C", "C"],
    "redcap_event_name": [
        "baseline_arm_1",
        "end_of_treatment_arm_1",
        "baseline_arm_1",
        "baseline_arm_1",
        "end_of_treatment_arm_1",
        "end_of_treatment_arm_1",
    ],
    "therapist": ["T1", None, "T2", "T1", None, None],
    "end_reason": [None, "2", None, None, "1", "9"],
}


def test_a_join_takes_fields_from_another_event_of_the_same_record() -> None:
    spec = {
        "where": {"redcap_event_name": "baseline_arm_1"},
        "columns": {"client_id": "record_id", "therapist_id": "therapist"},
        "join": [
            {
                "where": {"redcap_event_name": "end_of_treatment_arm_1"},
                "columns": {"end_reason": "end_reason"},
            }
        ],
        "values": {"end_reason": {1: "completed", 2: "dropout"}},
    }
    part = map_part(_source(EVENTS), spec, "clients", "k")
    # One row per client (not one per event): A ended as a dropout, B has no ending yet, and
    # C has two end rows, so which is meant cannot be told.
    assert part.frame["client_id"].tolist() == ["A", "B", "C"]
    assert part.frame["therapist_id"].tolist() == ["T1", "T2", "T1"]
    assert part.frame["end_reason"].tolist() == ["dropout", None, None]
    assert part.source_row.tolist() == [0, 2, 3]
    assert _issues(part) == [(2, "join_ambiguous", "end_reason")]
    assert part.column_sources["end_reason"] == "end_reason"
    # The joined event's rows count as read, so they are not reported as left out.
    assert part.rows_selected.tolist() == [0, 1, 2, 3, 4, 5]


def test_a_joined_value_without_a_mapping_is_an_issue_of_its_client() -> None:
    data = {k: v[:5] for k, v in EVENTS.items()}
    data["end_reason"] = [None, "7", None, None, "1"]
    spec = {
        "where": {"redcap_event_name": "baseline_arm_1"},
        "columns": {"client_id": "record_id"},
        "join": [
            {
                "where": {"redcap_event_name": "end_of_treatment_arm_1"},
                "columns": {"end_reason": "end_reason"},
            }
        ],
        "values": {"end_reason": {1: "completed", 2: "dropout"}},
    }
    part = map_part(_source(data), spec, "clients", "k")
    assert part.frame["end_reason"].tolist() == [None, None, "completed"]
    assert _issues(part) == [(0, "unmapped_value", "end_reason")]


def test_a_join_column_mapped_twice_is_a_config_error() -> None:
    spec = {
        "columns": {"client_id": "record_id", "end_reason": "end_reason"},
        "join": [{"where": {}, "columns": {"end_reason": "end_reason"}}],
    }
    with pytest.raises(ConfigError, match=re.escape("'k.join[0].columns.end_reason'")):
        map_part(_source(EVENTS), spec, "clients", "k")


SESSIONS = {
    "record_id": ["A", "A", "A", "A", "B"],
    "redcap_event_name": [
        "baseline_arm_1",
        "session_1_arm_1",
        "session_12_arm_1",
        "session_12_arm_1",
        "Session 3 (Arm 1: Treatment)",
    ],
    "redcap_repeat_instrument": [None, None, None, "goal_rating", None],
    "attendance": [None, "1", "3", None, "1"],
    "homework_done": [None, "35", None, None, "100"],
}


def test_session_numbers_come_from_raw_and_labelled_event_names() -> None:
    spec = {
        "session_from": {
            "column": "redcap_event_name",
            "pattern": ["session_{session}_arm_1", "Session {session} (Arm 1: Treatment)"],
        },
        "where": {"redcap_repeat_instrument": None},
        "columns": {"client_id": "record_id", "status": "attendance"},
        "values": {"status": {1: "attended", 3: "no_show"}},
    }
    part = map_part(_source(SESSIONS), spec, "sessions", "k")
    # The baseline row and the repeating goal rating are not sessions.
    assert part.source_row.tolist() == [1, 2, 4]
    assert part.frame["session_number"].tolist() == ["1", "12", "3"]
    assert part.frame["status"].tolist() == ["attended", "no_show", "attended"]
    assert part.column_sources["session_number"] == "redcap_event_name"


def test_session_tokens_that_are_labels_go_through_a_map() -> None:
    data = {"id": ["A", "A"], "redcap_event_name": ["visit_pre_arm_1", "visit_mid_arm_1"]}
    spec = {
        "session_from": {
            "column": "redcap_event_name",
            "pattern": "visit_{session}_arm_1",
            "sessions": {"pre": 0, "mid": 4},
        },
        "columns": {"client_id": "id"},
        "constants": {"instrument": "phq9", "item": "total", "value": 5},
    }
    part = map_part(_source(data), spec, "measures", "k")
    assert part.frame["session_number"].tolist() == ["0", "4"]
    spec["session_from"]["sessions"] = {"pre": 0}
    with pytest.raises(StudyError, match=r"session 'mid' is not in 'k.session_from.sessions'"):
        map_part(_source(data), spec, "measures", "k")


def test_a_where_that_matches_nothing_lists_the_events_it_saw() -> None:
    labels = dict(SESSIONS, redcap_event_name=["Baseline (Arm 1: Treatment)"] * 5)
    spec = {"where": {"redcap_event_name": "baseline_arm_1"}, "columns": {"client_id": "record_id"}}
    with pytest.raises(StudyError) as caught:
        map_part(_source(labels), spec, "clients", "studies.s.mapping.clients")
    assert str(caught.value) == (
        "records.csv: the table map at config key 'studies.s.mapping.clients' selects no rows: "
        "no row has redcap_event_name = 'baseline_arm_1' (values seen in redcap_event_name: "
        "'Baseline (Arm 1: Treatment)')."
    )


def test_one_map_of_a_list_that_selects_nothing_is_a_note() -> None:
    # A follow-up event no one has reached yet: the other maps of the table still give rows.
    spec = {
        "where": {"redcap_event_name": "follow_up_arm_1"},
        "columns": {"client_id": "record_id"},
        "wide": [{"instrument": "phq9", "pattern": "phq9_{item}"}],
    }
    data = dict(EVENTS, phq9_1=["1", None, "2", "0", None, None])
    part = map_part(_source(data), spec, "measures", "k[1]", rows_required=False)
    assert len(part.frame) == 0 and len(part.issues) == 0
    assert part.notes == [
        "records.csv: the table map at config key 'k[1]' selects no rows: no row has "
        "redcap_event_name = 'follow_up_arm_1' (values seen in redcap_event_name: "
        "'baseline_arm_1', 'end_of_treatment_arm_1')."
    ]


def test_a_where_on_a_free_text_column_never_repeats_its_values() -> None:
    data = {"id": ["A", "B"], "note": ["Jane Roe, 12 Elm St", "call back"]}
    spec = {"where": {"note": "x"}, "columns": {"client_id": "id"}}
    with pytest.raises(StudyError) as caught:
        map_part(_source(data), spec, "clients", "k")
    message = str(caught.value)
    assert "note holds 2 distinct value(s), not shown" in message
    assert "Jane" not in message and "call back" not in message


def test_conditions_that_only_fail_together_are_named_so() -> None:
    spec = {
        "where": {"redcap_event_name": "baseline_arm_1", "redcap_repeat_instrument": "goal_rating"},
        "columns": {"client_id": "record_id"},
    }
    with pytest.raises(StudyError, match="each alone matches some rows"):
        map_part(_source(SESSIONS), spec, "clients", "k")


def test_a_slider_is_rescaled_linearly() -> None:
    spec = {
        "session_from": {"column": "redcap_event_name", "pattern": "session_{session}_arm_1"},
        "where": {"redcap_repeat_instrument": None},
        "columns": {"client_id": "record_id", "homework_completion": "homework_done"},
        "rescale": {"homework_completion": {"from": [0, 100], "to": [0, 1]}},
    }
    part = map_part(_source(SESSIONS), spec, "sessions", "k")
    # 35 on 0-100 is 0.35 on 0-1; an empty cell stays empty.
    assert part.frame["homework_completion"].tolist() == ["0.35", None]


def test_rescaling_between_other_scales_and_bad_settings() -> None:
    data = {"id": ["A", "B", "C", "D"], "x": ["1", "4", "7", "n/a"]}
    spec = {
        "columns": {"client_id": "id", "session_number": "id", "homework_completion": "x"},
        "rescale": {"homework_completion": {"from": [1, 7], "to": [0, 1]}},
    }
    part = map_part(_source(data), spec, "sessions", "k")
    # (4 - 1) / (7 - 1) = 0.5; a cell that is not a number is left for validation to reject.
    assert part.frame["homework_completion"].tolist() == ["0", "0.5", "1", "n/a"]
    spec["rescale"] = {"homework_completion": {"from": [5, 5], "to": [0, 1]}}
    with pytest.raises(ConfigError, match="the two ends must differ"):
        map_part(_source(data), spec, "sessions", "k")
    spec["rescale"] = {"status": {"from": [0, 1], "to": [0, 2]}}
    with pytest.raises(ConfigError, match="'status' is not a number column"):
        map_part(
            _source(data), dict(spec, columns={"client_id": "id", "status": "x"}), "sessions", "k"
        )


GOALS = {
    "record_id": ["A", "B"],
    "goal1_by": ["3", "1"],
    "goal1_imp": ["5", "4"],
    "goal1_smart___1": ["1", "0"],
    "goal2_by": ["2", None],
    "goal2_imp": [None, None],
    "goal2_smart___1": ["0", "0"],
    "goal3_by": [None, None],
    "goal3_imp": [None, None],
    "goal3_smart___1": ["0", "1"],
}


def test_goal_ids_come_from_a_wide_block_and_empty_slots_make_no_goal() -> None:
    spec = {
        "columns": {"client_id": "record_id"},
        "constants": {"set_session": 0},
        "wide": [
            {"pattern": "goal{goal}_by", "column": "set_by"},
            {"pattern": "goal{goal}_imp", "column": "client_importance"},
            {"pattern": "goal{goal}_smart___1", "column": "smart_specific"},
        ],
        "values": {"set_by": {1: "client", 2: "therapist", 3: "joint"}},
    }
    checkboxes = [c for c in GOALS if "___" in c]
    part = map_part(_source(GOALS, checkboxes=checkboxes), spec, "goals", "k")
    rows = part.frame[["client_id", "goal_id", "set_by", "client_importance", "smart_specific"]]
    # A: goals 1 and 2 (goal 3 holds only an unchecked box); B: goal 1, and goal 3 whose box
    # is ticked without a setter, which validation will quarantine rather than drop.
    assert rows.values.tolist() == [
        ["A", "1", "joint", "5", "1"],
        ["A", "2", "therapist", None, "0"],
        ["B", "1", "client", "4", "0"],
        ["B", "3", None, None, "1"],
    ]
    assert part.frame["set_session"].tolist() == ["0"] * 4
    assert (
        part.cell_column[0]
        == "set_by=goal1_by;client_importance=goal1_imp;smart_specific=goal1_smart___1"
    )


def test_gas_ratings_take_the_goal_and_session_from_the_column_name() -> None:
    data = {"id": ["A"], "gas_g1_s4": ["1"], "gas_g2_s4": ["-1"], "gas_g1_s8": ["2"]}
    spec = {
        "columns": {"client_id": "id"},
        "wide": [{"instrument": "gas", "pattern": "gas_g{goal}_s{session}"}],
    }
    part = map_part(_source(data), spec, "measures", "k")
    rows = part.frame[["session_number", "instrument", "item", "value"]].values.tolist()
    assert rows == [["4", "gas", "1", "1"], ["4", "gas", "2", "-1"], ["8", "gas", "1", "2"]]


def test_excel_rows_are_numbered_as_the_sheet_shows_them(tmp_path: Path) -> None:
    import openpyxl

    folder = tmp_path / "clinic"
    folder.mkdir()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Clients"
    sheet.append(["Clinic export"])
    sheet.append([])
    sheet.append(["Client", "Therapist", "Ending"])  # the header is sheet row 3
    sheet.append(["A1", "T1", "Completed"])
    sheet.append(["B2", "T1", "Moved away"])  # sheet row 5: no mapping for this ending
    book.save(folder / "book.xlsx")
    entry = {
        "path": str(folder),
        "format": "mapped",
        "mapping": {
            "clients": {
                "file": "book.xlsx",
                "sheet": "Clients",
                "header_row": 3,
                "columns": {
                    "client_id": "Client",
                    "therapist_id": "Therapist",
                    "end_reason": "Ending",
                },
                "values": {"end_reason": {"Completed": "completed"}},
            },
            "sessions": {
                "file": "book.xlsx",
                "sheet": "Clients",
                "header_row": 3,
                "columns": {"client_id": "Client"},
                "constants": {"session_number": 1, "status": "attended"},
            },
            "measures": {
                "file": "book.xlsx",
                "sheet": "Clients",
                "header_row": 3,
                "columns": {"client_id": "Client"},
                "constants": {
                    "session_number": 1,
                    "instrument": "phq9",
                    "item": "total",
                    "value": 9,
                },
            },
        },
    }
    result = validate_study(StudyInput("s", folder, format="mapped", entry=entry), load_registry())
    q = result.quarantine
    assert q[q["table"] == "clients"][["row_number", "rule", "source"]].values.tolist() == [
        [5, "unmapped_value", "book.xlsx[Clients]"]
    ]


DICTIONARY = """\
Variable / Field Name,Form Name,Section Header,Field Type,Field Label,"Choices, Calculations, OR Slider Labels",Field Note,Text Validation Type OR Show Slider Number,Text Validation Min,Text Validation Max,Identifier?
record_id,visit,,text,Record ID,,,,,,
attendance,visit,,radio,Attendance,"1, Attended | 2, Cancelled",,,,,
"""  # noqa: E501
EVENT_LIST = """\
event_name,arm_num,unique_event_name,custom_event_label,event_id,days_offset,offset_min,offset_max
Session 1,1,session_1_arm_1,,41,0,0,0
Session 1,2,session_1_arm_2,,42,0,0,0
End of treatment,1,end_of_treatment_arm_1,,43,0,0,0
"""
LABELS = """\
Record ID,Event Name,Attendance,Complete?
A1,Session 1 (Arm 1: Group therapy),Attended,Complete
B2,Session 1 (Arm 2: Waiting list),Cancelled,Incomplete
A1,End of treatment (Arm 1: Group therapy),,
"""


def test_the_event_list_reads_event_labels_back_to_unique_names(tmp_path: Path) -> None:
    for name, text in (("d.csv", DICTIONARY), ("e.csv", EVENT_LIST), ("r.csv", LABELS)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    source = read_redcap(tmp_path / "r.csv", tmp_path / "d.csv", events=tmp_path / "e.csv")
    assert source.frame["redcap_event_name"].tolist() == [
        "session_1_arm_1",
        "session_1_arm_2",
        "end_of_treatment_arm_1",
    ]
    assert source.frame["attendance"].tolist() == ["1", "2", None]
    (tmp_path / "r.csv").write_text(LABELS.replace("End of treatment (Arm 1", "Follow-up (Arm 1"))
    with pytest.raises(StudyError, match=r"data row 3: the event 'Follow-up \(Arm 1: Group"):
        read_redcap(tmp_path / "r.csv", tmp_path / "d.csv", events=tmp_path / "e.csv")
    assert np.all(source.frame.columns[:2] == ["record_id", "redcap_event_name"])


# ------------------------------------------------- the committed longitudinal REDCap project

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "tests" / "data" / "byod" / "redcap_longitudinal"


@pytest.fixture(scope="module")
def project():
    from accord.config import load_config, study_input

    config = load_config(PROJECT / "config.yaml")
    registry = load_registry()
    return {
        name: validate_study(study_input(config, name, root=ROOT), registry)
        for name in ("redcap_longitudinal", "redcap_longitudinal_labels")
    }


def test_the_project_is_mapped_whole_from_both_exports(project) -> None:
    raw, labels = project["redcap_longitudinal"], project["redcap_longitudinal_labels"]
    for result in (raw, labels):
        counts = result.summary["tables"]
        assert {t: c["rows_quarantined"] for t, c in counts.items()} == dict.fromkeys(counts, 0)
        # Every column and row of the export is read; REDCap's labels ("Male") are read as the
        # contract's gender values, which validation notes.
        assert [n for n in result.summary["notes"] if "read as its values" not in n] == []
    for table in ("clients", "sessions", "measures", "goals"):
        pd.testing.assert_frame_equal(raw.tables[table], labels.tables[table])
    clients = raw.tables["clients"]
    # The shape a new user brings: 40 clients, 3 therapists, no arm, no GAD-7.
    assert len(clients) == 40 and clients["therapist_id"].nunique() == 3
    assert "arm" not in clients or clients["arm"].isna().all()
    assert set(raw.tables["measures"]["instrument"]) == {"phq9", "wai_sr", "gas"}


def test_the_first_client_reads_as_the_export_shows_it(project) -> None:
    tables = project["redcap_longitudinal"].tables

    def of(table: str) -> pd.DataFrame:
        frame = tables[table]
        return frame[frame["client_id"] == "CMVOJOCH"].reset_index(drop=True)

    client = of("clients").iloc[0]
    assert (client["therapist_id"], client["age_band"], client["gender"]) == (
        "THR-K2P",
        "25-44",
        "male",
    )
    assert client["end_reason"] == "completed"  # end_of_treatment_arm_1, code 1
    sessions = of("sessions")
    assert sessions["session_number"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert sessions["status"].tolist() == ["attended"] * 5 + ["cancelled", "attended"]
    # The 0-100 slider on 0-1: 70, 40, 50, 50, 50, -, 80.
    completion = sessions["homework_completion"].tolist()
    assert completion[:5] + completion[6:] == [0.7, 0.4, 0.5, 0.5, 0.5, 0.8]
    assert pd.isna(completion[5])
    assert sessions["goal_review"].tolist() == [True, True, False, False, True, False, False]
    goals = of("goals")
    assert goals[["goal_id", "set_by", "client_importance", "therapist_importance"]].astype(
        object
    ).values.tolist() == [["1", "joint", 5, 4]]
    smart = ["smart_specific", "smart_measurable", "smart_achievable", "smart_relevant"]
    assert goals[smart].iloc[0].tolist() == [True] * 4 and not goals["smart_time_bound"].iloc[0]
    measures = of("measures")
    intake = measures[(measures["instrument"] == "phq9") & (measures["session_number"] == 0)]
    assert intake["value"].sum() == 13  # 2+2+2+1+1+1+2+1+1
    gas = measures[measures["instrument"] == "gas"]
    assert gas[["session_number", "item", "value"]].astype(object).values.tolist() == [[7, "1", -1]]


def test_the_committed_project_is_what_its_script_writes(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_project", PROJECT / "make_project.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write(tmp_path)
    for name in ("records.csv", "records_labels.csv", "dictionary.csv", "events.csv"):
        assert (tmp_path / name).read_bytes() == (PROJECT / name).read_bytes(), name


def _config_file(tmp_path: Path, mapping_clients, validation: dict | None = None) -> Path:
    import yaml

    config = yaml.safe_load((PROJECT / "config.yaml").read_text())
    entry = config["studies"]["redcap_longitudinal"]
    entry["path"] = str(PROJECT)
    entry["mapping"]["clients"] = mapping_clients
    config["studies"] = {"s": entry}
    if validation is not None:
        config["validation"] = validation
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


STACKED = [
    {
        "where": {"redcap_event_name": "baseline_arm_1"},
        "columns": {"client_id": "record_id", "therapist_id": "therapist"},
    },
    {
        "where": {"redcap_event_name": "end_of_treatment_arm_1"},
        "columns": {"client_id": "record_id", "end_reason": "end_reason"},
        "values": {"end_reason": {1: "completed", 2: "dropout", 3: "referred", 4: "other"}},
    },
]


def test_validate_fails_when_a_table_is_mostly_quarantined(tmp_path: Path, capsys) -> None:
    from accord.cli import main

    # Stacking the two events makes every client a duplicate key: all 80 rows quarantined,
    # and with them every session, answer and goal of those clients.
    assert main(["validate", "s", "--config", str(_config_file(tmp_path, STACKED))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "accord: study fails validation: quarantined rows: clients 80 of 80 (100%), "
        "sessions 190 of 190 (100%), measures 3233 of 3233 (100%), goals 83 of 83 (100%), "
        "more than validation.max_quarantined_share (0.5); see the reasons above."
    ]
    # The threshold is a setting: allowing everything turns the verdict off.
    config = _config_file(tmp_path, STACKED, {"max_quarantined_share": 1})
    assert main(["validate", "s", "--config", str(config)]) == 0


def test_validate_names_a_where_that_fits_the_other_export(tmp_path: Path, capsys) -> None:
    import yaml

    from accord.cli import main

    config = yaml.safe_load((PROJECT / "config.yaml").read_text())
    entry = config["studies"]["redcap_longitudinal_labels"]
    entry["path"] = str(PROJECT)
    del entry["redcap"]["events"]  # without the event list, labels stay labels
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"studies": {"s": entry}}))
    assert main(["validate", "s", "--config", str(tmp_path / "config.yaml")]) == 1
    err = capsys.readouterr().err
    assert "config key 'studies.s.mapping.clients' selects no rows" in err
    assert "'Baseline (Arm 1: Treatment)', 'Session 1 (Arm 1: Treatment)'" in err
