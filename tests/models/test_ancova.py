"""Pre-post ANCOVA (complete cases and multiple imputation): hand-checked OLS, recovery of a
planted effect under missing at random, determinism, the config entry point."""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
from conftest import simulated_measures

from accord.core.errors import ConfigError
from accord.models.ancova import fit_ancova, fit_ancova_mice, fit_ancova_mice_spec, fit_ancova_spec
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import COEFFICIENT_COLUMNS


@functools.cache
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:

    panel, client_measures, _ = simulated_measures(n_clients=400, seed=7)
    return panel, client_measures


def test_exact_data_recovers_coefficients():
    # y_post = 2 + 3 x + 0.5 y_first exactly: OLS returns the coefficients, residual SD 0.
    x = np.array([0, 1, 0, 1, 0.5, 0.25])
    first = np.array([10, 12, 14, 16, 18, 20.0])
    data = pd.DataFrame(
        {"client_id": list("ABCDEF"), "x": x, "y_first": first, "y_post": 2 + 3 * x + first / 2}
    )
    result = fit_ancova(data, outcome="y", exposure="x")
    est = result.coefficients.set_index("term")["estimate"]
    assert est["Intercept"] == pytest.approx(2)
    assert est["x"] == pytest.approx(3)
    assert est["y_first"] == pytest.approx(0.5)
    assert result.diagnostics["formula"] == "y_post ~ x + y_first"


def test_exposure_slope_and_se_by_frisch_waugh():
    # The exposure slope equals the simple regression of y_post on the part of x not explained
    # by y_first: cov(rx, y) / var(rx); its SE is sqrt(s^2 / sum(rx^2)), s^2 = RSS / (n - 3).
    rng = np.random.default_rng(3)
    n = 60
    first = rng.normal(15, 4, n)
    x = rng.uniform(0, 1, n) + 0.02 * first
    last = 1 + 0.7 * first - 2 * x + rng.normal(0, 2, n)
    data = pd.DataFrame({"client_id": range(n), "x": x, "y_first": first, "y_post": last})
    row = fit_ancova(data, outcome="y", exposure="x").coefficients.set_index("term").loc["x"]
    g = np.cov(x, first)[0, 1] / np.var(first, ddof=1)
    rx = (x - x.mean()) - g * (first - first.mean())
    slope = np.cov(rx, last)[0, 1] / np.var(rx, ddof=1)
    h = np.cov(last, first)[0, 1] / np.var(first, ddof=1)
    ry = (last - last.mean()) - h * (first - first.mean())
    rss = np.sum((ry - slope * rx) ** 2)
    assert row["estimate"] == pytest.approx(slope, rel=1e-9)
    assert row["std_error"] == pytest.approx(math.sqrt(rss / (n - 3) / np.sum(rx**2)), rel=1e-9)


def test_completers_only_and_text_exposure():
    data = pd.DataFrame(
        {
            "client_id": [f"C{i}" for i in range(8)],
            "arm": ["a", "b"] * 4,
            "y_first": [10, 11, 12, 13, 14, 15, 16, 17.0],
            "y_post": [8, 6, 9, 7, 11, 9, np.nan, 12.0],
            "dropout": pd.array([False, False, False, True, False, False, False, None]),
        }
    )
    result = fit_ancova(data, outcome="y", exposure="arm", completers_only=True)
    extras = result.diagnostics["extras"]
    assert extras["exposure_coding"] == "1 = b, 0 = a"
    assert extras["clients_excluded_dropout"] == 2  # one dropout, one unknown
    assert extras["clients_excluded_missing"] == 1
    assert result.coefficients["n_obs"].iloc[0] == 5
    with pytest.raises(ConfigError):
        fit_ancova(data, outcome="y", exposure="missing_column")


def simulate_mar(seed: int, n: int = 800) -> pd.DataFrame:
    """y_post = 2 + 0.6 y_first - 3 x + e; y_post missing at random given x and y_first
    (more often for high intake severity and low exposure)."""
    rng = np.random.default_rng(seed)
    first = rng.normal(16, 4, n)
    x = rng.uniform(0, 1, n)
    last = 2 + 0.6 * first - 3 * x + rng.normal(0, 3, n)
    aux = 0.3 * last + rng.normal(0, 2, n)
    p_missing = 1 / (1 + np.exp(-(-0.8 + 0.25 * (first - 16) - 1.0 * (x - 0.5))))
    last[rng.random(n) < p_missing] = np.nan
    return pd.DataFrame(
        {
            "client_id": [f"C{i:04d}" for i in range(n)],
            "x": x,
            "y_first": first,
            "y_post": last,
            "aux": aux,
        }
    )


