"""The exported contract in data/schemas/ must match the pandera models."""

from __future__ import annotations

from conftest import ROOT

from accord.core import contract


def test_exported_schemas_are_current(tmp_path) -> None:
    written = contract.export_schemas(tmp_path)
    for path in written:
        committed = ROOT / "data" / "schemas" / path.name
        assert committed.exists(), f"{committed} is missing: run `make schemas`"
        assert committed.read_text() == path.read_text(), (
            f"{committed} is out of date with src/accord/core/contract.py: run `make schemas`"
        )


def test_contract_columns_match_the_specification() -> None:
    # Column lists as in the data contract, in order.
    assert list(contract.columns("clients")) == [
        "client_id",
        "therapist_id",
        "site_id",
        "arm",
        "intake_year",
        "age",
        "age_band",
        "gender",
        "end_reason",
    ]
    assert list(contract.columns("sessions")) == [
        "client_id",
        "session_number",
        "status",
        "day",
        "duration_min",
        "modality",
        "homework_assigned",
        "homework_completion",
        "goal_review",
    ]
    assert list(contract.columns("measures")) == [
        "client_id",
        "session_number",
        "instrument",
        "rater",
        "item",
        "value",
        "phase",
    ]
    assert list(contract.columns("goals")) == [
        "client_id",
        "goal_id",
        "set_session",
        "set_by",
        "client_importance",
        "therapist_importance",
        *contract.SMART_CRITERIA,
        "status",
        "revised_session",
    ]
    required = {
        t: [c for c, s in contract.columns(t).items() if s.required] for t in contract.TABLES
    }
    assert required == {
        "clients": ["client_id", "therapist_id"],
        "sessions": ["client_id", "session_number", "status"],
        "measures": ["client_id", "session_number", "instrument", "item", "value"],
        "goals": ["client_id", "goal_id", "set_session", "set_by"],
    }
