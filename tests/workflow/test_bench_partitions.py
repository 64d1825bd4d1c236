"""The benchmark's validation, scoring and measures in partitions and its studies made of copies."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from accord.bench import _partitioned_total, _partitions, _replicate, _run_stage, _stage_names
from accord.simulate import simulate_study, write_study


def test_validation_in_partitions_is_split_parts_and_gather() -> None:
    assert _stage_names("validate", [], 1) == ["validate"]
    assert _stage_names("validate", [], 3) == [
        "validate:split:3",
        "validate:part:0",
        "validate:part:1",
        "validate:part:2",
        "validate:gather",
    ]
    assert _stage_names("score", [], 1) == ["score"]
    assert _stage_names("score", [], 2) == ["score:part:0", "score:part:1", "score:gather"]
    assert _partitions("auto", 100_000) == 1
    assert _partitions("auto", 1_000_000) == 20
    assert _partitions("4", 1_000) == 4


def test_partitioned_total_adds_seconds_and_keeps_the_largest_peak() -> None:
    rows = [
        {"size": 10, "stage": "simulate", "seconds": 9.0, "peak_mb": 900.0, "rows": 10},
        {"size": 10, "stage": "validate:split:2", "seconds": 1.0, "peak_mb": 100.0, "rows": 50},
        {"size": 10, "stage": "validate:part:0", "seconds": 2.0, "peak_mb": 300.0, "rows": 20},
        {"size": 10, "stage": "validate:part:1", "seconds": 2.5, "peak_mb": 250.0, "rows": 30},
        {"size": 10, "stage": "validate:gather", "seconds": 0.5, "peak_mb": 200.0, "rows": 50},
    ]
    total = _partitioned_total(rows, 10, 2)
    assert (total["stage"], total["seconds"], total["peak_mb"]) == ("validate", 6.0, 300.0)
    assert total["rows"] == 50
    scoring = [
        {"size": 10, "stage": "score:part:0", "seconds": 1.5, "peak_mb": 120.0, "rows": 7},
        {"size": 10, "stage": "score:part:1", "seconds": 1.0, "peak_mb": 140.0, "rows": 9},
        {"size": 10, "stage": "score:gather", "seconds": 0.5, "peak_mb": 130.0, "rows": 16},
    ]
    total = _partitioned_total(rows + scoring, 10, 2, "score")
    assert (total["stage"], total["seconds"], total["peak_mb"]) == ("score", 3.0, 140.0)


def test_copies_of_a_study_have_their_own_client_ids(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "clients.csv").write_text("client_id,therapist_id\nCA,T1\nCB,T1\n")
    for table in ("sessions", "measures", "goals"):
        (base / f"{table}.csv").write_text("client_id,session_number\nCA,1\nCB,2\n")
    (base / "truth.json").write_text("{}")
    _replicate(base, 3, tmp_path / "copies")
    clients = pd.read_csv(tmp_path / "copies" / "clients.csv")
    expected = ["CA-0", "CB-0", "CA-1", "CB-1", "CA-2", "CB-2"]
    assert clients["client_id"].tolist() == expected
    assert clients["therapist_id"].tolist() == ["T1"] * 6
    sessions = pd.read_csv(tmp_path / "copies" / "sessions.csv")
    assert sessions["session_number"].tolist() == [1, 2] * 3


def test_scoring_and_measures_stages_in_partitions_write_the_one_job_files(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "clients_80_seed_3"
    write_study(simulate_study(n_clients=80, n_therapists=5, seed=3), folder)
    out = folder / "results"
    files = ["scores.parquet", "reliability.csv", "validation/total_disagreements.csv"]
    files += ["client_measures.parquet", "session_panel.parquet", "measures_metadata.json"]
    for stage in ("validate", "score", "measures"):
        _run_stage(stage, folder, seed=3)
    one_job = {name: (out / name).read_bytes() for name in files}
    for name in files:
        (out / name).unlink()
    stages = [_stage_names(name, [], 3) for name in ("validate", "score", "measures")]
    for stage in [stage for names in stages for stage in names]:
        row = _run_stage(stage, folder, seed=3)
        assert row["note"] == "", stage
    assert sorted(p.name for p in (out / "partitions").glob("scored_*")) == [
        "scored_0",
        "scored_1",
        "scored_2",
    ]
    assert [name for name in files if (out / name).read_bytes() != one_job[name]] == []


def test_measures_in_partitions_are_statistics_builds_and_gather() -> None:
    assert _stage_names("measures", [], 1) == ["measures"]
    assert _stage_names("measures", [], 2) == [
        "measures:statistics:0",
        "measures:statistics:1",
        "measures:part:0",
        "measures:part:1",
        "measures:gather",
    ]
    rows = [
        {"size": 10, "stage": "validate:gather", "seconds": 5.0, "peak_mb": 900.0, "rows": 50},
        {"size": 10, "stage": "measures:part:0", "seconds": 2.0, "peak_mb": 300.0, "rows": 20},
        {"size": 10, "stage": "measures:gather", "seconds": 1.0, "peak_mb": 400.0, "rows": 40},
    ]
    total = _partitioned_total(rows, 10, 2, "measures")
    assert (total["stage"], total["seconds"], total["peak_mb"]) == ("measures", 3.0, 400.0)
