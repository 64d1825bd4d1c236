"""The mixed-model engines judged by their answers, one design at a time, for a CPU sweep.

Each check fits one design and returns the numbers the sweep records:

* ``shortfall``: how far the engine's log-likelihood is below the best reference (positive
  is a shortfall). The references are statsmodels' MixedLM (its variances put through the
  engine's profiled criterion, which profiles out b and s^2 exactly, so it is at least
  statsmodels' own llf), and a multi-start reference: Nelder-Mead on the same criterion from
  lme4's start, from statsmodels' estimates and from scaled versions of both;
* ``estimate_rel``, ``se_rel`` and ``variance_rel``: the largest relative difference from
  lme4's stored fits (tests/data/reference/lmm, bobyqa to rhoend 1e-10), where there is one;
* ``converged``: whether the engine certified its optimum.

Run as a script it prints one JSON line per design, so that a test can run it in a
subprocess under other SIMD and BLAS kernels (NPY_DISABLE_CPU_FEATURES, OPENBLAS_CORETYPE;
tests/models/test_cpu_kernels.py):

    python tests/models/engine_checks.py lmm:client_correlated/ml/0 therapist:unbalanced ...
    python tests/models/engine_checks.py all
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

# This file runs as a script in a subprocess: its own folder holds the tests it reuses, the
# tests' root their shared fixtures (conftest).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_lmm import (
    DEFAULT_CASES,
    LME4_TERMS,
    REFERENCE,
    STRUCTURES,
    SWEEP,
    _reference_fit,
    engine_fit,
    multi_start_reference,
    panel,
    statsmodels_components,
    statsmodels_fit,
)

from accord.models.engine.lmm import ProfiledDeviance

# Every design of the statsmodels comparison suites: (structure, options, reml).
LMM_DESIGNS = {
    **{f"lmm:{s}/reml/default{i}": (s, o, True) for i, (s, o) in enumerate(DEFAULT_CASES)},
    **{f"lmm:{s}/ml/default": (s, {"design": "unbalanced", "seed": 9}, False) for s in STRUCTURES},
    **{
        f"lmm:{s}/{'reml' if reml else 'ml'}/sweep{i % 6}": (s, o, reml)
        for i, (s, o) in enumerate(SWEEP)
        for reml in (True, False)
    },
}
LME4_DESIGNS = [
    f"lme4:{name}/{method}"
    for name in ("growth_negcorr", "growth_sparse")
    for method in ("REML", "ML")
]
THERAPIST_DESIGNS = ["therapist:balanced", "therapist:unbalanced", "therapist:boundary"]
SEPARATION_DESIGNS = ["separation:logistic", "separation:cox"]
ALL = [*LMM_DESIGNS, *LME4_DESIGNS, *THERAPIST_DESIGNS, *SEPARATION_DESIGNS]


def check_lmm(name: str) -> dict:
    structure, options, reml = LMM_DESIGNS[name]
    data = panel(**options)
    formula = "y ~ time * x + z" if options.get("covariate") else "y ~ time * x"
    sm_model, result = statsmodels_fit(data, formula, structure, reml)
    fit = engine_fit(data, sm_model.exog, structure, reml)
    effects, nested = STRUCTURES[structure]
    model = ProfiledDeviance(
        data["y"].to_numpy(),
        sm_model.exog,
        data["client"].to_numpy(),
        time=data["time"].to_numpy(),
        therapist=data["therapist"].to_numpy() if nested else None,
        client_effects=effects,
        reml=reml,
    )
    theirs = statsmodels_components(sm_model, result, structure)
    q = 1 if effects == "intercept" else 2
    sm_theta = model.theta_from_covariance(
        theirs["client"][:q, :q], theirs["therapist"] if nested else None, result.scale
    )
    sm_llf = max(float(result.llf), -0.5 * model.deviance(sm_theta))
    reference = -0.5 * multi_start_reference(model, [model.start(), sm_theta])
    best = max(sm_llf, reference)
    return {
        "design": name,
        "converged": bool(fit.converged),
        "shortfall": best - fit.log_likelihood,
        "n_starts": fit.extras.get("certification", {}).get("n_starts"),
    }


def check_lme4(name: str) -> dict:
    dataset, method = name.split(":")[1].split("/")
    fits = pd.read_csv(REFERENCE / "lmm" / "fits.csv", comment="#")
    rows = (fits["dataset"] == dataset) & (fits["method"] == method)
    r = fits.loc[rows].set_index("quantity")["value"]
    fit = _reference_fit(dataset, method == "REML")

    def rel(ours, theirs) -> float:
        ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
        return float(np.max(np.abs(ours - theirs) / np.abs(theirs)))

    variances = [
        fit.client_covariance[0, 0],
        fit.client_covariance[1, 1],
        fit.client_covariance[0, 1],
        fit.therapist_variance,
        fit.residual_variance,
    ]
    names = [
        "client_intercept",
        "client_slope",
        "client_intercept_slope_covariance",
        "therapist_intercept",
        "residual",
    ]
    return {
        "design": name,
        "converged": bool(fit.converged),
        "shortfall": float(r["log_likelihood"]) - fit.log_likelihood,
        "estimate_rel": rel(fit.fe_params, r[[f"estimate:{t}" for t in LME4_TERMS]]),
        "se_rel": rel(np.sqrt(np.diag(fit.fe_cov)), r[[f"std_error:{t}" for t in LME4_TERMS]]),
        "variance_rel": rel(variances, r[names]),
        "n_starts": fit.extras.get("certification", {}).get("n_starts"),
    }


def therapist_panel(kind: str) -> pd.DataFrame:
    from test_therapist import three_level, unbalanced

    if kind == "balanced":
        return three_level(n_therapists=20, clients_per_therapist=8, seed=4)
    if kind == "unbalanced":
        return unbalanced(three_level(n_therapists=20, clients_per_therapist=8, seed=6))
    return unbalanced(three_level(n_therapists=12, clients_per_therapist=8, var_therapist=0.0))


def check_therapist(name: str) -> dict:
    """The therapist model's profiled REML fit and its closed form (the bootstrap's, on the
    full data and on three replicates) against statsmodels and the multi-start reference."""
    from accord.models.therapist import ClientSums, fit_therapist, fit_variance_components

    panel_ = therapist_panel(name.split(":")[1])
    profiled = fit_therapist(panel_, n_boot=0)
    data = panel_.rename(columns={"client_id": "client", "therapist_id": "therapist"})
    model = ProfiledDeviance(
        data["phq9"].to_numpy(),
        np.ones((len(data), 1)),
        data["client"].to_numpy(),
        therapist=data["therapist"].to_numpy(),
        client_effects="intercept",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = fit_therapist(panel_, n_boot=0, engine="statsmodels")
    reference = -0.5 * multi_start_reference(model, [model.start()])
    best = max(reference, float(sm.diagnostics["log_likelihood"]))
    llf = float(profiled.diagnostics["log_likelihood"])
    sums = ClientSums.of(data, "phq9")
    closed = fit_variance_components(sums)
    shortfalls = [best - llf, best - closed["log_likelihood"]]
    converged = [bool(profiled.diagnostics["converged"]), bool(closed["converged"])]
    for r in range(3):
        replicate = sums.resample(np.random.default_rng(r))
        fit = fit_variance_components(replicate)
        rows = _rows_of(replicate)
        replicate_model = ProfiledDeviance(
            rows["y"], np.ones((len(rows["y"]), 1)), rows["client"], therapist=rows["therapist"],
            client_effects="intercept",
        )  # fmt: skip
        ref = -0.5 * multi_start_reference(replicate_model, [replicate_model.start()])
        shortfalls.append(ref - fit["log_likelihood"])
        converged.append(bool(fit["converged"]))
    return {
        "design": name,
        "converged": all(converged),
        "shortfall": max(shortfalls),
        "n_starts": None,
    }


def _rows_of(sums) -> dict[str, np.ndarray]:
    """Rows with each client's count, sum and sum of squares (all the null model uses):
    the client mean, plus the within-client spread on the first two rows."""
    y, client, therapist = [], [], []
    for i, (n, total, squares) in enumerate(zip(sums.n, sums.total, sums.squares, strict=True)):
        n = int(n)
        values = np.full(n, total / n)
        if n > 1:
            spread = math.sqrt(max(squares - total * total / n, 0.0) / 2)
            values[0] += spread
            values[1] -= spread
        y.extend(values)
        client.extend([i] * n)
        therapist.extend([int(sums.therapist[i])] * n)
    return {"y": np.array(y), "client": np.array(client), "therapist": np.array(therapist)}


def check_separation(name: str) -> dict:
    """A fit whose maximum likelihood estimate does not exist must say so: the logistic model
    at complete separation (its separation flag) and the Cox model at a monotone likelihood
    (every exposed client drops out before any unexposed client does; not converged)."""
    from accord.models.dropout import fit_cox, fit_logistic

    n = 40
    exposed = np.r_[np.zeros(n // 2), np.ones(n // 2)]
    clients = pd.DataFrame(
        {
            "client_id": [f"C{i:02d}" for i in range(n)],
            "joint_goal_share": exposed,
            "dropout": exposed > 0.5,
            "sessions_to_dropout": np.where(
                exposed > 0.5, 1 + np.arange(n) % 3, 5 + np.arange(n) % 7
            ),
            "dropout_event": (exposed > 0.5) | (np.arange(n) < 5),
        }
    )
    if name == "separation:logistic":
        result = fit_logistic(clients)
        reported = (
            result.diagnostics["extras"]["perfect_separation"]
            or not result.diagnostics["converged"]
        )
    else:
        result = fit_cox(clients)
        reported = not result.diagnostics["converged"]
    return {"design": name, "reported": bool(reported and result.diagnostics["warnings"])}


def kernels() -> dict:
    """The SIMD extensions numpy dispatches to and the OpenBLAS core of numpy's and scipy's
    BLAS in this process (so a sweep can tell that the kernels it asked for are in use)."""
    import ctypes
    import glob

    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    cores = {}
    site = Path(np.__file__).resolve().parents[1]
    for library in sorted(glob.glob(str(site / "*.libs" / "libscipy_openblas*"))):
        handle = ctypes.CDLL(library)
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
            if hasattr(handle, symbol):
                function = getattr(handle, symbol)
                function.restype = ctypes.c_char_p
                cores[Path(library).parent.name] = function().decode()
    return {
        "numpy_simd": [f for f in __cpu_dispatch__ if __cpu_features__[f]],
        "blas_cores": cores,
    }


def check(name: str) -> dict:
    if name.startswith("lmm:"):
        return check_lmm(name)
    if name.startswith("lme4:"):
        return check_lme4(name)
    if name.startswith("separation:"):
        return check_separation(name)
    return check_therapist(name)


if __name__ == "__main__":
    names = ALL if sys.argv[1:] == ["all"] else sys.argv[1:]
    print(json.dumps({"kernels": kernels()}), flush=True)
    for design in names:
        print(json.dumps(check(design)), flush=True)
