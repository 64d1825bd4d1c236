"""Therapist effects: the null three-level model over all assessments (analyses.md).

This model is a labelled DESCRIPTIVE (config option ``design: null``): it mixes differences in
intake between therapists' caseloads into the therapist share, so it is not the quantity behind
the published "about 5 %". The therapist model of the analysis plan is the post score adjusted
for intake (`accord.models.therapist_post`, ``design: post``, the default).

    y_tij = b0 + v_j + u_ij + e_tij,  v_j ~ N(0, s2_therapist), u_ij ~ N(0, s2_client),
    e_tij ~ N(0, s2_residual)

the null three-level model of every assessment t of client i of therapist j (intake and
attended sessions), fitted by REML. The therapist ICC is the therapist share of the outcome
variance (Wampold & Brown 2005; Baldwin & Imel 2013)

    icc_therapist = s2_therapist / (s2_therapist + s2_client + s2_residual)

and the client ICC the share between clients of the same therapist,
s2_client / (s2_therapist + s2_client + s2_residual). The correlation of two assessments of the
same client, (s2_therapist + s2_client) / total, is in the diagnostics (``extras``).

Coefficients: ``Intercept`` (Wald CI), ``icc_therapist`` and ``icc_client``, each with the
bootstrap SD as its standard error and a 95% percentile CI from a cluster bootstrap: therapists
are drawn with replacement, each with all their clients and assessments, and a therapist drawn
twice enters as two therapists (Field & Welsh 2007). There is no p-value for an ICC. The
caterpillar plot's therapist effects (BLUPs of v_j with their conditional SEs, 95% intervals
and ranks) are in ``extras["therapist_effects"]``, sorted and without therapist ids.

How the model is fitted
-----------------------
The reported fit is by the profiled REML engine of the growth model (`accord.models.engine.lmm`,
lme4's criterion: client intercept nested in a therapist intercept, one fixed intercept), with
the therapists' conditional modes (BLUPs) and their conditional SEs: given the variances,
v_j has conditional variance 1 / (1 / s2_therapist + sum_i 1 / (s2_client + s2_residual /
n_i)) over the clients i of therapist j with n_i assessments (lme4's condVar and statsmodels'
random_effects_cov, which likewise take the intercept as known). ``engine="statsmodels"`` fits
statsmodels' MixedLM instead (therapist as the grouping factor, the client intercept a
variance component within therapist); it gives the same estimates (tested) but takes minutes at
100,000 clients, where the profiled engine takes seconds. If the profiled engine cannot fit
the data, statsmodels is used with a warning.

Hundreds of bootstrap replicates are fitted by `fit_variance_components`: the same REML
criterion written in closed form for this model (with compound-symmetric blocks it needs only
each client's count, sum and sum of squares) and maximised with L-BFGS-B over the log
variances. On the full data both fits are reported (``extras["closed_form_fit"]``) and agree to
optimizer precision; a test pins this. A replicate whose optimizer does not converge is left
out and counted.

Replicate r draws from its own generator, seeded from (study seed, model id, r)
(`accord.models.bootstrap.replicate_rng`). `therapist_icc_replicates` draws any set of replicates
on its own, so the workflow spreads them over jobs (rule bootstrap_model) and `fit_therapist`
pools them (``replicates=``): the interval is the same for any number of jobs and the same as
drawing every replicate in one process.

Clients are nested in therapists: a client seen by several therapists counts with the therapist
of their earliest session (the diagnostics say how many), and assessments of clients without a
therapist id are left out. With fewer than `MIN_THERAPISTS` therapists the model is not fitted
(AccordError). The therapist variance is flagged as on the boundary when its SD is below
`BOUNDARY_RELATIVE_SD` residual SDs; an ICC near zero then has a bootstrap CI that starts at 0.

Fit time (demo size: 400 clients, 25 therapists, about 3,400 assessments, one core): well
under a second for the fit and 25 ms per bootstrap replicate, so about 5 s with the default
200 replicates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize

from accord.core.errors import ConfigError, NotEstimableError
from accord.models.bootstrap import (
    BOOTSTRAP_KINDS,
    check_replicates,
    replicate_indices,
    replicate_rng,
)
from accord.models.engine.lmm import fit_lmm
from accord.models.growth import BOUNDARY_RELATIVE_SD
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, coefficient_frame, ranked_effects, wald_from_variance

MIN_THERAPISTS = 5
DEFAULT_N_BOOT = BOOTSTRAP_KINDS["therapist"][0]
# Log-variance bounds relative to the outcome's variance: the lower one stands for zero.
_LOG_LOWER, _LOG_UPPER = math.log(1e-10), math.log(10.0)
_LOG_2PI = math.log(2 * math.pi)
# The closed form's optimum is certified when its projected gradient in the log variances is
# below this (half lme4's 2e-3 on the deviance: the criterion is half the deviance).
_GRADIENT_TOLERANCE = 1e-3
# A log variance (relative to the outcome's) below this is tried at the lower bound too.
_LOG_NEAR_ZERO = math.log(1e-4)

REPLICATE_COLUMNS = ["var_therapist", "var_client", "var_residual", "icc_therapist", "icc_client"]


@dataclass(frozen=True)
class ClientSums:
    """The sufficient statistics of the null model: per client its therapist (a code
    0..n_therapists-1), number of assessments, sum and sum of squares of the outcome.

    `pooled` turns them into cells of the clients of one therapist with the same number of
    assessments (`clients` in the cell, `total_squares` the sum of their squared sums): the
    criterion depends on the clients only through these, and a study of a million clients has
    a few tens of thousands of cells, so each bootstrap replicate is that much cheaper."""

    therapist: np.ndarray
    n: np.ndarray
    total: np.ndarray
    squares: np.ndarray
    n_therapists: int
    clients: np.ndarray | None = None
    total_squares: np.ndarray | None = None

    def weights(self) -> tuple[np.ndarray, np.ndarray]:
        """Clients per row and the sum of their squared sums (one client each before pooling)."""
        clients = self.clients if self.clients is not None else np.ones_like(self.n)
        total_squares = self.total_squares if self.total_squares is not None else self.total**2
        return clients, total_squares

    def pooled(self) -> ClientSums:
        """The clients of a therapist with the same number of assessments as one cell."""
        clients, total_squares = self.weights()
        key = self.therapist.astype(np.int64) * (int(self.n.max(initial=0)) + 1) + self.n.astype(
            np.int64
        )
        keys, first, cell = np.unique(key, return_index=True, return_inverse=True)
        size = len(keys)
        return ClientSums(
            therapist=self.therapist[first].astype(np.int64),
            n=self.n[first],
            total=np.bincount(cell, weights=self.total, minlength=size),
            squares=np.bincount(cell, weights=self.squares, minlength=size),
            n_therapists=self.n_therapists,
            clients=np.bincount(cell, weights=clients, minlength=size),
            total_squares=np.bincount(cell, weights=total_squares, minlength=size),
        )

    @classmethod
    def of(cls, data: pd.DataFrame, outcome: str) -> ClientSums:
        """From assessments with columns client, therapist and `outcome` (no missing values)."""
        y = data[outcome].to_numpy(dtype=float)
        client, clients = pd.factorize(data["client"], sort=True)
        k = len(clients)
        therapist_of_client = pd.Series(data["therapist"].to_numpy()).groupby(client).first()
        t_code, t_uniques = pd.factorize(therapist_of_client.sort_index(), sort=True)
        return cls(
            therapist=t_code.astype(np.int64),
            n=np.bincount(client, minlength=k).astype(float),
            total=np.bincount(client, weights=y, minlength=k),
            squares=np.bincount(client, weights=y * y, minlength=k),
            n_therapists=len(t_uniques),
        )

    def resample(self, rng: np.random.Generator) -> ClientSums:
        """A cluster-bootstrap replicate: therapists drawn with replacement, with their clients."""
        order = np.argsort(self.therapist, kind="stable")
        counts = np.bincount(self.therapist, minlength=self.n_therapists)
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        drawn = rng.integers(0, self.n_therapists, self.n_therapists)
        sizes = counts[drawn]
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        rows = order[np.repeat(starts[drawn], sizes) + offsets]
        clients, total_squares = self.weights()
        return ClientSums(
            therapist=np.repeat(np.arange(self.n_therapists), sizes),
            n=self.n[rows],
            total=self.total[rows],
            squares=self.squares[rows],
            n_therapists=self.n_therapists,
            clients=clients[rows],
            total_squares=total_squares[rows],
        )


def fit_therapist(
    panel: pd.DataFrame,
    *,
    outcome: str = "phq9",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 2026,
    model_id: str = "therapist",
    primary: bool = True,
    optimizer: str = "lbfgs",
    replicates: pd.DataFrame | None = None,
    engine: str = "profiled",
) -> ModelResult:
    """Fit the null three-level model of `outcome` and its therapist ICC (module docstring).

    `panel` is the session panel (client_id, session_number, therapist_id, `outcome`); every
    row with an `outcome` score is an assessment. `n_boot` cluster-bootstrap replicates
    (0 for none: the ICC CIs are then missing), replicate r drawn from
    ``replicate_rng(seed, model_id, r)``. `replicates`, the replicates already drawn (by
    `therapist_icc_replicates`, possibly in several jobs, pooled), replaces the drawing; it
    must hold replicates 0 .. n_boot - 1. `engine` "profiled" (the default) or "statsmodels"
    (module docstring), whose `optimizer` is the statsmodels method.

    Raises ConfigError for a missing column, and AccordError with fewer than
    `MIN_THERAPISTS` therapists.
    """
    _check_options(outcome, engine)
    data, prep = _model_data(panel, outcome)
    warn: list[str] = list(prep.pop("warnings"))
    fit = _fit_null_model(data, outcome, engine, optimizer, warn)
    variances = fit["variances"]
    closed = fit_variance_components(ClientSums.of(data, outcome))
    shares = (
        _shares(variances) if variances else {"icc_therapist": math.nan, "icc_client": math.nan}
    )
    n_boot = int(n_boot)
    replicates = _bootstrap_replicates(panel, outcome, seed, n_boot, model_id, replicates)
    interval = bootstrap_interval(replicates) if replicates is not None else {}
    if replicates is not None:
        failed = int((~replicates["converged"]).sum())
        if failed:
            warn.append(f"{failed} of {n_boot} bootstrap replicate(s) did not converge; left out")
    common = {
        "model": model_id,
        "outcome": outcome,
        "exposure": "therapist",
        "n_obs": len(data),
        "n_clients": data["client"].nunique(),
        "converged": fit["converged"],
    }
    extras = {
        "structure": "therapist random intercept; client random intercept within therapist",
        "icc_therapist": shares["icc_therapist"],
        "icc_client": shares["icc_client"],
        "correlation_within_client": shares.get("correlation_within_client", math.nan),
        "bootstrap": _bootstrap_record(n_boot, replicates, seed),
        "closed_form_fit": closed,
        "therapist_effects": fit["effects"],
        **prep,
    }
    n_therapists = int(data["therapist"].nunique())
    return ModelResult(
        model=model_id,
        outcome=outcome,
        exposure="therapist",
        coefficients=_icc_coefficients(common, fit["intercept"], shares, interval, primary),
        diagnostics=_therapist_diagnostics(common, fit, warn, n_therapists, extras=extras),
    )


def _check_options(outcome: str, engine: str) -> None:
    """ConfigError for an outcome that cannot be a model term or an unknown engine."""
    if not outcome.isidentifier() or outcome in ("client", "therapist"):
        raise ConfigError(f"therapist model: {outcome!r} cannot be used as a model term name")
    if engine not in ("profiled", "statsmodels"):
        raise ConfigError(
            f"therapist model: engine must be 'profiled' or 'statsmodels', not {engine!r}"
        )


def _fit_null_model(
    data: pd.DataFrame, outcome: str, engine: str, optimizer: str, warn: list[str]
) -> dict[str, Any]:
    """The null model from the chosen engine, falling back to statsmodels (with a warning)
    where the profiled engine cannot fit the data or certify its optimum; the fit's warnings
    are appended to `warn`."""
    fit = None
    if engine == "profiled":
        try:
            fit = _profiled_fit(data, outcome)
        except (np.linalg.LinAlgError, ValueError) as exc:
            warn.append(
                f"the profiled engine could not fit the model ({type(exc).__name__}: {exc}); "
                "fitted with statsmodels MixedLM instead"
            )
    if fit is not None and not fit["converged"]:
        # Never report an uncertified point silently: statsmodels' fit replaces it where that
        # converged at least as high.
        reference = _statsmodels_fit(data, outcome, optimizer)
        if reference["converged"] and reference["llf"] >= fit["llf"]:
            warn.append(
                "the profiled engine could not certify its optimum; fitted with statsmodels "
                "MixedLM instead"
            )
            fit = reference
    if fit is None:
        fit = _statsmodels_fit(data, outcome, optimizer)
    warn += fit["warnings"]
    return fit


def _bootstrap_replicates(
    panel: pd.DataFrame,
    outcome: str,
    seed: int,
    n_boot: int,
    model_id: str,
    replicates: pd.DataFrame | None,
) -> pd.DataFrame | None:
    """The cluster-bootstrap replicates: those given (checked to be replicates 0 .. n_boot -
    1), else drawn here; None when `n_boot` is 0."""
    if replicates is not None:
        check_replicates(replicates, n_boot, model_id)
    elif n_boot > 0:
        replicates = therapist_icc_replicates(panel, outcome, seed, n_boot, model_id=model_id)
    if n_boot == 0:
        return None
    return replicates


def _bootstrap_record(n_boot: int, replicates: pd.DataFrame | None, seed: int) -> dict[str, Any]:
    """How the ICC intervals were drawn, for the diagnostics."""
    return {
        "kind": "cluster (therapists drawn with replacement)",
        "replicates": n_boot,
        "replicates_converged": (
            int(replicates["converged"].sum()) if replicates is not None else 0
        ),
        "seed": seed,
        "replicate_seed": "default_rng([seed, crc32(model id), replicate])",
        "interval": "95% percentile",
    }


def _icc_coefficients(
    common: dict[str, Any],
    intercept: dict[str, float],
    shares: dict[str, float],
    interval: dict[str, Any],
    primary: bool,
) -> pd.DataFrame:
    """The tidy rows: the intercept (Wald) and the two ICCs, each with its bootstrap SD as
    the standard error and its percentile CI, and no p-value; the therapist ICC is primary
    when `primary`."""
    rows = [{**common, "term": "Intercept", **intercept, "primary": False}]
    for term in ("icc_therapist", "icc_client"):
        ci = interval.get(term, {})
        rows.append(
            {
                **common,
                "term": term,
                "estimate": shares[term],
                "std_error": ci.get("sd", math.nan),
                "ci_low": ci.get("ci_low", math.nan),
                "ci_high": ci.get("ci_high", math.nan),
                "p_value": math.nan,
                "primary": bool(primary and term == "icc_therapist"),
            }
        )
    return coefficient_frame(rows)


def _therapist_diagnostics(
    common: dict[str, Any],
    fit: dict[str, Any],
    warn: list[str],
    n_therapists: int,
    *,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The diagnostics record of the null model (see `ModelResult`): the fit's optimizer,
    warnings, variances and the variances on the boundary (SD below `BOUNDARY_RELATIVE_SD`
    residual SDs)."""
    variances = fit["variances"]
    floor = BOUNDARY_RELATIVE_SD**2 * variances.get("residual", math.nan)
    boundary = [
        name
        for name in ("therapist_intercept", "client_intercept")
        if variances and variances[name] <= floor
    ]
    return {
        "model": common["model"],
        "outcome": common["outcome"],
        "exposure": "therapist",
        "formula": f"{common['outcome']} ~ 1",
        "method": "REML",
        "optimizer": fit["optimizer"],
        "converged": common["converged"],
        "warnings": list(dict.fromkeys(warn)),
        "log_likelihood": fit["llf"],
        "random_effects": variances,
        "boundary": bool(boundary),
        "boundary_components": boundary,
        "n_obs": common["n_obs"],
        "n_clients": common["n_clients"],
        "n_therapists": n_therapists,
        "extras": extras,
    }


