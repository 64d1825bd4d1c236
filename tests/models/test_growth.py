"""Growth model: parameter recovery on simulated data, convergence reporting, tidy output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import accord.models.growth as growth_module
from accord.core.errors import AccordError, ConfigError
from accord.models import COEFFICIENT_COLUMNS, ModelResult, fit_growth, write_model_result
from accord.models.engine.lmm import ModelStructureError
from accord.models.growth import _standardized_effect
from accord.models.spec import model_specs
from accord.models.tidy import coefficient_frame, round_significant

TRUE_INTERACTION = -0.3  # PHQ-9 points per unit of time per unit of joint_goal_share


def simulate(
    *,
    n_clients: int = 240,
    n_therapists: int = 16,
    max_session: int = 10,
    min_last_session: int = 3,
    interaction: float = TRUE_INTERACTION,
    time_coding: str = "linear",
    intercept_sd: float = 3.5,
    slope_sd: float = 0.25,
    correlation: float = -0.4,
    therapist_sd: float = 1.0,
    seed: int = 11,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Session panel and client measures from the growth model with known parameters.

    y = 16 + 0.5 x - 0.4 t + interaction t x + v_therapist + u0 + u1 t + e, e ~ N(0, 2^2);
    clients leave after min_last_session..max_session sessions (unbalanced panels).
    """
    rng = np.random.default_rng(seed)
    therapist = rng.integers(0, n_therapists, n_clients)
    x = rng.uniform(0, 1, n_clients)
    z = rng.normal(size=(n_clients, 2))
    u0 = intercept_sd * z[:, 0]
    u1 = slope_sd * (correlation * z[:, 0] + math.sqrt(1 - correlation**2) * z[:, 1])
    v = rng.normal(0, therapist_sd, n_therapists)
    last = rng.integers(min_last_session, max_session + 1, n_clients)
    client = np.repeat(np.arange(n_clients), last + 1)
    session = np.concatenate([np.arange(k + 1) for k in last])
    t = np.log1p(session) if time_coding == "log" else session.astype(float)
    y = (
        16
        + 0.5 * x[client]
        + (-0.4 + interaction * x[client] + u1[client]) * t
        + u0[client]
        + v[therapist[client]]
        + rng.normal(0, 2, len(client))
    )
    ids = np.array([f"C{i:04d}" for i in range(n_clients)])
    panel = pd.DataFrame(
        {
            "client_id": ids[client],
            "session_number": session,
            "therapist_id": np.array([f"T{j:02d}" for j in range(n_therapists)])[therapist[client]],
            "arm": np.where(x[client] > 0.5, "collaborative", "usual_care"),
            "phq9": y,
        }
    )
    measures = pd.DataFrame({"client_id": ids, "joint_goal_share": x})
    return panel, measures


@pytest.fixture(scope="module")
def recovered() -> tuple[ModelResult, pd.DataFrame]:
    panel, measures = simulate()
    return fit_growth(panel, measures, planned_sessions=12), panel


def row(result: ModelResult, term: str) -> pd.Series:
    table = result.coefficients.set_index("term")
    return table.loc[term]


def test_growth_recovers_the_time_by_exposure_interaction(recovered):
    result, panel = recovered
    term = row(result, "time:joint_goal_share")
    assert term["ci_low"] < TRUE_INTERACTION < term["ci_high"]
    assert term["estimate"] < 0 and term["ci_high"] < 0
    assert term["primary"]
    assert not result.coefficients.loc[result.coefficients["term"] != term.name, "primary"].any()
    assert list(result.coefficients.columns) == COEFFICIENT_COLUMNS
    assert result.coefficients["n_obs"].eq(len(panel)).all()
    assert result.coefficients["n_clients"].eq(240).all()
    assert result.coefficients["ratio"].isna().all()


