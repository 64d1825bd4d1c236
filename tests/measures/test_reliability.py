"""Alpha, its Feldt interval and omega, checked against hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from accord.core.instruments import load_registry
from accord.measures.reliability import (
    RELIABILITY_COLUMNS,
    alpha_ci,
    cronbach_alpha,
    omega_correlated_factors,
    omega_total,
    one_factor_ml,
    reliability_table,
)

# Four people answering three items:
#            i1 i2 i3 | sum
TINY = np.array(
    [
        [1, 2, 2],  # 5
        [2, 2, 3],  # 7
        [3, 4, 3],  # 10
        [2, 4, 4],  # 10
    ],
    dtype=float,
)
# i1: mean 2, deviations -1 0 1 0, SS 2 -> variance 2/3
# i2: mean 3, deviations -1 -1 1 1, SS 4 -> variance 4/3
# i3: mean 3, deviations -1 0 0 1, SS 2 -> variance 2/3
# sum: mean 8, deviations -3 -1 2 2, SS 18 -> variance 6
# alpha = 3/2 * (1 - (2/3 + 4/3 + 2/3) / 6) = 3/2 * (1 - 4/9) = 5/6
TINY_ALPHA = 5 / 6

TRIO_YAML = """
trio:
  items: 3
  item_min: 1
  item_max: 5
  higher_is: worse