def therapist_icc_replicates(
    panel: pd.DataFrame,
    outcome: str,
    seed: int,
    replicates: int | Iterable[int],
    *,
    model_id: str = "therapist",
) -> pd.DataFrame:
    """Cluster-bootstrap replicates of the null model's variances and ICCs.

    `replicates` is the number of replicates (0 .. n - 1) or the replicate indices to draw;
    replicate r resamples therapists with ``replicate_rng(seed, model_id, r)``, so any split of
    the indices over jobs, pooled, gives the same table as drawing them all at once. Returns one
    row per replicate: replicate, var_therapist, var_client, var_residual, icc_therapist,
    icc_client, converged. Pass the pooled rows to `bootstrap_interval` or `fit_therapist`.
    """
    indices = replicate_indices(replicates)
    data, _ = _model_data(panel, outcome)
    sums = ClientSums.of(data, outcome).pooled()
    rows = []
    for r in indices:
        fit = fit_variance_components(sums.resample(replicate_rng(seed, model_id, r)))
        rows.append(
            {
                "replicate": r,
                "var_therapist": fit["therapist_intercept"],
                "var_client": fit["client_intercept"],
                "var_residual": fit["residual"],
                "icc_therapist": fit["icc_therapist"],
                "icc_client": fit["icc_client"],
                "converged": fit["converged"],
            }
        )
    frame = pd.DataFrame(rows, columns=["replicate", *REPLICATE_COLUMNS, "converged"])
    frame["replicate"] = frame["replicate"].astype(np.int64)
    frame[REPLICATE_COLUMNS] = frame[REPLICATE_COLUMNS].astype(float)
    frame["converged"] = frame["converged"].astype(bool)
    return frame


