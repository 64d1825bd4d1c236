"""Missing outcome data by session, and its relation to the exposure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accord.models.missingness import (
    attrition_by_last_session,
    attrition_vs_exposure,
    missing_by_session,
    missingness_vs_exposure,
)


def test_missing_by_session_counts_expected_and_scored() -> None:
    panel = pd.DataFrame(
        {
            "client_id": ["A", "A", "A", "B", "B", "B"],
            "session_number": [0, 1, 2, 0, 1, 2],
            "attended": [False, True, True, False, True, False],
            "phq9": [12.0, np.nan, 8.0, 15.0, 14.0, np.nan],
        }
    )
    out = missing_by_session(panel, ["phq9", "absent"])
    # Session 0: both intakes expected and scored. Session 1: both attended, A missing -> 1/2.
    # Session 2: only A attended (B's missing score is not expected), A scored -> 0.
    assert out[["session_number", "expected", "scored"]].values.tolist() == [
        [0, 2, 2],
        [1, 2, 1],
        [2, 1, 1],
    ]
    assert out["missing_share"].tolist() == [0.0, 0.5, 0.0]


def test_missingness_rising_with_exposure_has_odds_ratio_above_one() -> None:
    rng = np.random.default_rng(4)
    n, k = 400, 6
    exposure = rng.uniform(0, 1, n)
    # log-odds of a missing score = -2 + 2 x exposure; the true odds ratio is e^2 = 7.39.
    p_missing = 1 / (1 + np.exp(-(-2 + 2 * exposure)))
    missing = rng.uniform(size=(n, k)) < p_missing[:, None]
    panel = pd.DataFrame(
        {
            "client_id": np.repeat([f"C{i}" for i in range(n)], k),
            "session_number": np.tile(np.arange(1, k + 1), n),
            "attended": True,
            "phq9": np.where(missing.ravel(), np.nan, 10.0),
        }
    )
    clients = pd.DataFrame({"client_id": [f"C{i}" for i in range(n)], "x": exposure})
    out = missingness_vs_exposure(panel, clients, ["phq9"], "x").iloc[0]
    assert out["n_clients"] == n and out["n_sessions"] == n * k
    assert out["ci_low"] < np.exp(2) < out["ci_high"]
    assert out["odds_ratio"] > 1
    assert out["log_odds"] == pytest.approx(2, abs=0.6)


def test_missingness_se_is_the_cluster_robust_sandwich() -> None:
    # Clients with a shared propensity to skip questionnaires (clustered misses), and the
    # sandwich worked out directly: bread (X'WX)^-1, meat sum over clients of s_g s_g' with
    # s_g = X_g'(y_g - p_g), times G/(G-1) (N-1)/(N-K), as R's sandwich::vcovCL.
    rng = np.random.default_rng(9)
    n, k = 150, 5
    exposure = rng.uniform(0, 1, n)
    propensity = -1.5 + 1.0 * exposure + rng.normal(0, 1, n)
    missing = rng.uniform(size=(n, k)) < 1 / (1 + np.exp(-propensity[:, None]))
    ids = [f"C{i:03d}" for i in range(n)]
    panel = pd.DataFrame(
        {
            "client_id": np.repeat(ids, k),
            "session_number": np.tile(np.arange(1, k + 1), n),
            "attended": True,
            "phq9": np.where(missing.ravel(), np.nan, 10.0),
        }
    )
    clients = pd.DataFrame({"client_id": ids, "x": exposure})
    out = missingness_vs_exposure(panel, clients, ["phq9"], "x").iloc[0]

    X = np.column_stack([np.ones(n * k), np.repeat(exposure, k)])
    y = missing.ravel().astype(float)
    beta = np.zeros(2)
    for _ in range(50):  # Newton-Raphson for the logistic MLE
        p = 1 / (1 + np.exp(-X @ beta))
        beta = beta + np.linalg.solve(X.T @ (X * (p * (1 - p))[:, None]), X.T @ (y - p))
    p = 1 / (1 + np.exp(-X @ beta))
    bread = np.linalg.inv(X.T @ (X * (p * (1 - p))[:, None]))
    scores = (X * (y - p)[:, None]).reshape(n, k, 2).sum(axis=1)
    factor = n / (n - 1) * (n * k - 1) / (n * k - 2)
    cov = factor * bread @ (scores.T @ scores) @ bread
    assert out["log_odds"] == pytest.approx(beta[1], rel=1e-8)
    assert out["std_error"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-8)
    assert bool(out["converged"])


def _attrition_clients() -> pd.DataFrame:
    # exposure 1: 6 of 10 without a post score; exposure 0: 2 of 10; one client without intake
    x = [1] * 10 + [0] * 10 + [1]
    post = [np.nan] * 6 + [5.0] * 4 + [np.nan] * 2 + [6.0] * 8 + [np.nan]
    first = [15.0] * 20 + [np.nan]
    last_session = [2, 2, 3, 3, 3, 5] + [8] * 4 + [1, 8] + [8] * 8 + [np.nan]
    return pd.DataFrame(
        {
            "client_id": [f"C{i:02d}" for i in range(21)],
            "x": x,
            "phq9_first": first,
            "phq9_post": post,
            "phq9_last_session": pd.array(last_session, dtype="Int64"),
        }
    )


def test_attrition_by_session_of_last_assessment():
    table = attrition_by_last_session(_attrition_clients(), "phq9").set_index("last_session")
    # sessions 1, 2, 3, 5 hold only clients without a post score; 8 holds 1 of 13
    assert table["clients"].to_dict() == {1: 1, 2: 2, 3: 3, 5: 1, 8: 13}
    assert table["without_post"].to_dict() == {1: 1, 2: 2, 3: 3, 5: 1, 8: 1}


def test_attrition_vs_exposure_is_the_two_by_two_odds_ratio():
    row = attrition_vs_exposure(_attrition_clients(), "phq9", "x")
    # odds of no post score: 6/4 with the exposure, 2/8 without: OR = 6;
    # SE(log OR) = sqrt(1/6 + 1/4 + 1/2 + 1/8) (Woolf), which the logistic MLE reproduces
    assert row["n_clients"] == 20 and row["n_without_post"] == 8
    assert row["odds_ratio"] == pytest.approx(6.0, rel=1e-6)
    assert row["std_error"] == pytest.approx(np.sqrt(1 / 6 + 1 / 4 + 1 / 2 + 1 / 8), rel=1e-5)
    assert row["converged"]


def test_attrition_vs_a_two_arm_exposure_compares_the_second_arm_with_the_first():
    clients = _attrition_clients()
    # "usual" sorts after "collab": usual (x = 0) against collab, OR = 1/6.
    clients["arm"] = ["collab" if v == 1 else "usual" for v in clients["x"]]
    row = attrition_vs_exposure(clients, "phq9", "arm")
    assert row["odds_ratio"] == pytest.approx(1 / 6, rel=1e-6)
    clients.loc[0, "arm"] = "third"
    assert "odds_ratio" not in attrition_vs_exposure(clients, "phq9", "arm")


def test_report_shows_attrition_by_arm_and_session_and_its_test(tmp_path):
    from accord.report.context import Inputs, ReportContext
    from accord.report.sections.data import _attrition

    clients = _attrition_clients()
    clients["arm"] = "collaborative"
    ctx = ReportContext(
        study="s",
        config={"analysis": {"primary_exposure": "x"}},
        min_cell=3,
        run_date="",
        inputs=Inputs(tmp_path),
        clients=clients,
    )
    by_arm, by_session, test = _attrition(ctx)
    assert by_arm.name == "data_attrition_by_arm"
    # 8 of the 20 clients with an intake score have no post score
    assert by_arm.rows[-1] == ("All clients", "8 (40.0%)")
    assert by_session.name == "data_attrition_by_session"
    assert by_session.rows[-1] == ("All", "20", "8")
    assert "odds ratio 6.00" in test.text
