"""Not on track: do regular check-ins catch clients going off track? (analyses.md)

Expected-recovery curves. Clients are put in intake severity bands (the instrument's published
bands, adjacent bands merged until each holds at least ``min_band_clients`` clients). Within a
band the expected score at session s is a + b log(1 + s) + c intake, fitted by OLS on the
assessments after intake. The curves are cross-fitted: clients are split into K folds (a seeded
shuffle), and a client's expected scores come from the curves fitted on the other folds only,
so no client's own data enter the curve they are judged against. The tolerance band is the
central ``band`` (default 80 %) range of the training residuals in the band (their empirical
quantiles, no normality assumed); a client is not on track at a session where the observed
score lies beyond the band's unfavourable limit (above it where higher is worse).

A published curve may be given instead (option ``curve``: its ``source`` and, per severity
band, ``intercept``, ``log_session`` and ``intake`` of the same form and the ``lower`` and
``upper`` tolerance limits in score points around it); the study's own bands are then not
merged, and clients of a band the curve does not give are not judged.

Reported:

* the share of clients ever not on track, and of assessments not on track, by group (trial arm
  or exposure tertile; groups under ``min_cell`` clients withheld): ``extras["rates"]``;
* for assessments not on track, whether a goal review at the next attended session is
  associated with being back on track at the first assessment after it: a GEE (binomial,
  exchangeable, clustered by client) with term ``back_on_track:goal_review``;
* among clients not on track at some point and clinical at the first assessment, whether a
  goal review at the first attended session after the first flag is associated with recovery
  (logistic regression adjusted for the intake score, term ``recovery:reviewed_after_flag``);
* how the flags relate to reliable deterioration by the last assessment: the share of
  deteriorated clients flagged before their last assessment (sensitivity) and the share of
  flagged clients who did not deteriorate (``extras["signal"]``). Published figures for the
  OQ-45 signal system come from a different instrument and setting and are not reproduced here.

Role for multiplicity: secondary by default; its exposure effect is the check-in term
``back_on_track:goal_review`` (the recovery term is reported beside it, outside the family).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from accord.core.errors import AccordError, ConfigError, NotEstimableError
from accord.models.gee import fit_exchangeable_logistic
from accord.models.spec import ModelContext, ModelSpec
from accord.models.tidy import (
    ModelResult,
    capture_fit,
    coefficient_frame,
    model_diagnostics,
    wald_from_variance,
)


def severity_bands(
    intake: pd.Series, limits: Sequence[tuple[str, float, float]], min_band_clients: int = 30
) -> pd.Series:
    """Each client's intake band label (e.g. ``moderate``); while a band holds fewer than
    `min_band_clients` clients, the first such band is merged with the next one (the last
    with the one before), and the merged band's label joins theirs (``minimal-mild``)."""
    edges = [float(low) for _, low, _ in limits][1:]
    index = np.searchsorted(edges, intake.to_numpy(float), side="right")
    known = intake.notna().to_numpy()
    groups = [[i] for i in range(len(limits))]
    while len(groups) > 1:
        counts = [int(np.isin(index[known], g).sum()) for g in groups]
        small = [j for j, count in enumerate(counts) if count < min_band_clients]
        if not small:
            break
        j = small[0]
        other = j + 1 if j + 1 < len(groups) else j - 1
        low, high = sorted((j, other))
        groups[low : high + 1] = [groups[low] + groups[high]]
    label_of = {i: "-".join(str(limits[m][0]) for m in g) for g in groups for i in g}
    out = pd.Series([label_of[int(i)] for i in index], index=intake.index, dtype=object)
    return out.where(intake.notna())


def client_folds(client_ids: Sequence[str], k: int, seed: int) -> dict[str, int]:
    """Fold 0..k-1 of each client: a seeded shuffle of the sorted ids, dealt round-robin."""
    ids = sorted(set(map(str, client_ids)))
    order = np.random.default_rng(seed).permutation(len(ids))
    return {ids[j]: int(rank % k) for rank, j in enumerate(order)}


def _curve_design(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [np.ones(len(frame)), np.log1p(frame["session_number"]), frame["intake"]]
    )


