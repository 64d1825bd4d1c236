"""The memory each job declares, worked by hand from the rates in accord.core.job_memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.core.job_memory import job_memory_mb, memory_budget_mb


def test_a_partition_job_counts_its_partition_s_clients() -> None:
    # 1,000,000 clients in 20 partitions: 50,000 each; 1.15 * (400 + 56 * 50) = 3,680.
    assert job_memory_mb("validate_partition", 1_000_000, 20) == 3680
    # The gather counts every client: 1.15 * (400 + 6.4 * 1,000) = 7,820.
    assert job_memory_mb("validate_study", 1_000_000, 20) == 7820


def test_one_job_does_a_partition_s_work_on_every_client() -> None:
    # 100,000 clients in one job at the partition's rate: 1.15 * (400 + 56 * 100) = 6,900.
    assert job_memory_mb("validate_study", 100_000, 1) == 6900


def test_a_rule_without_a_rate_needs_the_floor() -> None:
    # 1.15 * 400 = 460.
    assert job_memory_mb("gather_models", 1_000_000, 20) == 460
    assert job_memory_mb("validate_study", 0, 1) == 460


def test_a_model_s_job_needs_what_its_kind_needs() -> None:
    # 200,000 clients: 1.15 * (400 + 6.7 * 200) = 2,001 for a growth model,
    # 1.15 * (400 + 4.6 * 200) = 1,518 for a kind without its own rate.
    assert job_memory_mb("fit_model", 200_000, 4, kind="growth") == 2001
    assert job_memory_mb("fit_model", 200_000, 4, kind="logistic") == 1518


def test_the_budget_is_the_setting_or_two_thirds_of_the_machine() -> None:
    psutil = pytest.importorskip("psutil")
    assert memory_budget_mb({"performance": {"memory_mb": 12000}}) == 12000
    total_mb = psutil.virtual_memory().total / 2**20
    assert memory_budget_mb({}) == int(total_mb * 2 / 3)


def test_accord_run_shares_the_budget_among_its_jobs() -> None:
    from accord.cli import _parser, snakemake_command

    args = _parser().parse_args(["run", "s", "--config", "my.yaml"])
    command = snakemake_command(args, Path("Snakefile"), args.config, 12000)
    assert "--resources=mem_mb=12000" in command


def test_a_budget_that_is_not_a_number_of_mb_is_refused_by_name() -> None:
    from accord.config import validate_config
    from accord.core.errors import ConfigError

    study = {"studies": {"s": {"path": "s"}}}
    with pytest.raises(ConfigError, match=r"performance\.memory_mb"):
        validate_config({**study, "performance": {"memory_mb": "16GB"}})
    with pytest.raises(ConfigError, match=r"performance\.memory_mb"):
        validate_config({**study, "performance": {"memory_mb": 100}})
