"""Mediation: recovery of a planted indirect effect (ACME = a b), determinism, the config
entry point on a simulated study."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
from conftest import simulated_measures

from accord.errors import ConfigError
from accord.models.mediation import fit_mediation, fit_mediation_spec
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import COEFFICIENT_COLUMNS

A, B, C_DIRECT = 0.5, -2.0, -1.0  # x -> m, m -> y, x -> y directly


@functools.cache
def linear_data(n: int = 600, seed: int = 4) -> pd.DataFrame:
    """m = 1 + a x + 0.1 z + u, y = c' x + b m + 0.3 z + e; ACME = a b = -1, ADE = c' = -1,
    total = -2, proportion mediated = 0.5."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, n)
    z = rng.normal(0, 1, n)
    m = 1 + A * x + 0.1 * z + rng.normal(0, 0.5, n)
    y = C_DIRECT * x + B * m + 0.3 * z + rng.normal(0, 1, n)
    return pd.DataFrame({"client_id": [f"C{i}" for i in range(n)], "x": x, "m": m, "y": y, "z": z})


def fit(**kwargs):
    args = dict(
        mediator="m",
        outcome="y",
        outcome_column="y",
        exposure="x",
        covariates=["z"],
        n_boot=200,
        seed=3,
    )
    return fit_mediation(linear_data(), **{**args, **kwargs})


def test_recovers_planted_effects():
    result = fit()
    rows = result.coefficients.set_index("term")
    assert rows.index.tolist() == ["acme", "ade", "total_effect", "proportion_mediated"]
    truth = {
        "acme": A * B,
        "ade": C_DIRECT,
        "total_effect": A * B + C_DIRECT,
        "proportion_mediated": A * B / (A * B + C_DIRECT),
    }
    for term, value in truth.items():
        assert rows.loc[term, "ci_low"] < value < rows.loc[term, "ci_high"], term
    assert rows.loc["acme", "p_value"] < 0.05
    products = result.diagnostics["extras"]["product_of_coefficients"]
    assert products["indirect_ab"] == pytest.approx(
        products["a_exposure_to_mediator"] * products["b_mediator_to_outcome"]
    )
    # the bootstrap mean of the ACME is close to the full-sample a b
    assert rows.loc["acme", "estimate"] == pytest.approx(products["indirect_ab"], abs=0.1)
    assert result.diagnostics["extras"]["mediator_formula"] == "m ~ x + z"
    assert result.diagnostics["extras"]["outcome_formula"] == "y ~ x + m + z"
    assert result.diagnostics["converged"]


def test_same_seed_same_results_and_global_state_untouched():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first, second = fit(), fit()
    assert (np.random.get_state()[1] == before).all()
    pd.testing.assert_frame_equal(first.coefficients, second.coefficients)
    other = fit(seed=4)
    assert not other.coefficients["estimate"].equals(first.coefficients["estimate"])


def test_bad_settings():
    with pytest.raises(ConfigError):
        fit(mediator="x")
    with pytest.raises(ConfigError):
        fit(n_boot=10)
    with pytest.raises(ConfigError):
        fit(mediator="not_a_column")


@functools.cache
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:

    panel, client_measures, _ = simulated_measures(n_clients=400, seed=7)
    return panel, client_measures


def test_spec_entry_point_on_simulated_study():
    panel, client_measures = demo()
    spec = ModelSpec(
        id="mediation_alliance",
        kind="mediation",
        outcome="phq9",
        exposure="joint_goal_share",
        covariates=("phq9_first",),
        primary=False,
        options={"mediator": "early_alliance", "n_boot": 100},
    )
    result = fit_mediation_spec(panel, client_measures, spec, ModelContext(seed=1))
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS
    rows = result.coefficients.set_index("term")
    # the simulator routes part of the exposure's effect through the alliance: the exposure
    # raises the alliance and a higher alliance steepens improvement (negative PHQ-9 change)
    assert rows.loc["acme", "estimate"] < 0
    assert result.diagnostics["extras"]["outcome_column"] == "phq9_change"
    assert result.diagnostics["n_clients"] == client_measures["early_alliance"].notna().sum()
    with pytest.raises(ConfigError):
        fit_mediation_spec(
            panel,
            client_measures,
            ModelSpec(id="m", kind="mediation", outcome="phq9", exposure="joint_goal_share"),
            ModelContext(),
        )
