"""Make the fixed datasets that the reference results (make_reference.R) are computed on.

Run from this folder: ``python make_datasets.py``. The output is deterministic (seeded numpy
generators, values written with fixed decimals), so rerunning it reproduces the CSV files
byte for byte; R and Python then read the very same numbers.

Growth datasets (one row per observed session; columns client_id, therapist_id,
session_number, phq9, joint_goal_share), from

    phq9 = 16 + 0.5 x - 0.4 t + b3 t x + v_therapist + u0 + u1 t + e,

with clients nested in therapists and x = joint_goal_share ~ U(0, 1) per client:

* growth_interaction.csv: 150 clients x 8 sessions (0..7) in 12 therapists, b3 = -0.3,
  SD(u0) = 3.5, SD(u1) = 0.4, corr(u0, u1) = -0.3, SD(v) = 1.0, SD(e) = 2.0;
* growth_negcorr.csv: as above but corr(u0, u1) = -0.85 and SD(u1) = 0.6;
* growth_sparse.csv: 200 clients in 15 therapists with only 2 to 4 sessions each
  (sessions 0..last, last in 1..3), b3 = -0.5, corr(u0, u1) = -0.4.

Survival dataset (survival.csv; columns time, event, x, z): 120 clients, a binary group x,
a continuous covariate z, integer event times (so ties matter: Efron's method) and
independent censoring.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def growth(
    *,
    seed: int,
    n_clients: int,
    n_therapists: int,
    last_session: tuple[int, int],
    interaction: float,
    intercept_sd: float,
    slope_sd: float,
    correlation: float,
    therapist_sd: float = 1.0,
    residual_sd: float = 2.0,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # Every therapist gets at least one client; the rest are spread at random.
    therapist = np.concatenate(
        [np.arange(n_therapists), rng.integers(0, n_therapists, n_clients - n_therapists)]
    )
    x = np.round(rng.uniform(0, 1, n_clients), 3)
    z = rng.normal(size=(n_clients, 2))
    u0 = intercept_sd * z[:, 0]
    u1 = slope_sd * (correlation * z[:, 0] + np.sqrt(1 - correlation**2) * z[:, 1])
    v = rng.normal(0, therapist_sd, n_therapists)
    last = rng.integers(last_session[0], last_session[1] + 1, n_clients)
    client = np.repeat(np.arange(n_clients), last + 1)
    t = np.concatenate([np.arange(k + 1) for k in last]).astype(float)
    y = (
        16
        + 0.5 * x[client]
        + (-0.4 + interaction * x[client] + u1[client]) * t
        + u0[client]
        + v[therapist[client]]
        + rng.normal(0, residual_sd, len(client))
    )
    return pd.DataFrame(
        {
            "client_id": [f"C{i:03d}" for i in client],
            "therapist_id": [f"T{therapist[i]:02d}" for i in client],
            "session_number": t.astype(int),
            "phq9": np.round(y, 4),
            "joint_goal_share": x[client],
        }
    )


def survival(*, seed: int, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    z = np.round(rng.normal(size=n), 3)
    hazard = 0.08 * np.exp(-0.6 * x + 0.4 * z)
    event_time = rng.exponential(1 / hazard)
    censor_time = rng.uniform(4, 30, n)
    time = np.ceil(np.minimum(event_time, censor_time)).astype(int)
    event = (event_time <= censor_time).astype(int)
    return pd.DataFrame({"time": time, "event": event, "x": x, "z": z})


DATASETS = {
    "growth_interaction": dict(
        seed=20240601,
        n_clients=150,
        n_therapists=12,
        last_session=(7, 7),
        interaction=-0.3,
        intercept_sd=3.5,
        slope_sd=0.4,
        correlation=-0.3,
    ),
    "growth_negcorr": dict(
        seed=20240602,
        n_clients=150,
        n_therapists=12,
        last_session=(7, 7),
        interaction=-0.3,
        intercept_sd=3.5,
        slope_sd=0.6,
        correlation=-0.85,
    ),
    "growth_sparse": dict(
        seed=20240603,
        n_clients=200,
        n_therapists=15,
        last_session=(1, 3),
        interaction=-0.5,
        intercept_sd=3.5,
        slope_sd=0.5,
        correlation=-0.4,
    ),
}


def main() -> None:
    for name, settings in DATASETS.items():
        growth(**settings).to_csv(HERE / f"{name}.csv", index=False, float_format="%.4f")
    survival(seed=20240604).to_csv(HERE / "survival.csv", index=False, float_format="%.3f")


if __name__ == "__main__":
    main()
