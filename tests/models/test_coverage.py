"""Coverage study of the growth model: do its 95% CIs for the time x exposure term cover the
truth 95% of the time? (Opt-in: ``pytest tests/models/test_coverage.py --runslow``.)

Data-generating process, per replicate (seeded by replicate number, so the study is the same
on every run): `N_THERAPISTS` therapists with `N_CLIENTS` clients spread evenly across them,
sessions 0..`LAST_SESSION` with scores missing completely at random with probability
`MISSING`, and

    y_it = 15 - 0.5 t + -1.0 x_i + -0.3 t x_i + v_j + u0_i + u1_i t + e_it,

x_i ~ Uniform(0, 1) (a share, like joint_goal_share), v_j ~ N(0, 1.0^2), (u0_i, u1_i)
bivariate normal with SDs 3.0 and 0.3 and correlation -0.3, e_it ~ N(0, 2.0^2): a random
intercept and slope per client, correlated, and a therapist variance, as the growth model
assumes. Each replicate is fitted with `fit_growth` (REML, Wald 95% CIs).

Per fixed effect the study records the proportion of CIs covering the truth with its Monte
Carlo SE sqrt(p (1 - p) / R), the bias (mean estimate - truth, with its Monte Carlo SE), and
the mean model SE against the empirical SD of the estimates (their ratio should be near 1).

Tolerance: with R = 400 replicates and a true coverage of 0.95 the observed proportion has
SD sqrt(0.95 x 0.05 / 400) = 0.0109; the test accepts 0.95 +- 2.576 SD = [0.922, 0.978], so
a correct method fails it with probability 1%. (The fixed [0.93, 0.97] would fail a correct
method about 7% of the time at this R.) Replicates run on 2 processes, about 0.35 s of CPU each:
a few minutes on an idle 2-core machine. Results go to benchmarks/coverage.md.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from accord.models.growth import fit_growth

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "benchmarks" / "coverage.md"

REPLICATES = 400
WORKERS = 2
SEED = 20261122
N_CLIENTS = 150
N_THERAPISTS = 15
LAST_SESSION = 7
MISSING = 0.15
TRUTH = {
    "Intercept": 15.0,
    "time": -0.5,
    "joint_goal_share": -1.0,
    "time:joint_goal_share": -0.3,
}
THERAPIST_SD = 1.0
INTERCEPT_SD, SLOPE_SD, CORRELATION = 3.0, 0.3, -0.3
RESIDUAL_SD = 2.0
Z = 1.959963984540054
TOLERANCE_SD = 2.576


def simulate(replicate: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One replicate's session panel and client measures (see the module docstring)."""
    rng = np.random.default_rng([SEED, replicate])
    clients = np.arange(N_CLIENTS)
    therapist = clients % N_THERAPISTS
    x = rng.uniform(0.0, 1.0, N_CLIENTS)
    v = rng.normal(0.0, THERAPIST_SD, N_THERAPISTS)
    cov = np.array(
        [
            [INTERCEPT_SD**2, CORRELATION * INTERCEPT_SD * SLOPE_SD],
            [CORRELATION * INTERCEPT_SD * SLOPE_SD, SLOPE_SD**2],
        ]
    )
    u = rng.multivariate_normal([0.0, 0.0], cov, N_CLIENTS)
    sessions = np.arange(LAST_SESSION + 1, dtype=float)
    client = np.repeat(clients, len(sessions))
    t = np.tile(sessions, N_CLIENTS)
    mean = (
        TRUTH["Intercept"]
        + TRUTH["time"] * t
        + TRUTH["joint_goal_share"] * x[client]
        + TRUTH["time:joint_goal_share"] * t * x[client]
        + v[therapist[client]]
        + u[client, 0]
        + u[client, 1] * t
    )
    y = mean + rng.normal(0.0, RESIDUAL_SD, len(t))
    y[rng.uniform(size=len(t)) < MISSING] = np.nan
    ids = np.array([f"C{i:04d}" for i in clients])
    panel = pd.DataFrame(
        {
            "client_id": ids[client],
            "therapist_id": np.array([f"T{j:03d}" for j in therapist])[client],
            "session_number": t.astype(int),
            "phq9": y,
        }
    )
    client_measures = pd.DataFrame({"client_id": ids, "joint_goal_share": x})
    return panel, client_measures


def fit_replicate(replicate: int) -> dict[str, float | str | bool]:
    """Estimates and SEs of one replicate's fit."""
    panel, client_measures = simulate(replicate)
    result = fit_growth(panel, client_measures, model_id="coverage")
    table = result.coefficients.set_index("term")
    row: dict[str, float | str | bool] = {
        "replicate": replicate,
        "converged": bool(result.diagnostics["converged"]),
        "optimizer": str(result.diagnostics["optimizer"]),
    }
    for term in TRUTH:
        row[f"{term}|estimate"] = float(table.loc[term, "estimate"])
        row[f"{term}|std_error"] = float(table.loc[term, "std_error"])
    return row


