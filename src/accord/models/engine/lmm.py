"""Exact profiled (RE)ML for clients nested in therapists, vectorised over clients.

The linear mixed model

    y_it = X_it b + v_j + u0_i + u1_i t_it + e_it,    e ~ N(0, s^2),
    (u0_i, u1_i) ~ N(0, s^2 T T'),   v_j ~ N(0, s^2 tau^2),

for client i nested in therapist j, is fitted by minimising the profiled deviance of Bates,
Maechler, Bolker and Walker (2015, "Fitting linear mixed-effects models using lme4", J Stat
Softw 67(1), section 3) over the relative covariance factor theta = (T, tau): T is the lower
Cholesky factor of the client covariance relative to s^2 (1 parameter for a client intercept
only, 3 for a correlated intercept and slope, 2 for an independent intercept and slope), tau
the therapist SD relative to s (absent without a therapist term).

With Lambda = diag(I (x) T, tau I) and Z = [Z_client, Z_therapist], lme4 factors
L L' = Lambda'Z'Z Lambda + I. Because every client has one therapist, L has a structure that
makes one evaluation O(n_clients) small dense operations:

* the client block of L is block diagonal, one q x q Cholesky factor L_i per client
  (q = 1 or 2) of T'Z_i'Z_i T + I, computed in closed form for all clients at once;
* the therapist row of client i is g_i' with g_i = L_i^-1 tau T' Z_i'1;
* after eliminating the clients the therapist block is diagonal (clients are nested), with
  S_j = tau^2 n_j + 1 - sum_{i in j} |g_i|^2 (the Schur complement, summed per therapist).
  It is computed as 1 + tau^2 sum_{i in j} 1'V_i^-1 1 (V_i = I + Z_i T T' Z_i'), from a
  closed form of the 2 x 2 algebra, because the difference loses every digit when tau is
  large; the therapist rows of c_u and R_ZX likewise.

The same forward substitution gives c_u = L^-1 Lambda'Z'y and R_ZX = L^-1 Lambda'Z'X, then
R_X'R_X = X'X - R_ZX'R_ZX (which is X'V^-1X with V = Var(y) / s^2), the fixed effects b from
R_X'R_X b = X'y - R_ZX'c_u and the penalised residual sum of squares
r^2 = y'y - |c_u|^2 - b'(X'y - R_ZX'c_u). The deviances (lme4's equations 34 and 41) are

    ML:    log|L|^2 + n (1 + log(2 pi r^2 / n))
    REML:  log|L|^2 + log|R_X|^2 + (n - p) (1 + log(2 pi r^2 / (n - p)))

and the log-likelihood is minus half the deviance. This is also statsmodels' MixedLM `llf`
(the same constants, including the REML one: statsmodels' REML log-likelihood keeps
log|X'V^-1X| with V relative to s^2), so both conventions give the same number; the tests
check it against both programs.

Per-client sufficient statistics (Z_i'Z_i, Z_i'X_i, Z_i'y_i) are summed once; no evaluation
touches the rows again. The slope column is divided by the SD of time inside the fit (so the
elements of theta have comparable sizes) and results are reported in the units of time as
given.

Fixed-effect covariance: s^2 (X'V^-1X)^-1 at the estimates, lme4's `vcov`. statsmodels'
`bse_fe` instead inverts the observed information of all parameters, whose fixed-effect block
also reflects the estimated variances; the two differ by up to about 1e-2 relative in the
reference datasets. The conditional modes (BLUPs) are Lambda u with u = L'^-1 (c_u - R_ZX b),
lme4's `ranef`.

y is replaced by its residual from ordinary least squares on X first (b by b - b_ols), so
r^2 is a difference of numbers of similar size and the deviance keeps about 13 significant
digits, enough for finite-difference derivatives.

theta is optimised by L-BFGS-B with bounds [0, inf) on the diagonal of T and on tau (so a
variance can reach zero exactly, as with lme4's bobyqa), from central-difference gradients
of the deviance. The deviance is even in tau and in the slope's diagonal element of T, so
its derivative there is zero at zero whether or not zero is the optimum; an element that ends
at its bound is probed off it (`BOUND_PROBES`) and the optimizer restarted from any better
point, and a run that stops with a large gradient (a stalled line search) is carried on
without derivatives.

Where one run stops depends on its path, which floating-point rounding changes from one CPU's
kernels to another's (the criterion can have a local minimum on a boundary, e.g. at an
intercept-slope correlation of 1, 0.08 log-likelihood units below the optimum). So the end
point is certified (`certify_optimum`: projected gradient, curvature on the free elements,
probes off each bound) and, when it fails or lies near a boundary (a relative SD below
`NEAR_BOUNDARY`, a correlation beyond +-`NEAR_SINGULAR_CORRELATION`), the optimizer is run
again from other starts (lme4's start, the same variances uncorrelated, each near-zero SD
set to 1) and the lowest deviance kept; a point that still fails is polished by Nelder-Mead.
Newton steps on the parameters away from the bounds (a central-difference Hessian) then take
theta to `THETA_TOLERANCE`, and the result is certified once more: `converged` is True only
for a certified optimum, and ``extras["certification"]`` says which checks ran, the final
gradient norm, the smallest curvature, the number of starts and what the extra starts and the
polishing gained. Callers fall back to statsmodels for an uncertified fit. The checks cost
little (the growth model at 10,000 clients: about 1.5 s of CPU with or without them); a fit
near a boundary, run from four starts, takes about twice as long. Estimates agree
with statsmodels fitted to a tight tolerance to about 1e-8 relative and with lme4 run to
rhoend 1e-10 to about 1e-7 (the variances to 8e-7), by REML and ML, under the SIMD and BLAS
kernels of several CPUs (tests/models/test_lmm.py, tests/models/test_cpu_kernels.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.linalg import solve_triangular

ClientEffects = Literal["intercept", "correlated", "independent"]

OPTIMIZER = "L-BFGS-B"
# Central-difference step for the gradient and Hessian of the deviance in theta.
GRADIENT_STEP = 1e-5
HESSIAN_STEP = 1e-4
# Newton polishing stops when no element of theta moves by more than this.
THETA_TOLERANCE = 1e-9
MAX_NEWTON_STEPS = 8
MAX_ITERATIONS = 2000
# A fit is converged when no element of the deviance's gradient in theta that could lower it
# within the bounds exceeds this, each element taken as the smaller of the raw and the
# Hessian-scaled gradient, as lme4's check.conv.grad does (it warns above 2e-3).
GRADIENT_TOLERANCE = 2e-3
# Values tried for an element of theta that ends at its bound (see `fit_lmm`), and how many
# times the optimizer may restart from a better point found there.
BOUND_PROBES = (1e-4, 1e-3, 1e-2, 0.1, 0.3, 1.0)
MAX_RESTARTS = 3
LBFGSB_OPTIONS = {"maxiter": MAX_ITERATIONS, "ftol": 1e-15, "gtol": 1e-8}
# More starts are tried when a fit ends with a relative SD (an element of T's diagonal or tau)
# below this, or a client intercept-slope correlation beyond +-NEAR_SINGULAR_CORRELATION.
NEAR_BOUNDARY = 0.05
NEAR_SINGULAR_CORRELATION = 0.95
# Relative precision of the deviance (module docstring), for the noise of its differences.
DEVIANCE_PRECISION = 1e-13


class ModelStructureError(ValueError):
    """The data do not have the structure the profiled engine covers (e.g. a client seen by
    more than one therapist)."""


@dataclass
class LmmFit:
    """A fitted model: estimates on the original scale of y and of time.

    `client_covariance` is q x q in the order (intercept, slope); `client_effects` the
    conditional modes per client (rows in the order of `client_labels`), `therapist_effects`
    per therapist. `log_likelihood` is the REML or ML log-likelihood (lme4's `logLik` and
    statsmodels' `llf`, which agree)."""

    fe_params: np.ndarray
    fe_cov: np.ndarray
    fe_names: list[str]
    client_covariance: np.ndarray
    therapist_variance: float | None
    residual_variance: float
    log_likelihood: float
    reml: bool
    theta: np.ndarray
    converged: bool
    message: str
    n_evaluations: int
    n_obs: int
    client_labels: np.ndarray
    client_effects: np.ndarray
    therapist_labels: np.ndarray | None
    therapist_effects: np.ndarray | None
    client_therapist: np.ndarray | None
    optimizer: str = f"accord-profiled-reml ({OPTIMIZER})"
    extras: dict = field(default_factory=dict)


class ProfiledDeviance:
    """Sufficient statistics of one data set and the profiled deviance as a function of theta.

    `client` and `therapist` are labels per row (any sortable values); `therapist` None fits
    no therapist term. `time` is needed when `client_effects` has a slope."""

    def __init__(
        self,
        y: np.ndarray,
        X: np.ndarray,
        client: np.ndarray,
        *,
        time: np.ndarray | None = None,
        therapist: np.ndarray | None = None,
        client_effects: ClientEffects = "correlated",
        reml: bool = True,
    ) -> None:
        y = np.asarray(y, dtype=float)
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError("X must be a 2-d array with one row per observation of y")
        if client_effects not in ("intercept", "correlated", "independent"):
            raise ValueError(f"unknown client_effects {client_effects!r}")
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(X))):
            raise ValueError("y and X must be finite")
        self.client_effects = client_effects
        self.q = 1 if client_effects == "intercept" else 2
        self.reml = reml
        self.n, self.p = X.shape
        if self.n - self.p <= 0:
            raise ValueError("fewer observations than fixed effects")
        client_order, per_client, therapist_labels = self._order_clients(client, therapist)
        Z = self._client_design(time)
        self._sum_per_client(y, X, Z)
        if therapist is not None:
            self.client_therapist = per_client[client_order]
            self.therapist_labels = therapist_labels
            self.t_starts = np.flatnonzero(np.r_[True, np.diff(self.client_therapist) != 0])
            self.n_t = np.add.reduceat(self.ZZ[:, 0, 0], self.t_starts)
            self.tZX = np.add.reduceat(self.ZX[:, 0, :], self.t_starts, axis=0)
            self.tZy = np.add.reduceat(self.Zy[:, 0], self.t_starts)
        else:
            self.client_therapist = None
            self.therapist_labels = None
        self.n_evaluations = 0

    def _order_clients(
        self, client: np.ndarray, therapist: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Number the clients, ordered by therapist so that per-therapist sums are contiguous
        segments; sets each row's client number and the client labels in that order.

        Returns the order of the sorted client labels, each sorted client's therapist code
        (None without a therapist term) and the therapist labels. Raises ModelStructureError
        for a client seen by more than one therapist."""
        client_labels, client_code = _sorted_codes(client)
        n_clients = len(client_labels)
        if therapist is not None:
            therapist_labels, therapist_code = _sorted_codes(therapist)
            per_client = np.full(n_clients, -1)
            per_client[client_code] = therapist_code
            if np.any(per_client[client_code] != therapist_code):
                raise ModelStructureError(
                    "a client is seen by more than one therapist: clients must be nested in "
                    "therapists"
                )
            # Clients ordered by therapist, so per-therapist sums are contiguous segments.
            client_order = np.lexsort((np.arange(n_clients), per_client))
        else:
            therapist_labels, per_client = None, None
            client_order = np.arange(n_clients)
        rank = np.empty(n_clients, dtype=np.intp)
        rank[client_order] = np.arange(n_clients)
        self.row_client = rank[client_code]
        self.client_labels = client_labels[client_order]
        self.n_clients = n_clients
        return client_order, per_client, therapist_labels

    def _client_design(self, time: np.ndarray | None) -> np.ndarray:
        """Z of the client effects: the intercept column, and time divided by its SD (stored
        as `time_sd`) for a slope."""
        if self.q == 2:
            if time is None:
                raise ValueError("time is needed for a client slope")
            time = np.asarray(time, dtype=float)
            self.time_sd = float(np.std(time))
            if not (np.isfinite(self.time_sd) and self.time_sd > 0):
                raise ValueError("time must vary to fit a client slope")
            return np.column_stack([np.ones(self.n), time / self.time_sd])
        self.time_sd = 1.0
        return np.ones((self.n, 1))

    def _sum_per_client(self, y: np.ndarray, X: np.ndarray, Z: np.ndarray) -> None:
        """The sufficient statistics: Z_i'Z_i, Z_i'X_i and Z_i'y_i per client (of y's residual
        from least squares on X), X'X, X'y and y'y."""
        # y is replaced by its residual from least squares on X, and b by b - b_ols: the same
        # model, but r^2 = y'y - |c_u|^2 - ... then subtracts numbers of similar size, which
        # keeps the deviance accurate enough for finite-difference derivatives.
        self.b_ols = np.linalg.lstsq(X, y, rcond=None)[0]
        y = y - X @ self.b_ols
        row_client = self.row_client
        order = np.argsort(row_client, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(row_client[order]) != 0])
        Zs, Xs, ys = Z[order], X[order], y[order]
        self.ZZ = np.add.reduceat(Zs[:, :, None] * Zs[:, None, :], starts, axis=0)
        self.ZX = np.add.reduceat(Zs[:, :, None] * Xs[:, None, :], starts, axis=0)
        self.Zy = np.add.reduceat(Zs * ys[:, None], starts, axis=0)
        # Contiguous copies of the pieces every evaluation reads.
        self._A = np.ascontiguousarray(self.ZZ[:, 0, 0])
        self._B = np.ascontiguousarray(self.ZZ[:, -1, 0])
        self._C = np.ascontiguousarray(self.ZZ[:, -1, -1])
        self._ZX0 = np.ascontiguousarray(self.ZX[:, 0, :])
        self._ZX1 = np.ascontiguousarray(self.ZX[:, -1, :])
        self._Zy0 = np.ascontiguousarray(self.Zy[:, 0])
        self._Zy1 = np.ascontiguousarray(self.Zy[:, -1])
        # det(Z_i'Z_i) = n_i * sum (t - mean t_i)^2, summed from deviations so it is exact
        # (zero for a client with one session) rather than a difference of large numbers.
        if self.q == 2:
            counts = np.diff(np.r_[starts, self.n])
            mean_t = self.ZZ[:, 0, 1] / counts
            deviation = Zs[:, 1] - np.repeat(mean_t, counts)
            self.gram_det = counts * np.add.reduceat(deviation**2, starts)
        self.XtX = X.T @ X
        self.Xty = X.T @ y
        self.yty = float(y @ y)

    # theta layout: client part ("intercept": [a]; "correlated": [a, b, c] for T = [[a, 0],
    # [b, c]]; "independent": [a, c]), then tau with a therapist term.
    @property
    def n_theta(self) -> int:
        """Number of covariance parameters."""
        k = {"intercept": 1, "correlated": 3, "independent": 2}[self.client_effects]
        return k + (self.therapist_labels is not None)

    def lower_bounds(self) -> np.ndarray:
        """0 for diagonal elements of T and tau, -inf for the off-diagonal element."""
        lower = np.zeros(self.n_theta)
        if self.client_effects == "correlated":
            lower[1] = -np.inf
        return lower

    def factor(self, theta: np.ndarray) -> tuple[np.ndarray, float]:
        """T (q x q, time per SD) and tau from theta."""
        theta = np.asarray(theta, dtype=float)
        if self.client_effects == "intercept":
            T = np.array([[theta[0]]])
        elif self.client_effects == "correlated":
            T = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
        else:
            T = np.array([[theta[0], 0.0], [0.0, theta[1]]])
        tau = float(theta[-1]) if self.therapist_labels is not None else 0.0
        return T, tau

    def solve(self, theta: np.ndarray) -> dict[str, np.ndarray | float]:
        """Every piece of the penalised least-squares solution at theta.

        Written out for q <= 2 (T = [[a, 0], [b, c]]; for an intercept only, b = c = 0 and
        the second row is unused): per-client 2 x 2 algebra on vectors of length n_clients is
        several times faster than batched matrix routines on stacks of tiny matrices."""
        self.n_evaluations += 1
        T, tau = self.factor(theta)
        out, logdet, XtVX, rhs, cu2 = self._client_blocks(T)
        if self.therapist_labels is not None:
            rows = self._therapist_rows(T, tau, out)
            logdet += rows.pop("logdet_s")
            RZX_t, cu_t = rows["RZX_t"], rows["cu_t"]
            XtVX -= RZX_t.T @ RZX_t
            rhs -= RZX_t.T @ cu_t
            cu2 += float(cu_t @ cu_t)
            out.update(rows)
        RX = np.linalg.cholesky(XtVX)
        beta = _chol_solve(RX, rhs)
        r2 = self.yty - cu2 - float(rhs @ beta)
        beta = beta + self.b_ols
        logdet_x = 2.0 * float(np.sum(np.log(np.diag(RX))))
        out.update(XtVX=XtVX, RX=RX, beta=beta, r2=r2, logdet=logdet, logdet_x=logdet_x)
        return out

    def _client_blocks(
        self, T: np.ndarray
    ) -> tuple[dict[str, np.ndarray | None], float, np.ndarray, np.ndarray, float]:
        """The client blocks of L (L_i L_i' = T'Z_i'Z_i T + I, T'v = (a v0 + b v1, c v1)) and
        their rows of c_u and R_ZX; with log|L_clients|^2, X'X - R_ZX'R_ZX, X'y - R_ZX'c_u and
        |c_u|^2 over the clients."""
        a = T[0, 0]
        A, ZX0, Zy0 = self._A, self._ZX0, self._Zy0
        if self.q == 2:
            B, C, ZX1, Zy1 = self._B, self._C, self._ZX1, self._Zy1
            b, c = T[1, 0], T[1, 1]
            l00 = np.sqrt(a * a * A + 2 * a * b * B + b * b * C + 1.0)
            l10 = c * (a * B + b * C) / l00
            l11 = np.sqrt(c * c * C + 1.0 - l10 * l10)
            cu0 = (a * Zy0 + b * Zy1) / l00
            cu1 = (c * Zy1 - l10 * cu0) / l11
            R0 = (a * ZX0 + b * ZX1) / l00[:, None]
            R1 = (c * ZX1 - l10[:, None] * R0) / l11[:, None]
            logdet = 2.0 * float(np.sum(np.log(l00)) + np.sum(np.log(l11)))
            XtVX = self.XtX - R0.T @ R0 - R1.T @ R1
            rhs = self.Xty - R0.T @ cu0 - R1.T @ cu1
            cu2 = float(cu0 @ cu0 + cu1 @ cu1)
        else:
            l00 = np.sqrt(a * a * A + 1.0)
            l10 = l11 = cu1 = R1 = None
            cu0 = a * Zy0 / l00
            R0 = a * ZX0 / l00[:, None]
            logdet = 2.0 * float(np.sum(np.log(l00)))
            XtVX = self.XtX - R0.T @ R0
            rhs = self.Xty - R0.T @ cu0
            cu2 = float(cu0 @ cu0)
        blocks = {"l00": l00, "l10": l10, "l11": l11, "cu0": cu0, "cu1": cu1, "R0": R0, "R1": R1}
        return blocks, logdet, XtVX, rhs, cu2

    def _therapist_rows(self, T: np.ndarray, tau: float, blocks: dict) -> dict:
        """The therapist rows of L, c_u and R_ZX (g0, g1, sqrt_s, cu_t, RZX_t) and the
        therapist block's log|S|."""
        # Therapist row of L: g_i = L_i^-1 tau T' Z_i'1, with Z_i'1 = (A_i, B_i). The Schur
        # complement S_j = 1 + tau^2 sum_i 1'V_i^-1 1 and the therapist rows of c_u and R_ZX
        # (tau sum_i 1'V_i^-1 (y_i, X_i) / sqrt(S_j)) are summed from 1'V_i^-1 =
        # e_1'(I + Z_i'Z_i K)^-1 Z_i' (K = TT', V_i = I + Z_i K Z_i'), in closed form:
        # subtracting sum |g_i|^2 from tau^2 n_j + 1 instead loses every digit when the
        # therapist variance is large.
        a = T[0, 0]
        A, ZX0, Zy0 = self._A, self._ZX0, self._Zy0
        l00 = blocks["l00"]
        if self.q == 2:
            B, C, ZX1, Zy1 = self._B, self._C, self._ZX1, self._Zy1
            b, c = T[1, 0], T[1, 1]
            l10, l11 = blocks["l10"], blocks["l11"]
            g0 = tau * (a * A + b * B) / l00
            g1 = (tau * c * B - l10 * g0) / l11
            k01, k11 = a * b, b * b + c * c
            det = (l00 * l11) ** 2
            w11 = (1.0 + B * k01 + C * k11) / det
            w01 = (A * k01 + B * k11) / det
            one_v_one = (A + self.gram_det * k11) / det
            one_v_y = w11 * Zy0 - w01 * Zy1
            one_v_x = w11[:, None] * ZX0 - w01[:, None] * ZX1
        else:
            g0, g1 = tau * a * A / l00, None
            shrink = 1.0 / (1.0 + a * a * A)
            one_v_one, one_v_y, one_v_x = A * shrink, Zy0 * shrink, ZX0 * shrink[:, None]
        starts = self.t_starts
        S = 1.0 + tau * tau * np.add.reduceat(one_v_one, starts)
        sqrt_s = np.sqrt(S)
        cu_t = tau * np.add.reduceat(one_v_y, starts) / sqrt_s
        RZX_t = tau * np.add.reduceat(one_v_x, starts, axis=0) / sqrt_s[:, None]
        logdet_s = float(np.sum(np.log(S)))
        return dict(g0=g0, g1=g1, sqrt_s=sqrt_s, cu_t=cu_t, RZX_t=RZX_t, logdet_s=logdet_s)

    def deviance_from(self, parts: dict) -> float:
        """The ML or REML deviance from the pieces of `solve`."""
        r2 = parts["r2"]
        if not r2 > 0:
            return math.inf
        if self.reml:
            df = self.n - self.p
            return parts["logdet"] + parts["logdet_x"] + df * (1 + math.log(2 * math.pi * r2 / df))
        return parts["logdet"] + self.n * (1 + math.log(2 * math.pi * r2 / self.n))

    def deviance(self, theta: np.ndarray) -> float:
        """Profiled deviance at theta (inf where the factorisation fails)."""
        try:
            return self.deviance_from(self.solve(theta))
        except np.linalg.LinAlgError:
            return math.inf

    def residual_variance(self, parts: dict) -> float:
        """s^2: r^2 / (n - p) for REML, r^2 / n for ML (lme4's sigma^2)."""
        return parts["r2"] / (self.n - self.p if self.reml else self.n)

    def conditional_modes(self, theta: np.ndarray, parts: dict) -> tuple[np.ndarray, np.ndarray]:
        """Client (n_clients x q, time per SD) and therapist conditional modes, Lambda u with
        L'u = c_u - R_ZX b (backward substitution, therapists first)."""
        T, tau = self.factor(theta)
        beta = parts["beta"] - self.b_ols  # c_u and R_ZX are those of the residualised y
        r0 = parts["cu0"] - parts["R0"] @ beta
        r1 = parts["cu1"] - parts["R1"] @ beta if self.q == 2 else None
        if self.therapist_labels is not None:
            u_t = (parts["cu_t"] - parts["RZX_t"] @ beta) / parts["sqrt_s"]
            own = u_t[self.client_therapist]
            r0 = r0 - parts["g0"] * own
            if self.q == 2:
                r1 = r1 - parts["g1"] * own
            therapist = tau * u_t
        else:
            therapist = np.zeros(0)
        if self.q == 2:
            u1 = r1 / parts["l11"]
            u0 = (r0 - parts["l10"] * u1) / parts["l00"]
            u = np.column_stack([u0, u1])
        else:
            u = (r0 / parts["l00"])[:, None]
        return u @ T.T, therapist

    def gradient(self, theta: np.ndarray, step: float = GRADIENT_STEP) -> np.ndarray:
        """Central differences of the deviance (one-sided forward at a lower bound)."""
        theta = np.asarray(theta, dtype=float)
        lower = self.lower_bounds()
        grad = np.empty_like(theta)
        f0 = None
        for k in range(len(theta)):
            e = np.zeros_like(theta)
            e[k] = step
            if theta[k] - step >= lower[k]:
                grad[k] = (self.deviance(theta + e) - self.deviance(theta - e)) / (2 * step)
            else:
                if f0 is None:
                    f0 = self.deviance(theta)
                grad[k] = (
                    -3 * f0 + 4 * self.deviance(theta + e) - self.deviance(theta + 2 * e)
                ) / (2 * step)
        return grad

    def hessian(
        self, theta: np.ndarray, free: np.ndarray, step: float = HESSIAN_STEP
    ) -> np.ndarray:
        """Central-difference Hessian of the deviance in the `free` elements of theta."""
        theta = np.asarray(theta, dtype=float)
        index = np.flatnonzero(free)
        k = len(index)
        H = np.empty((k, k))
        f0 = self.deviance(theta)
        for a in range(k):
            ea = np.zeros_like(theta)
            ea[index[a]] = step
            H[a, a] = (self.deviance(theta + ea) - 2 * f0 + self.deviance(theta - ea)) / step**2
            for b in range(a):
                eb = np.zeros_like(theta)
                eb[index[b]] = step
                H[a, b] = H[b, a] = (
                    self.deviance(theta + ea + eb)
                    - self.deviance(theta + ea - eb)
                    - self.deviance(theta - ea + eb)
                    + self.deviance(theta - ea - eb)
                ) / (4 * step**2)
        return H

    def start(self) -> np.ndarray:
        """lme4's default start: T = I and tau = 1 (time per SD)."""
        theta = {"intercept": [1.0], "correlated": [1.0, 0.0, 1.0], "independent": [1.0, 1.0]}[
            self.client_effects
        ]
        if self.therapist_labels is not None:
            theta = [*theta, 1.0]
        return np.array(theta)

    def theta_from_covariance(
        self, client_covariance: np.ndarray, therapist_variance: float | None, residual: float
    ) -> np.ndarray:
        """theta for given variances (time as given), e.g. to start from another fit."""
        scale = np.diag([1.0, self.time_sd][: self.q])
        cov = scale @ np.asarray(client_covariance, dtype=float) @ scale / residual
        if self.client_effects == "intercept":
            theta = [math.sqrt(max(cov[0, 0], 0.0))]
        elif self.client_effects == "independent":
            theta = [math.sqrt(max(cov[0, 0], 0.0)), math.sqrt(max(cov[1, 1], 0.0))]
        else:
            a = math.sqrt(max(cov[0, 0], 1e-12))
            b = cov[1, 0] / a
            theta = [a, b, math.sqrt(max(cov[1, 1] - b * b, 0.0))]
        if self.therapist_labels is not None:
            theta.append(math.sqrt(max((therapist_variance or 0.0) / residual, 0.0)))
        return np.array(theta)


