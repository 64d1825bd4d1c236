"""Faults give one clear line naming the file or key, never a traceback, and leave nothing
partial behind: folders and unreadable or compressed files in place of tables, a config that is
not a mapping, a full disk while writing, and config mistakes caught before any model runs."""

from __future__ import annotations

import errno
import gzip
import pathlib
from pathlib import Path

import pytest
import yaml
from conftest import write_study

import accord.core.io
from accord.cli import main
from accord.config import validate_config
from accord.core.errors import ConfigError


def _config(tmp_path: Path, study: Path, **extra) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"studies": {"s": {"path": str(study)}}, **extra}))
    return config


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_a_folder_named_like_a_table_is_named_in_one_line(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "s", sessions=None)
    (study / "sessions.csv").mkdir()
    assert main(["validate", "s", "--config", str(_config(tmp_path, study))]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "sessions.csv: is a folder, not a file" in err


def test_an_unreadable_table_is_named_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    # Tests may run as root, for whom chmod 000 still reads: the refusal is simulated.
    study = write_study(tmp_path / "s")
    real_open = pathlib.Path.open

    def refuse(self, *args, **kwargs):
        if self.name == "sessions.csv":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", refuse)
    assert main(["validate", "s", "--config", str(_config(tmp_path, study))]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "sessions.csv: permission denied" in err


def test_a_gzip_file_named_csv_is_called_compressed(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "s")
    raw = (study / "sessions.csv").read_bytes()
    (study / "sessions.csv").write_bytes(gzip.compress(raw))
    assert main(["validate", "s", "--config", str(_config(tmp_path, study))]) == 1
    err = capsys.readouterr().err
    assert "sessions.csv: the file is gzip-compressed" in err
    assert "UTF-8" not in err


def test_a_config_that_is_a_list_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("- studies\n- analysis\n")
    assert main(["validate", "s", "--config", str(config)]) == 1
    assert "it must be a mapping of settings" in _one_line_error(capsys)
    with pytest.raises(ConfigError, match="holds a list"):
        validate_config(["studies"])


def test_a_config_that_is_a_folder_is_refused_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "config.yaml").mkdir()
    assert main(["validate", "s", "--config", str(tmp_path / "config.yaml")]) == 1
    assert "config.yaml: is a folder, not a file" in _one_line_error(capsys)


def test_a_full_disk_leaves_no_partial_validation_outputs(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    study = write_study(tmp_path / "s")
    out = tmp_path / "out"

    def disk_full(path, data):  # the summary is written last, after the tables
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(accord.core.io, "write_json", disk_full)
    code = main(["validate", "s", "--config", str(_config(tmp_path, study)), "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "the disk is full" in err and "nothing was written there" in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_validation_outputs_move_into_place_together(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "s")
    out = tmp_path / "out"
    code = main(["validate", "s", "--config", str(_config(tmp_path, study)), "--out", str(out)])
    assert code == 0
    assert (out / "validation" / "summary.json").is_file()
    assert (out / "validated" / "sessions.parquet").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("analysis", "message"),
    [
        ({"primary_outcome": "phq8"}, r"'analysis\.primary_outcome': 'phq8' is not an instrument"),
        ({"secondary_outcomes": ["gad7", "bdi"]}, r"'analysis\.secondary_outcomes\[1\]'"),
        ({"primary_outcome": "phq9.somatic"}, r"phq9 has no score 'somatic'"),
    ],
)
def test_an_unknown_outcome_is_caught_in_the_config(analysis: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config({"studies": {"s": {"path": "x"}}, "analysis": analysis})


def test_an_unknown_instrument_covariate_is_caught_in_the_config() -> None:
    models = [{"id": "g", "kind": "growth", "covariates": ["gad7_first", "phq8_first"]}]
    with pytest.raises(ConfigError, match=r"'models\[0\]\.covariates\[1\]': 'phq8_first'"):
        validate_config({"studies": {"s": {"path": "x"}}, "models": models})
    models[0]["covariates"] = ["gad7_first", "age"]
    validate_config({"studies": {"s": {"path": "x"}}, "models": models})


def test_a_custom_total_range_inconsistent_with_the_items_is_refused() -> None:
    instrument = {
        "name": "Ten items",
        "items": 10,
        "item_min": 0,
        "item_max": 4,
        "higher_is": "worse",
        "total_max": 50,
    }
    with pytest.raises(ConfigError, match=r"instruments\.ten\.total_max: .*0\.\.40"):
        validate_config({"studies": {"s": {"path": "x"}}, "instruments": {"ten": instrument}})


def test_an_interrupted_run_can_be_unlocked_and_continued(tmp_path: Path, monkeypatch) -> None:
    study = write_study(tmp_path / "s")
    config = _config(tmp_path, study)
    calls: list[list[str]] = []

    def call(command: list[str]) -> int:
        calls.append(command)
        return 0

    monkeypatch.setattr("accord.cli.subprocess.call", call)
    # After a kill: release the lock (Snakemake unlocks and stops), then redo what was left
    # half-written; both reach Snakemake with the target first and the config as one value.
    assert main(["run", "s", "--config", str(config), "--unlock", "--snakefile", str(config)]) == 0
    args = ["run", "s", "--config", str(config), "--rerun-incomplete"]
    assert main([*args, "--snakefile", str(config)]) == 0
    unlock, run = calls
    assert "--unlock" in unlock and f"--configfile={config}" in unlock
    assert "--rerun-incomplete" in run and run[3] == "reports/s/report.html"


IDENTIFYING_FILE = "Goldberg_Jane_clients.csv"


@pytest.mark.parametrize(
    "content",
    [
        b"",  # empty
        b"client_id,client_id\nC1,C2\n",  # a header repeated
        b"client_id,age\n\xff\xfe,30\n",  # not UTF-8
        b"client_id,age\nC1,30,4\n",  # a ragged row
        gzip.compress(b"client_id,age\nC1,30\n"),  # compressed
        None,  # a folder
    ],
    ids=["empty", "repeated-header", "not-utf8", "ragged", "gzip", "folder"],
)
def test_an_identifying_file_name_is_withheld_from_read_errors(
    tmp_path: Path, content: bytes | None
) -> None:
    from accord.core.errors import StudyError

    path = tmp_path / IDENTIFYING_FILE
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(StudyError) as caught:
        accord.core.io.read_table(path)
    message, file = str(caught.value), str(caught.value.file)
    assert "Goldberg" not in message + file and "Jane" not in message + file
    assert message.startswith("the clients file (name withheld): "), message


def test_an_identifying_file_name_is_withheld_from_read_notes(tmp_path: Path) -> None:
    (tmp_path / IDENTIFYING_FILE).write_text("client_id;age\nC1;30\n")
    _, notes = accord.core.io.read_table(tmp_path / IDENTIFYING_FILE)
    assert notes and all("Goldberg" not in note for note in notes)
    (tmp_path / "clients.csv").write_text("client_id;age\nC1;30\n")
    _, notes = accord.core.io.read_table(tmp_path / "clients.csv")
    assert notes[0].startswith("clients.csv: ")


def test_an_identifying_study_folder_is_withheld_when_a_table_is_given_twice(
    tmp_path: Path,
) -> None:
    from accord.core.errors import StudyError

    folder = tmp_path / "Goldberg_Jane"
    folder.mkdir()
    (folder / "clients.csv").write_text("client_id\nC1\n")
    (folder / "clients.parquet").write_bytes(b"")
    with pytest.raises(StudyError) as caught:
        accord.core.io.find_table(folder, "clients")
    message = str(caught.value)
    assert "Goldberg" not in message + str(caught.value.file)
    assert message.startswith("the study folder (name withheld): both clients.csv and")