def cross_fitted_expectations(
    assessments: pd.DataFrame, *, k: int = 5, seed: int = 2026, band: float = 0.8
) -> pd.DataFrame:
    """Expected score and tolerance limits for each post-intake assessment.

    `assessments` has client_id, session_number (> 0), score, intake and severity (band label).
    Returns it with fold, expected, lower and upper: the curve of the client's severity band
    fitted on the other folds' clients only, and its central `band` residual range."""
    folds = client_folds(assessments["client_id"], k, seed)
    out = assessments.copy()
    out["fold"] = out["client_id"].map(folds)
    for column in ("expected", "lower", "upper"):
        out[column] = np.nan
    tail = (1 - band) / 2
    for (fold, severity), held in out.groupby(["fold", "severity"], sort=True):
        train = out.loc[(out["fold"] != fold) & (out["severity"] == severity)]
        if train["client_id"].nunique() < 10:
            continue
        coef, *_ = np.linalg.lstsq(_curve_design(train), train["score"].to_numpy(), rcond=None)
        residuals = train["score"].to_numpy() - _curve_design(train) @ coef
        low, high = np.quantile(residuals, [tail, 1 - tail])
        expected = _curve_design(held) @ coef
        out.loc[held.index, "expected"] = expected
        out.loc[held.index, "lower"] = expected + low
        out.loc[held.index, "upper"] = expected + high
    return out


def flag_not_on_track(expectations: pd.DataFrame, higher_is: str = "worse") -> pd.Series:
    """True where the score lies beyond the unfavourable tolerance limit; missing where the
    assessment has no expected score."""
    if higher_is == "worse":
        flag = expectations["score"] > expectations["upper"]
    else:
        flag = expectations["score"] < expectations["lower"]
    return flag.astype("boolean").where(expectations["expected"].notna())


def check_in_events(flags: pd.DataFrame, sessions: pd.DataFrame) -> pd.DataFrame:
    """For each assessment not on track at session s: goal_review at the next attended
    session s' > s, and back_on_track at the first judged assessment after s'.

    `flags` has client_id, session_number, not_on_track; `sessions` client_id,
    session_number, attended and goal_review. Events without a next attended session, a
    recorded review or a later judged assessment are left out."""
    flagged = flags.loc[flags["not_on_track"].fillna(False).astype(bool)]
    flagged = flagged[["client_id", "session_number"]].astype({"session_number": float})
    flagged = flagged.sort_values("session_number")
    attended = sessions.loc[sessions["attended"].fillna(False).astype(bool)]
    attended = attended[["client_id", "session_number", "goal_review"]].rename(
        columns={"session_number": "review_session"}
    )
    attended = attended.astype({"client_id": str, "review_session": float})
    events = pd.merge_asof(
        flagged,
        attended.sort_values("review_session"),
        left_on="session_number",
        right_on="review_session",
        by="client_id",
        direction="forward",
        allow_exact_matches=False,
    ).dropna(subset=["review_session", "goal_review"])
    judged = flags.loc[flags["not_on_track"].notna(), ["client_id", "session_number"]]
    judged = judged.assign(back_on_track=~flags["not_on_track"].dropna().astype(bool))
    judged = judged.rename(columns={"session_number": "next_assessment"})
    judged = judged.astype({"next_assessment": float})
    events = pd.merge_asof(
        events.sort_values("review_session"),
        judged.sort_values("next_assessment"),
        left_on="review_session",
        right_on="next_assessment",
        by="client_id",
        direction="forward",
        allow_exact_matches=False,
    ).dropna(subset=["next_assessment"])
    events["goal_review"] = events["goal_review"].astype(bool).astype(float)
    events["back_on_track"] = events["back_on_track"].astype(bool).astype(float)
    return events.sort_values(["client_id", "session_number"]).reset_index(drop=True)


def fit_check_in(events: pd.DataFrame) -> tuple[dict[str, float] | None, dict[str, Any]]:
    """GEE (binomial, exchangeable, by client) of back_on_track on goal_review: the Wald row
    of goal_review (log-odds) and notes; None when it cannot be fitted."""
    notes: dict[str, Any] = {"n_events": len(events), "warnings": []}
    if len(events) < 20 or events["goal_review"].nunique() < 2:
        notes["warnings"].append("too few not-on-track events with and without a review")
        return None, notes
    if events["back_on_track"].nunique() < 2:
        notes["warnings"].append("back on track does not vary among the events")
        return None, notes
    x = events[["goal_review"]].astype(float)
    x.insert(0, "const", 1.0)
    groups = pd.factorize(events["client_id"])[0]
    fitted, warn, error = capture_fit(
        lambda: fit_exchangeable_logistic(events["back_on_track"], x, groups, maxiter=100)
    )
    notes["warnings"] += warn
    if fitted is None:
        notes["warnings"].append(f"check-in model failed: {error}")
        return None, notes
    cov = fitted.cov_params()
    notes["n_clients"] = int(events["client_id"].nunique())
    notes["back_on_track_share"] = {
        "with_review": float(events.loc[events["goal_review"] == 1, "back_on_track"].mean()),
        "without_review": float(events.loc[events["goal_review"] == 0, "back_on_track"].mean()),
    }
    return wald_from_variance(
        float(fitted.params["goal_review"]), float(cov.loc["goal_review", "goal_review"])
    ), notes