def fit_lmm(
    y: np.ndarray,
    X: np.ndarray,
    client: np.ndarray,
    *,
    time: np.ndarray | None = None,
    therapist: np.ndarray | None = None,
    client_effects: ClientEffects = "correlated",
    reml: bool = True,
    fe_names: list[str] | None = None,
    start: np.ndarray | None = None,
    start_variances: tuple[np.ndarray, float | None, float] | None = None,
) -> LmmFit:
    """Fit the model of the module docstring by profiled REML (or ML with `reml` False).

    `y` (n), `X` (n x p, full column rank), `client` and optionally `therapist` labels per
    row, `time` per row when clients have a slope. The optimizer starts from `start` (theta,
    see `ProfiledDeviance`), else from `start_variances` (client covariance in the units of
    time, therapist variance, residual variance, e.g. from a simpler model), else from lme4's
    start. The optimum is then certified (`certify_optimum`); `converged` is True only for a
    certified optimum, and ``extras["certification"]`` records the checks. Raises
    ModelStructureError when a client has more than one therapist and ValueError for
    unusable input."""
    model = ProfiledDeviance(
        y, X, client, time=time, therapist=therapist, client_effects=client_effects, reml=reml
    )
    lower = model.lower_bounds()
    if start is not None:
        theta0 = np.maximum(np.asarray(start, dtype=float), lower)
    elif start_variances is not None:
        theta0 = model.theta_from_covariance(*start_variances)
    else:
        theta0 = model.start()
    start_deviance = model.deviance(theta0)
    theta, record = _optimum(model, theta0)
    parts = model.solve(theta)
    deviance = model.deviance_from(parts)
    certificate = record["certificate"]
    converged = bool(np.isfinite(deviance) and certificate["certified"])
    message = record["message"]
    if not converged:
        message = f"{message}; optimum not certified: {certificate['reason']}"

    sigma2 = model.residual_variance(parts)
    T, tau = model.factor(theta)
    unscale = np.diag([1.0, 1.0 / model.time_sd][: model.q])
    client_cov = unscale @ (sigma2 * T @ T.T) @ unscale
    client_modes, therapist_modes = model.conditional_modes(theta, parts)
    fe_cov = sigma2 * np.linalg.inv(parts["XtVX"])
    fe_cov = (fe_cov + fe_cov.T) / 2
    names = list(fe_names) if fe_names is not None else [f"x{k}" for k in range(model.p)]
    return LmmFit(
        fe_params=np.asarray(parts["beta"]),
        fe_cov=fe_cov,
        fe_names=names,
        client_covariance=client_cov,
        therapist_variance=(sigma2 * tau**2 if model.therapist_labels is not None else None),
        residual_variance=sigma2,
        log_likelihood=-0.5 * deviance,
        reml=reml,
        theta=theta,
        converged=converged,
        message=message,
        n_evaluations=model.n_evaluations,
        n_obs=model.n,
        client_labels=model.client_labels,
        client_effects=client_modes @ unscale,
        therapist_labels=model.therapist_labels,
        therapist_effects=(therapist_modes if model.therapist_labels is not None else None),
        client_therapist=model.client_therapist,
        extras={
            "lbfgsb_iterations": record["iterations"],
            "restarts_off_bound": record["restarts"],
            "start_log_likelihood": -0.5 * start_deviance,
            "newton_steps": record["newton_steps"],
            "time_sd": model.time_sd,
            "gradient": certificate["gradient"],
            "certification": {k: v for k, v in record.items() if k not in _RUN_KEYS},
        },
    )


