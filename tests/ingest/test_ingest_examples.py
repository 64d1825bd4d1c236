"""The example studies in tests/data/byod (REDCap, SPSS, Excel), made by make_examples.py from
a simulated study: each maps back onto the simulated tables, row for row, and (opt-in) runs
end to end through `accord run` to a report."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from accord.config import load_config, study_input
from accord.core.instruments import load_registry
from accord.validate import validate_study

ROOT = Path(__file__).resolve().parents[2]
BYOD = ROOT / "tests" / "data" / "byod"
EXAMPLES = {"redcap": "redcap", "redcap_labels": "redcap", "spss": "spss", "excel": "excel"}


@cache
def _examples():
    spec = importlib.util.spec_from_file_location("make_examples", BYOD / "make_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def _simulated():
    return _examples().study()


@cache
def _validated(name: str):
    config = load_config(BYOD / EXAMPLES[name] / "config.yaml")
    return validate_study(study_input(config, name, root=ROOT), load_registry())


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[tuple]:
    out = frame[columns].astype(object).where(frame[columns].notna(), None)
    rows = [tuple(_plain(v) for v in row) for row in out.itertuples(index=False)]
    return sorted(rows, key=lambda r: tuple(str(v) for v in r))


def _plain(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return value


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_is_accepted_and_reconciles(name: str) -> None:
    summary = _validated(name).summary
    sim = _simulated()
    for table in ("clients", "sessions", "goals"):
        counts = summary["tables"][table]
        assert counts["rows_in"] == len(getattr(sim, table)), table
    for counts in summary["tables"].values():
        assert counts["rows_in"] == counts["rows_accepted"] + counts["rows_quarantined"]
    assert summary["format"] == ("redcap" if name.startswith("redcap") else "mapped")


def test_redcap_measures_are_the_exported_instruments() -> None:
    sim = _simulated().measures
    exported = sim[
        sim["instrument"].isin(["phq9", "gad7"])
        | ((sim["instrument"] == "wai_sr") & (sim["rater"] == "client"))
    ]
    result = _validated("redcap")
    columns = ["client_id", "session_number", "instrument", "rater", "item", "value"]
    assert _rows(result.tables["measures"], columns) == _rows(exported, columns)
    # records.csv: one baseline row per client, one row per goal and per session.
    sim_all = _simulated()
    assert result.summary["source_rows"] == {
        "records.csv": len(sim_all.clients) + len(sim_all.goals) + len(sim_all.sessions)
    }


def test_redcap_labels_export_gives_the_same_tables() -> None:
    raw, labels = _validated("redcap"), _validated("redcap_labels")
    for table in ("clients", "sessions", "measures", "goals"):
        pd.testing.assert_frame_equal(
            raw.tables[table].astype(str), labels.tables[table].astype(str), obj=table
        )


def test_redcap_tables_match_the_simulated_study() -> None:
    sim = _simulated()
    result = _validated("redcap")
    columns = ["client_id", "therapist_id", "arm", "age", "end_reason"]
    assert _rows(result.tables["clients"], columns) == _rows(sim.clients, columns)
    columns = ["client_id", "session_number", "status", "day", "modality"]
    assert _rows(result.tables["sessions"], columns) == _rows(sim.sessions, columns)
    columns = ["client_id", "goal_id", "set_by", "smart_time_bound", "status"]
    assert _rows(result.tables["goals"], columns) == _rows(sim.goals, columns)


def test_spss_keeps_labels_and_user_missing() -> None:
    sim = _simulated()
    result = _validated("spss")
    clients = result.tables["clients"].set_index("client_id")
    # make_examples coded five ages as user-missing (999 not asked at rows 3, 11, 27; 99 refused
    # at rows 5 and 30): missing now, never ages of 99 or 999.
    coded = sim.clients["client_id"].iloc[[3, 11, 27, 5, 30]]
    assert clients.loc[coded, "age"].isna().all()
    assert clients["age"].max() <= 89
    tables = result.summary["tables"]
    assert tables["clients"]["missing_codes_replaced_by_column"] == {"age": 5}
    # Unknown durations were coded 999, one per session without a duration.
    assert tables["sessions"]["missing_codes_replaced_by_column"] == {
        "duration_min": int(sim.sessions["duration_min"].isna().sum())
    }
    # Value labels: ending 1..5 and condition 1/2 arrive as the contract's labels.
    columns = ["client_id", "arm", "end_reason", "gender"]
    assert _rows(result.tables["clients"], columns) == _rows(sim.clients, columns)
    columns = ["client_id", "session_number", "status", "modality", "homework_assigned"]
    assert _rows(result.tables["sessions"], columns) == _rows(sim.sessions, columns)
    # Three items were skipped (99): PHQ-9 and GAD-7 rows of the simulated study less three.
    questionnaires = sim.measures[sim.measures["instrument"].isin(["phq9", "gad7"])]
    assert tables["measures"]["rows_in"] == len(questionnaires) - 3
    assert tables["measures"]["missing_codes_replaced"] == 3


def test_excel_sheets_header_rows_and_wide_attendance() -> None:
    sim = _simulated()
    result = _validated("excel")
    columns = ["client_id", "session_number", "status", "day"]
    assert _rows(result.tables["sessions"], columns) == _rows(sim.sessions, columns)
    columns = ["client_id", "arm", "intake_year", "end_reason"]
    assert _rows(result.tables["clients"], columns) == _rows(sim.clients, columns)
    questionnaires = sim.measures[sim.measures["instrument"].isin(["phq9", "gad7"])]
    tables = result.summary["tables"]
    # Two PHQ-9 items were entered as the clinic's -99.
    assert tables["measures"]["rows_in"] == len(questionnaires) - 2
    assert tables["measures"]["missing_codes_replaced_by_column"] == {"value": 2}
    # Every column of every sheet is mapped, and the questionnaire sheet has one row per visit.
    assert result.summary["notes"] == []
    visits = questionnaires[["client_id", "session_number"]].drop_duplicates()
    assert result.summary["source_rows"]["workbook.xlsx[Questionnaires]"] == len(visits)


def test_an_unknown_attendance_code_is_quarantined_at_its_sheet_row(tmp_path: Path) -> None:
    import openpyxl

    folder = tmp_path / "excel"
    folder.mkdir()
    book = openpyxl.load_workbook(BYOD / "excel" / "workbook.xlsx")
    sheet = book["Appointments"]
    sheet.cell(row=5, column=2).value = "late"  # sheet row 5 (the header is row 1), attend_s1
    book.save(folder / "workbook.xlsx")
    config = yaml.safe_load((BYOD / "excel" / "config.yaml").read_text())
    config["studies"]["excel"]["path"] = str(folder)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    study = study_input(load_config(tmp_path / "config.yaml"), "excel")
    result = validate_study(study, load_registry())
    q = result.quarantine
    row = q[q["rule"] == "unmapped_value"]
    # The row number is the one Excel shows beside the row, not its position among the data.
    assert row[["table", "row_number", "column", "source", "source_column"]].values.tolist() == [
        ["sessions", 5, "status", "workbook.xlsx[Appointments]", "attend_s1"]
    ]


def test_the_committed_redcap_export_is_what_the_script_writes(tmp_path: Path) -> None:
    _examples().write_redcap(tmp_path)
    for name in ("records.csv", "records_labels.csv", "dictionary.csv"):
        assert (tmp_path / name).read_bytes() == (BYOD / "redcap" / name).read_bytes(), name


def test_the_examples_stay_small() -> None:
    total = sum(p.stat().st_size for p in BYOD.rglob("*") if p.is_file())
    assert total < 1_000_000


@pytest.mark.e2e
def test_each_example_runs_end_to_end_to_a_report(tmp_path: Path) -> None:
    config = {"studies": {}, "models": [{"id": "growth", "kind": "growth", "primary": True}]}
    for name, folder in EXAMPLES.items():
        entry = yaml.safe_load((BYOD / folder / "config.yaml").read_text())["studies"][name]
        entry["path"] = str(BYOD / folder)
        config["studies"][name] = entry
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord.cli",
            "run",
            "--config",
            "config.yaml",
            "--cores",
            "2",
            "--snakefile",
            str(ROOT / "Snakefile"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for name in EXAMPLES:
        assert (tmp_path / "reports" / name / "report.html").stat().st_size > 10_000
        summary = json.loads(
            (tmp_path / "results" / name / "validation" / "summary.json").read_text()
        )
        expected = _validated(name).summary["tables"]
        for table, counts in summary["tables"].items():
            assert counts["rows_in"] == expected[table]["rows_in"], (name, table)
            assert counts["rows_accepted"] == expected[table]["rows_accepted"], (name, table)