def test_mice_recovers_planted_effect_and_is_deterministic():
    data = simulate_mar(5)
    kwargs = dict(
        outcome="y",
        exposure="x",
        auxiliary=["aux"],
        n_imputations=10,
        n_iterations=5,
        seed=11,
    )
    result = fit_ancova_mice(data, **kwargs)
    row = result.coefficients.set_index("term").loc["x"]
    assert row["ci_low"] < -3 < row["ci_high"]
    assert row["std_error"] > 0
    extras = result.diagnostics["extras"]
    assert extras["missing_values"]["y_post"] == data["y_post"].isna().sum()
    assert 0 < extras["fraction_missing_information"]["x"] < 1
    assert extras["imputation_variables"] == ["y_post", "x", "y_first", "aux"]
    again = fit_ancova_mice(data, **kwargs)
    pd.testing.assert_frame_equal(result.coefficients, again.coefficients)
    other = fit_ancova_mice(data, **{**kwargs, "seed": 12})
    assert not other.coefficients["estimate"].equals(result.coefficients["estimate"])


def test_spec_entry_points_on_simulated_study():
    panel, client_measures = demo()
    client_measures = client_measures.copy()
    rng = np.random.default_rng(1)
    client_measures.loc[rng.random(len(client_measures)) < 0.25, "phq9_post"] = np.nan
    context = ModelContext(seed=2026)
    spec = ModelSpec(
        id="ancova_completers",
        kind="ancova",
        outcome="phq9",
        exposure="joint_goal_share",
        covariates=("arm",),
        primary=True,
        options={"completers_only": True},
    )
    result = fit_ancova_spec(panel, client_measures, spec, context)
    coefficients = result.coefficients
    assert list(coefficients.columns) == COEFFICIENT_COLUMNS
    assert coefficients.loc[coefficients["primary"].astype(bool), "term"].tolist() == [
        "joint_goal_share"
    ]
    assert result.diagnostics["converged"] and result.diagnostics["n_therapists"] > 1

    spec = ModelSpec(
        id="ancova_mi",
        kind="ancova_mice",
        outcome="phq9",
        exposure="joint_goal_share",
        options={"n_imputations": 5, "n_iterations": 3},
    )
    result = fit_ancova_mice_spec(panel, client_measures, spec, context)
    assert result.diagnostics["converged"]
    assert result.diagnostics["extras"]["auxiliary"] == [
        "phq9_last_before_post",
        "phq9_last_before_post_session",
        "early_alliance",
        "sessions_attended",
    ]
    assert result.coefficients["n_obs"].iloc[0] == len(client_measures)
    # the planted exposure effect on the end score is negative (improvement)
    assert result.coefficients.set_index("term").loc["joint_goal_share", "estimate"] < 0
    with pytest.raises(ConfigError):
        fit_ancova_mice_spec(
            panel,
            client_measures,
            ModelSpec(
                id="x",
                kind="ancova_mice",
                outcome="phq9",
                exposure="joint_goal_share",
                options={"completers_only": True},
            ),
            context,
        )


def test_locf_is_a_labelled_sensitivity_on_the_last_observed_score():
    data = pd.DataFrame(
        {
            "client_id": [f"C{i}" for i in range(7)],
            "x": [0, 1, 0, 1, 0, 1, 0.5],
            "y_first": [10, 11, 12, 13, 14, 15, 16.0],
            "y_post": [8, 6, 9, np.nan, np.nan, 9, 10.0],
            "y_last": [8, 6, 9, 12, 13, 9, 10.0],
        }
    )
    post = fit_ancova(data, outcome="y", exposure="x")
    locf = fit_ancova(data, outcome="y", exposure="x", end="last")
    assert post.coefficients["n_obs"].iloc[0] == 5
    assert locf.coefficients["n_obs"].iloc[0] == 7
    assert locf.diagnostics["formula"] == "y_last ~ x + y_first"
    assert locf.diagnostics["extras"]["locf"] is True
    assert "LOCF" in locf.diagnostics["method"]
    assert any("LOCF" in w for w in locf.diagnostics["warnings"])
    with pytest.raises(ConfigError, match="end"):
        fit_ancova(data, outcome="y", exposure="x", end="first")