_RUN_KEYS = ("message", "iterations", "restarts", "newton_steps")


@dataclass
class _Run:
    """Where one optimizer run from one start ended."""

    theta: np.ndarray
    deviance: float
    message: str
    iterations: int
    restarts: int


def _optimum(model: ProfiledDeviance, theta0: np.ndarray) -> tuple[np.ndarray, dict]:
    """The optimum of the profiled deviance from `theta0`, certified, and the record of how.

    One optimizer run; more starts (`_extra_starts`) when its end point is near a boundary
    or fails the certificate, keeping the lowest deviance; a derivative-free run (Nelder-Mead,
    then L-BFGS-B) from the best point if that still fails; Newton steps last. The answer is
    the best point found, so it does not depend on where any one run stopped."""
    best = _optimize(model, theta0)
    runs = [best]
    checks = ["projected gradient", "curvature", "bound probes"]
    certificate = certify_optimum(model, best.theta)
    if not certificate["certified"] or _near_boundary(model, best.theta):
        checks.append("multi-start")
        for extra in _extra_starts(model, best.theta, theta0):
            runs.append(_optimize(model, extra))
        best = min(runs, key=lambda run: run.deviance)
        certificate = certify_optimum(model, best.theta)
    if not certificate["certified"]:
        checks.append("derivative-free polish")
        theta, deviance = _derivative_free(model, best.theta)
        if deviance < best.deviance:
            best = _Run(theta, deviance, f"{best.message}; polished by Nelder-Mead", 0, 0)
    before = best.deviance
    checks.append("Newton polish")
    theta, newton, note = _polish(model, best.theta)
    certificate = certify_optimum(model, theta)
    message = best.message if note is None else f"{best.message}; {note}"
    record = {
        "checks": checks,
        "certified": certificate["certified"],
        "gradient_norm": certificate["gradient_norm"],
        "scaled_gradient_norm": certificate["scaled_gradient_norm"],
        "min_curvature": certificate["min_curvature"],
        "n_starts": len(runs),
        "start_log_likelihoods": [-0.5 * run.deviance for run in runs],
        "multi_start_gain": 0.5 * (runs[0].deviance - min(run.deviance for run in runs)),
        "polish_gain": 0.5 * (before - certificate["deviance"]),
        "certificate": certificate,
        "message": message,
        "iterations": sum(run.iterations for run in runs),
        "restarts": sum(run.restarts for run in runs),
        "newton_steps": newton,
    }
    return theta, record


