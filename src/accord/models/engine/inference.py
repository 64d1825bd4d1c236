"""Inference researchers report beside a linear mixed model's fixed effects.

For a model fitted by the profiled engine (`accord.models.engine.lmm`):

* **Profile-likelihood intervals for the variance parameters** (the random-effect SDs, the
  client intercept-slope correlation and the residual SD), as lme4's
  ``confint(fit, method = "profile")``: lme4 refits the model by maximum likelihood and, for
  each parameter on the SD/correlation scale, minimises the ML deviance over all the others
  (the fixed effects profiled out); the 95% limits are where the signed square root of the
  deviance increase, zeta, reaches -+1.96 (Bates, Maechler, Bolker & Walker 2015, section 5.1).
  lme4 interpolates zeta by splines through a grid of profiled points; here each limit is a
  root of zeta found by Brent's method. A limit that the deviance does not reach before the
  parameter's bound (an SD of 0, a correlation of +-1) is that bound, as lme4 reports it. The
  deviance is even in an SD at zero, so a gradient method stops there whether or not zero is
  the minimum; an SD that ends at zero in the inner optimisation is probed off it. (lme4's
  own inner optimisations can stop there: on the reference datasets three of its limits lie
  inside the profile, tests/models/test_mixed_inference.py.) A parameter whose profile cannot be
  computed (a correlation with a zero slope SD) has no interval; the `method` column says
  which was done. The table's `estimate` is the reported (REML or ML) fit's. A model of more
  than `PROFILE_MAX_CLIENTS` clients gets Wald intervals instead (`wald_intervals`: the
  asymptotic covariance of the variance parameters below, carried to the SD scale by the
  delta method): each profile limit needs dozens of refits, minutes each at a million
  clients, where the deviance is close to quadratic and the two agree.
* **Marginal and conditional R^2** of Nakagawa & Schielzeth (2013, Methods Ecol Evol 4:133),
  with Johnson's (2014, Methods Ecol Evol 5:944) variance of a random slope, as
  ``performance::r2_nakagawa`` (insight's ``get_variance``) and ``MuMIn::r.squaredGLMM``
  compute them for a Gaussian model: with sigma_f^2 = var(X b) (n - 1 denominator),
  sigma_r^2 = sum over the random-effect terms of the mean over observations of z' Sigma z
  (for a client intercept and slope z = (1, time): Sigma_00 + 2 Sigma_01 mean(t) +
  Sigma_11 mean(t^2); for the therapist intercept its variance) and sigma_e^2 the residual
  variance, marginal R^2 = sigma_f^2 / (sigma_f^2 + sigma_r^2 + sigma_e^2) and conditional
  R^2 = (sigma_f^2 + sigma_r^2) / (same).
* **Satterthwaite degrees of freedom** for each fixed effect, as lmerTest (Kuznetsova,
  Brockhoff & Christensen 2017, J Stat Softw 82(13)) computes them: with the variance
  parameters phi = (theta, sigma), A = 2 H^-1 (H the Hessian of the (RE)ML deviance in phi at
  the estimates; a pseudo-inverse, as lmerTest's ``MASS::ginv``) and g the gradient in phi of
  Var(c'b) = sigma^2 c'(X'V^-1X)^-1 c,

      df = 2 Var(c'b)^2 / (g' A g),

  and the p-value from t = estimate / SE on df degrees of freedom. Both derivatives are
  central differences (lmerTest uses Richardson extrapolation). theta here is per SD of time,
  lmerTest's per unit of time: a linear change of parameters, which leaves g' A g unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from accord.models.engine.lmm import LmmFit, ProfiledDeviance, fit_lmm

CONFIDENCE = 0.95
_Z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))
# Central-difference steps: for the Satterthwaite Hessian of the deviance and Jacobian of
# Var(b), relative to max(|phi|, 0.1); for gradients inside the profile's inner optimisation.
HESSIAN_STEP = 1e-4
JACOBIAN_STEP = 1e-6
PROFILE_GRADIENT_STEP = 1e-6
# A limit is located to this fraction of the parameter's approximate SE.
PROFILE_TOLERANCE = 1e-4
# Where an SD that is free in the inner optimisation ends at zero, the deviance is probed at
# these multiples of the residual SD and the optimisation restarted from a lower point
# (see `_Profile.zeta`).
PROFILE_BOUND_PROBES = (0.01, 0.05, 0.3)
PROFILE_METHOD = "profile likelihood (ML deviance, as lme4's confint)"
# Above this many clients the variance parameters get Wald intervals instead of profiles: each
# profile limit needs dozens of refits, minutes each at a million clients, where the deviance
# is close to quadratic and the two agree.
PROFILE_MAX_CLIENTS = 100_000
WALD_METHOD = "Wald (delta method from the curvature of the deviance)"
VARIANCE_COLUMNS = ["group", "term", "estimate", "ci_low", "ci_high", "method"]


@dataclass
class _Design:
    """What the profiled engine needs to rebuild a fitted model's deviance."""

    y: np.ndarray
    X: np.ndarray
    client: np.ndarray
    time: np.ndarray | None
    therapist: np.ndarray | None
    client_effects: str


