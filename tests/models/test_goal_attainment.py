"""Goal-level attainment: the goal table worked by hand, and planted goal-level effects of who
set the goal, SMART criteria and importance agreement recovered from simulated goals."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from accord.core.errors import ConfigError
from accord.models.goal_attainment import (
    PREDICTORS,
    SMART,
    fit_goal_attainment,
    fit_goal_attainment_spec,
    goal_level_table,
)
from accord.models.spec import ModelContext, ModelSpec

PLANTED = {
    "set_by[joint]": 0.5,
    "set_by[therapist]": -0.2,
    "smart_specific": 0.3,
    "smart_measurable": 0.0,
    "smart_achievable": 0.2,
    "smart_relevant": 0.0,
    "smart_time_bound": 0.1,
    "importance_agreement": 0.6,
    "set_session": -0.15,
}


def simulated_goals(n_clients: int, seed: int, *, outcome: str) -> pd.DataFrame:
    """Goal rows as `goal_level_table` gives them: 2-4 goals per client, 20 therapists.

    gas_level = -0.8 + x'beta + therapist (SD 0.3) + client (SD 0.5) + goal noise (SD 0.7);
    achieved ~ Bernoulli(expit(-0.8 + x'beta)), goals independent, so GEE's population-averaged
    log-odds equal the planted ones."""
    r = np.random.default_rng(seed)
    n_goals = r.integers(2, 5, n_clients)
    client = np.repeat(np.arange(n_clients), n_goals)
    therapist = (np.arange(n_clients) % 20)[client]
    n = client.size
    set_by = r.choice(3, n, p=[0.3, 0.45, 0.25])
    frame = pd.DataFrame(
        {
            "client_id": [f"C{c:04d}" for c in client],
            "goal_id": [f"G{g}" for g in range(n)],
            "therapist_id": [f"T{t:02d}" for t in therapist],
            "set_by[joint]": (set_by == 1).astype(float),
            "set_by[therapist]": (set_by == 2).astype(float),
            **{f"smart_{c}": (r.random(n) < 0.6).astype(float) for c in SMART},
            "importance_agreement": 1 - r.integers(0, 3, n) / 4,
            "set_session": r.integers(0, 3, n).astype(float),
        }
    )
    lp = -0.8 + sum(beta * frame[name].to_numpy() for name, beta in PLANTED.items())
    if outcome == "gas_level":
        frame["gas_level"] = (
            lp
            + r.normal(0, 0.3, 20)[therapist]
            + r.normal(0, 0.5, n_clients)[client]
            + r.normal(0, 0.7, n)
        )
        frame["achieved"] = np.nan
    else:
        frame["achieved"] = (r.random(n) < 1 / (1 + np.exp(-lp))).astype(float)
        frame["gas_level"] = np.nan
    return frame


@pytest.mark.parametrize("outcome", ["gas_level", "achieved"])
def test_planted_goal_level_effects_are_recovered(outcome):
    n_clients = 600 if outcome == "gas_level" else 2500
    result = fit_goal_attainment(simulated_goals(n_clients, 3, outcome=outcome), outcome=outcome)
    rows = result.coefficients.set_index("term")
    assert list(rows.index) == ["Intercept", *PREDICTORS]
    for name, value in PLANTED.items():
        assert rows.loc[name, "ci_low"] < value < rows.loc[name, "ci_high"], name
    assert rows.loc["set_by[joint]", "ci_low"] > 0
    assert result.diagnostics["converged"]
    if outcome == "gas_level":
        variances = result.diagnostics["random_effects"]
        assert variances["client"] == pytest.approx(0.25, abs=0.08)
        assert variances["therapist"] == pytest.approx(0.09, abs=0.07)
        assert variances["residual"] == pytest.approx(0.49, abs=0.05)
    else:
        assert rows.loc["set_by[joint]", "ratio"] == pytest.approx(
            np.exp(rows.loc["set_by[joint]", "estimate"])
        )


def test_goal_table_by_hand():
    goals = pd.DataFrame(
        {
            "client_id": ["A", "A", "B"],
            "goal_id": ["G1", "G2", "G1"],
            "set_session": [0, 1, 0],
            "set_by": ["joint", "client", "therapist"],
            "client_importance": [5, 4, 2],
            "therapist_importance": [5, 2, 3],
            **{f"smart_{c}": [True, False, True] for c in SMART},
            "status": ["achieved", "active", pd.NA],
        }
    )
    measures = pd.DataFrame(
        {
            "client_id": ["A", "A", "A", "B", "A"],
            "session_number": [4, 8, 4, 4, 8],
            "instrument": ["gas", "gas", "gas", "gas", "phq9"],
            "item": ["G1", "G1", "G2", "G1", "1"],
            "value": [0.0, 2.0, -1.0, np.nan, 3.0],
        }
    )
    table = goal_level_table(goals, measures, pd.Series({"A": "T1", "B": "T2"}))
    assert table["gas_level"].tolist()[:2] == [2.0, -1.0]  # the last rating, session 8
    assert np.isnan(table["gas_level"].iloc[2])  # no rated value
    assert table["importance_agreement"].tolist() == [1.0, 0.5, 0.75]
    assert table["set_by[joint]"].tolist() == [1.0, 0.0, 0.0]
    assert table["set_by[therapist]"].tolist() == [0.0, 0.0, 1.0]
    assert table["achieved"].tolist()[:2] == [1.0, 0.0] and np.isnan(table["achieved"].iloc[2])
    assert table["therapist_id"].tolist() == ["T1", "T1", "T2"]


def test_declared_model_fits_a_simulated_study():
    from accord.simulate import simulate_study

    study = simulate_study(n_clients=400, seed=5)
    for outcome in ("gas_level", "achieved"):
        spec = ModelSpec(
            id=f"goals_{outcome}", kind="goal_attainment", outcome=outcome, exposure=""
        )
        start = time.perf_counter()
        result = fit_goal_attainment_spec(
            None, study.clients, spec, ModelContext(), goals=study.goals, measures=study.measures
        )
        assert time.perf_counter() - start < 15
        assert result.diagnostics["n_therapists"] > 1 and result.diagnostics["converged"]
        assert "set_by[joint]" in set(result.coefficients["term"])
    with pytest.raises(ConfigError, match="gas_level or achieved"):
        fit_goal_attainment_spec(
            None,
            study.clients,
            ModelSpec(id="g", kind="goal_attainment", outcome="phq9", exposure=""),
            ModelContext(),
            goals=study.goals,
        )


@pytest.mark.slow
def test_confidence_intervals_of_achieved_cover_planted_values_in_95_percent():
    hits = []
    for seed in range(200):
        table = simulated_goals(300, 1000 + seed, outcome="achieved")
        rows = fit_goal_attainment(table, outcome="achieved").coefficients.set_index("term")
        hits += [rows.loc[k, "ci_low"] < v < rows.loc[k, "ci_high"] for k, v in PLANTED.items()]
    assert 0.92 <= np.mean(hits) <= 0.98


def test_gas_level_model_equals_statsmodels_mixedlm_with_nested_intercepts():
    from statsmodels.regression.mixed_linear_model import MixedLM

    table = simulated_goals(150, 12, outcome="gas_level")
    result = fit_goal_attainment(table, outcome="gas_level")
    safe = table.rename(columns={n: f"x{i}" for i, n in enumerate(PREDICTORS)})
    reference = MixedLM.from_formula(
        "gas_level ~ " + " + ".join(f"x{i}" for i in range(len(PREDICTORS))),
        data=safe,
        groups="therapist_id",
        re_formula="1",
        vc_formula={"client": "0 + C(client_id)"},
    ).fit(reml=True)
    got = result.coefficients.set_index("term")["estimate"].to_numpy()
    np.testing.assert_allclose(got, reference.fe_params.to_numpy(), rtol=1e-4, atol=1e-5)
    variances = result.diagnostics["random_effects"]
    assert variances["client"] == pytest.approx(float(reference.vcomp[0]), rel=1e-3)
    assert variances["residual"] == pytest.approx(float(reference.scale), rel=1e-4)
