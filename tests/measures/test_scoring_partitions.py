"""Scoring in partitions of clients: exact reliability sums and the bytes of scoring in one job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from accord.core.instruments import load_registry
from accord.core.stages import read_validated
from accord.measures.partitions import (
    gather_scored,
    score_study,
    score_validated_part,
    write_scored_part,
    write_scoring,
)
from accord.measures.reliability import (
    GRID,
    CellSums,
    add_reliability_sums,
    cell_sums,
    covariance_from_sums,
    reliability_from_sums,
    reliability_sums,
    reliability_table,
    sums_from_records,
    sums_to_records,
)
from accord.measures.scoring import ScoringSettings
from accord.simulate import simulate_study, write_study
from accord.validate import StudyInput, validate_study, write_validation
from accord.validate.gather import write_part
from accord.validate.split import split_study, validate_partition

REGISTRY = load_registry()
OUTPUTS = ("scores", "disagreements", "reliability")

# Four people answering three items (the matrix of test_reliability.py):
TINY = np.array([[1, 2, 2], [2, 2, 3], [3, 4, 3], [2, 4, 4]], dtype=float)
# Deviations from the means 2, 3, 3: i1 -1 0 1 0, i2 -1 -1 1 1, i3 -1 0 0 1; n - 1 = 3:
# var 2/3, 4/3, 2/3; cov(1,2) = (1 + 0 + 1 + 0) / 3, cov(1,3) = 1/3, cov(2,3) = (1 + 1) / 3.
TINY_COV = np.array([[2 / 3, 2 / 3, 1 / 3], [2 / 3, 4 / 3, 2 / 3], [1 / 3, 2 / 3, 2 / 3]])


def test_sums_of_the_tiny_matrix_by_hand() -> None:
    cell = cell_sums(TINY)
    assert cell.n == 4
    # column sums 8, 12, 12 points; on the grid of 1/1000 point
    assert cell.sums == (8_000, 12_000, 12_000)
    # sum of squares of item 1: 1 + 4 + 9 + 4 = 18; item 1 x item 2: 2 + 4 + 12 + 8 = 26
    assert cell.products[0][0] == 18 * GRID**2
    assert cell.products[0][1] == cell.products[1][0] == 26 * GRID**2
    # (4 * 26 - 8 * 12) / (4 * 3) = 8 / 12 = 2/3, correctly rounded: equal to the float 2/3
    assert np.array_equal(covariance_from_sums(cell), TINY_COV)
    np.testing.assert_allclose(covariance_from_sums(cell), np.cov(TINY, rowvar=False), rtol=1e-15)


def test_visual_analogue_ratings_with_decimals() -> None:
    rng = np.random.default_rng(4)
    # ORS-like ratings 0..10 to two and three decimals, correlated through a common level
    level = rng.uniform(2, 8, size=(500, 1))
    data = np.clip(level + rng.normal(0, 1.5, size=(500, 4)), 0, 10)
    data[:250] = np.round(data[:250], 2)
    data[250:] = np.round(data[250:], 3)
    cov = covariance_from_sums(cell_sums(data))
    np.testing.assert_allclose(cov, np.cov(data, rowvar=False), rtol=0, atol=1e-12)
    # A fourth decimal is rounded onto the grid: 7.2504 counts as 7.250, 7.2506 as 7.251.
    assert cell_sums(np.array([[7.2504], [7.2506]])).sums == (14_501,)


def test_sums_do_not_depend_on_the_order_or_the_split_of_the_cases() -> None:
    rng = np.random.default_rng(9)
    data = np.round(rng.uniform(0, 10, size=(1_001, 5)), 1)
    whole = cell_sums(data)
    shuffled = cell_sums(data[rng.permutation(len(data))])
    split = cell_sums(data[:300]) + cell_sums(data[300:301]) + cell_sums(data[301:])
    assert shuffled == whole and split == whole
    assert covariance_from_sums(split).tobytes() == covariance_from_sums(whole).tobytes()
    # through the JSON records a partition passes on
    cells = {("ors", "total", "client", 1): whole}
    assert sums_from_records(sums_to_records(cells)) == cells


def test_products_too_large_for_int64_stay_exact() -> None:
    # 4e6 points is 4e9 on the grid; its square, 1.6e19, does not fit in an int64
    data = np.array([[4e6, 1.0], [-4e6, 2.0], [3e6, 3.0]])
    cell = cell_sums(data)
    assert cell.products[0][0] == (16 + 16 + 9) * 10**12 * GRID**2
    assert cell.products[0][1] == (4 - 8 + 9) * 10**6 * GRID**2
    # a million rows of 3 points: int64 chunks, added as Python integers
    many = cell_sums(np.full((1_000_000, 2), 3.0))
    assert many.products[0][1] == 9 * 10**6 * GRID**2 and many.sums[0] == 3 * 10**6 * GRID


def test_covariance_needs_two_cases() -> None:
    with pytest.raises(ValueError, match="2 cases"):
        covariance_from_sums(CellSums(1, (1, 2), ((1, 2), (2, 4))))


TRIO_YAML = """
trio:
  items: 3
  item_min: 0
  item_max: 10
  higher_is: better
