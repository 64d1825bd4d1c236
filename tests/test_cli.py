"""The accord command line: simulate, validate, and errors as exit codes with messages."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from conftest import write_study

from accord.cli import main


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
