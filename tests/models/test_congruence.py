"""Client-therapist congruence by response surface analysis: a1..a4 and their SEs against a
hand-built regression and R's lm, recovery of a planted surface, agreement shares and early
ratings worked by hand."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pytest
from conftest import simulated_measures

from accord.core.errors import AccordError
from accord.models.congruence import (
    agreement_shares,
    congruence_reading,
    early_rater_ratings,
    fit_congruence,
    scores_from_panel,
)
from accord.models.spec import KINDS, ModelContext, ModelSpec, fit_function
from accord.models.tidy import COEFFICIENT_COLUMNS

TINY = pd.DataFrame(
    {
        "client": [1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 2.25, 3.75, 4.25, 1.75],
        "therapist": [2.0, 1.5, 3.0, 3.5, 2.5, 4.5, 4.0, 4.75, 3.25, 3.0, 5.0, 2.5],
        "y": [14, 15, 11, 9, 12, 6, 8, 4, 10, 10, 5, 13],
    }
)
L = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, -1, 0, 0, 0], [0, 0, 1, -1, 1]], float)


def estimates(result) -> pd.Series:
    return result.coefficients.set_index("term")["estimate"]


def errors(result) -> pd.Series:
    return result.coefficients.set_index("term")["std_error"]


def test_surface_parameters_equal_a_hand_built_regression_and_r_lm():
    c, t = TINY["client"].to_numpy() - 3, TINY["therapist"].to_numpy() - 3
    x = np.column_stack([np.ones(12), c, t, c * c, c * t, t * t])
    y = TINY["y"].to_numpy(float)
    b, *_ = np.linalg.lstsq(x, y, rcond=None)
    residual = y - x @ b
    cov = residual @ residual / (12 - 6) * np.linalg.inv(x.T @ x)
    a = L @ b[1:]
    se = np.sqrt(np.diag(L @ cov[1:, 1:] @ L.T))

    result = fit_congruence(TINY, outcome="y", midpoint=3.0)
    names = ["a1", "a2", "a3", "a4"]
    np.testing.assert_allclose(estimates(result)[names], a, rtol=1e-9)
    np.testing.assert_allclose(errors(result)[names], se, rtol=1e-9)
    # R 4: lm(y ~ c + t + I(c^2) + I(c*t) + I(t^2)); L %*% coef, sqrt(diag(L %*% vcov %*% t(L)))
    r_a = [-3.1838312013, -0.0549021830, 2.2266309901, 0.8109147644]
    r_se = [0.1977283901, 0.2122094981, 0.5311229637, 2.7668141498]
    np.testing.assert_allclose(estimates(result)[names], r_a, rtol=1e-8)
    np.testing.assert_allclose(errors(result)[names], r_se, rtol=1e-8)
    r_b = [10.5934555312, -0.4786001056, -2.7052310957, 0.1671705901, -0.4329084737]
    terms = ["Intercept", "C", "T", "C^2", "C*T"]
    np.testing.assert_allclose(estimates(result)[terms], r_b, rtol=1e-8)
    a1 = result.coefficients.set_index("term").loc["a1"]
    assert a1["ci_low"] == pytest.approx(a1["estimate"] - 1.959963985 * a1["std_error"])
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS


def test_an_exact_surface_gives_its_a_values():
    # y = 1 + 2C + T + 0.5C^2 - CT + 0.25T^2 (centred on 3): a1 = 3, a2 = -0.25, a3 = 1, a4 = 1.75
    grid = np.array([[c, t] for c in (1, 2, 3, 4, 5) for t in (1, 2.5, 3, 5)], float)
    c, t = grid[:, 0] - 3, grid[:, 1] - 3
    y = 1 + 2 * c + t + 0.5 * c * c - c * t + 0.25 * t * t
    frame = pd.DataFrame({"client": grid[:, 0], "therapist": grid[:, 1], "y": y})
    result = fit_congruence(frame, outcome="y", midpoint=3.0)
    got = estimates(result)
    for name, value in {"a1": 3.0, "a2": -0.25, "a3": 1.0, "a4": 1.75}.items():
        assert got[name] == pytest.approx(value, abs=1e-9)


def planted(n: int, seed: int, *, logistic: bool = False) -> pd.DataFrame:
    """Ratings on a 1-5 scale around 3.4, outcome from b = (0.5, -0.3, 0.2, -0.4, 0.3):
    a1 = 0.2, a2 = 0.1, a3 = 0.8, a4 = 0.9."""
    r = np.random.default_rng(seed)
    level = r.normal(0.4, 0.6, n)
    c = np.clip(3 + level + r.normal(0, 0.45, n), 1, 5)
    t = np.clip(3 + level + r.normal(0, 0.45, n), 1, 5)
    cc, tt = c - 3, t - 3
    lp = 0.5 * cc - 0.3 * tt + 0.2 * cc * cc - 0.4 * cc * tt + 0.3 * tt * tt
    if logistic:
        y = (r.random(n) < 1 / (1 + np.exp(-(lp - 1.0)))).astype(float)
    else:
        y = 10 + lp + r.normal(0, 1.0, n)
    return pd.DataFrame({"client": c, "therapist": t, "y": y})


TRUTH = {"a1": 0.2, "a2": 0.1, "a3": 0.8, "a4": 0.9}


def test_a_planted_surface_is_recovered_within_its_confidence_intervals():
    result = fit_congruence(planted(3000, 1), outcome="y", midpoint=3.0)
    rows = result.coefficients.set_index("term")
    for name, value in TRUTH.items():
        assert rows.loc[name, "ci_low"] < value < rows.loc[name, "ci_high"], name
    assert rows.loc["a4", "ci_low"] > 0  # a clear divergence curvature at this size


def test_a_planted_logistic_surface_is_recovered_with_odds_ratios_for_first_order_terms():
    result = fit_congruence(planted(6000, 2, logistic=True), outcome="y", logistic=True)
    rows = result.coefficients.set_index("term")
    for name, value in TRUTH.items():
        assert rows.loc[name, "ci_low"] < value < rows.loc[name, "ci_high"], name
    assert rows.loc["C", "ratio"] == pytest.approx(math.exp(rows.loc["C", "estimate"]))
    assert math.isnan(rows.loc["C*T", "ratio"]) and math.isnan(rows.loc["a4", "ratio"])
    assert result.diagnostics["extras"]["link"] == "logit"


@pytest.mark.slow
def test_confidence_intervals_of_a_planted_surface_cover_95_percent():
    hits = []
    for seed in range(200):
        rows = fit_congruence(planted(300, 100 + seed), outcome="y").coefficients
        rows = rows.set_index("term")
        hits += [rows.loc[k, "ci_low"] < v < rows.loc[k, "ci_high"] for k, v in TRUTH.items()]
    assert 0.92 <= np.mean(hits) <= 0.98


def test_agreement_shares_by_hand():
    # Pooled ratings 2,3,4,3,3,3 | 2,3,4,4,2,5: mean 38/12, sum of squared deviations
    # 3 x (7/6)^2 + 5 x (1/6)^2 + 3 x (5/6)^2 + (11/6)^2 = 9.6667, SD = sqrt(9.6667 / 11).
    client = np.array([2, 3, 4, 3, 3, 3], float)
    therapist = np.array([2, 3, 4, 4, 2, 5], float)
    sd = float(np.std(np.concatenate([client, therapist]), ddof=1))
    assert sd == pytest.approx(0.937437, abs=1e-6)
    # (T - C) / sd = 0, 0, 0, 1.067, -1.067, 2.133: three agree, one client higher, two therapist.
    rows = agreement_shares(client, therapist, min_cell=1)
    by_group = {r["group"]: (r["n"], r["share"]) for r in rows}
    assert by_group == {
        "client_higher": (1, 1 / 6),
        "agreement": (3, 3 / 6),
        "therapist_higher": (2, 2 / 6),
    }
    withheld = agreement_shares(client, therapist, min_cell=2)
    assert all(r["withheld"] and r["n"] is None and r["share"] is None for r in withheld)


def test_early_ratings_average_each_raters_first_three_rated_sessions():
    scores = pd.DataFrame(
        {
            "client_id": ["A"] * 7 + ["B"] * 2,
            "session_number": [0, 1, 2, 5, 0, 3, 6, 1, 2],
            "instrument": "wai_sr",
            "rater": ["client"] * 4 + ["therapist"] * 3 + ["client"] * 2,
            "scale": "goal",
            "score": [2.0, 3.0, 4.0, 5.0, 4.0, 4.5, 1.0, 3.5, np.nan],
        }
    )
    other = scores.assign(scale="bond", score=1.0)
    ratings = early_rater_ratings(pd.concat([scores, other]))
    assert ratings.loc["A", "client"] == pytest.approx(3.0)  # sessions 0-2, not 5
    assert ratings.loc["A", "therapist"] == pytest.approx(9.5 / 3)
    assert ratings.loc["B", "client"] == pytest.approx(3.5)
    assert math.isnan(ratings.loc["B", "therapist"])


def test_reading_is_observational_and_says_when_the_data_cannot_tell():
    def surface(**signs):
        return {
            k: {"ci_low": 0.1 * s - 0.05 if s else -1, "ci_high": 0.1 * s + 0.05 if s else 1}
            for k, s in {"a1": 0, "a2": 0, "a3": 0, "a4": 0, **signs}.items()
        }

    text = congruence_reading(surface(a1=1), outcome="early_alliance", higher_is="better")
    assert "agreed" in text and "higher (better)" in text and "not effects" in text
    text = congruence_reading(surface(a4=-1), outcome="phq9_change", higher_is="worse")
    assert "lower (better) the further the two ratings were apart" in text
    assert "cannot tell" in congruence_reading(surface(), outcome="dropout")
    for word in ("reduce", "effect of", "causes"):
        assert word not in congruence_reading(surface(a1=1, a3=-1), outcome="y")


def test_too_few_clients_is_an_error():
    with pytest.raises(AccordError, match="only 5 client"):
        fit_congruence(TINY.head(5), outcome="y")


def test_declared_models_fit_a_simulated_study_quickly():
    assert KINDS["congruence"] == "accord.models.congruence:fit_congruence_spec"
    panel, clients, _ = simulated_measures(n_clients=400, seed=5)
    fit = fit_function("congruence")
    for outcome, column, link in (
        ("phq9", "phq9_post", "identity"),
        ("early_alliance", "early_alliance", "identity"),
        ("dropout", "dropout", "logit"),
    ):
        spec = ModelSpec(
            id=f"congruence_{outcome}", kind="congruence", outcome=outcome, exposure="-"
        )
        start = time.perf_counter()
        result = fit(panel, clients, spec, ModelContext())
        assert time.perf_counter() - start < 15
        diagnostics = result.diagnostics
        assert diagnostics["outcome"] == column and diagnostics["extras"]["link"] == link
        assert diagnostics["exposure"] == "wai_sr_goal" and diagnostics["converged"]
        assert {"a1", "a2", "a3", "a4"} <= set(result.coefficients["term"])
        assert diagnostics["n_therapists"] > 1
        shared = any("shared items" in w for w in diagnostics["warnings"])
        assert shared == (outcome == "early_alliance")
    # Intake-adjusted for an instrument outcome; the shares count the clients in the model.
    assert "phq9_first" in set(result.coefficients["term"]) or outcome == "dropout"
    shares = diagnostics["extras"]["agreement"]
    assert sum(r["n"] for r in shares) == diagnostics["n_clients"]
    # The same ratings come from the scores table rows as from the panel's columns.
    scores = scores_from_panel(panel, "wai_sr", "goal")
    again = fit(panel, clients, spec, ModelContext(), scores=scores)
    pd.testing.assert_frame_equal(again.coefficients, result.coefficients)


def test_surface_figure_draws_the_fitted_surface_with_both_lines():
    from accord.report.surface import congruence_surface_figure, surface_height

    b = {"C": 2.0, "T": 1.0, "C^2": 0.5, "C*T": -1.0, "T^2": 0.25}
    # At C = 4, T = 2 (centred 1, -1): 2 - 1 + 0.5 + 1 + 0.25 = 2.75.
    assert surface_height(b, np.array([4.0]), np.array([2.0]), 3.0)[0] == pytest.approx(2.75)
    fig = congruence_surface_figure(b, midpoint=3.0, limits=(2, 4.5), outcome_label="y")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[:2] == ["congruence (C = T)", "incongruence (C + T constant)"]
    assert ax.get_xlim() == (2.0, 4.5) and ax.get_ylim() == (2.0, 4.5)


def test_goal_level_surface_with_client_clustered_errors_recovers_a_planted_surface():
    r = np.random.default_rng(8)
    client = np.repeat(np.arange(700), 3)
    frame = planted(client.size, 9)
    frame["y"] += r.normal(0, 0.8, 700)[client]  # goals of a client share a client effect
    frame["client_id"] = client.astype(str)
    result = fit_congruence(frame, outcome="y", cluster="client_id")
    rows = result.coefficients.set_index("term")
    for name, value in TRUTH.items():
        assert rows.loc[name, "ci_low"] < value < rows.loc[name, "ci_high"], name
    assert set(rows["n_clients"]) == {700} and set(rows["n_obs"]) == {2100}
    assert result.diagnostics["extras"]["cov_type"] == "cluster"


def test_goal_importance_congruence_fits_a_simulated_study():
    from accord.simulate import simulate_study

    study = simulate_study(n_clients=400, seed=5)
    fit = fit_function("goal_congruence")
    for outcome, link in (("gas_level", "identity"), ("achieved", "logit")):
        spec = ModelSpec(
            id=f"importance_{outcome}", kind="goal_congruence", outcome=outcome, exposure=""
        )
        result = fit(
            None, study.clients, spec, ModelContext(), goals=study.goals, measures=study.measures
        )
        diagnostics = result.diagnostics
        assert diagnostics["extras"]["link"] == link and diagnostics["extras"]["unit"] == "goal"
        assert diagnostics["n_obs"] > diagnostics["n_clients"] > 300
        assert {"a1", "a2", "a3", "a4"} <= set(result.coefficients["term"])


def test_applicability_needs_both_raters():
    from accord.models.congruence import congruence_not_applicable

    panel = pd.DataFrame(
        {
            "client_id": ["A", "A", "B"],
            "session_number": [1, 2, 1],
            "wai_sr_goal": [3.0, 4.0, 2.0],
            "wai_sr_goal_therapist": [np.nan, 3.5, np.nan],
        }
    )
    assert congruence_not_applicable(panel, min_clients=1) is None
    assert "fewer than 2 clients" in congruence_not_applicable(panel, min_clients=2)
    no_therapist = panel.drop(columns="wai_sr_goal_therapist")
    assert (
        congruence_not_applicable(no_therapist) == "no wai_sr_goal_therapist ratings in the study"
    )


def test_growth_slopes_by_hand():
    from accord.models.congruence import client_slopes

    panel = pd.DataFrame(
        {
            "client_id": ["A"] * 3 + ["B"] * 3 + ["C"] * 2 + ["D"] * 3,
            "session_number": [0, 1, 2, 0, 2, 4, 0, 3, 0, 1, 2],
            "phq9": [20, 17, 14, 10, 9, 5, 12, 6, 8, np.nan, 7],
        }
    )
    slopes = client_slopes(panel, "phq9")
    # A: exactly -3 per session. B: x mean 2, y mean 8, sxy = (-2)(2) + 0 + (2)(-3) = -10,
    # sxx = 8, slope -1.25. C and D: fewer than 3 assessments.
    assert slopes["A"] == pytest.approx(-3.0)
    assert slopes["B"] == pytest.approx(-1.25)
    assert np.isnan(slopes["C"]) and np.isnan(slopes["D"])
    assert slopes.name == "phq9_slope"


def test_congruence_on_the_growth_slope():
    from accord.models.congruence import client_slopes

    panel, clients, _ = simulated_measures(n_clients=400, seed=5)
    spec = ModelSpec(
        id="congruence_slope",
        kind="congruence",
        outcome="phq9",
        exposure="-",
        options={"outcome_form": "slope"},
    )
    result = fit_function("congruence")(panel, clients, spec, ModelContext())
    assert result.diagnostics["outcome"] == "phq9_slope"
    assert {"a1", "a4", "phq9_first"} <= set(result.coefficients["term"])
    # The same fit by hand: the slopes joined to the client measures, then fit_congruence.
    ratings = early_rater_ratings(scores_from_panel(panel, "wai_sr", "goal"))
    data = clients.set_index(clients["client_id"].astype(str)).join(ratings)
    data["phq9_slope"] = client_slopes(panel, "phq9").reindex(data.index)
    direct = fit_congruence(data, outcome="phq9_slope", covariates=["phq9_first"], midpoint=3.0)
    np.testing.assert_allclose(
        estimates(result)[["a1", "a2", "a3", "a4"]], estimates(direct)[["a1", "a2", "a3", "a4"]]
    )
    with pytest.raises(AccordError, match="outcome_form"):
        bad = ModelSpec(
            id="c", kind="congruence", outcome="phq9", exposure="-", options={"outcome_form": "x"}
        )
        fit_function("congruence")(panel, clients, bad, ModelContext())
