"""Outcome change per client and instrument: reliable and clinically significant change.

Jacobson & Truax (1991):
    SE = SD_pre * sqrt(1 - r_xx);  S_diff = sqrt(2 * SE^2);  RCI = (post - pre) / S_diff,
    a change is reliable when |RCI| > 1.96 in the better or worse direction.
    Cut-offs for clinically significant change, with clinical (dysfunctional) and functional norms:
    a = M_clin -+ 2 SD_clin (two SDs from the clinical mean toward the functional side),
    b = M_func +- 2 SD_func (two SDs from the functional mean toward the dysfunctional side),
    c = (SD_clin * M_func + SD_func * M_clin) / (SD_clin + SD_func).

First, post and last (measures.md, outcome change): first is the intake (the first assessment);
post is the score at the client's end-of-treatment assessment (`end_session`, set from
``analysis.end_of_treatment``), MISSING when the client was not assessed there; last is the last
observed score, i.e. last observation carried forward; last_before_post, the last score before
the end session (any score where there is none), is an auxiliary for imputing missing post
scores, the same quantity for clients with and without one. change = change_post = post - first
is the pre-post change the analyses use; change_last = last - first is descriptive (LOCF). The RCI,
reliable improvement / deterioration, clinical status at post and the category come from first
and post; the same from first and last carry the suffix ``_last`` (a labelled LOCF
sensitivity; the NHS indicators, defined on first and last scores, use them).

Instruments with a published reliable-change value (PHQ-9 6, GAD-7 4, ORS 5, CORE-10 6) use it
directly (|change| >= value) by default, as NHS Talking Therapies do; the RCI is used where the
settings ask for it or no published value exists (and the published value where the RCI cannot be
computed). SD_pre defaults to the study's own intake SD: the sample SD (ddof = 1) of the clients'
first assessments, from their exact sum and sum of squares rounded once, so a study built in
partitions of clients has the one-job SD to the bit.

"Clinical" means at or beyond the instrument's cut-off: score >= cut-off where higher is worse,
score < cut-off where higher is better (ORS below 25), unless the registry gives the instrument an
explicit comparison (`cutoff_rule`). Cut-off a, b or c replaces the registry's cut-off where the
settings choose it and the instrument has norms. Categories, from first and post (or first and
last for `category_last`): recovered (clinical at first, not at post, reliable improvement),
improved (reliable improvement, not recovered), deteriorated (reliable worsening), unchanged
(otherwise). A reliable improver whose clinical status cannot be judged (no cut-off) has no
category.

NHS Talking Therapies (formerly IAPT) indicators, for clients who finished a course of treatment:
treatment has ENDED (an end reason is recorded and it is not `ongoing`) and 2 or more treatment
sessions were attended; a client still in treatment, or whose end is not recorded, has not
finished, however many sessions they attended. Every indicator but `nhs_finished` needs
paired scores (first and last) on both PHQ-9 and GAD-7, as the NHS definitions do; it is NA
otherwise.
caseness = PHQ-9 >= 10 or GAD-7 >= 8 at first; recovery (defined for cases) = below caseness on
both at last; reliable improvement = reliable improvement on PHQ-9 or GAD-7 and reliable
deterioration on neither; reliable recovery = recovery and reliable improvement; reliable
deterioration = reliable deterioration on either. They always use the published values.

PHQ-9 response (at most half the intake score) and remission (below 5), both at the
end-of-treatment score and both defined only for baseline cases (intake 10 or more; NA
otherwise), so their denominator is the baseline cases with that score (measures.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from accord.measures.exact import Moments
from accord.measures.panel import ClientSeries, ScoreTable, nullable_bool, nullable_int

CHANGE_METHODS = ("published", "rci")
CLINICAL_CUTOFFS = ("registry", "a", "b", "c")
SD_SOURCES = ("intake", "norms")
CATEGORIES = ("recovered", "improved", "unchanged", "deteriorated")
#: Two-tailed 5 % criterion for the RCI (Jacobson & Truax 1991).
RCI_Z = 1.96
EPS = 1e-9

CHANGE_COLUMNS = (
    "first",
    "post",
    "last",
    "first_session",
    "post_session",
    "last_session",
    "last_before_post",
    "last_before_post_session",
    "n_assessments",
    "change",
    "change_post",
    "change_last",
    "rci",
    "reliable_improvement",
    "reliable_deterioration",
    "clinical_first",
    "clinical_post",
    "clinical_last",
    "category",
    "reliable_improvement_last",
    "reliable_deterioration_last",
    "category_last",
)
THRESHOLD_COLUMNS = (
    "instrument",
    "higher_is",
    "n_pre",
    "sd_pre",
    "sd_source",
    "reliability",
    "se_measurement",
    "s_diff",
    "rci_z",
    "rci_threshold_points",
    "reliable_change",
    "reliable_change_method",
    "cutoff",
    "cutoff_source",
    "a",
    "b",
    "c",
)
NHS_COLUMNS = (
    "nhs_finished",
    "nhs_caseness",
    "nhs_recovery",
    "nhs_reliable_improvement",
    "nhs_reliable_recovery",
    "nhs_reliable_deterioration",
)
#: Sessions attended to have finished a course of treatment (NHS Talking Therapies).
NHS_FINISHED_SESSIONS = 2


def _is_worse(instrument: Any) -> bool:
    direction = getattr(instrument, "higher_is", "worse")
    if direction not in ("worse", "better"):
        raise ValueError(f"{instrument.key}: higher_is must be 'worse' or 'better'")
    return direction == "worse"


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)


def jacobson_truax_cutoffs(norms: dict | None, higher_is: str = "worse") -> dict[str, float]:
    """Cut-offs a, b and c from clinical and functional norms ({"mean", "sd"} each).

    All NaN without norms.
    """
    if not norms or "clinical" not in norms or "functional" not in norms:
        return {"a": math.nan, "b": math.nan, "c": math.nan}
    m_clin, sd_clin = float(norms["clinical"]["mean"]), float(norms["clinical"]["sd"])
    m_func, sd_func = float(norms["functional"]["mean"]), float(norms["functional"]["sd"])
    toward_functional = -1.0 if higher_is == "worse" else 1.0
    return {
        "a": m_clin + toward_functional * 2 * sd_clin,
        "b": m_func - toward_functional * 2 * sd_func,
        "c": (sd_clin * m_func + sd_func * m_clin) / (sd_clin + sd_func),
    }


def baseline_moments(first: np.ndarray) -> Moments:
    """Exact moments of the clients' first scores (`accord.measures.exact`): a partition's add
    up to the study's, whose sample SD is SD_pre."""
    return Moments.of(first)


