"""The benchmark harness at a tiny size: a stage in its own process, one summary table.

(One stage only: each stage's process imports pandas and pandera, which dominates at this
size; `python -m accord.bench --quick` is the full check.)"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd

from accord.bench import SUMMARY_COLUMNS, run_workflow, workflow_jobs


def test_harness_writes_the_summary_table(tmp_path: Path) -> None:
    summary = tmp_path / "summary.csv"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "accord.bench",
            "--clients",
            "120",
            "--stages",
            "validate",
            "--out",
            str(tmp_path / "out"),
            "--summary",
            str(summary),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_csv(summary, keep_default_na=False)
    assert (
        list(table.columns)
        == SUMMARY_COLUMNS
        == [
            "size",
            "stage",
            "seconds",
            "peak_mb",
            "rows",
            "note",
        ]
    )
    assert table["stage"].tolist() == ["simulate", "validate"]
    assert (table["size"] == 120).all()
    validate = table.iloc[1]
    assert math.isfinite(float(validate["seconds"])) and float(validate["seconds"]) > 0
    # A fresh Python process with pandas loaded: tens of MB at least.
    assert float(validate["peak_mb"]) > 20
    # The measure rows read: every item of every questionnaire the simulator wrote.
    measures = pd.read_csv(tmp_path / "out" / "clients_120_seed_2026" / "measures.csv")
    assert int(validate["rows"]) == len(measures)
    assert validate["note"] == ""
    assert "validate" in done.stdout


def test_workflow_stage_runs_snakemake_and_reports_a_failure(tmp_path: Path) -> None:
    # A study folder without its tables: Snakemake runs and stops at validation, and the row
    # says so and where the log is (a successful run is `python -m accord.bench --quick`).
    folder = tmp_path / "clients_10_seed_1"
    folder.mkdir()
    row = run_workflow(folder, 10, cores=1)
    assert row["stage"] == "workflow" and row["rows"] == 10
    assert row["note"].startswith("failed (exit 1)")
    assert "snakemake.log" in row["note"]
    assert "clients" in (folder / "workflow" / "snakemake.log").read_text()
    assert row["peak_mb"] > 10


def test_workflow_jobs_sum_a_rule_over_its_partitions_and_keep_its_largest_peak(
    tmp_path: Path,
) -> None:
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    jobs = {
        "validate_partition_0.benchmark.tsv": (10.5, 300.0),
        "validate_partition_1.benchmark.tsv": (12.0, 350.5),
        "fit_model/growth.benchmark.tsv": (7.25, 900.0),
        "bootstrap_model/therapist/chunk_0.benchmark.tsv": (1.0, 100.0),
        "bootstrap_model/therapist/chunk_1.benchmark.tsv": (2.0, 120.0),
        "render_report.benchmark.tsv": (3.0, "NA"),
    }
    for name, (seconds, rss) in jobs.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:{seconds}\t{rss}\t1\t1\t1\t0\t0\t0\t1\n")

    rows = {row["stage"]: row for row in workflow_jobs(tmp_path)}

    assert sorted(rows) == [
        "workflow:bootstrap_model:therapist",
        "workflow:fit_model:growth",
        "workflow:render_report",
        "workflow:validate_partition",
    ]
    assert rows["workflow:validate_partition"]["seconds"] == 22.5
    assert rows["workflow:validate_partition"]["peak_mb"] == 350.5
    assert rows["workflow:validate_partition"]["rows"] == 2
    assert rows["workflow:bootstrap_model:therapist"]["seconds"] == 3.0
    assert rows["workflow:fit_model:growth"]["peak_mb"] == 900.0
    assert rows["workflow:fit_model:growth"]["note"] == ""
    assert math.isnan(rows["workflow:render_report"]["peak_mb"])
