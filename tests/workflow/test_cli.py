"""The accord command line: simulate, validate, and errors as exit codes with messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import write_study

from accord.cli import main
from accord.config import load_config
from accord.models.spec import DEFAULT_MODELS


def test_simulate_writes_a_contract_study(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "sim"
    assert (
        main(["simulate", str(folder), "--clients", "40", "--therapists", "5", "--seed", "3"]) == 0
    )
    assert {p.name for p in folder.iterdir()} >= {
        "clients.csv",
        "sessions.csv",
        "measures.csv",
        "goals.csv",
        "truth.json",
    }
    assert len(pd.read_csv(folder / "clients.csv")) == 40
    assert "40 clients" in capsys.readouterr().out


def _config(tmp_path: Path, study: Path) -> Path:
    config = tmp_path / "config" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(yaml.safe_dump({"studies": {"s": {"path": str(study)}}}))
    return config


def test_validate_prints_a_summary(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "s")
    sessions = (study / "sessions.csv").read_text().replace("C3C,1,attended", "C3C,1,late")
    (study / "sessions.csv").write_text(sessions)
    config = _config(tmp_path, study)
    out_dir = tmp_path / "out"
    assert main(["validate", "s", "--config", str(config), "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "1 rows quarantined" not in printed and "rows quarantined (see above)" in printed
    # One session breaks the status rule; its 9 PHQ-9 items follow it into quarantine.
    assert "sessions" in printed and "isin" in printed
    assert "parent_quarantined(sessions)" in printed
    assert (out_dir / "validation" / "quarantine.csv").exists()


def test_errors_are_messages_and_exit_code_1(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "s", sessions=None)
    config = _config(tmp_path, study)
    assert main(["validate", "s", "--config", str(config)]) == 1
    assert "sessions.csv (or sessions.parquet) is missing" in capsys.readouterr().err
    assert main(["validate", "nope", "--config", str(config)]) == 1
    assert "'studies.nope': no such study" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parents[2]
BYOD = ROOT / "tests" / "data" / "byod"


@pytest.mark.parametrize("fmt", ["contract", "mapped", "redcap"])
def test_init_writes_a_valid_commented_config(tmp_path: Path, capsys, fmt: str) -> None:
    folder = tmp_path / "new"
    assert main(["init", str(folder), "--format", fmt, "--study", "trial"]) == 0
    text = (folder / "config.yaml").read_text()
    assert text.count("\n#") + text.count("  # ") >= 5  # explained key by key
    config = load_config(folder / "config.yaml")
    assert config["studies"]["trial"]["format"] == fmt
    assert "accord validate trial" in (folder / "README.md").read_text()
    assert "accord validate trial" in capsys.readouterr().out
    # The plan is in the config, to edit: the default models, each with a comment.
    assert [entry["id"] for entry in config["models"]] == [e["id"] for e in DEFAULT_MODELS]
    assert "  # growth: checked against the study when the workflow runs\n" in text


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, capsys) -> None:
    assert main(["init", str(tmp_path)]) == 0
    (tmp_path / "config.yaml").write_text("# mine\n")
    assert main(["init", str(tmp_path)]) == 1
    assert "config.yaml already exists; use --force" in capsys.readouterr().err
    assert (tmp_path / "config.yaml").read_text() == "# mine\n"
    assert main(["init", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "config.yaml").read_text() != "# mine\n"
    assert main(["init", str(tmp_path / "x"), "--study", "my study"]) == 1
    assert "study name 'my study'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["init"], ["validate"], ["run"], ["plan"], ["simulate"]])
def test_help_documents_the_exit_codes(command: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "exit codes:" in out and "2  the command line itself was wrong" in out


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["validate"])
    assert done.value.code == 2


def test_validate_a_mapped_study(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    config = "tests/data/byod/spss/config.yaml"
    assert main(["validate", "spss", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "format mapped" in out
    assert "source outcomes.zsav: 48 data rows" in out
    assert "All rows accepted." in out


def test_validate_a_broken_study_names_the_sheet(tmp_path: Path, capsys) -> None:
    config = yaml.safe_load((BYOD / "excel" / "config.yaml").read_text())
    config["studies"]["excel"]["path"] = str(BYOD / "excel")
    config["studies"]["excel"]["mapping"]["goals"]["sheet"] = "Targets"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["validate", "excel", "--config", str(tmp_path / "config.yaml")]) == 1
    err = capsys.readouterr().err
    assert "Stopped before validation finished" in err
    assert "workbook.xlsx: there is no sheet 'Targets'" in err


def test_validate_shows_quarantined_rows_with_their_source(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "spss"
    folder.mkdir()
    for path in (BYOD / "spss").glob("*.*sav"):
        (folder / path.name).write_bytes(path.read_bytes())
    config = yaml.safe_load((BYOD / "spss" / "config.yaml").read_text())
    config["studies"]["spss"]["path"] = str(folder)
    # Without DNA in the map, the file's DNA sessions cannot be placed: quarantined, not guessed.
    config["studies"]["spss"]["mapping"]["sessions"]["values"]["status"].pop("DNA")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["validate", "spss", "--config", str(tmp_path / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "unmapped_value (status)" in out
    assert "sessions.sav row " in out and "column 'attend': unmapped_value" in out


def test_run_checks_the_study_before_starting_the_workflow(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "s")
    config = _config(tmp_path, study)
    assert main(["run", "nope", "--config", str(config)]) == 1
    assert "'studies.nope': no such study" in capsys.readouterr().err


@pytest.mark.slow
def test_run_lists_a_mapped_study_source_files_as_inputs(tmp_path: Path) -> None:
    config = yaml.safe_load((BYOD / "spss" / "config.yaml").read_text())
    config["studies"]["spss"]["path"] = str(BYOD / "spss")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord.cli",
            "run",
            "spss",
            "--config",
            "config.yaml",
            "--snakefile",
            str(ROOT / "Snakefile"),
            "--dry-run",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rule validate_study" in done.stdout
    # The export's files are the rule's inputs, so a new export reruns validation.
    for name in ("clients.sav", "sessions.sav", "outcomes.zsav", "goals.sav"):
        assert f"{BYOD / 'spss' / name}" in done.stdout
