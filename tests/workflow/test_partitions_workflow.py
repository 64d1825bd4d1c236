"""The workflow validates a study in partitions of clients as jobs of their own, with the
bytes of the one-job run."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from conftest import SMALL_STUDY_CONFIG, snakemake

pytestmark = pytest.mark.e2e

VALIDATION = [
    "validated/clients.parquet",
    "validated/sessions.parquet",
    "validated/measures.parquet",
    "validated/goals.parquet",
    "validation/quarantine.csv",
    "validation/summary.json",
]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_three_partitions_give_the_one_job_validation(workflow_run: Path, tmp_path: Path) -> None:
    config = {**SMALL_STUDY_CONFIG, "performance": {"partitions": 3}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/small/{name}" for name in VALIDATION]
    done = snakemake(tmp_path, "--configfile=config.yaml", *targets)
    assert done.returncode == 0, done.stderr[-4000:]
    log = done.stdout + done.stderr
    assert log.count("rule validate_partition:") == 3
    assert "rule split_study:" in log
    one_job = workflow_run / "results" / "small"
    partitioned = tmp_path / "results" / "small"
    assert [n for n in VALIDATION if _digest(partitioned / n) != _digest(one_job / n)] == []
    # the partitions' copies of the input are removed once gathered
    assert not (partitioned / "partitions" / "split").exists()


MEASURES = ["client_measures.parquet", "session_panel.parquet", "measures_metadata.json"]


def test_measures_built_in_partitions_give_the_one_job_bytes(
    workflow_run: Path, tmp_path: Path
) -> None:
    """Each partition's statistics and measures are jobs of their own; the gathered files are
    the one-job run's, byte for byte."""
    config = {**SMALL_STUDY_CONFIG, "performance": {"partitions": 3}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/small/{name}" for name in MEASURES]
    done = snakemake(tmp_path, "--configfile=config.yaml", *targets)
    assert done.returncode == 0, done.stderr[-4000:]
    log = done.stdout + done.stderr
    for rule in ("partition_scores", "measures_statistics", "build_partition"):
        assert log.count(f"rule {rule}:") == 3, rule
    one_job = workflow_run / "results" / "small"
    partitioned = tmp_path / "results" / "small"
    assert [n for n in MEASURES if _digest(partitioned / n) != _digest(one_job / n)] == []
    # every partition's files are removed once gathered
    work = partitioned / "partitions"
    assert not work.exists() or sorted(p.name for p in work.iterdir()) == []