def _bounds(model: ProfiledDeviance) -> list[tuple[float | None, None]]:
    return [(lo if np.isfinite(lo) else None, None) for lo in model.lower_bounds()]


def _optimize(model: ProfiledDeviance, theta0: np.ndarray) -> _Run:
    """L-BFGS-B from `theta0`, restarted from a better point found off a bound, and carried on
    without derivatives where it stops with a large projected gradient."""
    bounds = _bounds(model)
    restarts = iterations = 0
    while True:
        result = optimize.minimize(
            model.deviance,
            theta0,
            jac=model.gradient,
            method=OPTIMIZER,
            bounds=bounds,
            options=LBFGSB_OPTIONS,
        )
        iterations += int(result.nit)
        # The deviance is even in tau and in the slope's diagonal element of T, so at zero its
        # derivative there vanishes whether or not zero is the optimum: a gradient method
        # stops at the bound even where the deviance falls away from it. Probe off the bound
        # and restart from the best point found.
        escape = _off_bound(model, np.asarray(result.x, dtype=float), float(result.fun))
        if escape is None or restarts == MAX_RESTARTS:
            break
        theta0, restarts = escape, restarts + 1
    theta, deviance = np.asarray(result.x, dtype=float), float(result.fun)
    message = str(result.message)
    if _convergence_gradient(model, theta) > GRADIENT_TOLERANCE:
        # L-BFGS-B can stop on a stalled line search (its finite-difference gradient is
        # noisy on a flat deviance) away from the optimum.
        better, f = _derivative_free(model, theta, method="Powell")
        if f < deviance:
            theta, deviance = better, f
            message = f"{message}; continued without derivatives"
    return _Run(theta, deviance, message, iterations, restarts)


