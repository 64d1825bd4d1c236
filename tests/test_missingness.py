"""Missing outcome data by session, and its relation to the exposure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from accord.missingness import missing_by_session, missingness_vs_exposure


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