def _sd_pre(baseline: Moments, instrument: Any, sd_source: str) -> tuple[float, int]:
    if sd_source == "norms":
        norms = getattr(instrument, "norms", None) or {}
        clinical = norms.get("clinical") or {}
        return _number(clinical.get("sd")), baseline.n
    return baseline.sd(), baseline.n


def outcome_change(
    scores: pd.DataFrame | ScoreTable | None,
    client_ids: pd.Index,
    instrument: Any,
    *,
    end_session: np.ndarray | None = None,
    method: str = "published",
    clinical_cutoff: str = "registry",
    sd_source: str = "intake",
    rater: str = "client",
    z: float = RCI_Z,
    baseline: Moments | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Change on one instrument's total, one row per client in `client_ids` (index: client_id).

    `instrument` needs key, higher_is, cutoff, reliable_change, reliability and norms.
    `end_session` gives each client's end-of-treatment session (NaN: none planned or known);
    post is the score at exactly that session, missing when there is none. None takes each
    client's last assessment as the end assessment (post = last), for tables of finished pairs.
    `baseline` gives the moments of the whole study's first scores when `client_ids` are a
    partition of its clients (`baseline_moments`); None takes them from these clients.
    Returns the per-client frame (columns `CHANGE_COLUMNS`, unprefixed) and the thresholds used
    (sd_pre, reliability, s_diff, rci_threshold_points, reliable_change, cutoff, a, b, c, ...).
    """
    if method not in CHANGE_METHODS:
        raise ValueError(f"method must be one of {CHANGE_METHODS}")
    if clinical_cutoff not in CLINICAL_CUTOFFS:
        raise ValueError(f"clinical_cutoff must be one of {CLINICAL_CUTOFFS}")
    if sd_source not in SD_SOURCES:
        raise ValueError(f"sd_source must be one of {SD_SOURCES}")
    series = ClientSeries.from_scores(scores, client_ids, instrument.key, "total", rater)
    first, last = series.first(), series.last()
    sessions = series.session.astype(np.float64)
    last_session = series.last(sessions)
    if end_session is None:
        end_session = last_session
    end_session = np.asarray(end_session, dtype=np.float64)
    post, post_session = _post(series, end_session)
    before, before_session = _last_before(series, end_session)
    # A pair needs two assessments: post at the intake itself is no change.
    paired_post = ~np.isnan(post) & (post_session > series.first(sessions))
    paired_last = series.count >= 2
    change_post = np.where(paired_post, post - first, np.nan)
    change_last = np.where(paired_last, last - first, np.nan)

    baseline = baseline_moments(first) if baseline is None else baseline
    rules = _ChangeRules.build(baseline, instrument, method, clinical_cutoff, sd_source, z)
    clin_first, known_first = rules.clinical(first)
    at_post = rules.judge(change_post, paired_post, post, clin_first, known_first)
    at_last = rules.judge(change_last, paired_last, last, clin_first, known_first)

    out = pd.DataFrame(index=client_ids)
    out["first"] = first
    out["post"] = post
    out["last"] = last
    out["first_session"] = nullable_int(series.first(sessions))
    out["post_session"] = nullable_int(post_session)
    out["last_session"] = nullable_int(last_session)
    out["last_before_post"] = before
    out["last_before_post_session"] = nullable_int(before_session)
    out["n_assessments"] = pd.array(series.count.astype(np.int64), dtype="Int64")
    out["change"] = change_post
    out["change_post"] = change_post
    out["change_last"] = change_last
    out["rci"] = rules.rci(change_post)
    out["reliable_improvement"] = at_post["reliable_improvement"]
    out["reliable_deterioration"] = at_post["reliable_deterioration"]
    out["clinical_first"] = nullable_bool(clin_first, known_first)
    out["clinical_post"] = at_post["clinical"]
    out["clinical_last"] = at_last["clinical"]
    out["category"] = at_post["category"]
    out["reliable_improvement_last"] = at_last["reliable_improvement"]
    out["reliable_deterioration_last"] = at_last["reliable_deterioration"]
    out["category_last"] = at_last["category"]
    return out, rules.thresholds(instrument.key)


def _post(series: ClientSeries, end_session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each client's score at their end session, and that session (NaN where not assessed)."""
    target = end_session[series.code] if len(series) else np.zeros(0)
    at_end = series.session.astype(np.float64) == target
    found = series.n(at_end) > 0
    post = np.where(found, series.total(where=at_end), np.nan)
    return post, np.where(found, end_session, np.nan)


def _last_before(series: ClientSeries, end_session: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each client's last score before their end session (any session where there is none)
    and its session: an auxiliary of the imputation that means the same for clients with and
    without a post score."""
    target = end_session[series.code] if len(series) else np.zeros(0)
    sessions = series.session.astype(np.float64)
    before = np.isnan(target) | (sessions < target)
    position = np.where(before, series.pos, -1)
    latest = np.full(series.n_clients, -1)
    np.maximum.at(latest, series.code, position)
    chosen = before & (series.pos == latest[series.code])
    found = series.n(chosen) > 0
    value = np.where(found, series.total(where=chosen), np.nan)
    session = np.where(found, series.total(sessions, where=chosen), np.nan)
    return value, session


@dataclass(frozen=True)
class _ChangeRules:
    """What counts as reliable and as clinical for one instrument in one study."""

    worse: bool
    sd_pre: float
    n_pre: int
    sd_source: str
    reliability: float
    se: float
    s_diff: float
    z: float
    published: float | None
    used: str | None
    cutoff: float
    cutoff_source: str
    rule: str
    jt: dict[str, float]

    @classmethod
    def build(
        cls,
        baseline: Moments,
        instrument: Any,
        method: str,
        clinical_cutoff: str,
        sd_source: str,
        z: float,
    ) -> _ChangeRules:
        worse = _is_worse(instrument)
        sd_pre, n_pre = _sd_pre(baseline, instrument, sd_source)
        reliability = _number(getattr(instrument, "reliability", None))
        se = sd_pre * math.sqrt(1.0 - reliability) if reliability <= 1.0 else math.nan
        s_diff = math.sqrt(2.0 * se**2)
        has_rci = math.isfinite(s_diff) and s_diff > 0
        published = getattr(instrument, "reliable_change", None)
        if published is not None and (method == "published" or not has_rci):
            used = "published"
        else:
            used = "rci" if has_rci else None
        norms = getattr(instrument, "norms", None)
        jt = jacobson_truax_cutoffs(norms, "worse" if worse else "better")
        # A Jacobson-Truax cut-off needs norms; without them the registry's cut-off stands (the
        # thresholds record which one was used).
        cutoff_source = clinical_cutoff
        if clinical_cutoff == "registry" or math.isnan(jt[clinical_cutoff]):
            cutoff_source = "registry"
        cutoff = (
            _number(getattr(instrument, "cutoff", None))
            if cutoff_source == "registry"
            else jt[clinical_cutoff]
        )
        rule = getattr(instrument, "cutoff_rule", None) if cutoff_source == "registry" else None
        if rule in (None, "clinical"):
            rule = ">=" if worse else "<"
        return cls(
            worse, sd_pre, n_pre, sd_source, reliability, se, s_diff, z,
            None if published is None else float(published), used, cutoff, cutoff_source,
            rule, jt,
        )  # fmt: skip

    def rci(self, change: np.ndarray) -> np.ndarray:
        if math.isfinite(self.s_diff) and self.s_diff > 0:
            return change / self.s_diff
        return np.full(len(change), np.nan)

    def clinical(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Clinical status and where it is known (a score and a cut-off)."""
        compare = {">=": np.greater_equal, ">": np.greater, "<=": np.less_equal, "<": np.less}
        with np.errstate(invalid="ignore"):
            status = compare[self.rule](values, self.cutoff)
        return status, ~np.isnan(values) & (not math.isnan(self.cutoff))

    def judge(
        self,
        change: np.ndarray,
        paired: np.ndarray,
        end: np.ndarray,
        clin_first: np.ndarray,
        known_first: np.ndarray,
    ) -> dict[str, Any]:
        """Reliable change, clinical status at `end` and the category, from first to `end`."""
        gain = (-1.0 if self.worse else 1.0) * change
        with np.errstate(invalid="ignore"):
            if self.used == "published":
                improved = gain >= float(self.published) - EPS
                worsened = gain <= -float(self.published) + EPS
            elif self.used == "rci":
                improved = gain / self.s_diff > self.z
                worsened = gain / self.s_diff < -self.z
            else:
                improved = worsened = np.zeros(len(change), dtype=bool)
        judged = paired & (self.used is not None)
        clin_end, known_end = self.clinical(end)
        recovered = improved & clin_first & ~clin_end
        category = np.select(
            [worsened, improved & recovered, improved & ~recovered],
            ["deteriorated", "recovered", "improved"],
            "unchanged",
        ).astype(object)
        category[~(judged & (~improved | (known_first & known_end)))] = None
        return {
            "reliable_improvement": nullable_bool(improved, judged),
            "reliable_deterioration": nullable_bool(worsened, judged),
            "clinical": nullable_bool(clin_end, known_end),
            "category": pd.array(category, dtype="string"),
        }

    def thresholds(self, key: str) -> dict[str, Any]:
        has_cutoff = not math.isnan(self.cutoff)
        return {
            "instrument": key,
            "higher_is": "worse" if self.worse else "better",
            "n_pre": self.n_pre,
            "sd_pre": self.sd_pre,
            "sd_source": self.sd_source,
            "reliability": self.reliability,
            "se_measurement": self.se,
            "s_diff": self.s_diff,
            "rci_z": self.z,
            "rci_threshold_points": self.z * self.s_diff,
            "reliable_change": _number(self.published),
            "reliable_change_method": self.used,
            "cutoff": self.cutoff,
            "cutoff_source": self.cutoff_source if has_cutoff else None,
            **self.jt,
        }


def response_remission(
    change: pd.DataFrame,
    *,
    at: str = "post",
    baseline_min: float = 10,
    response_share: float = 0.5,
    remission_below: float = 5,
) -> pd.DataFrame:
    """PHQ-9 response (at least a 50 % reduction) and remission (below 5), at the score `at`.

    `change` is an `outcome_change` frame with the column `at` (the end-of-treatment score
    ``post``; ``last`` only for a labelled LOCF sensitivity). Both are defined only for baseline
    cases (first score at least `baseline_min`) with a score at `at`; NA otherwise, so the
    denominator of either rate is the count of non-missing values.
    """
    if at not in change.columns:
        raise ValueError(f"response_remission: the change frame has no column {at!r}")
    first = change["first"].to_numpy(dtype=np.float64)
    end = change[at].to_numpy(dtype=np.float64)
    paired = change["n_assessments"].to_numpy(dtype=np.int64) >= 2
    with np.errstate(invalid="ignore"):
        eligible = paired & ~np.isnan(end) & (first >= baseline_min)
        response = end <= (1.0 - response_share) * first + EPS
        remission = end < remission_below
    return pd.DataFrame(
        {
            "response": nullable_bool(response, eligible),
            "remission": nullable_bool(remission, eligible),
        },
        index=change.index,
    )


def treatment_ended(end_reason: pd.Series | None, index: pd.Index) -> np.ndarray:
    """Whether each client's treatment has ended: an end reason is recorded and is not
    ``ongoing`` (False where `end_reason` is None or missing)."""
    if end_reason is None:
        return np.zeros(len(index), dtype=bool)
    reason = end_reason.reindex(index).astype("string")
    return np.asarray((reason.notna() & reason.ne("ongoing")).fillna(False), dtype=bool)


def nhs_indicators(
    phq9: pd.DataFrame,
    gad7: pd.DataFrame,
    sessions_attended: pd.Series,
    end_reason: pd.Series | None,
    *,
    phq9_caseness: float = 10,
    gad7_caseness: float = 8,
) -> pd.DataFrame:
    """NHS Talking Therapies indicators from PHQ-9 and GAD-7 `outcome_change` frames.

    The frames' reliable_improvement_last / reliable_deterioration_last (first to last) must
    come from the published reliable-change values (6 and 4 points). `end_reason` (indexed by
    client_id) decides who has ended treatment (`treatment_ended`); None means no end is
    recorded for anyone. Columns `NHS_COLUMNS`, nullable booleans.
    """
    index = phq9.index
    attended = sessions_attended.reindex(index).fillna(0).to_numpy(dtype=np.int64)
    finished = treatment_ended(end_reason, index) & (attended >= NHS_FINISHED_SESSIONS)
    paired = (
        finished
        & (phq9["n_assessments"].to_numpy(dtype=np.int64) >= 2)
        & (gad7["n_assessments"].to_numpy(dtype=np.int64) >= 2)
    )

    def values(frame: pd.DataFrame, column: str) -> np.ndarray:
        return frame[column].to_numpy(dtype=np.float64)

    with np.errstate(invalid="ignore"):
        case_first = (values(phq9, "first") >= phq9_caseness) | (
            values(gad7, "first") >= gad7_caseness
        )
        case_last = (values(phq9, "last") >= phq9_caseness) | (
            values(gad7, "last") >= gad7_caseness
        )
    caseness = nullable_bool(case_first, paired)
    recovery = nullable_bool(~case_last, paired & case_first)
    # The NHS indicators pair first and last scores: the last-based reliable-change flags.
    improved = phq9["reliable_improvement_last"].array | gad7["reliable_improvement_last"].array
    worsened = phq9["reliable_deterioration_last"].array | gad7["reliable_deterioration_last"].array
    # Kleene logic keeps an undetermined flag NA; undefined clients are masked explicitly,
    # since `False & NA` is False.
    reliable_improvement = improved & ~worsened
    reliable_improvement[~paired] = pd.NA
    reliable_deterioration = worsened.copy()
    reliable_deterioration[~paired] = pd.NA
    reliable_recovery = recovery & reliable_improvement
    reliable_recovery[~(paired & case_first)] = pd.NA
    return pd.DataFrame(
        {
            "nhs_finished": pd.array(finished, dtype="boolean"),
            "nhs_caseness": caseness,
            "nhs_recovery": recovery,
            "nhs_reliable_improvement": reliable_improvement,
            "nhs_reliable_recovery": reliable_recovery,
            "nhs_reliable_deterioration": reliable_deterioration,
        },
        index=index,
    )
