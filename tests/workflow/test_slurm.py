"""The workflow on a real SLURM cluster: a single-node cluster on this machine
(tools/slurm/start-cluster.sh, as root), the shipped profile (profiles/slurm), the study
validated, scored and measured in three partitions of clients, each its own SLURM job, and
outputs byte-identical to the local run in one job.

Opt-in: set ACCORD_TEST_SLURM=1 (CI does). The cluster has no accounting database, so job
states come from squeue (the script sets MinJobAge to a day so finished jobs stay listed).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import OUTPUTS, ROOT, SMALL_STUDY_CONFIG, SNAKEMAKE

pytestmark = pytest.mark.skipif(
    os.environ.get("ACCORD_TEST_SLURM") != "1",
    reason="runs a SLURM cluster on this machine: set ACCORD_TEST_SLURM=1",
)

START_CLUSTER = ROOT / "tools" / "slurm" / "start-cluster.sh"
PARTITION = "main"
PARTITIONS = 3  # partitions of clients the study runs in on the cluster


def run(*command: str, timeout: float = 120) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def cluster() -> int:
    """The running single-node cluster; returns the node's memory in MB."""
    if os.geteuid() != 0:
        pytest.skip("starting the SLURM daemons needs root")
    run("bash", str(START_CLUSTER), timeout=900)
    memory = run("sinfo", "--noheader", "--format=%m", f"--partition={PARTITION}").split()
    return int(memory[0].rstrip("+"))


def test_profile_options_exist_in_the_installed_plugin() -> None:
    help_text = subprocess.run(
        [*SNAKEMAKE, "--help"], capture_output=True, text=True, timeout=300
    ).stdout
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    for option in [*profile, *TEST_OPTIONS]:
        assert f"--{option}" in help_text, option
    rules = (ROOT / "workflow" / "rules").glob("*.smk")
    declared = {
        line.split()[1].rstrip(":")
        for path in rules
        for line in path.read_text().splitlines()
        if line.startswith("rule ")
    }
    assert set(profile["set-resources"]) <= declared


# What the single-node test cluster needs on top of the shipped profile.
TEST_OPTIONS = {
    "slurm-status-command": "squeue",
    "slurm-init-seconds-before-status-checks": 2,
    "slurm-keep-successful-logs": True,
    "latency-wait": 5,
}


def test_profile_runs_the_workflow_through_slurm_byte_identical_to_local(
    cluster: int, workflow_run: Path, tmp_path: Path
) -> None:
    write_test_profile(tmp_path / "profile", node_memory_mb=cluster)
    config = {**SMALL_STUDY_CONFIG, "performance": {"partitions": PARTITIONS}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    before = set(run("squeue", "--noheader", "--states=all", "--format=%i").split())
    done = subprocess.run(
        [*SNAKEMAKE, "--configfile=config.yaml", "--profile", str(tmp_path / "profile")],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    check_ran_through_slurm(tmp_path, before)
    check_same_bytes(tmp_path, workflow_run)


def write_test_profile(folder: Path, node_memory_mb: int) -> None:
    """The shipped profile, with the test cluster's options and memory requests capped so two
    jobs fit side by side on the one node (the shipped ones are sized for a large study)."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    cap = node_memory_mb // 2
    profile["default-resources"]["slurm_partition"] = PARTITION
    profile["default-resources"]["mem_mb"] = min(profile["default-resources"]["mem_mb"], cap)
    for resources in profile["set-resources"].values():
        resources["mem_mb"] = min(resources["mem_mb"], cap)
    profile.update(TEST_OPTIONS)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(profile))


def check_ran_through_slurm(workdir: Path, before: set[str]) -> None:
    """Every job of the run was a SLURM job that completed, with its SLURM log kept; each
    partition of clients was validated in a job of its own."""
    listed = run("squeue", "--noheader", "--states=all", "--format=%i %T").splitlines()
    states = {job: state for job, state in (line.split() for line in listed) if job not in before}
    assert len(states) >= 30
    assert set(states.values()) == {"COMPLETED"}
    slurm_logs = workdir / ".snakemake" / "slurm_logs"
    for rule in (
        "rule_split_study",
        "rule_validate_study",
        "rule_bootstrap_model",
        "rule_fit_model",
    ):
        assert any((slurm_logs / rule).rglob("*.log")), rule
    # one SLURM job per partition of clients in each stage that runs in partitions
    for rule in ("validate_partition", "score_partition", "measures_statistics", "build_partition"):
        partitions = {p.parent.name for p in (slurm_logs / f"rule_{rule}").rglob("*.log")}
        assert len(partitions) == PARTITIONS, (rule, sorted(partitions))


def check_same_bytes(workdir: Path, local_run: Path) -> None:
    """The tables, every model's coefficients and the bootstrap replicates are byte-identical
    to the local run's."""
    local, remote = local_run / "results" / "small", workdir / "results" / "small"
    models = sorted(p.relative_to(local).as_posix() for p in local.glob("models/*/*.csv"))
    chunks = sorted(p.relative_to(local).as_posix() for p in local.glob("models/*/bootstrap/*"))
    assert len(models) >= 19 and len(chunks) >= 8
    for name in [*OUTPUTS, *models, *chunks]:
        assert digest(remote / name) == digest(local / name), name
    assert (workdir / "reports" / "small" / "report.html").exists()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
