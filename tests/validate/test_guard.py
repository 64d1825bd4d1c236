"""The identifier guard: every kind fires on an identifier and stays quiet on its near misses,
acknowledgement clears exactly one column, and no cell value ever leaves the guard."""

from __future__ import annotations

import datetime as dt
import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from accord.core import identifiers
from accord.core.errors import IdentifierError, StudyError
from accord.validate import guard
from accord.validate.guard import (
    KIND_LABELS,
    Finding,
    GuardReport,
    QuasiIdentifierWarning,
    check_identifiers,
    name_tokens,
    scan_identifiers,
)

FILES = {
    "clients": "clients.csv",
    "sessions": "sessions.csv",
    "measures": "measures.csv",
    "goals": "goals.csv",
}


def contract_tables() -> dict[str, pd.DataFrame]:
    """A small study with every contract column, nothing identifying in it."""
    clients = pd.DataFrame(
        {
            "client_id": ["C7Q2XK", "C0012", "B4MZ71", "X9P3LD"],
            "therapist_id": ["T01", "T02", "T01", ""],
            "site_id": ["north", "north", "south", "south"],
            "arm": ["collaborative", "usual_care", "collaborative", "usual_care"],
            "intake_year": [2019, 2020, 2021, 2021],
            "age": [34, 89, 45, 27],
            "age_band": ["25-34", "65-89", "45-54", "25-34"],
            "gender": ["female", "male", "female", "female"],
            "end_reason": ["completed", "dropout", "referred", "ongoing"],
        }
    )
    sessions = pd.DataFrame(
        {
            "client_id": ["C7Q2XK", "C7Q2XK", "C0012", "B4MZ71"],
            "session_number": [1, 2, 1, 12345],
            "status": ["attended", "no_show", "cancelled", "attended"],
            "day": [0, 7, 0, 3],
            "duration_min": [50.0, 0.0, 0.0, 45.0],
            "modality": ["in_person", "video", "phone", "other"],
            "homework_assigned": [True, False, False, True],
            "homework_completion": [0.5, np.nan, np.nan, 1.0],
            "goal_review": [True, False, False, True],
        }
    )
    measures = pd.DataFrame(
        {
            "client_id": ["C7Q2XK", "C7Q2XK", "C0012", "B4MZ71"],
            "session_number": [0, 1, 0, 1],
            "instrument": ["phq9", "gad7", "wai_sr", "gas"],
            "rater": ["client", "client", "therapist", "observer"],
            "item": ["1", "total", "12", "G1"],
            "value": [2.0, 14.0, 5.0, 1.0],
            "phase": ["intake", "treatment", "intake", "follow_up"],
        }
    )
    goals = pd.DataFrame(
        {
            "client_id": ["C7Q2XK", "C0012"],
            "goal_id": ["G1", "G2"],
            "set_session": [1, 2],
            "set_by": ["joint", "client"],
            "client_importance": [5, 3],
            "therapist_importance": [4, 3],
            "smart_specific": [True, False],
            "smart_measurable": [True, True],
            "smart_achievable": [True, True],
            "smart_relevant": [False, True],
            "smart_time_bound": [True, False],
            "status": ["achieved", "active"],
            "revised_session": [pd.NA, 3],
        }
    )
    return {"clients": clients, "sessions": sessions, "measures": measures, "goals": goals}


def with_column(table: str, column: str, values: list, tables=None) -> dict[str, pd.DataFrame]:
    tables = tables or contract_tables()
    df = tables[table].copy()
    df[column] = values
    tables[table] = df
    return tables


def kinds(report: GuardReport, column: str | None = None) -> set[str]:
    return {f.kind for f in report.findings if column is None or f.column == column}


def only(report: GuardReport, kind: str) -> Finding:
    hits = [f for f in report.findings if f.kind == kind]
    assert len(hits) == 1, report.findings
    return hits[0]


def as_dtype(values: list, dtype: str) -> pd.Series:
    if dtype == "object":
        return pd.Series(values, dtype=object)
    return pd.Series(values, dtype=dtype)


TEXT_DTYPES = ["object", "string[python]", "string[pyarrow]", "category"]


# --------------------------------------------------------------------------- clean input