def _withheld(n: int, min_cell: int) -> bool:
    return 0 < n < min_cell


def rates_by_group(flags: pd.DataFrame, labels: pd.Series, min_cell: int) -> list[dict[str, Any]]:
    """Share of clients ever not on track and of assessments not on track, per group label
    (`labels`: client_id -> group). Groups with fewer than `min_cell` judged clients are left
    out, and so is a count of flagged clients below `min_cell` (but above 0)."""
    judged = flags.loc[flags["not_on_track"].notna()].copy()
    judged["flag"] = judged["not_on_track"].astype(bool)
    judged["group"] = judged["client_id"].map(labels)
    rows = []
    for group, part in judged.dropna(subset=["group"]).groupby("group", sort=True):
        per_client = part.groupby("client_id")["flag"].any()
        n_clients, n_flagged = len(per_client), int(per_client.sum())
        if n_clients < min_cell:
            continue
        hidden = _withheld(n_flagged, min_cell)
        rows.append(
            {
                "group": str(group),
                "n_clients": n_clients,
                "n_not_on_track": None if hidden else n_flagged,
                "share_clients": None if hidden else n_flagged / n_clients,
                "n_assessments": len(part),
                "share_assessments": None if hidden else float(part["flag"].mean()),
            }
        )
    return rows


def signal_accuracy(flags: pd.DataFrame, deteriorated: pd.Series, min_cell: int) -> dict[str, Any]:
    """Sensitivity (deteriorated clients flagged before their last judged assessment) and the
    share of flagged clients who did not reliably deteriorate (`deteriorated`: client_id ->
    bool). Counts under `min_cell` are withheld."""
    judged = flags.loc[flags["not_on_track"].notna()]
    last = judged.groupby("client_id")["session_number"].transform("max")
    early = judged.loc[judged["session_number"] < last]
    flagged_early = early.groupby("client_id")["not_on_track"].any().astype(bool)
    ever = judged.groupby("client_id")["not_on_track"].any().astype(bool)
    status = deteriorated.reindex(ever.index).astype("boolean")
    known = status.notna()
    n_det = int(status[known].sum())
    n_det_flagged = int(
        (flagged_early.reindex(ever.index, fill_value=False) & status.fillna(False))[known].sum()
    )
    n_flagged = int(ever[known].sum())
    n_false = int((ever & ~status.fillna(True))[known].sum())
    out: dict[str, Any] = {"n_clients": int(known.sum())}
    if not any(_withheld(n, min_cell) for n in (n_det, n_det_flagged, n_flagged, n_false)):
        out |= {
            "n_deteriorated": n_det,
            "n_deteriorated_flagged_early": n_det_flagged,
            "sensitivity": n_det_flagged / n_det if n_det else None,
            "n_flagged": n_flagged,
            "n_false_alarms": n_false,
            "false_alarm_share": n_false / n_flagged if n_flagged else None,
        }
    else:
        out["withheld"] = True
    return out


def reviewed_after_first_flag(flags: pd.DataFrame, sessions: pd.DataFrame) -> pd.Series:
    """For each client ever not on track: whether the first attended session after the first
    flag had a goal review (missing where it recorded none, or there was no such session)."""
    flagged = flags.loc[flags["not_on_track"].fillna(False).astype(bool)]
    first = flagged.groupby("client_id")["session_number"].min()
    attended = sessions.loc[sessions["attended"].fillna(False).astype(bool)]
    attended = attended.loc[attended["client_id"].isin(first.index)]
    after = attended.loc[attended["session_number"] > attended["client_id"].map(first)]
    after = after.sort_values(["client_id", "session_number"], kind="stable")
    # The first session's own record, even where it is missing (groupby.first would skip it).
    review = after.drop_duplicates("client_id").set_index("client_id")["goal_review"]
    return review.astype("boolean").astype("Float64").astype(float).reindex(first.index)