def bootstrap_interval(replicates: pd.DataFrame, level: float = 0.95) -> dict[str, Any]:
    """Percentile interval and SD of each ICC over the converged replicates."""
    kept = replicates.loc[replicates["converged"]]
    tail = 100 * (1 - level) / 2
    out: dict[str, Any] = {}
    for term in ("icc_therapist", "icc_client"):
        values = kept[term].to_numpy(dtype=float)
        if len(values) < 2:
            out[term] = {"sd": math.nan, "ci_low": math.nan, "ci_high": math.nan}
            continue
        low, high = np.percentile(values, [tail, 100 - tail])
        out[term] = {"sd": float(values.std(ddof=1)), "ci_low": float(low), "ci_high": float(high)}
    return out


def fit_variance_components(sums: ClientSums) -> dict[str, Any]:
    """REML variances of the null three-level model, from the clients' sufficient statistics.

    Within therapist j, V_j = s2_e I + s2_c blockdiag(J_client) + s2_t J, so with
    d_i = s2_e + n_i s2_c, a_j = sum_i n_i / d_i and b_j = sum_i S_i / d_i (S_i the client's
    sum): 1'V_j^-1 1 = a_j / (1 + s2_t a_j), 1'V_j^-1 y = b_j / (1 + s2_t a_j),
    y'V_j^-1 y = sum_i (Q_i - s2_c S_i^2 / d_i) / s2_e - s2_t b_j^2 / (1 + s2_t a_j) and
    log|V_j| = sum_i ((n_i - 1) log s2_e + log d_i) + log(1 + s2_t a_j) (Woodbury and the
    matrix determinant lemma). The REML log-likelihood is -1/2 (sum_j log|V_j| + log A +
    r'V^-1 r + (N - 1) log 2 pi), A = sum_j 1'V_j^-1 1.
    """
    n, total, squares, th = sums.n, sums.total, sums.squares, sums.therapist
    m, total_squares = sums.weights()
    n_t = sums.n_therapists
    n_obs = float(np.sum(m * n))
    mean = total.sum() / n_obs
    # Centre and scale y (REML is invariant to both) so the bounds and tolerances are relative.
    # Per row (a client, or a cell of m clients with n assessments each): the sums over its
    # clients of the centred sum, the centred sum of squares and the squared centred sum.
    centred_sq = squares - 2 * mean * total + m * n * mean**2
    centred = total - m * n * mean
    centred_ss = total_squares - 2 * n * mean * total + m * (n * mean) ** 2
    var_y = float(centred_sq.sum() / max(n_obs - 1, 1))
    if not var_y > 0:
        return _failed("the outcome does not vary")
    s, q, ss = centred / math.sqrt(var_y), centred_sq / var_y, centred_ss / var_y

    criterion = _NullCriterion(n=n, m=m, s=s, q=q, ss=ss, therapist=th, n_therapists=n_t)

    within = float(np.sum(q - ss / n) / max(n_obs - float(np.sum(m)), 1))
    start = np.log(
        np.clip([within, max(1 - within, 0.1) * 0.9, max(1 - within, 0.1) * 0.1], 1e-6, None)
    )
    x, fun, converged = _certified_minimum(criterion.value, start, criterion.gradient)
    e, c, t = np.exp(x) * var_y
    at_zero = [
        name
        for name, value in zip(
            ("residual", "client_intercept", "therapist_intercept"), x, strict=True
        )
        if value <= _LOG_LOWER + 1e-6
    ]
    out = {
        "therapist_intercept": float(t) if "therapist_intercept" not in at_zero else 0.0,
        "client_intercept": float(c) if "client_intercept" not in at_zero else 0.0,
        "residual": float(e),
        "converged": converged,
        "log_likelihood": float(-fun - 0.5 * (n_obs - 1) * (_LOG_2PI + math.log(var_y))),
    }
    out.update(_shares(out))
    return out