@pytest.mark.parametrize("dtype", TEXT_DTYPES)
def test_contract_tables_pass_with_any_text_dtype(dtype):
    tables = contract_tables()
    for df in tables.values():
        for col in df.columns:
            if df[col].dtype == object and col != "revised_session":
                df[col] = as_dtype(df[col].tolist(), dtype)
    report = check_identifiers(tables, FILES)
    assert report.findings == []
    assert report.ok


def test_contract_tables_pass_when_read_as_text():
    # An ingest that reads every column as text must not turn session numbers into ZIP codes.
    tables = {
        name: df.astype(object).where(df.notna(), None).astype("string")
        for name, df in contract_tables().items()
    }
    assert scan_identifiers(tables, FILES).findings == []


def test_plausible_covariates_pass():
    tables = with_column("clients", "referral_source", ["GP", "self", "self-referral", "A&E"])
    tables = with_column("clients", "baseline_severity", [12.5, 20.0, 7.0, 15.0], tables)
    tables = with_column("clients", "diagnosis", ["F32.1", "F41.1", "F43.1", "F33.0"], tables)
    assert scan_identifiers(tables, FILES).findings == []


# --------------------------------------------------------------------------- column names


@pytest.mark.parametrize(
    "column",
    [
        "notes",
        "therapist_notes",
        "free text",
        "freeText",
        "comments",
        "description",
        "name",
        "patient_name",
        "firstName",
        "last_name",
        "surname",
        "initials",
        "address",
        "street",
        "city",
        "zip",
        "zip_code",
        "post_code",
        "postcode",
        "dob",
        "DOB",
        "dateOfBirth",
        "birth_year",
        "intake_date",
        "phone",
        "tel_no",
        "mobile",
        "fax",
        "email",
        "e-mail",
        "E-Mail Address",
        "ssn",
        "social_security_number",
        "mrn",
        "medical_record_number",
        "nhs_number",
        "NHSNumber",
        "patient_id",
        "insurance_id",
        "member_id",
        "policy_number",
        "health_plan",
        "account",
        "license",
        "passport",
        "vehicle_id",
        "license_plate",
        "device_serial",
        "device_id",
        "url",
        "website",
        "ip",
        "ip_address",
        "IPAddress",
        "photo",
        "image_file",
    ],
)
def test_identifier_column_names_are_found(column):
    tables = with_column("sessions", column, ["x"] * 4)
    finding = only(scan_identifiers(tables, FILES), "column_name")
    assert (finding.table, finding.file, finding.column) == ("sessions", "sessions.csv", column)
    assert finding.rows == 0


@pytest.mark.parametrize(
    "column",
    [
        "rename",
        "renamed",
        "filename",
        "instrument_name",
        "scale_name",
        "session_number",
        "family_member",
        "device_type",
        "record_id",
        "stage",
        "usage",
        "context",
        "update_flag",
        "initial_severity",
        "first_session",
        "time_in_treatment",
        "policy",
        "medication",
        "cellular_phenotype",
    ],
)
def test_harmless_column_names_pass(column):
    tables = with_column("sessions", column, ["x"] * 4)
    assert scan_identifiers(tables, FILES).findings == []


def test_column_name_message_names_the_category_and_token():
    tables = with_column("sessions", "notes", ["x"] * 4)
    finding = only(scan_identifiers(tables, FILES), "column_name")
    assert finding.describe() == (
        "sessions.csv, column 'notes': column name suggests free text (notes)"
    )


def test_name_tokens_split_on_separators_camel_case_and_digits():
    assert name_tokens("dateOfBirth") == ["date", "of", "birth"]
    assert name_tokens("IPAddress") == ["ip", "address"]
    assert name_tokens("e-mail address") == ["e", "mail", "address"]
    assert name_tokens("zip5") == ["zip", "5"]
    assert name_tokens("phq9_total") == ["phq", "9", "total"]


# --------------------------------------------------------------------------- values