def test_growth_reports_fit_and_random_effects(recovered):
    result, _ = recovered
    d = result.diagnostics
    assert d["converged"] is True
    assert d["method"] == "REML"
    assert d["optimizer"] == "accord-profiled-reml (L-BFGS-B)"
    assert d["engine"] == "profiled"
    assert d["n_therapists"] == 16
    assert d["boundary"] is False
    assert d["formula"] == "phq9 ~ time * joint_goal_share"
    re = d["random_effects"]
    assert set(re) == {
        "therapist_intercept",
        "client_intercept",
        "client_slope",
        "client_intercept_slope_covariance",
        "residual",
    }
    # Loose bounds around the truth (3.5^2, 0.25^2, -0.35, 2^2): right size and sign.
    assert 7 < re["client_intercept"] < 18
    assert 0.01 < re["client_slope"] < 0.2
    assert re["client_intercept_slope_covariance"] < 0
    assert 3 < re["residual"] < 5
    assert re["therapist_intercept"] > 0
    assert math.isfinite(d["log_likelihood"])


def test_feingold_d_by_hand():
    # Intake scores 10 and 14: SD = sqrt(8). b(time x exposure) = -0.25 with SE 0.1; a share
    # exposure (contrast 1 vs 0), T = 12 planned sessions:
    # d = -0.25 x 12 / sqrt(8) = -1.06066; CI (-3 -+ 1.959964 x 1.2) / sqrt(8).
    data = pd.DataFrame(
        {
            "client": ["a", "a", "b", "b"],
            "session": [0, 12, 0, 3],
            "time": [0.0, 12.0, 0.0, 3.0],
            "x": [0.2, 0.2, 0.9, 0.9],
            "y": [10.0, 4.0, 14.0, 9.0],
        }
    )
    fe = pd.Series({"Intercept": 14.0, "time": -0.4, "x": 1.5, "time:x": -0.25})
    cov = pd.DataFrame(np.diag([1.0, 0.01, 0.5, 0.01]), index=fe.index, columns=fe.index)
    d = _standardized_effect(data, fe, cov, "y", "x", "time:x", 12, "linear")
    assert d["contrast"] == "exposure 1 vs 0"
    assert d["estimate"] == pytest.approx(-3.0 / math.sqrt(8))
    assert d["ci_low"] == pytest.approx((-3.0 - 1.959964 * 1.2) / math.sqrt(8), rel=1e-6)
    # the main effect (baseline difference) is not part of d; T is the planned duration, not
    # the largest observed session (12 here, 3 for client b)
    assert d["difference"] == pytest.approx(-3.0)
    # log time: T enters as log(12 + 1); an exposure beyond [0, 1]: 1 SD of it over clients
    logged = _standardized_effect(data, fe, cov, "y", "x", "time:x", 12, "log")
    assert logged["estimate"] == pytest.approx(-0.25 * math.log(13) / math.sqrt(8))
    wide = data.assign(x=[2.0, 2.0, 6.0, 6.0])
    per_sd = _standardized_effect(wide, fe, cov, "y", "x", "time:x", 12, "linear")
    assert per_sd["contrast"] == "exposure 1 SD higher"
    assert per_sd["estimate"] == pytest.approx(-0.25 * math.sqrt(8) * 12 / math.sqrt(8))
    missing = _standardized_effect(data, fe, cov, "y", "x", "time:x", None, "linear")
    assert math.isnan(missing["estimate"]) and "planned_sessions" in missing["note"]


def test_feingold_d_of_a_fitted_model_uses_the_planned_duration(recovered):
    result, panel = recovered
    effect = result.diagnostics["extras"]["standardized_effect"]
    b_tx = row(result, "time:joint_goal_share")["estimate"]
    intake_sd = panel.loc[panel["session_number"] == 0, "phq9"].std()
    assert effect["planned_sessions"] == 12
    assert effect["estimate"] == pytest.approx(12 * b_tx / intake_sd)
    assert effect["ci_low"] < effect["estimate"] < effect["ci_high"]
    # the planted d: interaction x T over the population intake SD, sqrt(0.5^2 / 12 (the
    # exposure's uniform variance) + 3.5^2 + 1^2 + 2^2)
    planted = TRUE_INTERACTION * 12 / math.sqrt(0.25 / 12 + 3.5**2 + 1.0 + 4.0)
    assert effect["ci_low"] < planted < effect["ci_high"]