"""


def long_form(matrix, instrument, session=1, rater="client", first_client=0):
    """Item matrix (rows = clients, NaN = unanswered) to the long measures table."""
    rows = []
    for r, responses in enumerate(matrix):
        for i, value in enumerate(responses, start=1):
            if not np.isnan(value):
                rows.append((f"c{first_client + r:05d}", session, instrument, rater, str(i), value))
    frame = pd.DataFrame(
        rows, columns=["client_id", "session_number", "instrument", "rater", "item", "value"]
    )
    return frame.astype({"session_number": "int64", "value": "float64"})


def one_factor_sample(loadings, uniquenesses, n, seed):
    rng = np.random.default_rng(seed)
    factor = rng.standard_normal((n, 1))
    noise = rng.standard_normal((n, len(loadings))) * np.sqrt(uniquenesses)
    return factor * np.asarray(loadings) + noise


def test_cronbach_alpha_by_hand():
    assert cronbach_alpha(np.cov(TINY, rowvar=False)) == pytest.approx(TINY_ALPHA)


def test_cronbach_alpha_undefined():
    assert math.isnan(cronbach_alpha(np.zeros((3, 3))))
    assert math.isnan(cronbach_alpha(np.ones((1, 1))))


def test_feldt_interval():
    # alpha = .80, n = 50, k = 10: F has 49 and 49 * 9 = 441 degrees of freedom;
    # F(.975; 49, 441) = 1.47058, F(.025; 49, 441) = 0.63313 (scipy.stats.f.ppf), so
    # low = 1 - 0.2 * 1.47058 = 0.70588 and high = 1 - 0.2 * 0.63313 = 0.87337.
    low, high = alpha_ci(0.80, 50, 10)
    assert low == pytest.approx(0.70588, abs=1e-5)
    assert high == pytest.approx(0.87337, abs=1e-5)
    # A 90 % interval is narrower.
    low90, high90 = alpha_ci(0.80, 50, 10, level=0.90)
    assert low < low90 < 0.80 < high90 < high


def test_feldt_interval_undefined():
    assert all(math.isnan(v) for v in alpha_ci(math.nan, 50, 10))
    assert all(math.isnan(v) for v in alpha_ci(0.8, 1, 10))


def test_omega_recovers_known_loadings():
    # Standardised items: loadings .8 .7 .6 .5, uniquenesses 1 - loading^2.
    loadings = np.array([0.8, 0.7, 0.6, 0.5])
    psi = 1 - loadings**2
    cov = np.outer(loadings, loadings) + np.diag(psi)
    fitted, fitted_psi, ok = one_factor_ml(cov)
    assert ok
    np.testing.assert_allclose(fitted, loadings, atol=1e-5)
    np.testing.assert_allclose(fitted_psi, psi, atol=1e-5)
    # omega = 2.6^2 / (2.6^2 + (0.36 + 0.51 + 0.64 + 0.75)) = 6.76 / 9.02 = 0.749445...
    assert omega_total(cov) == pytest.approx(6.76 / 9.02, abs=1e-6)


def test_omega_of_raw_items_with_unequal_variances():
    loadings = np.array([1.2, 0.9, 2.0, 0.4, 1.0])
    psi = np.array([1.0, 0.5, 2.0, 0.3, 0.8])
    cov = np.outer(loadings, loadings) + np.diag(psi)
    # omega = 5.5^2 / (5.5^2 + 4.6) = 30.25 / 34.85 = 0.868006
    assert omega_total(cov) == pytest.approx(30.25 / 34.85, abs=1e-6)
    # From a large sample of that model the estimate is close.
    sample = one_factor_sample(loadings, psi, 100_000, seed=3)
    assert omega_total(np.cov(sample, rowvar=False)) == pytest.approx(30.25 / 34.85, abs=0.01)


def test_omega_equals_alpha_for_parallel_items():
    # Equal loadings and uniquenesses (parallel items): omega and alpha coincide.
    # loadings .7, uniqueness .51, k = 4: omega = 2.8^2 / (2.8^2 + 2.04) = 7.84 / 9.88
    cov = np.full((4, 4), 0.49) + np.diag(np.full(4, 0.51))
    assert omega_total(cov) == pytest.approx(7.84 / 9.88, abs=1e-6)
    assert cronbach_alpha(cov) == pytest.approx(7.84 / 9.88)


def test_omega_needs_three_varying_items():
    assert math.isnan(omega_total(np.eye(2)))
    assert math.isnan(omega_total(np.diag([1.0, 1.0, 0.0])))


def test_reliability_table_on_the_tiny_matrix():
    registry = load_registry(yaml.safe_load(TRIO_YAML))
    table = reliability_table(long_form(TINY, "trio"), registry, min_n=4)
    assert list(table.columns) == list(RELIABILITY_COLUMNS)
    row = table.iloc[0]
    assert (row["instrument"], row["scale"], row["rater"], row["wave"]) == (
        "trio",
        "total",
        "client",
        1,
    )
    assert (row["n"], row["k_items"]) == (4, 3)
    assert row["alpha"] == pytest.approx(TINY_ALPHA)
    low, high = alpha_ci(TINY_ALPHA, 4, 3)
    assert (row["alpha_ci_low"], row["alpha_ci_high"]) == (pytest.approx(low), pytest.approx(high))
    # With 3 items the one-factor model is just identified: loading_2^2 = r12 * r23 / r13.
    # Covariances: c12 = 2/3, c23 = 2/3, c13 = 1/3, so r12 = r23 = (2/3) / sqrt(2/3 * 4/3) = .7071
    # and r13 = (1/3) / (2/3) = .5, giving loading_2^2 = .5 / .5 = 1: uniqueness 0, a Heywood case.
    assert row["reason"] == "omega: Heywood case (a uniqueness at its lower bound)"
    # The default minimum of 10 complete cases leaves the cell empty, with the reason.
    small = reliability_table(long_form(TINY, "trio"), registry).iloc[0]
    assert small["n"] == 4
    assert math.isnan(small["alpha"]) and math.isnan(small["omega"])
    assert small["reason"] == "fewer than 10 complete cases"


def test_reliability_table_uses_complete_cases_per_wave_and_rater():
    registry = load_registry(yaml.safe_load(TRIO_YAML))
    incomplete = np.array([[1, np.nan, 3], [5, 5, np.nan]])
    data = pd.concat(
        [
            long_form(np.vstack([TINY, incomplete]), "trio", session=0),
            long_form(TINY[::-1], "trio", session=2),
            long_form(TINY, "trio", session=2, rater="therapist"),
        ]
    )
    table = reliability_table(data, registry, min_n=4)
    # Intake is wave 0; the two incomplete forms do not count; therapist ratings are left out.
    assert table[["wave", "rater", "n"]].values.tolist() == [[0, "client", 4], [2, "client", 4]]
    assert table["alpha"].tolist() == pytest.approx([TINY_ALPHA, TINY_ALPHA])
    every_rater = reliability_table(data, registry, min_n=4, raters=None)
    assert sorted(every_rater["rater"]) == ["client", "client", "therapist"]


def test_reverse_keyed_items_are_reversed_first():
    # CORE-10 answers generated on the keyed scale, then items 2 and 3 stored reversed (4 - x).
    rng = np.random.default_rng(11)
    trait = rng.normal(size=(400, 1))
    keyed = np.clip(np.round(2 + trait + rng.normal(scale=0.8, size=(400, 10))), 0, 4)
    raw = keyed.copy()
    raw[:, [1, 2]] = 4 - raw[:, [1, 2]]
    table = reliability_table(long_form(raw, "core10"), load_registry())
    assert table["alpha"].iloc[0] == pytest.approx(cronbach_alpha(np.cov(keyed, rowvar=False)))
    assert table["alpha"].iloc[0] > 0.8


def test_wai_sr_subscales_and_omega_from_one_factor_data():
    loadings = np.full(12, 0.7)
    sample = one_factor_sample(loadings, np.full(12, 0.51), 5_000, seed=5)
    responses = np.clip(np.round(3 + sample), 1, 5)
    table = reliability_table(long_form(responses, "wai_sr"), load_registry())
    assert table["scale"].tolist() == ["bond", "goal", "task", "total"]
    assert table["k_items"].tolist() == [4, 4, 4, 12]
    total = table.set_index("scale").loc["total"]
    for scale, columns in (("goal", [3, 5, 7, 10]), ("task", [0, 1, 9, 11])):
        expected = cronbach_alpha(np.cov(responses[:, columns], rowvar=False))
        assert table.set_index("scale").loc[scale, "alpha"] == pytest.approx(expected)
    # Near-parallel items: omega close to alpha, both high.
    assert total["omega"] == pytest.approx(total["alpha"], abs=0.01)
    assert total["alpha_ci_low"] < total["alpha"] < total["alpha_ci_high"]


def test_cells_without_variance_and_gas_is_skipped():
    registry = load_registry(yaml.safe_load(TRIO_YAML))
    flat = np.full((12, 3), 3.0)
    data = pd.concat(
        [
            long_form(flat, "trio"),
            pd.DataFrame(
                {
                    "client_id": ["c00000"],
                    "session_number": [1],
                    "instrument": ["gas"],
                    "rater": ["client"],
                    "item": ["g1"],
                    "value": [1.0],
                }
            ),
        ]
    )
    table = reliability_table(data, registry)
    assert table["instrument"].tolist() == ["trio"]
    assert table["reason"].iloc[0] == "no variance in the total"
    assert math.isnan(table["alpha"].iloc[0])


def test_omega_reason_when_an_item_does_not_vary():
    registry = load_registry(yaml.safe_load(TRIO_YAML))
    data = np.column_stack([TINY[:, :2], np.full(4, 3.0)])
    row = reliability_table(long_form(data, "trio"), registry, min_n=4).iloc[0]
    assert not math.isnan(row["alpha"])
    assert math.isnan(row["omega"])
    assert row["reason"] == "omega: an item does not vary"


def test_heywood_case_is_flagged():
    # Item 1 is the factor itself (uniqueness ~0, below the 0.005 bound); items 2-4 load .5.
    registry = load_registry(yaml.safe_load(TRIO_YAML.replace("items: 3", "items: 4")))
    sample = one_factor_sample([1.0, 0.5, 0.5, 0.5], [1e-6, 0.75, 0.75, 0.75], 2_000, seed=2)
    row = reliability_table(long_form(sample, "trio"), registry).iloc[0]
    assert not math.isnan(row["omega"])
    assert row["reason"] == "omega: Heywood case (a uniqueness at its lower bound)"


def test_min_n_must_be_sensible():
    with pytest.raises(ValueError, match="min_n"):
        reliability_table(long_form(TINY, "phq9"), load_registry(), min_n=1)


def test_omega_of_a_total_with_correlated_subscale_factors():
    # items 1-3 load .8, .7, .6 on F1; items 4-6 .7, .6, .5 on F2; corr(F1, F2) = .5;
    # uniquenesses 1 - loading^2. Common variance of the total: 2.1^2 + 1.8^2 + 2 * .5 * 2.1 *
    # 1.8 = 11.43; error: 1.51 + 1.90 = 3.41; omega = 11.43 / 14.84 = 0.770216.
    loadings = np.zeros((6, 2))
    loadings[:3, 0] = [0.8, 0.7, 0.6]
    loadings[3:, 1] = [0.7, 0.6, 0.5]
    phi = np.array([[1.0, 0.5], [0.5, 1.0]])
    cov = loadings @ phi @ loadings.T
    np.fill_diagonal(cov, 1.0)
    parts = [[0, 1, 2], [3, 4, 5]]
    assert omega_correlated_factors(cov, parts) == pytest.approx(11.43 / 14.84, abs=1e-6)
    # a one-factor omega of the same total misstates it
    assert abs(omega_total(cov) - 11.43 / 14.84) > 0.005
