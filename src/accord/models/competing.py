"""Cumulative incidence of dropout with completion as a competing event (analyses.md).

A client leaves treatment in one of two ways: dropout or completion (treatment ended otherwise:
completed, referred on, other). The Kaplan-Meier "share still in treatment" censors completers
as if they could still drop out later, so one minus it overstates dropout whenever many clients
complete. The cumulative incidence function (CIF) of dropout, F(t) = P(dropout by t), treats
completion as competing (Aalen & Johansen 1978; Putter, Fiocco & Geskus 2007):

    F(t) = sum over event times t_j <= t of S(t_j-) d1_j / n_j,

with n_j clients at risk at t_j, d1_j dropouts there and S the all-cause Kaplan-Meier
survival (any end of treatment counts as an event). Its variance is the delta-method estimate
of R's ``cmprsk::cuminc`` (Gray 1988; Marubini & Valsecchi 1995, sec. 10.2): at every event
time, with d2_j completions, a tie correction (1 - (d - 1)/(n_j - 1)) for d > 1 events of a
cause, and S(t_j) = S(t_j-) (n_j - d_j)/n_j,

    V(t) = v1 + F(t)^2 v3 - 2 F(t) v2,

where v1, v2, v3 sum, over t_j <= t, the terms w a^2, w a b, w b^2 with w = S(t_j-)^2 c d / n_j^2
for each cause's count d; for dropouts a = 1 + F(t_j)/S(t_j), b = 1/S(t_j); for completions
a = F(t_j)/S(t_j), b = 1/S(t_j). Pointwise 95% CIs use the log(-log) transform
F^exp(+-1.96 SE / (F log F)) (Choudhury 2002), which keeps them inside (0, 1).

Time is sessions attended (`sessions_to_dropout`); a client still in treatment (or whose end
is not recorded) is censored at their last attended session. Clients of each group (trial arm,
or tertile of the exposure) get their own curve; a group with fewer than ``min_cell`` clients
is left out. The log-rank test of equal cause-specific hazards of dropout (completers censored)
is reported beside the curves: it compares hazards, not cumulative incidences.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.duration.survfunc import survdiff

from accord.core.errors import ConfigError, NotEstimableError
from accord.models.dropout import client_level_column, grouping
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import ModelResult, coefficient_frame, model_diagnostics

_Z = float(stats.norm.ppf(0.975))
#: The event-type column of the client measures and its values (`accord.measures.engagement`).
END_EVENT = "end_event"
DROPOUT, COMPLETION, CENSORED = "dropout", "completion", "censored"


def aalen_johansen(time: np.ndarray, cause: np.ndarray, of_interest: int = 1) -> pd.DataFrame:
    """Cumulative incidence of cause `of_interest` (cause 0 = censored, any other = an event
    of that cause), with its variance (see the module docstring).

    One row per distinct time at which a cause-`of_interest` event occurs, plus time 0:
    columns time, cif, variance, n_at_risk, n_events (of the cause), n_competing.
    """
    time = np.asarray(time, dtype=float)
    cause = np.asarray(cause, dtype=np.int64)
    n = len(time)
    rows = [
        {"time": 0.0, "cif": 0.0, "variance": 0.0, "n_at_risk": n, "n_events": 0, "n_competing": 0}
    ]
    surv, cif, v1, v2, v3 = 1.0, 0.0, 0.0, 0.0, 0.0
    for t in np.unique(time):
        at = time == t
        at_risk = int((time >= t).sum())
        d1 = int((at & (cause == of_interest)).sum())
        d2 = int((at & (cause != of_interest) & (cause != 0)).sum())
        if d1 + d2 == 0:
            continue
        after = surv * (at_risk - d1 - d2) / at_risk
        cif += surv * d1 / at_risk
        inv = 1.0 / after if after > 0 else 0.0
        # Completions add to the variance only while someone is left at risk.
        terms = ((d2 if after > 0 else 0, cif * inv), (d1, 1.0 + cif * inv))
        for count, a in terms:
            if count == 0:
                continue
            tie = 1.0 - (count - 1.0) / (at_risk - 1.0) if count > 1 else 1.0
            w = surv * surv * tie * count / (at_risk * at_risk)
            v1 += a * a * w
            v2 += inv * a * w
            v3 += inv * inv * w
        if d1:
            rows.append(
                {
                    "time": float(t),
                    "cif": cif,
                    "variance": v1 + cif * cif * v3 - 2.0 * cif * v2,
                    "n_at_risk": at_risk,
                    "n_events": d1,
                    "n_competing": d2,
                }
            )
        surv = after
    return pd.DataFrame(rows)


def cif_interval(cif: float, variance: float) -> tuple[float, float]:
    """Pointwise 95% CI of a cumulative incidence on the log(-log) scale (NaN at 0 or 1)."""
    if not (0.0 < cif < 1.0) or not math.isfinite(variance) or variance <= 0:
        return math.nan, math.nan
    half = _Z * math.sqrt(variance) / (cif * math.log(cif))
    return cif ** math.exp(-half), cif ** math.exp(half)


def end_event_codes(values: pd.Series, what: str) -> pd.Series:
    """`end_event` labels as cause codes: 1 dropout, 2 completion, 0 censored (missing stays
    missing); any other label is a ConfigError."""
    labels = values.astype("string")
    unknown = sorted(set(labels.dropna()) - {DROPOUT, COMPLETION, CENSORED})
    if unknown:
        raise ConfigError(
            f"{what}: {END_EVENT} value {unknown[0]!r} is not one of "
            f"{[DROPOUT, COMPLETION, CENSORED]}"
        )
    codes = labels.map({DROPOUT: 1, COMPLETION: 2, CENSORED: 0}, na_action="ignore")
    return pd.to_numeric(codes, errors="coerce").astype(float)


def fit_cumulative_incidence(
    client_measures: pd.DataFrame,
    *,
    group: str = "arm",
    time: str = "sessions_to_dropout",
    exposure: str = "joint_goal_share",
    model_id: str = "dropout_cif",
    min_cell: int = 11,
    at_times: Sequence[float] | None = None,
) -> ModelResult:
    """Cumulative incidence of dropout, completion competing, by `group` (a client column or
    ``"exposure_tertile"``), and the log-rank test of equal cause-specific hazards.

    Rows, each naming its grouping in `exposure` (the grouping column, or the exposure whose
    tertiles form the groups): ``cif_dropout@<t>:<group>`` (the CIF at each time in `at_times`,
    default the last time at which every group has at least `min_cell` clients at risk, with its
    95% CI) and ``logrank_cause_specific`` (chi-square as estimate, its p-value). Diagnostics
    extras: the curves ({group: step points}), group sizes and the grouping.
    """
    what = f"cumulative incidence model {model_id!r}"
    warn: list[str] = []
    data, keep, group_info = _competing_events(
        client_measures, group, time, exposure, what=what, min_cell=min_cell, warn=warn
    )
    named = exposure if group == "exposure_tertile" else group
    parts = {name: data.loc[data["group"] == name] for name in keep}
    curves = {
        name: aalen_johansen(part["time"].to_numpy(), part["cause"].to_numpy())
        for name, part in parts.items()
    }
    if at_times is None:
        last = min(_last_time_with(part["time"], min_cell) for part in parts.values())
        at_times = [last] if math.isfinite(last) else []

    common = {"model": model_id, "outcome": "dropout", "exposure": named, "converged": True}
    logrank = _cause_specific_logrank(data, len(keep), common, warn)
    rows = [logrank, *_incidence_rows(curves, parts, at_times, common)]
    diagnostics = model_diagnostics(
        model_id=model_id,
        outcome="dropout",
        exposure=named,
        formula=f"cuminc({time}, {END_EVENT}) ~ {group}",
        method=(
            "Aalen-Johansen cumulative incidence of dropout, completion competing; "
            "log-rank test of cause-specific hazards"
        ),
        optimizer="none",
        converged=True,
        warn=warn,
        log_likelihood=math.nan,
        n_obs=len(data),
        n_clients=len(data),
        n_therapists=None,
        extras={
            **group_info,
            "time": time,
            "event": END_EVENT,
            "at_times": [float(t) for t in at_times],
            "logrank_df": len(keep) - 1,
            "group_sizes": {name: len(part) for name, part in parts.items()},
            "n_dropout": int((data["cause"] == 1).sum()),
            "n_completion": int((data["cause"] == 2).sum()),
            "n_censored": int((data["cause"] == 0).sum()),
            "curves": {name: curve.to_dict("records") for name, curve in curves.items()},
            "curve_ci": "pointwise 95%, log(-log) scale, cmprsk delta-method variance",
        },
    )
    return ModelResult(
        model=model_id,
        outcome="dropout",
        exposure=named,
        coefficients=coefficient_frame(rows),
        diagnostics=diagnostics,
    )


def _competing_events(
    client_measures: pd.DataFrame,
    group: str,
    time: str,
    exposure: str,
    *,
    what: str,
    min_cell: int,
    warn: list[str],
) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """Each client's group, time and cause (1 dropout, 2 completion, 0 censored), in groups of
    at least `min_cell` clients; the names of those groups in order; and how the groups were
    formed. Rows with a missing value and smaller groups are left out with a warning. Raises
    NotEstimableError when no group is left.
    """
    labels, group_info = grouping(client_measures, group, exposure, what)
    durations = pd.to_numeric(
        client_level_column(client_measures, time, what), errors="coerce"
    ).astype(float)
    causes = end_event_codes(client_level_column(client_measures, END_EVENT, what), what)
    frame = pd.DataFrame({"group": labels, "time": durations, "cause": causes})
    complete = frame.notna().all(axis=1)
    data = frame.loc[complete]
    excluded = int((~complete).sum())
    if excluded:
        warn.append(f"{excluded} row(s) left out for a missing group, time or end event")
    sizes = data["group"].value_counts().sort_index()
    keep = [str(g) for g, n in sizes.items() if n >= min_cell]
    if len(keep) < len(sizes):
        warn.append(
            f"{len(sizes) - len(keep)} group(s) with fewer than {min_cell} clients left out"
        )
    if not keep:
        raise NotEstimableError(f"{what}: no group has at least {min_cell} clients")
    return data.loc[data["group"].isin(keep)], keep, group_info


def _incidence_rows(
    curves: dict[str, pd.DataFrame],
    parts: dict[str, pd.DataFrame],
    at_times: Sequence[float],
    common: dict[str, Any],
) -> list[dict[str, Any]]:
    """One row per group and time: the cumulative incidence of dropout then, with its
    log(-log) 95% CI."""
    rows: list[dict[str, Any]] = []
    for name, curve in curves.items():
        n_group = len(parts[name])
        for t in at_times:
            step = curve.loc[curve["time"] <= t].iloc[-1]
            low, high = cif_interval(float(step["cif"]), float(step["variance"]))
            rows.append(
                {
                    **common,
                    "term": f"cif_dropout@{float(t):g}:{name}",
                    "estimate": float(step["cif"]),
                    "std_error": math.sqrt(max(float(step["variance"]), 0.0)),
                    "ci_low": low,
                    "ci_high": high,
                    "n_obs": n_group,
                    "n_clients": n_group,
                }
            )
    return rows


def _cause_specific_logrank(
    data: pd.DataFrame, n_groups: int, common: dict[str, Any], warn: list[str]
) -> dict[str, Any]:
    """The row of the log-rank test of equal cause-specific hazards of dropout across the
    groups (completers censored): its chi-square and p-value, NaN with one group or no
    variance."""
    chi2 = p_value = math.nan
    if n_groups >= 2:
        try:
            chi2, p_value = survdiff(
                data["time"].to_numpy(),
                (data["cause"] == 1).to_numpy(dtype=float),
                data["group"].to_numpy(),
            )
        except np.linalg.LinAlgError:
            # Every dropout at one and the same time: the test has no variance.
            warn.append("no log-rank test: the groups' dropout times have no variance")
    return {
        **common,
        "term": "logrank_cause_specific",
        "estimate": float(chi2),
        "p_value": float(p_value),
        "n_obs": len(data),
        "n_clients": len(data),
    }


def _last_time_with(times: pd.Series, min_cell: int) -> float:
    """The last time at which at least `min_cell` of `times` are at risk (>= it)."""
    values = np.sort(times.to_numpy(dtype=float))
    if len(values) < min_cell:
        return math.nan
    return float(values[len(values) - min_cell])


def fit_cumulative_incidence_spec(
    panel: pd.DataFrame, client_measures: pd.DataFrame, spec: ModelSpec, context: ModelContext
) -> ModelResult:
    """`fit_cumulative_incidence` for a model declared in config; options ``group`` (default
    arm, or exposure_tertile), ``time`` and ``at_times``; min_cell from the study."""
    del panel
    at_times = spec.options.get("at_times")
    return fit_cumulative_incidence(
        client_measures,
        group=spec.options.get("group", "arm"),
        time=spec.options.get("time", "sessions_to_dropout"),
        exposure=spec.exposure,
        model_id=spec.id,
        min_cell=context.min_cell,
        at_times=None if at_times is None else [float(t) for t in at_times],
    )