VALUE_HITS = {
    "email": ["jane.doe@example.org", "contact: j_smith+1@mail.example.co.uk"],
    "phone": [
        "555-867-5309",
        "(555) 867-5309",
        "555.867.5309",
        "1-555-867-5309",
        "+1 555 867 5309",
        "5558675309",
        "867-5309",
        "+44 20 7946 0958",
        "020 7946 0958",
        "07700 900123",
        "07700900123",
        "+33612345678",
        "call 555 867 5309 after six",
    ],
    "ssn": ["078-05-1120", "078 05 1120", "078051120", "000-00-0000", "ssn 987-65-4321"],
    "date": [
        "1987-04-12",
        "2024/3/5",
        "2024-03-05T10:00",
        "2024-03-05 10:00:00",
        "20240305",
        "05/03/2024",
        "3/5/24",
        "05-03-2024",
        "05.03.2024",
        "5 March 2024",
        "5th of March 2024",
        "05-Mar-24",
        "12MAR2024",
        "March 5, 2024",
        "Sept 5 2024",
        "seen on 5 Mar 2024 at clinic",
    ],
    "zip": ["90210", "90210-1234", " 02139 ", "lives at 90210-1234"],
    "url": ["https://x.example", "http://example.org/a?b=1", "www.example.com"],
    "ip_address": ["192.168.10.7", "10.0.0.1", "2001:db8::8a2e:370:7334", "fe80::1"],
    "partial_date": ["March 2024", "April 2023", "2023-04", "17/04", "Apr-23", "04/2023"],
    "address": ["12 Baker Street", "1600 Pennsylvania Ave", "flat 2, SW1A 1AA", "PO Box 42"],
    "record_number": ["MRN 1234567", "NHS 123 456 7890", "mrn:7654321", "Record no. 55123"],
    "name": ["Jane Goldberg", "Goldberg, Jane", "Dr Goldberg", "maria garcia", "J. Smith"],
}

# Values that look a little like one of the kinds but are not identifiers.
NEAR_MISSES = [
    "C0012",
    "C7Q2XK",
    "12",
    "1234",
    "2024",
    "1234567",
    "18-24",
    "65-89",
    "90+",
    "0-10",
    "100-1000",
    "1.5",
    "3.14159265",
    "0.123456789",
    "phq9",
    "total",
    "v1.2.3",
    "10:00",
    "10:00:00",
    "13/25/2024",
    "2024-13-05",
    "32/01/2024",
    "F32.1",
    "self-referral",
    "A&E",
    "1234-5678",
    "12345678901234567",
    "at 5 may go",
    "summary",
]


@pytest.mark.parametrize(
    ("kind", "value"), [(k, v) for k, values in VALUE_HITS.items() for v in values]
)
def test_identifier_values_are_found(kind, value):
    tables = with_column("clients", "referral_source", ["GP", value, "self", value])
    report = scan_identifiers(tables, FILES)
    finding = only(report, kind)
    assert (finding.file, finding.column, finding.rows) == ("clients.csv", "referral_source", 2)


@pytest.mark.parametrize("value", NEAR_MISSES)
def test_near_miss_values_pass(value):
    tables = with_column("sessions", "referral_source", ["GP", value, "self", value])
    assert scan_identifiers(tables, FILES).findings == []


def test_vectorised_and_plain_scans_agree():
    # Over _VECTORISE_FROM unique values the loose RE2 prefilters run in pyarrow; they must
    # keep every value the exact patterns would find.
    planted = [v for values in VALUE_HITS.values() for v in values] + NEAR_MISSES
    filler = [f"filler-{i}" for i in range(identifiers._VECTORISE_FROM)]
    values = planted + filler
    large = identifiers.scan_values(values, list(identifiers.PATTERNS))
    for i, value in enumerate(planted):
        small = identifiers.scan_values([value], list(identifiers.PATTERNS))
        assert {k for k, m in large.items() if m[i]} == set(small), value
    assert not any(m[len(planted) :].any() for m in large.values())


@pytest.mark.parametrize("dtype", TEXT_DTYPES)
def test_values_are_found_and_counted_in_every_text_dtype(dtype):
    values = ["jane.doe@example.org", None, "GP", "jane.doe@example.org"]
    tables = with_column("clients", "referral_source", as_dtype(values, dtype))
    finding = only(scan_identifiers(tables, FILES), "email")
    assert finding.rows == 2