@dataclass(frozen=True)
class _NullCriterion:
    """The REML criterion of the null three-level model (`fit_variance_components`) over the
    log variances (e, c, t) = log(s2_residual, s2_client, s2_therapist), per row (a client or a
    cell of m clients with n assessments each) from the centred and scaled sums s, sums of
    squares q and squared sums ss, and its gradient in closed form."""

    n: np.ndarray
    m: np.ndarray
    s: np.ndarray
    q: np.ndarray
    ss: np.ndarray
    therapist: np.ndarray
    n_therapists: int

    def _by_therapist(self, weights: np.ndarray) -> np.ndarray:
        return np.bincount(self.therapist, weights=weights, minlength=self.n_therapists)

    def _terms(self, theta: np.ndarray) -> tuple:
        e, c, t = np.exp(theta)
        d = e + self.n * c
        a = self._by_therapist(self.m * self.n / d)
        b = self._by_therapist(self.s / d)
        yy = self._by_therapist((self.q - c * self.ss / d) / e)
        return e, c, t, d, a, b, yy, 1 + t * a

    def value(self, theta: np.ndarray) -> float:
        e, _, t, d, a, b, yy, g = self._terms(theta)
        n, m = self.n, self.m
        logdet = float(np.sum(m * ((n - 1) * math.log(e) + np.log(d))) + np.sum(np.log(g)))
        big_a, big_b = float(np.sum(a / g)), float(np.sum(b / g))
        quad = float(np.sum(yy - t * b * b / g)) - big_b**2 / big_a
        return 0.5 * (logdet + math.log(big_a) + quad)

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        """The terms of `value` differentiated (d' = 1 for e, n for c; g' = t a' for e and c,
        a for t), times each variance for the log scale."""
        e, c, t, d, a, b, yy, g = self._terms(theta)
        n, m, s, ss = self.n, self.m, self.s, self.ss
        big_a, big_b = float(np.sum(a / g)), float(np.sum(b / g))
        out = np.empty(3)
        for k, (dd, variance) in enumerate(((1.0, e), (n, c), (0.0, t))):
            if k < 2:
                da = self._by_therapist(-m * n * dd / d**2)
                db = self._by_therapist(-s * dd / d**2)
                if k == 0:
                    dyy = -yy / e + self._by_therapist(c * ss / d**2) / e
                else:
                    dyy = -self._by_therapist(ss / d**2)
                dg = t * da
                dl = float(np.sum(m * ((n - 1) / e * (k == 0) + dd / d))) + float(np.sum(dg / g))
                dtb = t * (2 * b * db / g - b * b * dg / g**2)
            else:
                da = db = dyy = np.zeros(self.n_therapists)
                dg = a
                dl = float(np.sum(a / g))
                dtb = b * b / g - t * b * b * a / g**2
            d_big_a = float(np.sum(da / g - a * dg / g**2))
            d_big_b = float(np.sum(db / g - b * dg / g**2))
            dquad = (
                float(np.sum(dyy - dtb))
                - 2 * big_b * d_big_b / big_a
                + big_b**2 * d_big_a / big_a**2
            )
            out[k] = 0.5 * variance * (dl + d_big_a / big_a + dquad)
        return out


