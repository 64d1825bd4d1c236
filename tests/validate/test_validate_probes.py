"""Probes against validation: planted identifiers never reach an output, export conventions
are named, keys do not collide and a fault in an optional cell does not drop a session."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import CLIENTS, ROOT, SESSIONS, measures_text, write_study

from accord.config import load_config, study_input
from accord.core import contract
from accord.core.errors import IdentifierError, StudyError
from accord.core.instruments import load_registry
from accord.validate import StudyInput, validate_study, write_validation
from accord.validate.checks import session_key

REGISTRY = load_registry()
OUTPUTS = ("clients", "sessions", "measures", "goals", "quarantine", "summary")


def run(folder: Path, **settings):
    return validate_study(StudyInput("study", folder, **settings), REGISTRY)


def written(result, folder: Path) -> str:
    """Every file validation writes, as text (Parquet both raw and read back)."""
    paths = {name: folder / f"{name}.parquet" for name in contract.TABLES}
    paths |= {"quarantine": folder / "quarantine.csv", "summary": folder / "summary.json"}
    write_validation(result, paths)
    texts = []
    for path in paths.values():
        texts.append(path.read_bytes().decode("utf-8", "replace"))
        if path.suffix == ".parquet":
            texts.append(pd.read_parquet(path).to_csv())
    return "\n".join(texts)


def assert_nowhere(secret: str, *texts: str) -> None:
    for text in texts:
        assert secret.casefold() not in text.casefold()


def with_client_value(column: str, value: str, clients: str = CLIENTS) -> str:
    header, first, *rest = clients.splitlines()
    names = header.split(",")
    cells = first.split(",")
    cells[names.index(column)] = value
    return "\n".join([header, ",".join(cells), *rest]) + "\n"


# --------------------------------------------------------------------------- leaks

NAME_PLACEMENTS = [
    ("gender", {}),
    ("arm", {}),
    ("referrer", {"extra_columns": {"clients": ("referrer",)}}),
    ("goal_wording", {"extra_columns": {"clients": ("goal_wording",)}}),
]
PLANTED = ["Jane Goldberg", "April 2023", "2023-04", "17/04", "12 Baker Street", "MRN 1234567"]


@pytest.mark.parametrize(("column", "settings"), NAME_PLACEMENTS)
@pytest.mark.parametrize("secret", PLANTED)
def test_identifier_in_a_value_is_refused_and_never_echoed(
    tmp_path, column, settings, secret, caplog, capsys
):
    clients = CLIENTS
    if column not in CLIENTS.splitlines()[0]:
        lines = CLIENTS.splitlines()
        clients = "\n".join([lines[0] + f",{column}"] + [f"{x},self" for x in lines[1:]]) + "\n"
    folder = write_study(tmp_path / "s", clients=with_client_value(column, secret, clients))
    with caplog.at_level(logging.DEBUG), pytest.raises(IdentifierError) as info:
        run(folder, **settings)
    out, err = capsys.readouterr()
    assert_nowhere(secret, str(info.value), repr(info.value.args), caplog.text, out, err)


def _redcap_copy(tmp_path: Path) -> tuple[Path, StudyInput]:
    folder = tmp_path / "redcap"
    shutil.copytree(ROOT / "tests" / "data" / "byod" / "redcap", folder)
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    config["studies"]["redcap"]["path"] = str(folder)
    (folder / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return folder, study_input(load_config(folder / "config.yaml"), "redcap")


def test_name_in_a_value_label_is_refused(tmp_path, caplog, capsys):
    folder, study = _redcap_copy(tmp_path)
    dictionary = folder / "dictionary.csv"
    text = dictionary.read_text(encoding="utf-8")
    dictionary.write_text(text.replace("1, female |", "1, Jane Goldberg |"), encoding="utf-8")
    with caplog.at_level(logging.DEBUG), pytest.raises(IdentifierError) as info:
        validate_study(study, REGISTRY)
    out, err = capsys.readouterr()
    assert "name" in {f.kind for f in info.value.report.findings}
    assert_nowhere("Goldberg", str(info.value), caplog.text, out, err)


def test_redcap_column_outside_the_dictionary_is_not_quoted(tmp_path, caplog, capsys):
    folder, study = _redcap_copy(tmp_path)
    records = folder / "records.csv"
    lines = records.read_text(encoding="utf-8").splitlines()
    records.write_text(
        "\n".join([lines[0] + ",Jane Goldberg"] + [f"{x}," for x in lines[1:]]) + "\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(StudyError) as info:
        validate_study(study, REGISTRY)
    out, err = capsys.readouterr()
    assert "(header withheld) is not described by the data dictionary" in str(info.value)
    assert_nowhere("Goldberg", str(info.value), repr(info.value.args), caplog.text, out, err)


@pytest.mark.parametrize("header", ["Jane Goldberg", "jane@x.org"])
def test_identifying_header_is_never_quoted(tmp_path, header, caplog, capsys):
    lines = CLIENTS.splitlines()
    clients = "\n".join([lines[0] + f",{header}"] + [f"{x},1" for x in lines[1:]]) + "\n"
    folder = write_study(tmp_path / "s", clients=clients)
    with caplog.at_level(logging.DEBUG), pytest.raises(StudyError) as info:
        run(folder)
    out, err = capsys.readouterr()
    assert "column 10 (header withheld)" in str(info.value)
    assert_nowhere(header, str(info.value), repr(info.value.args), caplog.text, out, err)


def test_unknown_harmless_header_is_still_named(tmp_path):
    lines = CLIENTS.splitlines()
    clients = "\n".join([lines[0] + ",referrer"] + [f"{x},GP" for x in lines[1:]]) + "\n"
    with pytest.raises(StudyError, match="column 'referrer' is not in the data contract"):
        run(write_study(tmp_path / "s", clients=clients))


GENDER_VARIANTS = {
    "Female": "female",
    "\u200ffemale": "female",
    "  FEMALE ": "female",
    "Non-binary": "non_binary",
    "\U0001f984": "other",
    "x" * 100_000: "other",
}


def test_gender_variants_are_normalised_or_other(tmp_path, caplog, capsys):
    variants = list(GENDER_VARIANTS)
    lines = CLIENTS.splitlines()
    rows = [lines[0]]
    for i, value in enumerate(variants):
        rows.append(f"C{i}X,T1,S1,collaborative,2024,34,25-44,{value},completed")
    folder = write_study(tmp_path / "s", clients="\n".join(rows) + "\n")
    with caplog.at_level(logging.DEBUG):
        result = run(folder)
    genders = result.tables["clients"].set_index("client_id")["gender"].astype(str)
    assert list(genders) == list(GENDER_VARIANTS.values())
    other = [c for c in result.summary["categories"] if c["kind"] == "other"]
    assert [(c["column"], c["labels"], c["rows"]) for c in other] == [("gender", 2, 2)]
    outputs = written(result, tmp_path / "out")
    out, err = capsys.readouterr()
    for secret in ("\U0001f984", "x" * 50, "\u200f", "Non-binary", "FEMALE"):
        for text in (outputs, caplog.text, out, err):
            assert secret not in text


def test_undeclared_arm_keeps_plain_labels_only(tmp_path):
    lines = CLIENTS.splitlines()
    arms = ["Intervención", "\u200fusual_care", "\U0001f984"]
    rows = [
        line.replace(old, new, 1)
        for line, old, new in zip(
            lines[1:], ["collaborative", "usual_care", "collaborative"], arms, strict=True
        )
    ]
    result = run(write_study(tmp_path / "s", clients="\n".join([lines[0], *rows]) + "\n"))
    assert list(result.tables["clients"]["arm"].astype(str)) == [
        "Intervención",
        "usual_care",
        "other",
    ]


def test_acknowledged_extra_column_still_publishes_no_name(tmp_path):
    lines = CLIENTS.splitlines()
    values = ["Jane Goldberg", "GP", "self"]
    rows = [f"{line},{v}" for line, v in zip(lines[1:], values, strict=True)]
    clients = "\n".join([lines[0] + ",referrer", *rows]) + "\n"
    result = run(
        write_study(tmp_path / "s", clients=clients),
        extra_columns={"clients": ("referrer",)},
        acknowledged_columns=("clients.referrer",),
    )
    assert list(result.tables["clients"]["referrer"].astype(str)) == ["other", "GP", "self"]
    assert_nowhere("Goldberg", written(result, tmp_path / "out"))


def test_declared_categories_keep_only_their_labels(tmp_path):
    lines = CLIENTS.splitlines()
    clients = "\n".join([lines[0], lines[1].replace("collaborative", "Hope Group"), *lines[2:]])
    result = run(
        write_study(tmp_path / "s", clients=clients + "\n"),
        categories={"arm": ("collaborative", "usual_care")},
    )
    assert sorted(result.tables["clients"]["arm"].astype(str)) == [
        "collaborative",
        "other",
        "usual_care",
    ]


def _mapped_study(tmp_path: Path, clients_file: str = "clients.csv"):
    """The tiny study read through a column map (its own file names, unmapped columns)."""
    folder = tmp_path / "s"

    def same(table: str, file: str) -> dict:
        header = (folder / file).read_text(encoding="utf-8").splitlines()[0].split(",")
        known = contract.columns(table)
        return {"file": file, "columns": {name: name for name in header if name in known}}

    entry = {
        "path": str(folder),
        "format": "mapped",
        "mapping": {
            "clients": same("clients", clients_file),
            "sessions": same("sessions", "sessions.csv"),
            "measures": same("measures", "measures.csv"),
            "goals": same("goals", "goals.csv"),
        },
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({"studies": {"s": entry}}), encoding="utf-8")
    return validate_study(study_input(load_config(config_path), "s"), REGISTRY)


def test_identifying_file_name_is_withheld_from_summary(tmp_path):
    folder = write_study(tmp_path / "s")
    (folder / "clients.csv").rename(folder / "Goldberg_Jane_clients.csv")
    result = _mapped_study(tmp_path, "Goldberg_Jane_clients.csv")
    outputs = written(result, tmp_path / "out")
    assert "the clients file (name withheld)" in json.dumps(result.summary)
    assert_nowhere("Goldberg", outputs)


@pytest.mark.parametrize("header", ["jane@x.org", "Jane Goldberg"])
def test_unmapped_identifying_header_is_withheld_from_notes(tmp_path, header, caplog, capsys):
    lines = CLIENTS.splitlines()
    clients = "\n".join([lines[0] + f",{header}"] + [f"{x},1" for x in lines[1:]]) + "\n"
    write_study(tmp_path / "s", clients=clients)
    with caplog.at_level(logging.DEBUG):
        result = _mapped_study(tmp_path)
    outputs = written(result, tmp_path / "out")
    out, err = capsys.readouterr()
    assert any("column 10 (header withheld)" in note for note in result.summary["notes"])
    assert_nowhere(header, outputs, caplog.text, out, err)


# --------------------------------------------------------------------------- hygiene


def test_session_numbers_cannot_collide_across_clients():
    # the old key client * 2**32 + session gave C0 at 2**32 + 1 the key of C1 at session 1
    key = session_key(np.array([0, 1]), pd.Series([2**32 + 1, 1], dtype="Int64"))
    assert key[0] != key[1]
    assert key[0] == -1  # beyond the contract's maximum: no key, and the row is quarantined


def test_huge_session_number_is_quarantined_not_matched(tmp_path):
    measures = measures_text() + "C1A,4294967297,phq9,client,1,1,\n"
    result = run(write_study(tmp_path / "s", measures=measures))
    q = result.quarantine
    row = q[(q["table"] == "measures") & (q["row_number"] == 38)]
    assert "less_than_or_equal_to(100000)" in set(row["rule"])


def test_missing_marker_in_therapist_id_is_missing(tmp_path):
    clients = CLIENTS.replace("C2B,T1,", "C2B,NA,")
    result = run(write_study(tmp_path / "s", clients=clients))
    therapists = result.tables["clients"].set_index("client_id")["therapist_id"]
    assert pd.isna(therapists["C2B"])
    assert "NA" not in set(therapists.dropna().astype(str))
    assert any("therapist_id held a missing-value marker" in n for n in result.summary["notes"])


def test_item_off_an_integer_scale_is_quarantined(tmp_path):
    measures = measures_text() + "C1A,0,gad7,client,1,1.5,\n"
    result = run(write_study(tmp_path / "s", measures=measures))
    q = result.quarantine
    assert list(q.loc[q["table"] == "measures", "rule"]) == ["item_step(1)"]


def test_na_in_an_optional_column_empties_the_cell_only(tmp_path):
    sessions = SESSIONS.replace("video,true,0.5,", "video,true,NA,")
    result = run(write_study(tmp_path / "s", sessions=sessions))
    assert result.quarantine.empty
    assert result.summary["tables"]["sessions"]["cells_emptied"] == [
        {"rule": "type:number", "column": "homework_completion", "cells": 1}
    ]
    assert result.summary["tables"]["measures"]["rows_accepted"] == 37


def _r_export(text: str) -> str:
    """A table as R's write.csv leaves it: NA in every empty cell."""
    lines = text.splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        out.append(",".join(cell if cell != "" else "NA" for cell in line.split(",")))
    return "\n".join(out) + "\n"