def _derivative_free(
    model: ProfiledDeviance, theta: np.ndarray, method: str = "Nelder-Mead"
) -> tuple[np.ndarray, float]:
    """A derivative-free minimisation from `theta` (as lme4's bobyqa or Nelder-Mead), then
    L-BFGS-B from its end point; the lower of the two."""
    bounds = _bounds(model)
    options: dict = {"maxfev": 20 * MAX_ITERATIONS}
    if method == "Powell":
        options.update(xtol=1e-8, ftol=1e-14)
    else:
        options.update(xatol=1e-9, fatol=1e-12, adaptive=True)
    first = optimize.minimize(model.deviance, theta, method=method, bounds=bounds, options=options)
    best_x, best_f = np.asarray(first.x, dtype=float), float(first.fun)
    second = optimize.minimize(
        model.deviance, best_x, jac=model.gradient, method=OPTIMIZER, bounds=bounds,
        options=LBFGSB_OPTIONS,
    )  # fmt: skip
    if second.fun < best_f:
        best_x, best_f = np.asarray(second.x, dtype=float), float(second.fun)
    return best_x, best_f


def _diagonal(model: ProfiledDeviance) -> np.ndarray:
    """Indices of the elements of theta bounded at 0 (diagonal of T, and tau)."""
    return np.flatnonzero(model.lower_bounds() == 0)


