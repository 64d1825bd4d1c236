"""The value guard: names and place/date fragments in values refused; pseudonyms never refused."""

from __future__ import annotations

import functools
import uuid

import numpy as np
import pandas as pd
import pytest
from test_guard import FILES, contract_tables, kinds, with_column

from accord.core import contract
from accord.core.errors import IdentifierError
from accord.core.identifiers import looks_identifying, shown_file
from accord.validate.guard import check_identifiers, scan_identifiers

N_IDS = 10_000


def _uuid4(rng: np.random.Generator, n: int) -> list[str]:
    return [str(uuid.UUID(bytes=rng.bytes(16), version=4)) for _ in range(n)]


@functools.cache
def _schemes() -> dict[str, list[str]]:
    rng = np.random.default_rng(20260416)
    hyphenated = _uuid4(rng, N_IDS)
    sequence = rng.permutation(99_999)[:N_IDS] + 1
    years = rng.integers(2000, 2031, N_IDS)
    return {
        "uuid4": hyphenated,
        "uuid4_hex": [u.replace("-", "") for u in _uuid4(rng, N_IDS)],
        "prefixed": [f"P-{k:05d}" for k in sequence],
        "eight_digit": [f"{y}{k:04d}" for y, k in zip(years, sequence % 10_000, strict=True)],
        "year_bearing": [f"TRIAL{y}-{k:05d}" for y, k in zip(years, sequence, strict=True)],
    }


SCHEMES = ["uuid4", "uuid4_hex", "prefixed", "eight_digit", "year_bearing"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_pseudonym_schemes_are_never_refused(scheme):
    ids = list(dict.fromkeys(_schemes()[scheme]))
    clients = pd.DataFrame(
        {
            "client_id": ids,
            "therapist_id": [f"T{i % 50:02d}" for i in range(len(ids))],
            "intake_year": [int(x[5:9]) if scheme == "year_bearing" else 2020 for x in ids],
        }
    )
    sessions = pd.DataFrame({"client_id": ids[:500], "session_number": 1})
    measures = pd.DataFrame({"client_id": ids[:500], "item": ids[:500], "value": 1.0})
    report = scan_identifiers(
        {"clients": clients, "sessions": sessions, "measures": measures}, FILES
    )
    assert report.findings == []


@pytest.mark.parametrize(
    "column", ["gender", "arm", "age_band", "referrer", "goal_wording", "therapist_id"]
)
@pytest.mark.parametrize(
    "value",
    [
        "Jane Goldberg",
        "Goldberg, Jane",
        "Goldberg Jane",
        "Dr Goldberg",
        "Mrs. Patel",
        "maria garcia",
        "JANE SMITH",
        "Summer Jones",
    ],
)
def test_names_in_values_are_refused_wherever_they_are_placed(column, value):
    tables = contract_tables()
    df = tables["clients"]
    if column not in df:
        df[column] = "self"
    df[column] = df[column].astype(object)
    df.loc[1, column] = value
    report = scan_identifiers(tables, FILES)
    assert "name" in kinds(report, column)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("partial_date", "April 2023"),
        ("partial_date", "2023-04"),
        ("partial_date", "17/04"),
        ("partial_date", "Apr-23"),
        ("address", "221B Baker Street"),
        ("record_number", "MRN 1234567"),
        ("record_number", "NHS 123 456 7890"),
    ],
)
@pytest.mark.parametrize("column", ["gender", "arm", "referrer"])
def test_place_and_date_fragments_are_refused(kind, value, column):
    tables = with_column("clients", column, [value, "self", "self", "self"])
    assert kind in kinds(scan_identifiers(tables, FILES), column)


@pytest.mark.parametrize(
    "value",
    [
        "collaborative",
        "usual_care",
        "Usual Care",
        "Hope Group",
        "female",
        "non_binary",
        "GP",
        "Summer School",
        "Max Dose",
        "Rose Hill",
        "Wave June",
        "Grace Period",
        "will attend",
    ],
)
def test_ordinary_labels_are_not_names(value):
    tables = with_column("clients", "arm", [value] * 4)
    assert scan_identifiers(tables, FILES).findings == []


@pytest.mark.parametrize("dtype", ["int64", "string"])
def test_numeric_extra_column_is_not_a_zip_code(dtype):
    steps = pd.Series([10234, 12001, 9876, 15555]).astype(dtype)
    tables = with_column("clients", "steps_per_day", steps.tolist())
    assert scan_identifiers(tables, FILES).findings == []


def test_codes_with_leading_zeros_are_still_zip_codes():
    tables = with_column("clients", "area", ["02139", "10001", "94110", "60601"])
    assert "zip" in kinds(scan_identifiers(tables, FILES), "area")


def test_refused_id_column_says_exactly_how_to_acknowledge_it():
    tables = contract_tables()
    tables["clients"]["client_id"] = ["078-05-1120", "C0012", "B4MZ71", "X9P3LD"]
    with pytest.raises(IdentifierError) as info:
        check_identifiers(tables, FILES)
    assert "acknowledged_columns: [clients.client_id]" in str(info.value)


def test_contract_column_names_are_never_withheld():
    names = {name for table in contract.TABLES for name in contract.columns(table)}
    assert [n for n in sorted(names) if looks_identifying(n)] == []


@pytest.mark.parametrize(
    "header", ["Jane Goldberg", "jane@x.org", "April 2023", "MRN 1234567", "555-867-5309"]
)
def test_identifying_headers_are_shown_by_position(header, capsys):
    tables = contract_tables()
    tables["clients"] = tables["clients"].rename(columns={"arm": header})
    with pytest.raises(IdentifierError) as info:
        check_identifiers(tables, FILES)
    text = str(info.value) + repr(info.value.args) + str(info.value.column)
    assert "column 4 (header withheld)" in text
    assert header.lower() not in text.lower()


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Goldberg_Jane_clients.csv", "the clients file (name withheld)"),
        ("jane.doe@example.org.csv", "the clients file (name withheld)"),
        ("clients_2023-04.csv", "the clients file (name withheld)"),
        ("clients.csv", "clients.csv"),
        ("site_a_records.csv", "site_a_records.csv"),
    ],
)
def test_identifying_file_names_are_withheld(name, shown):
    assert shown_file(name, "clients") == shown