def fit_recovery_after_flag(
    flags: pd.DataFrame,
    sessions: pd.DataFrame,
    client_measures: pd.DataFrame,
    outcome: str,
    model_id: str = "not_on_track",
) -> tuple[dict[str, Any] | None, str | None]:
    """Logistic regression, among clients ever not on track and clinical at the first
    assessment, of recovery (category recovered) on a goal review at the first attended
    session after the first flag, adjusted for the intake score: the row of the review term,
    or None and the reason."""
    from accord.models.dropout import fit_logistic

    needed = [f"{outcome}_category", f"{outcome}_clinical_first", f"{outcome}_first"]
    if any(column not in client_measures.columns for column in needed):
        return None, "no clinical change categories: the recovery model is not fitted"
    clients = client_measures.set_index(client_measures["client_id"].astype(str))
    frame = reviewed_after_first_flag(flags, sessions).rename("reviewed_after_flag").to_frame()
    frame = frame.join(clients[needed])
    frame = frame.loc[frame[needed[1]].astype("boolean").fillna(False).astype(bool)]
    frame["recovered"] = (frame[needed[0]].astype(str) == "recovered").astype(float)
    frame = frame.loc[frame[needed[0]].notna()].reset_index()
    try:
        result = fit_logistic(
            frame,
            outcome="recovered",
            exposure="reviewed_after_flag",
            covariates=[needed[2]],
            model_id=model_id,
            term_prefix="recovery:",
        )
    except AccordError as exc:
        return None, f"recovery model not fitted: {exc}"
    rows = result.coefficients
    row = rows.loc[rows["term"] == "recovery:reviewed_after_flag"].iloc[0].to_dict()
    notes = [f"recovery model: {w}" for w in result.diagnostics["warnings"]]
    return row, "; ".join(notes) or None


def band_trajectories(expectations: pd.DataFrame, min_cell: int) -> list[dict[str, Any]]:
    """Per intake band and session: the number of judged assessments, the mean observed and
    expected scores and the mean tolerance limits; cells of fewer than `min_cell` clients are
    left out, so the figure drawn from them shows no small group and no single client."""
    judged = expectations.loc[expectations["expected"].notna()]
    cells = judged.groupby(["severity", "session_number"], sort=True).agg(
        n=("client_id", "nunique"),
        observed=("score", "mean"),
        expected=("expected", "mean"),
        lower=("lower", "mean"),
        upper=("upper", "mean"),
    )
    cells = cells.loc[cells["n"] >= min_cell].reset_index()
    return [
        {
            "severity": str(row.severity),
            "session_number": int(row.session_number),
            "n": int(row.n),
            "observed": float(row.observed),
            "expected": float(row.expected),
            "lower": float(row.lower),
            "upper": float(row.upper),
        }
        for row in cells.itertuples(index=False)
    ]