def _near_boundary(model: ProfiledDeviance, theta: np.ndarray) -> bool:
    """Is a relative SD below `NEAR_BOUNDARY` or the client intercept-slope correlation
    beyond +-`NEAR_SINGULAR_CORRELATION`? (Where a fit can stop at the wrong side of a
    boundary.)"""
    if np.any(theta[_diagonal(model)] < NEAR_BOUNDARY):
        return True
    if model.client_effects == "correlated":
        b, c = theta[1], theta[2]
        return bool(abs(b) > NEAR_SINGULAR_CORRELATION * math.hypot(b, c))
    return False


def _extra_starts(
    model: ProfiledDeviance, theta: np.ndarray, first: np.ndarray
) -> list[np.ndarray]:
    """Starts besides `first`, for a fit whose end point `theta` is near a boundary: lme4's
    default start; the same variances with no client intercept-slope correlation; and
    `theta` with each near-zero relative SD set to 1 (lme4's start value)."""
    starts = [model.start()]
    if model.client_effects == "correlated":
        a, b, c = theta[:3]
        starts.append(np.r_[max(abs(a), 0.1), 0.0, max(math.hypot(b, c), 0.1), theta[3:]])
    for k in _diagonal(model):
        if theta[k] < NEAR_BOUNDARY:
            moved = theta.copy()
            moved[k] = 1.0
            starts.append(moved)
    distinct: list[np.ndarray] = []
    for s in starts:
        if not any(np.allclose(s, t, rtol=1e-6, atol=1e-8) for t in [first, *distinct]):
            distinct.append(s)
    return distinct