def _certified_minimum(objective, start: np.ndarray, gradient) -> tuple[np.ndarray, float, bool]:
    """Minimise the closed-form criterion over the log variances and certify the minimum.

    L-BFGS-B from `start`; where a variance ends near zero, again from its end point with
    that variance at the lower bound (in log variances the criterion is flat next to zero,
    where a gradient method stops short of it); then once more from the best point with tight
    tolerances (L-BFGS-B's default stopping rule ends up to 1e-4 relative short in the
    variances, by a path that differs between CPUs). The lowest point is kept and certified by
    its projected gradient (`_GRADIENT_TOLERANCE`); L-BFGS-B's own flag is not used.
    `gradient` is the criterion's gradient in closed form: central differences of a criterion
    over millions of assessments carry a rounding error above the tolerance."""
    bounds = [(_LOG_LOWER, _LOG_UPPER)] * 3
    fit = optimize.minimize(objective, start, jac=gradient, method="L-BFGS-B", bounds=bounds)
    x, fun = np.asarray(fit.x, dtype=float), float(fit.fun)
    for k in (1, 2):
        if x[k] < _LOG_NEAR_ZERO:
            trial = x.copy()
            trial[k] = _LOG_LOWER
            again = optimize.minimize(
                objective, trial, jac=gradient, method="L-BFGS-B", bounds=bounds
            )
            if again.fun < fun:
                x, fun = np.asarray(again.x, dtype=float), float(again.fun)

    options = {"ftol": 1e-15, "gtol": 1e-9, "maxiter": 2000}
    again = optimize.minimize(
        objective, x, jac=gradient, method="L-BFGS-B", bounds=bounds, options=options
    )
    if again.fun < fun:
        x, fun = np.asarray(again.x, dtype=float), float(again.fun)
    converged = bool(np.isfinite(fun) and _certified(gradient, x))
    return x, fun, converged


