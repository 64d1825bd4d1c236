"""The workflow validates, scores and measures a study in partitions of clients as jobs of their
own, with the bytes of the one-job run."""

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
SCORING = ["scores.parquet", "reliability.csv", "validation/total_disagreements.csv"]
MEASURES = ["client_measures.parquet", "session_panel.parquet", "measures_metadata.json"]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_three_partitions_give_the_one_job_validation_scores_and_measures(
    workflow_run: Path, tmp_path: Path
) -> None:
    config = {**SMALL_STUDY_CONFIG, "performance": {"partitions": 3}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    outputs = VALIDATION + SCORING + MEASURES
    targets = [f"results/small/{name}" for name in outputs]
    done = snakemake(tmp_path, "--configfile=config.yaml", *targets)
    assert done.returncode == 0, done.stderr[-4000:]
    log = done.stdout + done.stderr
    assert log.count("rule validate_partition:") == 3
    for rule in ("score_partition", "measures_statistics", "build_partition"):
        assert log.count(f"rule {rule}:") == 3, rule
    assert "rule split_study:" in log
    one_job = workflow_run / "results" / "small"
    partitioned = tmp_path / "results" / "small"
    assert [n for n in outputs if _digest(partitioned / n) != _digest(one_job / n)] == []
    # the partitions' files (the split, each partition validated, scored and measured) are
    # removed
    folder = partitioned / "partitions"
    assert not folder.exists() or [path.name for path in folder.iterdir()] == []