"""


def _long(matrix: np.ndarray, first_client: int, session: int) -> pd.DataFrame:
    rows = [
        (f"c{first_client + r:04d}", session, "trio", "client", str(i), value)
        for r, answers in enumerate(matrix)
        for i, value in enumerate(answers, start=1)
        if not np.isnan(value)
    ]
    columns = ["client_id", "session_number", "instrument", "rater", "item", "value"]
    return pd.DataFrame(rows, columns=columns)


def test_reliability_of_partitions_is_the_whole_table() -> None:
    registry = load_registry(yaml.safe_load(TRIO_YAML))
    rng = np.random.default_rng(2)
    level = rng.uniform(2, 8, size=(90, 1))
    data = np.round(np.clip(level + rng.normal(0, 1, size=(90, 3)), 0, 10), 2)
    data[5, 1] = np.nan  # an incomplete case
    measures = pd.concat([_long(data[:60], 0, 1), _long(data[60:], 0, 2)], ignore_index=True)
    whole = reliability_table(measures, registry)
    clients = measures["client_id"].str[-1].astype(int) % 3  # three partitions of clients
    parts = [reliability_sums(measures[clients == p], registry) for p in (2, 0, 1)]
    gathered = reliability_from_sums(add_reliability_sums(parts), registry)
    assert gathered.to_csv() == whole.to_csv()
    assert whole["n"].tolist() == [59, 30]
    # the statistics agree with np.cov on the complete cases of wave 1
    complete = data[:60][~np.isnan(data[:60]).any(axis=1)]
    cov = np.cov(complete, rowvar=False)
    expected = 3 / 2 * (1 - np.trace(cov) / cov.sum())
    assert whole["alpha"].iloc[0] == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# A simulated study scored in one job and in 1, 3 and 7 partitions


def _edit_measures(path: Path) -> None:
    """SRS ratings with decimals (a visual-analogue scale) and supplied PHQ-9 totals: one that
    disagrees with its items and one on a form without items."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    rng = np.random.default_rng(3)
    srs = (frame["instrument"] == "srs") & (frame["value"] != "")
    values = frame.loc[srs, "value"].astype(float).to_numpy()
    shifted = np.clip(values - rng.choice([0, 0.25, 0.5, 1.75, 0.125], size=values.size), 0, 10)
    frame.loc[srs, "value"] = [f"{v:g}" for v in shifted]
    phq9 = frame.index[(frame["instrument"] == "phq9") & (frame["item"] == "1")]
    extra = []
    for at, value in ((phq9[0], "27"), (phq9[5], "26"), (phq9[9], "4")):
        row = frame.loc[at].copy()
        row["item"], row["value"] = "total", value
        extra.append(row)
    # a form answered as a total only: its items are dropped
    single = frame.loc[phq9[12]].copy()
    single["item"], single["value"] = "total", "11"
    key = ["client_id", "session_number", "instrument", "rater"]
    form = (frame[key] == single[key]).all(axis=1)
    frame = pd.concat([frame[~form], pd.DataFrame([*extra, single])], ignore_index=True)
    frame.to_csv(path, index=False, lineterminator="\n")


def _outputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    names = {"scores": "scores.parquet", "reliability": "reliability.csv"}
    names["disagreements"] = "total_disagreements.csv"
    return {key: folder / name for key, name in names.items()}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyInput, dict[str, Path]]:
    """A study with VAS decimals and supplied totals, and its validation in one job."""
    folder = tmp_path_factory.mktemp("scored") / "study"
    write_study(simulate_study(n_clients=60, n_therapists=6, n_sites=2, seed=21), folder)
    _edit_measures(folder / "measures.csv")
    study = StudyInput("scored", folder)
    validated = folder.parent / "validated"
    paths = {t: validated / f"{t}.parquet" for t in ("clients", "sessions", "measures", "goals")}
    paths |= {"quarantine": validated / "quarantine.csv", "summary": validated / "summary.json"}
    write_validation(validate_study(study, REGISTRY), paths)
    return study, paths


def _one_job(paths: dict[str, Path], settings: ScoringSettings, folder: Path) -> dict[str, bytes]:
    measures = read_validated(paths["measures"], categorical=True)
    goals = read_validated(paths["goals"])
    scored = score_study(measures, REGISTRY, settings=settings, goals=goals)
    assert len(scored.result.total_disagreements) >= 2  # supplied totals that differ
    assert (scored.result.scores["source"] == "supplied_total").sum() == 1
    assert (scored.result.scores["score"] % 1 != 0).any()  # SRS scores with decimals
    out = _outputs(folder)
    write_scoring(scored, REGISTRY, out)
    return {name: out[name].read_bytes() for name in OUTPUTS}


@pytest.mark.parametrize(
    ("partitions", "weights"), [(1, "equal"), (3, "equal"), (7, "equal"), (3, "importance")]
)
def test_partitions_give_the_bytes_of_one_job(
    study, partitions: int, weights: str, tmp_path: Path
) -> None:
    study_input, validated_paths = study
    settings = ScoringSettings(gas_weights=weights)
    expected = _one_job(validated_paths, settings, tmp_path / "one_job")
    split_study(study_input, partitions, tmp_path / "split")
    scored = []
    for part in range(partitions):
        # through the files the workflow's jobs pass on
        validated = tmp_path / f"validated_{part}"
        write_part(validate_partition(study_input, REGISTRY, tmp_path / "split", part), validated)
        scored.append(tmp_path / f"scored_{part}")
        write_scored_part(score_validated_part(validated, REGISTRY, settings), scored[-1])
    gathered = gather_scored(scored[::-1], settings)
    out = _outputs(tmp_path / "out")
    write_scoring(gathered, REGISTRY, out)
    got = {name: out[name].read_bytes() for name in OUTPUTS}
    assert [name for name in OUTPUTS if got[name] != expected[name]] == []
