"""Validation: each rule with a passing and a failing row, table-level faults, reconciliation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import CLIENTS, GOALS, SESSIONS, measures_text, write_study

from accord.core import contract
from accord.core.errors import StudyError
from accord.core.instruments import load_registry
from accord.validate import StudyInput, ValidationResult, validate_study, write_validation

REGISTRY = load_registry()
# Optional columns outside the keys: a bad cell there is emptied, not its row quarantined.
OPTIONAL = {
    table: {
        name
        for name, spec in contract.columns(table).items()
        if not spec.required and name not in contract.KEYS[table]
    }
    for table in contract.TABLES
}


def run(folder: Path, **settings) -> ValidationResult:
    return validate_study(StudyInput("study", folder, **settings), REGISTRY)


def replace_line(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_valid_study_accepts_every_row(study_dir: Path) -> None:
    result = run(study_dir)
    counts = {t: v["rows_accepted"] for t, v in result.summary["tables"].items()}
    # 3 clients, 5 sessions, 4 PHQ-9 forms x 9 items + 1 GAS rating = 37, 2 goals
    assert counts == {"clients": 3, "sessions": 5, "measures": 37, "goals": 2}
    assert result.quarantine.empty
    measures = result.tables["measures"]
    # Defaults: rater client; phase intake at session 0 and treatment after.
    assert set(measures["rater"].astype(str)) == {"client"}
    phase_at = measures.groupby("session_number", observed=True)["phase"].first().astype(str)
    assert phase_at[0] == "intake"
    assert phase_at[2] == "treatment"


# (table, line in the valid file, replacement, rule, column)
ROW_RULES = [
    ("clients", "C3C,T2,S1", "C3 C,T2,S1", "str_matches", "client_id"),
    ("clients", "C3C,T2,S1", "C3C,,S1", None, None),  # unknown therapist is allowed
    ("clients", "2025,,18-24", "1850,,18-24", "greater_than_or_equal_to(1900)", "intake_year"),
    ("clients", "2025,,18-24", "2025,-1,18-24", "greater_than_or_equal_to(0)", "age"),
    ("clients", "2025,,18-24", "2025,abc,18-24", "type:integer", "age"),
    ("clients", "2025,,18-24", "2025,30.5,18-24", "type:integer", "age"),
    ("clients", "female,ongoing", "female,lost", "isin", "end_reason"),
    (
        "sessions",
        "C3C,1,attended",
        "C3C,0,attended",
        "greater_than_or_equal_to(1)",
        "session_number",
    ),
    ("sessions", "C3C,1,attended", "C3C,1,late", "isin", "status"),
    ("sessions", "C3C,1,attended,0", "C3C,1,attended,-3", "greater_than_or_equal_to(0)", "day"),
    ("sessions", "C1A,2,attended,7", "C1A,2,attended,-0", None, None),  # -0 is 0: valid
    (
        "sessions",
        "C3C,1,attended,0,50",
        "C3C,1,attended,0,601",
        "less_than_or_equal_to(600)",
        "duration_min",
    ),
    ("sessions", "0,50,phone", "0,50,carrier_pigeon", "isin", "modality"),
    (
        "sessions",
        "true,0.5,false",
        "true,1.5,false",
        "less_than_or_equal_to(1)",
        "homework_completion",
    ),
    ("sessions", "true,0.5,false", "maybe,0.5,false", "type:boolean", "homework_assigned"),
    ("sessions", "true,0.5,false", "TRUE,0.5,No", None, None),  # booleans in any common spelling
    ("sessions", "C1A,2,attended,7", "C1A,2,attended,0", None, None),  # equal days are fine
    ("measures", "C3C,1,phq9,client,9,0", "C3C,1,phq9,client,9,4", "in_range(0, 3)", "value"),
    ("measures", "C3C,1,phq9,client,9,0", "C3C,1,phq9,client,9,", "not_nullable", "value"),
    (
        "measures",
        "C3C,1,phq9,client,9,0",
        "C3C,1,phq9,client,10,0",
        "unknown_item_for_instrument",
        "item",
    ),
    (
        "measures",
        "C3C,1,phq9,client,9,0",
        "C3C,1,bdi2,client,9,0",
        "unknown_instrument",
        "instrument",
    ),
    ("measures", "C3C,1,phq9,client,9,0", "C3C,1,phq9,parent,9,0", "isin", "rater"),
    ("measures", "C3C,1,phq9,client,9,0,", "C3C,1,phq9,client,9,0,later", "isin", "phase"),
    ("measures", "C1A,1,gas,client,G1,1", "C1A,1,gas,client,G1,3", "in_range(-2, 2)", "value"),
    ("measures", "C1A,1,gas,client,G1,1", "C1A,1,gas,client,G9,1", "gas_goal_not_in_goals", "item"),
    ("goals", "C1A,G1,0,joint", "C1A,G1,0,together", "isin", "set_by"),
    (
        "goals",
        "C1A,G1,0,joint,5",
        "C1A,G1,0,joint,6",
        "less_than_or_equal_to(5)",
        "client_importance",
    ),
    ("goals", "revised,2", "revised,0", "revised_before_set", "revised_session"),
    ("goals", "C1A,G1,0", "C1A,G1,-1", "greater_than_or_equal_to(0)", "set_session"),
]


@pytest.mark.parametrize(("table", "old", "new", "rule", "column"), ROW_RULES)
def test_row_rule(tmp_path: Path, table: str, old: str, new: str, rule, column) -> None:
    texts = {
        "clients": CLIENTS,
        "sessions": SESSIONS,
        "measures": measures_text(),
        "goals": GOALS,
    }
    lines = texts[table].splitlines()
    row_number = next(i for i, line in enumerate(lines) if old in line)  # header is line 0
    texts[table] = replace_line(texts[table], old, new)
    result = run(write_study(tmp_path / "s", **texts))
    own = result.quarantine[result.quarantine["table"] == table]
    if rule is None:
        assert own.empty, own
        return
    if column in OPTIONAL[table] and rule not in ("revised_before_set", "day_decreasing"):
        # a bad cell of an optional column is emptied and counted; its row stays
        assert own.empty, own
        emptied = result.summary["tables"][table]["cells_emptied"]
        assert [(e["column"], e["cells"]) for e in emptied] == [(column, 1)]
        assert emptied[0]["rule"].startswith(rule)
        frame = result.tables[table]
        assert len(frame) == len(lines) - 1
        assert frame[column].isna().iloc[row_number - 1]
        return
    assert list(own["row_number"].unique()) == [row_number]
    hit = own[own["rule"].str.startswith(rule)]
    assert list(hit["column"]) == [column]


def test_duplicate_keys_quarantine_every_copy(tmp_path: Path) -> None:
    sessions = SESSIONS + "C3C,1,attended,0,50,phone,,,\n"
    result = run(write_study(tmp_path / "s", sessions=sessions))
    q = result.quarantine[result.quarantine["rule"].str.startswith("duplicate_key")]
    # C3C session 1 is row 5 of sessions.csv and again row 6: both copies, neither is trusted.
    assert sorted(q["row_number"]) == [5, 6]
    # Measures at C3C session 1 lose their parent session: 9 PHQ-9 items cascade.
    cascaded = result.quarantine[result.quarantine["rule"] == "parent_quarantined(sessions)"]
    assert len(cascaded) == 9


def test_day_must_not_decrease(tmp_path: Path) -> None:
    sessions = replace_line(SESSIONS, "C1A,2,attended,7", "C1A,2,attended,-0")
    sessions = replace_line(sessions, "C1A,1,attended,0", "C1A,1,attended,3")
    result = run(write_study(tmp_path / "s", sessions=sessions))
    q = result.quarantine
    # C1A session 2 (row 2) is on day 0, before session 1 on day 3.
    # Its 9 PHQ-9 items (measures rows 10-18) lose their parent session.
    assert q[["table", "row_number", "rule", "column"]].values.tolist() == [
        ["measures", r, "parent_quarantined(sessions)", "session_number"] for r in range(10, 19)
    ] + [["sessions", 2, "day_decreasing", "day"]]


def test_references_and_cascade(tmp_path: Path) -> None:
    clients = replace_line(CLIENTS, "C2B,T1,S1,usual_care", "C2B,T 1,S1,usual_care")
    sessions = SESSIONS + "C9Z,1,attended,0,50,phone,,,\n"
    measures = measures_text() + "C3C,7,phq9,client,1,1,\n"
    result = run(write_study(tmp_path / "s", clients=clients, sessions=sessions, measures=measures))
    q = result.quarantine
    rules = q.groupby(["table", "rule"]).size().to_dict()
    # C2B's therapist_id breaks the ID pattern; its 2 sessions, 9 intake items and 1 goal
    # follow it.
    assert [n for (t, r), n in rules.items() if t == "clients"] == [1]
    assert q.loc[q["table"] == "clients", "rule"].iloc[0].startswith("str_matches")
    assert rules[("sessions", "parent_quarantined(clients)")] == 2
    assert rules[("measures", "parent_quarantined(clients)")] == 9
    assert rules[("goals", "parent_quarantined(clients)")] == 1
    # C9Z is not a client at all; session 7 of C3C was never scheduled.
    assert rules[("sessions", "not_in_clients")] == 1
    assert rules[("measures", "session_not_in_sessions")] == 1
    assert set(q.loc[q["rule"] == "not_in_clients", "client_id"]) == {"C9Z"}


def test_counts_reconcile_on_a_broken_study(tmp_path: Path) -> None:
    clients = CLIENTS + "bad id!,T1,S1,,,,,,\nC1A,T1,S1,,,,,,\n"
    sessions = SESSIONS + "C1A,3,late,8,,,,,\nC3C,2,attended,x,,,,,\n"
    measures = measures_text() + "C3C,1,phq9,client,9,2,\nC1A,0,gad7,client,1,9,\n"
    result = run(write_study(tmp_path / "s", clients=clients, sessions=sessions, measures=measures))
    for table, counts in result.summary["tables"].items():
        assert counts["rows_in"] == counts["rows_accepted"] + counts["rows_quarantined"], table
        quarantined_rows = result.quarantine.loc[result.quarantine["table"] == table, "row_number"]
        assert counts["rows_quarantined"] == quarantined_rows.nunique()
    tables = result.summary["tables"]
    # clients: 'bad id!' fails the pattern, C1A is duplicated (both copies) -> 3 of 5 rows
    assert tables["clients"]["rows_quarantined"] == 3
    # The malformed ID is never repeated in the quarantine.
    assert "bad id!" not in result.quarantine.to_csv()
    # sessions: status 'late' plus C1A's two sessions (parent duplicated) -> 3 of 7; the
    # day 'x' of an optional column is emptied instead
    assert tables["sessions"]["rows_quarantined"] == 3
    emptied = tables["sessions"]["cells_emptied"]
    assert emptied == [{"rule": "type:integer", "column": "day", "cells": 1}]
    # measures: C1A's 19 rows (parent), C3C item 9 duplicated (2 rows) -> 21 + gad7 9 (C1A's)
    assert tables["measures"]["rows_in"] == 39
    assert tables["measures"]["rows_quarantined"] == 9 + 9 + 1 + 2 + 1


def test_missing_codes_are_replaced_and_counted(tmp_path: Path) -> None:
    clients = replace_line(CLIENTS, "2025,,18-24", "2025,-99,18-24")
    clients = replace_line(clients, "2024,51", "2024,999")
    sessions = replace_line(SESSIONS, "C2B,1,attended,0,45", "C2B,1,attended,0,-99.0")
    result = run(
        write_study(tmp_path / "s", clients=clients, sessions=sessions), missing_codes=(-99, 999)
    )
    assert result.quarantine.empty
    tables = result.summary["tables"]
    assert tables["clients"]["missing_codes_replaced"] == 2
    assert tables["clients"]["missing_codes_replaced_by_column"] == {"age": 2}
    assert tables["sessions"]["missing_codes_replaced"] == 1
    # C2B (999) and C3C (-99) now have no age; C1A keeps 34.
    assert result.tables["clients"]["age"].isna().sum() == 2


def test_extra_columns_need_a_declaration(tmp_path: Path) -> None:
    clients = CLIENTS.replace("end_reason\n", "end_reason,referral_source\n", 1)
    clients = (
        "\n".join(line if i == 0 else line + ",gp" for i, line in enumerate(clients.splitlines()))
        + "\n"
    )
    folder = write_study(tmp_path / "s", clients=clients)
    with pytest.raises(StudyError, match=r"clients.csv: column 'referral_source' is not in"):
        run(folder)
    result = run(folder, extra_columns={"clients": ("referral_source",)})
    assert list(result.tables["clients"]["referral_source"].astype(str)) == ["gp"] * 3


@pytest.mark.parametrize(
    ("override", "message", "column"),
    [
        ({"sessions": None}, r"sessions.csv \(or sessions.parquet\) is missing", None),
        (
            {"sessions": SESSIONS.replace("status,", "state,", 1)},
            r"sessions.csv: required column 'status' is missing",
            "status",
        ),
        (
            {"clients": CLIENTS.splitlines()[0] + "\n"},
            r"clients.csv: the table has a header but",
            None,
        ),
        ({"clients": ""}, r"clients.csv: the file is empty", None),
    ],
)
def test_table_level_faults(tmp_path: Path, override, message, column) -> None:
    folder = write_study(tmp_path / "s", **override)
    with pytest.raises(StudyError, match=message) as info:
        run(folder)
    assert info.value.column == column


def test_goals_are_optional(tmp_path: Path) -> None:
    measures = "\n".join(line for line in measures_text().splitlines() if ",gas," not in line)
    result = run(write_study(tmp_path / "s", goals=None, measures=measures + "\n"))
    assert "goals" not in result.tables
    assert result.quarantine.empty


def test_undecodable_file_is_named(tmp_path: Path) -> None:
    folder = write_study(tmp_path / "s")
    raw = CLIENTS.replace("female,ongoing", "f\xe9minin,ongoing").encode("latin-1")
    (folder / "clients.csv").write_bytes(raw)
    with pytest.raises(StudyError, match=r"clients.csv: the file is not valid UTF-8"):
        run(folder)


def test_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    folder = write_study(tmp_path / "s")
    (folder / "clients.csv").write_bytes(b"\xef\xbb\xbf" + CLIENTS.encode())
    result = run(folder)
    assert "client_id" in result.tables["clients"]
    assert result.quarantine.empty


def test_semicolon_files_are_read_with_a_note(tmp_path: Path) -> None:
    folder = write_study(tmp_path / "s", sessions=SESSIONS.replace(",", ";"))
    result = run(folder)
    assert result.quarantine.empty
    assert any("semicolons" in note for note in result.summary["notes"])


def test_ragged_row_is_a_table_fault(tmp_path: Path) -> None:
    folder = write_study(tmp_path / "s", sessions=SESSIONS + "C3C,2,attended,1,2,3,4,5,6,7,8\n")
    with pytest.raises(StudyError, match=r"sessions.csv: a row has a different number of fields"):
        run(folder)


def test_parquet_input_matches_csv(study_dir: Path, tmp_path: Path) -> None:
    from_csv = run(study_dir)
    folder = write_study(tmp_path / "p")
    for table in ("clients", "sessions", "measures", "goals"):
        frame = pd.read_csv(folder / f"{table}.csv")
        (folder / f"{table}.csv").unlink()
        frame.to_parquet(folder / f"{table}.parquet", index=False)
    from_parquet = run(folder)
    for table, frame in from_csv.tables.items():
        pd.testing.assert_frame_equal(
            frame.astype(str), from_parquet.tables[table].astype(str), check_dtype=False
        )


def test_written_outputs_are_byte_identical(study_dir: Path, tmp_path: Path) -> None:
    names = ["clients", "sessions", "measures", "goals", "quarantine", "summary"]

    def outputs(folder: Path) -> dict[str, Path]:
        suffix = {"quarantine": ".csv", "summary": ".json"}
        return {name: folder / f"{name}{suffix.get(name, '.parquet')}" for name in names}

    first, second = outputs(tmp_path / "a"), outputs(tmp_path / "b")
    write_validation(run(study_dir), first)
    write_validation(run(study_dir), second)
    for name in names:
        assert first[name].read_bytes() == second[name].read_bytes(), name
    summary = json.loads(first["summary"].read_text())
    assert summary["tables"]["measures"]["rows_in"] == 37
    assert len(summary["input_checksums_sha256"]["clients.csv"]) == 64