def mixed_model_inference(
    fit: LmmFit,
    y: np.ndarray,
    X: np.ndarray,
    client: np.ndarray,
    *,
    time: np.ndarray | None = None,
    therapist: np.ndarray | None = None,
    client_effects: str = "correlated",
    profile: bool = True,
) -> dict:
    """Satterthwaite df and p-values, R^2 and (with `profile`) profile intervals for `fit`,
    a model fitted by `fit_lmm` to these data and options. Returns a dict with
    ``satterthwaite`` (DataFrame: term, df, p_value), ``r_squared`` (dict) and
    ``variance_parameters`` (DataFrame with `VARIANCE_COLUMNS`, empty without `profile`)."""
    design = _Design(
        np.asarray(y, dtype=float),
        np.asarray(X, dtype=float),
        client,
        time,
        therapist,
        client_effects,
    )
    model = _model(design, reml=fit.reml)
    phi, phi_covariance = variance_parameter_covariance(model, fit)
    df = satterthwaite_df(model, fit, phi_covariance)
    se = np.sqrt(np.diag(fit.fe_cov))
    t = fit.fe_params / se
    satterthwaite = pd.DataFrame(
        {
            "term": fit.fe_names,
            "df": df,
            "p_value": 2 * stats.t.sf(np.abs(t), df),
        }
    )
    if not profile:
        variance = pd.DataFrame(columns=VARIANCE_COLUMNS)
    elif len(np.unique(client)) > PROFILE_MAX_CLIENTS:
        variance = wald_intervals(model, fit, phi, phi_covariance)
    else:
        variance = profile_intervals(design, fit)
    return {
        "satterthwaite": satterthwaite,
        "r_squared": nakagawa_r_squared(fit, design.X, time),
        "variance_parameters": variance,
    }


def _model(design: _Design, *, reml: bool) -> ProfiledDeviance:
    return ProfiledDeviance(
        design.y,
        design.X,
        design.client,
        time=design.time,
        therapist=design.therapist,
        client_effects=design.client_effects,
        reml=reml,
    )


# --- Satterthwaite ---------------------------------------------------------------------------


def _deviance_with_sigma(model: ProfiledDeviance, theta: np.ndarray, sigma: float) -> float:
    """The (RE)ML deviance at theta and residual SD sigma (not profiled out), as lmerTest's
    ``devfun_vp`` and lme4's ``devfun2``: log|L|^2 (+ log|R_X|^2) + r^2/sigma^2 +
    m log(2 pi sigma^2), m = n - p for REML and n for ML."""
    if not sigma > 0:
        return math.inf
    try:
        parts = model.solve(theta)
    except np.linalg.LinAlgError:
        return math.inf
    sigma2 = sigma * sigma
    if model.reml:
        m, logdet = model.n - model.p, parts["logdet"] + parts["logdet_x"]
    else:
        m, logdet = model.n, parts["logdet"]
    return float(logdet + parts["r2"] / sigma2 + m * math.log(2 * math.pi * sigma2))


def _fe_covariance(model: ProfiledDeviance, phi: np.ndarray) -> np.ndarray:
    """sigma^2 (X'V^-1X)^-1 at phi = (theta, sigma)."""
    parts = model.solve(phi[:-1])
    return phi[-1] ** 2 * np.linalg.inv(parts["XtVX"])


