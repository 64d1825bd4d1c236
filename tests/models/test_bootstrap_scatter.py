"""Bootstrap replicates spread over jobs: chunking, per-replicate seeds, pooling that gives the
same results as one process, and the workflow's bootstrap_model jobs."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.core.errors import AccordError, ConfigError
from accord.core.stages import read_validated
from accord.models.bootstrap import (
    auto_chunks,
    check_replicates,
    chunk_ranges,
    model_chunks,
    n_replicates,
    read_replicates,
    replicate_rng,
    scattered_chunks,
    study_bootstrap_chunks,
    write_replicates,
)
from accord.models.mediation import fit_mediation, mediation_replicates
from accord.models.spec import DEFAULT_MODELS, ModelSpec, model_specs
from accord.models.therapist import (
    ClientSums,
    _model_data,
    fit_therapist,
    fit_variance_components,
    therapist_icc_replicates,
)
from accord.models.therapist_post import post_icc_replicates


def test_chunks_are_contiguous_and_balanced() -> None:
    # 10 replicates in 3 chunks: 10 = 4 + 3 + 3, the remainder to the first chunk.
    assert chunk_ranges(10, 3) == [range(0, 4), range(4, 7), range(7, 10)]
    assert chunk_ranges(200, 2) == [range(0, 100), range(100, 200)]
    assert chunk_ranges(7, 1) == [range(0, 7)]
    # Never an empty chunk: 2 replicates over 4 jobs are 2 jobs.
    assert chunk_ranges(2, 4) == [range(0, 1), range(1, 2)]
    assert chunk_ranges(0, 3) == []
    with pytest.raises(ConfigError, match=r"analysis\.bootstrap_chunks"):
        chunk_ranges(10, 0)


def test_models_with_a_bootstrap_and_their_replicate_counts() -> None:
    specs = {spec.id: spec for spec in model_specs({"models": DEFAULT_MODELS})}
    assert n_replicates(specs["therapist"]) == 200
    assert n_replicates(specs["mediation_early_attendance_rate"]) == 500
    assert n_replicates(specs["growth"]) == 0
    assert model_chunks(specs["growth"], 4) == []
    no_boot = ModelSpec(id="t", kind="therapist", outcome="phq9", exposure="none",
                        options={"n_boot": 0})  # fmt: skip
    assert model_chunks(no_boot, 2) == []
    default = ModelSpec(id="m", kind="mediation", outcome="phq9", exposure="x")
    assert model_chunks(default, 3) == [range(0, 167), range(167, 334), range(334, 500)]


def test_auto_chunks_follow_the_study_size() -> None:
    # One chunk per 5,000 clients, rounded up, at least 1 and at most 8.
    assert [auto_chunks(n) for n in (None, 0, 400, 5_000)] == [1, 1, 1, 1]
    assert [auto_chunks(n) for n in (5_001, 10_000, 12_500, 40_000)] == [2, 2, 3, 8]
    assert auto_chunks(100_000) == 8


def test_study_chunks_from_the_setting_or_the_study(tmp_path: Path) -> None:
    simulated = {"studies": {"demo": {"path": "data/demo", "simulate": {"n_clients": 400}}}}
    assert study_bootstrap_chunks(simulated, "demo") == 1
    simulated["studies"]["demo"]["simulate"]["n_clients"] = 10_000
    assert study_bootstrap_chunks(simulated, "demo") == 2
    own = tmp_path / "own"
    own.mkdir()
    (own / "clients.csv").write_text("client_id\n" + "".join(f"C{i}\n" for i in range(5_001)))
    config = {"studies": {"own": {"path": str(own)}}}
    assert study_bootstrap_chunks(config, "own") == 2
    config["analysis"] = {"bootstrap_chunks": 5}
    assert study_bootstrap_chunks(config, "own") == 5
    config["analysis"] = {"bootstrap_chunks": "auto"}
    assert study_bootstrap_chunks(config, "own") == 2


def test_one_chunk_is_drawn_in_the_model_job() -> None:
    spec = ModelSpec(id="t", kind="therapist", outcome="phq9", exposure="none")
    assert scattered_chunks(spec, 1) == []
    assert scattered_chunks(spec, 2) == [range(0, 100), range(100, 200)]
    growth = ModelSpec(id="g", kind="growth", outcome="phq9", exposure="x")
    assert scattered_chunks(growth, 4) == []


def test_replicate_generator_is_seeded_from_seed_model_and_index() -> None:
    # The definition: entropy [seed, crc32 of the model id in UTF-8, replicate index].
    expected = np.random.default_rng([2026, zlib.crc32(b"therapist"), 17]).random(3)
    np.testing.assert_array_equal(replicate_rng(2026, "therapist", 17).random(3), expected)
    keys = [
        (2026, "therapist", 0),
        (2026, "therapist", 1),
        (2027, "therapist", 0),
        (2026, "mediation_homework_rate", 0),
    ]
    draws = {key: replicate_rng(*key).random() for key in keys}
    assert len(set(draws.values())) == 4


def three_level(n_therapists: int = 8, clients: int = 6, sessions: int = 4) -> pd.DataFrame:
    """A small three-level panel (therapist SD 1, client SD 2, residual SD 2)."""
    rng = np.random.default_rng(21)
    n = n_therapists * clients
    therapist = np.repeat(np.arange(n_therapists), clients)
    client = np.repeat(np.arange(n), sessions)
    y = (
        10
        + rng.normal(0, 1, n_therapists)[therapist[client]]
        + rng.normal(0, 2, n)[client]
        + rng.normal(0, 2, client.size)
    )
    return pd.DataFrame(
        {
            "client_id": [f"C{i:03d}" for i in client],
            "session_number": np.tile(np.arange(sessions), n),
            "therapist_id": [f"T{j}" for j in therapist[client]],
            "phq9": y,
        }
    )


def pooled_through_files(frames: list[pd.DataFrame], folder: Path) -> pd.DataFrame:
    """Write each chunk as its job would and read them back as the model's job does; the
    chunks are listed out of order on purpose."""
    paths = []
    for k, frame in enumerate(frames):
        path = folder / f"chunk_{k}.parquet"
        write_replicates(frame, path)
        paths.append(path)
    return read_replicates(paths[::-1])


def test_therapist_chunked_equals_unchunked(tmp_path: Path) -> None:
    panel = three_level()
    whole = fit_therapist(panel, n_boot=12, seed=5, model_id="therapist")
    unchunked = therapist_icc_replicates(panel, "phq9", 5, 12, model_id="therapist")
    for n_chunks in (2, 5):
        chunks = [
            therapist_icc_replicates(panel, "phq9", 5, chunk, model_id="therapist")
            for chunk in chunk_ranges(12, n_chunks)
        ]
        folder = tmp_path / str(n_chunks)
        folder.mkdir()
        pooled = pooled_through_files(chunks, folder)
        pd.testing.assert_frame_equal(pooled, unchunked, check_exact=True)
    scattered = fit_therapist(panel, n_boot=12, seed=5, model_id="therapist", replicates=pooled)
    pd.testing.assert_frame_equal(scattered.coefficients, whole.coefficients, check_exact=True)
    assert scattered.diagnostics["extras"]["bootstrap"] == whole.diagnostics["extras"]["bootstrap"]
    # Replicate 7 by hand: therapists drawn with the generator of (5, "therapist", 7).
    data, _ = _model_data(panel, "phq9")
    sums = ClientSums.of(data, "phq9")
    rng = np.random.default_rng([5, zlib.crc32(b"therapist"), 7])
    drawn = sums.resample(rng)
    by_hand = fit_variance_components(drawn.pooled())
    seventh = pooled.set_index("replicate").loc[7]
    assert seventh["icc_therapist"] == by_hand["icc_therapist"]
    assert seventh["var_residual"] == by_hand["residual"]
    # Cells of clients or the clients themselves: the same optimum.
    by_client = fit_variance_components(drawn)
    assert seventh["icc_therapist"] == pytest.approx(by_client["icc_therapist"], rel=1e-6)


def test_pooling_refuses_missing_or_repeated_replicates() -> None:
    panel = three_level()
    first = therapist_icc_replicates(panel, "phq9", 5, range(0, 3))
    with pytest.raises(AccordError, match=r"'therapist'.*rerun its bootstrap_model jobs"):
        fit_therapist(panel, n_boot=6, seed=5, replicates=first)
    with pytest.raises(AccordError, match=r"not replicates 0\.\.5"):
        check_replicates(pd.concat([first, first]), 6, "therapist")


def linear_data(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 1, n)
    m = 1 + 0.5 * x + rng.normal(0, 0.5, n)
    y = -1.0 * x - 2.0 * m + rng.normal(0, 1, n)
    return pd.DataFrame({"client_id": [f"C{i}" for i in range(n)], "x": x, "m": m, "y": y})


MEDIATION = dict(mediator="m", outcome="y", outcome_column="y", exposure="x", seed=9)


def test_mediation_chunked_equals_unchunked(tmp_path: Path) -> None:
    data = linear_data()
    whole = fit_mediation(data, n_boot=60, model_id="mediation_m", **MEDIATION)
    chunks = [
        mediation_replicates(data, replicates=chunk, model_id="mediation_m", **MEDIATION)
        for chunk in chunk_ranges(60, 4)
    ]
    pooled = pooled_through_files(chunks, tmp_path)
    assert pooled["replicate"].tolist() == list(range(60))
    scattered = fit_mediation(
        data, n_boot=60, model_id="mediation_m", replicates=pooled, **MEDIATION
    )
    pd.testing.assert_frame_equal(scattered.coefficients, whole.coefficients, check_exact=True)
    again = fit_mediation(data, n_boot=60, model_id="mediation_m", **MEDIATION)
    pd.testing.assert_frame_equal(again.coefficients, whole.coefficients, check_exact=True)
    other = fit_mediation(data, n_boot=60, model_id="mediation_other", **MEDIATION)
    assert not np.isclose(
        other.coefficients["ci_low"].iloc[0], whole.coefficients["ci_low"].iloc[0]
    )


def test_replicate_tables_are_byte_identical_across_runs(tmp_path: Path) -> None:
    panel = three_level()
    for name in ("a", "b"):
        frame = therapist_icc_replicates(panel, "phq9", 5, range(3, 7))
        write_replicates(frame, tmp_path / f"{name}.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_workflow_draws_bootstraps_in_chunk_jobs(workflow_run: Path) -> None:
    models = workflow_run / "results" / "small" / "models"
    panel = read_validated(models.parent / "session_panel.parquet")
    client_measures = read_validated(models.parent / "client_measures.parquet")
    seed = 2026  # the schema's default analysis.seed; the small study does not set it
    for model, n in (
        ("therapist", 200),
        ("therapist_null", 200),
        ("mediation_early_alliance", 500),
    ):
        paths = sorted((models / model / "bootstrap").glob("chunk_*.parquet"))
        assert [p.name for p in paths] == ["chunk_0.parquet", "chunk_1.parquet"]
        first = pd.read_parquet(paths[0])
        assert first["replicate"].tolist() == list(range(n // 2))
        pooled = read_replicates(paths)
        assert pooled["replicate"].tolist() == list(range(n))
        # Spot checks: replicates redrawn in this process equal the jobs' ones.
        if model == "therapist":
            redrawn = post_icc_replicates(client_measures, "phq9", (), seed, [0, 150])
        elif model == "therapist_null":
            redrawn = therapist_icc_replicates(panel, "phq9", seed, [0, 150], model_id=model)
        else:
            redrawn = mediation_replicates(
                client_measures,
                mediator="early_alliance",
                covariates=["phq9_first"],
                replicates=[0, 150],
                model_id=model,
                seed=seed,
            )
        pd.testing.assert_frame_equal(
            pooled.iloc[[0, 150]].reset_index(drop=True), redrawn, check_exact=True
        )
    for model in ("growth", "dropout"):
        assert not (models / model / "bootstrap").exists()