def test_unused_category_level_is_still_found():
    values = pd.Categorical(["GP", "GP", "self", "self"], categories=["GP", "self", "555-867-5309"])
    tables = with_column("clients", "referral_source", values)
    finding = only(scan_identifiers(tables, FILES), "phone")
    assert finding.rows == 0
    assert finding.describe().endswith("in unused category levels (0 rows)")


def test_values_in_a_large_measures_column_are_counted_from_uniques():
    n = 200_000
    item = pd.Series(np.where(np.arange(n) % 50_000 == 7, "1987-04-12", "total"))
    tables = contract_tables()
    tables["measures"] = pd.DataFrame(
        {"client_id": "C7Q2XK", "session_number": 1, "instrument": "phq9", "item": item}
    ).astype({"item": "category", "client_id": "string[pyarrow]"})
    finding = only(scan_identifiers(tables, FILES), "date")
    assert (finding.column, finding.rows) == ("item", 4)


@pytest.mark.parametrize("dtype", ["string[pyarrow]", pd.ArrowDtype(pa.large_string())])
def test_long_arrow_columns_are_hashed_in_parallel_slices(dtype, monkeypatch):
    monkeypatch.setattr(guard, "_PARALLEL_FROM", 10)
    monkeypatch.setattr(guard.os, "cpu_count", lambda: 4)
    values = ["total"] * 40 + ["078-05-1120", None, "078-05-1120"]
    series = pd.Series(values, dtype=dtype)
    distinct = guard._arrow_unique(series)
    assert sorted(v for v in distinct if v is not None) == ["078-05-1120", "total"]
    tables = with_column("sessions", "item", ["1"] * 4)
    tables["measures"] = pd.DataFrame({"client_id": "C7Q2XK", "referral": series})
    finding = only(scan_identifiers(tables, FILES), "ssn")
    assert (finding.column, finding.rows) == ("referral", 2)


def test_date_typed_columns_and_date_objects_are_dates():
    tables = with_column(
        "clients", "referral_source", pd.to_datetime(["2024-01-02", None, "2024-02-03", None])
    )
    assert only(scan_identifiers(tables, FILES), "date").rows == 2
    values = [dt.date(2024, 1, 2), "GP", dt.datetime(2024, 2, 3, 9, 30), None]
    tables = with_column("clients", "referral_source", pd.Series(values, dtype=object))
    assert only(scan_identifiers(tables, FILES), "date").rows == 2


def test_five_digit_numbers_are_zip_codes_only_in_text_columns():
    # session_number of 12345 in an integer column (contract_tables) is fine; so is a
    # numeric covariate; the same digits as text are flagged, and the label says why.
    tables = with_column("clients", "baseline_severity", [12345, 23456, 34567, 45678])
    assert scan_identifiers(tables, FILES).findings == []
    tables = with_column("clients", "referral_source", ["12345", "23456", "GP", "self"])
    finding = only(scan_identifiers(tables, FILES), "zip")
    assert finding.rows == 2
    assert "text" in finding.label


def test_numeric_contract_columns_read_as_text_are_not_scanned():
    tables = contract_tables()
    tables["sessions"] = tables["sessions"].astype({"session_number": str, "day": str})
    tables["sessions"]["session_number"] = ["10234", "10235", "1", "2"]
    assert scan_identifiers(tables, FILES).findings == []
    # ...unless something other than a number hides in them
    tables["sessions"]["day"] = ["0", "2024-03-05", "3", "4"]
    assert only(scan_identifiers(tables, FILES), "date").column == "day"


def test_pseudonym_id_columns_of_five_digits_are_not_zip_codes():
    tables = contract_tables()
    tables["clients"]["client_id"] = ["10234", "10235", "10236", "10237"]
    tables["clients"]["therapist_id"] = ["20001", "20002", "20001", "20002"]
    assert scan_identifiers(tables, FILES).findings == []


# --------------------------------------------------------------------------- ages