def test_planned_duration_comes_from_config():
    specs = {s.id: s for s in model_specs({"analysis": {"end_of_treatment": 16}})}
    assert specs["growth"].options["planned_sessions"] == 16
    specs = {s.id: s for s in model_specs({"analysis": {"planned_sessions": 20}})}
    assert specs["growth_gad7"].options["planned_sessions"] == 20
    assert model_specs({})[0].options["planned_sessions"] == 12


def test_the_centre_is_the_uncorrelated_point_of_the_fitted_model(recovered):
    result, _ = recovered
    d = result.diagnostics
    search = d["extras"]["centre_search"]
    assert search["converged"] and search["note"] is None
    assert search["refits"] == 1
    assert len(search["centres"]) == len(search["log_likelihoods"]) == 2
    assert search["centres"][0] == search["start"]
    assert search["centres"][-1] == d["extras"]["time_centre_for_client_effects"]
    assert d["log_likelihood"] == search["log_likelihoods"][-1] >= search["log_likelihoods"][0]
    re = d["random_effects"]
    centre = -re["client_intercept_slope_covariance"] / re["client_slope"]
    assert centre == pytest.approx(d["extras"]["time_centre_for_client_effects"], rel=1e-9)


@pytest.fixture(scope="module")
def both_engines() -> tuple[ModelResult, ModelResult]:
    panel, measures = simulate(n_clients=120, n_therapists=10, seed=21)
    return (
        fit_growth(panel, measures, engine="profiled"),
        fit_growth(panel, measures, engine="statsmodels"),
    )