def test_r_na_export_names_the_missing_code_to_set(tmp_path, caplog):
    folder = write_study(tmp_path / "s", clients=_r_export(CLIENTS), sessions=_r_export(SESSIONS))
    with caplog.at_level(logging.WARNING):
        result = run(folder)
    hint = 'set missing_codes: ["NA"]'
    assert any(hint in note for note in result.summary["notes"])
    assert hint in caplog.text
    fixed = run(folder, missing_codes=("NA",))
    assert fixed.quarantine.empty
    assert not any(hint in note for note in fixed.summary["notes"])


def _decimal_comma(text: str) -> str:
    rows = [line.replace(",", ";") for line in text.splitlines()]
    return "\n".join(row.replace("0.5", "0,5") for row in rows) + "\n"


def test_decimal_commas_are_detected_and_read_when_declared(tmp_path):
    folder = write_study(tmp_path / "s", sessions=_decimal_comma(SESSIONS))
    result = run(folder)
    assert any('set decimal: ","' in note for note in result.summary["notes"])
    fixed = run(folder, decimal=",")
    completion = fixed.tables["sessions"]["homework_completion"]
    assert sorted(completion.dropna().tolist()) == [0.5, 1.0]
    assert not fixed.summary["tables"]["sessions"]["cells_emptied"]


def test_capitalised_statuses_are_read_as_the_contract_values(tmp_path):
    sessions = SESSIONS.replace("attended", "Attended").replace("no_show", "No Show")
    result = run(write_study(tmp_path / "s", sessions=sessions))
    assert result.quarantine.empty
    assert set(result.tables["sessions"]["status"].astype(str)) == {"attended", "no_show"}
    normalised = [c for c in result.summary["categories"] if c["kind"] == "normalised"]
    assert [(c["column"], c["labels"], c["rows"]) for c in normalised] == [("status", 2, 5)]