@pytest.mark.parametrize(
    ("column", "values", "rows"),
    [
        ("age", [34, 89, 45, 27], 0),
        ("age", [34, 90, 45, 27], 1),
        ("age", [34, 93, 102, 27], 2),
        ("age", [34.0, 90.0, np.nan, 27.0], 1),
        ("age", pd.array([34, 91, None, 27], dtype="Int64"), 1),
        ("age", ["34", "89", "", "27"], 0),
        ("age", ["34", "93", None, "27"], 1),
        ("age_years", [34, 95, 45, 27], 1),
        ("age_at_intake", ["34", "90 years", "45", "27"], 1),
        ("clientAge", [34, 90, 45, 27], 1),
        ("age_band", ["25-34", "90+", "45-54", "90+"], 0),
        ("age_band", ["25-34", "90-94", "95-99", "85-89"], 2),
        ("age_band", ["25-34", "93", "45-54", "27"], 1),
        ("age_months", [34, 120, 450, 27], 0),
        ("stage", [34, 120, 450, 27], 0),
    ],
)
def test_ages_of_90_or_more(column, values, rows):
    tables = with_column("clients", column, values)
    found = [f for f in scan_identifiers(tables, FILES).findings if f.kind == "age_90_plus"]
    assert sum(f.rows for f in found) == rows
    assert all(f.column == column for f in found)


def test_missing_value_codes_are_not_ages_or_zip_codes():
    tables = with_column("clients", "age", [34, 999, 45, -99])
    tables = with_column("clients", "age_band", ["25-34", "999", "45-54", "25-34"], tables)
    tables = with_column("clients", "referral_source", ["GP", "99999", "self", "GP"], tables)
    assert kinds(scan_identifiers(tables, FILES)) == {"age_90_plus", "zip"}
    report = scan_identifiers(tables, FILES, missing_codes=[-99, 999, "99999"])
    assert report.findings == []
    # a code hides only itself: a real age of 93 is still found
    tables["clients"].loc[0, "age"] = 93
    report = scan_identifiers(tables, FILES, missing_codes=[-99, 999, "99999"])
    assert only(report, "age_90_plus").rows == 1


# --------------------------------------------------------------------------- client IDs


@pytest.mark.parametrize(
    "client_id",
    [
        "078-05-1120",
        "078051120",
        "555-867-5309",
        "(555) 867-5309",
        "5558675309",
        "C-078051120",
        "P_078-05-1120",
        "4111111111111111",
    ],
)
def test_client_id_shaped_like_an_identifier(client_id):
    tables = contract_tables()
    tables["clients"]["client_id"] = [client_id, "C0012", "B4MZ71", "X9P3LD"]
    finding = only(scan_identifiers(tables, FILES), "id_shape")
    assert (finding.column, finding.rows) == ("client_id", 1)
    # reported once, as an ID problem, not again as a phone number or SSN
    assert kinds(scan_identifiers(tables, FILES)) == {"id_shape"}


def test_numeric_client_id_of_many_digits_is_flagged_in_any_table():
    tables = contract_tables()
    tables["measures"]["client_id"] = [5558675309, 5558675309, 12, 13]
    finding = only(scan_identifiers(tables, FILES), "id_shape")
    assert (finding.file, finding.rows) == ("measures.csv", 2)


@pytest.mark.parametrize("client_id", ["C7Q2XK", "C0012", "123456", "P-2024-017", "S01_0042x"])
def test_ordinary_client_ids_pass(client_id):
    tables = contract_tables()
    tables["clients"]["client_id"] = [client_id, "C0012x", "B4MZ71", "X9P3LD"]
    assert scan_identifiers(tables, FILES).findings == []


@pytest.mark.parametrize(
    ("client_id", "column", "value"),
    [
        ("smith_1980", "surname", "smith"),
        ("SMITH1980", "surname", "Smith"),
        ("T123-C045", "therapist_id", "T123"),
        ("north-0042", "site_id", "north"),
    ],
)
def test_derived_client_id(client_id, column, value):
    tables = contract_tables()
    df = tables["clients"]
    df["client_id"] = [client_id, "C0012", "B4MZ71", "X9P3LD"]
    if column not in df:
        df[column] = "x"
    df.loc[0, column] = value
    report = scan_identifiers(tables, FILES)
    finding = only(report, "derived_id")
    assert (finding.column, finding.detail, finding.rows) == ("client_id", column, 1)
    assert finding.describe() == (
        "clients.csv, column 'client_id': derived ID: client IDs that contain the value "
        f"of column '{column}' in 1 row"
    )