def test_the_statsmodels_engine_with_its_centre_search_reaches_the_same_optimum(both_engines):
    """The two engines maximise the same REML log-likelihood; statsmodels stops within its
    tolerance of the optimum, so agreement is to about 1e-4, and the profiled fit's
    log-likelihood is at least as high. The fixed-effect SEs differ more: statsmodels takes
    them from the inverse Hessian of all parameters, the profiled engine from
    s^2 (X'V^-1X)^-1, as lme4 does."""
    profiled, statsmodels = both_engines
    assert statsmodels.diagnostics["engine"] == "statsmodels"
    assert statsmodels.diagnostics["optimizer"] == "statsmodels-mixedlm (lbfgs)"
    assert statsmodels.diagnostics["extras"]["centre_search"]["refits"] >= 1
    ours, theirs = (r.coefficients.set_index("term") for r in both_engines)
    np.testing.assert_allclose(ours["estimate"], theirs["estimate"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ours["std_error"], theirs["std_error"], rtol=2e-2)
    for name, value in statsmodels.diagnostics["random_effects"].items():
        assert profiled.diagnostics["random_effects"][name] == pytest.approx(value, rel=2e-2)
    llf = profiled.diagnostics["log_likelihood"]
    assert llf >= statsmodels.diagnostics["log_likelihood"] - 1e-6
    assert llf == pytest.approx(statsmodels.diagnostics["log_likelihood"], abs=1e-3)


def test_a_centre_search_that_runs_out_of_refits_is_reported_not_dropped(monkeypatch):
    panel, measures = simulate(correlation=-0.8, seed=13)
    monkeypatch.setattr(growth_module, "MAX_CENTRE_REFITS", 0)
    result = fit_growth(panel, measures, engine="statsmodels")
    d = result.diagnostics
    search = d["extras"]["centre_search"]
    assert search["refits"] == 0 and not search["converged"]
    assert d["converged"] is False
    assert not result.coefficients["converged"].any()
    assert any("did not converge in 0 refits" in w for w in d["warnings"])
    assert result.coefficients["estimate"].notna().all()
    assert math.isfinite(d["log_likelihood"])


def test_log_time_coding_recovers_an_interaction_on_log_sessions():
    panel, measures = simulate(time_coding="log", interaction=-1.2, slope_sd=0.6, seed=5)
    result = fit_growth(panel, measures, time_coding="log")
    term = row(result, "time:joint_goal_share")
    assert term["ci_low"] < -1.2 < term["ci_high"]
    # without a planned duration d is not computed, and a warning says why
    assert math.isnan(result.diagnostics["extras"]["standardized_effect"]["estimate"])
    assert any("Feingold" in w for w in result.diagnostics["warnings"])


def no_slope_variance(n_clients: int = 60, seed: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every client's scores lie around a line with the same slope (-0.4 - 0.3 x), and each
    client's noise is made orthogonal to (1, session), so per-client slopes are exactly the
    fixed slope: the REML estimate of the client slope variance is zero."""
    rng = np.random.default_rng(seed)
    frames = []
    x = rng.uniform(0, 1, n_clients)
    for i in range(n_clients):
        s = np.arange(int(rng.integers(4, 9)))
        design = np.column_stack([np.ones(len(s)), s])
        noise = rng.normal(0, 2, len(s))
        noise -= design @ np.linalg.lstsq(design, noise, rcond=None)[0]
        y = 15 + rng.normal(0, 3) + (-0.4 - 0.3 * x[i]) * s + noise
        frames.append(
            pd.DataFrame(
                {"client_id": f"C{i}", "session_number": s, "therapist_id": f"T{i % 6}", "phq9": y}
            )
        )
    measures = pd.DataFrame(
        {"client_id": [f"C{i}" for i in range(n_clients)], "joint_goal_share": x}
    )
    return pd.concat(frames, ignore_index=True), measures


def test_no_slope_variance_is_flagged_as_boundary_not_a_crash():
    panel, measures = no_slope_variance()
    result = fit_growth(panel, measures)
    d = result.diagnostics
    assert d["boundary"] is True
    assert "client_slope" in d["boundary_components"]
    assert isinstance(d["converged"], bool)
    assert all(isinstance(w, str) for w in d["warnings"])
    assert d["random_effects"]["client_slope"] < 1e-3
    assert any("boundary" in w for w in d["warnings"])
    term = row(result, "time:joint_goal_share")
    assert term["ci_low"] < -0.3 < term["ci_high"]


def test_too_few_therapists_gives_a_client_level_model_with_a_warning():
    panel, measures = simulate(n_clients=80, n_therapists=3, seed=8)
    result = fit_growth(panel, measures)
    d = result.diagnostics
    assert "therapist_intercept" not in d["random_effects"]
    assert any("therapist variance not estimated" in w for w in d["warnings"])
    assert d["n_therapists"] == 3


def test_text_exposure_is_coded_against_its_reference_level():
    panel, measures = simulate(n_clients=80, n_therapists=6, seed=4)
    result = fit_growth(
        panel, measures, exposure="arm", exposure_reference="usual_care", therapist_effect=False
    )
    assert result.diagnostics["extras"]["exposure_coding"] == "1 = collaborative, 0 = usual_care"
    assert "time:arm" in set(result.coefficients["term"])


def test_clients_missing_the_exposure_are_left_out_and_counted():
    panel, measures = simulate(n_clients=80, n_therapists=6, seed=4)
    measures.loc[:4, "joint_goal_share"] = np.nan
    # C0010 has no known therapist; C0011 changes therapist after session 1.
    panel.loc[panel["client_id"] == "C0010", "therapist_id"] = None
    switch = (panel["client_id"] == "C0011") & (panel["session_number"] >= 2)
    panel.loc[switch, "therapist_id"] = "T99"
    result = fit_growth(panel, measures, therapist_effect=False)
    d = result.diagnostics
    assert d["n_clients"] == 75
    assert d["n_obs"] == int((~panel["client_id"].isin(measures["client_id"][:5])).sum())
    assert d["extras"]["clients_excluded_missing_predictor"] == 5
    assert d["extras"]["clients_unknown_therapist"] == 1
    assert "5 client(s) left out for a missing exposure or covariate" in d["warnings"]
    assert any(w.startswith("1 client(s) saw more than one therapist") for w in d["warnings"])


def test_bad_model_requests_are_refused_clearly():
    panel, measures = simulate(n_clients=30, n_therapists=3)
    with pytest.raises(ConfigError, match="no column 'goal_consensus'"):
        fit_growth(panel, measures, exposure="goal_consensus")
    with pytest.raises(ConfigError, match="time_coding"):
        fit_growth(panel, measures, time_coding="quadratic")
    measures["joint_goal_share"] = 0.5
    with pytest.raises(AccordError, match="does not vary"):
        fit_growth(panel, measures)


def test_write_model_result_is_deterministic_with_sorted_json(tmp_path):
    coefficients = coefficient_frame(
        [
            {
                "model": "growth",
                "outcome": "phq9",
                "exposure": "joint_goal_share",
                "term": "time",
                "estimate": 1 / 3,
                "std_error": 0.1,
                "ci_low": math.nan,
                "ci_high": 2.0,
                "p_value": 1e-20,
                "n_obs": 10,
                "n_clients": 3,
                "converged": True,
                "primary": False,
            }
        ]
    )
    result = ModelResult(
        "growth",
        "phq9",
        "joint_goal_share",
        coefficients,
        {"zeta": 2 / 3, "alpha": [math.nan, np.float64(1.5)], "converged": np.bool_(True)},
    )
    csv1, json1 = tmp_path / "a" / "c.csv", tmp_path / "a" / "d.json"
    csv2, json2 = tmp_path / "b" / "c.csv", tmp_path / "b" / "d.json"
    write_model_result(result, csv1, json1)
    write_model_result(result, csv2, json2)
    assert csv1.read_bytes() == csv2.read_bytes()
    assert json1.read_bytes() == json2.read_bytes()
    lines = csv1.read_text().splitlines()
    assert lines[0] == ",".join(COEFFICIENT_COLUMNS)
    assert (
        lines[1]
        == "growth,phq9,joint_goal_share,time,0.3333333333,0.1,,2,1e-20,10,3,True,False,,,,,"
    )
    text = json1.read_text()
    assert text.index('"alpha"') < text.index('"converged"') < text.index('"zeta"')
    assert json.loads(text) == {"alpha": [None, 1.5], "converged": True, "zeta": 0.6666666667}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["c.csv", "d.json"]
    assert round_significant(123456.789012345) == 123456.789


def test_write_model_result_of_a_real_fit_round_trips(recovered, tmp_path):
    result, _ = recovered
    write_model_result(result, tmp_path / "c.csv", tmp_path / "d.json")
    back = pd.read_csv(tmp_path / "c.csv")
    assert back["term"].tolist() == result.coefficients["term"].tolist()
    assert np.allclose(back["estimate"], result.coefficients["estimate"], rtol=1e-9)
    diagnostics = json.loads((tmp_path / "d.json").read_text())
    assert diagnostics["random_effects"].keys() == result.diagnostics["random_effects"].keys()


def test_ml_fit_reports_lme4s_ml_log_likelihood():
    """`reml=False` fits by ML: the log-likelihood and estimates are lme4's ML fit (bobyqa
    run to rhoend 1e-10; tests/data/reference/lmm)."""
    reference = Path(__file__).resolve().parents[1] / "data" / "reference"
    panel = pd.read_csv(reference / "growth_negcorr.csv")
    measures = panel.groupby("client_id", as_index=False)["joint_goal_share"].first()
    result = fit_growth(panel, measures, reml=False)
    d = result.diagnostics
    assert d["method"] == "ML"
    assert d["optimizer"] == "accord-profiled-ml (L-BFGS-B)"
    fits = pd.read_csv(reference / "lmm" / "fits.csv", comment="#")
    r = fits[(fits["dataset"] == "growth_negcorr") & (fits["method"] == "ML")]
    r = r.set_index("quantity")["value"]
    assert d["log_likelihood"] == pytest.approx(r["log_likelihood"], abs=1e-6)
    estimate = row(result, "time:joint_goal_share")["estimate"]
    assert estimate == pytest.approx(r["estimate:session_number:joint_goal_share"], rel=1e-6)
    assert d["random_effects"]["residual"] == pytest.approx(r["residual"], rel=1e-6)


def test_data_the_profiled_engine_cannot_fit_go_to_statsmodels_with_a_warning(monkeypatch):
    def refuse(*args, **kwargs):
        raise ModelStructureError("a client is seen by more than one therapist")

    monkeypatch.setattr(growth_module, "fit_lmm", refuse)
    panel, measures = simulate(n_clients=40, n_therapists=3, seed=4)
    result = fit_growth(panel, measures, therapist_effect=False)
    d = result.diagnostics
    assert d["engine"] == "statsmodels"
    assert d["optimizer"] == "statsmodels-mixedlm (lbfgs)"
    assert any(w.startswith("the profiled engine could not fit the model") for w in d["warnings"])
    assert result.coefficients["estimate"].notna().all()


def test_replicate_15_of_the_coverage_study_reaches_the_optimum() -> None:
    # Replicate 15 of the coverage study, where a gradient method can stop on a stalled line
    # search far from the optimum (on some CPUs). Whatever path the optimizer takes, the
    # engine's optimum must be certified and at least as high as statsmodels' (an
    # independent optimizer) and a multi-start reference on the same criterion, and its
    # estimates equal statsmodels'.
    from test_coverage import simulate
    from test_lmm import multi_start_reference

    from accord.models.engine.lmm import ProfiledDeviance

    panel, client_measures = simulate(15)
    growth = growth_module.fit_growth_model(panel, client_measures)
    fit = growth.result
    certification = fit.diagnostics["extras"]["profiled_fit"]["certification"]
    assert fit.diagnostics["converged"] and certification["certified"]
    assert certification["gradient_norm"] <= 2e-3
    other = fit_growth(panel, client_measures, engine="statsmodels")
    assert other.diagnostics["converged"]
    llf = fit.diagnostics["log_likelihood"]
    assert llf >= other.diagnostics["log_likelihood"] - 1e-6
    data = growth.data
    model = ProfiledDeviance(
        data["phq9"].to_numpy(dtype=float),
        _design(growth),
        data["client"].to_numpy(dtype=object),
        time=data["time"].to_numpy(dtype=float),
        therapist=data["therapist"].to_numpy(dtype=object),
    )
    assert llf >= -0.5 * multi_start_reference(model, [model.start()]) - 1e-6
    mine, theirs = (f.coefficients.set_index("term")["estimate"] for f in (fit, other))
    assert np.allclose(mine, theirs.loc[mine.index], atol=1e-3)


def _design(fit) -> np.ndarray:
    import patsy

    return np.asarray(patsy.build_design_matrices([fit.model_spec], fit.data)[0], dtype=float)


def test_a_covariate_with_its_own_time_slope() -> None:
    # Clients of the second half of therapists improve 0.3 points per session faster (a
    # "site" with its own course); time x exposure stays TRUE_INTERACTION.
    panel, measures = simulate(n_clients=300, seed=5)
    group = np.where(panel["therapist_id"] >= "T08", "b", "a")
    panel["phq9"] = panel["phq9"] - 0.3 * panel["session_number"] * (group == "b")
    panel["group"] = group
    result = fit_growth(panel, measures, covariates=["group"], time_interactions=["group"])
    slope = row(result, "time:group[T.b]")
    assert slope["ci_low"] <= -0.3 <= slope["ci_high"]
    interaction = row(result, "time:joint_goal_share")
    assert interaction["ci_low"] <= TRUE_INTERACTION <= interaction["ci_high"]
    with pytest.raises(ConfigError, match="time interaction 'arm' is not one of the covariates"):
        fit_growth(panel, measures, covariates=["group"], time_interactions=["arm"])


def test_an_uncertified_profiled_fit_falls_back_to_statsmodels(monkeypatch) -> None:
    # An engine fit that cannot be certified (here made so, 1 log-likelihood unit short) is
    # not reported: statsmodels' higher optimum is, and the warnings say so.
    import dataclasses

    real = growth_module.fit_lmm

    def uncertified(*args, **kwargs):
        fit = real(*args, **kwargs)
        return dataclasses.replace(fit, converged=False, log_likelihood=fit.log_likelihood - 1)

    panel, measures = simulate(n_clients=120, n_therapists=10, seed=21)
    certified = fit_growth(panel, measures)
    monkeypatch.setattr(growth_module, "fit_lmm", uncertified)
    result = fit_growth(panel, measures)
    assert result.diagnostics["engine"] == "statsmodels"
    assert result.diagnostics["converged"]
    assert any("could not certify" in w for w in result.diagnostics["warnings"])
    llf = result.diagnostics["log_likelihood"]
    assert llf == pytest.approx(certified.diagnostics["log_likelihood"], abs=1e-3)