def certify_optimum(model: ProfiledDeviance, theta: np.ndarray) -> dict:
    """Check that `theta` is a minimum of the profiled deviance within the bounds.

    * projected gradient: no element of the central-difference gradient that could lower the
      deviance within the bounds exceeds `GRADIENT_TOLERANCE` (at a lower bound only a
      negative derivative counts), an element away from its bound taken as the smaller of its
      raw and its Hessian-scaled value, as lme4 does: the raw gradient's rounding noise grows
      with the deviance, so with hundreds of thousands of clients a raw check would fail at
      the optimum (the scaled value is the gradient in units of the curvature there);
    * curvature: the central-difference Hessian in the elements away from their bounds has no
      eigenvalue below -tolerance (the finite-difference noise of the deviance, plus 1e-6 of
      the largest eigenvalue); lme4 skips its checks for a fit on the boundary, here the
      elements on it are left out of the Hessian and checked by the next item instead;
    * bound probes: for each element at its bound, no point at `BOUND_PROBES` off it has a
      lower deviance.

    Returns the deviance, gradient, gradient norm, smallest eigenvalue (None with every
    element on its bound), whether each check passed (`certified`) and, when one failed, the
    `reason`."""
    lower = model.lower_bounds()
    deviance = model.deviance(theta)
    grad = model.gradient(theta)
    gradient_norm = _projected_gradient(model, theta, grad)
    free = theta > lower + 1e-6
    min_curvature: float | None = None
    tolerance = 0.0
    convergence_gradient = gradient_norm
    if free.any() and np.isfinite(deviance):
        hessian = model.hessian(theta, free)
        convergence_gradient = _convergence_gradient(model, theta, grad, hessian)
        eigenvalues = np.linalg.eigvalsh(hessian)
        noise = 4 * DEVIANCE_PRECISION * max(1.0, abs(deviance)) / HESSIAN_STEP**2
        tolerance = noise + 1e-6 * float(np.max(np.abs(eigenvalues)))
        min_curvature = float(eigenvalues.min())
    reasons = []
    if not np.isfinite(deviance):
        reasons.append("the deviance is not finite")
    if not convergence_gradient <= GRADIENT_TOLERANCE:
        reasons.append(f"projected gradient {convergence_gradient:.3g}")
    if min_curvature is not None and min_curvature < -tolerance:
        reasons.append(f"negative curvature {min_curvature:.3g} (not a minimum)")
    if _off_bound(model, theta, deviance) is not None:
        reasons.append("a lower deviance off a bound")
    return {
        "deviance": float(deviance),
        "gradient": grad.tolist(),
        "gradient_norm": gradient_norm,
        "scaled_gradient_norm": convergence_gradient,
        "min_curvature": min_curvature,
        "curvature_tolerance": tolerance,
        "on_bound": np.flatnonzero(~free & np.isfinite(lower)).tolist(),
        "certified": not reasons,
        "reason": "; ".join(reasons) or None,
    }