@pytest.mark.parametrize(
    ("client_id", "column", "value"),
    [
        ("AT123B", "therapist_id", "T123"),  # a chance overlap inside a longer token
        ("C34XQ", "age", 34),  # two-digit values are too short to mean anything
        ("C219805", "intake_year", 1980),  # inside a longer run of digits
        ("Q7JONESX", "gender", "female"),
        ("TRIAL2019-001", "intake_year", 2019),  # a year is part of many ID schemes
        ("smith_1980", "intake_year", 1980),
    ],
)
def test_chance_overlaps_are_not_derived_ids(client_id, column, value):
    tables = contract_tables()
    df = tables["clients"]
    df["client_id"] = [client_id, "C0012", "B4MZ71", "X9P3LD"]
    df.loc[0, column] = value
    assert "derived_id" not in kinds(scan_identifiers(tables, FILES))


def test_derived_id_is_checked_row_by_row():
    # 'smith' in the surname of another client does not make this client's ID derived
    tables = contract_tables()
    df = tables["clients"]
    df["client_id"] = ["smith_01", "C0012", "B4MZ71", "X9P3LD"]
    df["surname"] = ["jones", "smith", "brown", "patel"]
    assert "derived_id" not in kinds(scan_identifiers(tables, FILES))


def test_header_that_looks_like_data_is_withheld():
    # a CSV exported without its header row: the first data row becomes the column names
    tables = contract_tables()
    tables["clients"] = tables["clients"].rename(
        columns={"end_reason": "555-867-5309", "gender": "Jane Doe", "arm": "1987-04-12"}
    )
    found = [f for f in scan_identifiers(tables, FILES).findings if f.kind == "header_value"]
    assert [f.column for f in found] == [
        "column 4 (header withheld)",
        "column 8 (header withheld)",
        "column 9 (header withheld)",
    ]
    assert found[0].describe() == (
        "clients.csv, column 4 (header withheld): the column name itself looks like a data "
        "value (is the header row missing?)"
    )


def test_empty_tables_and_all_missing_columns_pass():
    tables = {name: df.iloc[0:0] for name, df in contract_tables().items()}
    assert scan_identifiers(tables, FILES).findings == []
    tables = with_column("clients", "referral_source", [None] * 4)
    tables = with_column("clients", "notes_flag", [np.nan] * 4, tables)
    assert kinds(scan_identifiers(tables, FILES)) == {"column_name"}


# --------------------------------------------------------------------------- acknowledgement


def test_acknowledging_table_dot_column_clears_only_that_column():
    tables = with_column("clients", "notes", ["jane.doe@example.org", "", "", ""])
    tables = with_column("sessions", "notes", ["call 555-867-5309", "", "", ""], tables)
    tables = with_column("sessions", "comments", ["x", "", "", ""], tables)
    report = scan_identifiers(tables, FILES, acknowledged=["sessions.notes"])
    assert {(f.table, f.column) for f in report.findings} == {
        ("clients", "notes"),
        ("sessions", "comments"),
    }


def test_acknowledging_a_bare_column_clears_it_in_every_table():
    tables = with_column("clients", "notes", ["jane.doe@example.org", "", "", ""])
    tables = with_column("sessions", "notes", ["call 555-867-5309", "", "", ""], tables)
    tables = with_column("sessions", "comments", ["x", "", "", ""], tables)
    report = scan_identifiers(tables, FILES, acknowledged=["notes"])
    assert {(f.table, f.column) for f in report.findings} == {("sessions", "comments")}
    assert check_identifiers(tables, FILES, acknowledged=["notes", "sessions.comments"]).ok


def test_acknowledgement_of_one_table_does_not_clear_the_same_column_elsewhere():
    tables = with_column("clients", "notes", ["x", "", "", ""])
    tables = with_column("goals", "notes", ["y", ""], tables)
    report = scan_identifiers(tables, FILES, acknowledged=["goals.notes"])
    assert [(f.table, f.kind) for f in report.findings] == [("clients", "column_name")]