def outcome_assessments(panel: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Post-intake assessments of `outcome` with the client's intake (first) score."""
    if outcome not in panel.columns:
        raise ConfigError(f"not on track: no column {outcome!r} in the session panel")
    rows = panel.loc[panel[outcome].notna(), ["client_id", "session_number", outcome]]
    rows = rows.rename(columns={outcome: "score"}).astype({"client_id": str, "score": float})
    rows = rows.sort_values(["client_id", "session_number"], kind="stable")
    first = rows.groupby("client_id")["session_number"].transform("min")
    intake = rows.loc[rows["session_number"] == first].set_index("client_id")["score"]
    later = rows.loc[rows["session_number"] > first].copy()
    later["intake"] = later["client_id"].map(intake)
    return later.reset_index(drop=True), intake


def fit_not_on_track(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    *,
    outcome: str = "phq9",
    sessions: pd.DataFrame | None = None,
    limits: Sequence[tuple[str, float, float]],
    higher_is: str = "worse",
    k: int = 5,
    seed: int = 2026,
    band: float = 0.8,
    min_band_clients: int = 30,
    group: str = "arm",
    exposure: str = "joint_goal_share",
    min_cell: int = 11,
    model_id: str = "not_on_track",
    curve: Mapping[str, Any] | None = None,
) -> ModelResult:
    """Cross-fitted expected-recovery curves (or the published `curve`, see
    `published_expectations`), not-on-track flags, rates by group, signal accuracy and the
    check-in model (module docstring). `sessions` (client_id, session_number, attended,
    goal_review) is needed for the check-in model only."""
    from accord.models.dropout import grouping

    what = f"not-on-track model {model_id!r}"
    if not 0 < band < 1 or k < 2:
        raise ConfigError(f"{what}: band must lie in (0, 1) and folds be at least 2")
    assessments, intake = outcome_assessments(panel, outcome)
    if intake.size < 2 * k:
        raise NotEstimableError(
            f"{what}: only {intake.size} client(s) with an intake score; at least {2 * k} needed"
        )
    warn: list[str] = []
    expectations, curve_info = _expectations(
        assessments,
        intake,
        limits,
        curve,
        k=k,
        seed=seed,
        band=band,
        min_band_clients=min_band_clients,
        warn=warn,
        what=what,
    )
    expectations["not_on_track"] = flag_not_on_track(expectations, higher_is)
    labels, group_info = grouping(client_measures, group, exposure, what)
    labels.index = client_measures["client_id"].astype(str)
    extras: dict[str, Any] = {
        **group_info,
        **curve_info,
        "severity_bands": sorted(set(assessments["severity"].dropna())),
        "rates": rates_by_group(expectations, labels, min_cell),
        "trajectories": band_trajectories(expectations, min_cell),
    }
    deterioration = f"{outcome}_reliable_deterioration"
    if deterioration in client_measures.columns:
        status = client_measures.set_index(labels.index)[deterioration]
        extras["signal"] = signal_accuracy(expectations, status, min_cell)
    rows = _check_in_results(
        expectations, sessions, client_measures, outcome, model_id, warn, extras
    )
    judged = expectations.loc[expectations["not_on_track"].notna()]
    diagnostics = model_diagnostics(
        model_id=model_id,
        outcome=outcome,
        exposure="goal_review",
        formula="back_on_track ~ goal_review (GEE by client), among assessments not on track",
        method=("cross-fitted expected-recovery curves" if curve is None else "published curve")
        + "; GEE binomial, exchangeable",
        optimizer="least squares; GEE iterations",
        converged=bool(rows),
        warn=warn,
        log_likelihood=math.nan,
        n_obs=len(judged),
        n_clients=int(judged["client_id"].nunique()),
        n_therapists=None,
        extras=extras,
    )
    return ModelResult(model_id, outcome, "goal_review", coefficient_frame(rows), diagnostics)


def _expectations(
    assessments: pd.DataFrame,
    intake: pd.Series,
    limits: Sequence[tuple[str, float, float]],
    curve: Mapping[str, Any] | None,
    *,
    k: int,
    seed: int,
    band: float,
    min_band_clients: int,
    warn: list[str],
    what: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Each assessment's severity band, expected score and limits, from the cross-fitted
    curves or the published `curve`, and how they were formed (for the extras)."""
    if curve is None:
        bands = severity_bands(intake, limits, min_band_clients)
        assessments["severity"] = assessments["client_id"].map(bands)
        expectations = cross_fitted_expectations(assessments, k=k, seed=seed, band=band)
        return expectations, {
            "band": band,
            "folds": k,
            "curve": "a + b log(1 + session) + c intake, per intake severity band",
        }
    assessments["severity"] = assessments["client_id"].map(severity_bands(intake, limits, 0))
    expectations = published_expectations(assessments, curve, what)
    uncovered = sorted(set(assessments["severity"].dropna()) - set(curve["bands"]))
    if uncovered:
        warn.append(f"the published curve has no band {uncovered}: those clients not judged")
    return expectations, {"curve": "published", "curve_source": str(curve["source"])}


def _check_in_results(
    expectations: pd.DataFrame,
    sessions: pd.DataFrame | None,
    client_measures: pd.DataFrame,
    outcome: str,
    model_id: str,
    warn: list[str],
    extras: dict[str, Any],
) -> list[dict[str, Any]]:
    """The check-in row and the recovery row (where each can be fitted); notes go into
    `warn` and ``extras["check_in"]``."""
    if sessions is None or "goal_review" not in sessions.columns:
        warn.append("no goal_review per session: the check-in model is not fitted")
        return []
    rows = []
    sessions = sessions.astype({"client_id": str})
    if "attended" not in sessions.columns:
        sessions = sessions.assign(attended=sessions["status"] == "attended")
    events = check_in_events(expectations, sessions)
    values, notes = fit_check_in(events)
    warn += notes.pop("warnings")
    extras["check_in"] = notes
    if values is not None:
        rows.append(_check_in_row(values, notes, model_id, outcome))
    recovery, reason = fit_recovery_after_flag(
        expectations, sessions, client_measures, outcome, model_id
    )
    if reason:
        warn.append(reason)
    if recovery is not None:
        rows.append({**recovery, "outcome": f"{outcome}_recovery", "exposure": "goal_review"})
    return rows


CURVE_TERMS = ("intercept", "log_session", "intake", "lower", "upper")


def check_published_curve(curve: Any, what: str) -> Mapping[str, Any]:
    """The published curve of a config entry, checked: ``source`` (where it is published) and
    ``bands``, per intake severity band label the terms `CURVE_TERMS` (numbers, lower <=
    upper). ConfigError naming the entry and the field otherwise."""
    if not isinstance(curve, Mapping) or not curve.get("source") or not curve.get("bands"):
        raise ConfigError(f"{what}: options.curve needs a source and bands")
    for label, terms in curve["bands"].items():
        missing = [t for t in CURVE_TERMS if not isinstance((terms or {}).get(t), int | float)]
        if missing:
            raise ConfigError(f"{what}: options.curve.bands.{label} has no number for {missing}")
        if terms["lower"] > terms["upper"]:
            raise ConfigError(f"{what}: options.curve.bands.{label} has lower above upper")
    return curve


def published_expectations(
    assessments: pd.DataFrame, curve: Mapping[str, Any], what: str = "not on track"
) -> pd.DataFrame:
    """Expected score and tolerance limits from a published curve (`check_published_curve`):
    for a client in severity band b at session s with intake score y0, expected = intercept_b
    + log_session_b log(1 + s) + intake_b y0; the limits are expected + lower_b and expected +
    upper_b (score points). Assessments of a band the curve does not give stay unjudged."""
    bands = check_published_curve(curve, what)["bands"]
    out = assessments.copy()
    terms = pd.DataFrame.from_dict(dict(bands), orient="index")[list(CURVE_TERMS)].astype(float)
    per_row = terms.reindex(out["severity"].astype(object)).to_numpy()
    expected = (
        per_row[:, 0]
        + per_row[:, 1] * np.log1p(out["session_number"].to_numpy(float))
        + per_row[:, 2] * out["intake"].to_numpy(float)
    )
    out["expected"] = expected
    out["lower"] = expected + per_row[:, 3]
    out["upper"] = expected + per_row[:, 4]
    return out


def _check_in_row(
    values: dict[str, float], notes: dict[str, Any], model_id: str, outcome: str
) -> dict[str, Any]:
    return {
        "model": model_id,
        "outcome": f"{outcome}_back_on_track",
        "exposure": "goal_review",
        "term": "back_on_track:goal_review",
        **values,
        "n_obs": notes["n_events"],
        "n_clients": notes["n_clients"],
        "converged": True,
        "primary": False,
        "ratio": math.exp(values["estimate"]),
        "ratio_ci_low": math.exp(values["ci_low"]),
        "ratio_ci_high": math.exp(values["ci_high"]),
    }


def fit_not_on_track_spec(
    panel: pd.DataFrame,
    client_measures: pd.DataFrame,
    spec: ModelSpec,
    context: ModelContext,
    sessions: pd.DataFrame | None = None,
) -> ModelResult:
    """`fit_not_on_track` for a model declared in config: outcome (an instrument with severity
    bands, or option ``bands`` as [label, low, high] rows), exposure; options ``folds`` (5),
    ``band`` (0.8), ``min_band_clients`` (30), ``group`` (arm, or exposure_tertile), ``curve``
    (a published expected-recovery curve used instead of the cross-fitted ones, see
    `published_expectations`); the seed and min_cell from the study. `sessions` (the
    validated sessions table) gives goal_review; without it the panel's own goal_review
    column is used where it has one."""
    from accord.core.instruments import load_registry

    registry = load_registry()
    options = spec.options
    limits = options.get("bands")
    if limits is None:
        if spec.outcome not in registry or not registry[spec.outcome].bands:
            raise ConfigError(
                f"models: {spec.id!r} (not_on_track) needs options.bands for {spec.outcome!r}"
            )
        limits = registry[spec.outcome].bands
    if sessions is None and "goal_review" in panel.columns:
        sessions = panel
    higher_is = registry[spec.outcome].higher_is if spec.outcome in registry else "worse"
    return fit_not_on_track(
        panel,
        client_measures,
        outcome=spec.outcome,
        sessions=sessions,
        limits=[tuple(row) for row in limits],
        higher_is=options.get("higher_is", higher_is),
        k=int(options.get("folds", 5)),
        seed=context.seed,
        band=float(options.get("band", 0.8)),
        min_band_clients=int(options.get("min_band_clients", 30)),
        group=options.get("group", "arm"),
        exposure=spec.exposure,
        min_cell=context.min_cell,
        model_id=spec.id,
        curve=options.get("curve"),
    )