def _certified(gradient, theta: np.ndarray) -> bool:
    """Whether `theta` is a minimum, as lme4 checks one (checkConv): each free component's
    gradient, or its gradient scaled by the Cholesky factor of the Hessian, within
    `_GRADIENT_TOLERANCE`; a component at a bound counts only if the gradient points out.

    The scaled gradient is the criterion's possible further decrease in the component's
    direction, whatever the study's size; the raw gradient of a criterion over millions of
    assessments cannot be brought below the tolerance (its rounding error alone, about
    eps |criterion| / step, is larger), while the scaled one can."""
    grad = gradient(theta)
    low, high = theta <= _LOG_LOWER + 1e-6, theta >= _LOG_UPPER - 1e-6
    grad = np.where(low, np.minimum(grad, 0), np.where(high, np.maximum(grad, 0), grad))
    if float(np.max(np.abs(grad))) <= _GRADIENT_TOLERANCE:
        return True
    free = ~(low | high)
    if not free.any() or np.any(np.abs(grad[~free]) > _GRADIENT_TOLERANCE):
        return False
    step = 1e-4
    hessian = np.array(
        [(gradient(theta + step * e) - gradient(theta - step * e)) / (2 * step) for e in np.eye(3)]
    )
    hessian = (hessian + hessian.T)[np.ix_(free, free)] / 2
    try:
        factor = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        return False
    scaled = np.linalg.solve(factor, grad[free])
    return bool(np.all(np.minimum(np.abs(scaled), np.abs(grad[free])) <= _GRADIENT_TOLERANCE))


