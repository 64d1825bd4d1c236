"""A study built in partitions of clients has the one-job outputs to the byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.core.instruments import load_registry
from accord.core.io import write_json, write_parquet
from accord.core.partitions import partition_of
from accord.measures.build import (
    MeasureSettings,
    build_measures,
    build_partition,
    gather_measures,
    partition_statistics,
)
from accord.measures.scoring import score_measures
from accord.measures.statistics import MeasureStatistics, combine_statistics
from accord.simulate import simulate_study

REGISTRY = load_registry()


@pytest.fixture(scope="module")
def study() -> dict[str, pd.DataFrame]:
    simulated = simulate_study(n_clients=300, n_therapists=12, n_sites=2, seed=8)
    scores, _ = score_measures(simulated.measures, REGISTRY)
    return {
        "clients": simulated.clients,
        "sessions": simulated.sessions,
        "goals": simulated.goals,
        "scores": scores,
    }


def _split(tables: dict[str, pd.DataFrame], partitions: int) -> list[dict[str, pd.DataFrame]]:
    """Each partition's rows of every table, in the tables' order."""
    parts = [{} for _ in range(partitions)]
    for name, frame in tables.items():
        part = partition_of(frame["client_id"].astype(str), partitions)
        for k in range(partitions):
            parts[k][name] = frame.loc[part == k].reset_index(drop=True)
    return parts


def _in_partitions(tables, partitions, settings, *, reverse=False):
    parts = _split(tables, partitions)
    statistics = [
        partition_statistics(p["clients"], p["goals"], p["scores"], settings) for p in parts
    ]
    # the study's scalars are the same whichever order the partitions come in
    study = combine_statistics(statistics[::-1] if reverse else statistics)
    built = [
        build_partition(
            p["clients"], p["sessions"], p["goals"], p["scores"], REGISTRY, settings, study
        )
        for p in parts
    ]
    return gather_measures(built, REGISTRY, settings, study)


def _digests(result, folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(folder / "client_measures.parquet", result.client_measures, result.metadata)
    write_parquet(folder / "session_panel.parquet", result.session_panel, result.metadata)
    write_json(folder / "measures_metadata.json", result.metadata)
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
    }


@pytest.mark.parametrize(
    "settings",
    [MeasureSettings(), MeasureSettings(change_method="rci", end_of_treatment=6)],
    ids=["defaults", "rci"],
)
def test_partitions_give_the_one_job_bytes(study, settings, tmp_path: Path) -> None:
    one_job = build_measures(
        study["clients"], study["sessions"], study["goals"], study["scores"], REGISTRY, settings
    )
    expected = _digests(one_job, tmp_path / "one")
    for partitions in (1, 3, 7):
        result = _in_partitions(study, partitions, settings, reverse=partitions == 7)
        pd.testing.assert_frame_equal(result.client_measures, one_job.client_measures)
        pd.testing.assert_frame_equal(result.session_panel, one_job.session_panel)
        assert _digests(result, tmp_path / str(partitions)) == expected, partitions
    # the scalars really are study-wide: present, and not those of one partition
    meta = one_job.metadata
    assert meta["n_clients"] == 300
    assert set(meta["grand_means"]) == {"alliance", "goal_alliance_client"}
    part = _split(study, 3)[0]
    alone = partition_statistics(part["clients"], part["goals"], part["scores"], settings)
    assert alone.grand_means()["alliance"] != meta["grand_means"]["alliance"]


def test_statistics_are_the_hand_worked_study_values(study) -> None:
    """The study's SD_pre and grand mean from 3 partitions equal the sums over all clients."""
    settings = MeasureSettings()
    parts = _split(study, 3)
    combined = combine_statistics(
        [partition_statistics(p["clients"], p["goals"], p["scores"], settings) for p in parts]
    )
    scores = study["scores"]
    phq9 = scores[
        (scores["instrument"] == "phq9")
        & (scores["scale"] == "total")
        & (scores["rater"] == "client")
        & scores["score"].notna()
    ].sort_values(["client_id", "session_number"], kind="stable")
    first = phq9.groupby("client_id", sort=True)["score"].first().to_numpy(dtype=float)
    # math by other means: the mean and SD in exact rationals, rounded once (as in the spec)
    from fractions import Fraction

    n = len(first)
    s1 = sum(Fraction(v) for v in first.tolist())
    s2 = sum(Fraction(v) ** 2 for v in first.tolist())
    variance = (n * s2 - s1 * s1) / (n * (n - 1))
    assert combined.baseline("phq9").n == n
    assert combined.baseline("phq9").sd() == pytest.approx(float(np.std(first, ddof=1)), rel=1e-14)
    assert combined.baseline("phq9").variance() == variance
    wai = scores[
        (scores["instrument"] == "wai_sr")
        & (scores["scale"] == "total")
        & (scores["rater"] == "client")
        & scores["score"].notna()
    ]
    means = wai.groupby("client_id")["score"].mean().to_numpy(dtype=float)
    assert combined.grand_means()["alliance"] == pytest.approx(means.mean(), rel=1e-14)


def test_a_partition_without_goals_or_a_scale_keeps_the_study_columns(study) -> None:
    """A partition whose clients have no goals has n_goals 0, and a scale scored only in other
    partitions is still a panel column (of missing values)."""
    settings = MeasureSettings()
    parts = _split(study, 2)
    goals_free = dict(parts[0], goals=parts[0]["goals"].iloc[:0])
    scores = parts[0]["scores"]
    goals_free["scores"] = scores[scores["instrument"] != "srs"].reset_index(drop=True)
    study_stats = combine_statistics(
        [
            partition_statistics(p["clients"], p["goals"], p["scores"], settings)
            for p in (goals_free, parts[1])
        ]
    )
    measures, panel = build_partition(
        goals_free["clients"],
        goals_free["sessions"],
        goals_free["goals"],
        goals_free["scores"],
        REGISTRY,
        settings,
        study_stats,
    )
    assert (measures["n_goals"] == 0).all()
    assert panel["srs"].isna().all()


def test_statistics_survive_json(study) -> None:
    stats = partition_statistics(study["clients"], study["goals"], study["scores"])
    again = MeasureStatistics.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert again == stats


def test_empty_partitions_change_nothing() -> None:
    """12 clients in 30 partitions: most partitions have no clients at all."""
    simulated = simulate_study(n_clients=12, n_therapists=3, n_sites=1, seed=2)
    scores, _ = score_measures(simulated.measures, REGISTRY)
    tables = {
        "clients": simulated.clients,
        "sessions": simulated.sessions,
        "goals": simulated.goals,
        "scores": scores,
    }
    assert min(len(part["clients"]) for part in _split(tables, 30)) == 0
    one_job = build_measures(
        simulated.clients, simulated.sessions, simulated.goals, scores, REGISTRY
    )
    result = _in_partitions(tables, 30, MeasureSettings())
    pd.testing.assert_frame_equal(result.client_measures, one_job.client_measures)
    pd.testing.assert_frame_equal(result.session_panel, one_job.session_panel)
    assert result.metadata == one_job.metadata