def _off_bound(model: ProfiledDeviance, theta: np.ndarray, deviance: float) -> np.ndarray | None:
    """A point with lower deviance next to a theta element at its bound, or None."""
    lower = model.lower_bounds()
    best, best_f = None, deviance - 1e-9 * max(1.0, abs(deviance))
    for k in np.flatnonzero(theta <= lower + 1e-10):
        for value in BOUND_PROBES:
            trial = theta.copy()
            trial[k] = value
            f = model.deviance(trial)
            if f < best_f:
                best, best_f = trial, f
    return best


def _convergence_gradient(
    model: ProfiledDeviance,
    theta: np.ndarray,
    grad: np.ndarray | None = None,
    hessian: np.ndarray | None = None,
) -> float:
    """lme4's convergence measure: the projected gradient (`_projected_gradient`), each element
    away from its bound replaced by the smaller of it and the Hessian-scaled gradient
    R^-1 g (R'R = H, the Hessian in those elements; R upper triangular, lme4's
    ``solve(chol(H), g)``), when that Hessian is positive definite."""
    grad = model.gradient(theta) if grad is None else grad
    lower = model.lower_bounds()
    at_bound = theta <= lower + 1e-12
    measure = np.abs(np.where(at_bound, np.minimum(grad, 0.0), grad))
    free = theta > lower + 1e-6
    if free.any():
        hessian = model.hessian(theta, free) if hessian is None else hessian
        try:
            factor = np.linalg.cholesky(hessian)
        except np.linalg.LinAlgError:
            return float(np.max(measure))
        scaled = np.abs(solve_triangular(factor, grad[free], lower=True, trans="T"))
        measure[free] = np.minimum(measure[free], scaled)
    return float(np.max(measure))


def _projected_gradient(
    model: ProfiledDeviance, theta: np.ndarray, grad: np.ndarray | None = None
) -> float:
    """The largest element of the deviance's gradient that could lower it within the bounds
    (an element at its lower bound counts only if the deviance falls into the interior)."""
    grad = model.gradient(theta) if grad is None else grad
    at_bound = theta <= model.lower_bounds() + 1e-12
    return float(np.max(np.abs(np.where(at_bound, np.minimum(grad, 0.0), grad))))


def _polish(model: ProfiledDeviance, theta: np.ndarray) -> tuple[np.ndarray, int, str | None]:
    """Newton steps on the elements of theta away from their bounds (the Hessian taken once,
    at the optimizer's end point), so the optimum is reached to `THETA_TOLERANCE` rather than
    to the optimizer's stopping rule. A step that does not lower the deviance ends it."""
    lower = model.lower_bounds()
    f = model.deviance(theta)
    # An element that ended next to its bound is put on it if that costs nothing (L-BFGS-B
    # stops a rounding error away from a bound it is heading for).
    for k in np.flatnonzero(theta < lower + 1e-6):
        trial = theta.copy()
        trial[k] = lower[k]
        f_trial = model.deviance(trial)
        if f_trial <= f + 1e-10:
            theta, f = trial, min(f, f_trial)
    free = theta > lower + 1e-6
    if not free.any():
        return theta, 0, None
    try:
        H = model.hessian(theta, free)
        np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return theta, 0, "the deviance is not convex at the optimizer's end point"
    steps = 0
    for _ in range(MAX_NEWTON_STEPS):
        step = -np.linalg.solve(H, model.gradient(theta)[free])
        trial = theta.copy()
        trial[free] = np.maximum(theta[free] + step, lower[free])
        f_trial = model.deviance(trial)
        if not f_trial <= f:
            break
        moved = float(np.max(np.abs(trial - theta)))
        theta, f, steps = trial, f_trial, steps + 1
        if moved <= THETA_TOLERANCE:
            break
    return theta, steps, None


def _sorted_codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct labels and each row's index into them (as np.unique with
    return_inverse, but hashing the rows and sorting only the distinct labels, which is many
    times faster for text labels)."""
    codes, uniques = pd.factorize(np.asarray(labels, dtype=object), sort=False)
    if (codes < 0).any():
        raise ValueError("client and therapist labels must not be missing")
    uniques = np.asarray(uniques, dtype=object)
    order = np.argsort(uniques, kind="stable")
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    return uniques[order], rank[codes]


def _chol_solve(R: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve (R R') x = b for lower triangular R."""
    z = solve_triangular(R, b, lower=True, check_finite=False)
    return solve_triangular(R.T, z, lower=False, check_finite=False)