def _failed(reason: str) -> dict[str, Any]:
    return {
        "therapist_intercept": math.nan,
        "client_intercept": math.nan,
        "residual": math.nan,
        "converged": False,
        "log_likelihood": math.nan,
        "icc_therapist": math.nan,
        "icc_client": math.nan,
        "correlation_within_client": math.nan,
        "note": reason,
    }


def _shares(variances: dict[str, Any]) -> dict[str, float]:
    t, c, e = (variances[k] for k in ("therapist_intercept", "client_intercept", "residual"))
    total = t + c + e
    return {
        "icc_therapist": t / total,
        "icc_client": c / total,
        "correlation_within_client": (t + c) / total,
    }


def _profiled_fit(data: pd.DataFrame, outcome: str) -> dict[str, Any]:
    """The null model by the profiled REML engine, with the therapists' BLUPs and their
    conditional SEs (module docstring)."""
    y = data[outcome].to_numpy(dtype=float)
    client = data["client"].to_numpy(dtype=object)
    therapist = data["therapist"].to_numpy(dtype=object)
    fit = fit_lmm(
        y,
        np.ones((len(y), 1)),
        client,
        therapist=therapist,
        client_effects="intercept",
        fe_names=["Intercept"],
    )
    variances = {
        "therapist_intercept": float(fit.therapist_variance),
        "client_intercept": float(fit.client_covariance[0, 0]),
        "residual": float(fit.residual_variance),
    }
    per_client = data.groupby("client", sort=False).agg(
        therapist=("therapist", "first"), n=(outcome, "size")
    )
    precision = 1.0 / (
        variances["client_intercept"] + variances["residual"] / per_client["n"].to_numpy(float)
    )
    by_therapist = pd.DataFrame({"therapist": per_client["therapist"], "w": precision})
    grouped = by_therapist.groupby("therapist", sort=True)["w"]
    labels = np.asarray(fit.therapist_labels, dtype=object)
    summed = grouped.sum().reindex(labels).to_numpy(float)
    sizes = grouped.size().reindex(labels).to_numpy(int)
    tau2 = variances["therapist_intercept"]
    conditional = 1.0 / (1.0 / tau2 + summed) if tau2 > 0 else np.zeros(len(labels))
    return {
        "converged": bool(fit.converged),
        "variances": variances,
        "intercept": wald_from_variance(float(fit.fe_params[0]), float(fit.fe_cov[0, 0])),
        "llf": float(fit.log_likelihood),
        "effects": ranked_effects(
            np.asarray(fit.therapist_effects, dtype=float), np.sqrt(conditional), sizes
        ),
        "optimizer": fit.optimizer,
        "warnings": [] if fit.converged else [f"the optimizer did not converge: {fit.message}"],
    }


def _statsmodels_fit(data: pd.DataFrame, outcome: str, optimizer: str) -> dict[str, Any]:
    """The null model by statsmodels' MixedLM (module docstring)."""
    import statsmodels.formula.api as smf

    from accord.models.growth import _fit

    fit = _fit(
        lambda: smf.mixedlm(
            f"{outcome} ~ 1",
            data,
            groups="therapist",
            re_formula="1",
            vc_formula={"client_intercept": "0 + C(client)"},
        ),
        optimizer,
    )
    result = fit["result"]
    warn = list(fit["warnings"])
    if fit["error"]:
        warn.append(f"fit failed: {fit['error']}")
    out: dict[str, Any] = {
        "converged": bool(result is not None and result.converged and not fit["error"]),
        "variances": {},
        "intercept": wald_from_variance(math.nan, math.nan),
        "llf": math.nan,
        "effects": [],
        "optimizer": optimizer,
        "warnings": warn,
    }
    if result is not None and not fit["error"]:
        out["variances"] = {
            "therapist_intercept": float(np.asarray(result.cov_re)[0, 0]),
            "client_intercept": float(np.asarray(result.vcomp)[0]),
            "residual": float(result.scale),
        }
        fe = result.fe_params
        out["intercept"] = wald_from_variance(
            float(fe.iloc[0]), float(result.cov_params().iloc[0, 0])
        )
        out["llf"] = float(result.llf)
        out["effects"] = _therapist_effects(result)
    return out