def variance_parameter_covariance(
    model: ProfiledDeviance, fit: LmmFit
) -> tuple[np.ndarray, np.ndarray]:
    """phi = (theta, sigma) of `fit` and its asymptotic covariance A = 2 H^-1, H the Hessian
    of the (RE)ML deviance in phi (a pseudo-inverse, as lmerTest's ``MASS::ginv``)."""
    phi = np.r_[np.asarray(fit.theta, dtype=float), math.sqrt(fit.residual_variance)]
    steps = HESSIAN_STEP * np.maximum(np.abs(phi), 0.1)
    hessian = _central_hessian(lambda p: _deviance_with_sigma(model, p[:-1], p[-1]), phi, steps)
    covariance = 2 * np.linalg.pinv(hessian, rcond=math.sqrt(np.finfo(float).eps), hermitian=True)
    return phi, covariance


def satterthwaite_df(
    model: ProfiledDeviance, fit: LmmFit, covariance: np.ndarray | None = None
) -> np.ndarray:
    """Satterthwaite df of each fixed effect (module docstring), for `fit` of `model`;
    `covariance` is `variance_parameter_covariance`'s, computed here when not given."""
    if covariance is None:
        phi, covariance = variance_parameter_covariance(model, fit)
    else:
        phi = np.r_[np.asarray(fit.theta, dtype=float), math.sqrt(fit.residual_variance)]
    jac_steps = JACOBIAN_STEP * np.maximum(np.abs(phi), 0.1)
    jacobian = []
    for k in range(len(phi)):
        e = np.zeros_like(phi)
        e[k] = jac_steps[k]
        upper, lower = _fe_covariance(model, phi + e), _fe_covariance(model, phi - e)
        jacobian.append(np.diag(upper - lower) / (2 * jac_steps[k]))
    gradient = np.array(jacobian)  # parameters x fixed effects
    variance = np.diag(_fe_covariance(model, phi))
    denominator = np.einsum("kf,kl,lf->f", gradient, covariance, gradient)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 2 * variance**2 / denominator