def summarise(fits: pd.DataFrame) -> pd.DataFrame:
    """Coverage, bias and SE calibration per fixed effect over converged replicates."""
    ok = fits.loc[fits["converged"]]
    n = len(ok)
    rows = []
    for term, truth in TRUTH.items():
        estimate = ok[f"{term}|estimate"].to_numpy()
        se = ok[f"{term}|std_error"].to_numpy()
        covered = (estimate - Z * se <= truth) & (truth <= estimate + Z * se)
        coverage = float(covered.mean())
        empirical_sd = float(estimate.std(ddof=1))
        rows.append(
            {
                "term": term,
                "truth": truth,
                "replicates": n,
                "coverage": coverage,
                "coverage_mc_se": math.sqrt(coverage * (1 - coverage) / n),
                "bias": float(estimate.mean() - truth),
                "bias_mc_se": empirical_sd / math.sqrt(n),
                "mean_se": float(se.mean()),
                "empirical_sd": empirical_sd,
                "se_ratio": float(se.mean()) / empirical_sd,
            }
        )
    return pd.DataFrame(rows)


def write_report(summary: pd.DataFrame, fits: pd.DataFrame, minutes: float) -> None:
    optimizers = ", ".join(sorted(fits["optimizer"].unique()))
    lines = [
        "# Coverage of the growth model's 95% confidence intervals",
        "",
        "Written by `tests/models/test_coverage.py`",
        "(`pytest tests/models/test_coverage.py --runslow`); the data-generating process and the",
        "tolerance are in its docstring. Per replicate:",
        f"{N_CLIENTS} clients in {N_THERAPISTS} therapists, sessions 0-{LAST_SESSION}, "
        f"{MISSING:.0%} of scores missing",
        "completely at random; fitted by `fit_growth` (REML, Wald CIs; optimizer:",
        f"{optimizers}).",
        f"{len(fits)} replicates, {int((~fits['converged']).sum())} not converged (left out); "
        f"{minutes:.1f} minutes on {WORKERS} processes.",
        "",
        "| term | truth | coverage (MC SE) | bias (MC SE) | mean SE | empirical SD | SE / SD |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary.itertuples():
        lines.append(
            f"| {row.term} | {row.truth:g} | {row.coverage:.3f} ({row.coverage_mc_se:.3f}) | "
            f"{row.bias:+.4f} ({row.bias_mc_se:.4f}) | {row.mean_se:.4f} | "
            f"{row.empirical_sd:.4f} | {row.se_ratio:.3f} |"
        )
    lines += [
        "",
        "Coverage is the proportion of replicates whose 95% CI holds the true value, with its",
        "Monte Carlo SE sqrt(p(1-p)/R); the test requires 0.95 +- 2.576 x sqrt(0.95 x 0.05 / R)",
        "for the time x exposure term.",
        "",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines), encoding="utf-8")


def test_simulation_is_seeded_by_replicate() -> None:
    a, _ = simulate(3)
    b, _ = simulate(3)
    c, _ = simulate(4)
    pd.testing.assert_frame_equal(a, b)
    assert not a["phq9"].equals(c["phq9"])


def run_replicates(replicates: int) -> pd.DataFrame:
    """Fit `replicates` replicates on `WORKERS` fresh processes, one BLAS thread each (the
    workers split the cores)."""
    previous = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=WORKERS, mp_context=context) as pool:
            fits = []
            for fit in pool.map(fit_replicate, range(replicates), chunksize=10):
                fits.append(fit)
                if len(fits) % 50 == 0:
                    print(f"coverage study: {len(fits)} of {replicates} replicates", flush=True)
    finally:
        if previous is None:
            del os.environ["OPENBLAS_NUM_THREADS"]
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = previous
    return pd.DataFrame(fits)


@pytest.mark.slow
def test_growth_model_coverage() -> None:
    start = time.perf_counter()
    fits = run_replicates(REPLICATES)
    minutes = (time.perf_counter() - start) / 60
    summary = summarise(fits)
    write_report(summary, fits, minutes)

    assert fits["converged"].mean() >= 0.98
    interaction = summary.set_index("term").loc["time:joint_goal_share"]
    half_width = TOLERANCE_SD * math.sqrt(0.95 * 0.05 / interaction["replicates"])
    assert 0.95 - half_width <= interaction["coverage"] <= 0.95 + half_width
    # Unbiased within 3 Monte Carlo SEs, and model SEs within 10% of the empirical SD.
    assert abs(interaction["bias"]) <= 3 * interaction["bias_mc_se"]
    assert 0.9 <= interaction["se_ratio"] <= 1.1