def _therapist_effects(result) -> list[dict[str, float]]:
    """BLUPs of the therapist intercepts of a statsmodels fit (see `ranked_effects`)."""
    effects = result.random_effects
    covs = result.random_effects_cov
    per_therapist = result.model.data.frame.groupby("therapist")["client"].nunique()
    sizes = np.array([int(per_therapist.get(g, 0)) for g in effects])
    values = np.array([float(effects[g].iloc[0]) for g in effects])
    ses = np.array([math.sqrt(max(float(covs[g].iloc[0, 0]), 0.0)) for g in effects])
    return ranked_effects(values, ses, sizes)


def _model_data(panel: pd.DataFrame, outcome: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    for column in ("client_id", "therapist_id", outcome):
        if column not in panel.columns:
            raise ConfigError(f"therapist model: the session panel has no column {column!r}")
    frame = pd.DataFrame(
        {
            "client": panel["client_id"].astype(str).to_numpy(dtype=object),
            "therapist_raw": panel["therapist_id"].astype(object).to_numpy(),
            outcome: pd.to_numeric(panel[outcome], errors="raise").to_numpy(dtype=float),
        }
    )
    if "session_number" in panel.columns:
        frame["session"] = pd.to_numeric(panel["session_number"]).to_numpy(dtype=float)
        frame = frame.sort_values(["client", "session"], kind="stable")
    known = frame.dropna(subset=["therapist_raw"])
    per_client = known.groupby("client", sort=True)["therapist_raw"]
    first = per_client.first()
    switched = int((per_client.nunique() > 1).sum())
    frame["therapist"] = frame["client"].map(first)
    scored = frame.loc[frame[outcome].notna()]
    unknown = scored["therapist"].isna()
    n_unknown = int(scored.loc[unknown, "client"].nunique())
    data = scored.loc[~unknown, ["client", "therapist", outcome]].copy()
    data["therapist"] = data["therapist"].astype(str)
    data = data.sort_values(["therapist", "client"], kind="stable").reset_index(drop=True)
    n_therapists = data["therapist"].nunique()
    if n_therapists < MIN_THERAPISTS:
        raise NotEstimableError(
            f"therapist model: {n_therapists} therapist(s) with {outcome} scores; at least "
            f"{MIN_THERAPISTS} needed to estimate a therapist variance"
        )
    notes = []
    if switched:
        notes.append(
            f"{switched} client(s) saw more than one therapist; each is counted with the "
            "therapist of their earliest listed session"
        )
    if n_unknown:
        notes.append(f"{n_unknown} client(s) without a therapist id left out")
    prep = {
        "warnings": notes,
        "clients_unknown_therapist": n_unknown,
        "clients_switched_therapist": switched,
    }
    return data, prep


def fit_therapist_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    replicates: pd.DataFrame | None = None,
) -> ModelResult:
    """The therapist model declared in config: option ``design`` ``post`` (the default: the
    post score adjusted for intake, `accord.models.therapist_post`) or ``null`` (the null
    three-level model over all assessments, `fit_therapist`, a labelled descriptive); option
    n_boot. The bootstrap is seeded from the study seed and the model id. `replicates`: the
    pooled replicate tables of the model's bootstrap jobs, if drawn there."""
    design = _design_option(spec)
    if design == "post":
        from accord.models.therapist_post import fit_therapist_post

        return fit_therapist_post(
            client_measures,
            outcome=spec.outcome,
            covariates=spec.covariates,
            n_boot=int(spec.options.get("n_boot", DEFAULT_N_BOOT)),
            seed=context.seed,
            model_id=spec.id,
            replicates=replicates,
        )
    return fit_therapist(
        panel,
        outcome=spec.outcome,
        n_boot=int(spec.options.get("n_boot", DEFAULT_N_BOOT)),
        seed=context.seed,
        model_id=spec.id,
        primary=spec.primary,
        replicates=replicates,
    )


def therapist_replicates_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    replicates: range,
) -> pd.DataFrame:
    """The bootstrap replicates of one chunk of a therapist model declared in config."""
    if _design_option(spec) == "post":
        from accord.models.therapist_post import post_icc_replicates

        return post_icc_replicates(
            client_measures,
            spec.outcome,
            spec.covariates,
            context.seed,
            replicates,
            model_id=spec.id,
        )
    return therapist_icc_replicates(panel, spec.outcome, context.seed, replicates, model_id=spec.id)


#: The therapist model's designs (option ``design``): the post score adjusted for intake, or
#: the null three-level model over all assessments (a labelled descriptive).
DESIGNS = ("post", "null")


def _design_option(spec: ModelSpec) -> str:
    design = spec.options.get("design", "post")
    if design not in DESIGNS:
        raise ConfigError(
            f"models: {spec.id!r} (therapist) option design is {design!r}; choose one of "
            f"{list(DESIGNS)}"
        )
    return design