def _central_hessian(f, x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    k = len(x)
    H = np.empty((k, k))
    f0 = f(x)
    for a in range(k):
        ea = np.zeros(k)
        ea[a] = steps[a]
        H[a, a] = (f(x + ea) - 2 * f0 + f(x - ea)) / steps[a] ** 2
        for b in range(a):
            eb = np.zeros(k)
            eb[b] = steps[b]
            H[a, b] = H[b, a] = (
                f(x + ea + eb) - f(x + ea - eb) - f(x - ea + eb) + f(x - ea - eb)
            ) / (4 * steps[a] * steps[b])
    return H


# --- R^2 -------------------------------------------------------------------------------------


def nakagawa_r_squared(fit: LmmFit, X: np.ndarray, time: np.ndarray | None) -> dict:
    """Marginal and conditional R^2 (module docstring) and the three variances."""
    var_fixed = float(np.var(np.asarray(X) @ fit.fe_params, ddof=1))
    cov = np.asarray(fit.client_covariance)
    var_random = float(cov[0, 0])
    if cov.shape[0] == 2:
        t = np.asarray(time, dtype=float)
        var_random += 2 * cov[0, 1] * float(t.mean()) + cov[1, 1] * float(np.mean(t * t))
    if fit.therapist_variance is not None:
        var_random += float(fit.therapist_variance)
    var_residual = float(fit.residual_variance)
    total = var_fixed + var_random + var_residual
    return {
        "marginal": var_fixed / total,
        "conditional": (var_fixed + var_random) / total,
        "var_fixed": var_fixed,
        "var_random": var_random,
        "var_residual": var_residual,
        "method": "Nakagawa & Schielzeth (2013), random slopes by Johnson (2014)",
    }


# --- Profile-likelihood intervals --------------------------------------------------------


class _SdScale:
    """The variance parameters on lme4's profile scale, p = (client SDs and correlation,
    therapist SD, residual SD) with time in its units as given, and the ML deviance in p."""

    def __init__(self, model: ProfiledDeviance) -> None:
        self.model = model
        kind = model.client_effects
        self.names = {
            "intercept": ["client_intercept_sd"],
            "correlated": [
                "client_intercept_sd",
                "client_intercept_slope_correlation",
                "client_slope_sd",
            ],
            "independent": ["client_intercept_sd", "client_slope_sd"],
        }[kind]
        if model.therapist_labels is not None:
            self.names.append("therapist_intercept_sd")
        self.names.append("residual_sd")
        self.lower = np.array([-1.0 if "correlation" in n else 0.0 for n in self.names])
        self.upper = np.array([1.0 if "correlation" in n else np.inf for n in self.names])

    def from_fit(self, fit: LmmFit) -> np.ndarray:
        cov = np.asarray(fit.client_covariance)
        sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
        values = {"client_intercept_sd": sd[0], "residual_sd": math.sqrt(fit.residual_variance)}
        if cov.shape[0] == 2:
            values["client_slope_sd"] = sd[1]
            values["client_intercept_slope_correlation"] = (
                cov[0, 1] / (sd[0] * sd[1]) if sd[0] > 0 and sd[1] > 0 else math.nan
            )
        if fit.therapist_variance is not None:
            values["therapist_intercept_sd"] = math.sqrt(max(fit.therapist_variance, 0.0))
        return np.array([values[n] for n in self.names])

    def deviance(self, p: np.ndarray) -> float:
        values = dict(zip(self.names, p, strict=True))
        s0 = values["client_intercept_sd"]
        s1 = values.get("client_slope_sd", 0.0)
        rho = values.get("client_intercept_slope_correlation", 0.0)
        sigma = values["residual_sd"]
        if not sigma > 0:
            return math.inf
        q = self.model.q
        cov = np.array([[s0 * s0, rho * s0 * s1], [rho * s0 * s1, s1 * s1]])[:q, :q]
        therapist = values.get("therapist_intercept_sd", 0.0) ** 2
        theta = self.model.theta_from_covariance(cov, therapist, sigma * sigma)
        return _deviance_with_sigma(self.model, theta, sigma)


def profile_intervals(design: _Design, fit: LmmFit) -> pd.DataFrame:
    """95% profile-likelihood intervals of the variance parameters (module docstring), beside
    the estimates of `fit` (REML or ML as fitted), as a tidy table (`VARIANCE_COLUMNS`)."""
    ml = fit
    if fit.reml:
        ml = fit_lmm(
            design.y,
            design.X,
            design.client,
            time=design.time,
            therapist=design.therapist,
            client_effects=design.client_effects,
            reml=False,
            start=fit.theta,
        )
    scale = _SdScale(_model(design, reml=False))
    profile = _Profile(scale, scale.from_fit(ml))
    reported = scale.from_fit(fit)
    rows = []
    for k, name in enumerate(scale.names):
        group = name.split("_")[0]
        row = {"group": group, "term": name, "estimate": reported[k]}
        low, high, method = profile.interval(k)
        if not ml.converged:
            low, high, method = math.nan, math.nan, "not computed: the ML refit did not converge"
        rows.append({**row, "ci_low": low, "ci_high": high, "method": method})
    return pd.DataFrame(rows, columns=VARIANCE_COLUMNS)


def wald_intervals(
    model: ProfiledDeviance, fit: LmmFit, phi: np.ndarray, covariance: np.ndarray
) -> pd.DataFrame:
    """95% Wald intervals of the variance parameters on the SD/correlation scale of
    `profile_intervals`: the asymptotic covariance of phi = (theta, sigma)
    (`variance_parameter_covariance`) carried to that scale by the delta method, the limits
    estimate -+ z SE cut at the parameter's bounds. For a large study, where the deviance is
    close to quadratic; an estimate on its bound (an SD of 0, a correlation of -+1) gets no
    interval, as a Wald interval does not apply there."""
    scale = _SdScale(model)
    estimate = _sd_scale_from_phi(model, scale, phi)
    steps = JACOBIAN_STEP * np.maximum(np.abs(phi), 0.1)
    jacobian = np.empty((len(estimate), len(phi)))
    for k in range(len(phi)):
        e = np.zeros_like(phi)
        e[k] = steps[k]
        upper = _sd_scale_from_phi(model, scale, phi + e)
        lower = _sd_scale_from_phi(model, scale, phi - e)
        jacobian[:, k] = (upper - lower) / (2 * steps[k])
    se = np.sqrt(np.maximum(np.diag(jacobian @ covariance @ jacobian.T), 0.0))
    rows = []
    for k, name in enumerate(scale.names):
        low, high, method = estimate[k] - _Z * se[k], estimate[k] + _Z * se[k], WALD_METHOD
        on_bound = not scale.lower[k] < estimate[k] < scale.upper[k]
        if on_bound or not (np.isfinite(se[k]) and se[k] > 0):
            low, high = math.nan, math.nan
            method = "not computed: the estimate is on its bound, where a Wald interval fails"
        rows.append(
            {
                "group": name.split("_")[0],
                "term": name,
                "estimate": estimate[k],
                "ci_low": max(low, scale.lower[k]),
                "ci_high": min(high, scale.upper[k]),
                "method": method,
            }
        )
    return pd.DataFrame(rows, columns=VARIANCE_COLUMNS)


def _sd_scale_from_phi(model: ProfiledDeviance, scale: _SdScale, phi: np.ndarray) -> np.ndarray:
    """The SD/correlation-scale parameters (`_SdScale`) at phi = (theta, sigma)."""
    sigma2 = phi[-1] ** 2
    T, tau = model.factor(phi[:-1])
    unscale = np.diag([1.0, 1.0 / model.time_sd][: model.q])
    client = unscale @ (sigma2 * T @ T.T) @ unscale
    sd = np.sqrt(np.maximum(np.diag(client), 0.0))
    values = {"client_intercept_sd": sd[0], "residual_sd": abs(phi[-1])}
    if model.q == 2:
        values["client_slope_sd"] = sd[1]
        product = sd[0] * sd[1]
        values["client_intercept_slope_correlation"] = (
            client[0, 1] / product if product > 0 else math.nan
        )
    if model.therapist_labels is not None:
        values["therapist_intercept_sd"] = math.sqrt(sigma2) * abs(tau)
    return np.array([values[n] for n in scale.names])


class _Profile:
    """The ML deviance profiled over all but one parameter on the SD scale, and the limits
    where its signed square root reaches -+z."""

    def __init__(self, scale: _SdScale, optimum: np.ndarray) -> None:
        self.scale = scale
        self.optimum = optimum
        self.base = scale.deviance(optimum)
        self.step = self._approximate_se()
        self._starts: dict[tuple[int, float], np.ndarray] = {}

    def _approximate_se(self) -> np.ndarray:
        """Wald-type SEs from the deviance's curvature (where it is positive), else a tenth of
        the parameter's size: used only to bracket the limits and scale the optimisation."""
        p = self.optimum
        fallback = 0.1 * np.maximum(np.abs(p), 0.1 * p[-1])
        fallback[np.isnan(p)] = 0.1
        inside = np.isfinite(p) & (p - 1e-3 * fallback > self.scale.lower)
        inside &= p + 1e-3 * fallback < self.scale.upper
        index = np.flatnonzero(inside)
        se = fallback.copy()
        if len(index):
            steps = 1e-3 * fallback[index]

            def sub(x: np.ndarray) -> float:
                full = p.copy()
                full[index] = x
                return self.scale.deviance(full)

            H = _central_hessian(sub, p[index], steps)
            try:
                variance = np.diag(2 * np.linalg.inv(H))
                good = np.isfinite(variance) & (variance > 0)
                se[index[good]] = np.sqrt(variance[good])
            except np.linalg.LinAlgError:
                pass
        return se

    def zeta(self, k: int, value: float) -> float:
        """Signed square root of the profiled deviance increase with parameter k at value."""
        free = np.array([j for j in range(len(self.optimum)) if j != k])
        previous = [(abs(v - value), x) for (j, v), x in self._starts.items() if j == k]
        start = min(previous, key=lambda item: item[0])[1] if previous else self.optimum[free]
        start = np.where(np.isnan(start), 0.0, start)
        unit = self.step[free]

        def objective(u: np.ndarray) -> float:
            p = self.optimum.copy()
            p[k], p[free] = value, u * unit
            return self.scale.deviance(p)

        def gradient(u: np.ndarray) -> np.ndarray:
            g = np.empty_like(u)
            for i in range(len(u)):
                e = np.zeros_like(u)
                e[i] = PROFILE_GRADIENT_STEP
                g[i] = (objective(u + e) - objective(u - e)) / (2 * PROFILE_GRADIENT_STEP)
            return g

        bounds = list(
            zip(self.scale.lower[free] / unit, self.scale.upper[free] / unit, strict=True)
        )
        bounds = [(lo, None if not np.isfinite(hi) else hi) for lo, hi in bounds]

        def minimise(u0: np.ndarray) -> tuple[np.ndarray, float]:
            result = optimize.minimize(
                objective,
                u0,
                jac=gradient,
                method="L-BFGS-B",
                bounds=bounds,
                options={"ftol": 1e-11, "gtol": 1e-7, "maxiter": 500},
            )
            return np.asarray(result.x), float(result.fun)

        best_u, best_f = minimise(start / unit)
        # The deviance is even in an SD at zero, so its derivative vanishes there whether or
        # not zero is the minimum: restart off each SD that ends at zero, keep the lowest.
        sd_free = self.scale.lower[free] == 0.0
        sigma = self.optimum[-1]
        for i in np.flatnonzero(sd_free & (best_u * unit <= 1e-8)):
            probes = []
            for size in PROFILE_BOUND_PROBES:
                u0 = best_u.copy()
                u0[i] = size * sigma / unit[i]
                probes.append((objective(u0), u0))
            f0, u0 = min(probes, key=lambda probe: probe[0])
            if f0 < best_f:
                u, f = minimise(u0)
                if f < best_f:
                    best_u, best_f = u, f
        self._starts[(k, value)] = best_u * unit
        increase = max(best_f - self.base, 0.0)
        return math.copysign(math.sqrt(increase), value - self.optimum[k])

    def interval(self, k: int) -> tuple[float, float, str]:
        """The lower and upper limit for parameter k and the method that gave them."""
        if np.isnan(self.optimum[k]):
            return math.nan, math.nan, "not computed: a client SD of zero leaves it undefined"
        try:
            low, high = self._limit(k, -1), self._limit(k, +1)
        except ValueError as exc:  # brentq: zeta does not change sign within the bracket
            return math.nan, math.nan, f"not computed: the profile is not monotone ({exc})"
        if not (math.isfinite(low) and math.isfinite(high)):
            return low, high, "not computed: the profile did not reach the cut-off"
        return low, high, PROFILE_METHOD

    def _limit(self, k: int, side: int) -> float:
        """Where zeta reaches side * z; the bound when the deviance stays below it there."""
        estimate, target = float(self.optimum[k]), side * _Z
        bound = float(self.scale.lower[k] if side < 0 else self.scale.upper[k])
        if self.scale.names[k] == "residual_sd" and side < 0:
            bound = 1e-3 * estimate
        if estimate == bound:
            return bound
        # Step out until zeta passes the target, extrapolating zeta linearly (it is close to
        # linear in the parameter near the estimate), then Brent's method inside the bracket.
        known = {estimate: 0.0}
        inner, distance = estimate, _Z * float(self.step[k])
        for _ in range(40):
            outer = estimate + side * distance
            at_bound = (outer <= bound) if side < 0 else (outer >= bound)
            if at_bound:
                outer = bound
            known[outer] = self.zeta(k, outer)
            if side * known[outer] >= _Z:
                break
            if at_bound:
                return bound
            reached = abs(known[outer])
            growth = _Z / reached * 1.2 if reached > 0 else 8.0
            inner, distance = outer, distance * min(max(growth, 1.5), 8.0)
        else:
            return math.nan

        def distance_to_target(v: float) -> float:
            if v not in known:
                known[v] = self.zeta(k, v)
            return known[v] - target

        tolerance = PROFILE_TOLERANCE * float(self.step[k])
        return float(
            optimize.brentq(
                distance_to_target,
                min(inner, outer),
                max(inner, outer),
                xtol=tolerance,
                rtol=1e-10,
            )
        )