# --------------------------------------------------------------------------- quasi-identifiers


def quasi_clients() -> pd.DataFrame:
    # by hand: (25-34, female, north) x 6, (25-34, male, north) x 3,
    # (35-44, female, south) x 2, (35-44, <missing>, south) x 1
    rows = (
        [("25-34", "female", "north")] * 6
        + [("25-34", "male", "north")] * 3
        + [("35-44", "female", "south")] * 2
        + [("35-44", None, "south")]
    )
    df = pd.DataFrame(rows, columns=["age_band", "gender", "site_id"])
    df.insert(0, "client_id", [f"Q{i:04d}" for i in range(len(df))])
    df["age"] = 40  # ignored: age_band is preferred when both are present
    return df


def test_quasi_identifier_combinations_below_k_give_one_warning():
    tables = {"clients": quasi_clients()}
    report = scan_identifiers(tables, FILES, k=5)
    assert report.findings == []
    assert report.warnings == [
        QuasiIdentifierWarning(
            table="clients",
            columns=("age_band", "gender", "site_id"),
            combinations=3,
            clients=6,
            k=5,
        )
    ]
    assert (
        report.warnings[0]
        .describe()
        .startswith(
            "clients: 3 combinations of (age_band, gender, site_id) are shared by fewer than 5 "
            "clients (6 clients in all)"
        )
    )


def test_quasi_identifier_k_and_columns_are_settings():
    tables = {"clients": quasi_clients()}
    (warning,) = scan_identifiers(tables, FILES, k=2).warnings
    assert (warning.combinations, warning.clients) == (1, 1)
    assert scan_identifiers(tables, FILES, k=1).warnings == []
    (warning,) = scan_identifiers(tables, FILES, k=5, quasi_identifiers=["gender"]).warnings
    assert (warning.columns, warning.combinations, warning.clients) == (("gender",), 2, 4)


def test_age_is_used_when_there_is_no_age_band():
    df = quasi_clients().drop(columns=["age_band", "gender", "site_id"])
    df["age"] = [30] * 10 + [31, 32]
    (warning,) = scan_identifiers({"clients": df}, FILES, k=5).warnings
    assert (warning.columns, warning.combinations, warning.clients) == (("age",), 2, 2)


def test_quasi_identifier_warning_does_not_stop_the_run(caplog):
    with caplog.at_level(logging.WARNING, logger="accord.validate.guard"):
        report = check_identifiers({"clients": quasi_clients()}, FILES)
    assert report.ok and len(report.warnings) == 1
    assert "3 combinations" in caplog.text


def test_no_warning_when_every_combination_is_common():
    df = quasi_clients()
    df["gender"] = "female"
    df["age_band"] = "25-34"
    df["site_id"] = "north"
    assert scan_identifiers({"clients": df}, FILES).warnings == []


# --------------------------------------------------------------------------- the error


def test_error_lists_every_finding_and_how_to_proceed():
    tables = with_column("clients", "email", ["jane.doe@example.org"] * 3 + ["GP"])
    tables = with_column("sessions", "notes", ["fine"] * 4, tables)
    with pytest.raises(IdentifierError) as info:
        check_identifiers(tables, FILES)
    err = info.value
    assert isinstance(err, StudyError)
    lines = str(err).splitlines()
    assert lines[0].startswith("Suspected identifiers in the input: 3 findings in")
    assert "clients.csv" in lines[0] and "sessions.csv" in lines[0]
    assert lines[1:4] == [
        "  clients.csv, column 'email': column name suggests an e-mail address (email)",
        "  clients.csv, column 'email': e-mail addresses in 3 rows",
        "  sessions.csv, column 'notes': column name suggests free text (notes)",
    ]
    assert "acknowledged_columns" in lines[-1]
    assert (err.file, err.column) == ("clients.csv", "email")
    assert len(err.report.findings) == 3


def test_report_to_dict_is_json_ready():
    tables = with_column("clients", "email", ["jane.doe@example.org"] * 4)
    data = json.loads(json.dumps(scan_identifiers(tables, FILES).to_dict()))
    assert data["ok"] is False
    assert {f["kind"] for f in data["findings"]} == {"column_name", "email"}
    assert all(set(f) >= {"table", "file", "column", "kind", "rows"} for f in data["findings"])


