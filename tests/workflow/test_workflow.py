"""End to end: the real Snakemake workflow on a small simulated study in a temporary folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import OUTPUTS, ROOT, SNAKEMAKE, digests, snakemake, write_study

pytestmark = pytest.mark.e2e


def test_every_output_exists_and_counts_reconcile(workflow_run: Path) -> None:
    results = workflow_run / "results" / "small"
    for name in OUTPUTS:
        assert (results / name).exists(), name
    assert (workflow_run / "reports" / "small" / "report.html").exists()
    summary = json.loads((results / "validation" / "summary.json").read_text())
    for table, counts in summary["tables"].items():
        assert counts["rows_in"] == counts["rows_accepted"] + counts["rows_quarantined"], table
    assert summary["tables"]["clients"]["rows_in"] == 150
    clients = pd.read_parquet(results / "client_measures.parquet")
    assert len(clients) == 150
    scores = pd.read_parquet(results / "scores.parquet")
    assert list(scores.columns[:8]) == [
        "client_id",
        "session_number",
        "instrument",
        "rater",
        "scale",
        "score",
        "items_answered",
        "prorated",
    ]
    coefficients = pd.read_csv(results / "models" / "coefficients.csv")
    assert {"model", "term", "estimate", "std_error", "converged"} <= set(coefficients.columns)


def test_rerun_gives_byte_identical_tables(workflow_run: Path, tmp_path: Path) -> None:
    first = digests(workflow_run / "results" / "small")
    again = tmp_path / "again"
    again.mkdir()
    shutil.copy(workflow_run / "config.yaml", again / "config.yaml")
    # Targets first: --configfile takes every argument after it.
    done = snakemake(
        again,
        "results/small/models/coefficients.csv",
        "results/small/reliability.csv",
        "--configfile",
        "config.yaml",
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert digests(again / "results" / "small") == first


def test_study_fault_stops_with_one_clear_message(tmp_path: Path) -> None:
    study = write_study(tmp_path / "data" / "broken")
    sessions = (study / "sessions.csv").read_text().replace("status,", "state,", 1)
    (study / "sessions.csv").write_text(sessions)
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"studies": {"broken": {"path": "data/broken"}}})
    )
    done = snakemake(tmp_path, "--configfile", "config.yaml")
    assert done.returncode != 0
    assert "accord: sessions.csv: required column 'status' is missing" in done.stderr
    assert "Traceback" not in done.stderr


def test_identifier_stops_the_run_without_echoing(tmp_path: Path) -> None:
    study = write_study(tmp_path / "data" / "leaky")
    clients = (
        (study / "clients.csv").read_text().replace("female,ongoing", "jo@example.org,ongoing")
    )
    (study / "clients.csv").write_text(clients)
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"studies": {"leaky": {"path": "data/leaky"}}})
    )
    done = snakemake(tmp_path, "--configfile", "config.yaml")
    assert done.returncode != 0
    assert "clients.csv" in done.stderr and "gender" in done.stderr
    everything = done.stdout + done.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in (".log", ".json", ".csv") and "data" not in path.parts:
            everything += path.read_text(errors="replace")
    assert "jo@example.org" not in everything
    assert not (tmp_path / "results" / "leaky" / "validated").exists()


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"studies": {"s": {"path": "x"}}, "analysis": {"dropout_definition": "x"}})
    )
    done = snakemake(tmp_path, "--configfile", "config.yaml")
    assert done.returncode != 0
    assert "config key 'analysis.dropout_definition'" in done.stderr


def test_lint_is_clean() -> None:
    lint = subprocess.run([*SNAKEMAKE, "--lint"], capture_output=True, text=True, cwd=ROOT)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], capture_output=True, text=True, cwd=ROOT
    )
    assert ruff.returncode == 0, ruff.stdout


def test_bad_custom_instrument_names_the_key(tmp_path: Path) -> None:
    config = {
        "studies": {"s": {"path": "x"}},
        "instruments": {"bdi2": {"items": 21, "item_min": 3, "item_max": 0, "higher_is": "worse"}},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, "--configfile", "config.yaml")
    assert done.returncode != 0
    assert "instruments.bdi2.item_max" in done.stderr


MEDIATORS = ("early_attendance_rate", "early_homework_rate", "early_alliance")


def planned_jobs(workdir: Path, *targets: str) -> dict[str, int]:
    """The jobs a dry run plans for `targets`, by rule (Snakemake's job stats)."""
    done = snakemake(workdir, *targets, "--configfile", "config.yaml", "--dry-run")
    assert done.returncode == 0, done.stderr[-4000:]
    stats = done.stdout.split("Job stats:", 1)[1].split("total", 1)[0]
    rows = (line.split() for line in stats.splitlines())
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}


@pytest.mark.parametrize(
    ("n_clients", "setting", "chunk_jobs"),
    [(400, None, 0), (400, 3, 6), (12_000, None, 6)],
)
def test_bootstrap_jobs_follow_the_chunk_setting(
    tmp_path: Path, n_clients: int, setting: int | None, chunk_jobs: int
) -> None:
    # Two therapist models (post-adjusted and null) have a bootstrap. A small study draws it
    # in the model's own job; "auto" gives 12,000 clients three chunks each. The three
    # mediation models (method auto) bootstrap or draw quasi-Bayesian by the study's clients,
    # counted once plan_models has run, so a dry run plans no chunks for them yet.
    config: dict = {
        "studies": {"s": {"path": "data/s", "simulate": {"n_clients": n_clients, "seed": 3}}}
    }
    if setting is not None:
        config["analysis"] = {"bootstrap_chunks": setting}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    # The models of a study's plan are known once plan_models has read its data; a dry run
    # plans the bootstrapped models' own outputs, and the plan for the gathered table.
    therapist = ["therapist", "therapist_null"]
    targets = [f"results/s/models/{model}/coefficients.csv" for model in therapist]
    assert planned_jobs(tmp_path, *targets).get("bootstrap_model", 0) == chunk_jobs
    mediation = [f"results/s/models/mediation_{m}/coefficients.csv" for m in MEDIATORS]
    jobs = planned_jobs(tmp_path, *targets, *mediation)
    assert jobs.get("bootstrap_model", 0) == chunk_jobs
    assert jobs["fit_model"] == 5 and jobs["plan_models"] == 1
    gathered = planned_jobs(tmp_path, "results/s/models/coefficients.csv")
    assert gathered["plan_models"] == 1 and gathered["gather_models"] == 1


def test_the_shipped_consortium_config_draws_and_pools_its_sites(tmp_path: Path) -> None:
    shutil.copy(ROOT / "config" / "consortium.yaml", tmp_path / "config.yaml")
    jobs = planned_jobs(tmp_path, "all")
    # Four simulated sites, each a whole study; then two-stage and one-stage pooling.
    assert jobs["simulate_study"] == 4 and jobs["render_report"] == 4
    assert jobs["pool_sites"] == jobs["fit_one_stage"] == jobs["render_pooled_report"] == 1
