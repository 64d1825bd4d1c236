"""Therapist model: the closed-form REML against statsmodels, recovery of known variances,
the cluster bootstrap, and the therapist effects table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import simulated_measures

from accord.core.errors import AccordError, ConfigError
from accord.models.spec import ModelContext, ModelSpec
from accord.models.therapist import (
    ClientSums,
    bootstrap_interval,
    fit_therapist,
    fit_therapist_spec,
    fit_variance_components,
    therapist_icc_replicates,
)
from accord.models.tidy import COEFFICIENT_COLUMNS


def three_level(
    *,
    n_therapists: int = 60,
    clients_per_therapist: int = 15,
    sessions: int = 8,
    var_therapist: float = 1.0,
    var_client: float = 4.0,
    var_residual: float = 5.0,
    seed: int = 5,
) -> pd.DataFrame:
    """A balanced normal three-level panel with known variances (ICC_therapist =
    var_therapist / (var_therapist + var_client + var_residual))."""
    rng = np.random.default_rng(seed)
    n_clients = n_therapists * clients_per_therapist
    therapist = np.repeat(np.arange(n_therapists), clients_per_therapist)
    v = rng.normal(0, np.sqrt(var_therapist), n_therapists)
    u = rng.normal(0, np.sqrt(var_client), n_clients)
    client = np.repeat(np.arange(n_clients), sessions)
    y = 12 + v[therapist[client]] + u[client] + rng.normal(0, np.sqrt(var_residual), client.size)
    return pd.DataFrame(
        {
            "client_id": [f"C{i:04d}" for i in client],
            "session_number": np.tile(np.arange(sessions), n_clients),
            "therapist_id": [f"T{j:02d}" for j in therapist[client]],
            "phq9": y,
        }
    )


@pytest.fixture(scope="module")
def hand_built() -> pd.DataFrame:
    return three_level()


@pytest.fixture(scope="module")
def study() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return simulated_measures(n_clients=800, n_therapists=40, seed=11)


def test_recovers_known_variances(hand_built) -> None:
    result = fit_therapist(hand_built, n_boot=0)
    variances = result.diagnostics["random_effects"]
    # With 60 therapists the SE of the therapist variance is about 0.2; of the others < 0.25.
    assert variances["therapist_intercept"] == pytest.approx(1.0, abs=0.45)
    assert variances["client_intercept"] == pytest.approx(4.0, abs=0.6)
    assert variances["residual"] == pytest.approx(5.0, abs=0.3)
    table = result.coefficients.set_index("term")
    assert table.loc["icc_therapist", "estimate"] == pytest.approx(0.1, abs=0.04)
    assert table.loc["icc_client", "estimate"] == pytest.approx(0.4, abs=0.05)
    assert np.isnan(table.loc["icc_therapist", "ci_low"])  # no bootstrap asked for
    assert result.diagnostics["boundary"] is False


def unbalanced(panel: pd.DataFrame) -> pd.DataFrame:
    """`panel` with about a third of the assessments dropped at random (unequal counts)."""
    keep = np.random.default_rng(3).uniform(size=len(panel)) > 0.35
    return panel.loc[keep].reset_index(drop=True)


def test_profiled_engine_matches_statsmodels(hand_built) -> None:
    # The same REML model by both engines: variances, intercept and its SE, the REML
    # log-likelihood, and each therapist's BLUP with its conditional SE, on unbalanced data.
    panel = unbalanced(hand_built)
    profiled = fit_therapist(panel, n_boot=0)
    reference = fit_therapist(panel, n_boot=0, engine="statsmodels")
    assert profiled.diagnostics["optimizer"].startswith("accord-profiled-reml")
    assert reference.diagnostics["optimizer"] == "lbfgs"
    for name, value in reference.diagnostics["random_effects"].items():
        assert profiled.diagnostics["random_effects"][name] == pytest.approx(value, rel=1e-4)
    assert profiled.diagnostics["log_likelihood"] == pytest.approx(
        reference.diagnostics["log_likelihood"], abs=1e-6
    )
    mine = profiled.coefficients.set_index("term").loc["Intercept"]
    theirs = reference.coefficients.set_index("term").loc["Intercept"]
    assert mine["estimate"] == pytest.approx(theirs["estimate"], rel=1e-6)
    assert mine["std_error"] == pytest.approx(theirs["std_error"], rel=1e-4)
    effects = pd.DataFrame(profiled.diagnostics["extras"]["therapist_effects"])
    expected = pd.DataFrame(reference.diagnostics["extras"]["therapist_effects"])
    assert effects["n_clients"].tolist() == expected["n_clients"].tolist()
    for column in ("effect", "std_error", "ci_low", "ci_high"):
        np.testing.assert_allclose(effects[column], expected[column], rtol=1e-4, atol=1e-6)


def test_conditional_se_of_a_therapist_effect_by_hand() -> None:
    # Given the variances, v_j | y has precision 1/s2_t + sum_i 1/(s2_c + s2_e/n_i) over the
    # therapist's clients: here 6 clients of 8 assessments each for every therapist.
    from accord.models.therapist import _profiled_fit

    panel = three_level(n_therapists=12, clients_per_therapist=6, seed=2)
    data = panel.rename(columns={"client_id": "client", "therapist_id": "therapist"})
    fit = _profiled_fit(data, "phq9")
    v = fit["variances"]
    per_therapist = 6 / (v["client_intercept"] + v["residual"] / 8)
    expected = (1 / v["therapist_intercept"] + per_therapist) ** -0.5
    ses = {round(e["std_error"], 12) for e in fit["effects"]}
    assert ses == {round(expected, 12)}  # balanced: every therapist the same


def test_closed_form_reml_matches_statsmodels(hand_built) -> None:
    result = fit_therapist(hand_built.iloc[::2], n_boot=0, engine="statsmodels")
    statsmodels_fit = result.diagnostics["random_effects"]
    closed = result.diagnostics["extras"]["closed_form_fit"]
    for name in ("therapist_intercept", "client_intercept", "residual"):
        assert closed[name] == pytest.approx(statsmodels_fit[name], rel=2e-3)
    assert closed["log_likelihood"] == pytest.approx(result.diagnostics["log_likelihood"], abs=1e-3)


def test_zero_therapist_variance_is_flagged_on_the_boundary() -> None:
    panel = three_level(var_therapist=0.0, n_therapists=20, seed=8)
    result = fit_therapist(panel, n_boot=0)
    assert "therapist_intercept" in result.diagnostics["boundary_components"]
    sums = ClientSums.of(
        panel.rename(columns={"client_id": "client", "therapist_id": "therapist"}), "phq9"
    )
    assert fit_variance_components(sums)["icc_therapist"] < 0.01


def test_resample_draws_whole_therapists() -> None:
    # Therapist 0 has clients with n = 1, 2; therapist 1 has n = 3.
    sums = ClientSums(
        therapist=np.array([0, 1, 0]),
        n=np.array([1.0, 3.0, 2.0]),
        total=np.array([1.0, 9.0, 4.0]),
        squares=np.array([1.0, 27.0, 8.0]),
        n_therapists=2,
    )
    for seed in range(10):
        rep = sums.resample(np.random.default_rng(seed))
        assert rep.n_therapists == 2
        by_therapist = sorted(tuple(sorted(rep.n[rep.therapist == j].tolist())) for j in range(2))
        assert all(group in ((1.0, 2.0), (3.0,)) for group in by_therapist)


def test_replicates_are_reproducible_and_can_be_split_over_jobs(hand_built) -> None:
    panel = hand_built.iloc[::4]
    a = therapist_icc_replicates(panel, "phq9", 3, 5)
    pd.testing.assert_frame_equal(a, therapist_icc_replicates(panel, "phq9", 3, range(5)))
    # Replicate r depends on (seed, model id, r) only: two jobs' halves pool to the same table.
    job0 = therapist_icc_replicates(panel, "phq9", 3, range(0, 2))
    job1 = therapist_icc_replicates(panel, "phq9", 3, [2, 3, 4])
    pd.testing.assert_frame_equal(pd.concat([job0, job1], ignore_index=True), a)
    other_model = therapist_icc_replicates(panel, "phq9", 3, 5, model_id="therapist_gad7")
    other_seed = therapist_icc_replicates(panel, "phq9", 4, 5)
    assert not np.allclose(a["icc_therapist"], other_model["icc_therapist"])
    assert not np.allclose(a["icc_therapist"], other_seed["icc_therapist"])
    pooled = bootstrap_interval(a)
    assert pooled["icc_therapist"]["ci_low"] <= pooled["icc_therapist"]["ci_high"]
    assert list(a.columns) == [
        "replicate",
        "var_therapist",
        "var_client",
        "var_residual",
        "icc_therapist",
        "icc_client",
        "converged",
    ]
    assert a["replicate"].tolist() == [0, 1, 2, 3, 4]
    assert a["converged"].all()


def test_recovers_the_simulated_therapist_share(study) -> None:
    panel, client_measures, truth = study
    spec = ModelSpec(
        id="therapist",
        kind="therapist",
        outcome="phq9",
        exposure="joint_goal_share",
        primary=True,
        options={"n_boot": 50, "design": "null"},
    )
    result = fit_therapist_spec(panel, client_measures, spec, ModelContext(seed=4))
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS
    table = result.coefficients.set_index("term")
    icc = table.loc["icc_therapist"]
    t = truth["therapist"]
    realised = t["intercept_variance_realised"] * t["variance_share"] / t["intercept_variance"]
    assert icc["ci_low"] <= realised <= icc["ci_high"]
    assert icc["ci_low"] <= icc["estimate"] <= icc["ci_high"]
    assert icc["std_error"] > 0
    assert bool(icc["primary"]) and table["primary"].sum() == 1
    assert set(table.index) == {"Intercept", "icc_therapist", "icc_client"}

    diag = result.diagnostics
    assert diag["converged"] is True
    assert diag["n_therapists"] == 40
    assert diag["extras"]["bootstrap"]["replicates_converged"] == 50
    effects = pd.DataFrame(diag["extras"]["therapist_effects"])
    assert list(effects.columns) == [
        "rank",
        "effect",
        "std_error",
        "ci_low",
        "ci_high",
        "n_clients",
    ]
    assert effects["rank"].tolist() == list(range(1, 41))
    assert effects["effect"].is_monotonic_increasing
    assert (effects["ci_low"] < effects["effect"]).all()
    # BLUPs shrink toward 0: their mean is 0 and their spread below the therapist SD.
    assert abs(effects["effect"].mean()) < 0.05
    assert effects["effect"].std() < np.sqrt(diag["random_effects"]["therapist_intercept"])


def test_same_seed_same_interval(hand_built) -> None:
    panel = hand_built.iloc[::4]
    a = fit_therapist(panel, n_boot=8, seed=1).coefficients
    b = fit_therapist(panel, n_boot=8, seed=1).coefficients
    pd.testing.assert_frame_equal(a, b)


def test_errors(hand_built) -> None:
    with pytest.raises(ConfigError, match="no column 'gad7'"):
        fit_therapist(hand_built, outcome="gad7", n_boot=0)
    few = hand_built.loc[hand_built["therapist_id"].isin(["T00", "T01", "T02"])]
    with pytest.raises(AccordError, match="at least 5"):
        fit_therapist(few, n_boot=0)


def test_an_uncertified_profiled_fit_falls_back_to_statsmodels(hand_built, monkeypatch) -> None:
    # An engine fit that cannot be certified (made so here) is replaced by statsmodels' fit
    # where that converged at least as high, and the warnings say so.
    import dataclasses

    import accord.models.therapist as therapist_module

    real = therapist_module.fit_lmm

    def uncertified(*args, **kwargs):
        fit = real(*args, **kwargs)
        return dataclasses.replace(fit, converged=False, log_likelihood=fit.log_likelihood - 1)

    panel = unbalanced(hand_built)
    certified = fit_therapist(panel, n_boot=0)
    monkeypatch.setattr(therapist_module, "fit_lmm", uncertified)
    result = fit_therapist(panel, n_boot=0)
    assert result.diagnostics["optimizer"] == "lbfgs"
    assert result.diagnostics["converged"]
    assert any("could not certify" in w for w in result.diagnostics["warnings"])
    assert result.diagnostics["log_likelihood"] == pytest.approx(
        certified.diagnostics["log_likelihood"], abs=1e-6
    )


def test_the_closed_form_reaches_a_therapist_variance_of_zero() -> None:
    # No therapist variance in the data: in log variances the criterion is flat next to zero,
    # where L-BFGS-B stopped a few 1e-6 log-likelihood units short; the closed form must reach
    # the profiled engine's optimum (the boundary) and certify it.
    panel = unbalanced(three_level(n_therapists=12, clients_per_therapist=8, var_therapist=0.0))
    profiled = fit_therapist(panel, n_boot=0)
    closed = profiled.diagnostics["extras"]["closed_form_fit"]
    assert profiled.diagnostics["random_effects"]["therapist_intercept"] == 0.0
    assert closed["converged"]
    assert closed["log_likelihood"] >= profiled.diagnostics["log_likelihood"] - 1e-6


def test_pooled_cells_hold_the_clients_of_a_therapist_with_the_same_count() -> None:
    # Therapist 0: clients with n = 2 (sums 4, 6) and n = 1 (sum 3); therapist 1: n = 2 (sum 5).
    sums = ClientSums(
        therapist=np.array([0, 1, 0, 0]),
        n=np.array([2.0, 2.0, 1.0, 2.0]),
        total=np.array([4.0, 5.0, 3.0, 6.0]),
        squares=np.array([10.0, 13.0, 9.0, 20.0]),
        n_therapists=2,
    )
    cells = sums.pooled()
    # Cells sorted by (therapist, n): (0, 1), (0, 2), (1, 2).
    assert cells.therapist.tolist() == [0, 0, 1]
    assert cells.n.tolist() == [1.0, 2.0, 2.0]
    assert cells.clients.tolist() == [1.0, 2.0, 1.0]
    assert cells.total.tolist() == [3.0, 10.0, 5.0]
    assert cells.squares.tolist() == [9.0, 30.0, 13.0]
    assert cells.total_squares.tolist() == [9.0, 16.0 + 36.0, 25.0]


def test_pooled_cells_give_the_fit_of_the_clients() -> None:
    panel = three_level(var_therapist=0.1, n_therapists=30, seed=11)
    data = panel.rename(columns={"client_id": "client", "therapist_id": "therapist"})
    sums = ClientSums.of(data.dropna(subset=["phq9"]), "phq9")
    by_client, by_cell = fit_variance_components(sums), fit_variance_components(sums.pooled())
    assert len(sums.pooled().n) < len(sums.n)
    for name in ("therapist_intercept", "client_intercept", "residual", "log_likelihood"):
        assert by_cell[name] == pytest.approx(by_client[name], rel=1e-7)


def test_closed_form_gradient_equals_central_differences(monkeypatch) -> None:
    import accord.models.therapist as therapist

    captured = {}
    real = therapist._certified_minimum

    def spy(objective, start, gradient=None):
        captured.update(objective=objective, gradient=gradient)
        return real(objective, start, gradient)

    monkeypatch.setattr(therapist, "_certified_minimum", spy)
    panel = three_level(var_therapist=0.1, n_therapists=12, seed=3)
    data = panel.rename(columns={"client_id": "client", "therapist_id": "therapist"})
    fit_variance_components(ClientSums.of(data.dropna(subset=["phq9"]), "phq9").pooled())
    objective, gradient = captured["objective"], captured["gradient"]
    step = 1e-5
    for theta in ([-0.5, -1.0, -2.0], [0.0, 0.3, -4.0], [-1.2, -0.2, 0.5]):
        theta = np.array(theta)
        central = [
            (objective(theta + step * e) - objective(theta - step * e)) / (2 * step)
            for e in np.eye(3)
        ]
        np.testing.assert_allclose(gradient(theta), central, rtol=1e-5, atol=1e-6)