def test_every_kind_has_a_label():
    assert set(KIND_LABELS) == {
        "column_name",
        "header_value",
        "email",
        "phone",
        "ssn",
        "date",
        "zip",
        "url",
        "ip_address",
        "partial_date",
        "address",
        "record_number",
        "name",
        "age_90_plus",
        "id_shape",
        "derived_id",
    }


# --------------------------------------------------------------------------- no leaks


def plant_text(column, value):
    def build():
        return with_column("clients", column, [value, "GP", "GP", "GP"])

    return build


def plant_client_id(value):
    def build():
        tables = contract_tables()
        tables["clients"]["client_id"] = [value, "C0012", "B4MZ71", "X9P3LD"]
        return tables

    return build


def plant_age(value):
    def build():
        return with_column("clients", "age", [34, value, 45, 27])

    return build


def plant_derived():
    def build():
        tables = plant_client_id("okafor_2016")()
        tables["clients"]["family"] = ["okafor", "GP", "GP", "GP"]
        return tables

    return build


def plant_header():
    def build():
        tables = contract_tables()
        tables["clients"] = tables["clients"].rename(columns={"end_reason": "jane.doe@example.org"})
        return tables

    return build


LEAK_CASES = [
    (
        "email",
        "jane.doe@example.org",
        plant_text("referral_source", "jane.doe@example.org"),
    ),
    ("phone", "555-867-5309", plant_text("referral_source", "555-867-5309")),
    ("ssn", "078-05-1120", plant_text("referral_source", "078-05-1120")),
    ("date", "1987-04-12", plant_text("referral_source", "1987-04-12")),
    ("zip", "90210", plant_text("referral_source", "90210")),
    ("url", "https://x.example", plant_text("referral_source", "https://x.example")),
    ("url", "x.example", plant_text("referral_source", "https://x.example")),
    ("ip_address", "192.168.10.7", plant_text("referral_source", "192.168.10.7")),
    ("age_90_plus", "93", plant_age(93)),
    ("id_shape", "078-05-1120", plant_client_id("078-05-1120")),
    ("id_shape", "0780", plant_client_id("078-05-1120")),
    ("derived_id", "okafor", plant_derived()),
    ("derived_id", "2016", plant_derived()),
    ("header_value", "jane.doe", plant_header()),
]


@pytest.mark.parametrize(("kind", "secret", "build"), LEAK_CASES)
def test_no_value_leaks_anywhere(kind, secret, build, caplog, capsys):
    tables = build()
    with caplog.at_level(logging.DEBUG):
        report = scan_identifiers(tables, FILES)
        assert kind in kinds(report)
        with pytest.raises(IdentifierError) as info:
            check_identifiers(tables, FILES)
    err = info.value
    out, errout = capsys.readouterr()
    surfaces = {
        "message": str(err),
        "args": repr(err.args),
        "error attributes": f"{err.file} {err.column}",
        "report str": str(report),
        "report repr": repr(report),
        "findings": " ".join(f"{f!r} {f.describe()} {f.label}" for f in report.findings),
        "to_dict": json.dumps(report.to_dict()),
        "error report": json.dumps(err.report.to_dict()),
        "logs": caplog.text,
        "stdout": out,
        "stderr": errout,
    }
    for where, text in surfaces.items():
        assert secret.lower() not in text.lower(), f"value leaked through {where}"


def test_quasi_identifier_warning_shows_no_values(caplog, capsys):
    df = quasi_clients()
    df.loc[11, ["age_band", "gender", "site_id"]] = ["70-74", "two-spirit", "harbourside"]
    with caplog.at_level(logging.DEBUG):
        report = check_identifiers({"clients": df}, FILES)
    out, errout = capsys.readouterr()
    text = " ".join(
        [repr(report), str(report), json.dumps(report.to_dict()), caplog.text, out, errout]
        + [w.describe() for w in report.warnings]
    )
    assert report.warnings
    for secret in ["70-74", "two-spirit", "harbourside", "female", "north", "25-34"]:
        assert secret not in text
