"""Synthetic psychotherapy outcome studies with known, planted effects.

`simulate_study` draws a whole study in the shape of the data contract (clients, sessions,
measures, goals) together with `truth`, the parameters that generated it, so every stage of the
pipeline can be checked against known answers and benchmarked at any size. Everything is
vectorised over clients and seeded: the same arguments give the same tables, and `write_study`
writes the same bytes. Text columns use pandas' arrow-backed `str` dtype, which keeps tens of
millions of measure rows compact.

Data-generating model (i = client, j = therapist, t = session_number, 0 = intake)
-----------------------------------------------------------------------------------
Design
  Therapists are spread over sites (every site has at least one); clients are assigned to
  therapists with uneven caseloads and randomised 1:1 to `collaborative` or `usual_care`.
  Age 18..89 (no one 90 or over), age band, gender, intake year 2019..2024.

Goals and the exposure
  Each client has 2-4 goals, agreed at session 0 or 1. A client's per-goal probability of
  setting a goal jointly is p_i ~ Beta with mean `p_joint_collaborative` or
  `p_joint_usual_care` (concentration 4); other goals are set by the client or the therapist
  (equally likely). The exposure x_i = joint_goal_share = share of the client's goals set
  jointly. Joint goals are more often SMART and their importance ratings agree more closely.

Alliance (WAI-SR item-mean scale, 1-5), at scheduled appointment t (seen when attended)
  A_it = mu_A + a_x (x_i - 0.5) + u_i + tau_j + trend (t - 1) + w_it,
  u_i ~ N(0, alliance_between_sd), tau_j ~ N(0, alliance_therapist_sd),
  w_it ~ N(0, alliance_within_sd), independent across appointments (the within-person part).
  The client's alliance level is A_i = mu_A + a_x (x_i - 0.5) + u_i + tau_j; with the default
  a_x its correlation with the exposure is about .26 (goal consensus and collaboration with
  outcome: r = .24 and .29, Tryon, Birch & Verkuilen 2018). Therapist-rated WAI-SR follows half
  of the client's deviation plus rater noise; SRS is driven by the same latent alliance.

Dropout
  logit P(dropout_i) = alpha + b_x x_i + b_w wbar_i + b_l (A_i - mu_A), where wbar_i is the
  mean within-person alliance over the first three appointments (early dips and ruptures).
  alpha is solved so that the expected rate over the drawn clients is `dropout_rate` (19.7 %,
  Swift & Greenberg 2012); the default b_w makes the early alliance of dropouts about .55 SD
  lower (Sharf et al. 2010). The dips do not touch the PHQ-9 slope, so by default dropout is
  ignorable for the growth model. b_l (`dropout_log_odds_alliance_level`) is 0 by default:
  the stable level also steepens the PHQ-9 slope, so a non-zero b_l makes dropout informative
  (not at random) for a growth model that leaves the alliance out, for trying sensitivity
  analyses.
  A client who drops out attends 1..L_i - 1 of their planned L_i sessions (early exits more
  likely), often misses one last scheduled appointment, and has no sessions after that. Other
  clients complete, are referred, end for another reason, or are still in treatment (intake in
  the last year). Appointments are attended, cancelled or missed (no_show) with a
  client-specific attendance propensity; session 1 is always attended; at most `max_sessions`
  are scheduled; treatment ends at the last attended session (or a last missed one).

PHQ-9 (total, 0-27) at intake and every attended session
  Y_it = mu_0 + v_j + b_i + s_i t + lambda w_i,prev + e_it,
  s_i = g_1 + g_x x_i + b_A (u_i + tau_j) + w_j + c_i.
  g_x (`growth_time_x_exposure`) is the total time x exposure effect, what y ~ time * exposure
  estimates: g_x - b_A a_x acts directly and b_A a_x through the alliance, since
  b_A (u_i + tau_j) = b_A (A_i - mu_A) - b_A a_x (x_i - 0.5). w_i,prev is the within-person
  alliance deviation at the client's previous attended session (0 at intake and at the first
  session): lambda (`lagged_within_alliance`) moves next-session PHQ-9 per WAI-SR point.
  b_i ~ N(0, sd_b), c_i ~ N(0, client_slope_sd), e_it ~ N(0, residual_sd), v_j ~ N(0, sd_v),
  w_j ~ N(0, therapist_slope_sd) (default 0): therapists whose clients improve faster or slower,
  which is what a therapist effect on post scores adjusted for intake measures.
  sd_v is set so that therapists hold `therapist_variance_share` of the PHQ-9 variance over
  all assessments (ICC_therapist of a null model of assessments in clients in therapists;
  about 5 %, Wampold & Brown 2005), and sd_b so that the intake SD is `intake_sd`.
  Trajectories are linear in session_number: with many more than 12 sessions a growing share
  of clients reaches the floor of 0, which flattens slopes estimated from scored totals.
  GAD-7 is 0.75 Y_it plus a client offset and noise.

Items
  A latent total is rounded and clipped into the instrument's range: that is the item sum.
  Item j starts at total / k + d_j + noise (d_j an item difficulty) clipped to the item range;
  the items are shifted in proportion to their room until they sum to the total, and then
  rounded cumulatively (which keeps the sum). So scored totals equal the rounded latent totals,
  linear models on them recover the planted effects, and the items still carry item-specific
  noise (Cronbach's alpha about .85 for PHQ-9). A few items (PHQ-9 2 %, GAD-7 1 %, WAI-SR 1 %,
  SRS 0.5 %) and whole forms are missing (rows absent), exercising prorating and the
  missing-item rules.

Schedule of measures (attended sessions only; session numbers count scheduled appointments)
  PHQ-9 and GAD-7 at intake (session 0, phase intake) and every attended session; SRS every
  attended session; client-rated WAI-SR at sessions 1, 2, 3 and then every other one (5, 7, ..);
  therapist-rated WAI-SR every third session; GAS (item = goal_id, -2..2) every fourth session
  and at the client's last attended session, for goals agreed before that session. GAS
  attainment rises with the client's expected PHQ-9 improvement and is higher for joint goals;
  a goal's status follows its last rating.

Homework completion depends on the exposure only (no effect on outcome, so it is a null
mediator); goal reviews are more frequent in the collaborative arm.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from accord.core.errors import ConfigError
from accord.core.io import atomic_path, write_json

__all__ = [
    "Effects",
    "SimulatedConsortium",
    "SimulatedStudy",
    "consortium_site_settings",
    "simulate_consortium",
    "simulate_study",
    "write_consortium",
    "write_study",
]

TABLES = ("clients", "sessions", "measures", "goals")
ARMS = ("collaborative", "usual_care")
GENDERS = ("female", "male", "nonbinary")
GENDER_P = (0.63, 0.35, 0.02)
AGE_BAND_EDGES = (25, 35, 45, 55, 65)
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65-89")
INTAKE_YEARS = (2019, 2024)
END_REASONS = ("completed", "dropout", "referred", "ongoing", "other")
# Shares of all clients who end in each non-dropout way other than completing.
END_SHARES = {"ongoing": 0.05, "referred": 0.04, "other": 0.03}
STATUSES = ("attended", "cancelled", "no_show")
MODALITIES = ("in_person", "video", "phone", "other")
SET_BY = ("client", "therapist", "joint")
GOAL_STATUSES = ("active", "achieved", "revised", "abandoned")
MAX_GOALS = 4
GOAL_IDS = tuple(f"G{k + 1}" for k in range(MAX_GOALS))
# Consonants only: a pseudonym can never spell a word, a date or a number, and cannot contain
# any category label (every label has a vowel or a digit).
ID_ALPHABET = np.array(list("BCDFGHJKLMNPQRSTVWXZ"))

# Item difficulties (added to total / k); each set sums to zero.
PHQ9_OFFSETS = np.array([0.25, 0.2, 0.35, 0.4, 0.1, 0.1, 0.05, -0.3, -1.15])
GAD7_OFFSETS = np.array([0.2, 0.1, 0.25, 0.05, -0.3, 0.0, -0.3])
WAI_OFFSETS = np.array([0.1, -0.05, 0.15, -0.1, 0.2, 0.0, 0.1, -0.15, 0.05, -0.1, -0.2, 0.0])
SRS_OFFSETS = np.array([0.2, 0.0, -0.1, -0.1])

ITEM_MISSING = {"phq9": 0.02, "gad7": 0.01, "wai_sr": 0.01, "srs": 0.005, "gas": 0.03}
FORM_MISSING = {"phq9_gad7": 0.03, "wai_sr": 0.04, "wai_sr_therapist": 0.10, "srs": 0.05}

# (instrument, rater) groups in the order of the sorted measures table.
GROUPS = (
    ("gad7", "client"),
    ("gas", "client"),
    ("phq9", "client"),
    ("srs", "client"),
    ("wai_sr", "client"),
    ("wai_sr", "therapist"),
)
GROUP_ITEMS = {"gad7": 7, "gas": MAX_GOALS, "phq9": 9, "srs": 4, "wai_sr": 12}
ITEM_SLOTS = 16  # items per group in the packed sort key
VALUE_SLOTS = 16  # item values -2..13 in the packed sort key
STR = pd.StringDtype("pyarrow", na_value=np.nan)
CSV_BLOCK_ROWS = 1 << 20
HOMEWORK_EXPOSURE = 1.2  # log-odds of homework completion per unit joint_goal_share
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


@dataclass(frozen=True)
class Effects:
    """Planted effects and latent-model settings; pass any of them to `simulate_study`.

    Units: PHQ-9 points (total 0-27), sessions (session_number), WAI-SR points (item mean 1-5),
    joint_goal_share (0-1), log-odds.
    """

    growth_intercept: float = 16.0  # mean PHQ-9 at intake
    intake_sd: float = 4.0  # SD of PHQ-9 at intake, all sources together
    growth_time: float = -0.42  # PHQ-9 points per session at joint_goal_share 0
    growth_time_x_exposure: float = -0.25  # PHQ-9 points per session per unit joint_goal_share
    client_slope_sd: float = 0.2  # client slope SD beyond exposure and alliance
    residual_sd: float = 2.0  # assessment-level PHQ-9 noise
    therapist_variance_share: float = 0.05  # therapist share of PHQ-9 variance
    therapist_slope_sd: float = 0.0  # therapist SD of the PHQ-9 slope (points per session)
    alliance_mean: float = 3.6  # WAI-SR at session 1 for joint_goal_share 0.5
    alliance_exposure: float = 0.4  # WAI-SR points per unit joint_goal_share
    alliance_between_sd: float = 0.5  # client-level WAI-SR SD beyond the exposure
    alliance_therapist_sd: float = 0.15  # therapist-level WAI-SR SD
    alliance_within_sd: float = 0.45  # session-to-session WAI-SR SD
    alliance_trend: float = 0.02  # WAI-SR points per session
    alliance_slope: float = -0.2  # PHQ-9 points per session per WAI-SR point of client level
    lagged_within_alliance: float = -1.0  # next-session PHQ-9 points per within WAI-SR point
    dropout_rate: float = 0.197  # expected share of clients who drop out
    dropout_log_odds_exposure: float = -1.0  # per unit joint_goal_share
    dropout_log_odds_alliance: float = -6.0  # per WAI-SR point of early within-person alliance
    dropout_log_odds_alliance_level: float = 0.0  # per WAI-SR point of the stable level
    p_joint_collaborative: float = 0.7  # mean per-goal probability of setting a goal jointly
    p_joint_usual_care: float = 0.35


@dataclass
class SimulatedStudy:
    """The four contract tables of a synthetic study and the truth that generated them."""

    clients: pd.DataFrame
    sessions: pd.DataFrame
    measures: pd.DataFrame
    goals: pd.DataFrame
    truth: dict


def simulate_study(
    n_clients: int = 400,
    n_therapists: int = 25,
    n_sites: int = 3,
    seed: int = 2026,
    max_sessions: int = 12,
    **effects: float,
) -> SimulatedStudy:
    """Draw a synthetic study with known effects (the model is in the module docstring).

    `effects` overrides fields of `Effects` by name, e.g. `growth_time_x_exposure=-0.4`.
    Raises ConfigError for an unknown effect or an impossible design.
    """
    eff = _effects(effects)
    n, n_t, n_s, M = int(n_clients), int(n_therapists), int(n_sites), int(max_sessions)
    _check_design(int(seed), n, n_t, n_s, M, eff)
    streams = _Streams(int(seed))

    # Design: pseudonyms, sites, therapists, arms, demographics.
    r = streams("ids")
    client_ids = np.sort(_pseudonyms(r, "C", n, 7))
    therapist_ids = _pseudonyms(r, "T", n_t, 5)
    site_ids = _pseudonyms(r, "S", n_s, 4)
    r = streams("design")
    therapist_site = r.permutation(np.arange(n_t) % n_s)
    caseload = r.gamma(4.0, size=n_t)
    therapist = r.choice(n_t, size=n, p=caseload / caseload.sum())
    collab = r.permutation(np.arange(n) < (n + 1) // 2)
    r = streams("demographics")
    age = np.clip(np.rint(18 + r.gamma(2.2, 9.0, size=n)), 18, 89).astype(np.int64)
    gender = r.choice(len(GENDERS), size=n, p=GENDER_P)
    intake_year = r.integers(INTAKE_YEARS[0], INTAKE_YEARS[1] + 1, size=n)

    # Goals and the exposure.
    r = streams("goals")
    n_goals = r.choice([2, 3, 4], size=n, p=[0.3, 0.45, 0.25])
    p_mean = np.where(collab, eff.p_joint_collaborative, eff.p_joint_usual_care)
    p_joint = r.beta(4.0 * p_mean, 4.0 * (1.0 - p_mean))
    goal_valid = np.arange(MAX_GOALS)[None, :] < n_goals[:, None]
    joint = (r.random((n, MAX_GOALS)) < p_joint[:, None]) & goal_valid
    set_by = np.where(joint, 2, (r.random((n, MAX_GOALS)) < 0.5).astype(np.int64))
    set_session = (r.random((n, MAX_GOALS)) >= 0.6).astype(np.int64)
    x = joint.sum(axis=1) / n_goals

    # Alliance level, dropout and how each client's treatment ends.
    r = streams("alliance")
    tau = r.normal(0.0, eff.alliance_therapist_sd, n_t)
    alliance_dev = r.normal(0.0, eff.alliance_between_sd, n) + tau[therapist]
    alliance_level = eff.alliance_mean + eff.alliance_exposure * (x - 0.5) + alliance_dev
    within_m = r.normal(0.0, eff.alliance_within_sd, (n, M))  # per scheduled appointment
    early_dip = within_m[:, :3].mean(axis=1)
    r = streams("dropout")
    dropout_lp = (
        eff.dropout_log_odds_exposure * x
        + eff.dropout_log_odds_alliance * early_dip
        + eff.dropout_log_odds_alliance_level * (alliance_level - eff.alliance_mean)
    )
    dropout_alpha = _solve_intercept(dropout_lp, eff.dropout_rate)
    dropout = r.random(n) < _expit(dropout_alpha + dropout_lp)
    u_end = r.random(n)
    cuts = np.cumsum([END_SHARES["ongoing"], END_SHARES["referred"], END_SHARES["other"]])
    end_code = np.select(
        [dropout, u_end < cuts[0], u_end < cuts[1], u_end < cuts[2]], [1, 3, 2, 4], default=0
    )
    intake_year[end_code == 3] = INTAKE_YEARS[1]

    # Appointments: how many sessions each client attends and which ones are missed.
    r = streams("sessions")
    planned = np.clip(np.rint(r.normal(0.82 * M, M / 6.0, n)), 2, M).astype(np.int64)
    early_exit = 1 + np.floor(r.random(n) ** 1.6 * (planned - 1)).astype(np.int64)
    any_exit = 1 + np.floor(r.random(n) * (planned - 1)).astype(np.int64)
    target = np.where(end_code == 0, planned, np.where(dropout, early_exit, any_exit))
    p_attend = _expit(r.normal(2.0, 0.7, n))
    attended_m = r.random((n, M)) < p_attend[:, None]
    attended_m[:, 0] = True
    reached = np.cumsum(attended_m, axis=1) >= target[:, None]
    # Treatment ends at the target's session, or at the last attended one within the cap.
    last_visit = M - 1 - attended_m[:, ::-1].argmax(axis=1)
    last_slot = np.where(reached.any(axis=1), reached.argmax(axis=1), last_visit)
    trailing_miss = dropout & (last_slot < M - 1) & (r.random(n) < 0.6)
    n_scheduled = last_slot + 1 + trailing_miss
    status_m = np.where(attended_m, 0, np.where(r.random((n, M)) < 0.55, 1, 2))
    missed_last = np.flatnonzero(trailing_miss)
    status_m[missed_last, last_slot[missed_last] + 1] = 2
    gap = 7 + r.integers(-2, 3, (n, M)) + 7 * (r.random((n, M)) < 0.1)
    gap[:, 0] = 0
    day_m = np.cumsum(gap, axis=1)
    preferred = r.choice(3, size=n, p=[0.6, 0.3, 0.1])
    modality_m = np.where(
        r.random((n, M)) < 0.85, preferred[:, None], r.choice(4, (n, M), p=[0.4, 0.3, 0.2, 0.1])
    )
    duration_m = r.choice([45, 50, 50, 50, 55, 60], (n, M))
    duration_m[:, 0] = r.choice([60, 90], n)
    homework_m = r.random((n, M)) < _expit(0.3 + 0.5 * collab)[:, None]
    completion_m = _expit(
        0.4
        + HOMEWORK_EXPOSURE * (x - 0.5)[:, None]
        + r.normal(0.0, 0.8, n)[:, None]
        + r.normal(0.0, 0.6, (n, M))
    )
    completion_m = np.rint(completion_m * 20.0) / 20.0
    review_m = r.random((n, M)) < _expit(-0.6 + 0.9 * collab + 0.6 * (x - 0.5))[:, None]

    s_client, s_slot = np.nonzero(np.arange(M)[None, :] < n_scheduled[:, None])
    s_status = status_m[s_client, s_slot]
    s_attended = s_status == 0

    # Latent alliance and symptoms at intake and at every attended session.
    a_client = s_client[s_attended]
    a_time = s_slot[s_attended] + 1
    n_a = a_client.size
    r = streams("latent")
    within = within_m[a_client, a_time - 1]
    alliance = alliance_level[a_client] + eff.alliance_trend * (a_time - 1) + within
    first_visit = np.r_[True, a_client[1:] != a_client[:-1]]
    within_prev = np.where(first_visit, 0.0, np.r_[0.0, within[:-1]])
    # Therapists who differ in how fast their clients improve: drawn from a stream of its own,
    # so a study without them (the default) keeps every other draw.
    w = streams("therapist_slopes").normal(0.0, 1.0, n_t) * eff.therapist_slope_sd
    slope = (
        eff.growth_time
        + eff.growth_time_x_exposure * x
        + eff.alliance_slope * alliance_dev
        + w[therapist]
        + r.normal(0.0, eff.client_slope_sd, n)
    )
    o_client = np.r_[np.arange(n), a_client]  # assessments: intake, then attended sessions
    o_time = np.r_[np.zeros(n, dtype=np.int64), a_time]
    change = (
        slope[o_client] * o_time
        + eff.lagged_within_alliance * np.r_[np.zeros(n), within_prev]
        + r.normal(0.0, eff.residual_sd, o_client.size)
    )
    # Therapist variance: share s of all PHQ-9 variance, with the intake variance fixed.
    other_var = float(np.var(change))
    var_therapist = eff.therapist_variance_share * (
        eff.intake_sd**2 - eff.residual_sd**2 + other_var
    )
    var_client = eff.intake_sd**2 - eff.residual_sd**2 - var_therapist
    if var_client <= 0:
        raise ConfigError(
            "intake_sd is too small for residual_sd and therapist_variance_share: "
            "no variance is left between clients"
        )
    v = r.normal(0.0, np.sqrt(var_therapist), n_t)
    level = eff.growth_intercept + v[therapist] + r.normal(0.0, np.sqrt(var_client), n)
    phq = level[o_client] + change
    del change
    gad = 0.75 * phq + r.normal(0.5, 1.8, n)[o_client] + r.normal(0.0, 1.5, o_client.size)

    # Measures, as packed sort keys per (instrument, rater).
    r = streams("measures")
    keys: list[np.ndarray] = []
    kept = np.r_[np.ones(n, bool), r.random(n_a) >= FORM_MISSING["phq9_gad7"]]
    oc, ot = o_client[kept], o_time[kept]
    items = _items(r, phq[kept], 9, 0, 3, PHQ9_OFFSETS, 0.4)
    keys.append(_pack(r, "phq9", "client", oc, ot, items, M))
    items = _items(r, gad[kept], 7, 0, 3, GAD7_OFFSETS, 0.4)
    keys.append(_pack(r, "gad7", "client", oc, ot, items, M))
    del phq, gad, kept, oc, ot
    due = ((a_time <= 3) | ((a_time >= 5) & (a_time % 2 == 1))) & (
        r.random(n_a) >= FORM_MISSING["wai_sr"]
    )
    items = _items(r, 12.0 * alliance[due], 12, 1, 5, WAI_OFFSETS, 0.5)
    keys.append(_pack(r, "wai_sr", "client", a_client[due], a_time[due], items, M))
    due = (a_time % 3 == 0) & (r.random(n_a) >= FORM_MISSING["wai_sr_therapist"])
    rater_view = r.normal(0.0, 0.3, n)[a_client] + r.normal(0.0, 0.25, n_a)
    therapist_rated = eff.alliance_mean - 0.1 + 0.5 * (alliance - eff.alliance_mean) + rater_view
    items = _items(r, 12.0 * therapist_rated[due], 12, 1, 5, WAI_OFFSETS, 0.5)
    keys.append(_pack(r, "wai_sr", "therapist", a_client[due], a_time[due], items, M))
    due = r.random(n_a) >= FORM_MISSING["srs"]
    srs = 36.0 + 6.0 * (alliance - eff.alliance_mean) + r.normal(0.0, 1.5, n_a)
    items = _items(r, srs[due], 4, 0, 10, SRS_OFFSETS, 0.7)
    keys.append(_pack(r, "srs", "client", a_client[due], a_time[due], items, M))
    del items, due, rater_view, therapist_rated, srs

    # GAS: every fourth session and the last attended one, for goals agreed before it.
    last_attended = np.zeros(n, dtype=np.int64)
    np.maximum.at(last_attended, a_client, a_time)
    due = ((a_time % 4 == 0) | (a_time == last_attended[a_client])) & (a_time >= 2)
    g_client, g_time = a_client[due], a_time[due]
    gas_latent = (
        -1.0
        - 0.2 * (slope[g_client] * g_time)[:, None]
        + 0.3 * joint[g_client]
        + r.normal(0.0, 0.5, (n, MAX_GOALS))[g_client]
        + r.normal(0.0, 0.5, (g_client.size, MAX_GOALS))
    )
    gas = np.clip(np.rint(gas_latent), -2, 2).astype(np.int64)
    rated = (
        goal_valid[g_client]
        & (set_session[g_client] < g_time[:, None])
        & (r.random(gas.shape) >= ITEM_MISSING["gas"])
    )
    keys.append(_pack_values("gas", "client", g_client, g_time, gas, rated, M))
    last_gas = _last_rating(g_client, gas, rated, n)
    measures = _measures_frame(keys, client_ids, M)

    # Goals.
    r = streams("goal_details")
    goal_status = np.where(r.random((n, MAX_GOALS)) < 0.15, 2, 0)
    abandon_p = np.where(dropout, 0.3, 0.06)[:, None]
    goal_status = np.where(r.random((n, MAX_GOALS)) < abandon_p, 3, goal_status)
    goal_status = np.where(last_gas >= 1, 1, goal_status)
    lo = np.maximum(set_session, 1)
    revised_at = lo + np.floor(r.random((n, MAX_GOALS)) * (last_attended[:, None] - lo + 1))
    client_imp = np.clip(np.rint(r.normal(4.0, 0.8, (n, MAX_GOALS))), 1, 5)
    agree_sd = np.where(joint, 0.6, 1.1)
    therapist_imp = np.clip(np.rint(client_imp + agree_sd * r.normal(size=(n, MAX_GOALS))), 1, 5)
    smart_lp = 0.3 + 0.9 * joint + 0.3 * collab[:, None] + r.normal(0.0, 0.7, n)[:, None]
    smart = r.random((5, n, MAX_GOALS)) < _expit(smart_lp)[None]
    gc, gg = np.nonzero(goal_valid)
    g_status = goal_status[gc, gg]
    goals = pd.DataFrame(
        {
            "client_id": _text(client_ids, gc),
            "goal_id": _text(GOAL_IDS, gg),
            "set_session": set_session[gc, gg],
            "set_by": _text(SET_BY, set_by[gc, gg]),
            "client_importance": client_imp[gc, gg].astype(np.int64),
            "therapist_importance": therapist_imp[gc, gg].astype(np.int64),
            "smart_specific": smart[0, gc, gg],
            "smart_measurable": smart[1, gc, gg],
            "smart_achievable": smart[2, gc, gg],
            "smart_relevant": smart[3, gc, gg],
            "smart_time_bound": smart[4, gc, gg],
            "status": _text(GOAL_STATUSES, g_status),
            "revised_session": _nullable(revised_at[gc, gg].astype(np.int64), g_status == 2),
        }
    )

    # Clients and sessions.
    clients = pd.DataFrame(
        {
            "client_id": _text(client_ids, np.arange(n)),
            "therapist_id": _text(therapist_ids, therapist),
            "site_id": _text(site_ids, therapist_site[therapist]),
            "arm": _text(ARMS, (~collab).astype(np.int64)),
            "intake_year": intake_year.astype(np.int64),
            "age": age,
            "age_band": _text(AGE_BANDS, np.searchsorted(AGE_BAND_EDGES, age, "right")),
            "gender": _text(GENDERS, gender),
            "end_reason": _text(END_REASONS, end_code),
        }
    )
    homework = homework_m[s_client, s_slot] & s_attended
    sessions = pd.DataFrame(
        {
            "client_id": _text(client_ids, s_client),
            "session_number": (s_slot + 1).astype(np.int64),
            "status": _text(STATUSES, s_status),
            "day": day_m[s_client, s_slot].astype(np.int64),
            "duration_min": _nullable(duration_m[s_client, s_slot], s_attended),
            "modality": _text(MODALITIES, modality_m[s_client, s_slot]),
            "homework_assigned": _nullable(homework_m[s_client, s_slot], s_attended),
            "homework_completion": np.where(homework, completion_m[s_client, s_slot], np.nan),
            "goal_review": _nullable(review_m[s_client, s_slot], s_attended),
        }
    )

    truth = _truth(
        design={"seed": int(seed), "n_clients": n, "n_therapists": n_t, "n_sites": n_s},
        max_sessions=M,
        eff=eff,
        collab=collab,
        x=x,
        alliance_level=alliance_level,
        early_alliance=alliance_level + early_dip,
        dropout=dropout,
        dropout_alpha=dropout_alpha,
        var_therapist=var_therapist,
        var_client=var_client,
        v=v,
        rows={
            "clients": len(clients),
            "sessions": len(sessions),
            "measures": len(measures),
            "goals": len(goals),
        },
    )
    return SimulatedStudy(clients, sessions, measures, goals, truth)


def write_study(study: SimulatedStudy, folder: str | Path, fmt: str = "csv") -> None:
    """Write the four tables as `<table>.<fmt>` and `truth.json` (sorted keys) into `folder`.

    CSV: UTF-8, header, comma-separated, `\\n` line ends, empty cell = missing, booleans
    `true`/`false`, integers (and whole-number values) without a decimal point, other numbers
    in their shortest exact form (0.75). Parquet: plain column types, no pandas metadata.
    Each file is written to a temporary file in the same folder and then renamed into place;
    a table file of the other format left over in the folder is removed, so the folder holds
    one study. The same study gives the same bytes.
    """
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"unknown study format {fmt!r}: use 'csv' or 'parquet'")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    other = "parquet" if fmt == "csv" else "csv"
    for name in TABLES:
        frame = getattr(study, name)
        with atomic_path(folder / f"{name}.{fmt}") as tmp:
            if fmt == "csv":
                _write_csv(frame, tmp)
            else:
                _write_parquet(frame, tmp)
        (folder / f"{name}.{other}").unlink(missing_ok=True)
    write_json(folder / "truth.json", study.truth)


@dataclass
class SimulatedConsortium:
    """The studies of a simulated multi-site consortium, one per site, and their shared truth.

    `truth` holds the mean time x exposure effect, the between-site SD it was drawn with and
    each site's own effect (``site_effects``); every site's study carries its own truth too.
    """

    sites: dict[str, SimulatedStudy]
    truth: dict


def consortium_site_settings(
    n_sites: int = 3,
    n_clients: int = 200,
    n_therapists: int = 10,
    *,
    mean_effect: float = -0.25,
    between_site_sd: float = 0.05,
    site_intercept_sd: float = 1.0,
    seed: int = 2026,
    max_sessions: int = 12,
    **effects: float,
) -> dict[str, dict[str, Any]]:
    """The `simulate_study` settings of each site of a simulated consortium, by site name
    (``site_1``, ``site_2``, ...): its design, its own seed and, under ``effects``, its own
    time x exposure effect and mean PHQ-9 at intake (see `simulate_consortium`) with the
    `effects` every site shares. The config's ``consortia.<name>.simulate`` becomes one
    simulated study per site through this function.
    """
    if "growth_time_x_exposure" in effects:
        raise ConfigError(
            "simulate_consortium: give the sites' effect as mean_effect and between_site_sd, "
            "not growth_time_x_exposure"
        )
    if int(n_sites) < 1:
        raise ConfigError("n_sites must be at least 1")
    if not (between_site_sd >= 0 and site_intercept_sd >= 0):
        raise ConfigError("between_site_sd and site_intercept_sd must not be negative")
    base = _effects(effects)
    r = _Streams(int(seed))("consortium")
    site_effects = mean_effect + between_site_sd * r.standard_normal(int(n_sites))
    intercepts = base.growth_intercept + site_intercept_sd * r.standard_normal(int(n_sites))
    site_seeds = r.integers(0, 2**31 - 1, size=int(n_sites))
    return {
        f"site_{k + 1}": {
            "n_clients": int(n_clients),
            "n_therapists": int(n_therapists),
            "n_sites": 1,
            "max_sessions": int(max_sessions),
            "seed": int(site_seed),
            "effects": {
                **{name: float(value) for name, value in effects.items()},
                "growth_time_x_exposure": float(effect),
                "growth_intercept": float(intercept),
            },
        }
        for k, (effect, intercept, site_seed) in enumerate(
            zip(site_effects, intercepts, site_seeds, strict=True)
        )
    }


def simulate_consortium(
    n_sites: int = 3,
    n_clients: int = 200,
    n_therapists: int = 10,
    *,
    mean_effect: float = -0.25,
    between_site_sd: float = 0.05,
    site_intercept_sd: float = 1.0,
    seed: int = 2026,
    max_sessions: int = 12,
    **effects: float,
) -> SimulatedConsortium:
    """Draw a consortium of `n_sites` separate studies (sites ``site_1``, ``site_2``, ...).

    Site s has its own time x exposure effect g_s ~ N(`mean_effect`, `between_site_sd`^2)
    (PHQ-9 points per session per unit joint_goal_share, the `growth_time_x_exposure` of
    `simulate_study`) and its own mean PHQ-9 at intake, shifted by N(0, `site_intercept_sd`^2)
    from `growth_intercept`; each site is then an ordinary study of `n_clients` clients and
    `n_therapists` therapists (one site each) drawn with its own seed. This is the random-effects
    model a two-stage meta-analysis assumes: the pooled estimate targets `mean_effect` and its
    tau^2 targets `between_site_sd`^2. Other `effects` apply to every site. Each site's study
    is the one `consortium_site_settings` describes.
    """
    settings = consortium_site_settings(
        n_sites,
        n_clients,
        n_therapists,
        mean_effect=mean_effect,
        between_site_sd=between_site_sd,
        site_intercept_sd=site_intercept_sd,
        seed=seed,
        max_sessions=max_sessions,
        **effects,
    )
    sites = {
        name: simulate_study(**{k: v for k, v in site.items() if k != "effects"}, **site["effects"])
        for name, site in settings.items()
    }
    truth = {
        "design": {
            "seed": int(seed),
            "n_sites": int(n_sites),
            "n_clients_per_site": int(n_clients),
            "n_therapists_per_site": int(n_therapists),
            "max_sessions": int(max_sessions),
        },
        "outcome": "phq9",
        "exposure": "joint_goal_share",
        "term": "time:joint_goal_share",
        "mean_effect": float(mean_effect),
        "between_site_sd": float(between_site_sd),
        "site_intercept_sd": float(site_intercept_sd),
        "site_effects": {
            name: site["effects"]["growth_time_x_exposure"] for name, site in settings.items()
        },
        "site_intercepts": {
            name: site["effects"]["growth_intercept"] for name, site in settings.items()
        },
        "site_seeds": {name: site["seed"] for name, site in settings.items()},
        "units": "mean_effect, between_site_sd and site_effects: PHQ-9 points per session per "
        "unit joint_goal_share (the time x exposure term of the growth model); site_intercepts: "
        "mean PHQ-9 at intake",
    }
    return SimulatedConsortium(sites, truth)


def write_consortium(
    consortium: SimulatedConsortium, folder: str | Path, fmt: str = "csv"
) -> dict[str, Path]:
    """Write each site's study into `folder/<site>/` (see `write_study`) and the consortium's
    `truth.json` into `folder`; return the site folders by site name."""
    folder = Path(folder)
    paths = {}
    for name, study in consortium.sites.items():
        paths[name] = folder / name
        write_study(study, paths[name], fmt)
    write_json(folder / "truth.json", consortium.truth)
    return paths


# ----------------------------------------------------------------------------- helpers


class _Streams:
    """Independent random streams for each part of the model, all derived from one seed.

    Changing one part of the model leaves the draws of every other part as they were.
    """

    def __init__(self, seed: int):
        self._seed = int(seed)

    def __call__(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self._seed, *name.encode("ascii")])


def _effects(overrides: dict[str, Any]) -> Effects:
    known = {f.name for f in fields(Effects)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"unknown simulation effect(s): {', '.join(unknown)}; "
            f"known effects: {', '.join(sorted(known))}"
        )
    return Effects(**{name: float(value) for name, value in overrides.items()})


def _check_design(seed: int, n: int, n_t: int, n_s: int, max_sessions: int, eff: Effects) -> None:
    if seed < 0:
        raise ConfigError("seed must be a non-negative integer")
    if n < 1:
        raise ConfigError("n_clients must be at least 1")
    if n_s < 1 or n_t < n_s:
        raise ConfigError("n_sites must be at least 1 and n_therapists at least n_sites")
    if max_sessions < 2:
        raise ConfigError("max_sessions must be at least 2")
    if not 0.0 < eff.dropout_rate < 1.0:
        raise ConfigError("dropout_rate must lie strictly between 0 and 1")
    if not 0.0 <= eff.therapist_variance_share < 1.0:
        raise ConfigError("therapist_variance_share must lie in [0, 1)")
    for name in ("p_joint_collaborative", "p_joint_usual_care"):
        if not 0.0 < getattr(eff, name) < 1.0:
            raise ConfigError(f"{name} must lie strictly between 0 and 1")
    for f in fields(Effects):
        if f.name.endswith("_sd") and not getattr(eff, f.name) >= 0:
            raise ConfigError(f"{f.name} must not be negative")


def _expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _solve_intercept(lp: np.ndarray, rate: float) -> float:
    """The intercept alpha with mean(expit(alpha + lp)) = rate (Newton's method)."""
    alpha = float(np.log(rate / (1.0 - rate)) - np.mean(lp))
    for _ in range(100):
        p = _expit(alpha + lp)
        step = float(p.mean() - rate) / max(float(np.mean(p * (1.0 - p))), 1e-12)
        alpha -= step
        if abs(step) < 1e-12:
            break
    return alpha


def _pseudonyms(r: np.random.Generator, prefix: str, n: int, length: int) -> np.ndarray:
    """n distinct random IDs: `prefix` and `length` consonants, never a digit."""
    ids = np.empty(n, dtype=f"U{length + len(prefix)}")
    todo = np.arange(n)
    while todo.size:
        chars = ID_ALPHABET[r.integers(0, ID_ALPHABET.size, (todo.size, length))]
        ids[todo] = np.char.add(prefix, chars.view(f"U{length}").ravel())
        _, first = np.unique(ids, return_index=True)
        repeat = np.ones(n, bool)
        repeat[first] = False
        todo = np.flatnonzero(repeat)
    return ids


def _items(
    r: np.random.Generator,
    totals: np.ndarray,
    k: int,
    lo: int,
    hi: int,
    offsets: np.ndarray,
    noise_sd: float,
) -> np.ndarray:
    """Item responses (m x k, each in lo..hi) that sum to each latent total rounded into range."""
    m = totals.size
    target = np.clip(np.rint(totals), k * lo, k * hi).astype(np.int64)
    z = np.clip(totals[:, None] / k + offsets + r.normal(0.0, noise_sd, (m, k)), lo, hi)
    # Shift items in proportion to their room so that they sum to the target exactly.
    short = target - z.sum(axis=1)
    room = np.where(short[:, None] > 0, hi - z, z - lo)
    total_room = room.sum(axis=1)
    scale = np.divide(short, total_room, out=np.zeros(m), where=total_room > 0)
    z += scale[:, None] * room
    # Cumulative rounding in integer steps of 1/q keeps the sum and each item's range.
    q = 1024
    zq = np.clip(np.rint(z * q).astype(np.int64), lo * q, hi * q)
    excess = zq.sum(axis=1) - target * q
    room_q = np.where(excess[:, None] > 0, zq - lo * q, hi * q - zq)
    zq[np.arange(m), room_q.argmax(axis=1)] -= excess
    rounded = (np.cumsum(zq, axis=1) + q // 2) // q
    return np.diff(rounded, axis=1, prepend=0)


def _item_ranks(k: int) -> np.ndarray:
    """Where items 1..k fall when their labels are sorted as text ("1", "10", "11", "2", ...)."""
    labels = [str(j) for j in range(1, k + 1)]
    order = sorted(labels)
    return np.array([order.index(label) for label in labels], dtype=np.int64)


def _pack(
    r: np.random.Generator,
    instrument: str,
    rater: str,
    client: np.ndarray,
    time: np.ndarray,
    items: np.ndarray,
    max_sessions: int,
) -> np.ndarray:
    """Item responses as packed sort keys, leaving out a random share of items."""
    present = r.random(items.shape) >= ITEM_MISSING[instrument]
    return _pack_values(instrument, rater, client, time, items, present, max_sessions)


def _pack_values(
    instrument: str,
    rater: str,
    client: np.ndarray,
    time: np.ndarray,
    values: np.ndarray,
    present: np.ndarray,
    max_sessions: int,
) -> np.ndarray:
    """One int64 per measure row holding client, session, group, item rank and value.

    Sorting the keys sorts the rows by (client_id, session_number, instrument, rater, item).
    """
    ranks = np.arange(values.shape[1]) if instrument == "gas" else _item_ranks(values.shape[1])
    head = (client.astype(np.int64) * (max_sessions + 1) + time) * len(GROUPS)
    head = (head + GROUPS.index((instrument, rater))) * ITEM_SLOTS
    key = (head[:, None] + ranks[None, :]) * VALUE_SLOTS + (values + 2)
    return key[present]


def _last_rating(client: np.ndarray, values: np.ndarray, rated: np.ndarray, n: int) -> np.ndarray:
    """Each goal's last rating (n x goals; -9 where never rated); rows run in session order."""
    last = np.full((n, values.shape[1]), -9, dtype=np.int64)
    row, goal = np.nonzero(rated)
    pair = client[row] * values.shape[1] + goal
    _, from_end = np.unique(pair[::-1], return_index=True)
    pick = pair.size - 1 - from_end
    last[client[row[pick]], goal[pick]] = values[row[pick], goal[pick]]
    return last


def _measures_frame(keys: list[np.ndarray], client_ids: np.ndarray, M: int) -> pd.DataFrame:
    key = np.concatenate(keys)
    keys.clear()
    key.sort()
    key, value = np.divmod(key, VALUE_SLOTS)
    value = value.astype(np.float64) - 2.0
    key, item_code = np.divmod(key, ITEM_SLOTS)
    item_code += (key % len(GROUPS)) * ITEM_SLOTS  # group * ITEM_SLOTS + item rank
    key, group = np.divmod(key, len(GROUPS))
    key, session = np.divmod(key, M + 1)
    item_labels = [""] * (len(GROUPS) * ITEM_SLOTS)
    for g, (instrument, _) in enumerate(GROUPS):
        k = GROUP_ITEMS[instrument]
        labels = GOAL_IDS if instrument == "gas" else sorted(str(j) for j in range(1, k + 1))
        item_labels[g * ITEM_SLOTS : g * ITEM_SLOTS + k] = labels
    data = {"client_id": _text(client_ids, key)}
    del key
    data["session_number"] = session
    data["instrument"] = _text([g[0] for g in GROUPS], group)
    data["rater"] = _text([g[1] for g in GROUPS], group)
    del group
    data["item"] = _text(item_labels, item_code)
    del item_code
    data["value"] = value
    data["phase"] = _text(["intake", "treatment"], (session > 0).view(np.int8))
    return pd.DataFrame(data)


def _text(labels: Any, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """labels[codes] as a pandas `str` array (arrow-backed), built without Python objects."""
    vocab = pa.array(np.asarray(labels, dtype=object), pa.large_string())
    return STR.construct_array_type()(pc.take(vocab, pa.array(np.asarray(codes))))


def _nullable(values: np.ndarray, present: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """A nullable boolean or Int64 array, missing where `present` is False."""
    if values.dtype == bool:
        return pd.arrays.BooleanArray(values.copy(), ~present)
    return pd.arrays.IntegerArray(values.astype(np.int64), ~present)


def _truth(
    *,
    design: dict[str, int],
    max_sessions: int,
    eff: Effects,
    collab: np.ndarray,
    x: np.ndarray,
    alliance_level: np.ndarray,
    early_alliance: np.ndarray,
    dropout: np.ndarray,
    dropout_alpha: float,
    var_therapist: float,
    var_client: float,
    v: np.ndarray,
    rows: dict[str, int],
) -> dict:
    def num(value: Any) -> float | None:
        value = float(value)
        return round(value, 6) if np.isfinite(value) else None

    def mean(values: np.ndarray) -> float | None:
        return num(values.mean()) if values.size else None

    def corr(a: np.ndarray, b: np.ndarray) -> float | None:
        if a.size < 3 or a.std() == 0 or b.std() == 0:
            return None
        return num(np.corrcoef(a, b)[0, 1])

    sd_early = early_alliance.std()
    alliance_d = (
        (early_alliance[~dropout].mean() - early_alliance[dropout].mean()) / sd_early
        if dropout.any() and not dropout.all() and sd_early > 0
        else np.nan
    )
    via_alliance = eff.alliance_slope * eff.alliance_exposure
    x_gap = x[collab].mean() - x[~collab].mean() if collab.any() and not collab.all() else np.nan
    return {
        "generator": "accord.simulate",
        **design,
        "max_sessions": max_sessions,
        "effects": {name: float(value) for name, value in asdict(eff).items()},
        "rows": rows,
        "arms": {
            "labels": list(ARMS),
            "allocation": "1:1, randomised per client",
            "n": {ARMS[0]: int(collab.sum()), ARMS[1]: int((~collab).sum())},
            "p_joint_goal": {ARMS[0]: eff.p_joint_collaborative, ARMS[1]: eff.p_joint_usual_care},
            "joint_goal_share_mean": {ARMS[0]: mean(x[collab]), ARMS[1]: mean(x[~collab])},
            "dropout_rate": {ARMS[0]: mean(dropout[collab]), ARMS[1]: mean(dropout[~collab])},
            "time_x_arm": num(eff.growth_time_x_exposure * x_gap),
            "units": "time_x_arm: PHQ-9 points per session, collaborative minus usual_care, "
            "implied by time_x_exposure and the arms' realised difference in joint_goal_share",
        },
        "exposure": {
            "name": "joint_goal_share",
            "definition": "share of the client's goals with set_by = joint",
            "mean": mean(x),
            "sd": num(x.std()),
        },
        "growth": {
            "outcome": "phq9",
            "scale": "total",
            "time": "session_number",
            "exposure": "joint_goal_share",
            "intercept": eff.growth_intercept,
            "exposure_at_intake": 0.0,
            "time_slope": eff.growth_time,
            "time_x_exposure": eff.growth_time_x_exposure,
            "time_x_exposure_direct": num(eff.growth_time_x_exposure - via_alliance),
            "time_x_exposure_via_alliance": num(via_alliance),
            "intake_sd": eff.intake_sd,
            "client_intercept_sd": num(np.sqrt(var_client)),
            "client_slope_sd": eff.client_slope_sd,
            "residual_sd": eff.residual_sd,
            "units": "PHQ-9 total points; time_slope: points per session at joint_goal_share 0; "
            "time_x_exposure: points per session per unit joint_goal_share, the total effect "
            "that phq9 ~ session_number * joint_goal_share estimates (direct + via_alliance)",
        },
        "lagged": {
            "outcome": "phq9",
            "predictor": "wai_sr",
            "within_alliance": eff.lagged_within_alliance,
            "units": "PHQ-9 points at the next attended session per WAI-SR point (item mean) of "
            "the within-person alliance deviation at this session; the client's alliance "
            "level acts on the PHQ-9 slope instead (alliance.slope_effect)",
        },
        "alliance": {
            "instrument": "wai_sr",
            "mean_at_session_1": eff.alliance_mean,
            "exposure_effect": eff.alliance_exposure,
            "between_sd": eff.alliance_between_sd,
            "therapist_sd": eff.alliance_therapist_sd,
            "within_sd": eff.alliance_within_sd,
            "trend_per_session": eff.alliance_trend,
            "slope_effect": eff.alliance_slope,
            "r_exposure_realised": corr(x, alliance_level),
            "units": "WAI-SR item-mean points; exposure_effect per unit joint_goal_share; "
            "slope_effect: PHQ-9 points per session per WAI-SR point of the client's level",
        },
        "dropout": {
            "definition": "end_reason",
            "rate": eff.dropout_rate,
            "rate_realised": mean(dropout),
            "intercept": num(dropout_alpha),
            "log_odds_exposure": eff.dropout_log_odds_exposure,
            "log_odds_alliance": eff.dropout_log_odds_alliance,
            "log_odds_alliance_level": eff.dropout_log_odds_alliance_level,
            "alliance_d_realised": num(alliance_d),
            "ignorable_for_growth": eff.dropout_log_odds_alliance_level == 0.0,
            "units": "log-odds per unit joint_goal_share; log_odds_alliance per WAI-SR point of "
            "the client's early within-person alliance (mean deviation from their own level over "
            "the first three appointments: early dips and ruptures); log_odds_alliance_level per "
            "WAI-SR point of the client's stable alliance level, which also steepens the PHQ-9 "
            "slope, so a non-zero value makes dropout informative for growth models; "
            "alliance_d_realised: early alliance (level plus early dip) of non-dropouts minus "
            "dropouts, in SDs",
        },
        "therapist": {
            "variance_share": eff.therapist_variance_share,
            "intercept_variance": num(var_therapist),
            "intercept_variance_realised": num(v.var()),
            "slope_sd": eff.therapist_slope_sd,
            "definition": "therapist random-intercept variance of PHQ-9 over the total PHQ-9 "
            "variance across all assessments (intake and attended sessions); slope_sd: the "
            "therapist SD of the PHQ-9 slope (points per session), which makes therapists "
            "differ in post scores adjusted for intake",
        },
        "homework": {
            "completion_log_odds_exposure": HOMEWORK_EXPOSURE,
            "effect_on_outcome": 0.0,
        },
        "measurement": {
            "item_missing": dict(ITEM_MISSING),
            "form_missing": dict(FORM_MISSING),
        },
    }


# ----------------------------------------------------------------------------- writing


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    columns = [
        col.cast(pa.string()) if pa.types.is_large_string(col.type) else col
        for col in table.columns
    ]
    table = pa.table(columns, names=table.column_names)
    pq.write_table(table, path, compression="zstd", store_schema=False)


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` as CSV, a block of rows at a time.

    Within a block each column is encoded as codes into a vocabulary of cell texts; the cells
    are gathered into fixed-width rows padded with NUL bytes, and the padding is dropped.
    """
    names = [str(name) for name in frame.columns]
    with open(path, "wb") as handle:
        handle.write((",".join(_csv_cell(name) for name in names) + "\n").encode("utf-8"))
        for start in range(0, len(frame), CSV_BLOCK_ROWS):
            block = frame.iloc[start : start + CSV_BLOCK_ROWS]
            parts = []
            for k, name in enumerate(names):
                codes, vocab = _column_codes(block[name])
                end = "\n" if k == len(names) - 1 else ","
                parts.append((_cell_table(vocab, end, name), codes))
            row = np.dtype(
                {
                    "names": [f"c{k}" for k in range(len(parts))],
                    "formats": [cells.dtype for cells, _ in parts],
                    "offsets": np.cumsum([0] + [c.dtype.itemsize for c, _ in parts[:-1]]).tolist(),
                }
            )
            rows = np.empty(len(block), row)
            for k, (cells, codes) in enumerate(parts):
                rows[f"c{k}"] = np.take(cells, np.where(codes < 0, cells.size - 1, codes))
            data = rows.view(np.uint8)
            handle.write(memoryview(data[data != 0]))


def _cell_table(vocab: list[str], end: str, name: str) -> np.ndarray:
    """The cells of a vocabulary (and a last, empty one for missing) as NUL-padded bytes."""
    cells = [(_csv_cell(text) + end).encode("utf-8") for text in vocab] + [end.encode()]
    if any(b"\x00" in cell for cell in cells):
        raise ConfigError(f"column {name!r} holds a NUL character, which CSV cannot carry")
    width = max(len(cell) for cell in cells)
    return np.array(cells, dtype=f"S{width}").view(f"V{width}")


def _column_codes(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 = missing) into a vocabulary of cell texts for one column."""
    dtype = column.dtype
    missing = column.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        codes = column.to_numpy(dtype=bool, na_value=False).astype(np.int64)
        codes[missing] = -1
        return codes, ["false", "true"]
    if pd.api.types.is_integer_dtype(dtype):
        values = column.to_numpy(dtype=np.int64, na_value=0)
        present = values[~missing]
        low = int(present.min()) if present.size else 0
        high = int(present.max()) if present.size else 0
        if high - low <= 4 * len(values) + 64:
            codes = values - low
            vocab = [str(v) for v in range(low, high + 1)]
        else:
            codes, uniques = pd.factorize(values)
            vocab = [str(int(v)) for v in uniques]
        codes[missing] = -1
        return codes, vocab
    if pd.api.types.is_float_dtype(dtype):
        codes, uniques = pd.factorize(column.to_numpy(dtype=np.float64, na_value=np.nan))
        return codes, [_format_number(v) for v in uniques]
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        encoded = pc.dictionary_encode(pa.chunked_array([pa.array(column)]).combine_chunks())
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        return codes, encoded.dictionary.to_pylist()
    codes, uniques = pd.factorize(column)
    return codes, [_format_value(v) for v in uniques]


def _format_value(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _format_number(value)
    return str(value)


def _format_number(value: float) -> str:
    """Whole numbers without a decimal point; others in their shortest exact form."""
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _csv_cell(text: str) -> str:
    """Quote a cell only where RFC 4180 needs it."""
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text
